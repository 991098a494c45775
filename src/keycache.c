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
 * Bounded by apikey.key_cache_size keys (100000 by default).  While there
 * is room every key verified is remembered; a full cache admits a key only
 * when it is seen again (a small table of keys seen once, the doorkeeper),
 * and then forgets one drawn at random for it: a key verified once does not
 * push out a key in use, and a miss on a full cache allocates and frees
 * nothing.  An entry takes about 90 bytes (plus dynahash's and the
 * doorkeeper's share, about 130 bytes a key in all); the texts and arrays
 * of a key's state are kept once per distinct content (a profile: keys of
 * one tenant and environment with the same scopes share one), together
 * with the result row of a plain valid verification, into which a key's
 * id and expiry are written.  Keys whose state exceeds STATE_MAX_BYTES keep
 * their location only.
 * Everything is forgotten when the key table is rewritten or dropped
 * (relcache invalidation) and when the cache is turned off.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/itup.h"
#include "access/relscan.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "pg_compat.h"
#include "keycache.h"
#include "keyhash.h"
#include "keyid.h"

/* A key whose state takes more than this keeps only its location. */
#define STATE_MAX_BYTES 2048

int			apikey_key_cache_size = 100000;

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
static int	places_allocated = 0;	/* grown as keys come, up to nplaces */
static uint64 draw_state = 0x9E3779B97F4A7C15;

/*
 * The doorkeeper: key ids seen once while the cache was full, one per
 * place of a table a quarter the cache's size, a later key taking the
 * place of an earlier one.  A key found here is admitted.
 */
static uint64 *seen_once = NULL;
static uint32 seen_once_mask = 0;

/* The interned profiles, by the hash of their content. */
struct KeyProfile
{
	KeyProfile *next;			/* same hash */
	uint32		hash;
	int			refcount;		/* keys using it */
	Size		len;			/* of content */
	KeyState	state;			/* key_id, revoked, expires_at unused */
	HeapTuple	valid_row;		/* NULL: none yet */
	int			key_id_offset;	/* in valid_row's header */
	int			expires_at_offset;	/* -1: NULL */
	char	   *content;		/* MAXALIGNed; the state's pointers are into it */
};

typedef struct ProfileBucket
{
	uint32		hash;			/* hash key */
	KeyProfile *first;
} ProfileBucket;

static HTAB *profiles = NULL;

/*
 * Where rows were found, shared by every backend of the server: the same
 * kind of hint, for keys this backend has not verified yet.  Eight places
 * per key id (two buckets of four, below), written and read without a
 * lock: a place torn by concurrent writers yields a location that fails
 * the check every location gets (the row there must carry the key id).
 * The event relay fills them from the primary key index when the server
 * starts (keycache_share_index_locations), so that a key's first
 * verification on the server skips the index too.
 */
#define LOCATION_BUCKET 4

typedef struct SharedLocation
{
	pg_atomic_uint64 key_id;
	pg_atomic_uint64 tid;		/* block and offset, packed */
} SharedLocation;

static int	shared_locations_size = 262144;
static uint64 location_buckets = 0; /* shared_locations_size / LOCATION_BUCKET */
static SharedLocation *shared_locations = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
locations_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SharedLocation) * LOCATION_BUCKET *
									(shared_locations_size / LOCATION_BUCKET)));
}

static void
locations_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	location_buckets = (uint64) shared_locations_size / LOCATION_BUCKET;
	if (location_buckets == 0)
		return;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared_locations = ShmemInitStruct("apikey key locations",
									   sizeof(SharedLocation) * LOCATION_BUCKET * location_buckets,
									   &found);
	if (!found)
		for (uint64 i = 0; i < LOCATION_BUCKET * location_buckets; i++)
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
 * The places are in buckets of LOCATION_BUCKET (64 bytes, a cache line); a
 * key id has two buckets, by its id and by a mix of it (key ids are drawn
 * at random).
 */
static inline SharedLocation *
location_bucket(uint64 key_id, int which)
{
	uint64		h = key_id;

	if (which == 1)
		h = (key_id * UINT64CONST(0x9E3779B97F4A7C15)) ^ (key_id >> 31);
	return &shared_locations[(h % location_buckets) * LOCATION_BUCKET];
}

/*
 * Where another backend found the key's row, if one noted it.  A session
 * that turned its cache off neither reads nor writes these hints.
 */
