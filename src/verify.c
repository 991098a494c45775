/*
 * verify.c
 *		Where the key table is probed and a verification status decided.
 *
 * A verification parses the text (rejecting malformed input before any
 * table is touched, or, once keys were imported from another system, after
 * one index probe: imported.c), hashes it, fetches the key's row through
 * the primary key index directly (no SPI, no planning) and compares hashes
 * in constant time.  The key's other states are looked at only once the secret is
 * proven.  Nothing here writes, so verification works in read-only
 * transactions and on hot standbys, except the charge of a key that has
 * credits (credits.c), made in the caller's transaction.
 */
#include "postgres.h"

#include <sys/socket.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "storage/bufmgr.h"
#include "storage/proc.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "utils/arrayaccess.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "pg_compat.h"
#include "apikey.h"
#include "credits.h"
#include "imported.h"
#include "keycache.h"
#include "keychange.h"
#include "keyhash.h"
#include "keyid.h"
#include "keytext.h"
#include "ratelimit.h"
#include "scopes.h"
#include "verify.h"

char	   *apikey_default_environment = NULL;
bool		apikey_require_environment = false;

static const char *const status_names[] = {
	[VS_VALID] = "valid",
	[VS_MALFORMED] = "malformed",
	[VS_NOT_FOUND] = "not_found",
	[VS_REVOKED] = "revoked",
	[VS_EXPIRED] = "expired",
	[VS_WRONG_ENVIRONMENT] = "wrong_environment",
	[VS_INSUFFICIENT_SCOPE] = "insufficient_scope",
	[VS_WRONG_RESOURCE] = "wrong_resource",
	[VS_PUBLIC_KEY] = "public_key",
	[VS_IP_NOT_ALLOWED] = "ip_not_allowed",
	[VS_RATE_LIMITED] = "rate_limited",
	[VS_USAGE_EXCEEDED] = "usage_exceeded",
};
StaticAssertDecl(lengthof(status_names) == NUM_VERIFY_STATUSES,
				 "every status has a name");

const char *
verify_status_name(VerifyStatus status)
{
	return status_names[status];
}

/*
 * The status as text, built once per backend: the result row copies it, so
 * verification allocates no text for it.
 */
static text *
status_text(VerifyStatus status)
{
	static text *texts[lengthof(status_names)];

	if (texts[status] == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		texts[status] = cstring_to_text(status_names[status]);
		MemoryContextSwitchTo(old);
	}
	return texts[status];
}

/*
 * The columns of apikey.keys that verification reads.  The optional ones
 * are those a database not yet updated to this version lacks (the library
 * is shared by every version): they read as NULL, and scopes and resources
 * fall back to what the older version had.
 */
typedef enum KeyColumn
{
	COL_KEY_ID,
	COL_TENANT_ID,
	COL_TENANT,
	COL_ENVIRONMENT,
	COL_KEY_HASH,
	COL_PREVIOUS_HASH,
	COL_PREVIOUS_HASH_EXPIRES_AT,
	COL_SCOPES,
	COL_EXPIRES_AT,
	COL_REVOKED_AT,
	/* optional: */
	COL_EFFECTIVE_SCOPES,
	COL_RESOURCES,
	COL_RESOURCE,				/* before 0.3.0: one resource */
	COL_OWNER,
	COL_META,
	COL_ALLOWED_IPS,
	COL_RATE_LIMITS,
	COL_TENANT_RATE_LIMITS,
	COL_HAS_CREDITS,
	COL_OWNER_RATE_LIMITS,
	NUM_KEY_COLUMNS
} KeyColumn;

#define FIRST_OPTIONAL_COLUMN COL_EFFECTIVE_SCOPES

static const char *const key_column_names[NUM_KEY_COLUMNS] = {
	[COL_KEY_ID] = "key_id",
	[COL_TENANT_ID] = "tenant_id",
	[COL_TENANT] = "tenant",
	[COL_ENVIRONMENT] = "environment",
	[COL_KEY_HASH] = "key_hash",
	[COL_PREVIOUS_HASH] = "previous_hash",
	[COL_PREVIOUS_HASH_EXPIRES_AT] = "previous_hash_expires_at",
	[COL_SCOPES] = "scopes",
	[COL_EXPIRES_AT] = "expires_at",
	[COL_REVOKED_AT] = "revoked_at",
	[COL_EFFECTIVE_SCOPES] = "effective_scopes",
	[COL_RESOURCES] = "resources",
	[COL_RESOURCE] = "resource",
	[COL_OWNER] = "owner",
	[COL_META] = "meta",
	[COL_ALLOWED_IPS] = "allowed_ips",
	[COL_RATE_LIMITS] = "rate_limits",
	[COL_TENANT_RATE_LIMITS] = "tenant_rate_limits",
	[COL_HAS_CREDITS] = "has_credits",
	[COL_OWNER_RATE_LIMITS] = "owner_rate_limits",
};

/*
 * Where the key table lives, looked up once per backend and forgotten when
 * the table or its index changes (relcache invalidation).
 */
typedef struct KeyCatalog
{
	bool		valid;
	bool		changes_tracked;	/* the key table has its change trigger */
	Oid			keys_relid;
	Oid			pkey_relid;
	FmgrInfo	eq_finfo;
	AttrNumber	attnum[NUM_KEY_COLUMNS];
} KeyCatalog;

