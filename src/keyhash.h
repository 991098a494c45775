/*
 * keyhash.h
 *		The stored form of a key: SHA-256 of its full text.
 */
#ifndef APIKEY_KEYHASH_H
#define APIKEY_KEYHASH_H

#include "postgres.h"

#include "common/sha2.h"		/* PG_SHA256_DIGEST_LENGTH */

#define KEY_HASH_LEN PG_SHA256_DIGEST_LENGTH

extern void key_hash_compute(const char *text, size_t len, uint8 *out);
extern void key_hash_pieces(int n, const char *const *pieces, const size_t *lens, uint8 *out);
extern bool key_hash_equal(const uint8 *a, const uint8 *b);

#endif							/* APIKEY_KEYHASH_H */
