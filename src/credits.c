/*
 * credits.c
 *		Usage-limited keys: credits charged in the caller's transaction.
 *
 * A key with credits (apikey.keys.has_credits) has a row in apikey.credits.  A
 * verification that would otherwise be valid charges it through
 * apikey_internal.charge_credits, a SECURITY DEFINER function (the caller
 * cannot write that table) that updates the row in the caller's own
 * transaction: ROLLBACK or ROLLBACK TO SAVEPOINT refunds the charge, a
 * committed charge is as durable as any committed row, and the row lock makes
 * concurrent transactions charge one after the other, each seeing what the
 * previous one left, so no credit is spent twice.  Keys without credits never
 * get here: their verification stays read-only.
 *
 * While a charge may wait on the row lock, the statement other backends see
 * as this backend's activity is replaced by a text of apikey's own: a
 * deadlock's DETAIL quotes the activity of every process in the cycle,
 * and the statement may hold key text (a literal, as psql or psycopg2
 * send it).  It is put back when the charge returns or fails.
 *
 * A server whose apikey.keys or apikey.credits is the target of a logical
 * replication subscription charges nothing: its rows are the publisher's,
 * which would overwrite a local charge (so each server would spend the
 * credits again), and a charge's row lock, held until its transaction
 * ends, would stop the apply worker behind it, and every revocation it
 * brings.  Whether this server is one is looked up once per backend and
 * again when pg_subscription_rel changes (subscriber.c).
 *
 * Refills are lazy: the row says when the next one is due, and the first
 * charge (or listing) after that time sees refill_amount.  The schedule is
 * anchor + n * refill_every, computed in UTC with the calendar's months
 * (a monthly refill from 31 January falls on 28 or 29 February, then on
 * 31 March).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "port/atomics.h"		/* 19: PGSTAT_BEGIN_WRITE_ACTIVITY's barriers */
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "apikey.h"
#include "credits.h"
#include "keyid.h"
#include "keytext.h"
#include "subscriber.h"

/* apikey_internal.charge_credits, looked up once, forgotten when pg_proc changes */
static FmgrInfo charge_finfo;
static bool charge_valid = false;
static MemoryContext charge_cxt = NULL;

static void
forget_charge(Datum arg, int cacheid, uint32 hashvalue)
{
	/* only noted: a call may be running; the next one looks it up again */
	charge_valid = false;
}

void
credits_init(void)
{
	CacheRegisterSyscacheCallback(PROCOID, forget_charge, (Datum) 0);
}

static void
load_charge(void)
{
	Oid			nsp = get_namespace_oid("apikey", false);
	Oid			argtypes[3];
	Oid			fn;

	argtypes[0] = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
								  CStringGetDatum("key_id"), ObjectIdGetDatum(nsp));
	argtypes[1] = INT4OID;
	argtypes[2] = TIMESTAMPTZOID;
	fn = apikey_internal_function("charge_credits", 3, argtypes);
	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function apikey_internal.charge_credits of extension apikey is missing"),
				 errhint("Update the extension: ALTER EXTENSION apikey UPDATE.")));
	if (charge_cxt == NULL)
		charge_cxt = AllocSetContextCreate(TopMemoryContext, "apikey credits",
										   ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(charge_cxt);
	fmgr_info_cxt(fn, &charge_finfo, charge_cxt);
	charge_valid = true;
}

/* What pg_stat_activity, and a deadlock's DETAIL, show during a charge. */
static const char charge_activity[] =
	"-- apikey: charging a key's credits (the statement is not shown: it may hold key text)";

static void
activity_write(const char *text)
{
	volatile PgBackendStatus *be = MyBEEntry;
	size_t		len = Min(strlen(text), (size_t) pgstat_track_activity_query_size - 1);

	PGSTAT_BEGIN_WRITE_ACTIVITY(be);
	memcpy((char *) be->st_activity_raw, text, len);
	be->st_activity_raw[len] = '\0';
	PGSTAT_END_WRITE_ACTIVITY(be);
}

/* Hide this backend's activity; returns what it was, or NULL if none is kept. */
static char *
activity_hide(void)
{
	volatile PgBackendStatus *be = MyBEEntry;
	char	   *saved;

	if (be == NULL || !pgstat_track_activities)
		return NULL;
	saved = palloc(pgstat_track_activity_query_size);
	strlcpy(saved, (const char *) be->st_activity_raw, pgstat_track_activity_query_size);
	activity_write(charge_activity);
	return saved;
}

/*
 * Call the charge with the activity hidden, put back on every path: an
 * error caught by a savepoint lets the statement go on, and an idle session
 * shows its last statement.
 */
