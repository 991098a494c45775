/*
 * ratelimit.c
 *		Rate limits of keys, tenants and key owners, and of any identifier
 *		(rate_limit_take): at most max_requests units per interval,
 *		counted in shared memory, per server.
 *
 * The algorithm: a sliding window of sub-windows, all of them counted.  A
 * limit of N per W counts in sub-windows of g = ceil(W / 31).  A request at
 * time t, in sub-window i = floor(t / g), is admitted when the units taken
 * in sub-windows i - 31 .. i, plus its own, are at most N.  Those 32
 * sub-windows cover at least the last W (and at most W + g), so no interval
 * of length W ever holds more than N admitted units; a request may be
 * refused by at most one sub-window (1/31 of W) earlier than an exact
 * sliding log would refuse it.  A fixed window admits up to 2N across a
 * boundary, a sliding-window counter estimates (and exceeds N), a token
 * bucket admits its burst plus its refill (up to 2N - 1 in W); an exact log
 * needs memory that grows with N.  (doc/usage-control.md, "Rate limits".)
 *
 * The state is a bucket per (database, key or tenant, limit name) in one of
 * RL_PARTITIONS open-addressing hash tables (linear probing, at most 3/4
 * full), each under its own LWLock: a lookup is one probe of one cache line
 * in the common case.  The limits of an owner (tenant, owner, limit name)
 * and the identifiers of rate_limit_take (tenant or global, namespace,
 * identifier, window) are texts of any length: their buckets are named by
 * a SHA-256 of them keyed with a random seed of the server, which also
 * places them, so no one can choose names that crowd one slot.  A
 * verification
 * locks the partitions of every limit that applies (in partition order, so
 * backends never deadlock), checks them all, then takes from all or from
 * none: concurrent verifications never admit more than a limit allows.
 * Memory is bounded by apikey.rate_limit_buckets.  A partition that is full
 * reuses its idle buckets (whose window has passed, so they count nothing);
 * when none is idle, a request that needs a new bucket is refused as
 * rate_limited and counted (rate_limit_status): full never means unlimited.
 *
 * The table is shared by every tenant of every database, so no tenant may
 * take what the others need: each partition counts the buckets each tenant
 * holds in it, and a tenant that holds its share
 * (apikey.rate_limit_tenant_share percent of the partition) may not take
 * any of the partition's last share of free buckets: they are kept for
 * the tenants below their share.  A tenant alone may still use most of the
 * table; however one tenant sets its limits (366 days, used once), the
 * others keep a share among them.  A request refused for
 * capacity is counted per tenant (rate_limit_tenants) and logged, without
 * a secret, at most once a minute per tenant.  Buckets are not taken from
 * a tenant once held: the counts in them are what its limits promise.
 *
 * Limits are per server (a standby counts its own; with
 * apikey.rate_limit_servers = N each admits max_requests / N, rounded down,
 * so that N servers together never admit more than the limit), not
 * transactional (a rolled-back request was counted) and start empty when
 * the server starts.
 * Without shared_preload_libraries = 'apikey' there is no shared memory:
 * setting a limit is an error, and so is verifying a key that has one.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/arrayaccess.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"

#include "pg_compat.h"
#include "apikey.h"
#include "delegation.h"
#include "identity.h"
#include "keyhash.h"
#include "ratelimit.h"

/* validate.c: a value as an error message may show it */
extern Datum shown_value(PG_FUNCTION_ARGS);

#define RL_SLOTS			32	/* the present sub-window and the 31 before */
#define RL_SUBWINDOWS		(RL_SLOTS - 1)
#define RL_PARTITION_BITS	5
#define RL_PARTITIONS		(1 << RL_PARTITION_BITS)

#define RL_KIND_KEY			1
#define RL_KIND_TENANT		2
#define RL_KIND_OWNER		3	/* named by a digest of owner and limit name */
#define RL_KIND_TAKE		4	/* named by a digest of namespace, identifier, per */

/* rate_limit_take: how long a namespace and an identifier may be */
#define RL_NAMESPACE_LEN	64
#define RL_IDENTIFIER_LEN	1024

/* the lengths of time a limit may count over */
#define RL_MIN_PER_US		(USECS_PER_SEC / 1000)
#define RL_MAX_PER_US		(INT64CONST(366) * USECS_PER_DAY)

/* 192 bytes: the key and the clock in one cache line, the counts in two */
typedef struct RateBucket
{
	RateKey		key;			/* key.kind 0: a free slot */
	int64		slot_us;		/* length of a sub-window */
	int64		newest;			/* index of the newest sub-window counted */
	uint32		counts[RL_SLOTS];	/* sub-window j in counts[j % RL_SLOTS] */
} RateBucket;

StaticAssertDecl(sizeof(RateBucket) == 3 * 64, "a bucket is three cache lines");

/*
 * How many buckets a tenant holds in a partition: an open-addressing table
 * per partition (as many slots as buckets, so never more than 3/4 full),
 * under the partition's lock.
 */
typedef struct RateHolder
{
	Oid			dbid;			/* with held 0: a free slot */
	uint32		held;
	int64		tenant;
} RateHolder;

/* Requests of a tenant refused for want of a bucket (the last few tenants). */
#define RL_REFUSAL_RECORDS	64
#define RL_LOG_EVERY_US		(60 * USECS_PER_SEC)

typedef struct RateRefusal
{
	Oid			dbid;			/* InvalidOid: unused */
	int64		tenant;
	uint64		refused;
	TimestampTz last;
	TimestampTz logged;
} RateRefusal;

typedef struct RateShared
{
	LWLockPadded *locks;		/* one per partition */
	pg_atomic_uint64 refused_full;	/* requests refused for want of a bucket */
	uint32		slots;			/* slots per partition */
	uint32		limit;			/* buckets a partition may hold (<= 3/4 of slots) */
	uint32		used[RL_PARTITIONS];	/* buckets each partition holds */
	/* no bucket of the partition is idle before this time (a scan finds none) */
	TimestampTz idle_at[RL_PARTITIONS];
	slock_t		refusals_lock;
	RateRefusal refusals[RL_REFUSAL_RECORDS];
	/*
	 * Secret of this server's digests of names chosen outside (owners,
	 * identifiers): no one can choose names that crowd into one slot.
	 */
	uint8		seed[16];
} RateShared;

