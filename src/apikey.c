/*
 * apikey.c
 *		Module entry point (settings and callbacks) and shared helpers.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "access/tupdesc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "apikey.h"
#include "credits.h"
#include "ratelimit.h"
#include "verify.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static emit_log_hook_type prev_emit_log_hook = NULL;
static bool handling_key_text = false;

/* The statement holds key text: keep it out of the log until the transaction ends. */
static bool statement_holds_key_text = false;

void
key_text_guard_begin(void)
{
	handling_key_text = true;
}

void
key_text_guard_end(void)
{
	handling_key_text = false;
}

static void
hide_key_text(ErrorData *edata)
{
	if (handling_key_text || statement_holds_key_text)
	{
		edata->hide_stmt = true;
		edata->hide_ctx = true;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* An error ended the call that was handling key text. */
static void
guard_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		handling_key_text = false;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
		statement_holds_key_text = false;
}

/*
 * apikey_internal.hide_statement(): the calling statement may hold key text
 * (a function that takes it, such as import_key or report_leak, called with
 * a literal): no error keeps its statement or context in the server log
 * until the transaction ends.
 */
PG_FUNCTION_INFO_V1(hide_statement);
Datum
hide_statement(PG_FUNCTION_ARGS)
{
	statement_holds_key_text = true;
	PG_RETURN_VOID();
}

static void
guard_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		handling_key_text = false;
}

void
apikey_worker(BackgroundWorker *worker, const char *function, const char *type,
			  Oid dbid, int flags, BgWorkerStartTime start_time, int restart_time)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = flags;
	worker->bgw_start_time = start_time;
	worker->bgw_restart_time = restart_time;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "apikey");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	if (OidIsValid(dbid))
		snprintf(worker->bgw_name, BGW_MAXLEN, "%s for database %u", type, dbid);
	else
		snprintf(worker->bgw_name, BGW_MAXLEN, "%s", type);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", type);
	worker->bgw_main_arg = ObjectIdGetDatum(dbid);
}

int
apikey_worker_xact_begin(void)
{
	int			nestlevel;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	return nestlevel;
}

void
apikey_worker_xact_end(int nestlevel)
{
	SPI_finish();
	PopActiveSnapshot();
	AtEOXact_GUC(true, nestlevel);
	CommitTransactionCommand();
}

void
_PG_init(void)
{
	DefineCustomStringVariable("apikey.environment",
							   "Environment that verify() and authenticate() require when none is given.",
							   "Empty means any environment.",
							   &apikey_default_environment,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);
	DefineCustomBoolVariable("apikey.require_environment",
							 "authenticate() refuses to run while apikey.environment is not set.",
							 "Off: it accepts keys of any environment then, and warns once per session.",
							 &apikey_require_environment,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	usage_init();
	ratelimit_init();
	verify_init();
	identity_init();
	delegation_init();
	authz_init();
	credits_init();
	imported_init();
	subscriber_init();
	killswitch_init();
	events_init();
	replica_init();
	relay_init();
	/* after every setting is defined: a value set before loading is kept */
	MarkGUCPrefixReserved("apikey");

	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = hide_key_text;
	RegisterXactCallback(guard_xact_callback, NULL);
	RegisterSubXactCallback(guard_subxact_callback, NULL);
}

/*
 * The blessed result descriptors of apikey's record-returning functions,
 * one per function and backend.  A call site's FmgrInfo lives only as long
 * as its query, so fn_extra alone would look the descriptor up (a catalog
 * lookup and a record-type registration) once per statement; these are
 * looked up once per backend.  Every function using this has OUT
 * parameters and no polymorphic ones, so its descriptor depends on its
 * pg_proc row only, and that cannot change its OUT parameters while the
 * function exists (a new function, a new OID), nor can its result type
 * change without an invalidation of pg_type or of the type's relation (an
 * update of the extension altering apikey.verification).  After any such
 * invalidation a descriptor is looked up again and kept when it is equal
 * (a replaced one is not freed: a running query's fn_extra may point to it).
 */
typedef struct ResultDesc
{
	Oid			fn_oid;
	bool		recheck;		/* pg_proc changed since it was looked up */
	TupleDesc	desc;
} ResultDesc;

#define MAX_RESULT_DESCS 16
static ResultDesc result_descs[MAX_RESULT_DESCS];
static int	n_result_descs = 0;

/* The same columns (names and types), whatever record type either is blessed as? */
static bool
same_columns(TupleDesc a, TupleDesc b)
{
	if (a->natts != b->natts)
		return false;
	for (int i = 0; i < a->natts; i++)
	{
		Form_pg_attribute x = TupleDescAttr(a, i);
		Form_pg_attribute y = TupleDescAttr(b, i);

		if (x->atttypid != y->atttypid || x->atttypmod != y->atttypmod ||
			x->attisdropped != y->attisdropped ||
			strcmp(NameStr(x->attname), NameStr(y->attname)) != 0)
			return false;
	}
	return true;
}

static void
result_descs_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	for (int i = 0; i < n_result_descs; i++)
		result_descs[i].recheck = true;
}

