-- limits on anything: rate_limit_take on an identifier of a namespace (an
-- IP address, a user, an endpoint), and one budget shared by every key of
-- an owner (set_owner_rate_limit).  Counted in shared memory like key
-- limits (this server preloads apikey).  Key texts are random: kept in psql
-- variables, never printed.
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
-- takes(namespace, identifier, max, per, n, cost): n takes in a row, as
-- allowed/remaining
CREATE FUNCTION pg_temp.takes(ns text, ident text, max integer, per interval, n integer,
		cost integer DEFAULT 1) RETURNS text
	LANGUAGE plpgsql AS $$
DECLARE
	answers text[] := '{}';
	r record;
BEGIN
	FOR i IN 1..n LOOP
		r := apikey.rate_limit_take(ns, ident, max, per, cost);
		answers := answers || (CASE WHEN r.allowed THEN 'yes/' ELSE 'no/' END || r.remaining);
	END LOOP;
	RETURN array_to_string(answers, ' ');
END
$$;
-- attempts(key, n): the statuses of n verifications in a row
CREATE FUNCTION pg_temp.attempts(api_key text, n integer) RETURNS text
	LANGUAGE plpgsql AS $$
DECLARE
	statuses text[] := '{}';
BEGIN
	FOR i IN 1..n LOOP
		statuses := statuses || (SELECT v.status FROM apikey.verify(api_key) AS v);
	END LOOP;
	RETURN array_to_string(statuses, ' ');
END
$$;

-- rate_limit_take: 3 per hour for one address; the fourth is refused, with
-- when it would pass (the window is an hour, counted in 1/31 of it)
SELECT pg_temp.takes('login', '203.0.113.7', 3, '1 hour', 3) AS three;
SELECT allowed, remaining, retry_after > '59 minutes' AND retry_after <= '1 hour 2 minutes' AS retry_within_the_window
  FROM apikey.rate_limit_take('login', '203.0.113.7', 3, '1 hour');
-- another identifier, another namespace, another window: counters of their own
SELECT pg_temp.takes('login', '203.0.113.8', 3, '1 hour', 1) AS other_identifier,
       pg_temp.takes('signup', '203.0.113.7', 3, '1 hour', 1) AS other_namespace,
       pg_temp.takes('login', '203.0.113.7', 3, '1 day', 1) AS other_window;
-- cost: units per request; cost 0 asks whether one more would pass, taking
-- nothing; a cost beyond what is left is refused and takes nothing
SELECT pg_temp.takes('api:search', 'user-42', 10, '1 minute', 2, 0) AS checks,
       pg_temp.takes('api:search', 'user-42', 10, '1 minute', 2, 4) AS cost_4,
       pg_temp.takes('api:search', 'user-42', 10, '1 minute', 1, 3) AS cost_3_of_2_left,
       pg_temp.takes('api:search', 'user-42', 10, '1 minute', 1, 2) AS cost_2,
       pg_temp.takes('api:search', 'user-42', 10, '1 minute', 1, 0) AS check_when_none_left;
-- a cost of the whole limit passes once per window
SELECT pg_temp.takes('export', 'user-42', 5, '1 hour', 2, 5) AS whole_limit;
-- a limit of a second: refused, then admitted again once its window has passed
SELECT pg_temp.takes('burst', 'x', 2, '200 milliseconds', 3) AS burst;
SELECT pg_sleep(0.25);
SELECT pg_temp.takes('burst', 'x', 2, '200 milliseconds', 1) AS after_the_window;

