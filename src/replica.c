/*
 * replica.c
 *		Revocations past one server: how durable their commit is, and the
 *		kill switch on hot standbys.
 *
 * Durability.  A revocation (revoke_key, delete_key, report_leak,
 * revoke_owner_keys, roll_key: the end of the old secret's grace is decided at
 * the roll's commit) calls apikey_internal.revocation_commit(), which raises
 * the transaction's synchronous_commit to apikey.revocation_synchronous_commit
 * (remote_apply by default) when that is stronger, as SET LOCAL would, and
 * again just before the commit (a later SET LOCAL of the caller cannot weaken
 * it).  With synchronous standbys configured, the commit returns once they
 * have applied it: the revocation is visible on them and survives a failover
 * to one of them.  Without, it changes nothing but a commit that would not
 * even have been flushed.  When the wait is cancelled (the statement was
 * cancelled, statement_timeout) PostgreSQL returns success with its own
 * warning; the commit callback then finds the commit not confirmed and adds
 * one that says what it means for the key (SQLSTATE 01KA0), and
 * confirm_revocations() waits for it again.
 *
 * The kill switch on a standby.  Nothing runs the revoker's code there; the
 * revocation arrives as replayed rows.  The "apikey standby kill switch"
 * launcher runs while the server is in recovery: it looks at the kill
 * switch's slots every apikey.standby_kill_interval and starts one watcher
 * per database whose sessions are authenticated.  A watcher, at the same
 * interval, takes the keys the slots of its database list and, when replay
 * has moved since it last looked or a key is new to it, asks the replayed
 * tables which of them are revoked now by a revocation with terminate
 * (revoke_key(..., terminate => true), or a leak report that revoked the
 * key); it marks the slots listing those, as the revoker does on the
 * primary, and each backend then cancels its own statement within 100 ms.
 * It looks at a state, not at events: a session that authenticates late,
 * with a snapshot older than the replayed revocation, is found at the next
 * look.  Nothing is read while no session of the database is authenticated.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/wait_event.h"

#include "pg_compat.h"
#include "apikey.h"
#include "keyid.h"

/* a warning: the revocation committed here, no synchronous standby has it yet */
#define ERRCODE_APIKEY_NOT_REPLICATED	MAKE_SQLSTATE('0','1','K','A','0')

/* -1: the session's synchronous_commit as it is */
#define LEVEL_SESSION (-1)

static const struct config_enum_entry revocation_levels[] = {
	{"session", LEVEL_SESSION, false},
	{"local", SYNCHRONOUS_COMMIT_LOCAL_FLUSH, false},
	{"remote_write", SYNCHRONOUS_COMMIT_REMOTE_WRITE, false},
	{"on", SYNCHRONOUS_COMMIT_REMOTE_FLUSH, false},
	{"remote_apply", SYNCHRONOUS_COMMIT_REMOTE_APPLY, false},
	{NULL, 0, false}
};

static int	revocation_level = SYNCHRONOUS_COMMIT_REMOTE_APPLY;
static int	standby_kill_interval = 50;

/* Subtransactions of the current transaction that revoked (innermost last). */
static SubTransactionId *revoking = NULL;
static int	nrevoking = 0;
static int	revoking_size = 0;

/* The end of this session's last committed revocation. */
static XLogRecPtr last_revocation = InvalidXLogRecPtr;

static const char *
level_name(int level)
{
	for (int i = 0; revocation_levels[i].name != NULL; i++)
		if (revocation_levels[i].val == level)
			return revocation_levels[i].name;
	return "remote_apply";
}

/* What a commit of this session waits for now: SYNC_REP_WAIT_*, or -1. */
static int
wait_mode(int level)
{
	if (max_wal_senders == 0 || SyncRepStandbyNames == NULL || SyncRepStandbyNames[0] == '\0')
		return -1;
	switch (level)
	{
		case SYNCHRONOUS_COMMIT_REMOTE_WRITE:
			return SYNC_REP_WAIT_WRITE;
		case SYNCHRONOUS_COMMIT_REMOTE_FLUSH:
			return SYNC_REP_WAIT_FLUSH;
		case SYNCHRONOUS_COMMIT_REMOTE_APPLY:
			return SYNC_REP_WAIT_APPLY;
		default:
			return -1;
	}
}

/* Have the synchronous standbys confirmed lsn as mode asks? */
static bool
confirmed(XLogRecPtr lsn, int mode)
{
	bool		done;

	LWLockAcquire(SyncRepLock, LW_SHARED);
	done = lsn <= WalSndCtl->lsn[mode];
	LWLockRelease(SyncRepLock);
	return done;
}

