/*
 * imported.h
 *		Keys imported from another system (imported.c).
 */
#ifndef APIKEY_IMPORTED_H
#define APIKEY_IMPORTED_H

#include "postgres.h"

/* The most bytes of imported key text; longer text is never looked up. */
#define IMPORTED_KEY_MAX	1024

/* Imported text shorter than this has no characters shown in its hint. */
#define IMPORTED_HINT_MIN	20

/* Are there imported keys?  No table access while the answer is known. */
extern bool imported_keys_exist(void);

/* What the text of an imported key leads to. */
typedef enum ImportedLookup
{
	IMPORTED_NONE,				/* no imported key has this text */
	IMPORTED_ONE,				/* one key: *key_id */
	IMPORTED_DISPUTED			/* keys of several tenants: none of them */
} ImportedLookup;

/*
 * The key id of the imported key whose text has this SHA-256, if exactly
 * one has it (one index probe).  A text imported by several tenants proves
 * none of their keys: no tenant can claim another's by importing it first.
 * Only after imported_keys_exist() said yes.
 */
extern ImportedLookup imported_key_lookup(const uint8 *hash, uint64 *key_id);

#endif							/* APIKEY_IMPORTED_H */
