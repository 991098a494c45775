/*
 * validate.c
 *		Where management input is validated: labels, scopes and resources.
 *
 * Each function returns its (normalized) input or raises a clear error, so
 * PL/pgSQL can validate with a cheap assignment.  Scope and resource syntax
 * itself lives in keytext.c.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "apikey.h"
#include "keytext.h"

/* The most scopes one key may hold. */
#define MAX_SCOPES 64

/* Quote at most this much of a rejected value in a message. */
#define MAX_QUOTED 128

/*
 * A rejected value as an error message may show it: quoted and clipped, or
 * not at all when it may hold a secret (key text passed in the wrong place
 * must not reach the server log).
 */
static char *
shown(text *t)
{
	int			len = VARSIZE_ANY_EXHDR(t);

	if (ak_may_hold_secret(VARDATA_ANY(t), len))
		return pstrdup("(not shown: it may be key text)");
	len = pg_mbcliplen(VARDATA_ANY(t), len, Min(len, MAX_QUOTED));
	return psprintf("\"%s\"", pnstrdup(VARDATA_ANY(t), len));
}

/* apikey_internal.shown(value) -> the value as a message may show it */
PG_FUNCTION_INFO_V1(shown_value);
Datum
shown_value(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_TEXT_P(cstring_to_text("NULL"));
	PG_RETURN_TEXT_P(cstring_to_text(shown(PG_GETARG_TEXT_PP(0))));
}

/*
 * apikey_internal.checked_label(what, value, maxlen, required) -> value
 * Names, descriptions and reasons: at most maxlen characters, no control
 * characters, not blank when required; NULL only when not required.
 */
PG_FUNCTION_INFO_V1(checked_label);
Datum
checked_label(PG_FUNCTION_ARGS)
{
	char	   *what;
	int32		maxlen;
	bool		required;
	text	   *value;
	const char *s;
	int			len;
	int			nchars;
	bool		blank = true;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("what, maxlen and required must not be null")));
	what = text_to_cstring(PG_GETARG_TEXT_PP(0));
	maxlen = PG_GETARG_INT32(2);
	required = PG_GETARG_BOOL(3);
	if (PG_ARGISNULL(1))
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", what)));
		PG_RETURN_NULL();
	}
	value = PG_GETARG_TEXT_PP(1);
	s = VARDATA_ANY(value);
	len = VARSIZE_ANY_EXHDR(value);
	nchars = pg_mbstrlen_with_len(s, len);
	if (nchars > maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is too long (%d characters)", what, nchars),
				 errdetail("The limit is %d characters.", maxlen)));
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c < 0x20 || c == 0x7F)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain control characters", what)));
		if (c != ' ')
			blank = false;
	}
	if (required && blank)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	PG_RETURN_TEXT_P(value);
}

static int
compare_text_ptrs(const void *a, const void *b)
{
	text	   *x = *(text *const *) a;
	text	   *y = *(text *const *) b;
	int			lx = VARSIZE_ANY_EXHDR(x);
	int			ly = VARSIZE_ANY_EXHDR(y);
	int			c = memcmp(VARDATA_ANY(x), VARDATA_ANY(y), Min(lx, ly));

	return c != 0 ? c : (lx > ly) - (lx < ly);
}

/*
 * apikey_internal.normalized_scopes(scopes) -> scopes, sorted and without
 * duplicates.  At most MAX_SCOPES well-formed scopes in a one-dimensional
 * array.
 */
PG_FUNCTION_INFO_V1(normalized_scopes);
Datum
normalized_scopes(PG_FUNCTION_ARGS)
{
	ArrayType  *scopes;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			kept = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("scopes must not be null"),
				 errhint("A key without scopes has the empty array '{}'.")));
	scopes = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(scopes) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("scopes must be a one-dimensional array")));
	n = ArrayGetNItems(ARR_NDIM(scopes), ARR_DIMS(scopes));
	if (n > MAX_SCOPES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a key holds at most %d scopes, got %d", MAX_SCOPES, n)));
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TEXTOID));

	deconstruct_array(scopes, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		text	   *scope;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("scopes must not contain NULL")));
		scope = DatumGetTextPP(elems[i]);
		if (!ak_scope_valid(VARDATA_ANY(scope), VARSIZE_ANY_EXHDR(scope)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid scope %s", shown(scope)),
					 errdetail("A scope is \"*\" or segments of lowercase letters, digits, \"_\", \".\" or \"-\" separated by \":\", the last of which may be \"*\" (e.g. \"orders:read\", \"orders:*\"); at most %d characters.",
							   AK_SCOPE_MAX)));
		if (!apikey_right_known(VARDATA_ANY(scope), VARSIZE_ANY_EXHDR(scope)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown right %s", shown(scope)),
					 errdetail("The scopes of the namespace apikey are the rights: apikey:admin, apikey:tenant, apikey:keys:read, apikey:keys:create, apikey:keys:edit, apikey:keys:revoke, apikey:keys:roll, apikey:keys:delete and apikey:keys:own (or apikey:* and apikey:keys:*).")));
		elems[i] = PointerGetDatum(scope);
	}
	qsort(elems, n, sizeof(Datum), compare_text_ptrs);
	for (int i = 0; i < n; i++)
		if (kept == 0 || compare_text_ptrs(&elems[kept - 1], &elems[i]) != 0)
			elems[kept++] = elems[i];
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, kept, TEXTOID, -1, false, TYPALIGN_INT));
}

/* apikey_internal.checked_resource(resource) -> "type:id", NULL allowed */
PG_FUNCTION_INFO_V1(checked_resource);
Datum
checked_resource(PG_FUNCTION_ARGS)
{
	text	   *resource = PG_GETARG_TEXT_PP(0);

	if (!ak_resource_valid(VARDATA_ANY(resource), VARSIZE_ANY_EXHDR(resource)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid resource %s", shown(resource)),
				 errdetail("A resource is \"<type>:<id>\" (e.g. \"collection:42\"): a type of lowercase letters, digits, \"_\", \".\" or \"-\", and an id of printable ASCII without spaces; at most %d characters.",
						   AK_RESOURCE_MAX)));
	PG_RETURN_TEXT_P(resource);
}