static KeyCatalog catalog;

/*
 * The key table is locked by the first verification of a transaction, its
 * index by the first that descends it (most find the row at a remembered
 * location), and both stay locked until the transaction ends; later
 * verifications only take relcache references.  A lock taken in a
 * subtransaction that aborts goes with it, so the subtransaction that holds
 * each lock is tracked.
 */
typedef struct HeldLock
{
	LocalTransactionId lxid;
	SubTransactionId subid;
} HeldLock;

static HeldLock table_lock = {InvalidLocalTransactionId, InvalidSubTransactionId};
static HeldLock index_lock = {InvalidLocalTransactionId, InvalidSubTransactionId};

/*
 * The table's size in blocks when its lock was taken.  While it is held
 * the table cannot be truncated (that takes an exclusive lock), so a
 * remembered location in a block below this size can be read; one at or
 * beyond it (a block that VACUUM cut off, or one added since) is not used.
 */
static BlockNumber locked_nblocks = 0;

static inline bool
lock_held(const HeldLock *lock)
{
	return lock->lxid == AK_MY_LXID && lock->subid != InvalidSubTransactionId;
}

static inline void
note_lock_held(HeldLock *lock)
{
	lock->lxid = AK_MY_LXID;
	lock->subid = GetCurrentSubTransactionId();
}

static inline void
lock_subxact_end(HeldLock *lock, SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid)
{
	if (lock->subid != mySubid)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		lock->subid = InvalidSubTransactionId;
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		lock->subid = parentSubid;
}

static void
locks_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	lock_subxact_end(&table_lock, event, mySubid, parentSubid);
	lock_subxact_end(&index_lock, event, mySubid, parentSubid);
}

static void
catalog_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == catalog.keys_relid ||
		relid == catalog.pkey_relid)
	{
		catalog.valid = false;
		keycache_forget_all();
	}
}

void
verify_init(void)
{
	keycache_init();
	keychange_init();
	CacheRegisterRelcacheCallback(catalog_invalidate, (Datum) 0);
	RegisterSubXactCallback(locks_subxact_callback, NULL);
}

static void
catalog_missing(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("%s of extension apikey is missing", what),
			 errhint("Run CREATE EXTENSION apikey in this database.")));
}

/*
 * Does the key table note its changes for the cache of verified keys (the
 * trigger calling apikey_internal.key_changed, enabled always, for updates
 * and deletes of rows and for TRUNCATE)?  Without it nothing may be reused.
 */
static bool
changes_tracked(Oid keys_relid)
{
	Oid			fn = apikey_internal_function("key_changed", 0, NULL);
	Relation	rel;
	bool		rows = false;
	bool		truncate = false;

	if (!OidIsValid(fn))
		return false;
	rel = table_open(keys_relid, AccessShareLock);
	for (int i = 0; rel->trigdesc != NULL && i < rel->trigdesc->numtriggers; i++)
	{
		Trigger    *t = &rel->trigdesc->triggers[i];

		if (t->tgfoid != fn || t->tgenabled != TRIGGER_FIRES_ALWAYS)
			continue;
		if (TRIGGER_FOR_ROW(t->tgtype) && TRIGGER_FOR_UPDATE(t->tgtype) &&
			TRIGGER_FOR_DELETE(t->tgtype))
			rows = true;
		if (TRIGGER_FOR_TRUNCATE(t->tgtype))
			truncate = true;
	}
	table_close(rel, AccessShareLock);
	return rows && truncate;
}

/*
 * Refuse apikey's tables once Citus has made them distributed or reference
 * tables (their rows are then in shards, and what this server's table
 * holds is a stale copy that a verification must never read).  Citus keeps
 * them in pg_catalog.pg_dist_partition, and its trigger there invalidates
 * the relation cache entry of a table it converts: this runs when a
 * backend first verifies, and again after any such change of apikey.keys.
 */
static void
refuse_citus_tables(Oid nsp)
{
	static const char *const tables[] = {"keys", "credits", "imported_keys"};
	Oid			dist = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
	AttrNumber	attnum;
	Oid			relids[lengthof(tables)];
	Relation	rel;
	Snapshot	snapshot;
	SysScanDesc scan;
	HeapTuple	tuple;
	const char *found = NULL;

	if (!OidIsValid(dist))
		return;
	attnum = get_attnum(dist, "logicalrelid");
	if (attnum == InvalidAttrNumber)
		return;
	for (int i = 0; i < (int) lengthof(tables); i++)
		relids[i] = get_relname_relid(tables[i], nsp);
	rel = table_open(dist, AccessShareLock);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan(rel, InvalidOid, false, snapshot, 0, NULL);
	while (found == NULL && HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(heap_getattr(tuple, attnum,
														  RelationGetDescr(rel), &isnull));

		for (int i = 0; !isnull && i < (int) lengthof(tables); i++)
			if (OidIsValid(relids[i]) && relid == relids[i])
				found = tables[i];
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	if (found != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("apikey.%s is a Citus table: apikey does not verify keys from Citus tables", found),
				 errdetail("Its rows are in shards; this server's own copy of the table is stale and is not read."),
				 errhint("Keep apikey's tables as ordinary tables on the coordinator and pass the authenticated tenant to distributed queries as a value (doc/operations.md, \"Citus\").")));
}

