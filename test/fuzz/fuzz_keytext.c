/*
 * fuzz_keytext.c
 *		libFuzzer harness of ak_parse and ak_format (key text and checksum).
 *
 * Properties checked on every input:
 *  1. ak_parse reads nothing outside the text (ASan) and never misbehaves
 *     (UBSan), whatever the bytes.
 *  2. Whatever ak_parse accepts is canonical: ak_format given the parsed
 *     prefix, tag, key id and the same secret digits writes the very same
 *     text; the parsed prefix and tag point into the text at the right place.
 *  3. A private key and a public key are told apart by the "pk" prefix alone.
 *  4. Every single-character substitution and every swap of two adjacent
 *     different characters of accepted text is rejected (the CRC-32
 *     checksum catches them): at every position of accepted fuzzer input,
 *     at a few positions chosen by the input of built text.
 *  5. Key text built from the input's bytes by ak_format (any prefix and tag
 *     of [a-z0-9]{1,8}, any 64-bit id, any secret digits) parses back to the
 *     same kind, id, prefix and tag, and is at most AK_TEXT_MAX characters.
 *     ak_format refuses an invalid prefix or tag, and "pk" with a secret.
 */
#include "fuzz_common.h"

static const char word_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";

static void
check_accepted(const char *text, size_t len, const AkParsed *p,
			   size_t first, size_t step)
{
	char		prefix[AK_PREFIX_MAX + 1];
	char		tag[AK_TAG_MAX + 1];
	char		secret[AK_SECRET_LEN];
	char		again[AK_TEXT_MAX + 1];
	const char *body;
	size_t		body_len;
	size_t		n;
	AkParsed	q;

	CHECK(p->kind == AK_PRIVATE || p->kind == AK_PUBLIC, "kind %d", p->kind);
	CHECK(len <= AK_TEXT_MAX, "accepted %zu characters", len);
	CHECK(p->prefix == text, "prefix does not start the text");
	CHECK(ak_word_valid(p->prefix, p->prefix_len, AK_PREFIX_MAX), "bad prefix");
	CHECK(ak_word_valid(p->tag, p->tag_len, AK_TAG_MAX), "bad tag");
	CHECK(p->tag == text + p->prefix_len + 1 && text[p->prefix_len] == '_' &&
		  text[p->prefix_len + 1 + p->tag_len] == '_', "separators misplaced");
	body = p->tag + p->tag_len + 1;
	body_len = len - (size_t) (body - text);
	CHECK((p->kind == AK_PUBLIC) ==
		  (p->prefix_len == 2 && memcmp(p->prefix, "pk", 2) == 0),
		  "kind and pk prefix disagree");
	CHECK(body_len == (p->kind == AK_PUBLIC ? AK_PUBLIC_BODY_LEN : AK_PRIVATE_BODY_LEN),
		  "body of %zu characters", body_len);
	for (size_t i = 0; i < body_len; i++)
		CHECK(fuzz_base62_value((unsigned char) body[i]) >= 0,
			  "non-base62 body character at %zu", i);

	/* canonical: formatting the parts again gives the same text */
	memcpy(prefix, p->prefix, p->prefix_len);
	prefix[p->prefix_len] = '\0';
	memcpy(tag, p->tag, p->tag_len);
	tag[p->tag_len] = '\0';
	if (p->kind == AK_PRIVATE)
		memcpy(secret, body + AK_ID_LEN, AK_SECRET_LEN);
	n = ak_format(again, prefix, tag, p->key_id,
				  p->kind == AK_PRIVATE ? secret : NULL);
	CHECK(n == len && memcmp(again, text, len) == 0 && again[n] == '\0',
		  "reformatted as \"%s\" (%zu), input %zu characters", again, n, len);

	/*
	 * single substitutions and adjacent swaps are detected (at every
	 * position from first on, step apart: all of them for the fuzzer's own
	 * text, a few for the text built from it)
	 */
	memcpy(again, text, len);
	for (size_t i = first % len; i < len; i += step)
	{
		static const unsigned char deltas[] = {1, 2, 0x20, 0x80, 0xFF};

		for (size_t d = 0; d < sizeof(deltas); d++)
		{
			again[i] = (char) ((unsigned char) text[i] ^ deltas[d]);
			CHECK(ak_parse(again, len, &q) == AK_MALFORMED,
				  "substitution at %zu (xor 0x%02x) accepted", i, deltas[d]);
		}
		again[i] = text[i];
		if (i + 1 < len && text[i] != text[i + 1])
		{
			again[i] = text[i + 1];
			again[i + 1] = text[i];
			CHECK(ak_parse(again, len, &q) == AK_MALFORMED,
				  "swap at %zu accepted", i);
			again[i] = text[i];
			again[i + 1] = text[i + 1];
		}
	}
	/* truncated or extended text is rejected */
	CHECK(ak_parse(text, len - 1, &q) == AK_MALFORMED, "truncation accepted");
}

