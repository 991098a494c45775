/*
 * usage.c
 *		last_used_at and usage_stats without a write per verification.
 *
 * A verification of a known key (any status, including not_found for a
 * wrong secret) appends (key id, tenant, status, time) to a small buffer in
 * backend memory: no lock, no write; a repeat of the previous entry only
 * increments it.  The buffer is drained, under one lock, into a hash table
 * in shared memory when it fills and at the end of each transaction: one
 * entry per key holds its last valid use and its verifications per status
 * in one hour, so a verification costs one lookup.  Counts of an earlier
 * hour (a key used across the hour) or of a key that found the table full
 * go to a second table, per key, hour and status.  A background worker writes both every
 * apikey.usage_flush_interval (or when apikey.usage_flush() asks), starting
 * one short-lived worker per database with pending entries: last uses into
 * apikey.key_usage, counts added into apikey.usage_hourly (then forgotten,
 * so each verification is counted exactly once).  A key's last use is
 * rewritten only when it moves by more than apikey.usage_precision, so the
 * writes grow with the number of keys in use, not with the traffic; the key
 * table itself is never touched.  Counts older than
 * apikey.usage_stats_retention are deleted as the worker writes.
 *
 * The writer runs its one statement as the extension's owner with a fixed
 * search_path (pg_catalog, pg_temp) and schema-qualified operators: nothing
 * that a database owner or anyone else sets up can change what it runs.
 *
 * Both tables are shared by every tenant of every database: a tenant that
 * holds apikey.usage_tenant_share percent of a table's entries may not take
 * its last entries (as many as the share): they are kept for the tenants
 * below their share, so that one tenant's keys cannot leave the others'
 * verifications uncounted.  What a tenant beyond its share could not set
 * down is counted as dropped, and logged at most once a minute per tenant.
 *
 * Shared memory needs shared_preload_libraries = 'apikey'.  Without it
 * nothing is tracked (last_used_at stays NULL, usage_stats empty) and
 * everything else works.  On a hot standby nothing is written and nothing
 * is counted; key_list and usage_stats there show what the primary wrote.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "pg_compat.h"
#include "apikey.h"
#include "keyid.h"
#include "verify.h"

/* Settings */
static bool track_usage = true;
static int	usage_max_keys = 65536;
static int	usage_flush_interval = 10;	/* seconds */
static int	usage_precision = 60;	/* seconds */
static int	usage_stats_max_counts = 65536;
static int	usage_stats_retention = 90 * 86400; /* seconds; 0: forever */
static int	usage_tenant_share = 25;	/* percent of each table */

typedef struct UsageKey
{
	Oid			dbid;
	uint64		key_id;
} UsageKey;

/* What is pending for a key. */
typedef struct UsageEntry
{
	UsageKey	key;
	TimestampTz last_used;		/* latest valid use not written yet; 0: none */
	int64		tenant_id;
	TimestampTz hour;			/* the hour (UTC) that counts[] are of */
	uint32		counts[NUM_VERIFY_STATUSES];	/* verifications per status */
} UsageEntry;

/* Verifications of a key in an hour with a status, set aside (usage_stats). */
typedef struct CountKey
{
	Oid			dbid;
	int32		status;
	uint64		key_id;
	TimestampTz hour;
} CountKey;

typedef struct CountEntry
{
	CountKey	key;
	int64		tenant_id;
	uint64		verifications;
} CountEntry;

/* The entries a tenant holds in both tables. */
typedef struct TenantKey
{
	Oid			dbid;
	int64		tenant_id;
} TenantKey;

typedef struct TenantEntry
{
	TenantKey	key;
	long		keys;			/* entries in usage_hash */
	long		counts;			/* entries in counts_hash */
	TimestampTz logged;			/* when its refusal was last logged */
} TenantEntry;

#define USAGE_LOG_EVERY_US (60 * USECS_PER_SEC)

typedef struct UsageShared
{
	LWLock	   *lock;			/* both tables */
	uint64		dropped;		/* times lost because the table was full */
	uint64		counts_dropped; /* verifications not counted (table full) */
	uint64		share_dropped;	/* of dropped: uses of tenants beyond their share */
	uint64		share_counts_dropped;	/* of counts_dropped: ... their verifications */
	int			launcher_procno;	/* -1: no launcher running */
	bool		writer_wrote;	/* the last writer finished its database */
	pg_atomic_uint64 flush_requests;	/* apikey.usage_flush() calls */
	pg_atomic_uint64 flushes_done;	/* requests the launcher has served */
} UsageShared;

static UsageShared *usage_shared = NULL;
static HTAB *usage_hash = NULL;
static HTAB *counts_hash = NULL;
static HTAB *tenants_hash = NULL;
static bool usage_preloaded = false;

/* A tenant beyond its share, to be logged once the lock is released. */
static int64 refused_tenant = -1;

/* A database whose writer fails this many times in a row loses its pending usage. */
#define USAGE_WRITER_ATTEMPTS 3

/* The backend's buffer, drained into shared memory in batches. */
typedef struct UsageEvent
{
	uint64		key_id;
	int64		tenant_id;
	TimestampTz when;
	TimestampTz hour;			/* the hour (UTC) when falls in */
	int32		status;
	uint32		n;				/* verifications alike (same key, status, hour) */
} UsageEvent;

