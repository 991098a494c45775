/*
 * xactstack.h
 *		A value that lives like SET LOCAL: set for the current transaction,
 *		ended with it (commit, rollback or prepare), and restored to what it
 *		was when a savepoint set after it is rolled back.
 *
 * The values form a stack, one entry per subtransaction that set one, kept in
 * TopMemoryContext.  A module embeds XactStackEntry as the first member of
 * its entry type, holds an XactStack and calls xactstack_register() once
 * before its first xactstack_set().
 */
#ifndef APIKEY_XACTSTACK_H
#define APIKEY_XACTSTACK_H

#include "postgres.h"

typedef struct XactStackEntry
{
	struct XactStackEntry *outer;	/* the value in force before this one */
	SubTransactionId subid;		/* subtransaction that set it */
} XactStackEntry;

typedef struct XactStack
{
	XactStackEntry *top;		/* the value in force; NULL when none */
	Size		entry_size;		/* of the module's entry type */
	/* frees what an entry points to (not the entry itself) */
	void		(*clear) (XactStackEntry *entry);
} XactStack;

/* Ends the values with their (sub)transactions from now on. */
extern void xactstack_register(XactStack *stack);

/*
 * The entry to fill with the current subtransaction's value: the top one,
 * cleared, when this subtransaction set it already (memory stays bounded
 * however often a transaction sets it), else a new zeroed one pushed on it.
 */
extern XactStackEntry *xactstack_set(XactStack *stack);

#endif							/* APIKEY_XACTSTACK_H */
