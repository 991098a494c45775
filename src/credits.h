/*
 * credits.h
 *		Usage-limited keys: credits charged in the caller's transaction.
 */
#ifndef APIKEY_CREDITS_H
#define APIKEY_CREDITS_H

#include "postgres.h"

#include "datatype/timestamp.h"

typedef enum CreditsOutcome
{
	CREDITS_NONE,				/* the key has no credits (any more): unlimited */
	CREDITS_CHARGED,			/* cost charged (cost 0: at least one left) */
	CREDITS_TOO_FEW				/* fewer than cost left: nothing charged */
} CreditsOutcome;

extern void credits_init(void);

/*
 * Charge cost credits of the key in the current transaction; *remaining is
 * what is left afterwards (or what there is, when too few).
 */
extern CreditsOutcome credits_charge(uint64 key_id, int32 cost, TimestampTz at,
									 int64 *remaining);

#endif							/* APIKEY_CREDITS_H */
