/*
 * killswitch.c
 *		revoke_key(..., terminate => true): when the revocation commits, the
 *		transactions authenticated by that key on this server stop.
 *
 * Each backend has a slot in shared memory saying which key its current
 * transaction is authenticated as: authenticate sets it, the end of the
 * identity (commit, rollback, a rolled-back savepoint) clears it, both
 * under the slot's spinlock.  A revocation with terminate => true notes the
 * key; when, and only if, its transaction commits, the slots holding that
 * key in this database are marked.  No other backend is signalled.  A
 * marked backend stops on its own:
 *	- while its transaction is authenticated, a timer looks at its slot every
 *	  KILL_CHECK_MS and cancels the statement in flight, as statement_timeout
 *	  does;
 *	- every later statement of the transaction, and its COMMIT, raise 28000.
 * The timer is stopped, and a cancel it raised but the backend did not act
 * on yet is withdrawn, when the identity ends: a statement of a later
 * transaction is never cancelled.  The mark stays while the identity is
 * that key (authenticating with it again does not clear it), and a
 * terminated key that becomes the identity again in the same transaction (a
 * savepoint rolled back) comes back marked.
 *
 * Shared memory needs shared_preload_libraries = 'apikey'; without it,
 * terminate => true is an error.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "pg_compat.h"
#include "apikey.h"
#include "keyid.h"

/* How often an authenticated transaction looks whether its key was revoked. */
#define KILL_CHECK_MS 100

typedef struct KillSlot
{
	slock_t		mutex;
	bool		active;			/* the transaction is authenticated ... */
	Oid			dbid;			/* ... in this database ... */
	uint64		key_id;			/* ... as this key */
	pg_atomic_uint32 killed;	/* which a committed revocation terminated */
} KillSlot;

typedef struct KillShared
{
	int			nslots;
	KillSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} KillShared;

static KillShared *kill_shared = NULL;

/* This backend's slot, while its transaction is authenticated. */
static KillSlot *own_slot = NULL;
static uint64 own_key_id = 0;

static TimeoutId kill_timeout;
static bool kill_timeout_registered = false;

/*
 * Keys of the current transaction that were terminated while they were its
 * identity: should the identity change and come back to one (a savepoint
 * rolled back), it comes back terminated.  Valid for transaction dead_lxid.
 */
static uint64 dead_keys[8];
static int	ndead = 0;
static LocalTransactionId dead_lxid = InvalidLocalTransactionId;

static bool
key_is_dead(uint64 key_id)
{
	if (dead_lxid != AK_MY_LXID)
		return false;
	for (int i = 0; i < ndead; i++)
		if (dead_keys[i] == key_id)
			return true;
	return false;
}

static void
key_died(uint64 key_id)
{
	if (dead_lxid != AK_MY_LXID)
	{
		ndead = 0;
		dead_lxid = AK_MY_LXID;
	}
	if (!key_is_dead(key_id) && ndead < (int) lengthof(dead_keys))
		dead_keys[ndead++] = key_id;
}

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

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

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
 * The identity ended: no more checks, and a cancel the timer raised that
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

void
killswitch_track(bool authenticated, uint64 key_id)
{
	KillSlot   *slot = my_slot();

	if (slot == NULL)
		return;
	if (authenticated && own_slot == slot && own_key_id == key_id)
		return;					/* the same key again: a mark stays */
	if (own_slot == slot && pg_atomic_read_u32(&slot->killed) != 0)
		key_died(own_key_id);
	SpinLockAcquire(&slot->mutex);
	slot->active = authenticated;
	slot->dbid = MyDatabaseId;
	slot->key_id = key_id;
	pg_atomic_write_u32(&slot->killed, authenticated && key_is_dead(key_id) ? 1 : 0);
	SpinLockRelease(&slot->mutex);
	if (authenticated)
	{
		own_slot = slot;
		own_key_id = key_id;
		timer_start();
	}
	else
	{
		own_slot = NULL;
		own_key_id = 0;
		timer_stop();
	}
}

/* Raise when this transaction's key was terminated. */
static void
check_not_killed(void)
{
	if (own_slot == NULL)
		return;
	if (pg_atomic_read_u32(&own_slot->killed) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the API key this transaction authenticated with was revoked"),
				 errdetail("It was revoked with terminate => true: the transaction cannot go on as that key."),
				 errhint("Roll back.")));
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

/* Mark the slots of the keys this transaction terminated (it committed). */
static void
mark_killed(void)
{
	KillSlot   *mine = my_slot();

	for (int i = 0; i < kill_shared->nslots; i++)
	{
		KillSlot   *slot = &kill_shared->slots[i];

		if (slot == mine)
			continue;
		SpinLockAcquire(&slot->mutex);
		if (slot->active && slot->dbid == MyDatabaseId)
			for (int k = 0; k < npending; k++)
				if (slot->key_id == pending[k].key_id)
					pg_atomic_write_u32(&slot->killed, 1);
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
			break;
		case XACT_EVENT_PRE_PREPARE:
			check_not_killed();
			if (npending > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that revoked a key with terminate => true")));
			break;
		case XACT_EVENT_COMMIT:
			if (npending > 0)
				mark_killed();
			npending = 0;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			npending = 0;
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
 * _terminate_at_commit(key_id, required) -> boolean
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
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = kill_emit_log;
}
