/*
 * delegation.h
 *		The tenant member a transaction acts for (act_for).
 */
#ifndef APIKEY_DELEGATION_H
#define APIKEY_DELEGATION_H

#include "postgres.h"

#include "utils/array.h"

typedef struct Delegation
{
	int64		tenant_id;
	text	   *tenant;
	text	   *actor;			/* the member, recorded as the actor */
	ArrayType  *rights;			/* rights, and the scopes keys may be given */
	ArrayType  *environments;	/* NULL: every environment of the tenant */
} Delegation;

/* The member this transaction acts for, or NULL. */
extern const Delegation *delegation_current(void);


#endif							/* APIKEY_DELEGATION_H */
