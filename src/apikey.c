/*
 * apikey.c
 *		Module entry point (settings and callbacks) and shared helpers.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
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

/* The blessed result descriptor of a record-returning call site, cached. */
TupleDesc
call_result_tupdesc(FunctionCallInfo fcinfo)
{
	TupleDesc	tupdesc = (TupleDesc) fcinfo->flinfo->fn_extra;

	if (tupdesc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("function returning record called in context that cannot accept type record")));
		tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = tupdesc;
	}
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
