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

#include "utils/builtins.h"
#include "utils/memutils.h"

#include "pg_compat.h"
#include "delegation.h"
#include "validate.h"
#include "xactstack.h"

/* The longest label, in characters (that of a key name). */
#define MAX_ACTOR 200

typedef struct Actor
{
	XactStackEntry level;		/* the label before it, the subtransaction */
	text	   *label;			/* NULL: cleared */
} Actor;

static void
actor_clear(XactStackEntry *entry)
{
	Actor	   *a = (Actor *) entry;

	if (a->label)
		pfree(a->label);
}

static XactStack actors = {NULL, sizeof(Actor), actor_clear};

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
	text	   *label = NULL;

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
		xactstack_register(&actors);
		callbacks_registered = true;
	}
	((Actor *) xactstack_set(&actors))->label = label;
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
	const Actor *a;
	text	   *copy;

	if (d != NULL)
	{
		copy = palloc(VARSIZE(d->actor));
		memcpy(copy, d->actor, VARSIZE(d->actor));
		PG_RETURN_TEXT_P(copy);
	}
	a = (const Actor *) actors.top;
	if (a == NULL || a->label == NULL)
		PG_RETURN_NULL();
	copy = palloc(VARSIZE(a->label));
	memcpy(copy, a->label, VARSIZE(a->label));
	PG_RETURN_TEXT_P(copy);
}
