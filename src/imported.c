/*
 * imported.c
 *		Keys imported from another system, found by the SHA-256 of their
 *		text.
 *
 * An imported key is a row of apikey.keys like any other (its key_hash is the
 * SHA-256 of its original text), plus a row of apikey.imported_keys that leads
 * from that hash to its key id, since the text carries none. Verification
 * looks there only for text that is not in apikey's own format, and only when
 * the table has rows.  Whether it has any is known per backend without
 * touching the table: it is looked at once, and again after a relcache
 * invalidation of the table, which every transaction that changes it sends at
 * commit (the trigger apikey_internal.imports_changed, for each row and for
 * TRUNCATE, enabled always: logical replication's apply worker fires row
 * triggers only, and only those enabled always or for replicas). So rejecting
 * garbage costs what it always did while nothing was imported, and one index
 * probe when something was.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "pg_compat.h"
#include "apikey.h"
#include "imported.h"
#include "keyhash.h"
#include "keyid.h"
#include "keytext.h"

typedef enum ImportsState
{
	IMPORTS_UNKNOWN,			/* to be looked at */
	IMPORTS_NONE,				/* the table is empty, or absent */
	IMPORTS_SOME
} ImportsState;

static ImportsState imports_state = IMPORTS_UNKNOWN;
static Oid	imports_relid = InvalidOid;
static Oid	imports_index_relid = InvalidOid;
static AttrNumber imports_key_id_attnum = InvalidAttrNumber;

/* invalidations seen, so that one arriving while the table is read counts */
static uint64 imports_invalidations = 0;

static void
imports_invalidate(Datum arg, Oid relid)
{
	/* while the table is unknown, any relation may be it (a new one) */
	if (relid == InvalidOid || !OidIsValid(imports_relid) || relid == imports_relid)
	{
		imports_state = IMPORTS_UNKNOWN;
		imports_invalidations++;
	}
}

/*
 * Look at the table: does it have a row?  Read with a snapshot taken after
 * the invalidations received so far were processed: the commit that sent
 * one is visible to it (a transaction is visible before its invalidations
 * are sent), so an import is never missed; one committed later sends its
 * own invalidation.
 */
static void
imports_load(void)
{
	Oid			nsp = get_namespace_oid("apikey", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("imported_keys", nsp) : InvalidOid;
	Oid			index_relid = OidIsValid(nsp) ? get_relname_relid("imported_keys_pkey", nsp) : InvalidOid;
	ImportsState state = IMPORTS_NONE;
	uint64		seen;

	if (OidIsValid(relid) && OidIsValid(index_relid))
	{
		Relation	rel = table_open(relid, AccessShareLock);
		Snapshot	snapshot;
		TableScanDesc scan;
		TupleTableSlot *slot;

		seen = imports_invalidations;
		imports_key_id_attnum = get_attnum(relid, "key_id");
		snapshot = RegisterSnapshot(GetLatestSnapshot());
		scan = ak_table_beginscan(rel, snapshot, 0, NULL);
		slot = table_slot_create(rel, NULL);
		if (table_scan_getnextslot(scan, ForwardScanDirection, slot))
			state = IMPORTS_SOME;
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
		UnregisterSnapshot(snapshot);
		table_close(rel, NoLock);
		if (imports_key_id_attnum == InvalidAttrNumber)
			state = IMPORTS_NONE;
	}
	else
		seen = imports_invalidations;
	imports_relid = relid;
	imports_index_relid = index_relid;
	/* an invalidation while reading: look again next time */
	if (imports_invalidations == seen)
		imports_state = state;
}

bool
imported_keys_exist(void)
{
	/*
	 * An import committed since this backend last looked has sent an
	 * invalidation; take it in (a check of a flag in shared memory when
	 * there is none), so the next statement sees the import as it would
	 * see any committed row.
	 */
	if (imports_state == IMPORTS_NONE)
		AcceptInvalidationMessages();
	if (imports_state == IMPORTS_UNKNOWN)
		imports_load();
	return imports_state == IMPORTS_SOME;
}

ImportedLookup
imported_key_lookup(const uint8 *hash, uint64 *key_id)
{
	Snapshot	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	Relation	heap;
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData skey;
	TupleTableSlot *slot;
	bytea	   *wanted = palloc(VARHDRSZ + KEY_HASH_LEN);
	ImportedLookup found = IMPORTED_NONE;

	Assert(imports_state == IMPORTS_SOME);
	SET_VARSIZE(wanted, VARHDRSZ + KEY_HASH_LEN);
	memcpy(VARDATA(wanted), hash, KEY_HASH_LEN);

	heap = table_open(imports_relid, AccessShareLock);
	index = index_open(imports_index_relid, AccessShareLock);
	/* the index is (key_hash, tenant_id): one row per tenant that has it */
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_BYTEAEQ, PointerGetDatum(wanted));
	slot = table_slot_create(heap, NULL);
	scan = ak_index_beginscan(heap, index, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	while (found != IMPORTED_DISPUTED &&
		   index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, imports_key_id_attnum, &isnull);

		if (isnull)
			continue;
		if (found == IMPORTED_NONE)
		{
			*key_id = DatumGetKeyId(d);
			found = IMPORTED_ONE;
		}
		else
			found = IMPORTED_DISPUTED;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(heap, NoLock);
	explicit_bzero(VARDATA(wanted), KEY_HASH_LEN);
	pfree(wanted);
	return found;
}

/*
 * The invalidation that tells every backend to look at the table again,
 * registered once per transaction (a bulk import of a million keys sends
 * one, not a million): it is sent at commit, and dropped with a
 * subtransaction that rolls back.
 */
static LocalTransactionId sent_lxid = InvalidLocalTransactionId;
static SubTransactionId sent_subid = InvalidSubTransactionId;

static void
imports_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (sent_subid != mySubid)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		sent_subid = InvalidSubTransactionId;
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		sent_subid = parentSubid;
}