static int	rate_limit_buckets = 32768;
static int	rate_limit_tenant_share = 25;	/* percent of each partition */
static int	rate_limit_servers = 1;	/* each server admits 1/N of a limit */
static bool rate_preloaded = false;
static RateShared *rate_shared = NULL;
static RateBucket *rate_buckets = NULL; /* partition p: slots p * slots .. */
static int64 *rate_bucket_tenants = NULL;	/* the tenant of each bucket slot */
static RateHolder *rate_holders = NULL; /* partition p: slots p * slots .. */

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* One limit that applies to a verification. */
typedef struct AppliedLimit
{
	RateKey		key;
	uint32		hash;
	int			partition;
	int64		max;
	int64		slot_us;
	int64		tenant;			/* whose share its bucket counts in */
	RateBucket *bucket;
} AppliedLimit;

/* Why a request found no bucket. */
typedef enum RateRefusalReason
{
	RL_ROOM,					/* it did not: there was room */
	RL_FULL,					/* the partition is full */
	RL_SHARE					/* its tenant holds its share, only the reserve is left */
} RateRefusalReason;

/* Buckets a partition may hold, and the slots it has for them. */
static inline uint32
partition_limit(void)
{
	return (rate_limit_buckets + RL_PARTITIONS - 1) / RL_PARTITIONS;
}

static inline uint32
partition_slots(void)
{
	return partition_limit() + partition_limit() / 3 + 1;
}

static Size
rate_shmem_size(void)
{
	Size		slots = mul_size(RL_PARTITIONS, partition_slots());

	return add_size(add_size(MAXALIGN(sizeof(RateShared)) + PG_CACHE_LINE_SIZE,
							 mul_size(slots, sizeof(RateBucket))),
					mul_size(slots, sizeof(int64) + sizeof(RateHolder)));
}

static void
rate_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(rate_shmem_size());
	RequestNamedLWLockTranche("apikey rate limits", RL_PARTITIONS);
}

