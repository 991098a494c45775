/*
 * authz.c
 *		Who may manage which keys: the one rule every management function
 *		and listing obeys.
 *
 * Three kinds of callers manage keys:
 *	- a full administrator: a role that may execute apikey.create_tenant
 *	  (apikey.grant_admin), not acting as a key or for a member;
 *	- a tenant administrator: a transaction authenticated with a key that
 *	  holds rights (scopes apikey:admin, apikey:keys:read, ...);
 *	- a member: a transaction of the application's dashboard role
 *	  (apikey.grant_delegate) that called act_for, naming the tenant, the
 *	  person, the rights and the environments (delegation.c).
 * The last two are on the tenant's side and obey the same rule: the right
 * the action needs, their own tenant and environments, keys whose every
 * scope they hold and whose resources they cover, and with apikey:keys:own
 * only keys whose owner they are.  A key they do not cover is one they
 * cannot touch, whatever the function.
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
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "pg_compat.h"
#include "apikey.h"
#include "identity.h"
#include "keytext.h"
#include "scopes.h"
#include "verify.h"
#include "delegation.h"

static const char admin_scope[] = "apikey:admin";
static const char own_scope[] = "apikey:keys:own";
static const char read_right[] = "apikey:keys:read";

/*
 * The rights: words of the scope namespace apikey, the same for tenant
 * administrators' keys and for members (act_for).  apikey:admin is every
 * one of them; apikey:keys:own is a restriction (every other right reaches
 * only keys whose owner is the caller's), held only when named as such.
 */
static const char *const rights[] = {
	"apikey:admin", "apikey:tenant", "apikey:keys:read", "apikey:keys:create",
	"apikey:keys:edit", "apikey:keys:revoke", "apikey:keys:roll", "apikey:keys:delete",
	"apikey:keys:own", "apikey:*", "apikey:keys:*"
};

/* Is a scope of the namespace apikey one of the rights (or their wildcards)? */
bool
apikey_right_known(const char *scope, size_t len)
{
	if (len < 7 || memcmp(scope, "apikey:", 7) != 0)
		return true;			/* not of the namespace */
	for (size_t i = 0; i < lengthof(rights); i++)
		if (strlen(rights[i]) == len && memcmp(rights[i], scope, len) == 0)
			return true;
	return false;
}

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

/*
 * A caller on a tenant's side: a transaction authenticated with a key of
 * the tenant, or acting for a member of it (act_for).  Both obey one rule:
 * their tenant only, their environments only, the rights their scopes
 * hold, keys whose every scope they hold and whose resources they cover,
 * and, with apikey:keys:own, keys they own.
 */
typedef struct Principal
{
	int64		tenant_id;
	text	   *tenant;
	ArrayType  *scopes;			/* the rights, and the scopes keys may be given */
	text	   *environment;	/* a key's one environment, or NULL */
	ArrayType  *environments;	/* a member's, when restricted to some */
	ArrayType  *resources;		/* NULL: unrestricted */
	text	   *owner;			/* the key's owner, or the member */
	const char *who;			/* for messages */
} Principal;

/* The caller's tenant side, if it is on one. */
static bool
principal_current(Principal *p)
{
	const Delegation *d = delegation_current();
	const Identity *id;

	if (d != NULL)
	{
		p->tenant_id = d->tenant_id;
		p->tenant = d->tenant;
		p->scopes = d->rights;
		p->environment = NULL;
		p->environments = d->environments;
		p->resources = NULL;
		p->owner = d->actor;
		p->who = "the member this transaction acts for";
		return true;
	}
	id = identity_current();
	if (id == NULL)
		return false;
	p->tenant_id = id->tenant_id;
	p->tenant = id->tenant;
	p->scopes = id->scopes;
	p->environment = id->environment;
	p->environments = NULL;
	p->resources = id->resources;
	p->owner = id->owner;
	p->who = "the authenticated key";
	return true;
}

static inline bool
text_equals(const text *a, const text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

/* Does the array hold this very text (no wildcards)? */
static bool
array_has(ArrayType *array, const char *s, size_t len)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		text	   *t;

		if (nulls[i])
			continue;
		t = DatumGetTextPP(elems[i]);
		if (VARSIZE_ANY_EXHDR(t) == len && memcmp(VARDATA_ANY(t), s, len) == 0)
			return true;
	}
	return false;
}

static bool
holds_right(const Principal *p, const char *right)
{
	return scopes_cover(p->scopes, right, strlen(right)) ||
		scopes_cover(p->scopes, admin_scope, sizeof(admin_scope) - 1);
}

/* Restricted to its own keys (apikey:keys:own, named as such)? */
static bool
own_restricted(const Principal *p)
{
	return array_has(p->scopes, own_scope, sizeof(own_scope) - 1);
}