#define USAGE_BUFFER 256
static UsageEvent buffer[USAGE_BUFFER];
static int	buffered = 0;

/* The start of the hour (UTC) that t falls in. */
static inline TimestampTz
hour_start(TimestampTz t)
{
	TimestampTz r = t % USECS_PER_HOUR;

	return t - (r < 0 ? r + USECS_PER_HOUR : r);
}

/* The same, remembered: verifications come in the same hour for a while. */
static TimestampTz known_hour = 1;	/* none yet (no hour starts at 1) */

static inline TimestampTz
hour_of(TimestampTz t)
{
	if (t < known_hour || t >= known_hour + USECS_PER_HOUR)
		known_hour = hour_start(t);
	return known_hour;
}

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
usage_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(UsageShared)) +
						   hash_estimate_size(usage_max_keys, sizeof(UsageEntry)) +
						   hash_estimate_size(usage_stats_max_counts, sizeof(CountEntry)) +
						   hash_estimate_size(usage_max_keys + usage_stats_max_counts, sizeof(TenantEntry)));
	RequestNamedLWLockTranche("apikey usage", 1);
}

static void
usage_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	usage_shared = ShmemInitStruct("apikey usage", sizeof(UsageShared), &found);
	if (!found)
	{
		usage_shared->lock = &(GetNamedLWLockTranche("apikey usage"))->lock;
		usage_shared->dropped = 0;
		usage_shared->counts_dropped = 0;
		usage_shared->share_dropped = 0;
		usage_shared->share_counts_dropped = 0;
		usage_shared->launcher_procno = -1;
		pg_atomic_init_u64(&usage_shared->flush_requests, 0);
		pg_atomic_init_u64(&usage_shared->flushes_done, 0);
	}
	info.keysize = sizeof(UsageKey);
	info.entrysize = sizeof(UsageEntry);
	usage_hash = ak_shmem_init_hash("apikey usage hash", usage_max_keys,
									&info, HASH_ELEM | HASH_BLOBS);
	info.keysize = sizeof(CountKey);
	info.entrysize = sizeof(CountEntry);
	counts_hash = ak_shmem_init_hash("apikey usage counts", usage_stats_max_counts,
									 &info, HASH_ELEM | HASH_BLOBS);
	info.keysize = sizeof(TenantKey);
	info.entrysize = sizeof(TenantEntry);
	tenants_hash = ak_shmem_init_hash("apikey usage tenants", usage_max_keys + usage_stats_max_counts,
									  &info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

/* The entries of a tenant (under the lock); entered when create. */
static TenantEntry *
tenant_entry(Oid dbid, int64 tenant_id, bool create)
{
	TenantKey	key;
	TenantEntry *t;
	bool		found;

	/* hashed as bytes: the padding too */
	memset(&key, 0, sizeof(key));
	key.dbid = dbid;
	key.tenant_id = tenant_id;
	/* room for one per entry of the two tables: never NULL when create */
	t = hash_search(tenants_hash, &key, create ? HASH_ENTER_NULL : HASH_FIND, &found);
	if (t != NULL && create && !found)
	{
		t->keys = t->counts = 0;
		t->logged = 0;
	}
	return t;
}

/*
 * May a tenant holding held of a table's entries take a new one, the table
 * holding used of max?  Below its share, while there is any room; at its
 * share, only while more than a share is free.
 */
static inline bool
tenant_may_enter(long held, long used, long max)
{
	long		share = Max(1, (long) ((int64) max * usage_tenant_share / 100));

	return used < (held < share ? max : max - Min(share, max));
}

/* One entry fewer for a tenant in either table (under the lock). */
static void
tenant_release(Oid dbid, int64 tenant_id, bool counts)
{
	TenantEntry *t = tenant_entry(dbid, tenant_id, false);

	if (t == NULL)
		return;
	if (counts)
		t->counts--;
	else
		t->keys--;
	if (t->keys <= 0 && t->counts <= 0)
		hash_search(tenants_hash, &t->key, HASH_REMOVE, NULL);
}

/* Say that a tenant beyond its share lost uses (after the lock is released). */
static void
log_refused_tenant(void)
{
	int64		tenant = refused_tenant;
	bool		log = false;
	TimestampTz now = GetCurrentTimestamp();

	refused_tenant = -1;
	if (tenant < 0)
		return;
	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	{
		TenantEntry *t = tenant_entry(MyDatabaseId, tenant, false);

		if (t != NULL && now - t->logged >= USAGE_LOG_EVERY_US)
		{
			t->logged = now;
			log = true;
		}
	}
	LWLockRelease(usage_shared->lock);
	if (log)
		ereport(LOG,
				(errmsg("apikey: uses of keys of tenant %lld in database %u were not recorded: the tenant holds its share of the pending usage",
						(long long) tenant, MyDatabaseId),
				 errdetail("apikey.usage_tenant_share = %d%% of apikey.usage_max_keys and of apikey.usage_stats_max_counts; the rest is kept for other tenants.",
						   usage_tenant_share),
				 errhint("See apikey.usage_tracking()."),
				 errhidestmt(true), errhidecontext(true)));
}

/* Set n verifications aside in the second table (under the lock). */
static void
counts_set_aside(Oid dbid, uint64 key_id, int64 tenant_id, TimestampTz hour, int status, uint64 n)
{
	CountKey	key;
	CountEntry *c;
	TenantEntry *t;
	bool		found = true;

	if (n == 0)
		return;
	/* hashed as bytes: the padding too */
	memset(&key, 0, sizeof(key));
	key.dbid = dbid;
	key.status = status;
	key.key_id = key_id;
	key.hour = hour;
	c = hash_search(counts_hash, &key, HASH_FIND, NULL);
	if (c != NULL)
	{
		c->verifications += n;
		return;
	}
	t = tenant_entry(dbid, tenant_id, true);
	if (t != NULL && tenant_may_enter(t->counts, hash_get_num_entries(counts_hash), usage_stats_max_counts))
		c = hash_search(counts_hash, &key, HASH_ENTER_NULL, &found);
	if (c == NULL)
	{
		usage_shared->counts_dropped += n;
		if (t != NULL && hash_get_num_entries(counts_hash) < usage_stats_max_counts)
		{
			usage_shared->share_counts_dropped += n;
			refused_tenant = tenant_id;
		}
		if (t != NULL && t->keys <= 0 && t->counts <= 0)
			hash_search(tenants_hash, &t->key, HASH_REMOVE, NULL);
		return;
	}
	t->counts++;
	c->tenant_id = tenant_id;
	c->verifications = n;
}

/* Move the backend's buffer into shared memory, under one lock. */
static void
usage_drain(void)
{
	/* a standby writes no counts: it keeps none */
	bool		count = !RecoveryInProgress();

	if (buffered == 0 || usage_hash == NULL)
	{
		buffered = 0;
		return;
	}
	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < buffered; i++)
	{
		const UsageEvent *ev = &buffer[i];
		TimestampTz hour = ev->hour;
		UsageKey	key;
		UsageEntry *e;
		bool		found = true;

		if (ev->status != VS_VALID && !count)
			continue;
		/* hashed as bytes: the padding too */
		memset(&key, 0, sizeof(key));
		key.dbid = MyDatabaseId;
		key.key_id = ev->key_id;
		e = hash_search(usage_hash, &key, HASH_FIND, NULL);
		if (e == NULL)
		{
			/* a new key while its tenant may take one of usage_max_keys */
			TenantEntry *t = tenant_entry(MyDatabaseId, ev->tenant_id, true);

			if (t != NULL && tenant_may_enter(t->keys, hash_get_num_entries(usage_hash), usage_max_keys))
				e = hash_search(usage_hash, &key, HASH_ENTER_NULL, &found);
			if (e == NULL)
			{
				if (ev->status == VS_VALID)
				{
					usage_shared->dropped++;
					if (t != NULL && hash_get_num_entries(usage_hash) < usage_max_keys)
					{
						usage_shared->share_dropped++;
						refused_tenant = ev->tenant_id;
					}
				}
				if (t != NULL && t->keys <= 0 && t->counts <= 0)
					hash_search(tenants_hash, &t->key, HASH_REMOVE, NULL);
				if (count)
					counts_set_aside(MyDatabaseId, ev->key_id, ev->tenant_id, hour, ev->status, ev->n);
				continue;
			}
			t->keys++;
			found = false;
		}
		if (!found)
		{
			e->last_used = 0;
			e->tenant_id = ev->tenant_id;
			e->hour = hour;
			memset(e->counts, 0, sizeof(e->counts));
		}
		if (ev->status == VS_VALID && e->last_used < ev->when)
			e->last_used = ev->when;
		if (!count)
			continue;
		if (e->hour != hour)
		{
			/* the key's counts of another hour wait in the second table */
			for (int s = 0; s < NUM_VERIFY_STATUSES; s++)
				counts_set_aside(MyDatabaseId, e->key.key_id, e->tenant_id, e->hour, s, e->counts[s]);
			memset(e->counts, 0, sizeof(e->counts));
			e->hour = hour;
		}
		if ((uint64) e->counts[ev->status] + ev->n > PG_UINT32_MAX)
		{
			counts_set_aside(MyDatabaseId, e->key.key_id, e->tenant_id, hour, ev->status,
							 e->counts[ev->status]);
			e->counts[ev->status] = 0;
		}
		e->counts[ev->status] += ev->n;
	}
	LWLockRelease(usage_shared->lock);
	buffered = 0;
	if (refused_tenant >= 0)
		log_refused_tenant();
}