static void
rate_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	rate_shared = ShmemInitStruct("apikey rate limits", rate_shmem_size(), &found);
	rate_buckets = (RateBucket *) TYPEALIGN(PG_CACHE_LINE_SIZE,
											(char *) rate_shared + MAXALIGN(sizeof(RateShared)));
	rate_bucket_tenants = (int64 *) (rate_buckets + (Size) RL_PARTITIONS * partition_slots());
	rate_holders = (RateHolder *) (rate_bucket_tenants + (Size) RL_PARTITIONS * partition_slots());
	if (!found)
	{
		rate_shared->locks = GetNamedLWLockTranche("apikey rate limits");
		pg_atomic_init_u64(&rate_shared->refused_full, 0);
		rate_shared->slots = partition_slots();
		rate_shared->limit = partition_limit();
		memset(rate_shared->used, 0, sizeof(rate_shared->used));
		memset(rate_shared->idle_at, 0, sizeof(rate_shared->idle_at));
		SpinLockInit(&rate_shared->refusals_lock);
		memset(rate_shared->refusals, 0, sizeof(rate_shared->refusals));
		if (!pg_strong_random(rate_shared->seed, sizeof(rate_shared->seed)))
			ereport(FATAL,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random seed for apikey's rate limits")));
		/* every slot free (key.kind 0, held 0) */
		memset(rate_buckets, 0, (Size) RL_PARTITIONS * partition_slots() * sizeof(RateBucket));
		memset(rate_bucket_tenants, 0, (Size) RL_PARTITIONS * partition_slots() * sizeof(int64));
		memset(rate_holders, 0, (Size) RL_PARTITIONS * partition_slots() * sizeof(RateHolder));
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The hash of a bucket key leaves the limit's name out: all the limits of
 * a key (or tenant) share a partition and a home slot, so they sit side by
 * side, and where they are is known from the key id alone, before the
 * key's row is read (ratelimit_prefetch).
 */
static inline uint32
owner_hash(Oid dbid, uint32 kind, uint64 owner)
{
	uint32		h = murmurhash32(dbid);

	h = hash_combine(h, murmurhash32(kind));
	h = hash_combine(h, murmurhash32((uint32) owner));
	h = hash_combine(h, murmurhash32((uint32) (owner >> 32)));
	return murmurhash32(h);
}

static inline uint32
rate_key_hash(const RateKey *key)
{
	uint32		h = owner_hash(key->dbid, key->kind, key->owner);

	/*
	 * A limit named by a digest has a place of its own: a tenant's owners
	 * and identifiers spread over every partition (the digest is keyed
	 * with the server's seed, so that place cannot be chosen).
	 */
	if (key->kind == RL_KIND_OWNER || key->kind == RL_KIND_TAKE)
	{
		uint32		d;

		memcpy(&d, key->name, sizeof(d));
		h = murmurhash32(h ^ d);
	}
	return h;
}

/*
 * The name of a bucket made of texts of any length: SHA-256 over the
 * server's seed and the pieces, a zero byte between them (no text holds
 * one, so no two lists of texts run together the same way; the last piece
 * may be binary, of a fixed length).
 */
static void
digest_name(RateKey *key, int n, const char *const *pieces, const size_t *lens)
{
	const char *all[8];
	size_t		all_lens[8];
	static const char zero = 0;
	int			m = 0;

	Assert(2 * n <= (int) lengthof(all));
	StaticAssertStmt(RL_NAME_LEN == KEY_HASH_LEN, "a name holds a SHA-256");
	all[m] = (const char *) rate_shared->seed;
	all_lens[m++] = sizeof(rate_shared->seed);
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
		{
			all[m] = &zero;
			all_lens[m++] = 1;
		}
		all[m] = pieces[i];
		all_lens[m++] = lens[i];
	}
	key_hash_pieces(m, all, all_lens, (uint8 *) key->name);
}

/*
 * The slot a key hashes to in its partition: the low bits of its hash (the
 * partition took the top ones) scaled to the number of slots, no division.
 */
static inline uint32
home_slot(uint32 hash)
{
	return (uint32) (((uint64) (hash & ((1U << (32 - RL_PARTITION_BITS)) - 1)) * rate_shared->slots) >>
					 (32 - RL_PARTITION_BITS));
}

static inline RateBucket *
partition_slot(int partition, uint32 i)
{
	return &rate_buckets[(Size) partition * rate_shared->slots + i];
}

/*
 * Start fetching where a key's own limits would be, while verification is
 * still busy with the key text: a bucket is usually out of the CPU's caches.
 */
void
ratelimit_prefetch(uint64 key_id)
{
	uint32		hash;
	const char *b;

	if (rate_shared == NULL)
		return;
	hash = owner_hash(MyDatabaseId, RL_KIND_KEY, key_id);
	b = (const char *) partition_slot(hash >> (32 - RL_PARTITION_BITS), home_slot(hash));
	__builtin_prefetch(b);
	__builtin_prefetch(b + 64);
	__builtin_prefetch(b + 128);
}

/*
 * The bucket of a key, or NULL.  A partition is never more than 3/4 full,
 * so the probe always meets a free slot.
 */
static RateBucket *
bucket_find(int partition, const RateKey *key, uint32 hash)
{
	uint32		i = home_slot(hash);

	for (;;)
	{
		RateBucket *b = partition_slot(partition, i);

		if (b->key.kind == 0)
			return NULL;
		if (memcmp(&b->key, key, sizeof(RateKey)) == 0)
			return b;
		if (++i == rate_shared->slots)
			i = 0;
	}
}

static inline int64 *
partition_tenant(int partition, uint32 i)
{
	return &rate_bucket_tenants[(Size) partition * rate_shared->slots + i];
}

/*
 * The buckets a tenant holds in a partition: its entry in the partition's
 * table of holders, entered when create (then never NULL: the table has a
 * slot per bucket), else NULL when it holds none.
 */
static RateHolder *
holder_find(int partition, Oid dbid, int64 tenant, bool create)
{
	RateHolder *base = &rate_holders[(Size) partition * rate_shared->slots];
	uint32		i = home_slot(owner_hash(dbid, RL_KIND_TENANT, (uint64) tenant));

	for (;;)
	{
		RateHolder *h = &base[i];

		if (h->held == 0)
		{
			if (!create)
				return NULL;
			h->dbid = dbid;
			h->tenant = tenant;
			return h;
		}
		if (h->dbid == dbid && h->tenant == tenant)
			return h;
		if (++i == rate_shared->slots)
			i = 0;
	}
}

/* One bucket fewer for a tenant: its entry goes when it holds none. */
static void
holder_release(int partition, Oid dbid, int64 tenant)
{
	RateHolder *base = &rate_holders[(Size) partition * rate_shared->slots];
	RateHolder *h = holder_find(partition, dbid, tenant, false);
	uint32		i;
	uint32		j;

	if (h == NULL || --h->held > 0)
		return;
	/* free its slot, moving back the entries after it that probed past it */
	i = j = h - base;
	for (;;)
	{
		uint32		home;

		if (++j == rate_shared->slots)
			j = 0;
		if (base[j].held == 0)
			break;
		home = home_slot(owner_hash(base[j].dbid, RL_KIND_TENANT, (uint64) base[j].tenant));
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		base[i] = base[j];
		i = j;
	}
	memset(&base[i], 0, sizeof(RateHolder));
}

/* Free the slot at i, moving back the buckets after it that probed past it. */
static void
bucket_delete(int partition, uint32 i)
{
	uint32		j = i;

	holder_release(partition, partition_slot(partition, i)->key.dbid, *partition_tenant(partition, i));
	for (;;)
	{
		RateBucket *b;
		uint32		home;

		if (++j == rate_shared->slots)
			j = 0;
		b = partition_slot(partition, j);
		if (b->key.kind == 0)
			break;
		home = home_slot(rate_key_hash(&b->key));
		/* it stays when its home is cyclically within (i, j] */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		*partition_slot(partition, i) = *b;
		*partition_tenant(partition, i) = *partition_tenant(partition, j);
		i = j;
	}
	memset(partition_slot(partition, i), 0, sizeof(RateBucket));
	*partition_tenant(partition, i) = 0;
	rate_shared->used[partition]--;
}

void
ratelimit_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("apikey.rate_limit_buckets",
							"Rate-limit buckets in shared memory (one per limit of a key or tenant in use).",
							"About 290 bytes each; when full, idle buckets are reused, otherwise requests needing a new one are refused.",
							&rate_limit_buckets,
							32768, 1024, 16777216,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("apikey.rate_limit_tenant_share",
							"Percent of the rate-limit buckets a tenant may hold before the rest is kept for other tenants.",
							"A tenant holding this share of a partition of the bucket table cannot take the partition's last free buckets (as many again): they are kept for tenants below their share. 100: no reserve.",
							&rate_limit_tenant_share,
							25, 1, 100,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("apikey.rate_limit_servers",
							"Servers that verify keys and count their rate limits each: each admits its share, the limit divided by this.",
							"Set the same on every server behind the load balancer (primary, standbys, subscribers): together they never admit more than a limit; 1: each server admits the whole limit.",
							&rate_limit_servers,
							1, 1, 1000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	rate_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = rate_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = rate_shmem_startup;
}

static void
require_shared_memory(void)
{
	if (!rate_preloaded || rate_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rate limits need apikey in shared_preload_libraries"),
				 errdetail("Rate limits are counted in shared memory, which only a preloaded library has."),
				 errhint("Add apikey to shared_preload_libraries and restart the server.")));
}

/* The descriptor of apikey.rate_limit, looked up once per backend. */
#define LIMIT_TYPE_MAX_ATTS 8
static Oid	limit_type = InvalidOid;
static TupleDesc limit_desc = NULL;
static int16 limit_typlen;
static bool limit_typbyval;
static char limit_typalign;

static void
load_limit_type(Oid type)
{
	MemoryContext old;
	TupleDesc	desc;

	if (type == limit_type)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	desc = lookup_rowtype_tupdesc_copy(type, -1);
	MemoryContextSwitchTo(old);
	if (desc->natts < 3 || desc->natts > LIMIT_TYPE_MAX_ATTS ||
		TupleDescAttr(desc, 0)->atttypid != TEXTOID ||
		TupleDescAttr(desc, 1)->atttypid != INT4OID ||
		TupleDescAttr(desc, 2)->atttypid != INTERVALOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("type %s is not apikey.rate_limit (name, max_requests, per)",
						format_type_be(type))));
	get_typlenbyvalalign(type, &limit_typlen, &limit_typbyval, &limit_typalign);
	if (limit_desc != NULL)
		FreeTupleDesc(limit_desc);
	limit_desc = desc;
	limit_type = type;
}

/* The length of time an interval stands for; months count as 30 days. */
static int64
per_usecs(const Interval *per)
{
	int64		us = per->time + (int64) per->day * USECS_PER_DAY +
		(int64) per->month * DAYS_PER_MONTH * USECS_PER_DAY;

	return us;
}

static inline void
set_partition(AppliedLimit *l)
{
	l->hash = rate_key_hash(&l->key);
	/* the high bits, since each table picks its bucket from the low ones */
	l->partition = l->hash >> (32 - RL_PARTITION_BITS);
}

/*
 * Append the limits of one array (a key's, its tenant's or its owner's) to
 * out[n...].  owner_text: the key's owner, for its owner's limits.
 */
static int
collect_limits(ArrayType *limits, uint32 kind, uint64 owner, int64 tenant,
			   const text *owner_text, AppliedLimit *out, int n)
{
	array_iter	it;
	int			count;

	if (limits == NULL)
		return n;
	count = ArrayGetNItems(ARR_NDIM(limits), ARR_DIMS(limits));
	if (count == 0)
		return n;
	load_limit_type(ARR_ELEMTYPE(limits));
	ak_array_iter_setup(&it, (AnyArrayType *) limits, limit_typlen, limit_typbyval, limit_typalign);
	for (int i = 0; i < count; i++)
	{
		bool		isnull;
		Datum		d = ak_array_iter_next(&it, &isnull, i, limit_typlen, limit_typbyval, limit_typalign);
		HeapTupleHeader h;
		HeapTupleData tuple;
		Datum		values[LIMIT_TYPE_MAX_ATTS];
		bool		nulls[LIMIT_TYPE_MAX_ATTS];
		text	   *name;
		int32		max;
		int64		per;
		AppliedLimit *l;

		if (isnull)
			continue;
		h = DatumGetHeapTupleHeader(d);
		tuple.t_len = HeapTupleHeaderGetDatumLength(h);
		tuple.t_data = h;
		ItemPointerSetInvalid(&tuple.t_self);
		tuple.t_tableOid = InvalidOid;
		/* the first three attributes (name, max_requests, per) in one pass */
		heap_deform_tuple(&tuple, limit_desc, values, nulls);
		name = DatumGetTextPP(values[0]);
		max = DatumGetInt32(values[1]);
		per = nulls[2] ? 0 : per_usecs(DatumGetIntervalP(values[2]));
		if (nulls[0] || nulls[1] || nulls[2] || VARSIZE_ANY_EXHDR(name) > RL_NAME_LEN ||
			max <= 0 || per < RL_MIN_PER_US || per > RL_MAX_PER_US || n == RL_MAX_LIMITS)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid rate limit of %s %llu",
							kind == RL_KIND_KEY ? "key" : kind == RL_KIND_TENANT ? "tenant" : "the owner of tenant",
							(unsigned long long) owner),
					 errhint("Set the limits again with apikey.set_rate_limit, apikey.set_tenant_rate_limit or apikey.set_owner_rate_limit.")));
		l = &out[n++];
		memset(&l->key, 0, sizeof(RateKey));
		l->key.dbid = MyDatabaseId;
		l->key.kind = kind;
		l->key.owner = owner;
		if (kind == RL_KIND_OWNER)
		{
			/* the tenant's owner and the limit's name */
			const char *pieces[2] = {VARDATA_ANY(owner_text), VARDATA_ANY(name)};
			size_t		lens[2] = {VARSIZE_ANY_EXHDR(owner_text), VARSIZE_ANY_EXHDR(name)};

			digest_name(&l->key, 2, pieces, lens);
		}
		else
			memcpy(l->key.name, VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));
		/* this server's share of the limit: N servers never admit more than it */
		l->max = max / rate_limit_servers;
		l->slot_us = (per + RL_SUBWINDOWS - 1) / RL_SUBWINDOWS;
		l->tenant = tenant;
		l->bucket = NULL;
		set_partition(l);
	}
	return n;
}

