/*
 * identity.c
 *		The identity a transaction was authenticated as, for row-level
 *		security policies.
 *
 * authenticate() is the only writer.  The identity lives in backend memory,
 * never in a setting, so SET and set_config cannot forge it.  It behaves
 * like SET LOCAL: it ends with the transaction (commit, rollback or
 * prepare), and a rolled-back savepoint restores what was there before it.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "apikey.h"
#include "delegation.h"
#include "identity.h"
#include "keyid.h"
#include "scopes.h"
#include "verify.h"
#include "xactstack.h"

/* A copy of a varlena in cxt (NULL stays NULL). */
static void *
copy_varlena(MemoryContext cxt, const void *ptr)
{
	void	   *copy;

	if (ptr == NULL)
		return NULL;
	copy = MemoryContextAlloc(cxt, VARSIZE(ptr));
	memcpy(copy, ptr, VARSIZE(ptr));
	return copy;
}

/* Free what an identity points to (not the identity itself). */
static void
identity_clear(XactStackEntry *entry)
{
	Identity   *id = (Identity *) entry;

	pfree(id->tenant);
	pfree(id->environment);
	pfree(id->scopes);
	if (id->resources)
		pfree(id->resources);
	if (id->owner)
		pfree(id->owner);
	if (id->meta)
		pfree(id->meta);
}

static XactStack identities = {NULL, sizeof(Identity), identity_clear};

/*
 * Make a verified key the identity.  A second authenticate in the same
 * (sub)transaction replaces the identity in place, so memory stays bounded
 * however often a transaction authenticates; one in a new subtransaction
 * stacks, so that rolling back to a savepoint restores what was before.
 */
static void
identity_set(const VerifyResult *result)
{
	Identity   *id;

	/* refuses a key terminated since it was read, or a terminated transaction */
	killswitch_authenticated(result->key.key_id);
	id = (Identity *) xactstack_set(&identities);
	id->key_id = result->key.key_id;
	id->tenant_id = result->key.tenant_id;
	id->tenant = copy_varlena(TopMemoryContext, result->key.tenant);
	id->environment = copy_varlena(TopMemoryContext, result->key.environment);
	id->scopes = copy_varlena(TopMemoryContext, result->key.scopes);
	id->resources = copy_varlena(TopMemoryContext, result->key.resources);
	id->owner = copy_varlena(TopMemoryContext, result->key.owner);
	id->meta = copy_varlena(TopMemoryContext, result->key.meta);
}

const Identity *
identity_current(void)
{
	return (const Identity *) identities.top;
}

void
identity_init(void)
{
	xactstack_register(&identities);
}

/*
 * authenticate(api_key, scope default null, cost default 1, client_ip default null)
 *		-> verification row
 * Verify in the environment of apikey.environment and, when valid, make the
 * key the identity of the current transaction; otherwise raise an error.
 */
PG_FUNCTION_INFO_V1(authenticate);
Datum
authenticate(PG_FUNCTION_ARGS)
{
	VerifyRequest request;
	VerifyResult result;
	static bool warned = false;

	/* one principal per transaction: a member (act_for) or a key */
	if (delegation_current() != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this transaction acts for a member"),
				 errdetail("A transaction acts for a member or as a key, not both."),
				 errhint("Authenticate in a transaction of its own."),
				 errhidestmt(true), errhidecontext(true)));
	/*
	 * Without apikey.environment, a preview key would authenticate in
	 * production: refuse when the operator asks for it, warn otherwise.
	 */
	if (apikey_default_environment == NULL || apikey_default_environment[0] == '\0')
	{
		if (apikey_require_environment)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("apikey.environment is not set"),
					 errdetail("apikey.require_environment is on: authenticate accepts keys of one environment only."),
					 errhint("Set it for the application's role, e.g. ALTER ROLE web_app SET apikey.environment = 'production'."),
					 errhidestmt(true), errhidecontext(true)));
		if (!warned)
		{
			warned = true;
			ereport(WARNING,
					(errmsg("apikey.environment is not set: authenticate accepts keys of every environment"),
					 errhint("Set it for the application's role, e.g. ALTER ROLE web_app SET apikey.environment = 'production'."),
					 errhidestmt(true), errhidecontext(true)));
		}
	}
	verify_request_from_args(fcinfo, 0, -1, 1, -1, 2, 3, &request);
	verify_key(&request, &result);
	/*
	 * The statement, and the statement of a calling function (CONTEXT), may
	 * hold the key: keep both out of the server log.
	 */
	if (result.status == VS_RATE_LIMITED)
		ereport(ERROR,
				(errcode(ERRCODE_APIKEY_RATE_LIMITED),
				 errmsg("API key rejected: %s", verify_status_name(result.status)),
				 result.has_retry_after ?
				 errdetail("The key's verification status is \"rate_limited\"; retry after %lld seconds.",
						   (long long) ((result.retry_after_us + USECS_PER_SEC - 1) / USECS_PER_SEC)) :
				 errdetail("The key's verification status is \"rate_limited\"; no time to retry is known (the cost exceeds a limit, or this server's rate-limit table is full)."),
				 errhidestmt(true), errhidecontext(true)));
	if (result.status == VS_USAGE_EXCEEDED)
		ereport(ERROR,
				(errcode(ERRCODE_APIKEY_USAGE_EXCEEDED),
				 errmsg("API key rejected: %s", verify_status_name(result.status)),
				 errdetail("The key's verification status is \"usage_exceeded\": %lld credits left, the request costs %d.",
						   (long long) result.remaining, request.cost),
				 errhidestmt(true), errhidecontext(true)));
	if (result.status != VS_VALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("API key rejected: %s", verify_status_name(result.status)),
				 errdetail("The key's verification status is \"%s\".",
						   verify_status_name(result.status)),
				 errhidestmt(true), errhidecontext(true)));
	identity_set(&result);
	PG_RETURN_DATUM(verify_result_datum(fcinfo, &result));
}

