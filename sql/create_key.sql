-- create_key makes a plain key in C (createkey.c) and every other key with
-- apikey_internal.create_key_full, the PL/pgSQL function: the two must not
-- drift.  Each case below runs through both with the same arguments and
-- compares what each leaves behind (the key's row, its audit event and the
-- event queued for the relay) and what each returns, or its error
-- (SQLSTATE and message).
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('ck') > 0 AS created;
SELECT apikey.create_tenant('ck-policy', default_key_lifetime => '30 days',
                            max_key_lifetime => '90 days') > 0 AS created;
SELECT apikey.set_tenant_rate_limit('ck', 'budget', 100, '1 hour');

-- the arguments of each case, all twelve (tenant, environment, name,
-- description, scopes, expires_in, resource, owner, meta, key_roles,
-- resources, allowed_ips)
CREATE TABLE pg_temp.cases (n int, args text);
INSERT INTO pg_temp.cases VALUES
	-- plain keys
	(1, $$'ck', 'production', 'plain', NULL, '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(2, $$'ck', 'preview', 'described', 'what it is for', '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(3, $$'ck', 'production', 'scoped', NULL, '{orders:write,orders:read,orders:read,*}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(4, $$'ck', 'production', 'resource', NULL, '{}', NULL, 'collection:42', NULL, NULL, '{}', NULL, NULL$$),
	(5, $$'ck', 'production', 'expiring', NULL, '{}', '2 days', NULL, NULL, NULL, '{}', NULL, NULL$$),
	(6, $$'ck-policy', 'production', 'by policy', NULL, '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(7, $$'ck-policy', 'production', 'shorter', NULL, '{}', '1 hour', NULL, NULL, NULL, '{}', NULL, NULL$$),
	(8, $$'ck', 'production', E'quote " backslash \\ tab-free \u00e9', NULL, '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	-- bad input, argument by argument
	(20, $$NULL, 'production', 'x', NULL, '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(21, $$'nobody', 'production', 'x', NULL, '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(22, $$'ck', NULL, 'x', NULL, '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(23, $$'ck', 'staging', 'x', NULL, '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(24, $$'ck', 'production', NULL, NULL, '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(25, $$'ck', 'production', repeat('n', 201), NULL, '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(26, $$'ck', 'production', 'x', repeat('d', 1001), '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(27, $$'ck', 'production', 'x', NULL, NULL, NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(28, $$'ck', 'production', 'x', NULL, '{"orders read"}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(29, $$'ck', 'production', 'x', NULL, '{}', '-1 day', NULL, NULL, NULL, '{}', NULL, NULL$$),
	(30, $$'ck-policy', 'production', 'x', NULL, '{}', '1 year', NULL, NULL, NULL, '{}', NULL, NULL$$),
	(31, $$'ck', 'production', 'x', NULL, '{}', NULL, 'collection:', NULL, NULL, '{}', NULL, NULL$$),
	(32, $$'ck', 'production', 'x', NULL, '{}', NULL, NULL, NULL, NULL, NULL, NULL, NULL$$),
	(33, $$'ck', 'production', E'tab\there', NULL, '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$),
	(34, $$'ck', 'pr0duction', 'x', NULL, '{}', NULL, NULL, NULL, NULL, '{}', NULL, NULL$$);

-- one key by fn; what it returned and left behind, its id, hash, the
-- random part of its hint and its times left out
CREATE FUNCTION pg_temp.made(fn text, args text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	r record;
	k jsonb;
	e jsonb;
	q boolean;
BEGIN
	EXECUTE format('SELECT * FROM %s(%s)', fn, args) INTO r;
	SELECT to_jsonb(x) - 'key_id' - 'key_hash' - 'hint' - 'created_at' - 'expires_at'
	       || jsonb_build_object(
	            'expires_in', x.expires_at - now(),
	            'hint', regexp_replace(x.hint, '[0-9A-Za-z]{4}$', '<4>'),
	            'returned', x.hint = r.hint AND x.expires_at IS NOT DISTINCT FROM r.expires_at
	                        AND x.key_hash = sha256(convert_to(r.api_key, 'UTF8'))
	                        AND (SELECT key_id FROM apikey.verify(r.api_key)) = r.key_id)
	  INTO k FROM apikey.keys AS x WHERE x.key_id = r.key_id;
	SELECT to_jsonb(a) - 'event_id' - 'at' - 'key_id' - 'details'
	       || jsonb_build_object(
	            'details', a.details - 'expires_at',
	            'details_expires_at', (a.details->>'expires_at')::timestamptz - now(),
	            'at', a.at = now())
	  INTO e FROM apikey.audit AS a WHERE a.key_id = r.key_id;
	SELECT EXISTS (SELECT FROM apikey.event_queue AS eq JOIN apikey.audit AS a USING (event_id)
	                WHERE a.key_id = r.key_id) INTO q;
	RETURN jsonb_build_object('key', k, 'audit', e, 'queued', q);
EXCEPTION WHEN OTHERS THEN
	RETURN jsonb_build_object('error', SQLSTATE || ' ' || SQLERRM);
END
$$;

BEGIN;
SELECT apikey.set_actor('carol@ck.example');
CREATE TEMP TABLE results AS
SELECT n, pg_temp.made('apikey.create_key', args) AS c,
          pg_temp.made('apikey_internal.create_key_full', args) AS plpgsql
  FROM pg_temp.cases;
-- the same through both
SELECT n, c = plpgsql AS same FROM results ORDER BY n;
-- and what that is (tenant ids left out: they depend on the files before)
SELECT n, jsonb_pretty(c #- '{key,tenant_id}' #- '{audit,tenant_id}') FROM results WHERE n IN (1, 3, 5, 6) ORDER BY n;
SELECT n, c->>'error' AS error FROM results WHERE n >= 20 ORDER BY n;
-- the key's creator without an actor: the calling role
SELECT apikey.set_actor(NULL);
SELECT c->'key'->>'created_by' AS created_by, c->'audit'->>'actor_role' AS actor_role,
       c->'audit'->'actor' AS actor, c = plpgsql AS same
  FROM (SELECT pg_temp.made('apikey.create_key', args) AS c,
               pg_temp.made('apikey_internal.create_key_full', args) AS plpgsql
          FROM pg_temp.cases WHERE n = 1) AS x;
ROLLBACK;

-- an extension created anew in the same session: the C path prepares its
-- statement again (the type apikey.key_id is another); in a database of
-- its own
\set here :DBNAME
CREATE DATABASE apikey_create_key;
\c apikey_create_key
\set SHOW_CONTEXT never
CREATE EXTENSION apikey CASCADE;
SELECT apikey.create_tenant('ck') > 0 AS created;
SELECT count(*) AS made FROM apikey.create_key('ck', 'production', 'before');
DROP EXTENSION apikey;
CREATE EXTENSION apikey;
SELECT apikey.create_tenant('ck') > 0 AS created;
SELECT count(*) AS made FROM apikey.create_key('ck', 'production', 'after');
\c :here
DROP DATABASE apikey_create_key;

-- A unique index of the user's on the key table is not a key id drawn
-- twice: a second key that it refuses is an error (23505), through C and
-- through create_key_full alike, instead of drawing key ids for ever (the
-- statement timeout turns such a loop into a failure here)
SET statement_timeout = '20s';
SELECT apikey.create_tenant('ck-unique') > 0 AS created;
CREATE UNIQUE INDEX keys_one_name ON apikey.keys (tenant_id, name) WHERE tenant = 'ck-unique';
SELECT count(*) AS made FROM apikey.create_key('ck-unique', 'production', 'only once');
\set VERBOSITY sqlstate
SELECT count(*) AS made FROM apikey.create_key('ck-unique', 'production', 'only once');
SELECT count(*) AS made FROM apikey.create_key('ck-unique', 'production', 'only once', owner => 'someone');
\set VERBOSITY default
SELECT count(*) AS keys_named_once FROM apikey.keys WHERE name = 'only once';
DROP INDEX apikey.keys_one_name;
RESET statement_timeout;
