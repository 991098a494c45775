/*
 * scopes.c
 *		Scopes held in text[] arrays: matching, and the validation of scopes
 *		and resources from SQL (the syntax itself lives in keytext.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/arrayaccess.h"
#include "utils/builtins.h"

#include "keytext.h"
#include "scopes.h"

/* The most scopes one key may hold. */
#define MAX_SCOPES 64

/* The i-th element of a text[] being iterated, or NULL. */
static inline text *
next_scope(array_iter *it, int i)
{
	bool		isnull;
	Datum		d = array_iter_next(it, &isnull, i, -1, false, TYPALIGN_INT);

	return isnull ? NULL : DatumGetTextPP(d);
}

/* Does any scope in the array cover the wanted one? */
bool
scopes_cover(ArrayType *scopes, const char *wanted, size_t wlen)
{
	int			n = ArrayGetNItems(ARR_NDIM(scopes), ARR_DIMS(scopes));
	array_iter	it;

	array_iter_setup(&it, (AnyArrayType *) scopes);
	for (int i = 0; i < n; i++)
	{
		text	   *granted = next_scope(&it, i);

		if (granted != NULL &&
			ak_scope_covers(VARDATA_ANY(granted), VARSIZE_ANY_EXHDR(granted),
							wanted, wlen))
			return true;
	}
	return false;
}


/* _valid_scope(text): is this a well-formed scope? */
PG_FUNCTION_INFO_V1(valid_scope);
Datum
valid_scope(PG_FUNCTION_ARGS)
{
	text	   *scope = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(ak_scope_valid(VARDATA_ANY(scope), VARSIZE_ANY_EXHDR(scope)));
}

/*
 * _valid_scopes(text[]): at most MAX_SCOPES well-formed scopes in a
 * one-dimensional array without NULLs (the key table's invariant).
 */
PG_FUNCTION_INFO_V1(valid_scopes);
Datum
valid_scopes(PG_FUNCTION_ARGS)
{
	ArrayType  *scopes = PG_GETARG_ARRAYTYPE_P(0);
	int			n = ArrayGetNItems(ARR_NDIM(scopes), ARR_DIMS(scopes));
	array_iter	it;

	if (n > MAX_SCOPES || ARR_NDIM(scopes) > 1 || ARR_HASNULL(scopes))
		PG_RETURN_BOOL(false);
	array_iter_setup(&it, (AnyArrayType *) scopes);
	for (int i = 0; i < n; i++)
	{
		text	   *scope = next_scope(&it, i);

		if (!ak_scope_valid(VARDATA_ANY(scope), VARSIZE_ANY_EXHDR(scope)))
			PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(true);
}

/* _valid_resource(text): is this a well-formed resource ("type:id")? */
PG_FUNCTION_INFO_V1(valid_resource);
Datum
valid_resource(PG_FUNCTION_ARGS)
{
	text	   *resource = PG_GETARG_TEXT_PP(0);

	PG_RETURN_BOOL(ak_resource_valid(VARDATA_ANY(resource), VARSIZE_ANY_EXHDR(resource)));
}