-- what is not a limit: 22004 for NULL, 22023 otherwise, never the identifier
SELECT n AS bad_input, pg_temp.try(format('SELECT apikey.rate_limit_take(%s)', a)) AS refused
  FROM (VALUES
	('null namespace', 'NULL, ''x'', 1, ''1 hour'''),
	('null identifier', '''ns'', NULL, 1, ''1 hour'''),
	('null max', '''ns'', ''x'', NULL, ''1 hour'''),
	('null per', '''ns'', ''x'', 1, NULL'),
	('null cost', '''ns'', ''x'', 1, ''1 hour'', NULL'),
	('empty namespace', ''''', ''x'', 1, ''1 hour'''),
	('uppercase namespace', '''Login'', ''x'', 1, ''1 hour'''),
	('namespace with a space', '''log in'', ''x'', 1, ''1 hour'''),
	('namespace starting with a dot', '''.login'', ''x'', 1, ''1 hour'''),
	('65 characters', '''' || repeat('n', 65) || ''', ''x'', 1, ''1 hour'''),
	('empty identifier', '''ns'', '''', 1, ''1 hour'''),
	('1025 bytes', '''ns'', repeat(''i'', 1025), 1, ''1 hour'''),
	('zero max', '''ns'', ''secret-identifier'', 0, ''1 hour'''),
	('negative max', '''ns'', ''x'', -5, ''1 hour'''),
	('zero per', '''ns'', ''x'', 1, ''0'''),
	('negative per', '''ns'', ''x'', 1, ''-1 hour'''),
	('a microsecond', '''ns'', ''x'', 1, ''1 microsecond'''),
	('a month', '''ns'', ''x'', 1, ''1 month'''),
	('367 days', '''ns'', ''x'', 1, ''367 days'''),
	('days that overflow', '''ns'', ''x'', 1, ''213503983 days'''),
	('negative cost', '''ns'', ''x'', 5, ''1 hour'', -1'),
	('cost above max', '''ns'', ''secret-identifier'', 5, ''1 hour'', 6')
  ) AS v(n, a);
-- the longest namespace and identifier are fine
SELECT allowed FROM apikey.rate_limit_take(repeat('n', 64), repeat('i', 1024), 1, '1 second');

-- owner limits: one budget for every key of one owner of a tenant
SELECT apikey.create_tenant('ol-a') > 0 AS a, apikey.create_tenant('ol-b') > 0 AS b;
SELECT api_key AS alice1, key_id AS id_alice1 FROM apikey.create_key('ol-a', 'production', 'alice 1', owner => 'alice') \gset
SELECT api_key AS alice2, key_id AS id_alice2 FROM apikey.create_key('ol-a', 'preview', 'alice 2', owner => 'alice') \gset
SELECT api_key AS bob1, key_id AS id_bob1 FROM apikey.create_key('ol-a', 'production', 'bob 1', owner => 'bob') \gset
SELECT api_key AS b_alice, key_id AS id_b_alice FROM apikey.create_key('ol-b', 'production', 'b alice', owner => 'alice') \gset
SELECT apikey.set_owner_rate_limit('ol-a', 'alice', 'hourly', 4, '1 hour');
SELECT tenant, name, owner, owner_rate_limits FROM apikey.key_list WHERE tenant LIKE 'ol-%' ORDER BY tenant, name;
-- alice's two keys share 4, in both environments; bob and alice of another
-- tenant are not limited by them
SELECT pg_temp.attempts(:'alice1', 3) AS alice1, pg_temp.attempts(:'alice2', 2) AS alice2,
       pg_temp.attempts(:'bob1', 5) AS bob, pg_temp.attempts(:'b_alice', 5) AS other_tenants_alice;
-- refused like a key's own limit: rate_limited with when to retry, KA429
SELECT status, retry_after > '59 minutes' AND retry_after <= '1 hour 2 minutes' AS retry_within_the_window
  FROM apikey.verify(:'alice1');
SELECT pg_temp.try(format('SELECT apikey.authenticate(%L)', :'alice2')) AS authenticate;
-- a key created for alice later shares the same budget
SELECT api_key AS alice3, key_id AS id_alice3 FROM apikey.create_key('ol-a', 'production', 'alice 3', owner => 'alice') \gset
SELECT owner_rate_limits FROM apikey.key_list WHERE key_id = :'id_alice3';
SELECT pg_temp.attempts(:'alice3', 1) AS alice3;
-- a key given to bob leaves alice's budget; given back, it is in it again
SELECT apikey.set_key_owner(:'id_alice3', 'bob');
SELECT owner_rate_limits IS NULL AS no_owner_limits FROM apikey.key_list WHERE key_id = :'id_alice3';
SELECT pg_temp.attempts(:'alice3', 1) AS as_bobs;
SELECT apikey.set_key_owner(:'id_alice3', 'alice');
SELECT pg_temp.attempts(:'alice3', 1) AS as_alices_again;
SELECT apikey.set_key_owner(:'id_alice3', NULL);
SELECT owner_rate_limits IS NULL AS no_owner_no_limits FROM apikey.key_list WHERE key_id = :'id_alice3';
-- an owner's limit and a key's own: a request passes both or takes from none
SELECT apikey.set_owner_rate_limit('ol-a', 'bob', 'hourly', 3, '1 hour');
SELECT apikey.set_rate_limit(:'id_bob1', 'own', 1, '1 hour');
SELECT api_key AS bob2 FROM apikey.create_key('ol-a', 'production', 'bob 2', owner => 'bob') \gset
SELECT pg_temp.attempts(:'bob1', 2) AS bob1, pg_temp.attempts(:'bob2', 3) AS bob2_gets_the_rest;
-- several limits of an owner, sorted by name; removing one updates every key
SELECT apikey.set_owner_rate_limit('ol-a', 'alice', 'daily', 100, '1 day');
SELECT name, owner_rate_limits FROM apikey.key_list WHERE tenant = 'ol-a' AND owner = 'alice' ORDER BY name;
SELECT apikey.remove_owner_rate_limit('ol-a', 'alice', 'hourly');
SELECT pg_temp.attempts(:'alice1', 2) AS alice_under_the_daily_limit;
SELECT apikey.remove_owner_rate_limit('ol-a', 'alice', 'daily');
SELECT name, owner_rate_limits IS NULL AS none_left FROM apikey.key_list WHERE tenant = 'ol-a' AND owner = 'alice' ORDER BY name;
-- an owner without keys may have limits: its next key gets them
SELECT apikey.set_owner_rate_limit('ol-a', 'carol', 'hourly', 2, '1 hour');
SELECT key_id AS id_carol FROM apikey.create_key('ol-a', 'production', 'carol 1', owner => 'carol') \gset
SELECT owner_rate_limits FROM apikey.key_list WHERE key_id = :'id_carol';

-- what is not an owner limit
SELECT n AS bad_owner_limit, pg_temp.try(format('SELECT apikey.set_owner_rate_limit(%s)', a)) AS refused
  FROM (VALUES
	('null tenant', 'NULL, ''alice'', ''x'', 1, ''1 hour'''),
	('unknown tenant', '''ol-nosuch'', ''alice'', ''x'', 1, ''1 hour'''),
	('null owner', '''ol-a'', NULL, ''x'', 1, ''1 hour'''),
	('empty owner', '''ol-a'', '''', ''x'', 1, ''1 hour'''),
	('201 characters', '''ol-a'', repeat(''o'', 201), ''x'', 1, ''1 hour'''),
	('control character', '''ol-a'', E''al\nice'', ''x'', 1, ''1 hour'''),
	('null name', '''ol-a'', ''alice'', NULL, 1, ''1 hour'''),
	('uppercase name', '''ol-a'', ''alice'', ''Hourly'', 1, ''1 hour'''),
	('zero max', '''ol-a'', ''alice'', ''x'', 0, ''1 hour'''),
	('null per', '''ol-a'', ''alice'', ''x'', 1, NULL'),
	('zero per', '''ol-a'', ''alice'', ''x'', 1, ''0'''),
	('a month', '''ol-a'', ''alice'', ''x'', 1, ''1 month'''),
	('days that overflow', '''ol-a'', ''alice'', ''x'', 1, ''213503983 days''')
  ) AS v(n, a);
SELECT pg_temp.try(format('SELECT apikey.set_owner_rate_limit(%L, %L, %L, 1, %L)', 'ol-a', 'dave', 'l' || i, '1 hour')) AS ninth
  FROM generate_series(1, 9) i;
SELECT n AS bad_removal, pg_temp.try(format('SELECT apikey.remove_owner_rate_limit(%s)', a)) AS refused
  FROM (VALUES
	('null owner', '''ol-a'', NULL, ''hourly'''),
	('null name', '''ol-a'', ''bob'', NULL'),
	('unknown name', '''ol-a'', ''bob'', ''nosuch'''),
	('unknown owner', '''ol-a'', ''nobody'', ''hourly'''),
	('unknown tenant', '''ol-nosuch'', ''bob'', ''hourly''')
  ) AS v(n, a);

-- every change is audited, with what it was and what it became
SELECT action, details
  FROM apikey.audit_log WHERE tenant = 'ol-a' AND action LIKE 'owner_rate_limit%'
   AND details->>'owner' IN ('alice', 'bob')
 ORDER BY event_id;

-- rights: the application's role (grant_verifier) takes from its tenant's
-- namespaces once a key is authenticated, and sets owner limits as a
-- tenant administrator, for its own tenant and the keys its key covers
CREATE ROLE regress_ol_app;
SELECT apikey.grant_verifier('regress_ol_app');
SELECT api_key AS admin_a FROM apikey.create_key('ol-a', 'production', 'admin',
       scopes => '{apikey:admin,orders:read}') \gset
SELECT api_key AS plain_b FROM apikey.create_key('ol-b', 'production', 'plain b') \gset
SELECT key_id AS id_erin FROM apikey.create_key('ol-a', 'production', 'erin billing', owner => 'erin',
       scopes => '{billing:write}') \gset
SELECT apikey.set_owner_rate_limit('ol-a', 'frank', 'vendor', 10, '1 hour');
SET ROLE regress_ol_app;
SELECT pg_temp.try($$SELECT apikey.rate_limit_take('login', 'x', 1, '1 hour')$$) AS take_without_identity,
       pg_temp.try($$SELECT apikey.set_owner_rate_limit('ol-a', 'alice', 'x', 1, '1 hour')$$) AS set_without_identity;
BEGIN;
SELECT status FROM apikey.authenticate(:'plain_b');
-- ol-b's "login" namespace is not the global one, nor ol-a's
SELECT pg_temp.takes('login', '203.0.113.7', 2, '1 hour', 3) AS ol_b_login;
SELECT pg_temp.try($$SELECT apikey.set_owner_rate_limit('ol-b', 'alice', 'x', 1, '1 hour')$$) AS not_an_admin_key;
COMMIT;
BEGIN;
SELECT status FROM apikey.authenticate(:'admin_a');
SELECT pg_temp.takes('login', '203.0.113.7', 2, '1 hour', 1) AS ol_a_login;
SELECT pg_temp.try($$SELECT apikey.set_owner_rate_limit('ol-a', 'bob', 'by_tenant', 50, '1 hour')$$) AS own_tenant,
       pg_temp.try($$SELECT apikey.remove_owner_rate_limit('ol-a', 'bob', 'by_tenant')$$) AS own_tenant_remove,
       pg_temp.try($$SELECT apikey.set_owner_rate_limit('ol-a', 'alice', 'x', 1, '1 hour')$$) AS a_key_in_preview,
       pg_temp.try($$SELECT apikey.set_owner_rate_limit('ol-b', 'alice', 'x', 1, '1 hour')$$) AS other_tenant,
       pg_temp.try($$SELECT apikey.set_owner_rate_limit('ol-a', 'erin', 'x', 1, '1 hour')$$) AS key_not_covered,
       pg_temp.try($$SELECT apikey.set_owner_rate_limit('ol-a', 'frank', 'vendor', 100, '1 hour')$$) AS vendor_limit_change,
       pg_temp.try($$SELECT apikey.remove_owner_rate_limit('ol-a', 'frank', 'vendor')$$) AS vendor_limit_remove,
       pg_temp.try($$SELECT apikey.set_owner_rate_limit('ol-a', 'frank', 'own', 5, '1 hour')$$) AS beside_the_vendors;
SELECT actor_key_id IS NOT NULL AS by_a_key, details->>'name' AS name
  FROM apikey.audit_log WHERE action LIKE 'owner_rate_limit%' AND details->>'owner' IN ('bob', 'frank')
   AND actor_key_id IS NOT NULL ORDER BY event_id;
COMMIT;
RESET ROLE;
-- the global namespace of administrators is neither tenant's: its login
-- counter for 203.0.113.7 was used up at the start
SELECT pg_temp.takes('login', '203.0.113.7', 3, '1 hour', 1) AS global_login;
DROP OWNED BY regress_ol_app;
DROP ROLE regress_ol_app;
