/*
 * keychange.c
 *		Change counters of apikey.keys in shared memory: what lets a backend
 *		reuse the state of a key it verified before.
 *
 * A trigger on apikey.keys notes, in backend memory, every key a
 * transaction updates or deletes (and a TRUNCATE).  When the transaction
 * has committed, that is after its changes became visible to new
 * snapshots and before the client hears of the commit, the backend
 * increments a counter per changed key (one of KEY_CHANGE_SLOTS, chosen by
 * the key id; for more than MAX_LOCAL_CHANGES keys, once per slot they
 * fall in) or, for a TRUNCATE, a global counter.  A change of many keys
 * thus stops the cached states of the keys that share their slots, not of
 * every key: a tenant that changes its own keys again and again costs the
 * other tenants' caches about its keys / KEY_CHANGE_SLOTS of their hits.  A
 * cached state stamped with the counters read before the row was read is
 * therefore current exactly as long as both counters are unchanged: a
 * change committed before the stamp was taken is in the row read after
 * it, and one committed after it moves a counter before any client can
 * know of it.
 *
 * The cache is not used where this reasoning does not hold:
 *	- in a transaction that changed keys itself (its own changes are not
 *	  committed, so no counter moved);
 *	- in REPEATABLE READ and SERIALIZABLE transactions, which must see keys
 *	  as of their snapshot, not newer;
 *	- during recovery (a standby replays changes without triggers or
 *	  commit callbacks);
 *	- while a prepared transaction that changed keys is undecided (its
 *	  COMMIT PREPARED runs in another backend): the first verification
 *	  after it is decided moves the global counter.
 *
 * Needs shared_preload_libraries = 'apikey'; without it, nothing is cached
 * beyond where rows are.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/htup_details.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "port/atomics.h"
#include "port/pg_bitutils.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/rel.h"

#include "apikey.h"
#include "keychange.h"
#include "keyid.h"

#define KEY_CHANGE_SLOTS	65536	/* 512 kB of counters */
#define MAX_PREPARED		64
#define MAX_LOCAL_CHANGES	64

typedef struct KeyChangeShared
{
	pg_atomic_uint64 global;
	pg_atomic_uint32 nprepared;
	LWLock	   *lock;			/* protects prepared[] */
	TransactionId prepared[MAX_PREPARED];
	pg_atomic_uint64 slots[KEY_CHANGE_SLOTS];
} KeyChangeShared;

static KeyChangeShared *shared = NULL;

/*
 * What this transaction changed, noted by the trigger: the key ids while
 * they are few, and the slots they fall in always.
 */
static bool changed_any = false;
static bool changed_all = false;	/* a TRUNCATE, or a key without an id */
static int	nchanged = 0;
static uint64 changed[MAX_LOCAL_CHANGES];
static uint64 changed_slots[KEY_CHANGE_SLOTS / 64];

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static inline int
slot_of(uint64 key_id)
{
	/* key ids are random: their low bits spread evenly */
	return (int) (key_id % KEY_CHANGE_SLOTS);
}

static void
keychange_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(KeyChangeShared)));
	RequestNamedLWLockTranche("apikey key changes", 1);
}

static void
keychange_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("apikey key changes", sizeof(KeyChangeShared), &found);
	if (!found)
	{
		pg_atomic_init_u64(&shared->global, 0);
		pg_atomic_init_u32(&shared->nprepared, 0);
		shared->lock = &(GetNamedLWLockTranche("apikey key changes"))->lock;
		for (int i = 0; i < KEY_CHANGE_SLOTS; i++)
			pg_atomic_init_u64(&shared->slots[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
forget_changes(void)
{
	if (nchanged > MAX_LOCAL_CHANGES)
		memset(changed_slots, 0, sizeof(changed_slots));
	else
		for (int i = 0; i < nchanged; i++)
			changed_slots[slot_of(changed[i]) / 64] = 0;
	changed_any = changed_all = false;
	nchanged = 0;
}

/* Move the counter of every slot a changed key falls in, once. */
static void
move_changed_slots(void)
{
	if (nchanged <= MAX_LOCAL_CHANGES)
	{
		for (int i = 0; i < nchanged; i++)
		{
			int			slot = slot_of(changed[i]);
			uint64		bit = UINT64CONST(1) << (slot % 64);

			if (changed_slots[slot / 64] & bit)
			{
				pg_atomic_fetch_add_u64(&shared->slots[slot], 1);
				changed_slots[slot / 64] &= ~bit;
			}
		}
		return;
	}
	for (int w = 0; w < KEY_CHANGE_SLOTS / 64; w++)
		for (uint64 bits = changed_slots[w]; bits != 0; bits &= bits - 1)
			pg_atomic_fetch_add_u64(&shared->slots[w * 64 + pg_rightmost_one_pos64(bits)], 1);
}

static void
keychange_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			/* committed and visible: move the counters before anyone hears of it */
			if (changed_any && shared != NULL)
			{
				if (changed_all)
					pg_atomic_fetch_add_u64(&shared->global, 1);
				else
					move_changed_slots();
			}
			forget_changes();
			break;
		case XACT_EVENT_PRE_PREPARE:
			/* decided later, elsewhere: caches wait until it is */
			if (changed_any && shared != NULL)
			{
				TransactionId xid = GetTopTransactionId();
				bool		full;

				LWLockAcquire(shared->lock, LW_EXCLUSIVE);
				full = pg_atomic_read_u32(&shared->nprepared) >= MAX_PREPARED;
				if (!full)
				{
					shared->prepared[pg_atomic_read_u32(&shared->nprepared)] = xid;
					pg_atomic_fetch_add_u32(&shared->nprepared, 1);
				}
				LWLockRelease(shared->lock);
				if (full)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("too many prepared transactions that change API keys"),
							 errdetail("At most %d may wait to be committed or rolled back at a time.",
									   MAX_PREPARED)));
			}
			forget_changes();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			forget_changes();
			break;
		default:
			break;
	}
}