/* The partitions of the limits, sorted and distinct, locked in that order. */
static int
lock_partitions(const int *partitions, int n, int *locked)
{
	int			m = 0;

	for (int i = 0; i < n; i++)
	{
		int			p = partitions[i];
		int			j = m;

		/* insertion into the sorted, distinct list */
		while (j > 0 && locked[j - 1] > p)
			j--;
		if (j > 0 && locked[j - 1] == p)
			continue;
		memmove(&locked[j + 1], &locked[j], (m - j) * sizeof(int));
		locked[j] = p;
		m++;
	}
	for (int i = 0; i < m; i++)
		LWLockAcquire(&rate_shared->locks[locked[i]].lock, LW_EXCLUSIVE);
	return m;
}

static void
unlock_partitions(const int *locked, int m)
{
	for (int i = m - 1; i >= 0; i--)
		LWLockRelease(&rate_shared->locks[locked[i]].lock);
}

static inline uint32 *
slot_count(RateBucket *b, int64 slot)
{
	return &b->counts[slot % RL_SLOTS];
}

/*
 * Bring a bucket to the present: the sub-windows that left the window are
 * emptied.  Backends' clocks may differ by a little: a bucket never goes
 * back.  A limit whose interval changed keeps what it counted, all of it in
 * the present sub-window (counted for the whole new window: never less).
 */