/* May the principal act in this environment? */
static bool
covers_environment(const Principal *p, text *environment)
{
	if (p->environment != NULL)
		return environment != NULL && text_equals(environment, p->environment);
	if (p->environments == NULL)
		return true;
	return environment != NULL &&
		array_has(p->environments, VARDATA_ANY(environment), VARSIZE_ANY_EXHDR(environment));
}

/*
 * The caller's right to manage the tenant at all, checked before anything
 * of the tenant is looked up (so nothing is learnt of tenants one may not
 * manage).  Returns true for a caller on the tenant's side (p filled),
 * false for a full administrator; raises 42501 otherwise.
 */
static bool
check_tenant(text *slug, const char *right, Principal *p)
{
	if (!principal_current(p))
	{
		if (!caller_is_admin())
			deny("permission denied to manage API keys",
				 "Administrators are named with apikey.grant_admin; the application's dashboard role (apikey.grant_delegate) calls apikey.act_for first; a tenant's own administrators authenticate with a key holding apikey:admin.");
		return false;
	}
	if (right == NULL || !holds_right(p, right))
		deny(psprintf("permission denied: %s does not hold the right %s",
					  p->who, right ? right : "(none)"),
			 "apikey:admin holds every right.");
	if (slug == NULL || !text_equals(slug, p->tenant))
		deny(psprintf("permission denied: %s manages tenant %s only",
					  p->who, text_to_cstring(p->tenant)), NULL);
	return true;
}

/*
 * apikey_internal.authorized_tenant(slug, right) -> slug, when the caller may use the
 * right (an apikey:... word) on that tenant (the first check of every
 * management function); raises 42501 otherwise.  Full administrators hold
 * every right on every tenant.
 */
PG_FUNCTION_INFO_V1(authorized_tenant);
Datum
authorized_tenant(PG_FUNCTION_ARGS)
{
	text	   *slug = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	char	   *right;
	Principal	p;

	/* the SQL of versions before 0.4 names no right: theirs was apikey:admin */
	if (PG_NARGS() < 2)
		right = pstrdup(admin_scope);
	else
		right = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	check_tenant(slug, right, &p);
	if (slug == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant must not be null")));
	PG_RETURN_TEXT_P(slug);
}

/* Does the principal's resource restriction cover every one of resources? */
static bool
resources_covered(const Principal *p, ArrayType *resources)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (p->resources == NULL)
		return true;
	/* an unrestricted key reaches more than a restricted administrator */
	if (resources == NULL)
		return false;
	deconstruct_array(resources, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		return false;
	for (int i = 0; i < n; i++)
		if (nulls[i] || !resources_cover(p->resources, DatumGetTextPP(elems[i])))
			return false;
	return true;
}

/*
 * Does the principal hold this scope, to give it to a key?  Its scopes
 * cover it; a right (a word of the namespace apikey) is also held with
 * apikey:admin, which is every right, and apikey:keys:own, a restriction,
 * may be given by anyone.
 */
static bool
holds_scope(const Principal *p, text *scope)
{
	const char *s = VARDATA_ANY(scope);
	size_t		len = VARSIZE_ANY_EXHDR(scope);

	if (scopes_cover(p->scopes, s, len))
		return true;
	if (len < 7 || memcmp(s, "apikey:", 7) != 0)
		return false;
	return (len == sizeof(own_scope) - 1 && memcmp(s, own_scope, len) == 0) ||
		scopes_cover(p->scopes, admin_scope, sizeof(admin_scope) - 1);
}

/* The first scope of scopes that the principal does not hold, or NULL. */
static text *
scope_not_covered(const Principal *p, ArrayType *scopes)
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
		if (!holds_scope(p, s))
			return s;
	}
	return NULL;
}

/*
 * apikey_internal.authorize(tenant, environment, scopes, resources)
 *		The rule: may the caller act on a key (or create one) of this tenant
 *		and environment, holding these scopes and restricted to these
 *		resources (NULL: unrestricted)?  A full administrator may; a caller
 *		on the tenant's side only within its own tenant and environments,
 *		for keys whose every scope it holds and whose resources it covers.
 *		Raises 42501 otherwise.  environment NULL: not about one environment
 *		(a tenant-wide action).  Which right the action needs was checked
 *		first (apikey_internal.authorized_tenant).
 */
