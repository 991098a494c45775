/*
 * killswitch.c
 *		revoke_key(..., terminate => true): when the revocation commits, the
 *		transactions authenticated by that key on this server stop.
 *
 * Each backend has a slot in shared memory listing the keys its current
 * transaction authenticated with (every one, also those a savepoint
 * replaced or rolled back, up to KILL_SLOT_KEYS; past that, the slot says
 * so and any terminated key of its database stops it).  authenticate adds
 * the key; the end of the transaction clears the slot.  A revocation with
 * terminate => true notes the key; when, and only if, its transaction
 * commits, the key goes into a table of recent kills and then the slots
 * listing it in this database are marked.  No other backend is signalled.
 * A marked backend stops on its own:
 *	- a timer looks at its slot every KILL_CHECK_MS and cancels the statement
 *	  in flight, as statement_timeout does;
 *	- every later statement of the transaction, every fetch from a cursor or
 *	  portal (ExecutorRun), every utility statement but transaction control,
 *	  every function call through the fast-path protocol (object access
 *	  hook), and its COMMIT raise 28000.
 * The timer is stopped, and a cancel it raised but the backend did not act
 * on yet is withdrawn, when the transaction ends: a statement of a later
 * transaction is never cancelled.
 *
 * A verification that read the key before the revocation committed but
 * authenticates after the revoker looked at the slots (it waited on a
 * credits row, or its snapshot is old) is caught by the table of recent
 * kills: the authenticating backend lists the key in its slot first and
 * then looks there; a kill by a transaction its snapshot does not see
 * means that the key was read stale, and authenticate refuses it; a kill
 * it sees, or one its bucket forgot, makes it look at the key again with
 * the latest snapshot (verify may have used a cached state).  The
 * revoker writes the table before it looks at the slots, each under a
 * spinlock, so of two that race one always sees the other.  The table is
 * bounded: an entry is overwritten only once every snapshot sees its
 * revocation, or else its bucket remembers the newest such transaction,
 * and an authentication whose snapshot may not see that one looks at the
 * key again with the latest snapshot: refused if it is revoked (or gone).
 *
 * Shared memory needs shared_preload_libraries = 'apikey'; without it,
 * terminate => true is an error.
 */
#include "postgres.h"

#include <signal.h>

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "pg_compat.h"
#include "apikey.h"
#include "keyid.h"
#include "verify.h"

/* How often an authenticated transaction looks whether its key was revoked. */
#define KILL_CHECK_MS 100
/* Keys a slot lists; a transaction with more is stopped by any kill. */
#define KILL_SLOT_KEYS 8
/* The table of recent kills: buckets by key id, entries per bucket. */
#define KILL_BUCKETS 1024
#define KILL_BUCKET_ENTRIES 8

typedef struct KillSlot
{
	slock_t		mutex;
	bool		active;			/* the transaction authenticated ... */
	bool		overflow;		/* ... with more keys than keys[] holds, ... */
	Oid			dbid;			/* ... in this database ... */
	int			nkeys;
	uint64		keys[KILL_SLOT_KEYS];	/* ... as these keys */
	pg_atomic_uint32 killed;	/* which a committed revocation terminated */
} KillSlot;

/* A committed revocation with terminate => true. */
typedef struct KilledKey
{
	TransactionId xid;			/* its top transaction; invalid: unused */
	Oid			dbid;
	uint64		key_id;
} KilledKey;

typedef struct KillBucket
{
	slock_t		mutex;
	int			next;			/* the entry to overwrite when none is free */
	TransactionId evicted;		/* newest xid overwritten unseen, or invalid */
	KilledKey	entries[KILL_BUCKET_ENTRIES];
} KillBucket;

typedef struct KillShared
{
	uint64		seed;			/* of the buckets' hash: not guessable */
	KillBucket	buckets[KILL_BUCKETS];
	int			nslots;
	KillSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} KillShared;

static KillShared *kill_shared = NULL;

/* This backend's slot, while its transaction is authenticated. */
static KillSlot *own_slot = NULL;

static TimeoutId kill_timeout;
static bool kill_timeout_registered = false;

/* The timer raised a cancel (read by the log hook and when it is withdrawn). */
static volatile sig_atomic_t kill_fired = false;

