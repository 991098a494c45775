/*
 * createkey.c
 *		apikey.create_key: a plain key (no owner, meta, key roles, resources
 *		or allowed_ips, created by a caller that is not restricted to its own
 *		keys and not authenticated with a key) is created here, in C; any
 *		other key by apikey_internal.create_key_full (PL/pgSQL, keys.sql),
 *		which handles every case.
 *
 * The plain path is that function's plain branch, step for step and in the
 * same order: the same checks (the C functions behind
 * apikey_internal.authorized_tenant, normalized_scopes, checked_label,
 * checked_resource, authorize and authorize_owner), the same errors, the
 * same lifetime policy (apikey_internal.expiry) and the same statement that
 * inserts the key with its audit event (so the same triggers, defaults and
 * key-id-collision retry).  What it saves is PL/pgSQL's interpretation and
 * the tenant lookup's plan: a lookup by the unique indexes of apikey.tenants
 * and apikey.environments instead of a join that small tables plan as two
 * sequential scans and a hash.
 *
 * Runs as the function's owner (SECURITY DEFINER, search_path fixed), and
 * qualifies every name of its statement.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "pg_compat.h"
#include "apikey.h"
#include "keyid.h"

/* The SQL-callable C functions whose rules the plain path applies. */
extern PGDLLEXPORT Datum authorized_tenant(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum normalized_scopes(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum checked_label(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum checked_resource(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum authorize(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum authorize_owner(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum owned_by_caller(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum current_key_id(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum shown_value(PG_FUNCTION_ARGS);

/* create_key's arguments */
enum
{
	A_TENANT, A_ENVIRONMENT, A_NAME, A_DESCRIPTION, A_SCOPES, A_EXPIRES_IN,
	A_RESOURCE, A_OWNER, A_META, A_KEY_ROLES, A_RESOURCES, A_ALLOWED_IPS,
	N_ARGS
};

/* Call one of those functions with these arguments, NULLs included. */
static Datum
call_c(PGFunction fn, int nargs, const Datum *args, const bool *nulls, bool *isnull)
{
	LOCAL_FCINFO(fcinfo, 4);
	Datum		result;

	Assert(nargs <= 4);
	InitFunctionCallInfoData(*fcinfo, NULL, nargs, InvalidOid, NULL, NULL);
	for (int i = 0; i < nargs; i++)
	{
		fcinfo->args[i].value = args[i];
		fcinfo->args[i].isnull = nulls[i];
	}
	result = (*fn) (fcinfo);
	*isnull = fcinfo->isnull;
	return result;
}

static Datum
call_c0(PGFunction fn, bool *isnull)
{
	return call_c(fn, 0, NULL, NULL, isnull);
}

/* The tenant a key is created for, and the tag of its environment. */
typedef struct TenantRow
{
	int64		tenant_id;
	char	   *key_prefix;
	Datum		default_key_lifetime;	/* Interval *, or NULL */
	bool		default_null;
	Datum		max_key_lifetime;
	bool		max_null;
	char	   *tag;			/* NULL: no such environment */
} TenantRow;

/* A column of the relation by name */
static inline AttrNumber
attnum_of(Relation rel, const char *name)
{
	return apikey_column(RelationGetDescr(rel), RelationGetRelationName(rel), name);
}

static Oid
relation_of(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("relation apikey.%s of extension apikey is missing", name)));
	return relid;
}

/*
 * The first row of the table whose unique index matches these values of its
 * leading columns (int8 or text), copied; NULL when there is none.
 */
static HeapTuple
fetch_unique(Relation rel, Oid indexid, int nkeys, const Oid *types, const Datum *values,
			 Snapshot snapshot)
{
	Relation	index = index_open(indexid, AccessShareLock);
	ScanKeyData keys[2];
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	HeapTuple	tuple = NULL;

	Assert(nkeys <= 2);
	for (int i = 0; i < nkeys; i++)
		ScanKeyEntryInitialize(&keys[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[i],
							   types[i] == INT8OID ? F_INT8EQ : F_TEXTEQ, values[i]);
	scan = ak_index_beginscan(rel, index, snapshot, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
		tuple = ExecCopySlotHeapTuple(slot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);	/* held to the end of the transaction, as a statement holds it */
	return tuple;
}

/*
 * SELECT x.tenant_id, x.key_prefix, x.default_key_lifetime,
 *        x.max_key_lifetime, e.tag
 *   FROM apikey.tenants AS x LEFT JOIN apikey.environments AS e
 *     ON e.tenant_id = x.tenant_id AND e.name = environment
 *  WHERE x.slug = slug
 * as a statement of a volatile function sees the database: after the
 * changes of the statements before it, in a fresh snapshot.
 */
static bool
lookup_tenant(text *slug, text *environment, TenantRow *t)
{
	Oid			nsp = get_namespace_oid("apikey", false);
	Relation	tenants;
	Relation	environments;
	TupleDesc	desc;
	HeapTuple	tuple;
	Snapshot	snapshot;
	bool		isnull;
	Oid			types[2];
	Datum		values[2];

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());

	tenants = table_open(relation_of(nsp, "tenants"), AccessShareLock);
	environments = table_open(relation_of(nsp, "environments"), AccessShareLock);
	types[0] = TEXTOID;
	values[0] = PointerGetDatum(slug);
	tuple = fetch_unique(tenants, relation_of(nsp, "tenants_slug_key"), 1, types, values, snapshot);
	if (tuple == NULL)
	{
		table_close(environments, NoLock);
		table_close(tenants, NoLock);
		UnregisterSnapshot(snapshot);
		return false;
	}
	desc = RelationGetDescr(tenants);
	t->tenant_id = DatumGetInt64(heap_getattr(tuple, attnum_of(tenants, "tenant_id"), desc, &isnull));
	t->key_prefix = TextDatumGetCString(heap_getattr(tuple, attnum_of(tenants, "key_prefix"), desc, &isnull));
	t->default_key_lifetime = heap_getattr(tuple, attnum_of(tenants, "default_key_lifetime"), desc,
										   &t->default_null);
	t->max_key_lifetime = heap_getattr(tuple, attnum_of(tenants, "max_key_lifetime"), desc,
									   &t->max_null);

	types[0] = INT8OID;
	values[0] = Int64GetDatum(t->tenant_id);
	types[1] = TEXTOID;
	values[1] = PointerGetDatum(environment);
	tuple = fetch_unique(environments, relation_of(nsp, "environments_pkey"), 2, types, values, snapshot);
	t->tag = NULL;
	if (tuple != NULL)
	{
		Datum		tag = heap_getattr(tuple, attnum_of(environments, "tag"), RelationGetDescr(environments),
									   &isnull);

		if (!isnull)
			t->tag = TextDatumGetCString(tag);
	}
	table_close(environments, NoLock);
	table_close(tenants, NoLock);
	UnregisterSnapshot(snapshot);
	return true;
}

/*
 * The statement that inserts a plain key and its audit event, kept per
 * backend, for the type apikey.key_id it was prepared with (an extension
 * dropped and created again has another).
 */
static SPIPlanPtr insert_plan = NULL;
static Oid	insert_plan_keyid = InvalidOid;

static const char insert_sql[] =
"WITH k AS ("
"	INSERT INTO apikey.keys (key_id, tenant_id, tenant, environment, key_hash, hint,"
"	                         name, description, scopes, effective_scopes, resources,"
"	                         owner, meta, key_roles, allowed_ips,"
"	                         expires_at, created_by)"
"	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10,"
"	        NULL, NULL, '{}', NULL,"
"	        $11, coalesce(apikey_internal.actor(), apikey_internal.caller()::pg_catalog.text))"
"	ON CONFLICT ON CONSTRAINT keys_pkey DO NOTHING"
"	RETURNING 1)"
" INSERT INTO apikey.audit (actor_role, actor_key_id, tenant_id, tenant, key_id, action, details, actor)"
" SELECT apikey_internal.caller()::pg_catalog.text, apikey.current_key_id(), $2, $3, $1, 'created',"
"        $12, apikey_internal.actor()"
"   FROM k";

#define INSERT_NARGS 12

static SPIPlanPtr
prepared_insert(void)
{
	Oid			nsp = get_namespace_oid("apikey", false);
	Oid			keyid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
										CStringGetDatum("key_id"), ObjectIdGetDatum(nsp));

	if (!OidIsValid(keyid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type apikey.key_id of extension apikey is missing")));
	if (insert_plan != NULL && insert_plan_keyid != keyid)
	{
		SPI_freeplan(insert_plan);
		insert_plan = NULL;
	}
	if (insert_plan == NULL)
	{
		Oid			argtypes[INSERT_NARGS] = {keyid, INT8OID, TEXTOID, TEXTOID, BYTEAOID, TEXTOID,
		TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID, JSONBOID};
		SPIPlanPtr	plan = SPI_prepare(insert_sql, INSERT_NARGS, argtypes);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the statement that creates an apikey key: %s",
				 SPI_result_code_string(SPI_result));
		insert_plan = plan;
		insert_plan_keyid = keyid;
	}
	return insert_plan;
}

/* Is this call for a plain key, the one the C path creates? */
static bool
plain_call(FunctionCallInfo fcinfo)
{
	bool		isnull;

	if (!PG_ARGISNULL(A_OWNER) || !PG_ARGISNULL(A_META) || !PG_ARGISNULL(A_RESOURCES) ||
		!PG_ARGISNULL(A_ALLOWED_IPS) || PG_ARGISNULL(A_KEY_ROLES))
		return false;
	{
		ArrayType  *roles = PG_GETARG_ARRAYTYPE_P(A_KEY_ROLES);

		if (ArrayGetNItems(ARR_NDIM(roles), ARR_DIMS(roles)) != 0)
			return false;
	}
	/* restricted to its own keys: the key gets the caller as its owner */
	(void) call_c0(owned_by_caller, &isnull);
	if (!isnull)
		return false;
	/* a tenant administrator's key: the vendor's allowlist may bound the key */
	(void) call_c0(current_key_id, &isnull);
	return isnull;
}

/*
 * The audit event's details:
 *	jsonb_build_object('environment', environment, 'name', name,
 *	                   'scopes', scopes, 'resource', resource,
 *	                   'expires_at', expires_at)
 * written as JSON text, each value as jsonb_build_object gives it (text
 * and text[] as strings, timestamptz in JSON's date format), and read back.
 */
static Datum
created_details(text *environment, Datum name, Datum scopes, Datum resource, bool resource_null,
				Datum expires_at, bool expires_null)
{
	StringInfoData buf;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"environment\": ");
	escape_json(&buf, text_to_cstring(environment));
	appendStringInfoString(&buf, ", \"name\": ");
	escape_json(&buf, TextDatumGetCString(name));
	appendStringInfoString(&buf, ", \"scopes\": [");
	deconstruct_array(DatumGetArrayTypeP(scopes), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		if (nulls[i])
			appendStringInfoString(&buf, "null");
		else
			escape_json(&buf, TextDatumGetCString(elems[i]));
	}
	appendStringInfoString(&buf, "], \"resource\": ");
	if (resource_null)
		appendStringInfoString(&buf, "null");
	else
		escape_json(&buf, TextDatumGetCString(resource));
	appendStringInfoString(&buf, ", \"expires_at\": ");
	if (expires_null)
		appendStringInfoString(&buf, "null");
	else
	{
		char		at[MAXDATELEN + 1];

		appendStringInfo(&buf, "\"%s\"", JsonEncodeDateTime(at, expires_at, TIMESTAMPTZOID, NULL));
	}
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* The rich path: apikey_internal.create_key_full with the same arguments. */
static Datum
create_key_full(FunctionCallInfo fcinfo)
{
	static const Oid argtypes[N_ARGS] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID,
		INTERVALOID, TEXTOID, TEXTOID, JSONBOID, TEXTARRAYOID, TEXTARRAYOID, CIDRARRAYOID};
	Oid			fn = apikey_internal_function("create_key_full", N_ARGS, argtypes);
	FmgrInfo	flinfo;
	LOCAL_FCINFO(inner, N_ARGS);
	Datum		result;

	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function apikey_internal.create_key_full of extension apikey is missing"),
				 errhint("Update the extension: ALTER EXTENSION apikey UPDATE.")));
	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*inner, &flinfo, N_ARGS, InvalidOid, NULL, NULL);
	for (int i = 0; i < N_ARGS; i++)
		inner->args[i] = fcinfo->args[i];
	result = FunctionCallInvoke(inner);
	if (inner->isnull)
		PG_RETURN_NULL();
	return result;
}

/* RAISE EXCEPTION '<fmt with one %s: shown(value)>' USING ERRCODE = 'undefined_object' */
static char *
shown(Datum value)
{
	bool		isnull;
	bool		argnull = false;

	return TextDatumGetCString(call_c(shown_value, 1, &value, &argnull, &isnull));
}

/*
 * apikey.create_key(tenant, environment, name, description, scopes,
 *		expires_in, resource, owner, meta, key_roles, resources, allowed_ips)
 *		-> (key_id, api_key, hint, expires_at)
 */
PG_FUNCTION_INFO_V1(create_key);
Datum
create_key(PG_FUNCTION_ARGS)
{
	Datum		args[4];
	bool		nulls[4];
	bool		isnull;
	text	   *tenant_slug;
	Datum		key_scopes;
	Datum		name;
	bool		name_null;
	Datum		description;
	bool		description_null;
	Datum		resource;
	bool		resource_null;
	Datum		resources = (Datum) 0;
	text	   *environment;
	TenantRow	t;
	Datum		expires_at = (Datum) 0;
	bool		expires_null = true;
	GeneratedKey g;
	SPIPlanPtr	plan;
	MemoryContext caller_cxt;
	Datum		details;
	Datum		values[INSERT_NARGS];
	char		vnulls[INSERT_NARGS];
	TupleDesc	tupdesc;
	Datum		result[4];
	bool		result_nulls[4] = {false, false, false, false};

	if (PG_NARGS() != N_ARGS)
		elog(ERROR, "apikey.create_key takes %d arguments", N_ARGS);
	if (!plain_call(fcinfo))
		return create_key_full(fcinfo);

	/* tenant_slug text := apikey_internal.authorized_tenant(tenant, 'apikey:keys:create') */
	args[0] = PG_GETARG_DATUM(A_TENANT);
	nulls[0] = PG_ARGISNULL(A_TENANT);
	args[1] = CStringGetTextDatum("apikey:keys:create");
	nulls[1] = false;
	tenant_slug = DatumGetTextPP(call_c(authorized_tenant, 2, args, nulls, &isnull));
	/* key_scopes text[] := apikey_internal.normalized_scopes(scopes) */
	args[0] = PG_GETARG_DATUM(A_SCOPES);
	nulls[0] = PG_ARGISNULL(A_SCOPES);
	key_scopes = call_c(normalized_scopes, 1, args, nulls, &isnull);
	/* name := apikey_internal.checked_label('key name', name, 200, true) */
	args[0] = CStringGetTextDatum("key name");
	args[1] = PG_GETARG_DATUM(A_NAME);
	nulls[1] = PG_ARGISNULL(A_NAME);
	args[2] = Int32GetDatum(200);
	args[3] = BoolGetDatum(true);
	nulls[0] = nulls[2] = nulls[3] = false;
	name = call_c(checked_label, 4, args, nulls, &name_null);
	/* description := apikey_internal.checked_label('description', description, 1000, false) */
	args[0] = CStringGetTextDatum("description");
	args[1] = PG_GETARG_DATUM(A_DESCRIPTION);
	nulls[1] = PG_ARGISNULL(A_DESCRIPTION);
	args[2] = Int32GetDatum(1000);
	args[3] = BoolGetDatum(false);
	description = call_c(checked_label, 4, args, nulls, &description_null);
	/* resource := apikey_internal.checked_resource(resource) (STRICT) */
	resource_null = PG_ARGISNULL(A_RESOURCE);
	resource = (Datum) 0;
	if (!resource_null)
	{
		args[0] = PG_GETARG_DATUM(A_RESOURCE);
		nulls[0] = false;
		resource = call_c(checked_resource, 1, args, nulls, &resource_null);
	}
	if (PG_ARGISNULL(A_ENVIRONMENT))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("environment must not be null")));
	environment = PG_GETARG_TEXT_PP(A_ENVIRONMENT);

	if (!lookup_tenant(tenant_slug, environment, &t))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant %s does not exist", shown(PointerGetDatum(tenant_slug)))));
	if (t.tag == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("environment %s of tenant \"%s\" does not exist",
						shown(PointerGetDatum(environment)), text_to_cstring(tenant_slug))));

	/* a plain key: resources := CASE WHEN resource IS NOT NULL THEN ARRAY[resource] END */
	if (!resource_null)
		resources = PointerGetDatum(construct_array(&resource, 1, TEXTOID, -1, false, TYPALIGN_INT));
	/* apikey_internal.authorize(tenant_slug, environment, effective, resources) */
	{
		Datum		aargs[4] = {PointerGetDatum(tenant_slug), PointerGetDatum(environment), key_scopes, resources};
		bool		anulls[4] = {false, false, false, resource_null};
		LOCAL_FCINFO(afc, 4);

		InitFunctionCallInfoData(*afc, NULL, 4, InvalidOid, NULL, NULL);
		for (int i = 0; i < 4; i++)
		{
			afc->args[i].value = aargs[i];
			afc->args[i].isnull = anulls[i];
		}
		(void) authorize(afc);
	}
	/* apikey_internal.authorize_owner(owner): owner is NULL */
	args[0] = (Datum) 0;
	nulls[0] = true;
	(void) call_c(authorize_owner, 1, args, nulls, &isnull);

	if (!PG_ARGISNULL(A_EXPIRES_IN) || !t.default_null || !t.max_null)
	{
		/* expires_at := apikey_internal.expiry(tenant_slug, expires_in, default, max) */
		static const Oid etypes[4] = {TEXTOID, INTERVALOID, INTERVALOID, INTERVALOID};
		Oid			fn = apikey_internal_function("expiry", 4, etypes);
		FmgrInfo	flinfo;
		LOCAL_FCINFO(efc, 4);

		if (!OidIsValid(fn))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("function apikey_internal.expiry of extension apikey is missing")));
		fmgr_info(fn, &flinfo);
		InitFunctionCallInfoData(*efc, &flinfo, 4, InvalidOid, NULL, NULL);
		efc->args[0].value = PointerGetDatum(tenant_slug);
		efc->args[0].isnull = false;
		efc->args[1] = fcinfo->args[A_EXPIRES_IN];
		efc->args[2].value = t.default_key_lifetime;
		efc->args[2].isnull = t.default_null;
		efc->args[3].value = t.max_key_lifetime;
		efc->args[3].isnull = t.max_null;
		expires_at = FunctionCallInvoke(efc);
		expires_null = efc->isnull;
	}

	details = created_details(environment, name, key_scopes, resource, resource_null,
							  expires_at, expires_null);
	caller_cxt = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = prepared_insert();
	for (;;)
	{
		int			ret;
		MemoryContext spi_cxt;

		CHECK_FOR_INTERRUPTS();

		/* the key outlives SPI's memory: it is the result */
		spi_cxt = MemoryContextSwitchTo(caller_cxt);
		ak_generate_key(t.key_prefix, t.tag, NULL, &g);
		MemoryContextSwitchTo(spi_cxt);
		values[0] = KeyIdGetDatum(g.key_id);
		values[1] = Int64GetDatum(t.tenant_id);
		values[2] = PointerGetDatum(tenant_slug);
		values[3] = PointerGetDatum(environment);
		values[4] = PointerGetDatum(g.key_hash);
		values[5] = PointerGetDatum(g.hint);
		values[6] = name;
		values[7] = description;
		values[8] = key_scopes;
		values[9] = resources;
		values[10] = expires_at;
		values[11] = details;
		memset(vnulls, ' ', sizeof(vnulls));
		if (name_null)
			vnulls[6] = 'n';
		if (description_null)
			vnulls[7] = 'n';
		if (resource_null)
			vnulls[9] = 'n';
		if (expires_null)
			vnulls[10] = 'n';
		ret = SPI_execute_plan(plan, values, vnulls, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not create an apikey key: %s", SPI_result_code_string(ret));
		if (SPI_processed > 0)
			break;
		/* a key id already taken (1 in 2^64 per key): draw again */
	}
	SPI_finish();

	tupdesc = call_result_tupdesc(fcinfo);
	result[0] = KeyIdGetDatum(g.key_id);
	result[1] = PointerGetDatum(g.api_key);
	result[2] = PointerGetDatum(g.hint);
	result[3] = expires_at;
	result_nulls[3] = expires_null;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, result, result_nulls)));
}
