/*
 * events.c
 *		Every audit event is also sent, at commit, on the channel
 *		apikey_events.
 *
 * A row trigger on apikey.audit notes the event; when the transaction
 * commits, its events are queued as notifications just before the commit
 * (NOTIFY semantics: delivered when it commits, never when it or the
 * savepoint that wrote them rolls back).  Queued at commit rather than by
 * the trigger, so that a transaction that changes keys can still be
 * prepared (PREPARE TRANSACTION refuses a pending NOTIFY); the events of a
 * prepared transaction are not sent.
 * Anyone who may connect may LISTEN, so the payload holds ids only:
 *	{"event_id": 42, "at": "2026-11-23T08:11:54.838677+00:00",
 *	 "action": "revoked", "tenant_id": 1, "key_id": "2v2HJq4vPjs"}
 * (key_id null for tenant events).  Written in C because every key
 * creation pays for it: as a PL/pgSQL trigger it cost several times as much.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "apikey.h"
#include "keyid.h"
#include "keytext.h"

#define EVENTS_CHANNEL "apikey_events"

/* An event noted by this transaction, to be sent at its commit. */
typedef struct PendingEvent
{
	SubTransactionId subid;		/* the subtransaction that wrote it */
	char	   *payload;
} PendingEvent;

static List *pending = NIL;		/* in TopTransactionContext */

static void
events_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			foreach(lc, pending)
				Async_Notify(EVENTS_CHANNEL, ((PendingEvent *) lfirst(lc))->payload);
			pending = NIL;
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PRE_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			pending = NIL;
			break;
		default:
			break;
	}
}

static void
events_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	foreach(lc, pending)
	{
		PendingEvent *e = lfirst(lc);

		if (e->subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			e->subid = parentSubid;
		else if (event == SUBXACT_EVENT_ABORT_SUB)
			pending = foreach_delete_current(pending, lc);
	}
}

void
events_init(void)
{
	RegisterXactCallback(events_xact_callback, NULL);
	RegisterSubXactCallback(events_subxact_callback, NULL);
}

/* The column's value, or raise when the table lacks it or it is NULL. */
static Datum
column(HeapTuple tuple, TupleDesc desc, const char *name, bool *isnull)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return heap_getattr(tuple, i + 1, desc, isnull);
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column apikey.audit.%s is missing", name)));
	return (Datum) 0;
}

/* _notify_event(): AFTER INSERT row trigger on apikey.audit */
PG_FUNCTION_INFO_V1(notify_event);
Datum
notify_event(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleDesc	desc;
	StringInfoData payload;
	bool		isnull;
	Datum		d;
	char		at[MAXDATELEN + 1];

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_notify_event() must be called as a row trigger on insert")));
	tuple = trigdata->tg_trigtuple;
	desc = RelationGetDescr(trigdata->tg_relation);

	initStringInfo(&payload);
	d = column(tuple, desc, "event_id", &isnull);
	appendStringInfo(&payload, "{\"event_id\": " INT64_FORMAT, isnull ? 0 : DatumGetInt64(d));
	d = column(tuple, desc, "at", &isnull);
	appendStringInfoString(&payload, ", \"at\": ");
	if (isnull)
		appendStringInfoString(&payload, "null");
	else
		appendStringInfo(&payload, "\"%s\"", JsonEncodeDateTime(at, d, TIMESTAMPTZOID, NULL));
	d = column(tuple, desc, "action", &isnull);
	appendStringInfoString(&payload, ", \"action\": ");
	if (isnull)
		appendStringInfoString(&payload, "null");
	else
		escape_json(&payload, TextDatumGetCString(d));
	d = column(tuple, desc, "tenant_id", &isnull);
	appendStringInfo(&payload, ", \"tenant_id\": " INT64_FORMAT, isnull ? 0 : DatumGetInt64(d));
	d = column(tuple, desc, "key_id", &isnull);
	if (isnull)
		appendStringInfoString(&payload, ", \"key_id\": null}");
	else
	{
		char		id[AK_ID_LEN + 1];

		ak_id_encode(DatumGetKeyId(d), id);
		id[AK_ID_LEN] = '\0';
		appendStringInfo(&payload, ", \"key_id\": \"%s\"}", id);
	}
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
		PendingEvent *e = palloc(sizeof(PendingEvent));

		e->subid = GetCurrentSubTransactionId();
		e->payload = pstrdup(payload.data);
		pending = lappend(pending, e);
		MemoryContextSwitchTo(old);
	}
	pfree(payload.data);
	return PointerGetDatum(NULL);
}
