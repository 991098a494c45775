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

/*
 * The key id of the imported key whose text has this SHA-256, if any (one
 * index probe).  Only after imported_keys_exist() said yes.
 */
extern bool imported_key_lookup(const uint8 *hash, uint64 *key_id);

#endif							/* APIKEY_IMPORTED_H */