static void
bucket_advance(RateBucket *b, int64 slot_us, TimestampTz now)
{
	int64		i = now / b->slot_us;

	if (i > b->newest)
	{
		if (i - b->newest >= RL_SLOTS)
			memset(b->counts, 0, sizeof(b->counts));
		else
			for (int64 j = b->newest + 1; j <= i; j++)
				*slot_count(b, j) = 0;
		b->newest = i;
	}
	if (b->slot_us != slot_us)
	{
		uint64		sum = 0;

		for (int j = 0; j < RL_SLOTS; j++)
			sum += b->counts[j];
		memset(b->counts, 0, sizeof(b->counts));
		b->slot_us = slot_us;
		b->newest = Max(now / slot_us, 0);
		*slot_count(b, b->newest) = (uint32) Min(sum, PG_UINT32_MAX);
	}
}

static inline int64
bucket_used(const RateBucket *b)
{
	int64		sum = 0;

	for (int j = 0; j < RL_SLOTS; j++)
		sum += b->counts[j];
	return sum;
}

/* When enough sub-windows will have left the window to free excess units. */
static int64
bucket_retry_after(RateBucket *b, int64 excess, TimestampTz now)
{
	int64		freed = 0;
	int64		j;

	for (j = b->newest - RL_SUBWINDOWS; j < b->newest; j++)
	{
		freed += *slot_count(b, j);
		if (freed >= excess)
			break;
	}
	/* sub-window j leaves the window when sub-window j + RL_SLOTS begins */
	return Max((j + RL_SLOTS) * b->slot_us - now, 1);
}

/*
 * When a bucket brought to the present will count nothing: when its newest
 * sub-window with a count has left the window.
 */
static TimestampTz
bucket_idle_at(const RateBucket *b)
{
	for (int64 j = b->newest; j > b->newest - RL_SLOTS; j--)
		if (b->counts[j % RL_SLOTS] != 0)
			return (j + RL_SLOTS) * b->slot_us;
	return 0;
}

/*
 * Make room in a full partition: free its idle buckets (their window has
 * passed, so they count nothing: freeing them changes no answer).  A
 * deletion may move a later bucket into the slot just looked at, so that
 * slot is looked at again.  When none is idle, none will be before the
 * time noted in idle_at: until then a full partition refuses without
 * scanning (a tenant refused again and again costs the others nothing).
 */
static int
evict_idle(int partition, TimestampTz now)
{
	int			removed = 0;
	TimestampTz next = PG_INT64_MAX;

	if (now < rate_shared->idle_at[partition])
		return 0;
	for (uint32 i = 0; i < rate_shared->slots;)
	{
		RateBucket *b = partition_slot(partition, i);

		if (b->key.kind != 0)
		{
			TimestampTz idle;

			bucket_advance(b, b->slot_us, now);
			idle = bucket_idle_at(b);
			if (idle == 0)
			{
				bucket_delete(partition, i);
				removed++;
				continue;
			}
			next = Min(next, idle);
		}
		i++;
	}
	rate_shared->idle_at[partition] = next;
	return removed;
}

/*
 * The share of a partition a tenant may hold before the partition's last
 * free buckets are kept for others (as many as the share).
 */
static inline uint32
tenant_share(void)
{
	return Max(1, (uint32) ((uint64) rate_shared->limit * rate_limit_tenant_share / 100));
}

/*
 * A new bucket for the limit; NULL when there is no room for it, and why:
 * the partition is full, or the limit's tenant holds its share and only
 * the reserve for the others is left.
 */
static RateBucket *
bucket_enter(AppliedLimit *l, TimestampTz now, RateRefusalReason *why)
{
	RateBucket *b;
	RateHolder *holder;
	uint32		i;
	uint32		share = tenant_share();
	uint32		room;

	holder = holder_find(l->partition, l->key.dbid, l->tenant, true);
	/* a tenant at its share leaves the last share of the partition free */
	room = holder->held >= share ? rate_shared->limit - Min(share, rate_shared->limit) : rate_shared->limit;
	if (rate_shared->used[l->partition] >= room && evict_idle(l->partition, now) > 0)
	{
		/* the tenant's own buckets may have gone, and its entry moved */
		holder = holder_find(l->partition, l->key.dbid, l->tenant, true);
		room = holder->held >= share ? rate_shared->limit - Min(share, rate_shared->limit) : rate_shared->limit;
	}
	if (rate_shared->used[l->partition] >= room)
	{
		*why = rate_shared->used[l->partition] >= rate_shared->limit ? RL_FULL : RL_SHARE;
		return NULL;
	}
	holder->held++;
	for (i = home_slot(l->hash); partition_slot(l->partition, i)->key.kind != 0;)
		if (++i == rate_shared->slots)
			i = 0;
	b = partition_slot(l->partition, i);
	b->key = l->key;
	b->slot_us = l->slot_us;
	b->newest = now / l->slot_us;
	memset(b->counts, 0, sizeof(b->counts));
	*partition_tenant(l->partition, i) = l->tenant;
	rate_shared->used[l->partition]++;
	/* it counts nothing yet: idle now, should the request be refused */
	if (rate_shared->idle_at[l->partition] > now)
		rate_shared->idle_at[l->partition] = now;
	return b;
}

/*
 * Count a request of a tenant refused for want of a bucket, and say so in
 * the log at most once a minute per tenant (ids and counts only).
 */