static inline bool
entry_idle(const UsageEntry *e)
{
	if (e->last_used != 0)
		return false;
	for (int s = 0; s < NUM_VERIFY_STATUSES; s++)
		if (e->counts[s] != 0)
			return false;
	return true;
}

static void
usage_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		usage_drain();
}

/*
 * Note a verification of a known key: its status, and for a valid one its
 * use (the hot path: no lock, no allocation).
 */
void
usage_record(uint64 key_id, int64 tenant_id, int status, TimestampTz when)
{
	UsageEvent *ev;
	TimestampTz hour;

	if (!usage_preloaded || !track_usage)
		return;
	hour = hour_of(when);
	if (buffered > 0)
	{
		ev = &buffer[buffered - 1];
		if (ev->key_id == key_id && ev->status == status && ev->n < PG_UINT32_MAX &&
			ev->hour == hour)
		{
			ev->n++;
			if (ev->when < when)
				ev->when = when;
			return;
		}
	}
	if (buffered == USAGE_BUFFER)
		usage_drain();
	ev = &buffer[buffered++];
	ev->key_id = key_id;
	ev->tenant_id = tenant_id;
	ev->when = when;
	ev->hour = hour;
	ev->status = status;
	ev->n = 1;
}

/*
 * _pending_last_used(key_id): what key_list of version 0.2.0 calls.  Uses
 * are written to apikey.key_usage since 0.3.0, so for a database not yet
 * updated (ALTER EXTENSION apikey UPDATE) nothing is pending.
 */
