/*
 * keycache.h
 *		What a backend remembers of the keys it verified.
 */
#ifndef APIKEY_KEYCACHE_H
#define APIKEY_KEYCACHE_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "storage/itemptr.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

#include "keychange.h"
#include "keyhash.h"
#include "verify.h"

/*
 * What many keys share: their tenant, environment, scopes and the other
 * texts and arrays of their state (interned: one copy per distinct
 * content), and the result row of a plain valid verification with the key
 * id and expiry left to patch in.
 */
typedef struct KeyProfile KeyProfile;

/* A key's previous secret, during a roll's grace period. */
typedef struct CachedPrevious
{
	uint8		hash[KEY_HASH_LEN];
	TimestampTz until;
} CachedPrevious;

/* A remembered key: about 90 bytes, and its share of a profile. */
typedef struct CachedKey
{
	uint64		key_id;			/* hash key */
	ItemPointerData tid;		/* where its row was: the root of its HOT chain */
	bool		has_state;		/* the fields below are set */
	bool		revoked;
	KeyChangeStamp stamp;		/* counters read before the state was */
	uint8		key_hash[KEY_HASH_LEN];
	TimestampTz expires_at;		/* when the profile says it has an expiry */
	KeyProfile *profile;
	CachedPrevious *previous;	/* NULL: none */
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
extern int64 keycache_tenant_id(const CachedKey *entry);
extern void keycache_state(const CachedKey *entry, KeyState *key);
extern bool keycache_valid_result(const CachedKey *entry, TupleDesc tupdesc,
								  Datum *result);
extern void keycache_set_valid_result(CachedKey *entry, HeapTuple tuple,
									  TupleDesc tupdesc, int key_id_attno,
									  int expires_at_attno);
extern bool keycache_shared_location(uint64 key_id, ItemPointer tid);
extern void keycache_share_location(uint64 key_id, ItemPointer tid);
extern int64 keycache_share_index_locations(Relation heap, Relation index, Snapshot snapshot);

#endif							/* APIKEY_KEYCACHE_H */
