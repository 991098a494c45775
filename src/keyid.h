/*
 * keyid.h
 *		The apikey.key_id type: a key's public 64-bit handle.
 */
#ifndef APIKEY_KEYID_H
#define APIKEY_KEYID_H

#include "postgres.h"

/* Stored as an unsigned 64-bit integer, passed by value. */
#define DatumGetKeyId(d)	((uint64) DatumGetInt64(d))
#define KeyIdGetDatum(v)	Int64GetDatum((int64) (v))
#define PG_GETARG_KEYID(n)	DatumGetKeyId(PG_GETARG_DATUM(n))
#define PG_RETURN_KEYID(v)	return KeyIdGetDatum(v)

#endif							/* APIKEY_KEYID_H */