static void
catalog_load(void)
{
	Oid			nsp = get_namespace_oid("apikey", true);
	Relation	index;
	Oid			eq_opr;

	catalog.valid = false;
	table_lock.lxid = InvalidLocalTransactionId;
	index_lock.lxid = InvalidLocalTransactionId;
	if (!OidIsValid(nsp))
		catalog_missing("schema apikey");
	catalog.keys_relid = get_relname_relid("keys", nsp);
	catalog.pkey_relid = get_relname_relid("keys_pkey", nsp);
	if (!OidIsValid(catalog.keys_relid) || !OidIsValid(catalog.pkey_relid))
		catalog_missing("table apikey.keys");
	refuse_citus_tables(nsp);

	for (int i = 0; i < NUM_KEY_COLUMNS; i++)
	{
		catalog.attnum[i] = get_attnum(catalog.keys_relid, key_column_names[i]);
		if (i < FIRST_OPTIONAL_COLUMN && catalog.attnum[i] == InvalidAttrNumber)
			catalog_missing(psprintf("column apikey.keys.%s", key_column_names[i]));
	}

	catalog.changes_tracked = changes_tracked(catalog.keys_relid);

	index = index_open(catalog.pkey_relid, AccessShareLock);
	eq_opr = get_opfamily_member(index->rd_opfamily[0], index->rd_opcintype[0],
								 index->rd_opcintype[0], BTEqualStrategyNumber);
	index_close(index, AccessShareLock);
	if (!OidIsValid(eq_opr))
		catalog_missing("operator = for apikey.key_id");
	fmgr_info_cxt(get_opcode(eq_opr), &catalog.eq_finfo, TopMemoryContext);

	catalog.valid = true;
}

/* Does text t hold exactly the len bytes at s? */
static inline bool
text_is(text *t, const char *s, size_t len)
{
	return VARSIZE_ANY_EXHDR(t) == len && memcmp(VARDATA_ANY(t), s, len) == 0;
}

/* A hash column of the row: its KEY_HASH_LEN bytes; NULL when NULL or malformed. */
static inline const uint8 *
slot_hash_bytes(TupleTableSlot *slot, KeyColumn col)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, catalog.attnum[col], &isnull);
	bytea	   *stored;

	if (isnull)
		return NULL;
	stored = DatumGetByteaPP(d);
	if (VARSIZE_ANY_EXHDR(stored) != KEY_HASH_LEN)
		return NULL;
	return (const uint8 *) VARDATA_ANY(stored);
}

static inline bool
slot_hash_equal(TupleTableSlot *slot, KeyColumn col, const uint8 *hash)
{
	const uint8 *stored = slot_hash_bytes(slot, col);

	return stored != NULL && key_hash_equal(stored, hash);
}

static inline bool
slot_timestamp(TupleTableSlot *slot, KeyColumn col, TimestampTz *ts)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, catalog.attnum[col], &isnull);

	if (!isnull)
		*ts = DatumGetTimestampTz(d);
	return !isnull;
}

/*
 * Is this the key's current secret, or its previous one still within the
 * grace period of a roll?
 */
static bool
secret_matches(TupleTableSlot *slot, const uint8 *hash, TimestampTz now)
{
	TimestampTz grace_end;

	if (slot_hash_equal(slot, COL_KEY_HASH, hash))
		return true;
	return slot_timestamp(slot, COL_PREVIOUS_HASH_EXPIRES_AT, &grace_end) &&
		now < grace_end &&
		slot_hash_equal(slot, COL_PREVIOUS_HASH, hash);
}

/*
 * A column's value, or NULL when it is NULL or the table lacks it: a copy
 * (copy), or the value in the row itself, detoasted only when compressed or
 * stored out of line (valid while the slot holds the row; it may have a
 * short header).
 */
static inline void *
slot_varlena(TupleTableSlot *slot, KeyColumn col, bool copy)
{
	bool		isnull;
	Datum		d;
	struct varlena *v;

	if (catalog.attnum[col] == InvalidAttrNumber)
		return NULL;
	d = slot_getattr(slot, catalog.attnum[col], &isnull);
	if (isnull)
		return NULL;
	if (copy)
		return PG_DETOAST_DATUM_COPY(d);
	v = (struct varlena *) DatumGetPointer(d);
	return VARATT_IS_EXTENDED(v) && !VARATT_IS_SHORT(v) ? PG_DETOAST_DATUM(d) : v;
}

/*
 * Read the state of the key from its row: copies (copy), or the values in
 * the row itself, for the cache of verified keys to copy (see slot_varlena).
 */
