/*
 * apikey.c
 *		Module entry point: settings and callbacks.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "apikey.h"
#include "verify.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomStringVariable("apikey.environment",
							   "Environment that verify() and authenticate() require when none is given.",
							   "Empty means any environment.",
							   &apikey_default_environment,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);
	MarkGUCPrefixReserved("apikey");

	verify_init();
	identity_init();
}