/* Raise synchronous_commit for the rest of the transaction (SET LOCAL). */
static void
raise_level(void)
{
	if (revocation_level != LEVEL_SESSION && synchronous_commit < revocation_level)
		(void) set_config_option("synchronous_commit", level_name(revocation_level),
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
								 true, 0, false);
}

/*
 * apikey_internal.revocation_commit(): this transaction revokes; its commit
 * waits as apikey.revocation_synchronous_commit says.
 */
PG_FUNCTION_INFO_V1(revocation_commit);
Datum
revocation_commit(PG_FUNCTION_ARGS)
{
	SubTransactionId subid = GetCurrentSubTransactionId();

	raise_level();
	if (nrevoking > 0 && revoking[nrevoking - 1] == subid)
		PG_RETURN_VOID();
	if (nrevoking == revoking_size)
	{
		revoking_size = Max(8, revoking_size * 2);
		revoking = revoking == NULL ?
			MemoryContextAlloc(TopMemoryContext, revoking_size * sizeof(SubTransactionId)) :
			repalloc(revoking, revoking_size * sizeof(SubTransactionId));
	}
	revoking[nrevoking++] = subid;
	PG_RETURN_VOID();
}

static void
replica_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (nrevoking > 0)
				raise_level();
			break;
		case XACT_EVENT_COMMIT:
			if (nrevoking > 0 && !XLogRecPtrIsInvalid(XactLastCommitEnd))
			{
				int			mode = wait_mode(synchronous_commit);

				last_revocation = XactLastCommitEnd;
				/* the wait was cancelled: PostgreSQL said so, say what it means */
				if (mode >= 0 && !confirmed(XactLastCommitEnd, mode))
					ereport(WARNING,
							(errcode(ERRCODE_APIKEY_NOT_REPLICATED),
							 errmsg("the revocation committed on this server, but no synchronous standby has confirmed it yet"),
							 errdetail("Until one does, a failover to a standby may bring the revoked key back."),
							 errhint("Call apikey.confirm_revocations() until it returns confirmed, or check pg_stat_replication.")));
			}
			nrevoking = 0;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			nrevoking = 0;
			break;
		default:
			break;
	}
}

static void
replica_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (nrevoking == 0 || revoking[nrevoking - 1] != mySubid)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		nrevoking--;			/* rolled back: it revoked nothing */
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		if (nrevoking > 1 && revoking[nrevoking - 2] == parentSubid)
			nrevoking--;
		else
			revoking[nrevoking - 1] = parentSubid;
	}
}

/*
 * confirm_revocations() -> text
 * Wait until the synchronous standbys have confirmed, as
 * apikey.revocation_synchronous_commit asks, every revocation this session
 * committed and everything this server has committed so far: 'confirmed';
 * 'canceled' when the wait was cancelled; 'no_synchronous_standby' when
 * none is configured (a failover may lose what only this server has);
 * 'not_asked' when the setting asks for no standby.
 */
PG_FUNCTION_INFO_V1(confirm_revocations);
Datum
confirm_revocations(PG_FUNCTION_ARGS)
{
	int			level = revocation_level == LEVEL_SESSION ? synchronous_commit :
		Max(revocation_level, synchronous_commit);
	XLogRecPtr	lsn;
	int			mode;
	int			nestlevel;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("confirm_revocations runs on the primary"),
				 errdetail("This server is a standby: it commits nothing of its own.")));
	if (level < SYNCHRONOUS_COMMIT_REMOTE_WRITE)
		PG_RETURN_TEXT_P(cstring_to_text("not_asked"));
	mode = wait_mode(level);
	if (mode < 0)
		PG_RETURN_TEXT_P(cstring_to_text("no_synchronous_standby"));
	lsn = Max(last_revocation, GetFlushRecPtr(NULL));
	if (!confirmed(lsn, mode))
	{
		/* the wait a commit at this level does (it reads synchronous_commit) */
		nestlevel = NewGUCNestLevel();
		(void) set_config_option("synchronous_commit", level_name(level),
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
		HOLD_INTERRUPTS();
		SyncRepWaitForLSN(lsn, true);
		RESUME_INTERRUPTS();
		AtEOXact_GUC(true, nestlevel);
	}
	if (wait_mode(level) < 0)
		PG_RETURN_TEXT_P(cstring_to_text("no_synchronous_standby"));
	PG_RETURN_TEXT_P(cstring_to_text(confirmed(lsn, mode) ? "confirmed" : "canceled"));
}

/* ---- the kill switch on a standby ---- */

