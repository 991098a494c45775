/*
 * verify.h
 *		Verification of key text: the hot path.
 */
#ifndef APIKEY_VERIFY_H
#define APIKEY_VERIFY_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/timestamp.h"

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
	VS_PUBLIC_KEY
} VerifyStatus;

/*
 * What a verification learned.  The key's fields are filled in only once
 * its secret has been proven (proven = true); otherwise they are unset.
 */
typedef struct VerifyResult
{
	VerifyStatus status;
	bool		proven;
	uint64		key_id;
	int64		tenant_id;
	text	   *tenant;
	text	   *environment;
	ArrayType  *scopes;
	text	   *resource;		/* NULL when the key is not restricted */
	bool		has_expiry;
	TimestampTz expires_at;
} VerifyResult;

/* The setting apikey.environment (empty when unset). */
extern char *apikey_default_environment;

/*
 * Verify api_key.  environment, scope and resource may be NULL (not
 * checked); a NULL environment falls back to apikey.environment.
 */
extern void verify_key(text *api_key, text *environment, text *scope,
					   text *resource, VerifyResult *result);
extern const char *verify_status_name(VerifyStatus status);

/* The result row of verify and authenticate. */
extern Datum verify_result_datum(FunctionCallInfo fcinfo,
								 const VerifyResult *result);

#endif							/* APIKEY_VERIFY_H */