static void
read_key_state(TupleTableSlot *slot, uint64 key_id, KeyState *key, bool copy)
{
	bool		isnull;
	Datum		d;

	key->key_id = key_id;
	key->tenant_id = DatumGetInt64(slot_getattr(slot, catalog.attnum[COL_TENANT_ID], &isnull));
	key->tenant = slot_varlena(slot, COL_TENANT, copy);
	key->environment = slot_varlena(slot, COL_ENVIRONMENT, copy);
	key->scopes = slot_varlena(slot, COL_EFFECTIVE_SCOPES, copy);
	if (key->scopes == NULL)
		key->scopes = slot_varlena(slot, COL_SCOPES, copy);
	key->resources = slot_varlena(slot, COL_RESOURCES, copy);
	if (key->resources == NULL && catalog.attnum[COL_RESOURCES] == InvalidAttrNumber)
	{
		text	   *resource = slot_varlena(slot, COL_RESOURCE, true);

		if (resource != NULL)
		{
			Datum		elem = PointerGetDatum(resource);

			key->resources = construct_array(&elem, 1, TEXTOID, -1, false, TYPALIGN_INT);
		}
	}
	key->owner = slot_varlena(slot, COL_OWNER, copy);
	key->meta = slot_varlena(slot, COL_META, copy);
	key->allowed_ips = slot_varlena(slot, COL_ALLOWED_IPS, copy);
	key->rate_limits = slot_varlena(slot, COL_RATE_LIMITS, copy);
	key->tenant_rate_limits = slot_varlena(slot, COL_TENANT_RATE_LIMITS, copy);
	/* an owner's limits apply to keys that have an owner */
	key->owner_rate_limits = key->owner != NULL ?
		slot_varlena(slot, COL_OWNER_RATE_LIMITS, copy) : NULL;
	key->has_credits = false;
	if (catalog.attnum[COL_HAS_CREDITS] != InvalidAttrNumber)
	{
		d = slot_getattr(slot, catalog.attnum[COL_HAS_CREDITS], &isnull);
		key->has_credits = !isnull && DatumGetBool(d);
	}
	key->revoked = !slot_attisnull(slot, catalog.attnum[COL_REVOKED_AT]);
	key->has_expiry = slot_timestamp(slot, COL_EXPIRES_AT, &key->expires_at);
}

/*
 * The key table or its index, locked by the first use in the transaction
 * and kept locked until it ends (as the executor does).
 */
static Relation
open_locked(Oid relid, HeldLock *lock)
{
	Relation	rel;

	if (lock_held(lock))
	{
		rel = RelationIdGetRelation(relid);
		if (rel == NULL)
			catalog_missing("table apikey.keys");
		return rel;
	}
	rel = relation_open(relid, AccessShareLock);
	note_lock_held(lock);
	if (lock == &table_lock)
		locked_nblocks = RelationGetNumberOfBlocks(rel);
	return rel;
}

/* The key's row at a remembered location (the root of its HOT chain), if it is still there. */
static bool
fetch_at(Relation heap, const ItemPointerData *root, uint64 key_id, Snapshot snapshot,
		 TupleTableSlot *slot)
{
	IndexFetchTableData *fetch = ak_table_index_fetch_begin(heap);
	ItemPointerData tid = *root;	/* the fetch moves it along the chain */
	bool		call_again = false;
	bool		all_dead = false;
	bool		found;
	bool		isnull;

	/* follows the HOT chain to the version the snapshot sees */
	found = table_index_fetch_tuple(fetch, &tid, snapshot, slot, &call_again, &all_dead);
	table_index_fetch_end(fetch);
	return found &&
		DatumGetKeyId(slot_getattr(slot, catalog.attnum[COL_KEY_ID], &isnull)) == key_id;
}

/* The key's row through the primary key index, and where it was (*tid). */
static bool
fetch_by_index(Relation heap, uint64 key_id, Snapshot snapshot, TupleTableSlot *slot,
			   ItemPointer tid)
{
	Relation	index = open_locked(catalog.pkey_relid, &index_lock);
	IndexScanDesc scan;
	ScanKeyData skey;
	bool		found;

	ScanKeyEntryInitializeWithInfo(&skey, 0, 1, BTEqualStrategyNumber,
								   InvalidOid, InvalidOid, &catalog.eq_finfo,
								   KeyIdGetDatum(key_id));
	scan = ak_index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
		*tid = scan->xs_heaptid;
	index_endscan(scan);
	index_close(index, NoLock);
	return found;
}

/* A hash column of the row into out; false when NULL or malformed. */
static inline bool
slot_hash(TupleTableSlot *slot, KeyColumn col, uint8 *out)
{
	const uint8 *stored = slot_hash_bytes(slot, col);

	if (stored == NULL)
		return false;
	memcpy(out, stored, KEY_HASH_LEN);
	return true;
}

/*
 * Is the row in the slot the key's latest version: one nobody has updated
 * or deleted (or is doing so)?  Then a state stamped before it was read is
 * current: a change committed before the stamp would have marked this
 * version as replaced.
 */
static bool
row_is_latest(TupleTableSlot *slot)
{
	HeapTupleHeader header;
	uint16		infomask;

	if (!TTS_IS_BUFFERTUPLE(slot))
		return false;
	header = ((BufferHeapTupleTableSlot *) slot)->base.tuple->t_data;
	infomask = header->t_infomask;
	return (infomask & HEAP_XMAX_INVALID) ||
		HEAP_XMAX_IS_LOCKED_ONLY(infomask) ||
		!TransactionIdIsValid(HeapTupleHeaderGetRawXmax(header));
}

