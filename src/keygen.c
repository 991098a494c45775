/*
 * keygen.c
 *		Where keys are generated: random key ids and secrets, key text, the
 *		stored hash and the display hint.
 *
 * Key text leaves this file exactly once, as the result handed back to the
 * creating (or rolling) SQL function; the secret digits are zeroed here.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "apikey.h"
#include "keyhash.h"
#include "keyid.h"
#include "keytext.h"

/* Fill buf with len bytes from the server's strong random source. */
static void
strong_random(void *buf, size_t len)
{
	if (!pg_strong_random(buf, len))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes")));
}

/*
 * A fresh random key id (zero is never handed out) and, when secret is not
 * NULL, AK_SECRET_LEN uniformly distributed base62 digits, from one draw of
 * the strong random source in the common case.
 */
static uint64
random_key(char *secret)
{
	unsigned char bytes[sizeof(uint64) + 2 * AK_SECRET_LEN];
	uint64		id = 0;
	int			have = 0;

	strong_random(bytes, secret ? sizeof(bytes) : sizeof(uint64));
	memcpy(&id, bytes, sizeof(id));
	while (id == 0)
		strong_random(&id, sizeof(id));
	while (secret != NULL)
	{
		for (size_t i = sizeof(uint64); i < sizeof(bytes) && have < AK_SECRET_LEN; i++)
			if (ak_base62_from_byte(bytes[i], &secret[have]))
				have++;
		if (have == AK_SECRET_LEN)
			break;
		strong_random(bytes, sizeof(bytes));
	}
	explicit_bzero(bytes, sizeof(bytes));
	return id;
}

uint64
random_key_id(void)
{
	return random_key(NULL);
}

/* "<prefix>_<tag>_…<last 4>" ("..." where the database is not UTF-8) */
static text *
make_hint(const char *prefix, const char *tag, const char *keytext, size_t len)
{
	const char *ellipsis = GetDatabaseEncoding() == PG_UTF8 ? "\xE2\x80\xA6" : "...";

	return cstring_to_text(psprintf("%s_%s_%s%s", prefix, tag, ellipsis,
									keytext + len - AK_HINT_TAIL));
}

static void
check_word(const char *what, const char *value, size_t maxlen)
{
	if (!ak_word_valid(value, strlen(value), maxlen))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid key %s \"%s\"", what, value),
				 errdetail("A key %s is 1 to %d lowercase letters or digits.",
						   what, (int) maxlen)));
}

/*
 * A new private key of this prefix and tag (checked here); with for_key, a
 * new secret for that key id.  The key text is returned as text, the only
 * copy of it; the secret digits are zeroed.
 */
void
ak_generate_key(const char *prefix, const char *tag, const uint64 *for_key, GeneratedKey *out)
{
	uint64		key_id;
	char		secret[AK_SECRET_LEN];
	char		keytext[AK_TEXT_MAX + 1];
	size_t		len;
	bytea	   *hash = palloc(VARHDRSZ + KEY_HASH_LEN);

	check_word("prefix", prefix, AK_PREFIX_MAX);
	check_word("tag", tag, AK_TAG_MAX);
	if (strcmp(prefix, AK_PUBLIC_PREFIX) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the key prefix \"%s\" is reserved for public keys",
						AK_PUBLIC_PREFIX)));

	key_id = random_key(secret);
	if (for_key != NULL)
		key_id = *for_key;
	len = ak_format(keytext, prefix, tag, key_id, secret);
	explicit_bzero(secret, sizeof(secret));
	Assert(len > 0);

	SET_VARSIZE(hash, VARHDRSZ + KEY_HASH_LEN);
	key_hash_compute(keytext, len, (uint8 *) VARDATA(hash));

	out->key_id = key_id;
	out->api_key = cstring_to_text_with_len(keytext, len);
	out->key_hash = hash;
	out->hint = make_hint(prefix, tag, keytext, len);
	explicit_bzero(keytext, sizeof(keytext));
}

/*
 * apikey_internal.generate_key(prefix, tag, key_id default null)
 *		-> (key_id, api_key, key_hash, hint)
 * A new private key; with a key id, a new secret for that key (roll).
 */
PG_FUNCTION_INFO_V1(generate_key);
Datum
generate_key(PG_FUNCTION_ARGS)
{
	uint64		for_key;
	GeneratedKey g;
	TupleDesc	tupdesc = call_result_tupdesc(fcinfo);
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key prefix and tag must not be null")));
	if (!PG_ARGISNULL(2))
		for_key = PG_GETARG_KEYID(2);
	ak_generate_key(text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)),
					PG_ARGISNULL(2) ? NULL : &for_key, &g);

	values[0] = KeyIdGetDatum(g.key_id);
	values[1] = PointerGetDatum(g.api_key);
	values[2] = PointerGetDatum(g.key_hash);
	values[3] = PointerGetDatum(g.hint);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * apikey_internal.generate_public_key(tag) -> (key_id, public_key)
 * Public keys carry no secret: they identify, they do not authenticate.
 */
PG_FUNCTION_INFO_V1(generate_public_key);
Datum
generate_public_key(PG_FUNCTION_ARGS)
{
	char	   *tag = text_to_cstring(PG_GETARG_TEXT_PP(0));
	uint64		key_id = random_key(NULL);
	char		keytext[AK_TEXT_MAX + 1];
	size_t		len;
	TupleDesc	tupdesc = call_result_tupdesc(fcinfo);
	Datum		values[2];
	bool		nulls[2] = {false, false};

	check_word("tag", tag, AK_TAG_MAX);
	len = ak_format(keytext, AK_PUBLIC_PREFIX, tag, key_id, NULL);
	Assert(len > 0);

	values[0] = KeyIdGetDatum(key_id);
	values[1] = PointerGetDatum(cstring_to_text_with_len(keytext, len));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* looks_like_key(text): format and checksum only, no table access */
PG_FUNCTION_INFO_V1(looks_like_key);
Datum
looks_like_key(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	AkParsed	parsed;

	PG_RETURN_BOOL(ak_parse(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &parsed) != AK_MALFORMED);
}