static void
check_built(const uint8_t *data, size_t size)
{
	FuzzStream	s = {data, size, 0};
	char		prefix[AK_PREFIX_MAX + 2];
	char		tag[AK_TAG_MAX + 2];
	char		secret[AK_SECRET_LEN];
	char		buf[AK_TEXT_MAX + 1];
	uint8_t		flags = fuzz_byte(&s);
	size_t		plen = (size_t) (fuzz_byte(&s) % (AK_PREFIX_MAX + 1)) + 1;
	size_t		tlen = (size_t) (fuzz_byte(&s) % (AK_TAG_MAX + 1)) + 1;
	bool		public = flags & 1;
	bool		bad_word = false;
	uint64_t	key_id;
	size_t		n;
	AkParsed	p;

	/* lengths up to one past the limit, characters mostly from [a-z0-9] */
	for (size_t i = 0; i < plen; i++)
	{
		uint8_t		b = fuzz_byte(&s);

		prefix[i] = (flags & 2) && b >= 250 ? (char) b : word_chars[b % 36];
	}
	prefix[plen] = '\0';
	for (size_t i = 0; i < tlen; i++)
	{
		uint8_t		b = fuzz_byte(&s);

		tag[i] = (flags & 4) && b >= 250 ? "_-A: \x7f"[b - 250] : word_chars[b % 36];
	}
	tag[tlen] = '\0';
	if (public && !(flags & 8))
		strcpy(prefix, "pk");
	key_id = fuzz_u64(&s);
	for (size_t i = 0; i < AK_SECRET_LEN; i++)
		secret[i] = fuzz_base62[fuzz_byte(&s) % 62];

	bad_word = !ak_word_valid(prefix, strlen(prefix), AK_PREFIX_MAX) ||
		!ak_word_valid(tag, strlen(tag), AK_TAG_MAX) ||
		(public != (strcmp(prefix, "pk") == 0));
	n = ak_format(buf, prefix, tag, key_id, public ? NULL : secret);
	if (bad_word)
	{
		CHECK(n == 0, "ak_format accepted prefix \"%s\" tag \"%s\" public %d",
			  prefix, tag, public);
		return;
	}
	CHECK(n > 0 && n <= AK_TEXT_MAX && strlen(buf) == n,
		  "ak_format returned %zu for prefix \"%s\" tag \"%s\"", n, prefix, tag);
	CHECK(ak_parse(buf, n, &p) == (public ? AK_PUBLIC : AK_PRIVATE),
		  "formatted key \"%s\" does not parse", buf);
	CHECK(p.key_id == key_id, "key id %llu parsed as %llu",
		  (unsigned long long) key_id, (unsigned long long) p.key_id);
	CHECK(p.prefix_len == strlen(prefix) && memcmp(p.prefix, prefix, p.prefix_len) == 0,
		  "prefix of \"%s\"", buf);
	CHECK(p.tag_len == strlen(tag) && memcmp(p.tag, tag, p.tag_len) == 0,
		  "tag of \"%s\"", buf);
	CHECK(memcmp(buf + n - AK_CHECKSUM_LEN - (public ? 0 : AK_SECRET_LEN),
				 secret, public ? 0 : AK_SECRET_LEN) == 0, "secret not kept");
	check_accepted(buf, n, &p, fuzz_byte(&s), 17);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text = fuzz_dup(data, size);
	AkParsed	p;
	AkKind		kind;

	/* the input itself as key text */
	kind = ak_parse(text, size, &p);
	if (kind != AK_MALFORMED)
		check_accepted(text, size, &p, 0, 1);
	else
		CHECK(p.kind == AK_MALFORMED, "malformed but kind %d", p.kind);
	free(text);

	/* key text built from the input */
	check_built(data, size);
	return 0;
}