/* Remember the key's state from its row in the slot, stamped with stamp. */
static void
remember_row(CachedKey *entry, TupleTableSlot *slot, const KeyChangeStamp *stamp)
{
	KeyState	state;
	uint8		key_hash[KEY_HASH_LEN];
	uint8		previous_hash[KEY_HASH_LEN];
	TimestampTz previous_until = 0;
	bool		has_previous;

	if (!slot_hash(slot, COL_KEY_HASH, key_hash))
		return;
	has_previous = slot_timestamp(slot, COL_PREVIOUS_HASH_EXPIRES_AT, &previous_until) &&
		slot_hash(slot, COL_PREVIOUS_HASH, previous_hash);
	read_key_state(slot, entry->key_id, &state, false);
	keycache_set_state(entry, &state, key_hash, has_previous ? previous_hash : NULL,
					   previous_until, stamp);
}

/*
 * Remember the key's current state when the row the statement's snapshot
 * saw may not be its latest version: the row as the latest snapshot sees
 * it, read after the change counters.  A row that moved is not remembered.
 */
static void
remember_latest(CachedKey *entry, Relation heap, TupleTableSlot *slot)
{
	KeyChangeStamp stamp;

	if (IsInParallelMode())
		return;
	keychange_stamp(entry->key_id, &stamp);
	if (fetch_at(heap, &entry->tid, entry->key_id, GetLatestSnapshot(), slot))
		remember_row(entry, slot, &stamp);
}

/*
 * Find the key's state by id and prove the secret (hash) against it:
 * from the cache of verified keys when nothing changed the key since, else
 * from its row (at its remembered location, or through the index).
 * Returns whether the secret was proven; then key is filled in.
 * *row_tenant_id is the key's tenant when the key id is known, else -1 (for
 * usage_stats: a known key id with a wrong secret).
 */
static bool
probe_key(uint64 key_id, const uint8 *hash, TimestampTz now, KeyState *key,
		  CachedKey **from, int64 *row_tenant_id)
{
	Snapshot	snapshot;
	Relation	heap;
	TupleTableSlot *slot;
	CachedKey  *entry;
	ItemPointerData tid;
	KeyChangeStamp stamp;
	bool		have_tid;
	bool		reuse = keychange_cache_allowed();
	bool		found = false;
	bool		proven = false;

	/* see DDL on the key table even when no lock is taken below */
	if (reuse)
		AcceptInvalidationMessages();
	if (!catalog.valid)
		catalog_load();
	reuse = reuse && catalog.changes_tracked;
	entry = keycache_lookup(key_id, false);
	*row_tenant_id = -1;
	if (reuse && entry != NULL && entry->has_state &&
		keychange_unchanged(key_id, &entry->stamp))
	{
		*from = entry;
		*row_tenant_id = keycache_tenant_id(entry);
		return keycache_prove(entry, hash, now, key);
	}
	/* read before the row, for a state remembered from it */
	if (reuse)
		keychange_stamp(key_id, &stamp);

	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	heap = open_locked(catalog.keys_relid, &table_lock);
	slot = table_slot_create(heap, NULL);

	/* where this backend found the row before, or else another backend */
	if (entry != NULL && ItemPointerIsValid(&entry->tid))
	{
		tid = entry->tid;
		have_tid = true;
	}
	else
		have_tid = keycache_shared_location(key_id, &tid);
	if (have_tid)
	{
		found = ItemPointerGetBlockNumber(&tid) < locked_nblocks &&
			fetch_at(heap, &tid, key_id, snapshot, slot);
		if (!found && entry != NULL)
		{
			keycache_forget(key_id);
			entry = NULL;
		}
	}
	if (!found)
	{
		found = fetch_by_index(heap, key_id, snapshot, slot, &tid);
		if (found)
			keycache_share_location(key_id, &tid);
	}

	if (found)
	{
		bool		isnull;

		*row_tenant_id = DatumGetInt64(slot_getattr(slot, catalog.attnum[COL_TENANT_ID], &isnull));
		proven = secret_matches(slot, hash, now);
		if (entry == NULL)
			entry = keycache_lookup(key_id, true);
		if (entry != NULL)
			entry->tid = tid;
		if (reuse && entry != NULL && row_is_latest(slot))
		{
			/* the common case: one read serves the answer and the cache */
			remember_row(entry, slot, &stamp);
			if (proven && entry->has_state)
			{
				keycache_state(entry, key);
				*from = entry;
			}
			else if (proven)
				read_key_state(slot, key_id, key, true);
		}
		else
		{
			if (proven)
				read_key_state(slot, key_id, key, true);
			if (reuse && entry != NULL)
				remember_latest(entry, heap, slot);
		}
	}

	ExecDropSingleTupleTableSlot(slot);
	table_close(heap, NoLock);
	return proven;
}

/*
 * Is the key revoked, or gone, as the latest snapshot sees it?  For the
 * kill switch, when a kill it no longer tells apart from others may have
 * been this key's.  Fails closed (true) where no new snapshot can be taken.
 */
bool
verify_key_revoked_now(uint64 key_id)
{
	Relation	heap;
	TupleTableSlot *slot;
	ItemPointerData tid;
	bool		revoked = true;

	if (IsInParallelMode())
		return true;
	if (!catalog.valid)
		catalog_load();
	heap = open_locked(catalog.keys_relid, &table_lock);
	slot = table_slot_create(heap, NULL);
	if (fetch_by_index(heap, key_id, GetLatestSnapshot(), slot, &tid))
		revoked = !slot_attisnull(slot, catalog.attnum[COL_REVOKED_AT]);
	ExecDropSingleTupleTableSlot(slot);
	table_close(heap, NoLock);
	return revoked;
}

