/*
 * delegation.c
 *		The tenant member a transaction acts for: the application's
 *		dashboard role, after its own sign-in check, calls act_for once per
 *		transaction, and every management function and listing then acts
 *		within that tenant, those environments and those rights only (the
 *		rule is authz.c's, the same as for tenant administrators' keys).
 *
 * Like the identity, the delegation lives in backend memory, never in a
 * setting, so SET and set_config cannot forge it, and it ends with the
 * transaction (commit, rollback or prepare): the next client of a
 * transaction-pooled connection never inherits it.  Unlike the identity it
 * is not undone by rolling back to a savepoint, and it is set at most once
 * per transaction: nothing later in the transaction widens it or swaps it
 * for another tenant.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "apikey.h"
#include "delegation.h"
#include "identity.h"

static Delegation *delegation = NULL;

static void *
copy_varlena(const void *ptr)
{
	void	   *copy;

	if (ptr == NULL)
		return NULL;
	copy = MemoryContextAlloc(TopMemoryContext, VARSIZE(ptr));
	memcpy(copy, ptr, VARSIZE(ptr));
	return copy;
}

const Delegation *
delegation_current(void)
{
	return delegation;
}

static void
delegation_end(void)
{
	Delegation *d = delegation;

	if (d == NULL)
		return;
	delegation = NULL;
	pfree(d->tenant);
	pfree(d->actor);
	pfree(d->rights);
	if (d->environments)
		pfree(d->environments);
	pfree(d);
}

static void
delegation_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			delegation_end();
			break;
		default:
			break;
	}
}

void
delegation_init(void)
{
	RegisterXactCallback(delegation_xact_callback, NULL);
}

/*
 * apikey_internal.act_for(tenant_id, tenant, actor, rights, environments)
 *		Act for a member of the tenant until the transaction ends.  Called
 *		by act_for, which checks its arguments first (the tenant and the
 *		environments exist, the rights are known words, the actor is a
 *		label).  Refused (55000) when the transaction already acts for a
 *		member or authenticated a key: a transaction has one principal.
 */
PG_FUNCTION_INFO_V1(act_for);
Datum
act_for(PG_FUNCTION_ARGS)
{
	Delegation *d;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant, actor and rights must not be null")));
	if (!IsTransactionBlock())
		ereport(WARNING,
				(errmsg("act_for outside a transaction block ends with its statement"),
				 errhint("Call it after BEGIN, in the transaction of the member's request.")));
	if (delegation != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this transaction already acts for a member of tenant %s",
						text_to_cstring(delegation->tenant)),
				 errdetail("act_for is called once per transaction; what it allows cannot be changed until the transaction ends."),
				 errhint("Start a new transaction to act for someone else.")));
	if (identity_current() != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this transaction authenticated a key"),
				 errdetail("A transaction acts for a member or as a key, not both."),
				 errhint("Call act_for in a transaction of its own.")));

	d = MemoryContextAllocZero(TopMemoryContext, sizeof(Delegation));
	d->tenant_id = PG_GETARG_INT64(0);
	d->tenant = copy_varlena(PG_GETARG_TEXT_P(1));
	d->actor = copy_varlena(PG_GETARG_TEXT_P(2));
	d->rights = copy_varlena(PG_GETARG_ARRAYTYPE_P(3));
	d->environments = PG_ARGISNULL(4) ? NULL : copy_varlena(PG_GETARG_ARRAYTYPE_P(4));
	delegation = d;
	PG_RETURN_VOID();
}
