/*
 * events.c
 *		Every audit event is also sent, after its commit, on the channel
 *		apikey_events.
 *
 * A row trigger on apikey.audit takes each event.  With
 * shared_preload_libraries it only queues the event's id in
 * apikey.event_queue, a row of the changing transaction like the audit row
 * itself: committed with it, gone with it (or with the savepoint that wrote
 * it) when it rolls back.  When the transaction has committed, it wakes the
 * event relay of its database (relay.c), a background worker that sends the
 * queued events in its own transactions.  So a key change takes no NOTIFY
 * lock: PostgreSQL's NOTIFY holds one lock for the whole cluster from its
 * pre-commit to the end of the commit, synchronous replication wait
 * included, and every key change would wait for the one before it.  A
 * prepared transaction's events are sent when it is committed.
 *
 * Without shared_preload_libraries there is no relay: the transaction sends
 * its events itself, queued as notifications just before its commit (not
 * by the trigger, so that a transaction that changes keys can still be
 * prepared: PREPARE TRANSACTION refuses a pending NOTIFY; the events of a
 * prepared transaction are then not sent), and takes that lock.  So does a
 * database whose extension is not updated to 0.4.0 (no event_queue).
 *
 * Anyone who may connect may LISTEN, so the payload holds ids only:
 *	{"event_id": 42, "at": "2026-11-23T08:11:54.838677+00:00",
 *	 "action": "revoked", "tenant_id": 1, "key_id": "2v2HJq4vPjs"}
 * (key_id null for tenant events).  Written in C because every key
 * creation pays for it: as a PL/pgSQL trigger it cost several times as much.
 *
 * Events are best-effort and never stop a change: NOTIFY fails (54000) when
 * the server's queue is full, which any role that may connect can bring
 * about (LISTEN, stay in a transaction, notify), so events are queued only
 * when the queue, with them, stays below apikey.events_max_queue_usage;
 * otherwise they are dropped, counted (events_dropped(), with shared memory)
 * and a warning says so (the relay's in the server log).  The check is made
 * just before PostgreSQL queues them; the margin left (10% of the queue,
 * 8 GB by default) is more than others can add in between.
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
#include "executor/spi.h"
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
#include "utils/lsyscache.h"
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

/* This transaction queued events for the relay: wake it at commit. */
static bool queued = false;

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

/*
 * Send these payloads (char *) on the channel at this transaction's commit,
 * if the NOTIFY queue has room for them; else drop and count them.
 */
void
events_send(List *payloads)
{
	ListCell   *lc;
	double		bytes = 0;
	double		usage;

	foreach(lc, payloads)
		bytes += strlen((char *) lfirst(lc)) + NOTIFY_ENTRY_OVERHEAD;
	usage = DatumGetFloat8(DirectFunctionCall1(pg_notification_queue_usage, (Datum) 0));
	if (usage + bytes / NOTIFY_QUEUE_BYTES < events_max_queue_usage)
	{
		foreach(lc, payloads)
			Async_Notify(EVENTS_CHANNEL, (char *) lfirst(lc));
		return;
	}
	if (events_shared != NULL)
		pg_atomic_fetch_add_u64(&events_shared->dropped, list_length(payloads));
	ereport(WARNING,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg_plural("%d apikey event was not sent: the NOTIFY queue is %.1f%% full",
						   "%d apikey events were not sent: the NOTIFY queue is %.1f%% full",
						   list_length(payloads), list_length(payloads), usage * 100),
			 errdetail("Events are best-effort: the change commits without them, and audit_log has them (apikey.events_max_queue_usage is %g).",
					   events_max_queue_usage),
			 errhint("A session that listens and stays in a transaction holds the queue: see pg_stat_activity.")));
}

/* Without the relay: queue the transaction's events just before its commit. */
static void
send_pending(void)
{
	List	   *payloads = NIL;
	ListCell   *lc;

	foreach(lc, pending)
		payloads = lappend(payloads, ((PendingEvent *) lfirst(lc))->payload);
	events_send(payloads);
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
			if (queued)
				relay_wake();
			pending = NIL;
			queued = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PRE_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			pending = NIL;
			queued = false;
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
	return heap_getattr(tuple, apikey_column(desc, "audit", name), desc, isnull);
}

/* An audit row's payload, in the format of the header comment. */
char *
events_payload(HeapTuple tuple, TupleDesc desc)
{
	StringInfoData payload;
	bool		isnull;
	Datum		d;
	char		at[MAXDATELEN + 1];

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
	return payload.data;
}

/* The plan that queues an event for the relay, kept for the session. */
static SPIPlanPtr queue_plan = NULL;

/*
 * Queue the event for the relay, as the owner of the audit table (the
 * owner of event_queue); false when there is no relay (no shared memory)
 * or no event_queue (an extension not updated to 0.4.0).
 */
static bool
queue_for_relay(Relation audit, int64 event_id)
{
	Oid			queue;
	Oid			save_userid;
	int			save_sec_context;
	Datum		args[1];
	int			ret;

	if (events_shared == NULL)
		return false;
	queue = get_relname_relid("event_queue", RelationGetNamespace(audit));
	if (!OidIsValid(queue))
		return false;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (queue_plan == NULL)
	{
		Oid			argtypes[1] = {INT8OID};
		SPIPlanPtr	plan = SPI_prepare("INSERT INTO apikey.event_queue (event_id) VALUES ($1)",
									   1, argtypes);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the statement that queues an apikey event");
		queue_plan = plan;
	}
	args[0] = Int64GetDatum(event_id);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(audit->rd_rel->relowner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	ret = SPI_execute_plan(queue_plan, args, NULL, false, 0);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not queue an apikey event: %s", SPI_result_code_string(ret));
	SPI_finish();
	return true;
}

/* apikey_internal.notify_event(): AFTER INSERT row trigger on apikey.audit */
PG_FUNCTION_INFO_V1(notify_event);
Datum
notify_event(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleDesc	desc;
	bool		isnull;
	Datum		id;
	char	   *payload;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_notify_event() must be called as a row trigger on insert")));
	tuple = trigdata->tg_trigtuple;
	desc = RelationGetDescr(trigdata->tg_relation);

	id = column(tuple, desc, "event_id", &isnull);
	if (!isnull && queue_for_relay(trigdata->tg_relation, DatumGetInt64(id)))
	{
		queued = true;
		return PointerGetDatum(NULL);
	}
	payload = events_payload(tuple, desc);
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
		PendingEvent *e = palloc(sizeof(PendingEvent));

		e->subid = GetCurrentSubTransactionId();
		e->payload = pstrdup(payload);
		pending = lappend(pending, e);
		MemoryContextSwitchTo(old);
	}
	pfree(payload);
	return PointerGetDatum(NULL);
}