/*
 * Prepared transactions that changed keys and are decided now are
 * forgotten, after moving the global counter.  Returns whether none is
 * left undecided.
 */
static bool
prepared_all_decided(void)
{
	bool		undecided = false;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < (int) pg_atomic_read_u32(&shared->nprepared);)
	{
		if (TransactionIdIsInProgress(shared->prepared[i]))
		{
			undecided = true;
			i++;
			continue;
		}
		/* committed (or rolled back): its changes are visible now */
		pg_atomic_fetch_add_u64(&shared->global, 1);
		shared->prepared[i] = shared->prepared[pg_atomic_read_u32(&shared->nprepared) - 1];
		pg_atomic_fetch_sub_u32(&shared->nprepared, 1);
	}
	LWLockRelease(shared->lock);
	return !undecided;
}

/* May this verification use (and fill) cached key states? */
bool
keychange_cache_allowed(void)
{
	if (shared == NULL || changed_any || IsolationUsesXactSnapshot() ||
		RecoveryInProgress())
		return false;
	if (pg_atomic_read_u32(&shared->nprepared) != 0 && !prepared_all_decided())
		return false;
	return true;
}

/* The counters a key's cached state depends on, read now. */
void
keychange_stamp(uint64 key_id, KeyChangeStamp *stamp)
{
	stamp->global = pg_atomic_read_u64(&shared->global);
	stamp->slot = pg_atomic_read_u64(&shared->slots[slot_of(key_id)]);
	/* read before the row (the caller's snapshot) is */
	pg_memory_barrier();
}

/* Has no change to the key committed since the stamp was taken? */
bool
keychange_unchanged(uint64 key_id, const KeyChangeStamp *stamp)
{
	return pg_atomic_read_u64(&shared->slots[slot_of(key_id)]) == stamp->slot &&
		pg_atomic_read_u64(&shared->global) == stamp->global;
}

/*
 * apikey_internal.key_changed(): the trigger on apikey.keys (BEFORE UPDATE OR
 * DELETE, for each row; BEFORE TRUNCATE, for each statement) that notes what
 * this transaction changes.
 */
PG_FUNCTION_INFO_V1(key_changed);
Datum
key_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	bool		isnull;
	Datum		key_id;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("apikey_internal.key_changed() is a trigger function")));
	changed_any = true;
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
	{
		changed_all = true;
		return PointerGetDatum(NULL);
	}
	if (!changed_all)
	{
		int			slot;
		uint64		bit;

		key_id = heap_getattr(trigdata->tg_trigtuple,
							  attnameAttNum(trigdata->tg_relation, "key_id", false),
							  RelationGetDescr(trigdata->tg_relation), &isnull);
		if (isnull)
		{
			changed_all = true;
			return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
								   trigdata->tg_newtuple : trigdata->tg_trigtuple);
		}
		slot = slot_of(DatumGetKeyId(key_id));
		bit = UINT64CONST(1) << (slot % 64);
		/* a key changed again (or one sharing its slot) is noted once */
		if ((changed_slots[slot / 64] & bit) == 0)
		{
			changed_slots[slot / 64] |= bit;
			if (nchanged < MAX_LOCAL_CHANGES)
				changed[nchanged] = DatumGetKeyId(key_id);
			nchanged++;
		}
	}
	return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
						   trigdata->tg_newtuple : trigdata->tg_trigtuple);
}

void
keychange_init(void)
{
	RegisterXactCallback(keychange_xact_callback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = keychange_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = keychange_shmem_startup;
}