bool
resources_cover(ArrayType *resources, text *resource)
{
	array_iter	it;
	int			n = ArrayGetNItems(ARR_NDIM(resources), ARR_DIMS(resources));

	ak_array_iter_setup(&it, (AnyArrayType *) resources, -1, false, TYPALIGN_INT);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		d = ak_array_iter_next(&it, &isnull, i, -1, false, TYPALIGN_INT);
		text	   *granted;

		if (isnull)
			continue;
		granted = DatumGetTextPP(d);
		if (ak_resource_covers(VARDATA_ANY(granted), VARSIZE_ANY_EXHDR(granted),
							   VARDATA_ANY(resource), VARSIZE_ANY_EXHDR(resource)))
			return true;
	}
	return false;
}

/*
 * The address of this connection's client, looked up once per backend;
 * NULL over a Unix socket.
 */
static inet *
connection_address(void)
{
	static bool looked_up = false;
	static inet *address = NULL;

	if (!looked_up)
	{
		LOCAL_FCINFO(fcinfo, 0);
		Datum		d;

		InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
		d = inet_client_addr(fcinfo);
		if (!fcinfo->isnull)
		{
			inet	   *a = DatumGetInetPP(d);

			address = MemoryContextAlloc(TopMemoryContext, VARSIZE(a));
			memcpy(address, a, VARSIZE(a));
		}
		looked_up = true;
	}
	return address;
}

/*
 * An IPv4 address written as IPv6 (::ffff:a.b.c.d, as dual-stack sockets
 * report IPv4 clients to applications) is the IPv4 address it maps.
 */
static inet *
ipv4_unmapped(inet *address, inet *buf)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (ip_family(address) != PGSQL_AF_INET6 || ip_bits(address) < 96 ||
		memcmp(ip_addr(address), mapped, sizeof(mapped)) != 0)
		return address;
	memset(buf, 0, sizeof(inet));
	ip_family(buf) = PGSQL_AF_INET;
	ip_bits(buf) = ip_bits(address) - 96;
	memcpy(ip_addr(buf), ip_addr(address) + sizeof(mapped), 4);
	SET_INET_VARSIZE(buf);
	return buf;
}

/* Is the address within one of the allowed networks? */
static bool
ip_allowed(ArrayType *allowed_ips, inet *address)
{
	array_iter	it;
	int			n = ArrayGetNItems(ARR_NDIM(allowed_ips), ARR_DIMS(allowed_ips));
	inet		unmapped;

	if (address == NULL)
		return false;
	address = ipv4_unmapped(address, &unmapped);
	ak_array_iter_setup(&it, (AnyArrayType *) allowed_ips, -1, false, TYPALIGN_INT);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		network = ak_array_iter_next(&it, &isnull, i, -1, false, TYPALIGN_INT);

		if (!isnull &&
			DatumGetBool(DirectFunctionCall2(network_supeq, network, InetPGetDatum(address))))
			return true;
	}
	return false;
}

/*
 * The one place a verification status is decided, for a key whose secret
 * was proven: its states first, then what the request asks of it.
 */
static VerifyStatus
decide_status(const KeyState *key, const VerifyRequest *request, TimestampTz now,
			  const char *environment, size_t environment_len)
{
	if (key->revoked)
		return VS_REVOKED;
	if (key->has_expiry && key->expires_at <= now)
		return VS_EXPIRED;
	if (environment != NULL && !text_is(key->environment, environment, environment_len))
		return VS_WRONG_ENVIRONMENT;
	if (request->scope != NULL &&
		!scopes_cover(key->scopes, VARDATA_ANY(request->scope), VARSIZE_ANY_EXHDR(request->scope)))
		return VS_INSUFFICIENT_SCOPE;
	if (request->resource != NULL && key->resources != NULL &&
		!resources_cover(key->resources, request->resource))
		return VS_WRONG_RESOURCE;
	if (key->allowed_ips != NULL &&
		!ip_allowed(key->allowed_ips,
					request->client_ip ? request->client_ip : connection_address()))
		return VS_IP_NOT_ALLOWED;
	return VS_VALID;
}

bool
verify_prove(text *api_key, TimestampTz now, VerifyResult *result)
{
	AkParsed	parsed;
	uint8		hash[KEY_HASH_LEN];
	uint64		key_id;
	const char *text_ptr = VARDATA_ANY(api_key);
	size_t		text_len = VARSIZE_ANY_EXHDR(api_key);

	key_text_guard_begin();
	switch (ak_parse(text_ptr, text_len, &parsed))
	{
		case AK_MALFORMED:
			/* not our format: an imported key's text, if any were imported */
			if (text_len == 0 || text_len > IMPORTED_KEY_MAX || !imported_keys_exist())
			{
				result->status = VS_MALFORMED;
				key_text_guard_end();
				return false;
			}
			key_hash_compute(text_ptr, text_len, hash);
			switch (imported_key_lookup(hash, &key_id))
			{
				case IMPORTED_ONE:
					break;
				case IMPORTED_NONE:
					explicit_bzero(hash, sizeof(hash));
					result->status = VS_MALFORMED;
					key_text_guard_end();
					return false;
				case IMPORTED_DISPUTED:
					/* imported by several tenants: a key of none of them */
					explicit_bzero(hash, sizeof(hash));
					result->status = VS_NOT_FOUND;
					result->row_tenant_id = -1;
					key_text_guard_end();
					return false;
			}
			break;
		case AK_PUBLIC:
			result->status = VS_PUBLIC_KEY;
			key_text_guard_end();
			return false;
		case AK_PRIVATE:
			key_id = parsed.key_id;
			ratelimit_prefetch(key_id);
			key_hash_compute(text_ptr, text_len, hash);
			break;
	}

	result->row_key_id = key_id;
	result->proven = probe_key(key_id, hash, now, &result->key, &result->cached,
							   &result->row_tenant_id);
	explicit_bzero(hash, sizeof(hash));
	key_text_guard_end();
	if (!result->proven)
		result->status = VS_NOT_FOUND;
	return result->proven;
}

