/*
 * apikey.h
 *		Module-wide initialization.
 */
#ifndef APIKEY_APIKEY_H
#define APIKEY_APIKEY_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "fmgr.h"

extern void verify_init(void);
extern void identity_init(void);

/* The blessed result descriptor of a record-returning call site, cached. */
extern TupleDesc call_result_tupdesc(FunctionCallInfo fcinfo);

#endif							/* APIKEY_APIKEY_H */
