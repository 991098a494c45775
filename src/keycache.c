/*
 * keycache.c
 *		What a backend remembers of the keys it verified: where each key's
 *		row was and, when shared memory allows it, the key's whole state.
 *
 * The location is a hint: the row is fetched there with the statement's
 * snapshot and must still carry the key id, otherwise the index is asked.
 * The state (hashes, scopes, ...) is used instead of the row only while
 * keychange.c's counters say that no change to the key has committed since
 * it was read; then a verification touches no table and takes no lock.
 *
 * Bounded by apikey.key_cache_size entries; a full cache forgets one
 * drawn at random for each new one.  An entry takes about 200 bytes plus
 * the key's state (its texts and arrays, typically 100 to 300 bytes; keys
 * whose state exceeds STATE_MAX_BYTES keep their location only).
 * Everything is forgotten when the key table is rewritten or dropped
 * (relcache invalidation) and when the cache is turned off.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "keycache.h"
#include "keyhash.h"

/* A key whose state takes more than this keeps only its location. */
#define STATE_MAX_BYTES 2048

int			apikey_key_cache_size = 16384;

static MemoryContext cache_cxt = NULL;
static HTAB *cache = NULL;
static bool cache_stale = false;

/*
 * The remembered key ids, one per place (apikey.key_cache_size places): a
 * full cache forgets the key of a place drawn at random, so that keys
 * verified in a cycle longer than the cache still hit in proportion.
 */
static uint64 *places = NULL;
static int	nplaces = 0;
static int	places_used = 0;
static uint64 draw_state = 0x9E3779B97F4A7C15;

/*
 * Where rows were found, shared by every backend of the server: the same
 * kind of hint, for keys this backend has not verified yet.  One place per
 * key id modulo their number, written and read without a lock: a place
 * torn by concurrent writers yields a location that fails the check every
 * location gets (the row there must carry the key id).
 */
typedef struct SharedLocation
{
	pg_atomic_uint64 key_id;
	pg_atomic_uint64 tid;		/* block and offset, packed */
} SharedLocation;

static int	shared_locations_size = 262144;
static SharedLocation *shared_locations = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
locations_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SharedLocation) * shared_locations_size));
}

static void
locations_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	if (shared_locations_size == 0)
		return;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared_locations = ShmemInitStruct("apikey key locations",
									   sizeof(SharedLocation) * shared_locations_size, &found);
	if (!found)
		for (int i = 0; i < shared_locations_size; i++)
		{
			pg_atomic_init_u64(&shared_locations[i].key_id, 0);
			pg_atomic_init_u64(&shared_locations[i].tid, 0);
		}
	LWLockRelease(AddinShmemInitLock);
}

static inline uint64
pack_tid(ItemPointer tid)
{
	return ((uint64) ItemPointerGetBlockNumberNoCheck(tid) << 16) |
		ItemPointerGetOffsetNumberNoCheck(tid);
}

/*
 * Where another backend found the key's row, if one noted it.  A session
 * that turned its cache off neither reads nor writes these hints.
 */
bool
keycache_shared_location(uint64 key_id, ItemPointer tid)
{
	SharedLocation *place;
	uint64		packed;

	if (shared_locations == NULL || key_id == 0 || apikey_key_cache_size == 0)
		return false;
	place = &shared_locations[key_id % shared_locations_size];
	if (pg_atomic_read_u64(&place->key_id) != key_id)
		return false;
	packed = pg_atomic_read_u64(&place->tid);
	ItemPointerSet(tid, (BlockNumber) (packed >> 16), (OffsetNumber) (packed & 0xFFFF));
	return ItemPointerIsValid(tid);
}

void
keycache_share_location(uint64 key_id, ItemPointer tid)
{
	SharedLocation *place;

	if (shared_locations == NULL || key_id == 0 || apikey_key_cache_size == 0)
		return;
	place = &shared_locations[key_id % shared_locations_size];
	pg_atomic_write_u64(&place->tid, pack_tid(tid));
	pg_atomic_write_u64(&place->key_id, key_id);
}

