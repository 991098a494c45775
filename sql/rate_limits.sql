-- rate limits: at most max_requests units per interval, for a key and for
-- all of a tenant's keys together, counted in shared memory (this server
-- preloads apikey).  Key texts are random: kept in psql variables, never
-- printed.
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
-- attempts(key, n, cost): the statuses of n verifications in a row
CREATE FUNCTION pg_temp.attempts(api_key text, n integer, cost integer DEFAULT 1) RETURNS text
	LANGUAGE plpgsql AS $$
DECLARE
	statuses text[] := '{}';
BEGIN
	FOR i IN 1..n LOOP
		statuses := statuses || (SELECT v.status FROM apikey.verify(api_key, cost => cost) AS v);
	END LOOP;
	RETURN array_to_string(statuses, ' ');
END
$$;

SELECT apikey.create_tenant('rl-a') > 0 AS a, apikey.create_tenant('rl-b') > 0 AS b;
SELECT api_key AS key_a, key_id AS id_a FROM apikey.create_key('rl-a', 'production', 'limited',
       scopes => '{orders:read}') \gset
SELECT api_key AS key_other, key_id AS id_other FROM apikey.create_key('rl-a', 'production', 'other') \gset

-- several named limits per key, listed by name; a key without limits has none
SELECT apikey.set_rate_limit(:'id_a', 'daily', 5, '1 day');
SELECT apikey.set_rate_limit(:'id_a', 'burst', 3, '1 hour');
SELECT name, rate_limits, tenant_rate_limits FROM apikey.key_list WHERE tenant = 'rl-a' ORDER BY name;
-- the same as a person reads them (NULL: none)
SELECT name, rate_limit_summary, tenant_rate_limit_summary FROM apikey.key_list WHERE tenant = 'rl-a' ORDER BY name;
-- each period in the largest unit it is a whole number of, whatever the
-- session's IntervalStyle
SET IntervalStyle = iso_8601;
SELECT apikey_internal.rate_limit_summary(ARRAY[
         ('days', 1, '2 days'), ('hours', 2, '36 hours'), ('minutes', 3, '90 seconds'),
         ('seconds', 4, '1 day 1 second'), ('ms', 5, '1.5 seconds'),
         ('fraction', 6, '0.0015 seconds')]::apikey.rate_limit[]) AS summary,
       apikey_internal.rate_limit_summary('{}') AS no_limits;
RESET IntervalStyle;

-- three pass the burst limit, the fourth is refused: valid false, the key's
-- fields (its secret was proven), and when it would pass (the window is an
-- hour, counted in sub-windows of 1/31 of it)
SELECT pg_temp.attempts(:'key_a', 3) AS first_three;
SELECT valid, status, key_id = :'id_a' AS same_key, tenant, scopes,
       retry_after > '59 minutes' AND retry_after <= '1 hour 2 minutes' AS retry_within_the_window
  FROM apikey.verify(:'key_a');
-- only a valid request counts: a wrong scope is refused before the limits
SELECT status FROM apikey.verify(:'key_a', scope => 'orders:write');
-- another key has buckets of its own
SELECT pg_temp.attempts(:'key_other', 4) AS other_key;

-- a refused request took nothing from the other limit: with the burst
-- limit gone, the daily one has 2 of its 5 left
SELECT apikey.remove_rate_limit(:'id_a', 'burst');
SELECT pg_temp.attempts(:'key_a', 3) AS daily_left;
SELECT rate_limits FROM apikey.key_list WHERE key_id = :'id_a';

-- cost: units per request.  cost 0 asks whether one more unit would pass,
-- taking nothing; a cost above the limit itself can never pass (no
-- retry_after)
SELECT api_key AS key_c, key_id AS id_c FROM apikey.create_key('rl-a', 'production', 'costly') \gset
SELECT apikey.set_rate_limit(:'id_c', 'units', 10, '1 hour');
SELECT pg_temp.attempts(:'key_c', 3, 0) AS checks;
SELECT pg_temp.attempts(:'key_c', 3, 4) AS cost_4;
SELECT status, retry_after IS NOT NULL AS has_retry_after FROM apikey.verify(:'key_c', cost => 3);
SELECT pg_temp.attempts(:'key_c', 2, 2) AS cost_2;
SELECT status, retry_after IS NOT NULL AS has_retry_after FROM apikey.verify(:'key_c', cost => 0);
SELECT status, retry_after IS NULL AS never FROM apikey.verify(:'key_c', cost => 11);
-- a limit raised keeps what it counted: 10 of 12 taken
SELECT apikey.set_rate_limit(:'id_c', 'units', 12, '1 hour');
SELECT pg_temp.attempts(:'key_c', 3) AS raised;
-- a limit whose interval changes keeps what it counted too (never less)
SELECT apikey.set_rate_limit(:'id_c', 'units', 12, '2 hours');
SELECT pg_temp.attempts(:'key_c', 1) AS longer_interval;