static void
note_refusal(int64 tenant, RateRefusalReason why, TimestampTz now)
{
	RateRefusal *r = NULL;
	RateRefusal *oldest = &rate_shared->refusals[0];
	bool		log;
	uint64		refused;

	pg_atomic_fetch_add_u64(&rate_shared->refused_full, 1);
	SpinLockAcquire(&rate_shared->refusals_lock);
	for (int i = 0; i < RL_REFUSAL_RECORDS && r == NULL; i++)
	{
		RateRefusal *x = &rate_shared->refusals[i];

		if (x->dbid == MyDatabaseId && x->tenant == tenant)
			r = x;
		else if (x->last < oldest->last)
			oldest = x;
	}
	if (r == NULL)
	{
		/* the tenant refused longest ago makes room */
		r = oldest;
		r->dbid = MyDatabaseId;
		r->tenant = tenant;
		r->refused = 0;
		r->logged = 0;
	}
	r->refused++;
	r->last = now;
	refused = r->refused;
	log = now - r->logged >= RL_LOG_EVERY_US;
	if (log)
		r->logged = now;
	SpinLockRelease(&rate_shared->refusals_lock);
	if (log)
		ereport(LOG,
				(errmsg("apikey: a rate-limited request of tenant %lld in database %u found no rate-limit bucket (%llu refused so far)",
						(long long) tenant, MyDatabaseId, (unsigned long long) refused),
				 why == RL_SHARE ?
				 errdetail("The tenant holds its share (apikey.rate_limit_tenant_share = %d%%) of the buckets: the rest is kept for other tenants.",
						   rate_limit_tenant_share) :
				 errdetail("The bucket table is full (apikey.rate_limit_buckets = %d) and none of its buckets is idle.",
						   rate_limit_buckets),
				 errhint("See apikey.rate_limit_tenants()."),
				 errhidestmt(true), errhidecontext(true)));
}

/*
 * Take cost units from each of the n limits, all or none, under their
 * partitions' locks (in partition order, so backends never deadlock).
 * Returns whether they were taken; *remaining: the fewest units a limit
 * has left (after this request, when admitted).  A refused request sets
 * *has_retry_after when waiting will let it pass (*retry_after_us); it is
 * not set when the cost exceeds a limit or no bucket was left for tenant.
 */
static bool
take_limits(AppliedLimit *limits, int n, int32 cost, int64 tenant, RateTaken *taken,
			bool *has_retry_after, int64 *retry_after_us, int64 *remaining)
{
	int			partitions[RL_MAX_LIMITS] = {0};
	int			locked[RL_MAX_LIMITS];
	int			m;
	int64		need = Max(cost, 1);	/* cost 0: would one more unit pass? */
	int64		retry = 0;
	int64		left = PG_INT64_MAX;
	bool		admitted = true;
	bool		never = false;
	RateRefusalReason why = RL_ROOM;
	TimestampTz now;

	taken->n = 0;
	*has_retry_after = false;
	require_shared_memory();

	now = GetCurrentTimestamp();
	for (int i = 0; i < n; i++)
		partitions[i] = limits[i].partition;
	m = lock_partitions(partitions, n, locked);
	for (int i = 0; i < n; i++)
	{
		AppliedLimit *l = &limits[i];
		int64		used;

		l->bucket = bucket_find(l->partition, &l->key, l->hash);
		if (l->bucket == NULL && cost > 0)
		{
			l->bucket = bucket_enter(l, now, &why);
			if (l->bucket == NULL)
			{
				admitted = false;
				left = 0;
				continue;
			}
		}
		if (l->bucket == NULL)
		{
			/* a check of a limit not used yet: room */
			left = Min(left, l->max);
			continue;
		}
		bucket_advance(l->bucket, l->slot_us, now);
		used = bucket_used(l->bucket);
		left = Min(left, l->max - used);
		if (used + need > l->max)
		{
			admitted = false;
			if (need > l->max)
				never = true;
			else
				retry = Max(retry, bucket_retry_after(l->bucket, used + need - l->max, now));
		}
	}
	if (admitted && cost > 0)
	{
		for (int i = 0; i < n; i++)
		{
			RateBucket *b = limits[i].bucket;

			*slot_count(b, b->newest) += cost;
			/* counting now, it is not idle before this */
			if ((b->newest + RL_SLOTS) * b->slot_us < rate_shared->idle_at[limits[i].partition])
				rate_shared->idle_at[limits[i].partition] = (b->newest + RL_SLOTS) * b->slot_us;
			taken->item[i].key = limits[i].key;
			taken->item[i].hash = limits[i].hash;
			taken->item[i].slot_us = b->slot_us;
			taken->item[i].slot = b->newest;
			taken->item[i].amount = cost;
		}
		taken->n = n;
		left -= cost;
	}
	unlock_partitions(locked, m);

	if (why != RL_ROOM)
		note_refusal(tenant, why, now);
	else if (!admitted && !never)
	{
		*has_retry_after = true;
		*retry_after_us = retry;
	}
	*remaining = Max(left, 0);
	return admitted;
}

bool
ratelimit_take(const KeyState *key, int32 cost, RateTaken *taken,
			   bool *has_retry_after, int64 *retry_after_us)
{
	AppliedLimit limits[RL_MAX_LIMITS];
	int			n;
	int64		remaining;

	taken->n = 0;
	*has_retry_after = false;
	n = collect_limits(key->rate_limits, RL_KIND_KEY, key->key_id, key->tenant_id, NULL, limits, 0);
	n = collect_limits(key->tenant_rate_limits, RL_KIND_TENANT, (uint64) key->tenant_id,
					   key->tenant_id, NULL, limits, n);
	if (key->owner_rate_limits != NULL && key->owner != NULL)
	{
		/* an owner's digests need the seed in shared memory */
		require_shared_memory();
		n = collect_limits(key->owner_rate_limits, RL_KIND_OWNER, (uint64) key->tenant_id,
						   key->tenant_id, key->owner, limits, n);
	}
	if (n == 0)
		return true;
	return take_limits(limits, n, cost, key->tenant_id, taken, has_retry_after,
					   retry_after_us, &remaining);
}

