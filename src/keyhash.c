/*
 * keyhash.c
 *		Where hashes are computed and compared.
 *
 * A key is stored as SHA-256 over its full text (prefix, tag and body), so
 * pgcrypto's digest(api_key, 'sha256') reproduces it.  The secret carries
 * 160 bits of entropy, which makes a slow or salted hash unnecessary: there
 * is nothing to guess.
 */
#include "postgres.h"

#include "common/cryptohash.h"

#include "keyhash.h"

/* SHA-256 of text into out (KEY_HASH_LEN bytes). */
void
key_hash_compute(const char *text, size_t len, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) text, len) < 0 ||
		pg_cryptohash_final(ctx, out, KEY_HASH_LEN) < 0)
	{
		const char *reason = ctx ? pg_cryptohash_error(ctx) : "out of memory";

		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256: %s", reason)));
	}
	/* pg_cryptohash_free zeroes the context before releasing it */
	pg_cryptohash_free(ctx);
}

/* Compare two hashes in time independent of where they differ. */
bool
key_hash_equal(const uint8 *a, const uint8 *b)
{
	volatile uint8 diff = 0;

	for (int i = 0; i < KEY_HASH_LEN; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}
