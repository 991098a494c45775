/*
 * fuzz_common.h
 *		Shared helpers of the libFuzzer harnesses of src/keytext.c.
 *
 * A violated property aborts with a message; libFuzzer then saves the input
 * as crash-<sha1> and stops, which the CI suite counts as a failure.
 */
#ifndef APIKEY_FUZZ_COMMON_H
#define APIKEY_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keytext.h"

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "property violated at %s:%d: %s\n", \
					__FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
			abort(); \
		} \
	} while (0)

static const char fuzz_base62[] =
"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static inline int
fuzz_base62_value(unsigned char c)
{
	const char *p = c ? strchr(fuzz_base62, c) : NULL;

	return p ? (int) (p - fuzz_base62) : -1;
}

/* A heap copy of exactly len bytes, so ASan sees any read past the end. */
static inline char *
fuzz_dup(const uint8_t *data, size_t len)
{
	char	   *copy = malloc(len ? len : 1);

	if (len)
		memcpy(copy, data, len);
	return copy;
}

/* Pull bytes off the input; zeros once it runs out. */
typedef struct FuzzStream
{
	const uint8_t *data;
	size_t		len;
	size_t		pos;
} FuzzStream;

static inline uint8_t
fuzz_byte(FuzzStream *s)
{
	return s->pos < s->len ? s->data[s->pos++] : 0;
}

static inline uint64_t
fuzz_u64(FuzzStream *s)
{
	uint64_t	v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | fuzz_byte(s);
	return v;
}

#endif							/* APIKEY_FUZZ_COMMON_H */
