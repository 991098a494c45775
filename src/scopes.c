/*
 * scopes.c
 *		Matching scopes held in text[] arrays (the syntax lives in keytext.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/arrayaccess.h"

#include "pg_compat.h"
#include "keytext.h"
#include "scopes.h"

/* The i-th element of a text[] being iterated, or NULL. */
static inline text *
next_scope(array_iter *it, int i)
{
	bool		isnull;
	Datum		d = ak_array_iter_next(it, &isnull, i, -1, false, TYPALIGN_INT);

	return isnull ? NULL : DatumGetTextPP(d);
}

/* Does any scope in the array cover the wanted one? */
bool
scopes_cover(ArrayType *scopes, const char *wanted, size_t wlen)
{
	int			n = ArrayGetNItems(ARR_NDIM(scopes), ARR_DIMS(scopes));
	array_iter	it;

	ak_array_iter_setup(&it, (AnyArrayType *) scopes, -1, false, TYPALIGN_INT);
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
