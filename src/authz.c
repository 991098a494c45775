/*
 * authz.c
 *		Who may manage which keys: the one rule every management function
 *		obeys.
 *
 * Two kinds of callers manage keys:
 *	- a full administrator: a role that may execute apikey.create_tenant
 *	  (apikey.grant_admin), not acting as a key;
 *	- a tenant administrator: a transaction authenticated with a key that
 *	  holds apikey:admin.  It acts only inside what its own key covers: its
 *	  tenant, its environment, its scopes and its resources.  A key it does
 *	  not cover is one it cannot touch, whatever the function.
 *
 * Rights are those of the calling role as the session (and SET ROLE) set
 * it, never those of the owner of an intermediate SECURITY DEFINER
 * function: the management functions are themselves SECURITY DEFINER.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "pg_compat.h"
#include "apikey.h"
#include "identity.h"
#include "keytext.h"
#include "scopes.h"
#include "verify.h"

static const char admin_scope[] = "apikey:admin";

/* apikey.create_tenant, whose EXECUTE right makes a full administrator */
static Oid	create_tenant_oid = InvalidOid;

static void
forget_create_tenant(Datum arg, int cacheid, uint32 hashvalue)
{
	create_tenant_oid = InvalidOid;
}

void
authz_init(void)
{
	CacheRegisterSyscacheCallback(PROCOID, forget_create_tenant, (Datum) 0);
}

/* May the calling role manage every tenant? */
bool
caller_is_admin(void)
{
	if (!OidIsValid(create_tenant_oid))
	{
		List	   *name = list_make1(makeString("apikey"));

		name = lappend(name, makeString("create_tenant"));
		create_tenant_oid = LookupFuncName(name, -1, NULL, true);
	}
	return OidIsValid(create_tenant_oid) &&
		ak_proc_aclcheck(create_tenant_oid, GetOuterUserId(), ACL_EXECUTE) == ACLCHECK_OK;
}

static void
deny(const char *message, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg_internal("%s", message),
			 errhint("%s", hint ? hint :
					 "Administrators are named with apikey.grant_admin; a tenant's own administrators authenticate with a key holding apikey:admin.")));
}

static inline bool
text_equals(const text *a, const text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

/*
 * The caller's right to manage the tenant at all, checked before anything
 * of the tenant is looked up (so nothing is learnt of tenants one may not
 * manage).  Returns the identity of a tenant administrator, NULL for a full
 * administrator; raises 42501 otherwise.
 */
static const Identity *
check_tenant(text *slug)
{
	const Identity *id = identity_current();

	if (id == NULL)
	{
		if (!caller_is_admin())
			deny("permission denied to manage API keys", NULL);
		return NULL;
	}
	if (!scopes_cover(id->scopes, admin_scope, sizeof(admin_scope) - 1))
		deny("permission denied: the authenticated key does not hold the scope apikey:admin", NULL);
	if (slug == NULL || !text_equals(slug, id->tenant))
		deny(psprintf("permission denied: the authenticated key manages tenant %s only",
					  text_to_cstring(id->tenant)), NULL);
	return id;
}

/*
 * apikey_internal.authorized_tenant(slug) -> slug, when the caller may manage
 * keys of that tenant (the first check of every management function); raises
 * 42501 otherwise.
 */
PG_FUNCTION_INFO_V1(authorized_tenant);
Datum
authorized_tenant(PG_FUNCTION_ARGS)
{
	text	   *slug = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);

	check_tenant(slug);
	if (slug == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant must not be null")));
	PG_RETURN_TEXT_P(slug);
}

/* Does the identity's resource restriction cover every one of resources? */
static bool
resources_covered(const Identity *id, ArrayType *resources)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (id->resources == NULL)
		return true;
	/* an unrestricted key reaches more than a restricted administrator */
	if (resources == NULL)
		return false;
	deconstruct_array(resources, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		return false;
	for (int i = 0; i < n; i++)
		if (nulls[i] || !resources_cover(id->resources, DatumGetTextPP(elems[i])))
			return false;
	return true;
}

/* The first scope of scopes that the identity does not cover, or NULL. */
static text *
scope_not_covered(const Identity *id, ArrayType *scopes)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(scopes, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		text	   *s;

		if (nulls[i])
			continue;
		s = DatumGetTextPP(elems[i]);
		if (!scopes_cover(id->scopes, VARDATA_ANY(s), VARSIZE_ANY_EXHDR(s)))
			return s;
	}
	return NULL;
}

/*
 * apikey_internal.authorize(tenant, environment, scopes, resources)
 *		The rule: may the caller act on a key (or create one) of this tenant
 *		and environment, holding these scopes and restricted to these
 *		resources (NULL: unrestricted)?  A full administrator may; a tenant
 *		administrator only within its own tenant and environment, for keys
 *		whose every scope its key holds and whose resources its key covers.
 *		Raises 42501 otherwise.  environment NULL: not about one environment
 *		(a tenant-wide action).
 */
PG_FUNCTION_INFO_V1(authorize);
Datum
authorize(PG_FUNCTION_ARGS)
{
	text	   *tenant = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	text	   *environment = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	ArrayType  *scopes = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
	ArrayType  *resources = PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3);
	const Identity *id = check_tenant(tenant);
	text	   *missing;

	if (id == NULL)
		PG_RETURN_VOID();
	if (environment != NULL && !text_equals(environment, id->environment))
		deny(psprintf("permission denied: the authenticated key manages environment %s only",
					  text_to_cstring(id->environment)),
			 "A tenant administrator manages the keys of its own environment.");
	if (scopes != NULL && (missing = scope_not_covered(id, scopes)) != NULL)
		deny(psprintf("permission denied: the authenticated key does not hold the scope %s",
					  text_to_cstring(missing)),
			 "A tenant administrator manages only keys whose every scope its own key holds.");
	if (!resources_covered(id, resources))
		deny("permission denied: the authenticated key is restricted to a resource",
			 "A resource-restricted administrator manages only keys restricted to resources it covers.");
	PG_RETURN_VOID();
}

/*
 * is_admin() -> may the calling role manage every tenant?  Public: it
 * answers only about the caller's own rights.
 */
PG_FUNCTION_INFO_V1(is_admin);
Datum
is_admin(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(caller_is_admin());
}

/*
 * apikey_internal.caller() -> the role calling the extension: current_user as
 * set by the session (and SET ROLE), unaffected by SECURITY DEFINER functions.
 */
PG_FUNCTION_INFO_V1(caller);
Datum
caller(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(GetOuterUserId());
}