PG_FUNCTION_INFO_V1(pending_last_used);
Datum
pending_last_used(PG_FUNCTION_ARGS)
{
	PG_RETURN_NULL();
}

/* usage_tracking() -> whether and how last_used_at is kept */
PG_FUNCTION_INFO_V1(usage_tracking);
Datum
usage_tracking(PG_FUNCTION_ARGS)
{
	long		pending = 0;
	uint64		dropped = 0;
	long		counts = 0;
	uint64		counts_dropped = 0;
	uint64		share_dropped = 0;
	uint64		share_counts_dropped = 0;
	HASH_SEQ_STATUS seq;
	UsageEntry *e;

	if (!usage_preloaded || usage_hash == NULL)
		PG_RETURN_TEXT_P(cstring_to_text("off: add apikey to shared_preload_libraries to keep last_used_at"));
	if (!track_usage)
		PG_RETURN_TEXT_P(cstring_to_text("off: apikey.track_usage is off"));
	LWLockAcquire(usage_shared->lock, LW_SHARED);
	hash_seq_init(&seq, usage_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		pending += e->last_used != 0;
		for (int s = 0; s < NUM_VERIFY_STATUSES; s++)
			counts += e->counts[s] != 0;
	}
	dropped = usage_shared->dropped;
	counts += hash_get_num_entries(counts_hash);
	counts_dropped = usage_shared->counts_dropped;
	share_dropped = usage_shared->share_dropped;
	share_counts_dropped = usage_shared->share_counts_dropped;
	LWLockRelease(usage_shared->lock);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("on: flushed every %d s%s; %ld keys pending, %llu uses dropped (table full); "
											  "%ld usage counts pending, %llu verifications not counted (table full); "
											  "of those, %llu uses and %llu verifications of tenants beyond their share (apikey.usage_tenant_share)",
											  usage_flush_interval,
											  RecoveryInProgress() ? " (not on this standby)" : "",
											  pending, (unsigned long long) dropped,
											  counts, (unsigned long long) counts_dropped,
											  (unsigned long long) share_dropped,
											  (unsigned long long) share_counts_dropped)));
}

static int
compare_entries(const void *a, const void *b)
{
	uint64		x = ((const UsageEntry *) a)->key.key_id;
	uint64		y = ((const UsageEntry *) b)->key.key_id;

	return (x > y) - (x < y);
}

static int
compare_counts(const void *a, const void *b)
{
	const CountKey *x = &((const CountEntry *) a)->key;
	const CountKey *y = &((const CountEntry *) b)->key;

	if (x->key_id != y->key_id)
		return (x->key_id > y->key_id) - (x->key_id < y->key_id);
	if (x->hour != y->hour)
		return (x->hour > y->hour) - (x->hour < y->hour);
	return (x->status > y->status) - (x->status < y->status);
}

/*
 * Copy what this database has pending out of shared memory: its keys' last
 * uses, and its counts (from the keys' entries and from the second table)
 * one row per key, hour and status.
 */
static void
usage_collect(Oid dbid, UsageEntry **uses, int *nuses, CountEntry **counts, int *ncounts)
{
	HASH_SEQ_STATUS seq;
	UsageEntry *e;
	CountEntry *c;
	int			n = 0;
	int			m = 0;

	LWLockAcquire(usage_shared->lock, LW_SHARED);
	/* how many rows: a first pass */
	hash_seq_init(&seq, usage_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->key.dbid == dbid)
		{
			n++;
			for (int s = 0; s < NUM_VERIFY_STATUSES; s++)
				m += e->counts[s] != 0;
		}
	*uses = palloc(sizeof(UsageEntry) * Max(1, n));
	*counts = palloc(sizeof(CountEntry) * (m + hash_get_num_entries(counts_hash) + 1));
	n = m = 0;
	hash_seq_init(&seq, usage_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->key.dbid != dbid)
			continue;
		if (e->last_used != 0)
			(*uses)[n++] = *e;
		for (int s = 0; s < NUM_VERIFY_STATUSES; s++)
			if (e->counts[s] != 0)
			{
				CountEntry *row = &(*counts)[m++];

				memset(row, 0, sizeof(*row));
				row->key.dbid = dbid;
				row->key.status = s;
				row->key.key_id = e->key.key_id;
				row->key.hour = e->hour;
				row->tenant_id = e->tenant_id;
				row->verifications = e->counts[s];
			}
	}
	hash_seq_init(&seq, counts_hash);
	while ((c = hash_seq_search(&seq)) != NULL)
		if (c->key.dbid == dbid)
			(*counts)[m++] = *c;
	LWLockRelease(usage_shared->lock);

	/* a key, hour and status may be in both places: one row, the sum */
	qsort(*counts, m, sizeof(CountEntry), compare_counts);
	if (m > 1)
	{
		int			k = 0;

		for (int i = 1; i < m; i++)
		{
			if (compare_counts(&(*counts)[k], &(*counts)[i]) == 0)
				(*counts)[k].verifications += (*counts)[i].verifications;
			else
				(*counts)[++k] = (*counts)[i];
		}
		m = k + 1;
	}
	*nuses = n;
	*ncounts = m;
}