/*
 * What a verification that is otherwise valid costs: every rate limit that
 * applies takes cost units (all or none), then the key's credits are
 * charged.  A refused request takes nothing: when the credits refuse (or
 * charging them fails), the rate-limit units are given back.
 */
static void
apply_usage_control(const VerifyRequest *request, VerifyResult *result, TimestampTz now)
{
	const KeyState *key = &result->key;
	RateTaken	taken;
	volatile CreditsOutcome outcome = CREDITS_NONE;

	if (key->rate_limits == NULL && key->tenant_rate_limits == NULL &&
		key->owner_rate_limits == NULL && !key->has_credits)
		return;
	/* an error from here on must not log the statement: it may hold the key */
	key_text_guard_begin();
	if (!ratelimit_take(key, request->cost, &taken, &result->has_retry_after,
						&result->retry_after_us))
		result->status = VS_RATE_LIMITED;
	else if (key->has_credits)
	{
		PG_TRY();
		{
			outcome = credits_charge(key->key_id, request->cost, now, &result->remaining);
		}
		PG_CATCH();
		{
			ratelimit_give_back(&taken);
			PG_RE_THROW();
		}
		PG_END_TRY();
		result->has_remaining = outcome != CREDITS_NONE;
		if (outcome == CREDITS_TOO_FEW)
		{
			result->status = VS_USAGE_EXCEEDED;
			ratelimit_give_back(&taken);
		}
	}
	key_text_guard_end();
}

void
verify_key(const VerifyRequest *request, VerifyResult *result)
{
	TimestampTz now = GetCurrentStatementStartTimestamp();
	const char *env = NULL;
	size_t		env_len = 0;

	memset(result, 0, sizeof(*result));
	if (request->api_key == NULL)
	{
		result->status = VS_MALFORMED;
		return;
	}
	if (!verify_prove(request->api_key, now, result))
	{
		/* a known key with a wrong secret: someone holds an old or wrong one */
		if (result->status == VS_NOT_FOUND && result->row_tenant_id >= 0)
			usage_record(result->row_key_id, result->row_tenant_id, VS_NOT_FOUND, now);
		return;
	}

	/* without an environment argument, apikey.environment (compared in place) */
	if (request->environment != NULL)
	{
		env = VARDATA_ANY(request->environment);
		env_len = VARSIZE_ANY_EXHDR(request->environment);
	}
	else if (apikey_default_environment != NULL && apikey_default_environment[0] != '\0')
	{
		env = apikey_default_environment;
		env_len = strlen(apikey_default_environment);
	}
	result->status = decide_status(&result->key, request, now, env, env_len);
	if (result->status == VS_VALID)
		apply_usage_control(request, result, now);
	usage_record(result->key.key_id, result->key.tenant_id, result->status, now);
}

void
verify_request_from_args(FunctionCallInfo fcinfo, int api_key_arg,
						 int environment_arg, int scope_arg, int resource_arg,
						 int cost_arg, int client_ip_arg, VerifyRequest *request)
{
#define OPTIONAL_ARG(n) ((n) >= 0 && (n) < PG_NARGS() && !PG_ARGISNULL(n))
	request->api_key = OPTIONAL_ARG(api_key_arg) ? PG_GETARG_TEXT_PP(api_key_arg) : NULL;
	request->environment = OPTIONAL_ARG(environment_arg) ? PG_GETARG_TEXT_PP(environment_arg) : NULL;
	request->scope = OPTIONAL_ARG(scope_arg) ? PG_GETARG_TEXT_PP(scope_arg) : NULL;
	request->resource = OPTIONAL_ARG(resource_arg) ? PG_GETARG_TEXT_PP(resource_arg) : NULL;
	request->client_ip = OPTIONAL_ARG(client_ip_arg) ? PG_GETARG_INET_PP(client_ip_arg) : NULL;
	request->cost = 1;
	if (cost_arg >= 0 && cost_arg < PG_NARGS())
	{
		if (PG_ARGISNULL(cost_arg))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("cost must not be null")));
		request->cost = PG_GETARG_INT32(cost_arg);
		if (request->cost < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cost must not be negative"),
					 errdetail("A verification takes cost units from the key's rate limits and credits; 0 takes none.")));
	}
#undef OPTIONAL_ARG
}

/* Result columns of apikey.verify, in order (older versions have the first nine). */
enum
{
	OUT_VALID,
	OUT_STATUS,
	OUT_KEY_ID,
	OUT_TENANT,
	OUT_ENVIRONMENT,
	OUT_SCOPES,
	OUT_RESOURCE,
	OUT_EXPIRES_AT,
	OUT_TENANT_ID,
	OUT_OWNER,
	OUT_META,
	OUT_REMAINING,
	OUT_RETRY_AFTER,
	OUT_RESOURCES,
	NUM_OUT
};