void
ratelimit_give_back(const RateTaken *taken)
{
	int			partitions[RL_MAX_LIMITS] = {0};
	int			locked[RL_MAX_LIMITS];
	int			m;

	if (taken->n == 0 || rate_shared == NULL)
		return;
	for (int i = 0; i < taken->n; i++)
		partitions[i] = taken->item[i].hash >> (32 - RL_PARTITION_BITS);
	m = lock_partitions(partitions, taken->n, locked);
	for (int i = 0; i < taken->n; i++)
	{
		RateBucket *b = bucket_find(partitions[i], &taken->item[i].key, taken->item[i].hash);
		int64		slot = taken->item[i].slot;

		/* unless the units have left the window (or the interval changed) */
		if (b != NULL && b->slot_us == taken->item[i].slot_us &&
			slot <= b->newest && slot > b->newest - RL_SLOTS)
		{
			uint32	   *c = slot_count(b, slot);

			*c -= Min(*c, taken->item[i].amount);
			/* it may be idle sooner than noted */
			if (rate_shared->idle_at[partitions[i]] != 0)
				rate_shared->idle_at[partitions[i]] = 0;
		}
	}
	unlock_partitions(locked, m);
}

static void
check_max_requests(int32 max_requests)
{
	if (max_requests <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_requests must be at least 1"),
				 errdetail("Got %d.", max_requests)));
}

/* The length of a limit's window in microseconds; raises unless it is one. */
static int64
checked_per(const Interval *per)
{
	/* its parts first: their sum could overflow */
	bool		parts_ok = per->month == 0 && per->day >= 0 && per->day <= RL_MAX_PER_US / USECS_PER_DAY &&
		per->time >= 0 && per->time <= RL_MAX_PER_US;
	int64		per_us = parts_ok ? per_usecs(per) : 0;

	if (!parts_ok || per_us < RL_MIN_PER_US || per_us > RL_MAX_PER_US)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("per must be between 1 millisecond and 366 days"),
				 errdetail("Got %s.", DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(per)))),
				 per->month != 0 ? errhint("Months have no fixed length: write days, e.g. '30 days'.") : 0));
	return per_us;
}

/*
 * A namespace of rate_limit_take: 1 to 64 lowercase letters, digits, "_",
 * "-", "." or ":", starting with a letter or digit ("login", "api:search").
 */
static void
check_namespace(text *namespace)
{
	const char *s = VARDATA_ANY(namespace);
	int			len = VARSIZE_ANY_EXHDR(namespace);

	for (int i = 0; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (i > 0 && (c == '_' || c == '-' || c == '.' || c == ':'))))
		{
			len = -1;
			break;
		}
	}
	if (len < 1 || len > RL_NAMESPACE_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid rate limit namespace %s",
						text_to_cstring(DatumGetTextPP(DirectFunctionCall1(shown_value, PointerGetDatum(namespace))))),
				 errdetail("A namespace is 1 to %d lowercase letters, digits, \"_\", \"-\", \".\" or \":\", starting with a letter or digit.",
						   RL_NAMESPACE_LEN)));
}

/*
 * apikey_internal.check_rate_limit(name, max_requests, per): raise unless
 * these make a rate limit this server can count.
 */
PG_FUNCTION_INFO_V1(check_rate_limit);
Datum
check_rate_limit(PG_FUNCTION_ARGS)
{
	text	   *name;
	const char *s;
	int			len;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null",
						PG_ARGISNULL(0) ? "name" : PG_ARGISNULL(1) ? "max_requests" : "per")));
	name = PG_GETARG_TEXT_PP(0);
	s = VARDATA_ANY(name);
	len = VARSIZE_ANY_EXHDR(name);
	for (int i = 0; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (i > 0 && (c == '_' || c == '-'))))
		{
			len = -1;
			break;
		}
	}
	if (len < 1 || len > RL_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid rate limit name %s",
						text_to_cstring(DatumGetTextPP(DirectFunctionCall1(shown_value, PointerGetDatum(name))))),
				 errdetail("A rate limit name is 1 to 32 lowercase letters, digits, \"_\" or \"-\", starting with a letter or digit.")));
	check_max_requests(PG_GETARG_INT32(1));
	checked_per(PG_GETARG_INTERVAL_P(2));
	require_shared_memory();
	PG_RETURN_VOID();
}

/*
 * rate_limit_take(namespace, identifier, max_requests, per, cost) ->
 * (allowed, remaining, retry_after): take cost units from the limit of
 * max_requests per per of one identifier of a namespace.  The namespace is
 * the caller's tenant's (the transaction authenticated a key of it, or
 * acts for a member of it: act_for) or, for a full administrator acting
 * for neither, the server's global one.
 * The identifier is looked at only as a digest (never shown or logged).
 */
