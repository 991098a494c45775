/*
 * scopes.h
 *		Scopes held in text[] arrays.
 */
#ifndef APIKEY_SCOPES_H
#define APIKEY_SCOPES_H

#include "postgres.h"

#include "utils/array.h"

/* Does any scope in the array cover the wanted one (wildcards included)? */
extern bool scopes_cover(ArrayType *scopes, const char *wanted, size_t wlen);

#endif							/* APIKEY_SCOPES_H */