bool
keycache_shared_location(uint64 key_id, ItemPointer tid)
{
	if (shared_locations == NULL || key_id == 0 || apikey_key_cache_size == 0)
		return false;
	for (int which = 0; which < 2; which++)
	{
		SharedLocation *bucket = location_bucket(key_id, which);

		for (int i = 0; i < LOCATION_BUCKET; i++)
		{
			uint64		packed;

			if (pg_atomic_read_u64(&bucket[i].key_id) != key_id)
				continue;
			packed = pg_atomic_read_u64(&bucket[i].tid);
			ItemPointerSet(tid, (BlockNumber) (packed >> 16), (OffsetNumber) (packed & 0xFFFF));
			return ItemPointerIsValid(tid);
		}
	}
	return false;
}

/*
 * Note where the key's row is: in the place that holds the key already, or
 * a free one of its buckets, or else (evict) a place of its first bucket
 * chosen by the key id; false when not noted.
 */
static bool
share_location(uint64 key_id, ItemPointer tid, bool evict)
{
	SharedLocation *place = NULL;
	SharedLocation *free_place = NULL;

	for (int which = 0; which < 2 && place == NULL; which++)
	{
		SharedLocation *bucket = location_bucket(key_id, which);

		for (int i = 0; i < LOCATION_BUCKET; i++)
		{
			uint64		holder = pg_atomic_read_u64(&bucket[i].key_id);

			if (holder == key_id)
			{
				place = &bucket[i];
				break;
			}
			if (holder == 0 && free_place == NULL)
				free_place = &bucket[i];
		}
	}
	if (place == NULL)
		place = free_place;
	if (place == NULL && evict)
		place = &location_bucket(key_id, 0)[(key_id >> 40) % LOCATION_BUCKET];
	if (place == NULL)
		return false;
	pg_atomic_write_u64(&place->tid, pack_tid(tid));
	pg_atomic_write_u64(&place->key_id, key_id);
	return true;
}

void
keycache_share_location(uint64 key_id, ItemPointer tid)
{
	if (shared_locations == NULL || key_id == 0 || apikey_key_cache_size == 0)
		return;
	(void) share_location(key_id, tid, true);
}

/*
 * Note the location of every key in the primary key index of the key
 * table (its key id is the index's first column), keeping the places
 * already taken: what the index points to is the root of the row's HOT
 * chain, as a verification needs.  Entries of dead rows fail the check
 * later like any stale hint.  Returns how many were noted.
 */
int64
keycache_share_index_locations(Relation heap, Relation index, Snapshot snapshot)
{
	IndexScanDesc scan;
	ItemPointer tid;
	int64		noted = 0;
	int64		seen = 0;

	if (shared_locations == NULL)
		return 0;
	scan = ak_index_beginscan(heap, index, snapshot, 0, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, NULL, 0, NULL, 0);
	while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		d = index_getattr(scan->xs_itup, 1, scan->xs_itupdesc, &isnull);

		if (!isnull && DatumGetKeyId(d) != 0 && share_location(DatumGetKeyId(d), tid, false))
			noted++;
		if (++seen % 4096 == 0)
			CHECK_FOR_INTERRUPTS();
	}
	index_endscan(scan);
	return noted;
}