/*
 * Forget what was written: last uses unless used again since, counts by
 * what was written (verifications counted since stay pending), from a key's
 * entry first, then from the second table.
 */
static void
usage_forget(UsageEntry *uses, int n, bool *written, CountEntry *counts, int ncounts)
{
	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		UsageEntry *e;

		if (!written[i])
			continue;
		e = hash_search(usage_hash, &uses[i].key, HASH_FIND, NULL);
		if (e != NULL && e->last_used <= uses[i].last_used)
		{
			e->last_used = 0;
			if (entry_idle(e))
			{
				tenant_release(e->key.dbid, e->tenant_id, false);
				hash_search(usage_hash, &uses[i].key, HASH_REMOVE, NULL);
			}
		}
	}
	for (int i = 0; i < ncounts; i++)
	{
		const CountKey *k = &counts[i].key;
		uint64		left = counts[i].verifications;
		UsageKey	key;
		UsageEntry *e;
		CountEntry *c;

		memset(&key, 0, sizeof(key));
		key.dbid = k->dbid;
		key.key_id = k->key_id;
		e = hash_search(usage_hash, &key, HASH_FIND, NULL);
		if (e != NULL && e->hour == k->hour)
		{
			uint32		taken = (uint32) Min(left, e->counts[k->status]);

			e->counts[k->status] -= taken;
			left -= taken;
			if (entry_idle(e))
			{
				tenant_release(e->key.dbid, e->tenant_id, false);
				hash_search(usage_hash, &key, HASH_REMOVE, NULL);
			}
		}
		if (left == 0)
			continue;
		c = hash_search(counts_hash, k, HASH_FIND, NULL);
		if (c == NULL)
			continue;
		c->verifications -= Min(c->verifications, left);
		if (c->verifications == 0)
		{
			tenant_release(k->dbid, c->tenant_id, true);
			hash_search(counts_hash, k, HASH_REMOVE, NULL);
		}
	}
	LWLockRelease(usage_shared->lock);
}

/*
 * The statement that writes one database's pending times, given the key
 * ids ($1), their times ($2) and the precision ($3).  Keys deleted since
 * their use are dropped.  A usage row locked by someone else (a deleting
 * administrator) is skipped and stays pending: the writer never waits on
 * another transaction.  Returns the key ids that stay pending.
 */
static const char flush_sql[] =
"WITH u AS ("
"  SELECT x.key_id, x.used_at FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS x(key_id, used_at)"
"   WHERE EXISTS (SELECT FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) x.key_id)),"
" locked AS ("
"  SELECT s.key_id FROM apikey.key_usage AS s JOIN u ON s.key_id OPERATOR(pg_catalog.=) u.key_id"
"     FOR UPDATE OF s SKIP LOCKED),"
" updated AS ("
"  UPDATE apikey.key_usage AS s SET last_used_at = u.used_at FROM u, locked"
"   WHERE s.key_id OPERATOR(pg_catalog.=) u.key_id AND locked.key_id OPERATOR(pg_catalog.=) u.key_id"
"     AND s.last_used_at OPERATOR(pg_catalog.<) (u.used_at OPERATOR(pg_catalog.-) $3)),"
" inserted AS ("
"  INSERT INTO apikey.key_usage (key_id, last_used_at)"
"  SELECT u.key_id, u.used_at FROM u"
"   WHERE NOT EXISTS (SELECT FROM apikey.key_usage AS s WHERE s.key_id OPERATOR(pg_catalog.=) u.key_id)"
"  ON CONFLICT DO NOTHING)"
" SELECT u.key_id FROM u"
"  WHERE EXISTS (SELECT FROM apikey.key_usage AS s WHERE s.key_id OPERATOR(pg_catalog.=) u.key_id)"
"    AND NOT EXISTS (SELECT FROM locked WHERE locked.key_id OPERATOR(pg_catalog.=) u.key_id)";

/*
 * The statement that adds one database's pending counts to usage_hourly:
 * key ids ($1), hours ($2), statuses ($3), tenants ($4), verifications ($5),
 * one row per (key, hour, status).
 */
static const char counts_sql[] =
"INSERT INTO apikey.usage_hourly AS s (key_id, hour, status, tenant_id, verifications)"
" SELECT x.key_id, x.hour, x.status, x.tenant_id, x.n"
"   FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
"                   pg_catalog.unnest($4), pg_catalog.unnest($5)) AS x(key_id, hour, status, tenant_id, n)"
" ON CONFLICT (key_id, hour, status) DO UPDATE"
"   SET verifications = s.verifications OPERATOR(pg_catalog.+) excluded.verifications";

/* Counts of hours before $1 are past the retention. */
static const char retention_sql[] =
"DELETE FROM apikey.usage_hourly AS s WHERE s.hour OPERATOR(pg_catalog.<) $1";