void
imported_init(void)
{
	CacheRegisterRelcacheCallback(imports_invalidate, (Datum) 0);
	RegisterSubXactCallback(imports_subxact_callback, NULL);
}

/*
 * apikey_internal.imports_changed(): trigger on apikey.imported_keys, BEFORE
 * INSERT, UPDATE or DELETE for each row and BEFORE TRUNCATE; sends one
 * invalidation per transaction, however many rows it changes.  A BEFORE row
 * trigger, not AFTER: it queues nothing for the end of the statement (a bulk
 * import stays as light in memory as it was).
 */
PG_FUNCTION_INFO_V1(imports_changed);
Datum
imports_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("apikey_internal.imports_changed() is a trigger function")));
	if (sent_lxid != AK_MY_LXID || sent_subid == InvalidSubTransactionId)
	{
		CacheInvalidateRelcache(trigdata->tg_relation);
		sent_lxid = AK_MY_LXID;
		sent_subid = GetCurrentSubTransactionId();
	}
	/* (version 0.3.0 has it AFTER, for each statement) */
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		return PointerGetDatum(NULL);
	return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
						   trigdata->tg_newtuple : trigdata->tg_trigtuple);
}

/* The most bytes of imported key text; longer text is never looked up. */
StaticAssertDecl(IMPORTED_KEY_MAX >= AK_TEXT_MAX, "imported keys may be as long as ours");

/*
 * "…" and the last AK_HINT_TAIL characters of text long enough to spare
 * them, "…" alone otherwise ("..." where the database is not UTF-8).
 */
static text *
imported_hint(const char *s, size_t len)
{
	const char *ellipsis = GetDatabaseEncoding() == PG_UTF8 ? "\xE2\x80\xA6" : "...";
	bool		ascii = true;

	for (size_t i = 0; i < len; i++)
		ascii &= !IS_HIGHBIT_SET(s[i]);
	if (ascii && len >= IMPORTED_HINT_MIN)
		return cstring_to_text(psprintf("%s%.*s", ellipsis, AK_HINT_TAIL,
										s + len - AK_HINT_TAIL));
	return cstring_to_text(ellipsis);
}

/*
 * apikey_internal.import_key_text(api_key, key_hash) -> (key_id, key_hash,
 * hint) What an imported key is stored as: a new key id, the SHA-256 of its
 * text (given, or computed from the text) and a hint ("…" alone for a hash).
 * Exactly one of api_key and key_hash; the text is 1 to IMPORTED_KEY_MAX bytes
 * without control characters and not apikey key text; the hash is 32 bytes.
 * Messages never quote the text.
 */
PG_FUNCTION_INFO_V1(import_key_text);
Datum
import_key_text(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = call_result_tupdesc(fcinfo);
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	bytea	   *hash;

	if (PG_ARGISNULL(0) == PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(PG_ARGISNULL(0) ? ERRCODE_NULL_VALUE_NOT_ALLOWED : ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("give either api_key or key_hash"),
				 errdetail("A key is imported by its text or by the SHA-256 of its text, not both.")));
	if (!PG_ARGISNULL(0))
	{
		text	   *t = PG_GETARG_TEXT_PP(0);
		const char *s = VARDATA_ANY(t);
		size_t		len = VARSIZE_ANY_EXHDR(t);
		AkParsed	parsed;

		key_text_guard_begin();
		if (len == 0 || len > IMPORTED_KEY_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("api_key must be 1 to %d bytes long, got %zu", IMPORTED_KEY_MAX, len)));
		for (size_t i = 0; i < len; i++)
			if ((unsigned char) s[i] < 0x20 || s[i] == 0x7F)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("api_key must not contain control characters")));
		if (ak_parse(s, len, &parsed) != AK_MALFORMED)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("api_key is already in apikey's key format"),
					 errdetail("Only keys of other systems are imported; a public key is no secret at all."),
					 errhint("Keys of another apikey database move with its data (pg_dump).")));
		hash = palloc(VARHDRSZ + KEY_HASH_LEN);
		SET_VARSIZE(hash, VARHDRSZ + KEY_HASH_LEN);
		key_hash_compute(s, len, (uint8 *) VARDATA(hash));
		values[2] = PointerGetDatum(imported_hint(s, len));
		key_text_guard_end();
	}
	else
	{
		hash = PG_GETARG_BYTEA_PP(1);
		if (VARSIZE_ANY_EXHDR(hash) != KEY_HASH_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key_hash must be the %d bytes of a SHA-256 digest, got %d bytes",
							KEY_HASH_LEN, (int) VARSIZE_ANY_EXHDR(hash)),
					 errhint("For keys stored as hex, decode(hex, 'hex') gives the bytes.")));
		values[2] = PointerGetDatum(imported_hint(NULL, 0));
	}
	values[0] = KeyIdGetDatum(random_key_id());
	values[1] = PointerGetDatum(hash);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
