/*
 * apikey.h
 *		Module-wide initialization.
 */
#ifndef APIKEY_APIKEY_H
#define APIKEY_APIKEY_H

extern void verify_init(void);
extern void identity_init(void);

#endif							/* APIKEY_APIKEY_H */
