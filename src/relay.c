/*
 * relay.c
 *		The event relay: background workers that send the audit events key
 *		changes queued, after their commit, and record keys passing their
 *		expiry time.
 *
 * A key change queues its events' ids in apikey.event_queue (events.c) and,
 * once committed, wakes the relay of its database: it sets the latch of the
 * relay running there, or asks the launcher to start one.  The relay, in
 * its own transaction, takes its tables' locks without waiting (it never
 * waits for one while holding another, so DROP EXTENSION cannot deadlock
 * with it) and the one row of apikey.event_relay (SKIP LOCKED: one relay at
 * a time per database; held, it looks again 100 ms later), deletes the
 * oldest queued ids, reads their audit rows and NOTIFYs their payloads in
 * event_id order, committing with synchronous_commit = local: the NOTIFY
 * commit lock is held by the relay only, briefly, and never while a key
 * change waits.  A change is visible to the relay only once its commit is
 * (after its synchronous replication wait): the events of a change rolled
 * back are never sent, those of a committed one are sent once by this
 * server.  Two changes of one key are
 * ordered by the key's row lock, and the later one's events get the later
 * ids: per key, events come in commit order.  The queue is a table, so
 * events committed but not yet sent are sent after a restart, or by the new
 * primary after a failover (which may send again what the old one had sent
 * just before).
 *
 * Expiry.  A relay also looks, at most every apikey.expiry_check_interval,
 * for keys whose expires_at has passed, not revoked, and without an
 * `expired` audit event for that expires_at: it writes one (the key's
 * expires_at in details), which is then sent like any other.  The audit row
 * is the durable marker, so each expiry is recorded once, across restarts;
 * a key whose expiry is moved and passes again gets a new event.  It looks
 * back to an hour before the last look (apikey.event_relay), so that a key
 * whose expiry was committed late is found, and never more than a week (a
 * server down longer, or a relay first run long after the install, does
 * not flood consumers with old news), at most 1000 keys per transaction;
 * expiries from before the extension was installed or updated to 0.4.0
 * are not recorded.
 *
 * Key locations.  The first relay of a database after the server started
 * notes in shared memory where every key's row is, from the primary key
 * index (keycache.c): a key's first verification on the server then finds
 * its row without descending the index.
 *
 * The launcher, a worker without a database, starts the relays: for each
 * database that a change woke, and every apikey.expiry_check_interval (10 s
 * at most) for each database where a relay found the extension; a database
 * it has not seen yet (at start, or created since) is looked at once.  A
 * relay stays while it has events to send and leaves after a second without
 * any, so that it never holds a database that someone wants to drop.  All
 * this needs shared_preload_libraries; it runs on a primary only (a standby
 * replays the queue and the audit rows; its relays start when it is
 * promoted).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "pg_compat.h"
#include "apikey.h"
#include "keycache.h"

#define RELAY_MAX_DATABASES 256
#define RELAY_BATCH 1000		/* events per transaction */
#define EXPIRY_BATCH 1000		/* expired keys per transaction */
#define RELAY_LINGER_MS 1000	/* a relay without events leaves after this */
#define LAUNCHER_ROUND_MS 10000 /* the launcher's look at every database */
#define RESTART_DELAY_MS 1000	/* between two relays of a database */

/* What the relays and the launcher know of one database. */
typedef struct RelayDatabase
{
	Oid			dbid;			/* InvalidOid: a free entry */
	int			procno;			/* its relay's, or -1 when none runs */
	bool		woken;			/* changes committed while none ran */
	bool		has_apikey;		/* the last relay found the extension */
	bool		locations_shared;	/* a relay noted its keys' locations */
	TimestampTz expiry_looked_at;	/* the last look for expired keys */
} RelayDatabase;

typedef struct RelayShared
{
	slock_t		mutex;
	int			launcher_procno;	/* -1: none */
	RelayDatabase dbs[RELAY_MAX_DATABASES];
} RelayShared;

static RelayShared *relay_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static int	expiry_check_interval = 10; /* seconds; 0: no expired events */

static void
relay_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(RelayShared));
}