static const char *const watch_sql =
"SELECT k.key_id FROM apikey.keys AS k"
" WHERE k.key_id OPERATOR(pg_catalog.=) ANY ($1) AND k.revoked_at IS NOT NULL"
"   AND (SELECT CASE WHEN a.action OPERATOR(pg_catalog.=) 'revoked'"
"                    THEN a.details OPERATOR(pg_catalog.@>) '{\"terminate\": true}'"
"                    ELSE true END"
"          FROM apikey.audit AS a"
"         WHERE a.key_id OPERATOR(pg_catalog.=) k.key_id"
"           AND a.action OPERATOR(pg_catalog.=) ANY ('{revoked,leaked}'::text[])"
"           AND (a.action OPERATOR(pg_catalog.=) 'revoked'"
"                OR a.details OPERATOR(pg_catalog.@>) '{\"revoked\": true}')"
"         ORDER BY a.event_id DESC LIMIT 1)";

static int
compare_keys(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return x < y ? -1 : x > y;
}

/*
 * The keys among these that a replayed revocation with terminate revoked,
 * read as the extension's owner with a search_path of pg_catalog only.
 */
static int
revoked_with_terminate(uint64 *keys, int n, uint64 *out)
{
	int			nout = 0;
	int			nestlevel;
	Oid			nsp;

	nestlevel = apikey_worker_xact_begin();
	nsp = get_namespace_oid("apikey", true);
	if (OidIsValid(nsp) && OidIsValid(get_relname_relid("keys", nsp)) &&
		OidIsValid(get_relname_relid("audit", nsp)))
	{
		Oid			keyid_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
												 CStringGetDatum("key_id"),
												 ObjectIdGetDatum(nsp));
		Oid			owner = apikey_extension_owner();
		Datum	   *ids = palloc(sizeof(Datum) * n);
		Datum		args[1];
		Oid			argtypes[1];

		if (OidIsValid(owner) && OidIsValid(keyid_type))
		{
			Oid			save_userid;
			int			save_sec_context;
			int			ret;

			for (int i = 0; i < n; i++)
				ids[i] = KeyIdGetDatum(keys[i]);
			argtypes[0] = get_array_type(keyid_type);
			args[0] = PointerGetDatum(construct_array(ids, n, keyid_type, 8, FLOAT8PASSBYVAL,
													  TYPALIGN_DOUBLE));
			GetUserIdAndSecContext(&save_userid, &save_sec_context);
			SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
								   SECURITY_RESTRICTED_OPERATION);
			ret = SPI_execute_with_args(watch_sql, 1, argtypes, args, NULL, true, 0);
			SetUserIdAndSecContext(save_userid, save_sec_context);
			if (ret == SPI_OK_SELECT)
				for (uint64 r = 0; r < SPI_processed && nout < n; r++)
				{
					bool		isnull;

					out[nout++] = DatumGetKeyId(SPI_getbinval(SPI_tuptable->vals[r],
															  SPI_tuptable->tupdesc, 1, &isnull));
				}
		}
	}
	apikey_worker_xact_end(nestlevel);
	return nout;
}

/* The watcher of one database: look, mark, sleep, while in recovery. */
PGDLLEXPORT void replica_watcher_main(Datum arg);
void
replica_watcher_main(Datum arg)
{
	int			max = MaxBackends * 8;
	uint64	   *keys;
	uint64	   *seen;
	uint64	   *hits;
	int			nseen = 0;
	XLogRecPtr	seen_at = InvalidXLogRecPtr;
	MemoryContext loop_cxt;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	pgstat_report_appname("apikey standby kill switch");
	keys = MemoryContextAlloc(TopMemoryContext, sizeof(uint64) * max);
	seen = MemoryContextAlloc(TopMemoryContext, sizeof(uint64) * max);
	hits = MemoryContextAlloc(TopMemoryContext, sizeof(uint64) * max);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "apikey standby kill switch",
									 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		bool		recovery;
		XLogRecPtr	replayed;
		int			n;
		bool		news = false;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(standby_kill_interval, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			proc_exit(0);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* replay position first: a snapshot taken after sees all it covers */
		recovery = RecoveryInProgress();
		replayed = GetXLogReplayRecPtr(NULL);
		n = killswitch_listed_keys(MyDatabaseId, keys, max);
		qsort(keys, n, sizeof(uint64), compare_keys);
		if (replayed != seen_at)
			news = n > 0;
		else
			for (int i = 0; i < n && !news; i++)
				news = bsearch(&keys[i], seen, nseen, sizeof(uint64), compare_keys) == NULL;
		if (news)
		{
			MemoryContext old = MemoryContextSwitchTo(loop_cxt);
			int			nhits = revoked_with_terminate(keys, n, hits);

			MemoryContextSwitchTo(old);
			MemoryContextReset(loop_cxt);
			if (nhits > 0)
			{
				int			marked = killswitch_mark_keys(MyDatabaseId, hits, nhits);

				if (marked > 0)
					ereport(LOG,
							(errmsg("apikey: %d transaction(s) of this standby authenticated with %d key(s) whose revocation with terminate was replayed are stopped",
									marked, nhits)));
			}
		}
		memcpy(seen, keys, sizeof(uint64) * n);
		nseen = n;
		seen_at = replayed;
		/* promoted: the revokers run here now (this last look covered replay) */
		if (!recovery || standby_kill_interval == 0)
			proc_exit(0);
	}
}

