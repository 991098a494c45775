/*
 * keylimits.c
 *		apikey_internal.key_tenant_rate_limits(): the BEFORE INSERT row
 *		trigger on apikey.keys that gives a new key its tenant's rate limits.
 *
 * The statement it stands for (its PL/pgSQL body before):
 *	SELECT t.rate_limits INTO NEW.tenant_rate_limits
 *	  FROM apikey.tenants AS t
 *	 WHERE t.tenant_id = NEW.tenant_id
 *	   FOR KEY SHARE;
 * The share lock waits for a change of the tenant's limits in progress
 * (which locks the tenant row for update), so no key misses one: as
 * SELECT ... FOR KEY SHARE does, the row is found by the tenant's primary
 * key in a fresh snapshot, then locked in its latest version (READ
 * COMMITTED), whose limits the key takes; under REPEATABLE READ or
 * SERIALIZABLE a row changed since the snapshot is a serialization failure.
 * No row: no limits (NULL).  Every key creation runs it, so it is C: as
 * PL/pgSQL its statement cost more than the key's own insert.
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
#include "storage/lmgr.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "pg_compat.h"
#include "apikey.h"

/* A column of the relation by name */
static inline AttrNumber
column_of(Relation rel, const char *name)
{
	return apikey_column(RelationGetDescr(rel), RelationGetRelationName(rel), name);
}

/*
 * The tenant's rate_limits, its row locked FOR KEY SHARE; *found false
 * when there is no such tenant.
 */
static Datum
locked_tenant_limits(Oid nsp, int64 tenant_id, bool *found, bool *isnull)
{
	Oid			relid = get_relname_relid("tenants", nsp);
	Oid			indexid = get_relname_relid("tenants_pkey", nsp);
	Relation	rel;
	Relation	index;
	ScanKeyData key;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	Datum		limits = (Datum) 0;
	AttrNumber	limits_att;
	AttrNumber	id_att;

	if (!OidIsValid(relid) || !OidIsValid(indexid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table apikey.tenants of extension apikey or its primary key is missing")));
	/* as a statement of a volatile function: after the changes before it */
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	rel = table_open(relid, RowShareLock);
	index = index_open(indexid, AccessShareLock);
	limits_att = column_of(rel, "rate_limits");
	id_att = column_of(rel, "tenant_id");
	slot = table_slot_create(rel, NULL);
	*found = false;
	*isnull = true;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(tenant_id));
	scan = ak_index_beginscan(rel, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		ItemPointerData tid = slot->tts_tid;
		TM_FailureData tmfd;
		TM_Result	result;

		result = table_tuple_lock(rel, &tid, snapshot, slot, GetCurrentCommandId(true),
								  LockTupleKeyShare, LockWaitBlock,
								  IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
								  &tmfd);
		switch (result)
		{
			case TM_Ok:
				{
					bool		id_null;
					Datum		id = slot_getattr(slot, id_att, &id_null);

					/* the latest version still answers the condition */
					if (!id_null && DatumGetInt64(id) == tenant_id)
					{
						*found = true;
						limits = slot_getattr(slot, limits_att, isnull);
						if (!*isnull)
							limits = PointerGetDatum(PG_DETOAST_DATUM_COPY(limits));
					}
				}
				break;
			case TM_SelfModified:
				/* changed by a later command of this transaction: not returned */
				break;
			case TM_Updated:
			case TM_Deleted:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent update")));
				if (result == TM_Updated)
					elog(ERROR, "unexpected table_tuple_lock status: %u", result);
				/* deleted: not returned */
				break;
			case TM_Invisible:
				elog(ERROR, "attempted to lock invisible tuple");
				break;
			default:
				elog(ERROR, "unrecognized table_tuple_lock status: %u", result);
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);	/* held to the end of the transaction, as a statement holds it */
	table_close(rel, NoLock);
	UnregisterSnapshot(snapshot);
	return limits;
}

PG_FUNCTION_INFO_V1(key_tenant_rate_limits);
Datum
key_tenant_rate_limits(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	keys;
	TupleDesc	desc;
	HeapTuple	tuple;
	AttrNumber	tenant_att;
	AttrNumber	limits_att;
	Datum		tenant_id;
	bool		isnull;
	bool		found;
	int			cols[1];
	Datum		values[1];
	bool		nulls[1];

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) || !TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("apikey_internal.key_tenant_rate_limits() must be called as a BEFORE INSERT row trigger")));
	keys = trigdata->tg_relation;
	desc = RelationGetDescr(keys);
	tuple = trigdata->tg_trigtuple;
	tenant_att = column_of(keys, "tenant_id");
	limits_att = column_of(keys, "tenant_rate_limits");

	tenant_id = heap_getattr(tuple, tenant_att, desc, &isnull);
	/* tenant_id = NULL finds no row */
	values[0] = isnull ? (Datum) 0 :
		locked_tenant_limits(RelationGetNamespace(keys), DatumGetInt64(tenant_id), &found, &nulls[0]);
	if (isnull)
		nulls[0] = true;
	cols[0] = limits_att;
	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 1, cols, values, nulls));
}