static void
relay_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	relay_shared = ShmemInitStruct("apikey event relay", sizeof(RelayShared), &found);
	if (!found)
	{
		memset(relay_shared, 0, sizeof(RelayShared));
		SpinLockInit(&relay_shared->mutex);
		relay_shared->launcher_procno = -1;
		for (int i = 0; i < RELAY_MAX_DATABASES; i++)
			relay_shared->dbs[i].procno = -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* The entry of a database, made when missing and make is set (mutex held). */
static RelayDatabase *
database_entry(Oid dbid, bool make)
{
	RelayDatabase *free_entry = NULL;

	for (int i = 0; i < RELAY_MAX_DATABASES; i++)
	{
		RelayDatabase *d = &relay_shared->dbs[i];

		if (d->dbid == dbid)
			return d;
		if (free_entry == NULL && d->dbid == InvalidOid)
			free_entry = d;
	}
	if (!make || free_entry == NULL)
		return NULL;
	free_entry->dbid = dbid;
	free_entry->procno = -1;
	free_entry->woken = false;
	free_entry->has_apikey = true;	/* until a relay finds otherwise */
	free_entry->locations_shared = false;
	free_entry->expiry_looked_at = 0;
	return free_entry;
}

/*
 * This transaction committed events for the relay of its database: wake
 * it, or the launcher to start one.
 */
void
relay_wake(void)
{
	int			procno = -1;
	RelayDatabase *d;

	if (relay_shared == NULL)
		return;
	SpinLockAcquire(&relay_shared->mutex);
	d = database_entry(MyDatabaseId, true);
	if (d != NULL && d->procno >= 0)
		procno = d->procno;
	else
	{
		if (d != NULL)
			d->woken = true;
		procno = relay_shared->launcher_procno;
	}
	SpinLockRelease(&relay_shared->mutex);
	/* no entry left: the launcher's next round starts one */
	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/* ---- the relay of one database ---- */

static const char *const relay_sql =
"WITH q AS ("
"  DELETE FROM apikey.event_queue AS q"
"   WHERE q.event_id OPERATOR(pg_catalog.=) ANY (ARRAY("
"         SELECT e.event_id FROM apikey.event_queue AS e ORDER BY e.event_id LIMIT $1))"
"  RETURNING q.event_id)"
" SELECT a.event_id, a.at, a.action, a.tenant_id, a.key_id"
"   FROM q JOIN apikey.audit AS a ON a.event_id OPERATOR(pg_catalog.=) q.event_id"
"  ORDER BY a.event_id";

/*
 * Record, as expired, keys whose expires_at has passed since an hour
 * before the last look (and within a week) and that have no expired event
 * for it yet.
 */
static const char *const expiry_sql =
"INSERT INTO apikey.audit (actor_role, tenant_id, tenant, key_id, action, details)"
" SELECT CURRENT_USER, k.tenant_id, k.tenant, k.key_id, 'expired',"
"        pg_catalog.jsonb_build_object('expires_at', k.expires_at)"
"   FROM apikey.keys AS k"
"  WHERE k.expires_at IS NOT NULL AND k.revoked_at IS NULL"
"    AND k.expires_at OPERATOR(pg_catalog.>) GREATEST($1 OPERATOR(pg_catalog.-) '1 hour'::pg_catalog.interval,"
"                                               pg_catalog.now() OPERATOR(pg_catalog.-) '7 days'::pg_catalog.interval)"
"    AND k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
"    AND NOT EXISTS (SELECT FROM apikey.audit AS a"
"                     WHERE a.key_id OPERATOR(pg_catalog.=) k.key_id"
"                       AND a.action OPERATOR(pg_catalog.=) 'expired'"
"                       AND ((a.details OPERATOR(pg_catalog.->>) 'expires_at')::pg_catalog.timestamptz"
"                            OPERATOR(pg_catalog.=) k.expires_at))"
"  ORDER BY k.expires_at, k.key_id"
"  LIMIT $2";

static RelayDatabase *my_entry = NULL;

/* Leave the shared entry (the relay exits, by error too). */
static void
relay_leave(int code, Datum arg)
{
	if (my_entry == NULL)
		return;
	SpinLockAcquire(&relay_shared->mutex);
	if (my_entry->procno == AK_MY_PROC_INDEX)
		my_entry->procno = -1;
	SpinLockRelease(&relay_shared->mutex);
	my_entry = NULL;
}

#define RELAY_BUSY (-2)

/*
 * Lock the tables the relay uses, without waiting: a relay never waits
 * for a lock while it holds another (DROP EXTENSION takes them all, in its
 * own order).  RELAY_BUSY when one is taken, -1 when this database lacks
 * them, else 0.
 */
static int
relay_lock_tables(bool expiry)
{
	static const char *const names[] = {"event_relay", "event_queue", "audit", "keys"};
	LOCKMODE	modes[] = {RowShareLock, RowExclusiveLock,
		expiry ? RowExclusiveLock : AccessShareLock, AccessShareLock};
	Oid			nsp = get_namespace_oid("apikey", true);

	if (!OidIsValid(nsp))
		return -1;
	for (int i = 0; i < (int) lengthof(names); i++)
	{
		Oid			rel = get_relname_relid(names[i], nsp);

		if (!OidIsValid(rel))
			return -1;
		if (!ConditionalLockRelationOid(rel, modes[i]))
			return RELAY_BUSY;
	}
	return 0;
}

/*
 * One transaction of the relay, as the extension's owner: send queued
 * events (expiry false) or record expired keys (true).  Returns how many
 * rows it handled, -1 when the database has no relay tables, RELAY_BUSY
 * when another holds them (another relay, DROP EXTENSION).
 */
static int64
relay_transaction(bool expiry)
{
	int64		n = -1;
	Oid			owner;
	List	   *payloads = NIL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n = relay_lock_tables(expiry);
	owner = n == 0 ? apikey_extension_owner() : InvalidOid;
	if (n == 0 && !OidIsValid(owner))
		n = -1;
	if (OidIsValid(owner))
	{
		Oid			save_userid;
		int			save_sec_context;
		int			ret;

		GetUserIdAndSecContext(&save_userid, &save_sec_context);
		SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		/* one relay at a time in a database */
		ret = SPI_execute("SELECT r.expiry_checked_to FROM apikey.event_relay AS r FOR UPDATE SKIP LOCKED",
						  false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not lock apikey.event_relay: %s", SPI_result_code_string(ret));
		if (SPI_processed != 1)
			n = RELAY_BUSY;
		else if (!expiry)
		{
			Oid			argtypes[1] = {INT8OID};
			Datum		args[1] = {Int64GetDatum(RELAY_BATCH)};

			ret = SPI_execute_with_args(relay_sql, 1, argtypes, args, NULL, false, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "could not take the queued apikey events: %s", SPI_result_code_string(ret));
			n = (int64) SPI_processed;
			for (uint64 r = 0; r < SPI_processed; r++)
				payloads = lappend(payloads, events_payload(SPI_tuptable->vals[r],
															SPI_tuptable->tupdesc));
		}
		else
		{
			bool		isnull;
			Datum		since = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			Oid			argtypes[2] = {TIMESTAMPTZOID, INT8OID};
			Datum		args[2] = {since, Int64GetDatum(EXPIRY_BATCH)};

			ret = SPI_execute_with_args(expiry_sql, 2, argtypes, args, NULL, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "could not record expired keys: %s", SPI_result_code_string(ret));
			n = (int64) SPI_processed;
			if (n < EXPIRY_BATCH)
			{
				ret = SPI_execute("UPDATE apikey.event_relay SET expiry_checked_to = pg_catalog.now()",
								  false, 0);
				if (ret != SPI_OK_UPDATE)
					elog(ERROR, "could not update apikey.event_relay: %s", SPI_result_code_string(ret));
			}
		}
		SetUserIdAndSecContext(save_userid, save_sec_context);
		if (payloads != NIL)
			events_send(payloads);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return n;
}

/*
 * Send every queued event: how many, -1 when the database has no relay
 * tables, RELAY_BUSY when they are held.
 */
static int64
relay_queue(void)
{
	int64		total = 0;
	int64		n;

	do
	{
		n = relay_transaction(false);
		if (n < 0)
			return n;
		total += n;
		CHECK_FOR_INTERRUPTS();
	} while (n == RELAY_BATCH);
	return total;
}

/*
 * Once per database while the server runs: note in shared memory where
 * the rows of all keys are (keycache.c), so that a key's first
 * verification on this server finds its row without the index.  The
 * tables are locked without waiting, like the relay's others; held, the
 * next relay of the database tries again.
 */
static void
share_key_locations(void)
{
	Oid			nsp;
	Oid			keys_relid;
	bool		done = false;

	SpinLockAcquire(&relay_shared->mutex);
	done = my_entry->locations_shared;
	SpinLockRelease(&relay_shared->mutex);
	if (done)
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	nsp = get_namespace_oid("apikey", true);
	keys_relid = OidIsValid(nsp) ? get_relname_relid("keys", nsp) : InvalidOid;
	if (OidIsValid(keys_relid) && ConditionalLockRelationOid(keys_relid, AccessShareLock))
	{
		Relation	heap = table_open(keys_relid, NoLock);
		Oid			pkey;
		int64		noted = 0;

		(void) RelationGetIndexList(heap);	/* sets rd_pkindex */
		pkey = heap->rd_pkindex;
		if (OidIsValid(pkey) && ConditionalLockRelationOid(pkey, AccessShareLock))
		{
			Relation	index = index_open(pkey, NoLock);

			noted = keycache_share_index_locations(heap, index, GetActiveSnapshot());
			index_close(index, NoLock);
			done = true;
		}
		table_close(heap, NoLock);
		if (done)
			ereport(DEBUG1,
					(errmsg_internal("apikey: noted the row locations of " INT64_FORMAT " keys",
									 noted)));
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (done)
	{
		SpinLockAcquire(&relay_shared->mutex);
		my_entry->locations_shared = true;
		SpinLockRelease(&relay_shared->mutex);
	}
}

/* Is a look for expired keys due in this database?  Notes it as done. */
static bool
expiry_due(void)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		due = false;

	if (expiry_check_interval <= 0)
		return false;
	SpinLockAcquire(&relay_shared->mutex);
	if (TimestampDifferenceExceeds(my_entry->expiry_looked_at, now,
								   expiry_check_interval * 1000 - 100))
	{
		my_entry->expiry_looked_at = now;
		due = true;
	}
	SpinLockRelease(&relay_shared->mutex);
	return due;
}

PGDLLEXPORT void relay_main(Datum arg);
void
relay_main(Datum arg)
{
	TimestampTz idle_since;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	pgstat_report_appname("apikey event relay");
	/* the relay's own settings, for the whole session */
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
	(void) set_config_option("synchronous_commit", "local",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
	/* the payloads' times, whatever the server's zone */
	(void) set_config_option("TimeZone", "UTC",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);

	SpinLockAcquire(&relay_shared->mutex);
	my_entry = database_entry(MyDatabaseId, true);
	if (my_entry != NULL)
	{
		if (my_entry->procno >= 0)
			my_entry = NULL;	/* another relay runs here */
		else
		{
			my_entry->procno = AK_MY_PROC_INDEX;
			my_entry->woken = false;
		}
	}
	SpinLockRelease(&relay_shared->mutex);
	if (my_entry == NULL)
		proc_exit(0);
	before_shmem_exit(relay_leave, (Datum) 0);

	idle_since = GetCurrentTimestamp();
	for (;;)
	{
		int64		sent;
		long		wait_ms;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		sent = relay_queue();
		if (sent == RELAY_BUSY)
		{
			/* held: look again soon, and stay */
			idle_since = GetCurrentTimestamp();
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 100, PG_WAIT_EXTENSION);
			continue;
		}
		if (sent < 0)
		{
			/* no extension here (or not updated): nothing to relay */
			SpinLockAcquire(&relay_shared->mutex);
			my_entry->has_apikey = false;
			SpinLockRelease(&relay_shared->mutex);
			proc_exit(0);
		}
		SpinLockAcquire(&relay_shared->mutex);
		my_entry->has_apikey = true;
		SpinLockRelease(&relay_shared->mutex);
		share_key_locations();
		if (expiry_due())
		{
			int64		n;

			do
			{
				n = relay_transaction(true);
				CHECK_FOR_INTERRUPTS();
			} while (n == EXPIRY_BATCH);
			/* held (RELAY_BUSY): the next look is an interval away */
			continue;			/* send what it recorded */
		}
		if (sent > 0)
			idle_since = GetCurrentTimestamp();
		wait_ms = RELAY_LINGER_MS -
			(long) ((GetCurrentTimestamp() - idle_since) / 1000);
		if (wait_ms <= 0)
		{
			/* leave: from now on a change wakes the launcher, not this relay */
			relay_leave(0, (Datum) 0);
			/* what committed before it left and found this relay still here */
			(void) relay_queue();
			proc_exit(0);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
	}
}

/* ---- the launcher ---- */

/* The databases one may connect to, but templates. */
static int
list_databases(Oid *dbids, int max)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	int			n = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate && db->datconnlimit != -2 && n < max)
			dbids[n++] = db->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return n;
}

/* Start the relay of a database; false when no worker slot was free. */
static bool
start_relay(Oid dbid, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	apikey_worker(&worker, "relay_main", "apikey event relay", dbid,
				  BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION,
				  BgWorkerStart_RecoveryFinished, BGW_NEVER_RESTART);
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

static void
launcher_leave(int code, Datum arg)
{
	SpinLockAcquire(&relay_shared->mutex);
	if (relay_shared->launcher_procno == AK_MY_PROC_INDEX)
		relay_shared->launcher_procno = -1;
	SpinLockRelease(&relay_shared->mutex);
}

PGDLLEXPORT void relay_launcher_main(Datum arg);
void
relay_launcher_main(Datum arg)
{
	/* per entry of relay_shared->dbs: the relay this launcher started */
	BackgroundWorkerHandle **handles;
	TimestampTz *started_at;
	Oid		   *dbids;
	TimestampTz next_round = 0;
	bool		warned_full = false;
	bool		warned_slots = false;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("apikey event relay launcher");
	handles = MemoryContextAllocZero(TopMemoryContext, sizeof(*handles) * RELAY_MAX_DATABASES);
	started_at = MemoryContextAllocZero(TopMemoryContext, sizeof(*started_at) * RELAY_MAX_DATABASES);
	dbids = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * RELAY_MAX_DATABASES * 4);
	SpinLockAcquire(&relay_shared->mutex);
	relay_shared->launcher_procno = AK_MY_PROC_INDEX;
	SpinLockRelease(&relay_shared->mutex);
	before_shmem_exit(launcher_leave, (Datum) 0);

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		bool		round = now >= next_round;
		long		wait_ms;

		ResetLatch(MyLatch);
		if (ShutdownRequestPending)
			proc_exit(0);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (round)
		{
			int			ndb = list_databases(dbids, RELAY_MAX_DATABASES * 4);
			long		round_ms = LAUNCHER_ROUND_MS;

			if (expiry_check_interval > 0)
				round_ms = Min(round_ms, expiry_check_interval * 1000L);
			next_round = TimestampTzPlusMilliseconds(now, round_ms);
			SpinLockAcquire(&relay_shared->mutex);
			/* forget dropped databases */
			for (int i = 0; i < RELAY_MAX_DATABASES; i++)
			{
				RelayDatabase *d = &relay_shared->dbs[i];
				bool		listed = false;

				for (int j = 0; j < ndb && !listed; j++)
					listed = dbids[j] == d->dbid;
				if (d->dbid != InvalidOid && !listed && d->procno < 0)
					d->dbid = InvalidOid;
			}
			/* a database seen for the first time is looked at once */
			for (int j = 0; j < ndb; j++)
			{
				RelayDatabase *d = database_entry(dbids[j], false);

				if (d == NULL && (d = database_entry(dbids[j], true)) != NULL)
					d->woken = true;
				else if (d == NULL && !warned_full)
				{
					warned_full = true;
					ereport(LOG,
							(errmsg("apikey: more than %d databases, the event relay serves the first ones",
									RELAY_MAX_DATABASES)));
				}
			}
			SpinLockRelease(&relay_shared->mutex);
		}
		for (int i = 0; i < RELAY_MAX_DATABASES; i++)
		{
			RelayDatabase *d = &relay_shared->dbs[i];
			Oid			dbid;
			bool		want;
			pid_t		pid;

			SpinLockAcquire(&relay_shared->mutex);
			dbid = d->dbid;
			want = dbid != InvalidOid && d->procno < 0 &&
				(d->woken || (round && d->has_apikey));
			SpinLockRelease(&relay_shared->mutex);
			if (!want)
				continue;
			if (handles[i] != NULL)
			{
				if (GetBackgroundWorkerPid(handles[i], &pid) != BGWH_STOPPED)
					continue;	/* starting, or leaving */
				pfree(handles[i]);
				handles[i] = NULL;
			}
			if (!TimestampDifferenceExceeds(started_at[i], now, RESTART_DELAY_MS))
				continue;
			started_at[i] = now;
			if (!start_relay(dbid, &handles[i]))
			{
				handles[i] = NULL;
				if (!warned_slots)
					ereport(LOG,
							(errmsg("apikey: no background worker slot for the event relay of database %u", dbid),
							 errdetail("Its events are sent once a slot is free."),
							 errhint("Raise max_worker_processes.")));
				warned_slots = true;
			}
			else
				warned_slots = false;
		}
		wait_ms = Max(1, Min(RESTART_DELAY_MS,
							 (long) ((next_round - GetCurrentTimestamp()) / 1000)));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
	}
}

void
relay_init(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("apikey.expiry_check_interval",
							"How often the event relay looks for keys that passed their expiry time, to record and send their expired event (0: never).",
							NULL,
							&expiry_check_interval,
							10, 0, 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = relay_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = relay_shmem_startup;

	apikey_worker(&worker, "relay_launcher_main", "apikey event relay launcher", InvalidOid,
				  BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION,
				  BgWorkerStart_RecoveryFinished, 1);
	RegisterBackgroundWorker(&worker);
}
