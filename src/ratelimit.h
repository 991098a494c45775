/*
 * ratelimit.h
 *		Rate limits of keys and tenants, counted in shared memory.
 */
#ifndef APIKEY_RATELIMIT_H
#define APIKEY_RATELIMIT_H

#include "postgres.h"

#include "verify.h"

/*
 * A key has at most this many limits of its own, its tenant as many, and
 * the key's owner (the person or service it belongs to) as many.
 */
#define RL_MAX_PER_OWNER	8
#define RL_MAX_LIMITS		(3 * RL_MAX_PER_OWNER)
#define RL_NAME_LEN			32

/*
 * A bucket: one named limit of one key, tenant or key owner, or one
 * identifier of a namespace of rate_limit_take, in one database.  The
 * limits of a key or tenant are named by their name; those of an owner and
 * the identifiers of a namespace by a SHA-256 of what names them, since
 * those are texts of any length.
 */
typedef struct RateKey
{
	Oid			dbid;
	uint32		kind;			/* RL_KIND_KEY, _TENANT, _OWNER or _TAKE */
	uint64		owner;			/* key id, or tenant id (0: rate_limit_take's global namespaces) */
	char		name[RL_NAME_LEN];	/* zero-padded name, or SHA-256 */
} RateKey;

/* What a verification took, so that it can be given back. */
typedef struct RateTaken
{
	int			n;
	struct
	{
		RateKey		key;
		uint32		hash;
		int64		slot_us;	/* sub-window length it was taken with */
		int64		slot;		/* index of the sub-window it went into */
		uint32		amount;
	}			item[RL_MAX_LIMITS];
} RateTaken;

extern void ratelimit_init(void);

/*
 * Take cost units from every limit of the key (its own, its tenant's and
 * its owner's), all or none.  Returns false when a limit lacks them; *has_retry_after
 * then says whether *retry_after_us is when the request would pass.
 */
extern bool ratelimit_take(const KeyState *key, int32 cost, RateTaken *taken,
						   bool *has_retry_after, int64 *retry_after_us);

/* Where the limits of key key_id would be: fetch it early (a hint only). */
extern void ratelimit_prefetch(uint64 key_id);

/* Give back what ratelimit_take took (a later check refused the request). */
extern void ratelimit_give_back(const RateTaken *taken);

#endif							/* APIKEY_RATELIMIT_H */