/* Keys this transaction revoked with terminate => true, and where. */
typedef struct PendingKill
{
	uint64		key_id;
	SubTransactionId subid;
} PendingKill;

static PendingKill *pending = NULL;
static int	npending = 0;
static int	pending_size = 0;
static TransactionId pending_xid = InvalidTransactionId;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;
static object_access_hook_type prev_object_access = NULL;

static Size
kill_shmem_size(void)
{
	return add_size(offsetof(KillShared, slots), mul_size(MaxBackends, sizeof(KillSlot)));
}

static void
kill_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(kill_shmem_size());
}

static void
kill_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	kill_shared = ShmemInitStruct("apikey kill switch", kill_shmem_size(), &found);
	if (!found)
	{
		memset(kill_shared, 0, kill_shmem_size());
		if (!pg_strong_random(&kill_shared->seed, sizeof(kill_shared->seed)))
			kill_shared->seed = (uint64) GetCurrentTimestamp() ^ (uint64) MyProcPid;
		for (int b = 0; b < KILL_BUCKETS; b++)
			SpinLockInit(&kill_shared->buckets[b].mutex);
		kill_shared->nslots = MaxBackends;
		for (int i = 0; i < MaxBackends; i++)
		{
			SpinLockInit(&kill_shared->slots[i].mutex);
			kill_shared->slots[i].active = false;
			pg_atomic_init_u32(&kill_shared->slots[i].killed, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

static KillSlot *
my_slot(void)
{
	int			slot = ak_backend_slot();

	if (kill_shared == NULL || slot < 0 || slot >= kill_shared->nslots)
		return NULL;
	return &kill_shared->slots[slot];
}

static KillBucket *
bucket_of(uint64 key_id)
{
	uint64		h = hash_bytes_extended((const unsigned char *) &key_id, sizeof(key_id),
										kill_shared->seed);

	return &kill_shared->buckets[h % KILL_BUCKETS];
}

/* SIGALRM context: only a look at the slot and a signal to ourselves. */
static void
kill_timeout_handler(void)
{
	KillSlot   *slot = own_slot;

	if (slot != NULL && pg_atomic_read_u32(&slot->killed) != 0)
	{
		kill_fired = true;
		/* as statement_timeout: the cancel is handled at the next check */
		kill(MyProcPid, SIGINT);
	}
}

static void
timer_start(void)
{
	if (!kill_timeout_registered)
	{
		kill_timeout = RegisterTimeout(USER_TIMEOUT, kill_timeout_handler);
		kill_timeout_registered = true;
	}
	if (!get_timeout_active(kill_timeout))
		enable_timeout_every(kill_timeout,
							 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KILL_CHECK_MS),
							 KILL_CHECK_MS);
}

/*
 * The transaction ended: no more checks, and a cancel the timer raised that
 * was not acted on yet (the statement finished first) is withdrawn, so it
 * cannot hit the next statement.
 */
static void
timer_stop(void)
{
	if (kill_timeout_registered && get_timeout_active(kill_timeout))
		disable_timeout(kill_timeout, false);
	if (kill_fired)
	{
		kill_fired = false;
		QueryCancelPending = false;
	}
}

/* The statement (a call of authenticate, say) may hold key text. */
static void
raise_killed(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("the API key this transaction authenticated with was revoked"),
			 errdetail("It was revoked with terminate => true: the transaction cannot go on as that key."),
			 errhint("Roll back."),
			 errhidestmt(true), errhidecontext(true)));
}

/*
 * Did a committed kill of the key escape the snapshot it was read with?
 * Entries are copied under the bucket's spinlock and judged after it
 * (XidInMVCCSnapshot may read pg_subtrans).
 */