/*
 * The launcher: while in recovery, a watcher for each database with an
 * authenticated session.
 */
PGDLLEXPORT void replica_launcher_main(Datum arg);
void
replica_launcher_main(Datum arg)
{
	struct
	{
		Oid			dbid;
		BackgroundWorkerHandle *handle;
		TimestampTz failed_at;
	}		   *watchers;
	int			nwatchers = 0;
	int			max = 256;
	Oid		   *dbids;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	pgstat_report_appname("apikey standby kill switch launcher");
	watchers = MemoryContextAllocZero(TopMemoryContext, sizeof(*watchers) * max);
	dbids = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * max);

	for (;;)
	{
		int			ndb;

		if (!RecoveryInProgress() || ShutdownRequestPending)
			proc_exit(0);		/* not restarted: a primary needs none */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 standby_kill_interval > 0 ? standby_kill_interval : 1000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (standby_kill_interval == 0 || ShutdownRequestPending)
			continue;
		ndb = killswitch_active_databases(dbids, max);
		for (int d = 0; d < ndb; d++)
		{
			int			w;
			pid_t		pid;

			for (w = 0; w < nwatchers && watchers[w].dbid != dbids[d]; w++)
				;
			if (w < nwatchers && watchers[w].handle != NULL &&
				GetBackgroundWorkerPid(watchers[w].handle, &pid) != BGWH_STOPPED)
				continue;		/* running, or starting */
			if (w == nwatchers)
			{
				if (nwatchers == max)
					continue;
				watchers[nwatchers].dbid = dbids[d];
				watchers[nwatchers].handle = NULL;
				watchers[nwatchers].failed_at = 0;
				nwatchers++;
			}
			else
			{
				/* it stopped (an error, a dropped database): again after a second */
				if (watchers[w].failed_at == 0)
					watchers[w].failed_at = GetCurrentTimestamp();
				if (!TimestampDifferenceExceeds(watchers[w].failed_at, GetCurrentTimestamp(), 1000))
					continue;
			}
			{
				BackgroundWorker worker;

				apikey_worker(&worker, "replica_watcher_main", "apikey standby kill switch", dbids[d],
							  BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION,
							  BgWorkerStart_ConsistentState, BGW_NEVER_RESTART);
				worker.bgw_notify_pid = MyProcPid;
				if (watchers[w].handle != NULL)
					pfree(watchers[w].handle);
				watchers[w].handle = NULL;
				watchers[w].failed_at = 0;
				if (!RegisterDynamicBackgroundWorker(&worker, &watchers[w].handle))
				{
					watchers[w].handle = NULL;
					watchers[w].failed_at = GetCurrentTimestamp();
					ereport(LOG,
							(errmsg("apikey: no background worker slot for the standby kill switch of database %u", dbids[d]),
							 errhint("Raise max_worker_processes.")));
				}
			}
		}
	}
}

void
replica_init(void)
{
	BackgroundWorker worker;

	DefineCustomEnumVariable("apikey.revocation_synchronous_commit",
							 "The synchronous_commit a revocation commits with at least.",
							 "remote_apply: with synchronous standbys, a revocation returns once they have applied it. session: the session's synchronous_commit.",
							 &revocation_level,
							 SYNCHRONOUS_COMMIT_REMOTE_APPLY,
							 revocation_levels,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	RegisterXactCallback(replica_xact_callback, NULL);
	RegisterSubXactCallback(replica_subxact_callback, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("apikey.standby_kill_interval",
							"How often a hot standby looks for replayed revocations with terminate that stop its sessions (0: never).",
							NULL,
							&standby_kill_interval,
							50, 0, 10000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	apikey_worker(&worker, "replica_launcher_main", "apikey standby kill switch launcher", InvalidOid,
				  BGWORKER_SHMEM_ACCESS,
				  BgWorkerStart_ConsistentState, 1);
	RegisterBackgroundWorker(&worker);
}