/* Does the table apikey.<name> exist (a database not updated may lack it)? */
static bool
apikey_table_exists(const char *name)
{
	Oid			nsp = get_namespace_oid("apikey", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid(name, nsp));
}

/*
 * The owner of extension apikey in this database, or InvalidOid (in a
 * transaction, with SPI connected).
 */
Oid
apikey_extension_owner(void)
{
	Oid			owner = InvalidOid;
	Oid			argtypes[1] = {NAMEOID};
	Datum		args[1] = {CStringGetDatum("apikey")};

	if (SPI_execute_with_args("SELECT e.extowner FROM pg_catalog.pg_extension AS e"
							  " WHERE e.extname OPERATOR(pg_catalog.=) $1",
							  1, argtypes, args, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;

		owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
	}
	return owner;
}

/*
 * Add one database's pending counts to apikey.usage_hourly and delete the
 * hours past the retention, as the extension's owner (in the writer's
 * transaction, whose search_path is pg_catalog and pg_temp only).
 */
static void
counts_write(Oid owner, CountEntry *counts, int n)
{
	Oid			nsp = get_namespace_oid("apikey", false);
	Oid			keyid_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
											 CStringGetDatum("key_id"),
											 ObjectIdGetDatum(nsp));
	Oid			save_userid;
	int			save_sec_context;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (n > 0)
	{
		Datum	   *ids = palloc(sizeof(Datum) * n);
		Datum	   *hours = palloc(sizeof(Datum) * n);
		Datum	   *statuses = palloc(sizeof(Datum) * n);
		Datum	   *tenants = palloc(sizeof(Datum) * n);
		Datum	   *numbers = palloc(sizeof(Datum) * n);
		Datum		args[5];
		Oid			argtypes[5] = {get_array_type(keyid_type), TIMESTAMPTZARRAYOID, TEXTARRAYOID,
		INT8ARRAYOID, INT8ARRAYOID};

		for (int i = 0; i < n; i++)
		{
			ids[i] = KeyIdGetDatum(counts[i].key.key_id);
			hours[i] = TimestampTzGetDatum(counts[i].key.hour);
			statuses[i] = CStringGetTextDatum(verify_status_name(counts[i].key.status));
			tenants[i] = Int64GetDatum(counts[i].tenant_id);
			numbers[i] = Int64GetDatum((int64) counts[i].verifications);
		}
		args[0] = PointerGetDatum(construct_array(ids, n, keyid_type, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[1] = PointerGetDatum(construct_array(hours, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[2] = PointerGetDatum(construct_array(statuses, n, TEXTOID, -1, false, TYPALIGN_INT));
		args[3] = PointerGetDatum(construct_array(tenants, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[4] = PointerGetDatum(construct_array(numbers, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_with_args(counts_sql, 5, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "apikey: could not write usage counts");
	}
	if (usage_stats_retention > 0)
	{
		Oid			argtypes[1] = {TIMESTAMPTZOID};
		Datum		args[1];

		args[0] = TimestampTzGetDatum(hour_start(GetCurrentTimestamp()) -
									  (int64) usage_stats_retention * USECS_PER_SEC);
		if (SPI_execute_with_args(retention_sql, 1, argtypes, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "apikey: could not delete usage counts past the retention");
	}
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * Write one database's pending times and counts, as the extension's owner
 * with a search_path of pg_catalog and pg_temp only.
 */
static void
usage_flush_database(void)
{
	UsageEntry *entries;
	int			n;
	bool	   *written;
	CountEntry *counts;
	int			ncounts;
	Oid			owner;
	int			nestlevel;

	usage_collect(MyDatabaseId, &entries, &n, &counts, &ncounts);
	written = palloc0(sizeof(bool) * Max(1, n));
	if (n == 0 && ncounts == 0)
		return;
	qsort(entries, n, sizeof(UsageEntry), compare_entries);
	for (int i = 0; i < n; i++)
		written[i] = true;

	nestlevel = apikey_worker_xact_begin();
	owner = apikey_extension_owner();
	/* a database whose apikey is not updated to 0.3.0 yet has no key_usage */
	if (OidIsValid(owner) && n > 0 && apikey_table_exists("key_usage"))
	{
		Oid			nsp = get_namespace_oid("apikey", false);
		Oid			keyid_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
												 CStringGetDatum("key_id"),
												 ObjectIdGetDatum(nsp));
		Datum	   *ids = palloc(sizeof(Datum) * n);
		Datum	   *times = palloc(sizeof(Datum) * n);
		Datum		args[3];
		Oid			argtypes[3] = {get_array_type(keyid_type), TIMESTAMPTZARRAYOID, INTERVALOID};
		Interval   *precision = palloc0(sizeof(Interval));
		Oid			save_userid;
		int			save_sec_context;
		int			ret;

		for (int i = 0; i < n; i++)
		{
			ids[i] = KeyIdGetDatum(entries[i].key.key_id);
			times[i] = TimestampTzGetDatum(entries[i].last_used);
		}
		precision->time = (int64) usage_precision * USECS_PER_SEC;
		args[0] = PointerGetDatum(construct_array(ids, n, keyid_type, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[1] = PointerGetDatum(construct_array(times, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[2] = IntervalPGetDatum(precision);

		GetUserIdAndSecContext(&save_userid, &save_sec_context);
		SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		ret = SPI_execute_with_args(flush_sql, 3, argtypes, args, NULL, false, 0);
		SetUserIdAndSecContext(save_userid, save_sec_context);
		if (ret == SPI_OK_SELECT)
		{
			/* the rows locked by others stay pending */
			for (uint64 r = 0; r < SPI_processed; r++)
			{
				bool		isnull;
				UsageEntry	probe = {0};
				UsageEntry *hit;

				probe.key.key_id = DatumGetKeyId(SPI_getbinval(SPI_tuptable->vals[r],
															   SPI_tuptable->tupdesc, 1, &isnull));
				hit = bsearch(&probe, entries, n, sizeof(UsageEntry), compare_entries);
				if (hit != NULL)
					written[hit - entries] = false;
			}
		}
	}
	/* else: no apikey here (any more), or not updated: nothing to keep */
	if (OidIsValid(owner) && apikey_table_exists("usage_hourly"))
		counts_write(owner, counts, ncounts);
	apikey_worker_xact_end(nestlevel);
	usage_forget(entries, n, written, counts, ncounts);
}

/*
 * Forget what is pending for a database whose writer keeps failing (one that
 * was dropped, typically): counted as dropped, and said in the log.
 */
static void
usage_drop_database(Oid dbid)
{
	HASH_SEQ_STATUS seq;
	UsageEntry *e;
	CountEntry *c;
	uint64		uses = 0;
	uint64		verifications = 0;

	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, usage_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->key.dbid == dbid)
		{
			uses += e->last_used != 0;
			for (int s = 0; s < NUM_VERIFY_STATUSES; s++)
				verifications += e->counts[s];
			tenant_release(e->key.dbid, e->tenant_id, false);
			hash_search(usage_hash, &e->key, HASH_REMOVE, NULL);
		}
	hash_seq_init(&seq, counts_hash);
	while ((c = hash_seq_search(&seq)) != NULL)
		if (c->key.dbid == dbid)
		{
			verifications += c->verifications;
			tenant_release(c->key.dbid, c->tenant_id, true);
			hash_search(counts_hash, &c->key, HASH_REMOVE, NULL);
		}
	usage_shared->dropped += uses;
	usage_shared->counts_dropped += verifications;
	LWLockRelease(usage_shared->lock);
	ereport(LOG,
			(errmsg("apikey: dropped the pending usage of database %u (%llu last uses, %llu verifications) after %d failed writes",
					dbid, (unsigned long long) uses, (unsigned long long) verifications,
					USAGE_WRITER_ATTEMPTS),
			 errdetail("The database no longer exists, or its writer failed: see the errors above.")));
}

/* The per-database writer: connect, flush, exit. */
PGDLLEXPORT void usage_database_main(Datum arg);
void
usage_database_main(Datum arg)
{
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	pgstat_report_appname("apikey usage writer");
	usage_flush_database();
	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	usage_shared->writer_wrote = true;
	LWLockRelease(usage_shared->lock);
	proc_exit(0);
}

typedef enum WriterOutcome
{
	WRITER_NO_SLOT,				/* no free background worker slot */
	WRITER_FAILED,
	WRITER_WROTE
} WriterOutcome;

static WriterOutcome
usage_start_database_writer(Oid dbid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	apikey_worker(&worker, "usage_database_main", "apikey usage writer", dbid,
				  BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION,
				  BgWorkerStart_RecoveryFinished, BGW_NEVER_RESTART);
	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	usage_shared->writer_wrote = false;
	LWLockRelease(usage_shared->lock);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return WRITER_NO_SLOT;	/* the next round retries */

	/*
	 * Poll until it is done: a worker without a database connection ignores
	 * SIGUSR1, so the postmaster's notifications would not wake us.
	 */
	for (;;)
	{
		BgwHandleStatus status = GetBackgroundWorkerPid(handle, &pid);

		if (status == BGWH_STOPPED || status == BGWH_POSTMASTER_DIED ||
			ShutdownRequestPending)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	return usage_shared->writer_wrote ? WRITER_WROTE : WRITER_FAILED;
}

/*
 * The launcher: every flush interval, or when apikey.usage_flush() wakes it,
 * one writer per database with entries.
 */
PGDLLEXPORT void usage_launcher_main(Datum arg);
void
usage_launcher_main(Datum arg)
{
	/* databases whose writer failed, and how many times in a row */
	struct
	{
		Oid			dbid;
		int			attempts;
	}			failed[64];
	int			nfailed = 0;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	pgstat_report_appname("apikey usage launcher");
	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	usage_shared->launcher_procno = AK_MY_PROC_INDEX;
	LWLockRelease(usage_shared->lock);

	for (;;)
	{
		Oid		   *dbids;
		int			ndb = 0;
		HASH_SEQ_STATUS seq;
		UsageEntry *e;
		CountEntry *c;
		uint64		requested;
		bool		all_written = true;

		/*
		 * A shutdown requested while a writer was awaited reset the latch
		 * that announced it: look before sleeping, not only after.
		 */
		if (ShutdownRequestPending)
			proc_exit(0);
		/* after a failure, the next round comes soon */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nfailed > 0 ? 1000L : usage_flush_interval * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (ShutdownRequestPending)
			proc_exit(0);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* what was pending when the requests so far were made is written below */
		requested = pg_atomic_read_u64(&usage_shared->flush_requests);
		pg_memory_barrier();
		if (RecoveryInProgress())
			continue;

		LWLockAcquire(usage_shared->lock, LW_SHARED);
		dbids = palloc(sizeof(Oid) * Max(1, hash_get_num_entries(usage_hash) +
										 hash_get_num_entries(counts_hash)));
		hash_seq_init(&seq, usage_hash);
		while ((e = hash_seq_search(&seq)) != NULL)
		{
			int			i;

			for (i = 0; i < ndb && dbids[i] != e->key.dbid; i++)
				;
			if (i == ndb)
				dbids[ndb++] = e->key.dbid;
		}
		hash_seq_init(&seq, counts_hash);
		while ((c = hash_seq_search(&seq)) != NULL)
		{
			int			i;

			for (i = 0; i < ndb && dbids[i] != c->key.dbid; i++)
				;
			if (i == ndb)
				dbids[ndb++] = c->key.dbid;
		}
		LWLockRelease(usage_shared->lock);

		for (int i = 0; i < ndb && !ShutdownRequestPending; i++)
		{
			WriterOutcome outcome = usage_start_database_writer(dbids[i]);
			int			f;

			for (f = 0; f < nfailed && failed[f].dbid != dbids[i]; f++)
				;
			if (outcome == WRITER_WROTE)
			{
				if (f < nfailed)
					failed[f] = failed[--nfailed];
				continue;
			}
			if (outcome == WRITER_NO_SLOT)
			{
				all_written = false;
				continue;
			}
			if (f == nfailed)
			{
				if (nfailed == lengthof(failed))
				{
					all_written = false;
					continue;	/* tried again later */
				}
				failed[nfailed].dbid = dbids[i];
				failed[nfailed++].attempts = 0;
			}
			if (++failed[f].attempts >= USAGE_WRITER_ATTEMPTS)
			{
				/* nothing of it is pending any more */
				usage_drop_database(dbids[i]);
				failed[f] = failed[--nfailed];
			}
			else
				all_written = false;
		}
		pfree(dbids);
		if (all_written)
			pg_atomic_write_u64(&usage_shared->flushes_done, requested);
	}
}

/*
 * usage_flush(): write what is pending now (last uses and counts of every
 * database) and return once it is written.
 */
PG_FUNCTION_INFO_V1(usage_flush);
Datum
usage_flush(PG_FUNCTION_ARGS)
{
	uint64		target;
	int			procno;

	if (!usage_preloaded || usage_hash == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("usage is not tracked in this server"),
				 errhint("Add apikey to shared_preload_libraries and restart the server.")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("usage is not written on a standby"),
				 errdetail("The primary writes its own verifications; a standby counts none.")));
	usage_drain();
	target = pg_atomic_add_fetch_u64(&usage_shared->flush_requests, 1);
	LWLockAcquire(usage_shared->lock, LW_SHARED);
	procno = usage_shared->launcher_procno;
	LWLockRelease(usage_shared->lock);
	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
	for (int waited = 0; pg_atomic_read_u64(&usage_shared->flushes_done) < target; waited += 10)
	{
		if (waited >= 60000)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the apikey usage writer did not write within 60 s"),
					 errhint("See the server log; the writer needs a free background worker slot (max_worker_processes).")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	PG_RETURN_VOID();
}

void
usage_init(void)
{
	BackgroundWorker worker;

	DefineCustomBoolVariable("apikey.track_usage",
							 "Keep last_used_at of keys (needs shared_preload_libraries = apikey).",
							 NULL,
							 &track_usage,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("apikey.usage_flush_interval",
							"Time between writes of last_used_at to apikey.key_usage.",
							NULL,
							&usage_flush_interval,
							10, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("apikey.usage_stats_retention",
							"How long usage_stats keeps its hourly counts (0: for ever).",
							"Older hours are deleted as the background writer writes.",
							&usage_stats_retention,
							90 * 86400, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("apikey.usage_precision",
							"How far last_used_at must move before it is written again.",
							"A key in constant use is rewritten once per this interval at most.",
							&usage_precision,
							60, 0, 86400,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	RegisterXactCallback(usage_xact_callback, NULL);

	/* shared memory, and the setting that sizes it, only when preloaded */
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("apikey.usage_max_keys",
							"Keys whose last use and counts can wait in shared memory between writes.",
							NULL,
							&usage_max_keys,
							65536, 1024, 16777216,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("apikey.usage_stats_max_counts",
							"Counts of usage_stats (per key, hour and status) set aside in shared memory between writes: an earlier hour, or keys beyond apikey.usage_max_keys.",
							NULL,
							&usage_stats_max_counts,
							65536, 1024, 16777216,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("apikey.usage_tenant_share",
							"Percent of apikey.usage_max_keys and apikey.usage_stats_max_counts a tenant may hold before the rest is kept for other tenants.",
							"A tenant holding this share of a table cannot take its last free entries (as many again): they are kept for tenants below their share. 100: no reserve.",
							&usage_tenant_share,
							25, 1, 100,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	usage_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = usage_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = usage_shmem_startup;

	apikey_worker(&worker, "usage_launcher_main", "apikey usage launcher", InvalidOid,
				  BGWORKER_SHMEM_ACCESS,
				  BgWorkerStart_RecoveryFinished, 10);
	RegisterBackgroundWorker(&worker);
}