static bool
read_before_kill(uint64 key_id)
{
	KillBucket *b = bucket_of(key_id);
	TransactionId xids[KILL_BUCKET_ENTRIES];
	TransactionId evicted;
	int			n = 0;
	Snapshot	snapshot;

	SpinLockAcquire(&b->mutex);
	for (int i = 0; i < KILL_BUCKET_ENTRIES; i++)
		if (TransactionIdIsValid(b->entries[i].xid) &&
			b->entries[i].key_id == key_id && b->entries[i].dbid == MyDatabaseId)
			xids[n++] = b->entries[i].xid;
	evicted = b->evicted;
	SpinLockRelease(&b->mutex);

	if (n == 0 && !TransactionIdIsValid(evicted))
		return false;
	/* the snapshot verify read the key with */
	if (!ActiveSnapshotSet())
		return true;
	snapshot = GetActiveSnapshot();
	for (int i = 0; i < n; i++)
		if (XidInMVCCSnapshot(xids[i], snapshot))
			return true;

	/*
	 * Every kill noted here was committed before this look (a later one
	 * marks the slot), so the latest snapshot sees it: the key is refused
	 * if it is revoked by then.  Asked when
	 *	- the key was killed and the snapshot sees it, but verify may have
	 *	  used the key's cached state, which the revoker's change counters
	 *	  invalidate only after its kill is noted (keychange.c);
	 *	- a kill forgotten from this bucket may have been this key's and
	 *	  the snapshot may not see it.  Keys not terminated are not refused
	 *	  for sharing a bucket, however long old transactions run.
	 */
	if (n > 0 ||
		(TransactionIdIsValid(evicted) && !TransactionIdPrecedes(evicted, snapshot->xmin)))
		return verify_key_revoked_now(key_id);
	return false;
}

/*
 * authenticate verified key_id and makes it the identity: list it in the
 * slot, then look whether a kill committed since the key was read.  Raises
 * when the key was terminated, or the transaction was.
 */
void
killswitch_authenticated(uint64 key_id)
{
	KillSlot   *slot = my_slot();
	bool		listed = false;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	if (!slot->active)
	{
		slot->active = true;
		slot->overflow = false;
		slot->dbid = MyDatabaseId;
		slot->nkeys = 0;
		pg_atomic_write_u32(&slot->killed, 0);
	}
	for (int i = 0; i < slot->nkeys && !listed; i++)
		listed = slot->keys[i] == key_id;
	if (!listed)
	{
		if (slot->nkeys < KILL_SLOT_KEYS)
			slot->keys[slot->nkeys++] = key_id;
		else
			slot->overflow = true;
	}
	SpinLockRelease(&slot->mutex);
	own_slot = slot;
	timer_start();

	/* after the slot (a spinlock orders both): see the revoker, or be seen */
	if (read_before_kill(key_id))
	{
		pg_atomic_write_u32(&slot->killed, 1);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("API key rejected: revoked"),
				 errdetail("The key was revoked with terminate => true while it was being verified."),
				 errhidestmt(true), errhidecontext(true)));
	}
	if (pg_atomic_read_u32(&slot->killed) != 0)
		raise_killed();
}

/* The transaction ended: its slot lists nothing. */
static void
slot_clear(void)
{
	KillSlot   *slot = own_slot;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->active = false;
	slot->overflow = false;
	slot->nkeys = 0;
	pg_atomic_write_u32(&slot->killed, 0);
	SpinLockRelease(&slot->mutex);
	own_slot = NULL;
	timer_stop();
}

/* Raise when a key of this transaction was terminated. */
static void
check_not_killed(void)
{
	if (own_slot == NULL)
		return;
	if (pg_atomic_read_u32(&own_slot->killed) != 0)
		raise_killed();
	/* an error of an earlier statement stopped every timer: start it again */
	timer_start();
}