PG_FUNCTION_INFO_V1(authorize);
Datum
authorize(PG_FUNCTION_ARGS)
{
	text	   *tenant = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	text	   *environment = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	ArrayType  *scopes = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
	ArrayType  *resources = PG_ARGISNULL(3) ? NULL : PG_GETARG_ARRAYTYPE_P(3);
	Principal	p;
	text	   *missing;

	if (!principal_current(&p))
	{
		if (!caller_is_admin())
			deny("permission denied to manage API keys", NULL);
		PG_RETURN_VOID();
	}
	if (tenant == NULL || !text_equals(tenant, p.tenant))
		deny(psprintf("permission denied: %s manages tenant %s only",
					  p.who, text_to_cstring(p.tenant)), NULL);
	if (environment != NULL && !covers_environment(&p, environment))
	{
		if (p.environment != NULL)
			deny(psprintf("permission denied: %s manages environment %s only",
						  p.who, text_to_cstring(p.environment)),
				 "A tenant administrator manages the keys of its own environment.");
		deny(psprintf("permission denied: %s does not manage environment %s",
					  p.who, text_to_cstring(environment)),
			 "A member manages the keys of the environments act_for named.");
	}
	if (scopes != NULL && (missing = scope_not_covered(&p, scopes)) != NULL)
		deny(psprintf("permission denied: %s does not hold the scope %s",
					  p.who, text_to_cstring(missing)),
			 "A tenant administrator or member manages only keys whose every scope it holds itself.");
	if (!resources_covered(&p, resources))
		deny(psprintf("permission denied: %s is restricted to a resource", p.who),
			 "A resource-restricted administrator manages only keys restricted to resources it covers.");
	PG_RETURN_VOID();
}

/*
 * apikey_internal.authorize_owner(owner)
 *		A caller restricted to its own keys (apikey:keys:own) acts only on
 *		keys whose owner is itself (a member: the actor; a key: its owner),
 *		and gives keys no other owner.  Raises 42501 otherwise.
 */
PG_FUNCTION_INFO_V1(authorize_owner);
Datum
authorize_owner(PG_FUNCTION_ARGS)
{
	text	   *owner = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	Principal	p;

	if (principal_current(&p) && own_restricted(&p) &&
		(owner == NULL || p.owner == NULL || !text_equals(owner, p.owner)))
		deny(psprintf("permission denied: %s manages its own keys only", p.who),
			 "With apikey:keys:own, every right reaches only the keys whose owner is the member (or the key's owner).");
	PG_RETURN_VOID();
}

/* apikey_internal.owned_by() -> the owner a caller restricted to its own keys gives new keys, or NULL */
PG_FUNCTION_INFO_V1(owned_by_caller);
Datum
owned_by_caller(PG_FUNCTION_ARGS)
{
	Principal	p;
	text	   *owner;

	if (!principal_current(&p) || !own_restricted(&p) || (owner = p.owner) == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(DatumGetTextPP(datumCopy(PointerGetDatum(owner), false, -1)));
}

/*
 * apikey_internal.acting_tenant_id() -> the tenant of a caller on a tenant's side (an
 * authenticated key, or act_for), NULL for anyone else.  Public: it
 * answers only about the caller's own transaction.
 */
PG_FUNCTION_INFO_V1(acting_tenant_id);
Datum
acting_tenant_id(PG_FUNCTION_ARGS)
{
	Principal	p;

	if (!principal_current(&p))
		PG_RETURN_NULL();
	PG_RETURN_INT64(p.tenant_id);
}

/* apikey_internal.acting_tenant() -> that tenant's slug, or NULL */
PG_FUNCTION_INFO_V1(acting_tenant);
Datum
acting_tenant(PG_FUNCTION_ARGS)
{
	Principal	p;

	if (!principal_current(&p))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(DatumGetTextPP(datumCopy(PointerGetDatum(p.tenant), false, -1)));
}

/*
 * apikey_internal.sees(tenant_id, environment, owner) -> may a caller on a tenant's side
 * read this key's row of a listing (key_list, audit_log, usage_stats, ...):
 * its tenant, with apikey:keys:read, an environment it covers (NULL: not
 * known, for callers not restricted to environments only), and with
 * apikey:keys:own an owner that is itself.  The listings ask is_admin()
 * instead for everyone else.  Public: it answers only about the caller.
 */
PG_FUNCTION_INFO_V1(sees);
Datum
sees(PG_FUNCTION_ARGS)
{
	Principal	p;
	text	   *environment = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	text	   *owner = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);

	if (PG_ARGISNULL(0) || !principal_current(&p))
		PG_RETURN_BOOL(false);
	if (PG_GETARG_INT64(0) != p.tenant_id || !holds_right(&p, read_right))
		PG_RETURN_BOOL(false);
	if (environment == NULL ? (p.environment != NULL || p.environments != NULL)
		: !covers_environment(&p, environment))
		PG_RETURN_BOOL(false);
	if (own_restricted(&p) &&
		(owner == NULL || p.owner == NULL || !text_equals(owner, p.owner)))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(true);
}

/*
 * apikey_internal.sees_tenant(tenant_id) -> may a caller on a tenant's side read this
 * tenant's rows of a listing that are about no key (the tenant, its key
 * roles, its vendor fields, its events): its tenant, with apikey:keys:read.
 */
PG_FUNCTION_INFO_V1(sees_tenant);
Datum
sees_tenant(PG_FUNCTION_ARGS)
{
	Principal	p;

	PG_RETURN_BOOL(!PG_ARGISNULL(0) && principal_current(&p) &&
				   PG_GETARG_INT64(0) == p.tenant_id && holds_right(&p, read_right));
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