void
keycache_init(void)
{
	DefineCustomIntVariable("apikey.key_cache_size",
							"Keys per backend whose row location, and state, verification remembers.",
							"0 turns the cache off; a key takes about 130 bytes, and keys of one tenant and environment with the same scopes share their texts.",
							&apikey_key_cache_size,
							100000, 0, 16777216,
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
	seen_once = NULL;
	profiles = NULL;
	cache_stale = false;
}

static void
profile_release(KeyProfile *profile)
{
	ProfileBucket *bucket;
	KeyProfile **link;

	if (profile == NULL || --profile->refcount > 0)
		return;
	bucket = hash_search(profiles, &profile->hash, HASH_FIND, NULL);
	Assert(bucket != NULL);
	for (link = &bucket->first; *link != profile; link = &(*link)->next)
		;
	*link = profile->next;
	if (bucket->first == NULL)
		hash_search(profiles, &profile->hash, HASH_REMOVE, NULL);
	if (profile->valid_row != NULL)
		heap_freetuple(profile->valid_row);
	pfree(profile);
}

/* Drop what an entry holds beside itself. */
static void
entry_clear(CachedKey *entry)
{
	if (entry->has_state)
		profile_release(entry->profile);
	if (entry->previous != NULL)
		pfree(entry->previous);
	entry->profile = NULL;
	entry->previous = NULL;
	entry->has_state = false;
}

/* Forget the entry of a key, if remembered. */
static void
forget(uint64 key_id)
{
	CachedKey  *entry = hash_search(cache, &key_id, HASH_FIND, NULL);

	if (entry == NULL)
		return;
	entry_clear(entry);
	hash_search(cache, &key_id, HASH_REMOVE, NULL);
}

/*
 * A full cache admits a key seen once before (and forgets that it was);
 * otherwise notes it.
 */
static bool
admit(uint64 key_id)
{
	uint32		place = (uint32) ((key_id * UINT64CONST(0x9E3779B97F4A7C15)) >> 32) & seen_once_mask;

	if (seen_once[place] == key_id)
	{
		seen_once[place] = 0;
		return true;
	}
	seen_once[place] = key_id;
	return false;
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
		/*
		 * its buckets for a full cache up front (up to a million keys):
		 * filling it never splits one
		 */
		cache = hash_create("apikey key cache", Min(apikey_key_cache_size, 1048576), &info,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		nplaces = apikey_key_cache_size;
		places_allocated = Min(nplaces, 1024);
		places = MemoryContextAlloc(cache_cxt, sizeof(uint64) * places_allocated);
		places_used = 0;
		seen_once = NULL;
		info.keysize = sizeof(uint32);
		info.entrysize = sizeof(ProfileBucket);
		info.hcxt = cache_cxt;
		profiles = hash_create("apikey key profiles", 64, &info,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
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
	{
		if (places_used == places_allocated)
		{
			places_allocated = Min(nplaces, places_allocated * 2);
			places = repalloc(places, sizeof(uint64) * places_allocated);
		}
		places[places_used++] = key_id;
	}
	else
	{
		/* full: a place at random (xorshift64), its key forgotten */
		int			place;

		if (seen_once == NULL)
		{
			/* the doorkeeper, a quarter the cache's size, once it is full */
			seen_once_mask = 255;
			while (seen_once_mask < (uint32) (nplaces / 4) && seen_once_mask < (1U << 24) - 1)
				seen_once_mask = (seen_once_mask << 1) | 1;
			seen_once = MemoryContextAllocZero(cache_cxt, sizeof(uint64) * (seen_once_mask + 1));
		}
		if (!admit(key_id))
			return NULL;

		draw_state ^= draw_state << 13;
		draw_state ^= draw_state >> 7;
		draw_state ^= draw_state << 17;
		place = (int) (draw_state % (uint64) nplaces);
		forget(places[place]);
		places[place] = key_id;
	}
	entry = hash_search(cache, &key_id, HASH_ENTER, &found);
	entry->has_state = false;
	entry->profile = NULL;
	entry->previous = NULL;
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
 * A profile's content: the shared fields of a key's state, then each of
 * its texts and arrays as a varlena with a 4-byte header (values straight
 * from a row may have a short one; they are never compressed or external
 * here), or a zero word for NULL, each MAXALIGNed, padding zeroed: equal
 * states have equal bytes.
 */
typedef struct ProfileHead
{
	int64		tenant_id;
	bool		has_credits;
	bool		has_expiry;
} ProfileHead;

#define PROFILE_VARLENAS 10

static inline Size
varlena_room(const void *ptr)
{
	return MAXALIGN(ptr == NULL ? sizeof(int32) : VARSIZE_ANY_EXHDR(ptr) + VARHDRSZ);
}

static void *
write_varlena(char **cursor, const void *ptr)
{
	char	   *at = *cursor;
	Size		room = varlena_room(ptr);

	memset(at, 0, room);
	*cursor += room;
	if (ptr == NULL)
		return NULL;
	SET_VARSIZE(at, VARSIZE_ANY_EXHDR(ptr) + VARHDRSZ);
	memcpy(VARDATA(at), VARDATA_ANY(ptr), VARSIZE_ANY_EXHDR(ptr));
	return at;
}

/* Point the state's texts and arrays into content (laid out as above). */
static void
read_content(char *content, KeyState *state)
{
	char	   *cursor = content + MAXALIGN(sizeof(ProfileHead));
	void	  **fields[PROFILE_VARLENAS] = {
		(void **) &state->tenant, (void **) &state->environment,
		(void **) &state->scopes, (void **) &state->resources,
		(void **) &state->owner, (void **) &state->meta,
		(void **) &state->allowed_ips, (void **) &state->rate_limits,
		(void **) &state->tenant_rate_limits, (void **) &state->owner_rate_limits};
	const ProfileHead *head = (const ProfileHead *) content;

	memset(state, 0, sizeof(*state));
	state->tenant_id = head->tenant_id;
	state->has_credits = head->has_credits;
	state->has_expiry = head->has_expiry;
	for (int i = 0; i < PROFILE_VARLENAS; i++)
	{
		bool		null = *(int32 *) cursor == 0;

		*fields[i] = null ? NULL : cursor;
		cursor += null ? MAXALIGN(sizeof(int32)) : MAXALIGN(VARSIZE(cursor));
	}
}

/* The profile of a state (found, or made), its count of users raised; NULL: too big. */
static KeyProfile *
profile_of(const KeyState *state)
{
	static char *buf = NULL;
	const void *fields[PROFILE_VARLENAS] = {
		state->tenant, state->environment, state->scopes, state->resources,
		state->owner, state->meta, state->allowed_ips, state->rate_limits,
		state->tenant_rate_limits, state->owner_rate_limits};
	Size		len = MAXALIGN(sizeof(ProfileHead));
	char	   *cursor;
	ProfileHead *head;
	ProfileBucket *bucket;
	KeyProfile *profile;
	uint32		hash;
	bool		found;

	for (int i = 0; i < PROFILE_VARLENAS; i++)
		len += varlena_room(fields[i]);
	if (len > STATE_MAX_BYTES)
		return NULL;
	if (buf == NULL)
		buf = MemoryContextAlloc(TopMemoryContext, STATE_MAX_BYTES);	/* MAXALIGNed */
	head = (ProfileHead *) buf;
	memset(buf, 0, MAXALIGN(sizeof(ProfileHead)));
	head->tenant_id = state->tenant_id;
	head->has_credits = state->has_credits;
	head->has_expiry = state->has_expiry;
	cursor = buf + MAXALIGN(sizeof(ProfileHead));
	for (int i = 0; i < PROFILE_VARLENAS; i++)
		write_varlena(&cursor, fields[i]);
	Assert(cursor == buf + len);

	hash = hash_bytes((const unsigned char *) buf, (int) len);
	bucket = hash_search(profiles, &hash, HASH_ENTER, &found);
	if (!found)
		bucket->first = NULL;
	for (profile = bucket->first; profile != NULL; profile = profile->next)
		if (profile->len == len && memcmp(profile->content, buf, len) == 0)
		{
			profile->refcount++;
			return profile;
		}
	profile = MemoryContextAlloc(cache_cxt, MAXALIGN(sizeof(KeyProfile)) + len);
	profile->content = (char *) profile + MAXALIGN(sizeof(KeyProfile));
	memcpy(profile->content, buf, len);
	profile->hash = hash;
	profile->len = len;
	profile->refcount = 1;
	profile->valid_row = NULL;
	read_content(profile->content, &profile->state);
	profile->next = bucket->first;
	bucket->first = profile;
	return profile;
}

void
keycache_set_state(CachedKey *entry, const KeyState *state, const uint8 *key_hash,
				   const uint8 *previous_hash, TimestampTz previous_until,
				   const KeyChangeStamp *stamp)
{
	KeyProfile *profile;

	/* the new profile first: it is often the one the entry has */
	profile = profile_of(state);
	entry_clear(entry);
	if (profile == NULL)
		return;
	entry->profile = profile;
	entry->revoked = state->revoked;
	entry->expires_at = state->has_expiry ? state->expires_at : 0;
	memcpy(entry->key_hash, key_hash, KEY_HASH_LEN);
	if (previous_hash != NULL)
	{
		entry->previous = MemoryContextAlloc(cache_cxt, sizeof(CachedPrevious));
		memcpy(entry->previous->hash, previous_hash, KEY_HASH_LEN);
		entry->previous->until = previous_until;
	}
	entry->stamp = *stamp;
	entry->has_state = true;
}

int64
keycache_tenant_id(const CachedKey *entry)
{
	return entry->profile->state.tenant_id;
}

/* The key's state; its texts and arrays are in the cache (valid until the next verification). */
void
keycache_state(const CachedKey *entry, KeyState *key)
{
	*key = entry->profile->state;
	key->key_id = entry->key_id;
	key->revoked = entry->revoked;
	key->expires_at = entry->expires_at;
}

/*
 * Is hash the cached key's secret (or its previous one, within a roll's
 * grace period)?  When it is, the key's state.
 */
bool
keycache_prove(const CachedKey *entry, const uint8 *hash, TimestampTz now, KeyState *key)
{
	if (!key_hash_equal(entry->key_hash, hash) &&
		!(entry->previous != NULL && now < entry->previous->until &&
		  key_hash_equal(entry->previous->hash, hash)))
		return false;
	keycache_state(entry, key);
	return true;
}

/*
 * Where attribute attno (0-based) of a formed tuple starts, from the
 * start of its header; -1 when it is NULL.
 */
static int
attribute_offset(HeapTuple tuple, TupleDesc tupdesc, int attno)
{
	HeapTupleHeader header = tuple->t_data;
	char	   *data = (char *) header + header->t_hoff;
	bool		hasnulls = HeapTupleHasNulls(tuple);
	uint32		off = 0;

	for (int i = 0; i <= attno; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (hasnulls && att_isnull(i, header->t_bits))
		{
			if (i == attno)
				return -1;
			continue;
		}
		off = att_align_pointer(off, att->attalign, att->attlen, data + off);
		if (i == attno)
			break;
		off = att_addlength_pointer(off, att->attlen, data + off);
	}
	return (int) (header->t_hoff + off);
}

/*
 * Remember the result row of a plain valid verification of the key (made
 * for tupdesc) for the keys of its profile: the columns key_id_attno and
 * expires_at_attno (0-based, 8-byte values passed by value) are written
 * into a copy for each key.
 */
void
keycache_set_valid_result(CachedKey *entry, HeapTuple tuple, TupleDesc tupdesc,
						  int key_id_attno, int expires_at_attno)
{
	KeyProfile *profile = entry->profile;
	MemoryContext old;

	if (!entry->has_state || profile->valid_row != NULL ||
		key_id_attno >= tupdesc->natts || expires_at_attno >= tupdesc->natts ||
		TupleDescAttr(tupdesc, key_id_attno)->attlen != sizeof(int64) ||
		!TupleDescAttr(tupdesc, key_id_attno)->attbyval ||
		TupleDescAttr(tupdesc, expires_at_attno)->attlen != sizeof(int64) ||
		!TupleDescAttr(tupdesc, expires_at_attno)->attbyval)
		return;
	profile->key_id_offset = attribute_offset(tuple, tupdesc, key_id_attno);
	profile->expires_at_offset = attribute_offset(tuple, tupdesc, expires_at_attno);
	if (profile->key_id_offset < 0 ||
		(profile->expires_at_offset < 0) == profile->state.has_expiry)
		return;
	old = MemoryContextSwitchTo(cache_cxt);
	profile->valid_row = heap_copytuple(tuple);
	MemoryContextSwitchTo(old);
}

/*
 * The result row of a plain valid verification of the key, when its
 * profile has one of tupdesc's type.  (The type is another one after the
 * extension was dropped and created again, or in a database of another
 * version.)
 */
bool
keycache_valid_result(const CachedKey *entry, TupleDesc tupdesc, Datum *result)
{
	HeapTuple	row;
	HeapTupleHeader copy;
	int64		key_id = (int64) entry->key_id;

	if (!entry->has_state || (row = entry->profile->valid_row) == NULL ||
		HeapTupleHeaderGetTypeId(row->t_data) != tupdesc->tdtypeid ||
		HeapTupleHeaderGetNatts(row->t_data) != tupdesc->natts)
		return false;
	*result = heap_copy_tuple_as_datum(row, tupdesc);
	copy = DatumGetHeapTupleHeader(*result);
	memcpy((char *) copy + entry->profile->key_id_offset, &key_id, sizeof(int64));
	if (entry->profile->expires_at_offset >= 0)
		memcpy((char *) copy + entry->profile->expires_at_offset, &entry->expires_at,
			   sizeof(TimestampTz));
	return true;
}