static void
result_descs_relcache_invalidate(Datum arg, Oid relid)
{
	result_descs_invalidate(arg, 0, 0);
}

/* The blessed result descriptor of a record-returning call site, cached. */
TupleDesc
call_result_tupdesc(FunctionCallInfo fcinfo)
{
	TupleDesc	tupdesc = (TupleDesc) fcinfo->flinfo->fn_extra;
	Oid			fn_oid = fcinfo->flinfo->fn_oid;
	ResultDesc *slot = NULL;
	TupleDesc	looked_up;
	MemoryContext old;
	static bool callback_registered = false;

	if (tupdesc != NULL)
		return tupdesc;
	for (int i = 0; i < n_result_descs; i++)
		if (result_descs[i].fn_oid == fn_oid)
		{
			slot = &result_descs[i];
			break;
		}
	if (slot != NULL && !slot->recheck)
	{
		fcinfo->flinfo->fn_extra = slot->desc;
		return slot->desc;
	}

	if (!callback_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, result_descs_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, result_descs_invalidate, (Datum) 0);
		CacheRegisterRelcacheCallback(result_descs_relcache_invalidate, (Datum) 0);
		callback_registered = true;
	}
	if (get_call_result_type(fcinfo, NULL, &looked_up) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("function returning record called in context that cannot accept type record")));
	if (slot != NULL && same_columns(slot->desc, looked_up))
	{
		slot->recheck = false;
		fcinfo->flinfo->fn_extra = slot->desc;
		return slot->desc;
	}
	old = MemoryContextSwitchTo(OidIsValid(fn_oid) && (slot != NULL || n_result_descs < MAX_RESULT_DESCS) ?
								TopMemoryContext : fcinfo->flinfo->fn_mcxt);
	tupdesc = BlessTupleDesc(CreateTupleDescCopy(looked_up));
	MemoryContextSwitchTo(old);
	if (OidIsValid(fn_oid) && slot == NULL && n_result_descs < MAX_RESULT_DESCS)
		slot = &result_descs[n_result_descs++];
	if (slot != NULL)
	{
		slot->fn_oid = fn_oid;
		slot->recheck = false;
		slot->desc = tupdesc;
	}
	fcinfo->flinfo->fn_extra = tupdesc;
	return tupdesc;
}

/*
 * The function apikey_internal.name(argtypes), or InvalidOid when it (or the
 * schema) is missing: an extension not updated yet.  Found without the
 * caller's USAGE on the schema, which only the extension's owner has (the
 * caller is any role that may verify keys), unlike LookupFuncName.
 */
Oid
apikey_internal_function(const char *name, int nargs, const Oid *argtypes)
{
	Oid			nsp = get_namespace_oid("apikey_internal", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid, CStringGetDatum(name),
						   PointerGetDatum(buildoidvector(argtypes, nargs)),
						   ObjectIdGetDatum(nsp));
}

/*
 * The attribute number of column name in desc (of apikey's table table,
 * named in the error), from the descriptor alone (no catalog lookup);
 * raises when the table lacks the column.
 */
AttrNumber
apikey_column(TupleDesc desc, const char *table, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column apikey.%s.%s is missing", table, name)));
	return InvalidAttrNumber;
}
