/*
 * keychange.h
 *		Change counters of apikey.keys, for the cache of verified keys.
 */
#ifndef APIKEY_KEYCHANGE_H
#define APIKEY_KEYCHANGE_H

#include "postgres.h"

/* The counters a cached key state depends on. */
typedef struct KeyChangeStamp
{
	uint64		global;
	uint64		slot;
} KeyChangeStamp;

extern void keychange_init(void);

/* May this verification use (and fill) cached key states? */
extern bool keychange_cache_allowed(void);

/* Read the counters, before the row is read. */
extern void keychange_stamp(uint64 key_id, KeyChangeStamp *stamp);

/* Has no change to the key committed since the stamp? */
extern bool keychange_unchanged(uint64 key_id, const KeyChangeStamp *stamp);

#endif							/* APIKEY_KEYCHANGE_H */