/* current_tenant() -> the authenticated tenant's slug, or NULL */
PG_FUNCTION_INFO_V1(current_tenant);
Datum
current_tenant(PG_FUNCTION_ARGS)
{
	const Identity *identity = identity_current();

	if (identity == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(copy_varlena(CurrentMemoryContext, identity->tenant));
}

/* current_tenant_id() -> the authenticated tenant's id, or NULL */
PG_FUNCTION_INFO_V1(current_tenant_id);
Datum
current_tenant_id(PG_FUNCTION_ARGS)
{
	const Identity *identity = identity_current();

	if (identity == NULL)
		PG_RETURN_NULL();
	PG_RETURN_INT64(identity->tenant_id);
}

/* current_key_id() -> the authenticated key's id, or NULL */
PG_FUNCTION_INFO_V1(current_key_id);
Datum
current_key_id(PG_FUNCTION_ARGS)
{
	const Identity *identity = identity_current();

	if (identity == NULL)
		PG_RETURN_NULL();
	PG_RETURN_KEYID(identity->key_id);
}

/* current_environment() -> the authenticated key's environment, or NULL */
PG_FUNCTION_INFO_V1(current_environment);
Datum
current_environment(PG_FUNCTION_ARGS)
{
	const Identity *identity = identity_current();

	if (identity == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(copy_varlena(CurrentMemoryContext, identity->environment));
}

/* current_scopes() -> the authenticated key's scopes, or NULL */
PG_FUNCTION_INFO_V1(current_scopes);
Datum
current_scopes(PG_FUNCTION_ARGS)
{
	const Identity *identity = identity_current();

	if (identity == NULL)
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(copy_varlena(CurrentMemoryContext, identity->scopes));
}

/*
 * current_resource() -> the resource the key is restricted to, when it is
 * restricted to exactly one; NULL otherwise (current_resources() lists them)
 */
PG_FUNCTION_INFO_V1(current_resource);
Datum
current_resource(PG_FUNCTION_ARGS)
{
	const Identity *identity = identity_current();
	int			index;
	bool		isnull;
	Datum		d;

	if (identity == NULL || identity->resources == NULL ||
		ArrayGetNItems(ARR_NDIM(identity->resources), ARR_DIMS(identity->resources)) != 1)
		PG_RETURN_NULL();
	index = ARR_LBOUND(identity->resources)[0];
	d = array_get_element(PointerGetDatum(identity->resources), 1, &index,
						  -1, -1, false, TYPALIGN_INT, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(copy_varlena(CurrentMemoryContext, DatumGetPointer(d)));
}

/* current_resources() -> the resources the key is restricted to, or NULL */
PG_FUNCTION_INFO_V1(current_resources);
Datum
current_resources(PG_FUNCTION_ARGS)
{
	const Identity *identity = identity_current();

	if (identity == NULL || identity->resources == NULL)
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(copy_varlena(CurrentMemoryContext, identity->resources));
}

static bool
identity_has_scope(text *scope)
{
	const Identity *identity = identity_current();

	return identity != NULL &&
		scopes_cover(identity->scopes, VARDATA_ANY(scope), VARSIZE_ANY_EXHDR(scope));
}

/* has_scope(scope) -> does the authenticated key hold (or cover) scope? */
PG_FUNCTION_INFO_V1(has_scope);
Datum
has_scope(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(identity_has_scope(PG_GETARG_TEXT_PP(0)));
}

/*
 * can_access(resource, scope) -> may the authenticated key use scope on
 * resource?  A key restricted to resources reaches those only ("type:*"
 * covers every id of the type).
 */
PG_FUNCTION_INFO_V1(can_access);
Datum
can_access(PG_FUNCTION_ARGS)
{
	const Identity *identity = identity_current();
	text	   *resource = PG_GETARG_TEXT_PP(0);

	if (!identity_has_scope(PG_GETARG_TEXT_PP(1)))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(identity->resources == NULL ||
				   resources_cover(identity->resources, resource));
}

/* current_owner() -> the authenticated key's owner, or NULL */
PG_FUNCTION_INFO_V1(current_owner);
Datum
current_owner(PG_FUNCTION_ARGS)
{
	const Identity *identity = identity_current();

	if (identity == NULL || identity->owner == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(copy_varlena(CurrentMemoryContext, identity->owner));
}

/* current_key_meta() -> the authenticated key's metadata, or NULL */
PG_FUNCTION_INFO_V1(current_key_meta);
Datum
current_key_meta(PG_FUNCTION_ARGS)
{
	const Identity *identity = identity_current();

	if (identity == NULL || identity->meta == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(copy_varlena(CurrentMemoryContext, identity->meta));
}
