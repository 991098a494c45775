/*
 * verify.h
 *		Verification of key text: the hot path.
 */
#ifndef APIKEY_VERIFY_H
#define APIKEY_VERIFY_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/inet.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* In the order the checks apply (see decide_status). */
typedef enum VerifyStatus
{
	VS_VALID = 0,
	VS_MALFORMED,
	VS_NOT_FOUND,
	VS_REVOKED,
	VS_EXPIRED,
	VS_WRONG_ENVIRONMENT,
	VS_INSUFFICIENT_SCOPE,
	VS_WRONG_RESOURCE,
	VS_PUBLIC_KEY,
	VS_IP_NOT_ALLOWED,
	VS_RATE_LIMITED,
	VS_USAGE_EXCEEDED,
	NUM_VERIFY_STATUSES
} VerifyStatus;

/*
 * What verification knows of a key once its secret is proven: the columns
 * of its row that decide a status or are returned.  Pointers are to data
 * that lives at least as long as the current call.
 */
typedef struct KeyState
{
	uint64		key_id;
	int64		tenant_id;
	text	   *tenant;
	text	   *environment;
	ArrayType  *scopes;			/* its own and its roles' */
	ArrayType  *resources;		/* NULL: unrestricted */
	text	   *owner;			/* NULL: none */
	Jsonb	   *meta;			/* NULL: none */
	ArrayType  *allowed_ips;	/* cidr[]; NULL: from anywhere */
	ArrayType  *rate_limits;	/* apikey.rate_limit[] of the key; NULL: none */
	ArrayType  *tenant_rate_limits; /* ... shared by the tenant's keys */
	ArrayType  *owner_rate_limits;	/* ... shared by the keys of its owner */
	bool		has_credits;	/* usage-limited (apikey.credits) */
	bool		revoked;
	bool		has_expiry;
	TimestampTz expires_at;
} KeyState;

/* What a verification asks. */
typedef struct VerifyRequest
{
	text	   *api_key;		/* NULL: malformed */
	text	   *environment;	/* NULL: apikey.environment, if set */
	text	   *scope;			/* NULL: not checked */
	text	   *resource;		/* NULL: not checked */
	int32		cost;			/* units taken from limits and credits */
	inet	   *client_ip;		/* NULL: the connection's address */
} VerifyRequest;

/*
 * What a verification learned.  key is filled in only once the key's
 * secret has been proven (proven = true).
 */
typedef struct VerifyResult
{
	VerifyStatus status;
	bool		proven;
	KeyState	key;
	bool		has_remaining;	/* credits left after this verification */
	int64		remaining;
	bool		has_retry_after;	/* when a rate-limited request would pass */
	int64		retry_after_us;
	struct CachedKey *cached;	/* the cache entry key came from, if any */
	uint64		row_key_id;		/* the key id looked up, proven or not */
	int64		row_tenant_id;	/* its tenant when the key id is known, else -1 */
} VerifyResult;

/*
 * The SQLSTATEs authenticate raises for rate_limited and usage_exceeded
 * (an implementation-defined class, "KA"), so that an HTTP layer can answer
 * 429 and 402 without parsing a message; every other refusal is 28000.
 */
#define ERRCODE_APIKEY_RATE_LIMITED		MAKE_SQLSTATE('K','A','4','2','9')
#define ERRCODE_APIKEY_USAGE_EXCEEDED	MAKE_SQLSTATE('K','A','4','0','2')

/* The setting apikey.environment (empty when unset). */
extern char *apikey_default_environment;

/* The setting apikey.require_environment. */
extern bool apikey_require_environment;

extern void verify_key(const VerifyRequest *request, VerifyResult *result);

/*
 * The first half of verify_key: is the text a key's, and whose?  Parses it
 * (or finds it among imported keys), hashes it, fetches the key's row and
 * compares.  When proven, fills result->key; otherwise sets result->status
 * (malformed, public_key or not_found).  No status is decided and no use
 * recorded.
 */
extern bool verify_prove(text *api_key, TimestampTz now, VerifyResult *result);
extern const char *verify_status_name(VerifyStatus status);

/* The request of a verify(api_key, environment, scope, resource, cost, client_ip) call. */
extern void verify_request_from_args(FunctionCallInfo fcinfo, int api_key_arg,
									 int environment_arg, int scope_arg,
									 int resource_arg, int cost_arg,
									 int client_ip_arg, VerifyRequest *request);

/* Is the key revoked, or gone, as the latest snapshot sees it? */
extern bool verify_key_revoked_now(uint64 key_id);

/* Does any of the resources (patterns such as "collection:*") cover resource? */
extern bool resources_cover(ArrayType *resources, text *resource);

/* The result row of verify and authenticate. */
extern Datum verify_result_datum(FunctionCallInfo fcinfo,
								 const VerifyResult *result);

#endif							/* APIKEY_VERIFY_H */