static void
kill_executor_start(QueryDesc *queryDesc, int eflags)
{
	check_not_killed();
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/* every fetch from a cursor or portal, not only its first */
static void
kill_executor_run(AK_EXECUTOR_RUN_PARAMS)
{
	check_not_killed();
	if (prev_executor_run)
		prev_executor_run(AK_EXECUTOR_RUN_ARGS);
	else
		standard_ExecutorRun(AK_EXECUTOR_RUN_ARGS);
}

/* statements without an executor (COPY from a table, FETCH, DO, ...) */
static void
kill_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	/* ROLLBACK must work; COMMIT is refused at pre-commit */
	if (!IsA(pstmt->utilityStmt, TransactionStmt))
		check_not_killed();
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/*
 * Every function about to run: a call through the fast-path protocol (the
 * lo_* functions of libpq read large objects so) has no statement.
 */
static void
kill_object_access(ObjectAccessType access, Oid classId, Oid objectId, int subId,
				   void *arg)
{
	if (access == OAT_FUNCTION_EXECUTE)
		check_not_killed();
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
}

/* The cancel the timer raised says why. */
static void
kill_emit_log(ErrorData *edata)
{
	if (kill_fired && edata->elevel == ERROR && edata->sqlerrcode == ERRCODE_QUERY_CANCELED &&
		edata->detail == NULL)
		edata->detail = pstrdup("The API key this transaction authenticated with was revoked with terminate => true.");
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * Note the keys this transaction terminated in the table of recent kills.
 * An entry is overwritten freely once its revocation precedes the oldest
 * xmin of the server (every snapshot sees it); otherwise its bucket keeps
 * the newest such xid, for read_before_kill to fail closed on.
 */
static void
note_kills(TransactionId xid)
{
	TransactionId horizon = GetOldestNonRemovableTransactionId(NULL);

	for (int k = 0; k < npending; k++)
	{
		KillBucket *b = bucket_of(pending[k].key_id);
		int			use = -1;

		SpinLockAcquire(&b->mutex);
		if (TransactionIdIsValid(b->evicted) && TransactionIdPrecedes(b->evicted, horizon))
			b->evicted = InvalidTransactionId;
		for (int i = 0; i < KILL_BUCKET_ENTRIES && use < 0; i++)
			if (!TransactionIdIsValid(b->entries[i].xid) ||
				TransactionIdPrecedes(b->entries[i].xid, horizon))
				use = i;
		if (use < 0)
		{
			TransactionId old;

			use = b->next;
			b->next = (b->next + 1) % KILL_BUCKET_ENTRIES;
			old = b->entries[use].xid;
			if (!TransactionIdIsValid(b->evicted) || TransactionIdFollows(old, b->evicted))
				b->evicted = old;
		}
		b->entries[use].xid = xid;
		b->entries[use].dbid = MyDatabaseId;
		b->entries[use].key_id = pending[k].key_id;
		SpinLockRelease(&b->mutex);
	}
}

/* Mark the slots listing a key this transaction terminated (it committed). */
static void
mark_killed(void)
{
	KillSlot   *mine = my_slot();

	for (int i = 0; i < kill_shared->nslots; i++)
	{
		KillSlot   *slot = &kill_shared->slots[i];
		bool		hit = false;

		if (slot == mine)
			continue;
		SpinLockAcquire(&slot->mutex);
		if (slot->active && slot->dbid == MyDatabaseId)
		{
			hit = slot->overflow;
			for (int j = 0; j < slot->nkeys && !hit; j++)
				for (int k = 0; k < npending && !hit; k++)
					hit = slot->keys[j] == pending[k].key_id;
			if (hit)
				pg_atomic_write_u32(&slot->killed, 1);
		}
		SpinLockRelease(&slot->mutex);
	}
}

static void
kill_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			check_not_killed();
			pending_xid = npending > 0 ? GetTopTransactionIdIfAny() : InvalidTransactionId;
			break;
		case XACT_EVENT_PRE_PREPARE:
			check_not_killed();
			if (npending > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that revoked a key with terminate => true")));
			break;
		case XACT_EVENT_COMMIT:
			/* committed, and visible to new snapshots: table first, then slots */
			if (npending > 0 && kill_shared != NULL)
			{
				if (TransactionIdIsValid(pending_xid))
					note_kills(pending_xid);
				mark_killed();
			}
			npending = 0;
			pending_xid = InvalidTransactionId;
			slot_clear();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			npending = 0;
			pending_xid = InvalidTransactionId;
			slot_clear();
			break;
		default:
			break;
	}
}

static void
kill_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	int			kept = 0;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	for (int k = 0; k < npending; k++)
	{
		if (pending[k].subid == mySubid)
		{
			if (event == SUBXACT_EVENT_ABORT_SUB)
				continue;		/* a rolled-back revocation terminates nothing */
			pending[k].subid = parentSubid;
		}
		pending[kept++] = pending[k];
	}
	npending = kept;
}

/*
 * For the standby's watcher (replica.c), where no revoker runs: the
 * databases whose slots are active, the keys those slots list, and the
 * marking of the slots listing keys whose revocation with terminate => true
 * was replayed.  A slot that overflowed lists no key: it is marked with any
 * of its database's, as on the primary.
 */