static Datum
charge_invoke(FunctionCallInfo fcinfo)
{
	char	   *volatile activity = activity_hide();
	volatile Datum result = (Datum) 0;

	PG_TRY();
	{
		result = FunctionCallInvoke(fcinfo);
	}
	PG_FINALLY();
	{
		if (activity != NULL)
		{
			activity_write(activity);
			pfree(activity);
		}
	}
	PG_END_TRY();
	return result;
}

CreditsOutcome
credits_charge(uint64 key_id, int32 cost, TimestampTz at, int64 *remaining)
{
	LOCAL_FCINFO(fcinfo, 3);
	Datum		result;
	int64		left;

	if (cost > 0 && XactReadOnly)
	{
		char		id[AK_ID_LEN + 1];

		ak_id_encode(key_id, id);
		id[AK_ID_LEN] = '\0';
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot charge the credits of key %s in a read-only transaction", id),
				 errdetail("The key has credits: a verification that costs something charges them in its transaction."),
				 errhint("Verify it in a read-write transaction on the primary, or with cost => 0 to check without charging."),
				 errhidestmt(true), errhidecontext(true)));
	}
	if (cost > 0 && subscriber_of_keys())
	{
		char		id[AK_ID_LEN + 1];

		ak_id_encode(key_id, id);
		id[AK_ID_LEN] = '\0';
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot charge the credits of key %s on a logical replication subscriber of apikey's tables", id),
				 errdetail("The key's credits are the publisher's: a charge here would be overwritten by the publisher's next one, and would hold up the replication of its changes while its transaction lasts."),
				 errhint("Verify it on the publisher, or with cost => 0 to check without charging."),
				 errhidestmt(true), errhidecontext(true)));
	}
	if (!charge_valid)
		load_charge();
	InitFunctionCallInfoData(*fcinfo, &charge_finfo, 3, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = KeyIdGetDatum(key_id);
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = Int32GetDatum(cost);
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = TimestampTzGetDatum(at);
	fcinfo->args[2].isnull = false;
	result = charge_invoke(fcinfo);
	if (fcinfo->isnull)
		return CREDITS_NONE;
	/* what is left when charged; -1 - what there is when too few */
	left = DatumGetInt64(result);
	if (left >= 0)
	{
		*remaining = left;
		return CREDITS_CHARGED;
	}
	*remaining = -1 - left;
	return CREDITS_TOO_FEW;
}

/* anchor + n * every, in UTC */
static TimestampTz
refill_time(TimestampTz anchor, const Interval *every, int64 n)
{
	Interval	step;
	int32		n32;

	if (n > PG_INT32_MAX)
		n32 = -1;
	else
		n32 = (int32) n;
	if (n32 < 0 ||
		pg_mul_s32_overflow(every->month, n32, &step.month) ||
		pg_mul_s32_overflow(every->day, n32, &step.day) ||
		pg_mul_s64_overflow(every->time, n, &step.time))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("refill schedule out of range")));
	/* a timestamp without time zone: the calendar of UTC, no DST */
	return DatumGetTimestamp(DirectFunctionCall2(timestamp_pl_interval,
												 TimestampGetDatum(anchor),
												 IntervalPGetDatum(&step)));
}

/*
 * apikey_internal.next_refill(anchor, every, after) -> the first anchor + n *
 * every after "after" (n >= 1), in UTC.
 */
PG_FUNCTION_INFO_V1(next_refill);
Datum
next_refill(PG_FUNCTION_ARGS)
{
	TimestampTz anchor = PG_GETARG_TIMESTAMPTZ(0);
	Interval   *every = PG_GETARG_INTERVAL_P(1);
	TimestampTz after = PG_GETARG_TIMESTAMPTZ(2);
	double		approx;
	int64		n = 0;

	if (every->month < 0 || every->day < 0 || every->time < 0 ||
		(every->month == 0 && every->day == 0 && every->time < USECS_PER_SEC))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("refill_every must be at least 1 second, with no negative part")));
	if (TIMESTAMP_NOT_FINITE(anchor) || TIMESTAMP_NOT_FINITE(after))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("refill times must be finite")));
	if (after > anchor)
	{
		/* a first guess from the average lengths, then exact steps */
		approx = every->month * (DAYS_PER_YEAR / MONTHS_PER_YEAR) * USECS_PER_DAY +
			(double) every->day * USECS_PER_DAY + every->time;
		n = (int64) ((double) (after - anchor) / approx);
		n = Min(Max(n, 0), PG_INT32_MAX - 1);
		while (n > 0 && refill_time(anchor, every, n) > after)
			n--;
		while (refill_time(anchor, every, n + 1) <= after)
			n++;
	}
	PG_RETURN_TIMESTAMPTZ(refill_time(anchor, every, n + 1));
}