PG_FUNCTION_INFO_V1(rate_limit_take);
Datum
rate_limit_take(PG_FUNCTION_ARGS)
{
	static const char *const args[] = {"namespace", "identifier", "max_requests", "per", "cost"};
	const Identity *id = identity_current();
	int64		tenant;
	text	   *namespace;
	text	   *identifier;
	int32		max_requests;
	int32		cost;
	int64		per_us;
	AppliedLimit limit;
	RateTaken	taken;
	bool		allowed;
	bool		has_retry_after;
	int64		retry_after_us = 0;
	int64		remaining;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	/* whose namespaces, before anything else is looked at */
	if (id != NULL)
		tenant = id->tenant_id;
	else if (delegation_current() != NULL)
		tenant = delegation_current()->tenant_id;
	else if (caller_is_admin())
		tenant = 0;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to take from a rate limit"),
				 errdetail("A namespace belongs to the tenant of the key this transaction authenticated (apikey.authenticate) or of the member it acts for (apikey.act_for), or is global for administrators."),
				 errhint("Authenticate the request's key first, or name the role an administrator with apikey.grant_admin.")));

	for (int i = 0; i < (int) lengthof(args); i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", args[i])));
	namespace = PG_GETARG_TEXT_PP(0);
	identifier = PG_GETARG_TEXT_PP(1);
	max_requests = PG_GETARG_INT32(2);
	cost = PG_GETARG_INT32(4);
	check_namespace(namespace);
	if (VARSIZE_ANY_EXHDR(identifier) == 0 || VARSIZE_ANY_EXHDR(identifier) > RL_IDENTIFIER_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("identifier must be 1 to %d bytes", RL_IDENTIFIER_LEN),
				 errdetail("Got %d bytes.", (int) VARSIZE_ANY_EXHDR(identifier))));
	check_max_requests(max_requests);
	per_us = checked_per(PG_GETARG_INTERVAL_P(3));
	if (cost < 0 || cost > max_requests)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cost must be between 0 and max_requests (%d)", max_requests),
				 errdetail("Got %d.", cost)));
	require_shared_memory();

	memset(&limit.key, 0, sizeof(RateKey));
	limit.key.dbid = MyDatabaseId;
	limit.key.kind = RL_KIND_TAKE;
	limit.key.owner = (uint64) tenant;
	{
		/* one counter per namespace, identifier and length of window */
		const char *pieces[3] = {VARDATA_ANY(namespace), VARDATA_ANY(identifier), (const char *) &per_us};
		size_t		lens[3] = {VARSIZE_ANY_EXHDR(namespace), VARSIZE_ANY_EXHDR(identifier), sizeof(per_us)};

		digest_name(&limit.key, 3, pieces, lens);
	}
	limit.max = max_requests / rate_limit_servers;
	limit.slot_us = (per_us + RL_SUBWINDOWS - 1) / RL_SUBWINDOWS;
	limit.tenant = tenant;
	limit.bucket = NULL;
	set_partition(&limit);
	allowed = take_limits(&limit, 1, cost, tenant, &taken, &has_retry_after,
						  &retry_after_us, &remaining);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("function returning record called in context that cannot accept type record")));
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = BoolGetDatum(allowed);
	values[1] = Int64GetDatum(remaining);
	if (!allowed && has_retry_after)
	{
		Interval   *retry = palloc0(sizeof(Interval));

		/* whole milliseconds, rounded up: never sooner than it passes */
		retry->time = (retry_after_us + 999) / 1000 * 1000;
		values[2] = IntervalPGetDatum(retry);
	}
	else
		nulls[2] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * rate_limit_status() -> (preloaded, capacity, in_use, refused_full): the
 * buckets of this server, and how many requests were refused because no
 * bucket was free.
 */
PG_FUNCTION_INFO_V1(rate_limit_status);
Datum
rate_limit_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	int64		in_use = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("function returning record called in context that cannot accept type record")));
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = BoolGetDatum(rate_shared != NULL);
	if (rate_shared == NULL)
	{
		nulls[1] = nulls[2] = nulls[3] = true;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}
	for (int p = 0; p < RL_PARTITIONS; p++)
	{
		LWLockAcquire(&rate_shared->locks[p].lock, LW_SHARED);
		in_use += rate_shared->used[p];
		LWLockRelease(&rate_shared->locks[p].lock);
	}
	values[1] = Int32GetDatum(rate_shared->limit * RL_PARTITIONS);
	values[2] = Int64GetDatum(in_use);
	values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&rate_shared->refused_full));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * apikey_internal.rate_limit_tenants() -> setof (tenant_id, buckets, refused,
 * last_refused): the tenants of this database that hold rate-limit buckets or
 * were refused one (the last RL_REFUSAL_RECORDS tenants refused in the
 * server).
 */
PG_FUNCTION_INFO_V1(rate_limit_tenants);
Datum
rate_limit_tenants(PG_FUNCTION_ARGS)
{
	typedef struct TenantRow
	{
		int64		tenant;
		int64		buckets;
		int64		refused;
		TimestampTz last;
	} TenantRow;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASHCTL		info;
	HTAB	   *rows;
	HASH_SEQ_STATUS seq;
	TenantRow  *row;
	RateRefusal refusals[RL_REFUSAL_RECORDS];

	InitMaterializedSRF(fcinfo, 0);
	if (rate_shared == NULL)
		return (Datum) 0;
	info.keysize = sizeof(int64);
	info.entrysize = sizeof(TenantRow);
	info.hcxt = CurrentMemoryContext;
	rows = hash_create("apikey rate-limit tenants", 64, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (int p = 0; p < RL_PARTITIONS; p++)
	{
		RateHolder *base = &rate_holders[(Size) p * rate_shared->slots];

		LWLockAcquire(&rate_shared->locks[p].lock, LW_SHARED);
		for (uint32 i = 0; i < rate_shared->slots; i++)
		{
			bool		found;

			if (base[i].held == 0 || base[i].dbid != MyDatabaseId)
				continue;
			row = hash_search(rows, &base[i].tenant, HASH_ENTER, &found);
			if (!found)
				row->buckets = row->refused = row->last = 0;
			row->buckets += base[i].held;
		}
		LWLockRelease(&rate_shared->locks[p].lock);
	}
	SpinLockAcquire(&rate_shared->refusals_lock);
	memcpy(refusals, rate_shared->refusals, sizeof(refusals));
	SpinLockRelease(&rate_shared->refusals_lock);
	for (int i = 0; i < RL_REFUSAL_RECORDS; i++)
	{
		bool		found;

		if (refusals[i].dbid != MyDatabaseId || refusals[i].refused == 0)
			continue;
		row = hash_search(rows, &refusals[i].tenant, HASH_ENTER, &found);
		if (!found)
			row->buckets = 0;
		row->refused = refusals[i].refused;
		row->last = refusals[i].last;
	}
	hash_seq_init(&seq, rows);
	while ((row = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, row->last == 0};

		values[0] = Int64GetDatum(row->tenant);
		values[1] = Int64GetDatum(row->buckets);
		values[2] = Int64GetDatum(row->refused);
		values[3] = TimestampTzGetDatum(row->last);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
