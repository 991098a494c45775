/*
 * apikey.c
 *		Module entry point (settings and callbacks) and shared helpers.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "apikey.h"
#include "verify.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

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
	usage_init();
	MarkGUCPrefixReserved("apikey");

	verify_init();
	identity_init();
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
