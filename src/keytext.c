/*
 * keytext.c
 *		Parsing and formatting of key text, key ids and scopes.
 *
 * Untrusted input reaches this file first, so every function takes an
 * explicit length, reads nothing past it and allocates nothing.
 */
#include "keytext.h"

#include <string.h>

static const char base62_digits[] =
"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Each byte's value as a base62 digit plus one; 0 for other bytes. */
static const unsigned char base62_values[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5,
	['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
	['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
	['G'] = 17, ['H'] = 18, ['I'] = 19, ['J'] = 20, ['K'] = 21, ['L'] = 22,
	['M'] = 23, ['N'] = 24, ['O'] = 25, ['P'] = 26, ['Q'] = 27, ['R'] = 28,
	['S'] = 29, ['T'] = 30, ['U'] = 31, ['V'] = 32, ['W'] = 33, ['X'] = 34,
	['Y'] = 35, ['Z'] = 36,
	['a'] = 37, ['b'] = 38, ['c'] = 39, ['d'] = 40, ['e'] = 41, ['f'] = 42,
	['g'] = 43, ['h'] = 44, ['i'] = 45, ['j'] = 46, ['k'] = 47, ['l'] = 48,
	['m'] = 49, ['n'] = 50, ['o'] = 51, ['p'] = 52, ['q'] = 53, ['r'] = 54,
	['s'] = 55, ['t'] = 56, ['u'] = 57, ['v'] = 58, ['w'] = 59, ['x'] = 60,
	['y'] = 61, ['z'] = 62,
};

/* Value of a base62 digit, or -1. */
static inline int
base62_value(unsigned char c)
{
	return (int) base62_values[c] - 1;
}

/*
 * Decode exactly len base62 digits; false on a non-digit or a value that
 * does not fit 64 bits.
 */
static bool
base62_decode(const char *s, size_t len, uint64_t *out)
{
	uint64_t	value = 0;

	for (size_t i = 0; i < len; i++)
	{
		int			digit = base62_value((unsigned char) s[i]);

		if (digit < 0 ||
			__builtin_mul_overflow(value, 62, &value) ||
			__builtin_add_overflow(value, (uint64_t) digit, &value))
			return false;
	}
	*out = value;
	return true;
}

/* Encode value as exactly len base62 digits (most significant first). */
static void
base62_encode(uint64_t value, char *out, size_t len)
{
	for (size_t i = len; i > 0; i--)
	{
		out[i - 1] = base62_digits[value % 62];
		value /= 62;
	}
}

bool
ak_base62_from_byte(unsigned char byte, char *digit)
{
	/* 248 = 4 * 62: the bytes above it would bias the digits */
	if (byte >= 248)
		return false;
	*digit = base62_digits[byte % 62];
	return true;
}

bool
ak_id_decode(const char *s, size_t len, uint64_t *out)
{
	return len == AK_ID_LEN && base62_decode(s, len, out);
}

void
ak_id_encode(uint64_t value, char *out)
{
	base62_encode(value, out, AK_ID_LEN);
}

/*
 * CRC-32 with the reflected polynomial 0xEDB88320, as zlib's crc32(),
 * slicing by 8: eight bytes per step through eight tables, where table k
 * advances a byte's CRC by k further zero bytes (table 0 is the bytewise
 * one, which also does the tail).  A key's text of about 50 bytes takes
 * six steps instead of fifty table lookups in a chain.
 */
static uint32_t crc_tables[8][256];
static bool crc_tables_ready = false;

static void
crc_tables_build(void)
{
	for (uint32_t n = 0; n < 256; n++)
	{
		uint32_t	c = n;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_tables[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int t = 1; t < 8; t++)
			crc_tables[t][n] = crc_tables[0][crc_tables[t - 1][n] & 0xFF] ^
				(crc_tables[t - 1][n] >> 8);
	crc_tables_ready = true;
}

static uint32_t
crc32_of(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	uint32_t	crc = 0xFFFFFFFFu;

	if (!crc_tables_ready)
		crc_tables_build();
	for (; len >= 8; p += 8, len -= 8)
	{
		/* the bytes in order, whatever the machine's byte order */
		uint32_t	lo = crc ^ ((uint32_t) p[0] | (uint32_t) p[1] << 8 |
								(uint32_t) p[2] << 16 | (uint32_t) p[3] << 24);

		crc = crc_tables[7][lo & 0xFF] ^ crc_tables[6][(lo >> 8) & 0xFF] ^
			crc_tables[5][(lo >> 16) & 0xFF] ^ crc_tables[4][lo >> 24] ^
			crc_tables[3][p[4]] ^ crc_tables[2][p[5]] ^
			crc_tables[1][p[6]] ^ crc_tables[0][p[7]];
	}
	while (len-- > 0)
		crc = crc_tables[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
	return crc ^ 0xFFFFFFFFu;
}

bool
ak_word_valid(const char *s, size_t len, size_t maxlen)
{
	if (len == 0 || len > maxlen)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

AkKind
ak_parse(const char *text, size_t len, AkParsed *out)
{
	const char *sep1;
	const char *sep2;
	const char *body;
	size_t		body_len;
	uint64_t	checksum;
	bool		is_public;

	memset(out, 0, sizeof(*out));
	if (text == NULL || len > AK_TEXT_MAX)
		return AK_MALFORMED;

	sep1 = memchr(text, '_', len);
	if (sep1 == NULL)
		return AK_MALFORMED;
	sep2 = memchr(sep1 + 1, '_', len - (size_t) (sep1 + 1 - text));
	if (sep2 == NULL)
		return AK_MALFORMED;

	out->prefix = text;
	out->prefix_len = (size_t) (sep1 - text);
	out->tag = sep1 + 1;
	out->tag_len = (size_t) (sep2 - sep1 - 1);
	body = sep2 + 1;
	body_len = len - (size_t) (body - text);

	if (!ak_word_valid(out->prefix, out->prefix_len, AK_PREFIX_MAX) ||
		!ak_word_valid(out->tag, out->tag_len, AK_TAG_MAX))
		return AK_MALFORMED;

	is_public = out->prefix_len == strlen(AK_PUBLIC_PREFIX) &&
		memcmp(out->prefix, AK_PUBLIC_PREFIX, out->prefix_len) == 0;
	if (body_len != (is_public ? AK_PUBLIC_BODY_LEN : AK_PRIVATE_BODY_LEN))
		return AK_MALFORMED;

	/* the secret must be base62 too; the id and checksum are decoded */
	for (size_t i = AK_ID_LEN; i < body_len - AK_CHECKSUM_LEN; i++)
		if (base62_value((unsigned char) body[i]) < 0)
			return AK_MALFORMED;
	if (!ak_id_decode(body, AK_ID_LEN, &out->key_id) ||
		!base62_decode(body + body_len - AK_CHECKSUM_LEN, AK_CHECKSUM_LEN,
					   &checksum) ||
		checksum != crc32_of(text, len - AK_CHECKSUM_LEN))
		return AK_MALFORMED;

	out->kind = is_public ? AK_PUBLIC : AK_PRIVATE;
	return out->kind;
}

size_t
ak_format(char *buf, const char *prefix, const char *tag, uint64_t key_id,
		  const char *secret)
{
	size_t		prefix_len = strlen(prefix);
	size_t		tag_len = strlen(tag);
	size_t		len = 0;

	if (!ak_word_valid(prefix, prefix_len, AK_PREFIX_MAX) ||
		!ak_word_valid(tag, tag_len, AK_TAG_MAX))
		return 0;
	/* "pk" marks public keys and nothing else */
	if ((secret == NULL) != (strcmp(prefix, AK_PUBLIC_PREFIX) == 0))
		return 0;

	memcpy(buf + len, prefix, prefix_len);
	len += prefix_len;
	buf[len++] = '_';
	memcpy(buf + len, tag, tag_len);
	len += tag_len;
	buf[len++] = '_';
	ak_id_encode(key_id, buf + len);
	len += AK_ID_LEN;
	if (secret != NULL)
	{
		memcpy(buf + len, secret, AK_SECRET_LEN);
		len += AK_SECRET_LEN;
	}
	base62_encode(crc32_of(buf, len), buf + len, AK_CHECKSUM_LEN);
	len += AK_CHECKSUM_LEN;
	buf[len] = '\0';
	return len;
}

static inline bool
scope_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '_' || c == '.' || c == '-';
}

bool
ak_scope_valid(const char *s, size_t len)
{
	size_t		segment = 0;	/* length of the current segment */

	if (len == 0 || len > AK_SCOPE_MAX)
		return false;
	if (len == 1 && s[0] == '*')
		return true;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == ':')
		{
			if (segment == 0)
				return false;
			segment = 0;
		}
		else if (c == '*')
		{
			/* only as a whole last segment after a ':' */
			if (segment != 0 || i == 0 || i != len - 1)
				return false;
			segment = 1;
		}
		else if (scope_char(c))
			segment++;
		else
			return false;
	}
	return segment > 0;
}

bool
ak_scope_covers(const char *granted, size_t glen, const char *wanted,
				size_t wlen)
{
	if (glen == 1 && granted[0] == '*')
		return true;
	if (glen >= 2 && granted[glen - 1] == '*' && granted[glen - 2] == ':')
		return wlen >= glen && memcmp(granted, wanted, glen - 1) == 0;
	return glen == wlen && memcmp(granted, wanted, glen) == 0;
}

bool
ak_resource_covers(const char *granted, size_t glen, const char *wanted,
				   size_t wlen)
{
	/* "type:*" covers every id of that type, itself included */
	if (glen >= 2 && granted[glen - 1] == '*' && granted[glen - 2] == ':')
		return wlen >= glen && memcmp(granted, wanted, glen - 1) == 0;
	return glen == wlen && memcmp(granted, wanted, glen) == 0;
}

bool
ak_resource_valid(const char *s, size_t len)
{
	const char *colon;
	size_t		type_len;

	if (len == 0 || len > AK_RESOURCE_MAX)
		return false;
	colon = memchr(s, ':', len);
	if (colon == NULL)
		return false;
	type_len = (size_t) (colon - s);
	if (type_len == 0 || type_len == len - 1)
		return false;
	for (size_t i = 0; i < type_len; i++)
		if (!scope_char((unsigned char) s[i]))
			return false;
	for (size_t i = type_len + 1; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

bool
ak_may_hold_secret(const char *s, size_t len)
{
	size_t		run = 0;

	for (size_t i = 0; i < len; i++)
	{
		run = base62_value((unsigned char) s[i]) >= 0 ? run + 1 : 0;
		if (run >= AK_SECRET_RUN)
			return true;
	}
	return false;
}
