/*
 * subscriber.c
 *		Whether this server is a logical replication subscriber of apikey's
 *		tables: a read copy, where only verification runs.
 *
 * A server whose apikey.keys or apikey.credits is the target of a
 * subscription (a row of pg_subscription_rel) holds the publisher's rows.
 * Nothing but the apply worker may write them there: a local change is
 * overwritten or conflicts (a duplicate key stops the apply worker), and
 * the row locks it holds until its transaction ends hold up the apply
 * worker, and every revocation behind it.  So credits are not charged
 * (credits.c), and a statement trigger on each published table, enabled
 * for local sessions only (the apply worker, in the replica role, never
 * fires it), refuses every other write.
 *
 * Known per backend: looked up once, and again when pg_subscription_rel
 * changes (CREATE, ALTER ... REFRESH and DROP SUBSCRIPTION send syscache
 * invalidations of its rows).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_subscription_rel.h"
#include "commands/trigger.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "apikey.h"
#include "subscriber.h"

typedef enum SubscriberState
{
	SUBSCRIBER_UNKNOWN,
	SUBSCRIBER_NO,
	SUBSCRIBER_YES
} SubscriberState;

static SubscriberState subscriber_state = SUBSCRIBER_UNKNOWN;
static uint64 subscriber_invalidations = 0;

static void
forget_subscriber(Datum arg, int cacheid, uint32 hashvalue)
{
	subscriber_state = SUBSCRIBER_UNKNOWN;
	subscriber_invalidations++;
}

void
subscriber_init(void)
{
	CacheRegisterSyscacheCallback(SUBSCRIPTIONRELMAP, forget_subscriber, (Datum) 0);
}

/* Is apikey.keys or apikey.credits the target of a subscription here? */
bool
subscriber_of_keys(void)
{
	static const char *const tables[] = {"keys", "credits"};
	Oid			nsp;
	Relation	rel;
	bool		found = false;
	uint64		seen = subscriber_invalidations;

	if (subscriber_state != SUBSCRIBER_UNKNOWN)
		return subscriber_state == SUBSCRIBER_YES;
	nsp = get_namespace_oid("apikey", false);
	rel = table_open(SubscriptionRelRelationId, AccessShareLock);
	for (int i = 0; i < (int) lengthof(tables) && !found; i++)
	{
		Oid			relid = get_relname_relid(tables[i], nsp);
		ScanKeyData skey;
		SysScanDesc scan;

		if (!OidIsValid(relid))
			continue;
		ScanKeyInit(&skey, Anum_pg_subscription_rel_srrelid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(relid));
		scan = systable_beginscan(rel, SubscriptionRelSrrelidSrsubidIndexId, true,
								  NULL, 1, &skey);
		found = HeapTupleIsValid(systable_getnext(scan));
		systable_endscan(scan);
	}
	table_close(rel, AccessShareLock);
	/* a change while looking: look again next time */
	if (subscriber_invalidations == seen)
		subscriber_state = found ? SUBSCRIBER_YES : SUBSCRIBER_NO;
	return found;
}

/*
 * apikey_internal.refuse_on_subscriber(): BEFORE INSERT, UPDATE, DELETE or
 * TRUNCATE statement trigger on the published tables, enabled for local
 * sessions only: raises 25006 on a subscriber of apikey's tables.
 */
PG_FUNCTION_INFO_V1(refuse_on_subscriber);
Datum
refuse_on_subscriber(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("apikey_internal.refuse_on_subscriber() is a trigger function")));
	if (subscriber_of_keys())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot change apikey.%s on a logical replication subscriber of apikey's tables",
						RelationGetRelationName(trigdata->tg_relation)),
				 errdetail("This server's keys are the publisher's: a change here would be overwritten or conflict, and would hold up the replication of the publisher's changes while its transaction lasts."),
				 errhint("Manage keys on the publisher.")));
	return PointerGetDatum(NULL);
}
