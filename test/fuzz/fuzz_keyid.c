/*
 * fuzz_keyid.c
 *		libFuzzer harness of the key id text form (ak_id_decode and
 *		ak_id_encode, which key_id_in and key_id_out use) and of
 *		ak_base62_from_byte.
 *
 * Properties:
 *  1. ak_id_decode accepts exactly the 11-character base62 strings whose
 *     value fits 64 bits (checked against an independent reference), and
 *     what it accepts encodes back to the same 11 characters.
 *  2. Every 64-bit value encodes to 11 base62 characters that decode back
 *     to it, and the text order of encodings is the numeric order.
 *  3. ak_base62_from_byte rejects exactly the bytes >= 248 and maps the
 *     others to byte % 62.
 */
#include "fuzz_common.h"

/* Reference decoder: 128-bit arithmetic, no cleverness. */
static int
reference_decode(const char *s, size_t len, uint64_t *out)
{
	unsigned __int128 v = 0;

	if (len != AK_ID_LEN)
		return 0;
	for (size_t i = 0; i < len; i++)
	{
		int			d = fuzz_base62_value((unsigned char) s[i]);

		if (d < 0)
			return 0;
		v = v * 62 + (unsigned) d;
	}
	if (v > UINT64_MAX)
		return 0;
	*out = (uint64_t) v;
	return 1;
}

static void
check_value(uint64_t v)
{
	char		enc[AK_ID_LEN + 1];
	uint64_t	back = ~v;

	memset(enc, 0, sizeof(enc));
	ak_id_encode(v, enc);
	CHECK(enc[AK_ID_LEN] == '\0', "encoding wrote past 11 characters");
	for (int i = 0; i < AK_ID_LEN; i++)
		CHECK(fuzz_base62_value((unsigned char) enc[i]) >= 0, "bad digit");
	CHECK(ak_id_decode(enc, AK_ID_LEN, &back) && back == v,
		  "%llu encoded as %s decoded as %llu",
		  (unsigned long long) v, enc, (unsigned long long) back);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text = fuzz_dup(data, size);
	uint64_t	got = 0;
	uint64_t	want = 0;
	bool		ok = ak_id_decode(text, size, &got);
	int			ref = reference_decode(text, size, &want);

	CHECK(ok == (ref != 0), "ak_id_decode says %d, reference %d", ok, ref);
	if (ok)
	{
		char		enc[AK_ID_LEN];

		CHECK(got == want, "decoded %llu, reference %llu",
			  (unsigned long long) got, (unsigned long long) want);
		ak_id_encode(got, enc);
		CHECK(memcmp(enc, text, AK_ID_LEN) == 0, "not canonical");
	}
	free(text);

	/* values from the input's bytes, and their order */
	if (size >= 8)
	{
		FuzzStream	s = {data, size, 0};
		uint64_t	a = fuzz_u64(&s);
		uint64_t	b = fuzz_u64(&s);
		char		ea[AK_ID_LEN];
		char		eb[AK_ID_LEN];
		int			c;

		check_value(a);
		check_value(b);
		check_value(a + 1);
		check_value(a - 1);
		ak_id_encode(a, ea);
		ak_id_encode(b, eb);
		c = memcmp(ea, eb, AK_ID_LEN);
		CHECK((c > 0) - (c < 0) == (a > b) - (a < b), "text order is not numeric order");
	}

	if (size > 0)
	{
		char		digit = 0;
		bool		took = ak_base62_from_byte(data[0], &digit);

		CHECK(took == (data[0] < 248), "byte %u taken %d", data[0], took);
		if (took)
			CHECK(digit == fuzz_base62[data[0] % 62], "byte %u gave %c", data[0], digit);
	}
	return 0;
}
