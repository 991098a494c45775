/*
 * leak.c
 *		Leak reports: whose key is this text, without the effects of a
 *		verification.
 *
 * report_leak must find the key of any text that proves one (revoked,
 * expired, of any environment, over its rate limits) and must neither count
 * as a use of the key nor spend its limits or credits: it proves the text
 * (verify_prove) and decides no status.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "apikey.h"
#include "keyid.h"
#include "verify.h"

/*
 * apikey_internal.prove_key(api_key) -> (status, key_id)
 * status 'found' and the key id when the text proves a key; otherwise
 * 'malformed', 'public_key' or 'not_found' and no key id.
 */
PG_FUNCTION_INFO_V1(prove_key);
Datum
prove_key(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = call_result_tupdesc(fcinfo);
	VerifyResult result;
	Datum		values[2];
	bool		nulls[2] = {false, true};

	memset(&result, 0, sizeof(result));
	if (PG_ARGISNULL(0))
		result.status = VS_MALFORMED;
	else if (verify_prove(PG_GETARG_TEXT_PP(0), GetCurrentStatementStartTimestamp(), &result))
	{
		values[1] = KeyIdGetDatum(result.key.key_id);
		nulls[1] = false;
	}
	values[0] = CStringGetTextDatum(result.proven ? "found" : verify_status_name(result.status));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
