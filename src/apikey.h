/*
 * apikey.h
 *		Module-wide initialization and shared helpers.
 */
#ifndef APIKEY_APIKEY_H
#define APIKEY_APIKEY_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "postmaster/bgworker.h"

extern void verify_init(void);
extern void identity_init(void);
extern void delegation_init(void);
extern void usage_init(void);
extern void authz_init(void);
extern void events_init(void);
extern void imported_init(void);
extern void subscriber_init(void);
extern void killswitch_init(void);

/*
 * Describe a background worker of apikey's: function is its entry point in
 * this library, type its bgw_type; its name is the type, followed by "for
 * database <oid>" when dbid is valid (then also its bgw_main_arg).  The
 * notification pid and the registration are the caller's.
 */
extern void apikey_worker(BackgroundWorker *worker, const char *function, const char *type,
						  Oid dbid, int flags, BgWorkerStartTime start_time, int restart_time);

/*
 * A background worker's transaction, connected to SPI, with a search_path of
 * pg_catalog only: apikey_worker_xact_begin starts it and returns the GUC
 * nest level that apikey_worker_xact_end needs to commit it.
 */
extern int	apikey_worker_xact_begin(void);
extern void apikey_worker_xact_end(int nestlevel);

/*
 * The current transaction authenticates as a key, for the kill switch
 * (killswitch.c); called by identity.c before the key becomes the identity.
 * Raises when the key or the transaction was terminated.
 */
extern void killswitch_authenticated(uint64 key_id);

/* For the standby's watcher of replayed revocations (replica.c). */
extern int	killswitch_active_databases(Oid *dbids, int max);
extern int	killswitch_listed_keys(Oid dbid, uint64 *keys, int max);
extern int	killswitch_mark_keys(Oid dbid, const uint64 *keys, int nkeys);
extern void replica_init(void);

/* Events (events.c) and their relay, a background worker (relay.c). */
extern char *events_payload(HeapTuple tuple, TupleDesc desc);
extern void events_send(List *payloads);
extern void relay_init(void);
extern void relay_wake(void);

/*
 * While key text is being handled, any message (ours or the server's, such
 * as a cancel) keeps its statement and context out of the server log, since
 * either may hold the key.
 */
extern void key_text_guard_begin(void);
extern void key_text_guard_end(void);

/*
 * Note a verification of a known key (its status, a VerifyStatus), for
 * usage_stats and, when valid, last_used_at (usage.c).
 */
extern void usage_record(uint64 key_id, int64 tenant_id, int status, TimestampTz when);
/* usage.c: the owner of extension apikey in this database (SPI connected) */
extern Oid	apikey_extension_owner(void);

/*
 * May the calling role manage every tenant (it may execute
 * apikey.create_tenant, apikey.grant_admin)?  authz.c
 */
extern bool caller_is_admin(void);

/* Is a scope of the namespace apikey one of the known rights (authz.c)? */
extern bool apikey_right_known(const char *scope, size_t len);

/* A fresh random key id, never zero (keygen.c). */
extern uint64 random_key_id(void);

/* A new private key (keygen.c): its id, text (the only copy), hash and hint. */
typedef struct GeneratedKey
{
	uint64		key_id;
	text	   *api_key;
	bytea	   *key_hash;
	text	   *hint;
} GeneratedKey;
extern void ak_generate_key(const char *prefix, const char *tag, const uint64 *for_key,
							GeneratedKey *out);

/*
 * An internal function of the extension, apikey_internal.name(argtypes), or
 * InvalidOid when it is missing; no privilege on the schema is needed.
 */
extern Oid	apikey_internal_function(const char *name, int nargs, const Oid *argtypes);

/* The blessed result descriptor of a record-returning call site, cached. */
extern TupleDesc call_result_tupdesc(FunctionCallInfo fcinfo);

/* A column of one of apikey's tables by name, from its descriptor; raises when missing. */
extern AttrNumber apikey_column(TupleDesc desc, const char *table, const char *name);

#endif							/* APIKEY_APIKEY_H */
