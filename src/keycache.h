/*
 * keycache.h
 *		What a backend remembers of the keys it verified.
 */
#ifndef APIKEY_KEYCACHE_H
#define APIKEY_KEYCACHE_H

#include "postgres.h"

#include "access/htup.h"
#include "storage/itemptr.h"

#include "keychange.h"
#include "keyhash.h"
#include "verify.h"

typedef struct CachedKey
{
	uint64		key_id;			/* hash key */
	ItemPointerData tid;		/* where its row was: the root of its HOT chain */
	bool		has_state;		/* the fields below are set */
	KeyChangeStamp stamp;		/* counters read before the state was */
	uint8		key_hash[KEY_HASH_LEN];
	bool		has_previous;
	uint8		previous_hash[KEY_HASH_LEN];
	TimestampTz previous_until;
	KeyState	state;			/* its texts and arrays are in data */
	char	   *data;
	HeapTuple	valid_result;	/* the result row of a plain valid verification */
} CachedKey;

extern int	apikey_key_cache_size;

extern void keycache_init(void);
extern void keycache_forget_all(void);
extern CachedKey *keycache_lookup(uint64 key_id, bool create);
extern void keycache_forget(uint64 key_id);
extern void keycache_set_state(CachedKey *entry, const KeyState *state,
							   const uint8 *key_hash, const uint8 *previous_hash,
							   TimestampTz previous_until, const KeyChangeStamp *stamp);
extern bool keycache_prove(const CachedKey *entry, const uint8 *hash,
						   TimestampTz now, KeyState *key);
extern void keycache_set_valid_result(CachedKey *entry, HeapTuple tuple);
extern bool keycache_shared_location(uint64 key_id, ItemPointer tid);
extern void keycache_share_location(uint64 key_id, ItemPointer tid);

#endif							/* APIKEY_KEYCACHE_H */