int
killswitch_active_databases(Oid *dbids, int max)
{
	int			n = 0;

	if (kill_shared == NULL)
		return 0;
	for (int i = 0; i < kill_shared->nslots; i++)
	{
		KillSlot   *slot = &kill_shared->slots[i];
		Oid			dbid = InvalidOid;
		int			j;

		SpinLockAcquire(&slot->mutex);
		if (slot->active && pg_atomic_read_u32(&slot->killed) == 0)
			dbid = slot->dbid;
		SpinLockRelease(&slot->mutex);
		if (!OidIsValid(dbid))
			continue;
		for (j = 0; j < n && dbids[j] != dbid; j++)
			;
		if (j == n && n < max)
			dbids[n++] = dbid;
	}
	return n;
}

/* The keys listed by the slots of a database not marked yet, up to max. */
int
killswitch_listed_keys(Oid dbid, uint64 *keys, int max)
{
	int			n = 0;

	if (kill_shared == NULL)
		return 0;
	for (int i = 0; i < kill_shared->nslots && n < max; i++)
	{
		KillSlot   *slot = &kill_shared->slots[i];

		SpinLockAcquire(&slot->mutex);
		if (slot->active && slot->dbid == dbid && pg_atomic_read_u32(&slot->killed) == 0)
			for (int j = 0; j < slot->nkeys && n < max; j++)
			{
				int			k;

				for (k = 0; k < n && keys[k] != slot->keys[j]; k++)
					;
				if (k == n)
					keys[n++] = slot->keys[j];
			}
		SpinLockRelease(&slot->mutex);
	}
	return n;
}

/* Mark the slots of a database that list one of the keys; how many. */
int
killswitch_mark_keys(Oid dbid, const uint64 *keys, int nkeys)
{
	int			marked = 0;

	if (kill_shared == NULL || nkeys == 0)
		return 0;
	for (int i = 0; i < kill_shared->nslots; i++)
	{
		KillSlot   *slot = &kill_shared->slots[i];
		bool		hit = false;

		SpinLockAcquire(&slot->mutex);
		if (slot->active && slot->dbid == dbid)
		{
			hit = slot->overflow;
			for (int j = 0; j < slot->nkeys && !hit; j++)
				for (int k = 0; k < nkeys && !hit; k++)
					hit = slot->keys[j] == keys[k];
			if (hit && pg_atomic_read_u32(&slot->killed) == 0)
			{
				pg_atomic_write_u32(&slot->killed, 1);
				marked++;
			}
		}
		SpinLockRelease(&slot->mutex);
	}
	return marked;
}

/*
 * apikey_internal.terminate_at_commit(key_id, required) -> boolean
 * Terminate the key's transactions on this server if and when the calling
 * transaction commits.  Without shared memory: an error when required,
 * false otherwise.
 */
PG_FUNCTION_INFO_V1(terminate_at_commit);
Datum
terminate_at_commit(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key_id and required must not be null")));
	if (kill_shared == NULL)
	{
		if (!PG_GETARG_BOOL(1))
			PG_RETURN_BOOL(false);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("terminate => true needs apikey in shared_preload_libraries"),
				 errdetail("Transactions authenticated by a key are tracked in shared memory, which this server did not set up."),
				 errhint("Add apikey to shared_preload_libraries and restart, or revoke without terminate.")));
	}
	if (npending == pending_size)
	{
		pending_size = Max(8, pending_size * 2);
		pending = pending == NULL ?
			MemoryContextAlloc(TopMemoryContext, pending_size * sizeof(PendingKill)) :
			repalloc(pending, pending_size * sizeof(PendingKill));
	}
	pending[npending].key_id = PG_GETARG_KEYID(0);
	pending[npending].subid = GetCurrentSubTransactionId();
	npending++;
	PG_RETURN_BOOL(true);
}

void
killswitch_init(void)
{
	RegisterXactCallback(kill_xact_callback, NULL);
	RegisterSubXactCallback(kill_subxact_callback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = kill_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = kill_shmem_startup;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = kill_executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = kill_executor_run;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = kill_process_utility;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = kill_emit_log;
	prev_object_access = object_access_hook;
	object_access_hook = kill_object_access;
}