void
keycache_init(void)
{
	DefineCustomIntVariable("apikey.key_cache_size",
							"Keys per backend whose row location, and state, verification remembers.",
							"0 turns the cache off; a key with two scopes takes about 730 bytes.",
							&apikey_key_cache_size,
							16384, 0, 16777216,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("apikey.shared_key_locations",
							"Keys whose row location every backend shares (shared memory; 0: none).",
							"Each takes 16 bytes.",
							&shared_locations_size,
							262144, 0, 67108864,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = locations_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = locations_shmem_startup;
}

void
keycache_forget_all(void)
{
	cache_stale = true;
}

static void
cache_reset(void)
{
	if (cache_cxt != NULL)
		MemoryContextReset(cache_cxt);
	cache = NULL;
	places = NULL;
	cache_stale = false;
}

/* Forget the entry of a key, if remembered. */
static void
forget(uint64 key_id)
{
	CachedKey  *entry = hash_search(cache, &key_id, HASH_FIND, NULL);

	if (entry == NULL)
		return;
	if (entry->data != NULL)
		pfree(entry->data);
	if (entry->valid_result != NULL)
		heap_freetuple(entry->valid_result);
	hash_search(cache, &key_id, HASH_REMOVE, NULL);
}

CachedKey *
keycache_lookup(uint64 key_id, bool create)
{
	CachedKey  *entry;
	bool		found;

	if (cache_stale || apikey_key_cache_size == 0)
		cache_reset();
	if (apikey_key_cache_size == 0)
		return NULL;
	if (cache == NULL)
	{
		HASHCTL		info;

		if (!create)
			return NULL;
		if (cache_cxt == NULL)
			cache_cxt = AllocSetContextCreate(TopMemoryContext, "apikey key cache",
											  ALLOCSET_DEFAULT_SIZES);
		info.keysize = sizeof(uint64);
		info.entrysize = sizeof(CachedKey);
		info.hcxt = cache_cxt;
		cache = hash_create("apikey key cache", 1024, &info,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		nplaces = apikey_key_cache_size;
		places = MemoryContextAllocZero(cache_cxt, sizeof(uint64) * nplaces);
		places_used = 0;
	}
	if (!create)
		return hash_search(cache, &key_id, HASH_FIND, NULL);
	entry = hash_search(cache, &key_id, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;
	/* the size changed: start over at the new size */
	if (nplaces != apikey_key_cache_size)
	{
		cache_reset();
		return keycache_lookup(key_id, create);
	}
	if (places_used < nplaces)
		places[places_used++] = key_id;
	else
	{
		/* full: a place at random (xorshift64), its key forgotten */
		int			place;

		draw_state ^= draw_state << 13;
		draw_state ^= draw_state >> 7;
		draw_state ^= draw_state << 17;
		place = (int) (draw_state % (uint64) nplaces);
		forget(places[place]);
		places[place] = key_id;
	}
	entry = hash_search(cache, &key_id, HASH_ENTER, &found);
	entry->has_state = false;
	entry->data = NULL;
	entry->valid_result = NULL;
	ItemPointerSetInvalid(&entry->tid);
	return entry;
}

void
keycache_forget(uint64 key_id)
{
	if (cache == NULL || cache_stale)
		return;
	forget(key_id);
}

/*
 * Room for a varlena of the state (0 for NULL), copied with a 4-byte
 * header whatever header it has (values straight from a row may have a
 * short one; they are never compressed or external here).
 */
static inline Size
varlena_room(const void *ptr)
{
	return ptr == NULL ? 0 : MAXALIGN(VARSIZE_ANY_EXHDR(ptr) + VARHDRSZ);
}

static inline void *
copy_into(char **cursor, const void *ptr)
{
	char	   *copy;

	if (ptr == NULL)
		return NULL;
	copy = *cursor;
	SET_VARSIZE(copy, VARSIZE_ANY_EXHDR(ptr) + VARHDRSZ);
	memcpy(VARDATA(copy), VARDATA_ANY(ptr), VARSIZE_ANY_EXHDR(ptr));
	*cursor += varlena_room(ptr);
	return copy;
}

void
keycache_set_state(CachedKey *entry, const KeyState *state, const uint8 *key_hash,
				   const uint8 *previous_hash, TimestampTz previous_until,
				   const KeyChangeStamp *stamp)
{
	Size		room;
	char	   *cursor;

	if (entry->data != NULL)
		pfree(entry->data);
	if (entry->valid_result != NULL)
		heap_freetuple(entry->valid_result);
	entry->data = NULL;
	entry->valid_result = NULL;
	entry->has_state = false;

	room = varlena_room(state->tenant) + varlena_room(state->environment) +
		varlena_room(state->scopes) + varlena_room(state->resources) +
		varlena_room(state->owner) + varlena_room(state->meta) +
		varlena_room(state->allowed_ips) + varlena_room(state->rate_limits) +
		varlena_room(state->tenant_rate_limits) + varlena_room(state->owner_rate_limits);
	if (room > STATE_MAX_BYTES)
		return;

	entry->data = cursor = MemoryContextAlloc(cache_cxt, Max(room, 1));
	entry->state = *state;
	entry->state.tenant = copy_into(&cursor, state->tenant);
	entry->state.environment = copy_into(&cursor, state->environment);
	entry->state.scopes = copy_into(&cursor, state->scopes);
	entry->state.resources = copy_into(&cursor, state->resources);
	entry->state.owner = copy_into(&cursor, state->owner);
	entry->state.meta = copy_into(&cursor, state->meta);
	entry->state.allowed_ips = copy_into(&cursor, state->allowed_ips);
	entry->state.rate_limits = copy_into(&cursor, state->rate_limits);
	entry->state.tenant_rate_limits = copy_into(&cursor, state->tenant_rate_limits);
	entry->state.owner_rate_limits = copy_into(&cursor, state->owner_rate_limits);
	memcpy(entry->key_hash, key_hash, KEY_HASH_LEN);
	entry->has_previous = previous_hash != NULL;
	if (entry->has_previous)
	{
		memcpy(entry->previous_hash, previous_hash, KEY_HASH_LEN);
		entry->previous_until = previous_until;
	}
	entry->stamp = *stamp;
	entry->has_state = true;
}

/* Remember the result row of a plain valid verification of the key. */
void
keycache_set_valid_result(CachedKey *entry, HeapTuple tuple)
{
	MemoryContext old = MemoryContextSwitchTo(cache_cxt);

	if (entry->valid_result != NULL)
		heap_freetuple(entry->valid_result);
	entry->valid_result = heap_copytuple(tuple);
	MemoryContextSwitchTo(old);
}

/*
 * Is hash the cached key's secret (or its previous one, within a roll's
 * grace period)?  When it is, the key's state.  The state's pointers are
 * into the cache: valid until the next verification.
 */
bool
keycache_prove(const CachedKey *entry, const uint8 *hash, TimestampTz now, KeyState *key)
{
	if (!key_hash_equal(entry->key_hash, hash) &&
		!(entry->has_previous && now < entry->previous_until &&
		  key_hash_equal(entry->previous_hash, hash)))
		return false;
	*key = entry->state;
	return true;
}
