/*
 * keytext.h
 *		The text form of API keys, key ids and scopes.
 *
 * Everything here is plain C with no dependency on the server, so that the
 * same code serves the extension, the offline checks of looks_like_key and
 * the fuzzing harness under test/fuzz.
 *
 * Private key:  <prefix>_<tag>_<key id:11><secret:27><checksum:6>
 * Public key:   pk_<tag>_<key id:11><checksum:6>
 *
 * The key id and the checksum are fixed-width base62 numbers; the secret is
 * 27 independent base62 digits (160.7 bits).  The checksum is the CRC-32
 * (ISO-HDLC, as zlib's crc32) of every character before it.
 */
#ifndef APIKEY_KEYTEXT_H
#define APIKEY_KEYTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AK_PREFIX_MAX		8
#define AK_TAG_MAX			8
#define AK_ID_LEN			11
#define AK_SECRET_LEN		27
#define AK_CHECKSUM_LEN		6
#define AK_PRIVATE_BODY_LEN (AK_ID_LEN + AK_SECRET_LEN + AK_CHECKSUM_LEN)
#define AK_PUBLIC_BODY_LEN	(AK_ID_LEN + AK_CHECKSUM_LEN)
#define AK_TEXT_MAX			64
#define AK_HINT_TAIL		4
#define AK_PUBLIC_PREFIX	"pk"

#define AK_SCOPE_MAX		128
#define AK_RESOURCE_MAX		200

typedef enum AkKind
{
	AK_MALFORMED = 0,
	AK_PRIVATE,
	AK_PUBLIC
} AkKind;

typedef struct AkParsed
{
	AkKind		kind;
	uint64_t	key_id;
	const char *prefix;			/* points into the parsed text */
	size_t		prefix_len;
	const char *tag;
	size_t		tag_len;
} AkParsed;

/* Parse key text; no allocation, no table access.  Returns the kind. */
extern AkKind ak_parse(const char *text, size_t len, AkParsed *out);

/* Fixed-width base62 key id (11 characters). */
extern bool ak_id_decode(const char *s, size_t len, uint64_t *out);
extern void ak_id_encode(uint64_t value, char *out);

/* Is this a well-formed prefix or tag ([a-z0-9]{1,8})? */
extern bool ak_word_valid(const char *s, size_t len, size_t maxlen);

/* Map a random byte to a base62 digit; false when it must be drawn again. */
extern bool ak_base62_from_byte(unsigned char byte, char *digit);

/*
 * Write key text into buf (at least AK_TEXT_MAX + 1 bytes), NUL-terminated.
 * secret is AK_SECRET_LEN base62 digits for a private key, NULL for a public
 * one.  Returns the length, or 0 when prefix or tag is not well-formed.
 */
extern size_t ak_format(char *buf, const char *prefix, const char *tag,
						uint64_t key_id, const char *secret);

/*
 * Scopes: "*", or segments of [a-z0-9_.-] separated by ':', the last of
 * which may be "*" (e.g. "orders:*").  At most AK_SCOPE_MAX characters.
 */
extern bool ak_scope_valid(const char *s, size_t len);

/* Does the granted scope (which may be a wildcard) cover the wanted one? */
extern bool ak_scope_covers(const char *granted, size_t glen,
							const char *wanted, size_t wlen);

/*
 * Resources: "<type>:<id>", type of [a-z0-9_.-], id of printable ASCII
 * without spaces, at most AK_RESOURCE_MAX characters (e.g. "collection:42").
 */
extern bool ak_resource_valid(const char *s, size_t len);

/* Does the granted resource (which may be "type:*") cover the wanted one? */
extern bool ak_resource_covers(const char *granted, size_t glen,
							   const char *wanted, size_t wlen);

/*
 * May this text hold a secret (a run of AK_SECRET_RUN or more base62
 * characters)?  Error messages never quote such text.
 */
#define AK_SECRET_RUN		20
extern bool ak_may_hold_secret(const char *s, size_t len);

#endif							/* APIKEY_KEYTEXT_H */