-- a tenant's limit is one budget shared by all its keys, those created
-- before it and after it; changing it updates every key
SELECT api_key AS key_b1, key_id AS id_b1 FROM apikey.create_key('rl-b', 'production', 'b1') \gset
SELECT apikey.set_tenant_rate_limit('rl-b', 'shared', 4, '1 hour');
SELECT api_key AS key_b2, key_id AS id_b2 FROM apikey.create_key('rl-b', 'preview', 'b2') \gset
SELECT name, rate_limits, tenant_rate_limits FROM apikey.key_list WHERE tenant = 'rl-b' ORDER BY name;
SELECT tenant, environments, rate_limits FROM apikey.tenant_list WHERE tenant LIKE 'rl-%' ORDER BY tenant;
SELECT name, rate_limit_summary, tenant_rate_limit_summary FROM apikey.key_list WHERE tenant = 'rl-b' ORDER BY name;
SELECT tenant, rate_limit_summary FROM apikey.tenant_list WHERE tenant LIKE 'rl-%' ORDER BY tenant;
SELECT pg_temp.attempts(:'key_b1', 2) AS b1, pg_temp.attempts(:'key_b2', 3) AS b2,
       pg_temp.attempts(:'key_b1', 1) AS b1_again;
-- a key limit and the tenant's: the request passes both or takes from none
SELECT api_key AS key_b3, key_id AS id_b3 FROM apikey.create_key('rl-b', 'production', 'b3') \gset
SELECT apikey.set_tenant_rate_limit('rl-b', 'shared', 6, '1 hour');
SELECT apikey.set_rate_limit(:'id_b3', 'own', 1, '1 hour');
SELECT pg_temp.attempts(:'key_b3', 3) AS b3, pg_temp.attempts(:'key_b1', 2) AS b1_gets_the_rest;
SELECT apikey.remove_tenant_rate_limit('rl-b', 'shared');
SELECT name, tenant_rate_limits FROM apikey.key_list WHERE tenant = 'rl-b' ORDER BY name;
SELECT pg_temp.attempts(:'key_b1', 2) AS unlimited_again;
SELECT tenant_rate_limits FROM apikey.create_key('rl-b', 'production', 'b4') AS k
  JOIN apikey.key_list USING (key_id);

-- authenticate refuses with SQLSTATE KA429 (an HTTP layer answers 429 with
-- Retry-After from the detail) and leaves no identity
SELECT pg_temp.try(format('SELECT apikey.authenticate(%L)', :'key_a')) AS authenticate;
SELECT apikey.current_tenant() AS no_identity;
SELECT set_config('rl.key', :'key_a', false) IS NOT NULL AS key_in_a_setting;
DO $$
DECLARE
	state text;
	detail text;
BEGIN
	PERFORM apikey.authenticate((SELECT current_setting('rl.key')));
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL;
	RAISE NOTICE 'SQLSTATE %, retry after a day: %', state,
		(regexp_match(detail, 'retry after ([0-9]+) seconds'))[1]::integer BETWEEN 86400 AND 89200;
END
$$;

