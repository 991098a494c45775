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
 *
 * Events are best-effort and never stop a change: NOTIFY fails the commit
 * (54000) when the server's queue is full, which any role that may connect
 * can bring about (LISTEN, stay in a transaction, notify), so a
 * transaction's events are queued only when the queue, with them, stays
 * below apikey.events_max_queue_usage; otherwise they are dropped, counted
 * (events_dropped(), with shared memory) and a warning says so.  The check
 * is made at pre-commit, just before PostgreSQL queues them; the margin
 * left (10% of the queue, 8 GB by default) is more than others can add in
 * between.
 * Anyone may also notify on the channel: the event_id names the audit row
 * a consumer looks up to tell a real event from a forged one.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/slru.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "pg_compat.h"
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

/*
 * The NOTIFY queue (async.c): 8 GB by default, max_notify_queue_pages from
 * 17 (pg_compat.h); each notification takes a header, the channel and the
 * payload, aligned.
 */
#define NOTIFY_QUEUE_BYTES (AK_NOTIFY_QUEUE_PAGES * BLCKSZ)
#define NOTIFY_ENTRY_OVERHEAD (16 + sizeof(EVENTS_CHANNEL) + 1 + MAXIMUM_ALIGNOF)

static double events_max_queue_usage = 0.9;

/* Events dropped since the server started (with shared memory only). */
typedef struct EventsShared
{
	pg_atomic_uint64 dropped;
} EventsShared;

static EventsShared *events_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
events_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(EventsShared));
}

static void
events_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	events_shared = ShmemInitStruct("apikey events", sizeof(EventsShared), &found);
	if (!found)
		pg_atomic_init_u64(&events_shared->dropped, 0);
	LWLockRelease(AddinShmemInitLock);
}

/* Queue the transaction's events if the NOTIFY queue has room for them. */
static void
send_pending(void)
{
	ListCell   *lc;
	double		bytes = 0;
	double		usage;

	foreach(lc, pending)
		bytes += strlen(((PendingEvent *) lfirst(lc))->payload) + NOTIFY_ENTRY_OVERHEAD;
	usage = DatumGetFloat8(DirectFunctionCall1(pg_notification_queue_usage, (Datum) 0));
	if (usage + bytes / NOTIFY_QUEUE_BYTES < events_max_queue_usage)
	{
		foreach(lc, pending)
			Async_Notify(EVENTS_CHANNEL, ((PendingEvent *) lfirst(lc))->payload);
		return;
	}
	if (events_shared != NULL)
		pg_atomic_fetch_add_u64(&events_shared->dropped, list_length(pending));
	ereport(WARNING,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg_plural("%d apikey event was not sent: the NOTIFY queue is %.1f%% full",
						   "%d apikey events were not sent: the NOTIFY queue is %.1f%% full",
						   list_length(pending), list_length(pending), usage * 100),
			 errdetail("Events are best-effort: the change commits without them, and audit_log has them (apikey.events_max_queue_usage is %g).",
					   events_max_queue_usage),
			 errhint("A session that listens and stays in a transaction holds the queue: see pg_stat_activity.")));
}

static void
events_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (pending != NIL)
				send_pending();
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
	DefineCustomRealVariable("apikey.events_max_queue_usage",
							 "Events are sent only while the NOTIFY queue, with them, stays below this fraction.",
							 "Above it a change commits without its events (they stay in audit_log), counted by apikey.events_dropped().",
							 &events_max_queue_usage,
							 0.9, 0.0, 1.0,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	RegisterXactCallback(events_xact_callback, NULL);
	RegisterSubXactCallback(events_subxact_callback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = events_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = events_shmem_startup;
}

/*
 * events_dropped() -> events not sent since the server started because the
 * NOTIFY queue was too full; NULL without shared_preload_libraries
 */
PG_FUNCTION_INFO_V1(events_dropped);
Datum
events_dropped(PG_FUNCTION_ARGS)
{
	if (events_shared == NULL)
		PG_RETURN_NULL();
	PG_RETURN_INT64((int64) pg_atomic_read_u64(&events_shared->dropped));
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

/* apikey_internal.notify_event(): AFTER INSERT row trigger on apikey.audit */
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
				 errmsg("apikey_internal.notify_event() must be called as a row trigger on insert")));
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
