/*
 * actor.c
 *		The human behind a change: a label of the current transaction
 *		(set_actor), recorded in the audit trail and as the creator of keys.
 *
 * The label lives in backend memory, like the identity, and behaves like
 * SET LOCAL: it ends with the transaction (commit, rollback or prepare), so
 * it never reaches the next client of a transaction-pooled connection, and
 * rolling back to a savepoint restores the label in force before it.  It
 * labels and grants nothing: what a change may do is decided by the calling
 * role and the authenticated key, whatever the label says.  A transaction
 * acting for a member (act_for) is labelled with the member, which
 * set_actor may not change.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "pg_compat.h"
#include "delegation.h"
#include "validate.h"

/* The longest label, in characters (that of a key name). */
#define MAX_ACTOR 200

typedef struct Actor
{
	struct Actor *outer;		/* the label in force before this one */
	SubTransactionId subid;		/* subtransaction that set it */
	text	   *label;			/* NULL: cleared */
} Actor;

static Actor *actor = NULL;

static void
actor_pop(void)
{
	Actor	   *a = actor;

	actor = a->outer;
	if (a->label)
		pfree(a->label);
	pfree(a);
}

static void
actor_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			while (actor != NULL)
				actor_pop();
			break;
		default:
			break;
	}
}

static void
actor_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			while (actor != NULL && actor->subid == mySubid)
				actor_pop();
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			/* the parent takes over; if it had one, the newer one replaces it */
			if (actor != NULL && actor->subid == mySubid)
			{
				actor->subid = parentSubid;
				if (actor->outer != NULL && actor->outer->subid == parentSubid)
				{
					Actor	   *replaced = actor->outer;

					actor->outer = replaced->outer;
					if (replaced->label)
						pfree(replaced->label);
					pfree(replaced);
				}
			}
			break;
		default:
			break;
	}
}

/*
 * set_actor(actor text)
 *		Label the current transaction's changes with the human behind them
 *		(e.g. the application's signed-in user); NULL clears the label.  A
 *		second call in the same (sub)transaction replaces the label in
 *		place; one in a savepoint stacks, so that rolling back to the
 *		savepoint restores the label before it.
 */
PG_FUNCTION_INFO_V1(set_actor);
Datum
set_actor(PG_FUNCTION_ARGS)
{
	static bool callbacks_registered = false;
	SubTransactionId subid = GetCurrentSubTransactionId();
	text	   *label = NULL;
	Actor	   *a;

	if (delegation_current() != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this transaction acts for a member, who is its actor"),
				 errdetail("act_for names the actor; it cannot be changed until the transaction ends.")));
	if (!PG_ARGISNULL(0))
	{
		/* a name: at most MAX_ACTOR characters, no control characters, not blank */
		text	   *checked = DatumGetTextPP(DirectFunctionCall4(checked_label,
																 CStringGetTextDatum("actor"),
																 PG_GETARG_DATUM(0),
																 Int32GetDatum(MAX_ACTOR),
																 BoolGetDatum(true)));

		label = MemoryContextAlloc(TopMemoryContext, VARSIZE_ANY_EXHDR(checked) + VARHDRSZ);
		SET_VARSIZE(label, VARSIZE_ANY_EXHDR(checked) + VARHDRSZ);
		memcpy(VARDATA(label), VARDATA_ANY(checked), VARSIZE_ANY_EXHDR(checked));
	}
	/* registered on first use: a backend that never labels pays nothing */
	if (!callbacks_registered)
	{
		RegisterXactCallback(actor_xact_callback, NULL);
		RegisterSubXactCallback(actor_subxact_callback, NULL);
		callbacks_registered = true;
	}
	if (actor != NULL && actor->subid == subid)
	{
		a = actor;
		if (a->label)
			pfree(a->label);
	}
	else
	{
		a = MemoryContextAllocZero(TopMemoryContext, sizeof(Actor));
		a->outer = actor;
		a->subid = subid;
		actor = a;
	}
	a->label = label;
	PG_RETURN_VOID();
}

/*
 * apikey_internal.actor() -> the member this transaction acts for (act_for), else the
 * label set_actor gave it, or NULL
 */
PG_FUNCTION_INFO_V1(current_actor);
Datum
current_actor(PG_FUNCTION_ARGS)
{
	const Delegation *d = delegation_current();
	text	   *copy;

	if (d != NULL)
	{
		copy = palloc(VARSIZE(d->actor));
		memcpy(copy, d->actor, VARSIZE(d->actor));
		PG_RETURN_TEXT_P(copy);
	}
	if (actor == NULL || actor->label == NULL)
		PG_RETURN_NULL();
	copy = palloc(VARSIZE(actor->label));
	memcpy(copy, actor->label, VARSIZE(actor->label));
	PG_RETURN_TEXT_P(copy);
}
