-- credits: usage-limited keys.  A valid verification charges cost credits
-- in the caller's transaction; too few left is usage_exceeded, and nothing
-- is charged.  Key texts are random: kept in psql variables, never printed.
\set SHOW_CONTEXT never

-- try(sql): run a statement, answer 'ok' or its SQLSTATE and message
CREATE FUNCTION pg_temp.try(cmd text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE cmd;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

SELECT apikey.create_tenant('cr-a') > 0 AS a;
SELECT api_key AS key_c, key_id AS id_c FROM apikey.create_key('cr-a', 'production', 'metered',
       scopes => '{orders:read}') \gset
SELECT api_key AS key_free, key_id AS id_free FROM apikey.create_key('cr-a', 'production', 'unmetered') \gset

-- without credits a key is unlimited: nothing to show, nothing charged
SELECT status, remaining FROM apikey.verify(:'key_free');
SELECT name, remaining, refill_amount, refill_every FROM apikey.key_list WHERE tenant = 'cr-a' ORDER BY name;

-- with credits, each valid verification charges cost (default 1) and says
-- what is left; the listing shows it too
SELECT apikey.set_credits(:'id_c', 5);
SELECT valid, status, remaining FROM apikey.verify(:'key_c');
SELECT status, remaining FROM apikey.verify(:'key_c', cost => 3);
SELECT name, remaining FROM apikey.key_list WHERE key_id = :'id_c';
-- cost 0 checks without charging (it needs one credit left)
SELECT status, remaining FROM apikey.verify(:'key_c', cost => 0);
-- too few: usage_exceeded, nothing charged, what is left said
SELECT valid, status, remaining FROM apikey.verify(:'key_c', cost => 2);
SELECT status, remaining FROM apikey.verify(:'key_c');
SELECT status, remaining FROM apikey.verify(:'key_c');
SELECT status, remaining FROM apikey.verify(:'key_c', cost => 0);
-- a refused request of another kind is not charged either
SELECT apikey.add_credits(:'id_c', 10) AS after_adding;
SELECT status, remaining FROM apikey.verify(:'key_c', scope => 'orders:write');
SELECT remaining FROM apikey.key_list WHERE key_id = :'id_c';

-- the charge is part of the caller's transaction: a rollback refunds it,
-- and so does rolling back to a savepoint
BEGIN;
SELECT status, remaining FROM apikey.verify(:'key_c');
SELECT status, remaining FROM apikey.verify(:'key_c');
ROLLBACK;
SELECT remaining AS after_rollback FROM apikey.key_list WHERE key_id = :'id_c';
BEGIN;
SELECT status, remaining FROM apikey.verify(:'key_c');
SAVEPOINT s;
SELECT status, remaining FROM apikey.verify(:'key_c', cost => 4);
ROLLBACK TO SAVEPOINT s;
SELECT status, remaining FROM apikey.verify(:'key_c', cost => 0);
COMMIT;
SELECT remaining AS after_commit FROM apikey.key_list WHERE key_id = :'id_c';

-- authenticate charges too; when too few are left it raises SQLSTATE KA402
-- (an HTTP layer answers 402) and leaves no identity
BEGIN;
SELECT status, remaining FROM apikey.authenticate(:'key_c', cost => 2);
SELECT apikey.current_tenant();
COMMIT;
SELECT pg_temp.try(format('SELECT apikey.authenticate(%L, cost => 100)', :'key_c')) AS authenticate;
SELECT apikey.current_tenant() AS no_identity;
SELECT set_config('cr.key', :'key_c', false) IS NOT NULL AS key_in_a_setting;
DO $$
DECLARE
	state text;
	detail text;
BEGIN
	PERFORM apikey.authenticate((SELECT current_setting('cr.key')), cost => 100);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL;
	RAISE NOTICE 'SQLSTATE %: %', state, detail;
END
$$;

-- a read-only transaction (or a hot standby) cannot charge: a clear error,
-- and nothing else is affected; checking (cost 0) works there, and keys
-- without credits verify as always
BEGIN READ ONLY;
SELECT status, remaining FROM apikey.verify(:'key_c', cost => 0);
SELECT status, remaining FROM apikey.verify(:'key_free');
SELECT replace(pg_temp.try(format('SELECT apikey.verify(%L)', :'key_c')), :'id_c', '<c>') AS charge;
COMMIT;

-- credits and rate limits: the limits are checked first; when the credits
-- refuse, the units the limits took are given back.  A limit of 2 per hour
-- and 1 credit: valid, usage_exceeded (no unit kept), then with 5 more
-- credits: valid, and only then rate_limited (nothing charged)
SELECT api_key AS key_both, key_id AS id_both FROM apikey.create_key('cr-a', 'production', 'both') \gset
SELECT apikey.set_rate_limit(:'id_both', 'hourly', 2, '1 hour');
SELECT apikey.set_credits(:'id_both', 1);
SELECT status, remaining FROM apikey.verify(:'key_both');
SELECT status, remaining FROM apikey.verify(:'key_both');
SELECT apikey.add_credits(:'id_both', 5) AS added;
SELECT status, remaining FROM apikey.verify(:'key_both');
SELECT status, remaining, retry_after IS NOT NULL AS retry_after FROM apikey.verify(:'key_both');
SELECT remaining FROM apikey.key_list WHERE key_id = :'id_both';

-- add_credits: more (or, with a negative amount, fewer) on a key with credits
SELECT apikey.add_credits(:'id_c', -1) AS taken_away;
SELECT replace(pg_temp.try(format('SELECT apikey.add_credits(%L, -1000)', :'id_c')), :'id_c', '<c>') AS too_many_taken;
SELECT pg_temp.try(format('SELECT apikey.add_credits(%L, NULL)', :'id_c')) AS null_amount;
SELECT replace(pg_temp.try(format('SELECT apikey.add_credits(%L, 5)', :'id_free')), :'id_free', '<free>') AS unlimited_key;

-- set_credits(key, NULL): unlimited again, nothing charged any more
SELECT apikey.set_credits(:'id_c', NULL);
SELECT status, remaining FROM apikey.verify(:'key_c');
SELECT remaining, refill_amount, refill_every FROM apikey.key_list WHERE key_id = :'id_c';
SELECT count(*) AS credits_rows FROM apikey.credits WHERE key_id = :'id_c';

-- what is not a credit setting
SELECT n AS bad_credits, pg_temp.try(format('SELECT apikey.set_credits(%L, %s)', :'id_c', a)) AS refused
  FROM (VALUES
	('negative', '-1'),
	('negative refill', '10, -5, ''1 day'''),
	('amount without interval', '10, 100'),
	('interval without amount', '10, NULL, ''1 day'''),
	('zero interval', '10, 100, ''0'''),
	('negative interval', '10, 100, ''-1 day'''),
	('unlimited with refill', 'NULL, 100, ''1 day'''),
	('over 100 years', '10, 100, ''101 years''')
  ) AS v(n, a);
SELECT pg_temp.try($$SELECT apikey.set_credits('AAAAAAAAAAA', 1)$$) AS unknown_key;

-- refills are lazy: each refill_every, remaining becomes refill_amount (not
-- more); the first verification (or listing) after the time sees it
SELECT apikey.set_credits(:'id_c', 0, 100, '1 day');
SELECT status, remaining FROM apikey.verify(:'key_c');
SELECT l.remaining, l.refill_amount, l.refill_every,
       c.next_refill_at = c.refill_anchor + interval '1 day' AS next_in_a_day
  FROM apikey.key_list AS l JOIN apikey.credits AS c USING (key_id) WHERE key_id = :'id_c';
-- as if set 3 days and 1 hour ago: three refills were due, the last one
-- counts; the next falls on the schedule (4 days after the anchor)
UPDATE apikey.credits
   SET refill_anchor = refill_anchor - interval '3 days 1 hour',
       next_refill_at = next_refill_at - interval '3 days 1 hour'
 WHERE key_id = :'id_c';
SELECT remaining AS listed_before_any_charge FROM apikey.key_list WHERE key_id = :'id_c';
SELECT status, remaining FROM apikey.verify(:'key_c', cost => 7);
SELECT remaining, next_refill_at = refill_anchor + interval '4 days' AS next_on_schedule,
       refilled_at > refill_anchor + interval '3 days' AS refilled_by_the_charge
  FROM apikey.credits WHERE key_id = :'id_c';
-- add_credits applies a due refill first, then adds
UPDATE apikey.credits SET next_refill_at = now() - interval '1 second' WHERE key_id = :'id_c';
SELECT apikey.add_credits(:'id_c', 5) AS refilled_then_added;

-- the schedule is the calendar's (in UTC): a monthly refill from 31 January
-- falls on the last day of shorter months, and comes back to the 31st
SET TimeZone = 'UTC';
SELECT after, apikey_internal.next_refill('2024-01-31 12:00+00', '1 month', after) AS next_refill
  FROM unnest('{2024-01-31 12:00+00,2024-02-29 11:59+00,2024-02-29 12:00+00,2024-03-31 12:00+00,2025-01-31 13:00+00}'::timestamptz[]) AS after;
SELECT apikey_internal.next_refill('2023-01-31 00:00+00', '1 month', '2023-02-01 00:00+00') AS not_a_leap_year,
       apikey_internal.next_refill('2024-03-30 12:00+00', '1 day', '2024-03-31 12:30+00') AS daily_in_utc,
       apikey_internal.next_refill('2024-01-01 00:00+00', '1 week 1 hour', '2024-01-20 00:00+00') AS mixed;
RESET TimeZone;
SELECT pg_temp.try($$SELECT apikey_internal.next_refill(now(), '0.5 seconds', now())$$) AS too_often;

-- every change is audited
SELECT action, details FROM apikey.audit_log
 WHERE key_id = :'id_c' AND action LIKE 'credits%' ORDER BY event_id;

-- rights: a tenant's own administrator sets credits of the keys its key
-- covers, and only there
CREATE ROLE regress_cr_app;
SELECT apikey.grant_verifier('regress_cr_app');
SELECT api_key AS key_admin FROM apikey.create_key('cr-a', 'production', 'admin',
       scopes => '{apikey:admin,orders:read}') \gset
SELECT key_id AS id_billing FROM apikey.create_key('cr-a', 'production', 'billing', scopes => '{billing:write}') \gset
-- (credits an administrator set are the vendor's, which a tenant
-- administrator may not lift: vendor_controls.sql; these go first)
SELECT apikey.set_credits(:'id_c', NULL);
SET ROLE regress_cr_app;
SELECT pg_temp.try(format('SELECT apikey.set_credits(%L, 1)', :'id_c')) AS no_admin_key;
BEGIN;
SELECT status FROM apikey.authenticate(:'key_admin');
SELECT pg_temp.try(format('SELECT apikey.set_credits(%L, 50, 50, %L)', :'id_c', '1 month')) AS covered_key,
       pg_temp.try(format('SELECT apikey.add_credits(%L, 1)', :'id_c')) AS covered_key_add,
       pg_temp.try(format('SELECT apikey.set_credits(%L, 1)', :'id_billing')) AS scope_not_held;
SELECT name, remaining FROM apikey.key_list WHERE name IN ('metered', 'billing') ORDER BY name;
COMMIT;
RESET ROLE;
DROP OWNED BY regress_cr_app;
DROP ROLE regress_cr_app;

-- a deleted key's credits go with it
SELECT apikey.delete_key(:'id_both');
SELECT count(*) AS credits_of_deleted_key FROM apikey.credits WHERE key_id = :'id_both';
