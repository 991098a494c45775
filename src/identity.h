/*
 * identity.h
 *		The identity the current transaction was authenticated as.
 */
#ifndef APIKEY_IDENTITY_H
#define APIKEY_IDENTITY_H

#include "postgres.h"

#include "utils/array.h"
#include "utils/jsonb.h"

#include "xactstack.h"

typedef struct Identity
{
	XactStackEntry level;		/* the identity before it, the subtransaction */
	uint64		key_id;
	int64		tenant_id;
	text	   *tenant;
	text	   *environment;
	ArrayType  *scopes;
	ArrayType  *resources;		/* NULL when the key is unrestricted */
	text	   *owner;			/* NULL when none */
	Jsonb	   *meta;			/* NULL when none */
} Identity;

/* The transaction's identity, or NULL when it did not authenticate. */
extern const Identity *identity_current(void);

#endif							/* APIKEY_IDENTITY_H */
