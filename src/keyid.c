/*
 * keyid.c
 *		Input, output, comparison and hashing of apikey.key_id.
 *
 * The text form is 11 base62 digits in ASCII order, so text order and the
 * (unsigned) numeric order agree.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/sortsupport.h"

#include "keyid.h"
#include "keytext.h"

static inline void
report_bad_key_id(const char *s, size_t len)
{
	/* the right length and alphabet, but above the largest 64-bit key id */
	if (len == AK_ID_LEN && !ak_may_hold_secret(s, len) &&
		strspn(s, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == len)
	{
		char		largest[AK_ID_LEN + 1];

		ak_id_encode(PG_UINT64_MAX, largest);
		largest[AK_ID_LEN] = '\0';
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value \"%s\" is out of range for type apikey.key_id", s),
				 errdetail("Key ids are 64-bit numbers: the largest is %s.", largest)));
	}
	if (!ak_may_hold_secret(s, len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type apikey.key_id: \"%s\"", s),
				 errdetail("A key id is %d base62 characters (0-9, A-Z, a-z).",
						   AK_ID_LEN)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type apikey.key_id"),
			 errdetail("A key id is %d base62 characters (0-9, A-Z, a-z); the input is not shown because it may be key text.",
					   AK_ID_LEN),
			 errhidestmt(true), errhidecontext(true)));
}

/* Text to key_id */
PG_FUNCTION_INFO_V1(key_id_in);
Datum
key_id_in(PG_FUNCTION_ARGS)
{
	char	   *s = PG_GETARG_CSTRING(0);
	size_t		len = strlen(s);
	uint64_t	value;

	if (!ak_id_decode(s, len, &value))
		report_bad_key_id(s, len);
	PG_RETURN_KEYID(value);
}

/* key_id to text */
PG_FUNCTION_INFO_V1(key_id_out);
Datum
key_id_out(PG_FUNCTION_ARGS)
{
	char	   *result = palloc(AK_ID_LEN + 1);

	ak_id_encode(PG_GETARG_KEYID(0), result);
	result[AK_ID_LEN] = '\0';
	PG_RETURN_CSTRING(result);
}

/* Binary input: exactly eight bytes; every 64-bit value is a key id */
PG_FUNCTION_INFO_V1(key_id_recv);
Datum
key_id_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);

	if (buf->len - buf->cursor != (int) sizeof(int64))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary representation of apikey.key_id"),
				 errdetail("Expected %d bytes, got %d.", (int) sizeof(int64),
						   buf->len - buf->cursor)));
	PG_RETURN_KEYID((uint64) pq_getmsgint64(buf));
}

/* Binary output */
PG_FUNCTION_INFO_V1(key_id_send);
Datum
key_id_send(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, (int64) PG_GETARG_KEYID(0));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

static inline int
key_id_cmp_internal(uint64 a, uint64 b)
{
	return (a > b) - (a < b);
}

/* btree support: three-way comparison */
PG_FUNCTION_INFO_V1(key_id_cmp);
Datum
key_id_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(key_id_cmp_internal(PG_GETARG_KEYID(0), PG_GETARG_KEYID(1)));
}

static int
key_id_fastcmp(Datum a, Datum b, SortSupport ssup)
{
	return key_id_cmp_internal(DatumGetKeyId(a), DatumGetKeyId(b));
}

/* btree support: sort support */
PG_FUNCTION_INFO_V1(key_id_sortsupport);
Datum
key_id_sortsupport(PG_FUNCTION_ARGS)
{
	SortSupport ssup = (SortSupport) PG_GETARG_POINTER(0);

	ssup->comparator = key_id_fastcmp;
	PG_RETURN_VOID();
}

#define KEY_ID_OPERATOR(name, test) \
PG_FUNCTION_INFO_V1(name); \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(key_id_cmp_internal(PG_GETARG_KEYID(0), PG_GETARG_KEYID(1)) test); \
}

/* Comparison operators */
KEY_ID_OPERATOR(key_id_eq, == 0)
KEY_ID_OPERATOR(key_id_ne, != 0)
KEY_ID_OPERATOR(key_id_lt, < 0)
KEY_ID_OPERATOR(key_id_le, <= 0)
KEY_ID_OPERATOR(key_id_gt, > 0)
KEY_ID_OPERATOR(key_id_ge, >= 0)

/* hash support */
PG_FUNCTION_INFO_V1(key_id_hash);
Datum
key_id_hash(PG_FUNCTION_ARGS)
{
	uint64		value = PG_GETARG_KEYID(0);

	return hash_any((unsigned char *) &value, sizeof(value));
}

/* hash support, seeded (hash partitioning) */
PG_FUNCTION_INFO_V1(key_id_hash_extended);
Datum
key_id_hash_extended(PG_FUNCTION_ARGS)
{
	uint64		value = PG_GETARG_KEYID(0);

	return hash_any_extended((unsigned char *) &value, sizeof(value),
							 PG_GETARG_INT64(1));
}
