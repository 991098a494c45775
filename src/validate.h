/*
 * validate.h
 *		Validation of management input (validate.c), for C callers.
 */
#ifndef APIKEY_VALIDATE_H
#define APIKEY_VALIDATE_H

#include "postgres.h"

#include "fmgr.h"

/*
 * apikey_internal.checked_label(what, value, maxlen, required) -> value, or
 * a clear error
 */
extern PGDLLEXPORT Datum checked_label(PG_FUNCTION_ARGS);

#endif							/* APIKEY_VALIDATE_H */
