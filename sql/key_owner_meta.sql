-- Owner and meta: whose key it is (the application's id of a person or
-- account) and a JSON object the application keeps with it; verification
-- and the identity return both.  Key texts are random: kept in psql
-- variables, never printed.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('om-acme') > 0 AS created;

-- try(sql): 'ok', or the SQLSTATE and message of the error
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;

SELECT key_id, api_key FROM apikey.create_key('om-acme', 'production', 'Bob''s laptop',
       scopes => '{orders:read}', owner => 'user_42',
       meta => '{"plan": "pro", "seats": 5, "region": null}') \gset
SELECT key_id AS plain_id, api_key AS plain_key FROM apikey.create_key('om-acme', 'production', 'no owner') \gset

-- the listing and verification show them; a key without them has NULLs
SELECT name, owner, meta FROM apikey.key_list WHERE tenant = 'om-acme' ORDER BY name;
SELECT status, owner, meta, meta->>'plan' AS plan FROM apikey.verify(:'api_key');
SELECT status, owner, meta FROM apikey.verify(:'plain_key');
-- returned once the secret is proven, whatever the status; never before
SELECT status, owner, meta->>'plan' AS plan FROM apikey.verify(:'api_key', scope => 'orders:write');
SELECT api_key AS old_text FROM apikey.create_key('om-acme', 'production', 'rolled', owner => 'user_7',
       meta => '{"plan": "free"}') \gset
SELECT apikey.roll_key(key_id) IS NOT NULL AS rolled FROM apikey.key_list WHERE tenant = 'om-acme' AND name = 'rolled';
SELECT status, owner, meta FROM apikey.verify(:'old_text');

-- the identity: current_owner() and current_key_meta(), for the
-- transaction that authenticated only
SELECT apikey.current_owner() AS owner, apikey.current_key_meta() AS meta;
BEGIN;
SELECT status FROM apikey.authenticate(:'api_key');
SELECT apikey.current_owner() AS owner, apikey.current_key_meta() AS meta,
       apikey.current_key_meta()->'seats' AS seats;
SAVEPOINT s;
SELECT status FROM apikey.authenticate(:'plain_key');
SELECT apikey.current_owner() AS owner, apikey.current_key_meta() AS meta;
ROLLBACK TO SAVEPOINT s;
SELECT apikey.current_owner() AS owner_after_rollback_to_savepoint;
COMMIT;
SELECT apikey.current_owner() AS owner_after_commit, apikey.current_key_meta() AS meta_after_commit;
BEGIN;
SELECT status FROM apikey.authenticate(:'api_key');
PREPARE TRANSACTION 'om_prepared';
SELECT apikey.current_owner() AS owner_after_prepare, apikey.current_key_meta() AS meta_after_prepare;
COMMIT PREPARED 'om_prepared';
BEGIN;
SELECT status FROM apikey.authenticate(:'api_key');
ROLLBACK;
SELECT apikey.current_owner() AS owner_after_rollback;
-- a plain SET cannot forge them
SELECT pg_temp.try($$SET apikey.owner = 'user_1'$$) AS set_owner;
SELECT apikey.current_owner() AS owner;

-- editing later: each change is audited with before and after
SELECT apikey.set_key_owner(:'key_id', 'user_43');
SELECT apikey.set_key_meta(:'key_id', '{"plan": "enterprise"}');
SELECT status, owner, meta FROM apikey.verify(:'api_key');
SELECT apikey.set_key_owner(:'key_id', NULL);
SELECT apikey.set_key_meta(:'key_id', NULL);
SELECT status, owner, meta FROM apikey.verify(:'api_key');
SELECT action, details FROM apikey.audit_log
 WHERE key_id = :'key_id' ORDER BY event_id;

-- meta: a JSON object of at most 4096 bytes as text
SELECT octet_length(jsonb_build_object('k', repeat('x', 4096 - 9))::text) AS bytes,
       pg_temp.try(format('SELECT apikey.set_key_meta(%L, %L)', :'plain_id',
                          jsonb_build_object('k', repeat('x', 4096 - 9)))) AS at_the_limit;
SELECT octet_length(jsonb_build_object('k', repeat('x', 4096 - 8))::text) AS bytes,
       pg_temp.try(format('SELECT apikey.set_key_meta(%L, %L)', :'plain_id',
                          jsonb_build_object('k', repeat('x', 4096 - 8)))) AS over_the_limit;
SELECT octet_length(meta::text) AS stored_bytes FROM apikey.key_list WHERE key_id = :'plain_id';

-- bad input: a clear error, nothing written
SELECT count(*) AS keys_before FROM apikey.keys WHERE tenant = 'om-acme' \gset
SELECT stmt, pg_temp.try(stmt) AS result FROM unnest(ARRAY[
	$$SELECT apikey.create_key('om-acme', 'production', 'x', meta => '[1, 2]')$$,
	$$SELECT apikey.create_key('om-acme', 'production', 'x', meta => '"text"')$$,
	$$SELECT apikey.create_key('om-acme', 'production', 'x', meta => 'null')$$,
	$$SELECT apikey.create_key('om-acme', 'production', 'x', meta => '42')$$,
	$$SELECT apikey.create_key('om-acme', 'production', 'x', meta => jsonb_build_object('a', repeat('é', 3000)))$$,
	$$SELECT apikey.create_key('om-acme', 'production', 'x', meta => '{not json}')$$,
	$$SELECT apikey.create_key('om-acme', 'production', 'x', owner => '')$$,
	$$SELECT apikey.create_key('om-acme', 'production', 'x', owner => '   ')$$,
	$$SELECT apikey.create_key('om-acme', 'production', 'x', owner => repeat('o', 201))$$,
	$$SELECT apikey.create_key('om-acme', 'production', 'x', owner => E'user\n42')$$,
	$$SELECT apikey.set_key_owner(NULL, 'user_1')$$,
	$$SELECT apikey.set_key_meta(NULL, '{}')$$,
	$$SELECT apikey.set_key_owner('00000000000', 'user_1')$$,
	$$SELECT apikey.set_key_meta('00000000000', '{}')$$
]) AS stmt;
SELECT count(*) - :keys_before AS keys_written_by_errors FROM apikey.keys WHERE tenant = 'om-acme';
-- an owner of 200 characters, any language, is fine
SELECT key_id AS long_id FROM apikey.create_key('om-acme', 'production', 'x', owner => repeat('ö', 200)) \gset
SELECT length(owner) AS owner_length FROM apikey.key_list WHERE key_id = :'long_id';