Datum
verify_result_datum(FunctionCallInfo fcinfo, const VerifyResult *result)
{
	TupleDesc	tupdesc = call_result_tupdesc(fcinfo);
	const KeyState *key = &result->key;
	Datum		values[NUM_OUT];
	bool		nulls[NUM_OUT];
	Interval	retry_after;

	HeapTuple	tuple;
	bool		plain_valid = result->status == VS_VALID && result->cached != NULL &&
		!result->has_remaining && !result->has_retry_after;

	/* the rows of statuses that say nothing of a key, built once per backend */
	static HeapTuple unproven[NUM_VERIFY_STATUSES];
	bool		plain_unproven = !result->proven && !result->has_retry_after;

	Datum		remembered;

	Assert(tupdesc->natts <= NUM_OUT);
	/* the row of the key's profile, with its id and expiry */
	if (plain_valid && keycache_valid_result(result->cached, tupdesc, &remembered))
		return remembered;
	if (plain_unproven && unproven[result->status] != NULL &&
		HeapTupleHeaderGetTypeId(unproven[result->status]->t_data) == tupdesc->tdtypeid &&
		HeapTupleHeaderGetNatts(unproven[result->status]->t_data) == tupdesc->natts)
		return heap_copy_tuple_as_datum(unproven[result->status], tupdesc);
	memset(nulls, true, sizeof(nulls));
	values[OUT_VALID] = BoolGetDatum(result->status == VS_VALID);
	nulls[OUT_VALID] = false;
	values[OUT_STATUS] = PointerGetDatum(status_text(result->status));
	nulls[OUT_STATUS] = false;
	if (result->proven)
	{
		values[OUT_KEY_ID] = KeyIdGetDatum(key->key_id);
		values[OUT_TENANT] = PointerGetDatum(key->tenant);
		values[OUT_ENVIRONMENT] = PointerGetDatum(key->environment);
		values[OUT_SCOPES] = PointerGetDatum(key->scopes);
		values[OUT_TENANT_ID] = Int64GetDatum(key->tenant_id);
		nulls[OUT_KEY_ID] = nulls[OUT_TENANT] = nulls[OUT_ENVIRONMENT] =
			nulls[OUT_SCOPES] = nulls[OUT_TENANT_ID] = false;
		if (key->resources != NULL)
		{
			values[OUT_RESOURCES] = PointerGetDatum(key->resources);
			nulls[OUT_RESOURCES] = false;
			/* the one resource of a key restricted to one */
			if (ArrayGetNItems(ARR_NDIM(key->resources), ARR_DIMS(key->resources)) == 1)
			{
				int			index = ARR_LBOUND(key->resources)[0];

				values[OUT_RESOURCE] = array_get_element(PointerGetDatum(key->resources), 1,
														 &index, -1, -1, false, TYPALIGN_INT,
														 &nulls[OUT_RESOURCE]);
			}
		}
		if (key->has_expiry)
		{
			values[OUT_EXPIRES_AT] = TimestampTzGetDatum(key->expires_at);
			nulls[OUT_EXPIRES_AT] = false;
		}
		if (key->owner != NULL)
		{
			values[OUT_OWNER] = PointerGetDatum(key->owner);
			nulls[OUT_OWNER] = false;
		}
		if (key->meta != NULL)
		{
			values[OUT_META] = PointerGetDatum(key->meta);
			nulls[OUT_META] = false;
		}
		if (result->has_remaining)
		{
			values[OUT_REMAINING] = Int64GetDatum(result->remaining);
			nulls[OUT_REMAINING] = false;
		}
	}
	if (result->has_retry_after)
	{
		memset(&retry_after, 0, sizeof(retry_after));
		retry_after.time = result->retry_after_us;
		values[OUT_RETRY_AFTER] = IntervalPGetDatum(&retry_after);
		nulls[OUT_RETRY_AFTER] = false;
	}
	tuple = heap_form_tuple(tupdesc, values, nulls);
	if (plain_valid)
		keycache_set_valid_result(result->cached, tuple, tupdesc, OUT_KEY_ID, OUT_EXPIRES_AT);
	else if (plain_unproven)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		if (unproven[result->status] != NULL)
			heap_freetuple(unproven[result->status]);
		unproven[result->status] = heap_copytuple(tuple);
		MemoryContextSwitchTo(old);
	}
	return HeapTupleGetDatum(tuple);
}

/*
 * verify(api_key, environment, scope, resource, cost, client_ip)
 *		-> (valid, status, key_id, tenant, environment, scopes, resource,
 *			expires_at, tenant_id, owner, meta, remaining, retry_after,
 *			resources)
 * Databases not yet updated call it with the first four arguments and get
 * the first nine columns.
 */
PG_FUNCTION_INFO_V1(verify);
Datum
verify(PG_FUNCTION_ARGS)
{
	VerifyRequest request;
	VerifyResult result;

	verify_request_from_args(fcinfo, 0, 1, 2, 3, 4, 5, &request);
	verify_key(&request, &result);
	PG_RETURN_DATUM(verify_result_datum(fcinfo, &result));
}