-- what is not a limit
SELECT n AS bad_limit, pg_temp.try(format('SELECT apikey.set_rate_limit(%L, %s)', :'id_other', a)) AS refused
  FROM (VALUES
	('null name', 'NULL, 1, ''1 hour'''),
	('empty name', ''''', 1, ''1 hour'''),
	('uppercase', '''Burst'', 1, ''1 hour'''),
	('33 characters', '''' || repeat('x', 33) || ''', 1, ''1 hour'''),
	('null max', '''x'', NULL, ''1 hour'''),
	('zero max', '''x'', 0, ''1 hour'''),
	('null per', '''x'', 1, NULL'),
	('zero per', '''x'', 1, ''0'''),
	('negative per', '''x'', 1, ''-1 hour'''),
	('a month', '''x'', 1, ''1 month'''),
	('367 days', '''x'', 1, ''367 days''')
  ) AS v(n, a);
SELECT replace(pg_temp.try(format('SELECT apikey.set_rate_limit(%L, %L, 1, %L)', :'id_other', 'l' || i, '1 hour')),
               :'id_other', '<other>') AS ninth
  FROM generate_series(1, 9) i;
SELECT replace(pg_temp.try(format('SELECT apikey.remove_rate_limit(%L, %L)', :'id_other', 'nosuch')),
               :'id_other', '<other>') AS remove_unknown;
SELECT pg_temp.try($$SELECT apikey.set_rate_limit('AAAAAAAAAAA', 'x', 1, '1 hour')$$) AS unknown_key;
SELECT pg_temp.try($$SELECT apikey.set_tenant_rate_limit('rl-nosuch', 'x', 1, '1 hour')$$) AS unknown_tenant;
SELECT pg_temp.try($$SELECT apikey.remove_tenant_rate_limit('rl-b', 'shared')$$) AS remove_unknown_tenant_limit;

-- every change is audited, with what it was and what it became
SELECT action, key_id = :'id_a' AS key_a, details
  FROM apikey.audit_log WHERE tenant IN ('rl-a', 'rl-b') AND action LIKE '%rate_limit%'
   AND (key_id IS NULL OR key_id IN (:'id_a', :'id_c'))
 ORDER BY event_id;

-- rights: a tenant's own administrator sets limits on the keys its key
-- covers, and only there; the tenant's budget is for full administrators
CREATE ROLE regress_rl_app;
SELECT apikey.grant_verifier('regress_rl_app');
SELECT api_key AS key_admin FROM apikey.create_key('rl-a', 'production', 'admin',
       scopes => '{apikey:admin,orders:read}') \gset
SELECT api_key AS key_billing, key_id AS id_billing FROM apikey.create_key('rl-a', 'production', 'billing',
       scopes => '{billing:write}') \gset
SELECT api_key AS key_b_admin FROM apikey.create_key('rl-b', 'production', 'b admin',
       scopes => '{apikey:admin,*}') \gset
SET ROLE regress_rl_app;
SELECT pg_temp.try(format('SELECT apikey.set_rate_limit(%L, %L, 1, %L)', :'id_a', 'x', '1 hour')) AS no_admin_key;
BEGIN;
SELECT status FROM apikey.authenticate(:'key_admin');
SELECT pg_temp.try(format('SELECT apikey.set_rate_limit(%L, %L, 100, %L)', :'id_a', 'by_admin', '1 minute')) AS covered_key,
       pg_temp.try(format('SELECT apikey.remove_rate_limit(%L, %L)', :'id_a', 'by_admin')) AS covered_key_remove,
       pg_temp.try(format('SELECT apikey.set_rate_limit(%L, %L, 100, %L)', :'id_billing', 'x', '1 minute')) AS scope_not_held,
       replace(pg_temp.try(format('SELECT apikey.set_rate_limit(%L, %L, 100, %L)', :'id_b1', 'x', '1 minute')),
               :'id_b1', '<b1>') AS other_tenant,
       pg_temp.try($$SELECT apikey.set_tenant_rate_limit('rl-a', 'x', 100, '1 minute')$$) AS tenant_budget;
SELECT tenant, rate_limits FROM apikey.tenant_list;
COMMIT;
BEGIN;
SELECT status FROM apikey.authenticate(:'key_b_admin');
SELECT pg_temp.try($$SELECT apikey.set_tenant_rate_limit('rl-b', 'x', 100, '1 minute')$$) AS own_tenant_budget,
       pg_temp.try($$SELECT apikey.remove_tenant_rate_limit('rl-b', 'x')$$) AS own_tenant_budget_remove;
COMMIT;
SELECT count(*) AS tenants_listed_without_admin_key FROM apikey.tenant_list;
RESET ROLE;
-- a full administrator acting as a tenant's key is that tenant's
-- administrator, no more
BEGIN;
SELECT status FROM apikey.authenticate(:'key_b_admin');
SELECT pg_temp.try($$SELECT apikey.set_tenant_rate_limit('rl-b', 'x', 100, '1 minute')$$) AS as_tenant_admin;
ROLLBACK;
DROP OWNED BY regress_rl_app;
DROP ROLE regress_rl_app;

-- the buckets of this server
SELECT preloaded, capacity, in_use > 0 AS some_in_use, refused_full FROM apikey.rate_limit_status();
