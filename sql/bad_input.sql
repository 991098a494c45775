-- Bad input: every mistake gets a clear error with a proper SQLSTATE (or,
-- for verify, a status); never an internal error, never a half-written key.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('bad') > 0 AS created;
SELECT key_id, api_key FROM apikey.create_key('bad', 'production', 'k') \gset

-- <key> in a statement stands for the real key above, so that validation
-- is reached rather than "does not exist"; its random id is shown as <key>
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	k constant text := current_setting('bad.key_id');
BEGIN
	EXECUTE replace(stmt, '<key>', k);
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || replace(SQLERRM, k, '<key>');
END
$$;
SELECT set_config('bad.key_id', :'key_id', false) IS NOT NULL AS key_id_set;

SELECT stmt, pg_temp.try(stmt) AS result FROM unnest(ARRAY[
	-- NULLs
	$$SELECT apikey.create_tenant(NULL)$$,
	$$SELECT apikey.create_tenant('bad-x', environments => NULL)$$,
	$$SELECT apikey.create_environment(NULL, 'staging', 'stg')$$,
	$$SELECT apikey.create_environment('bad', NULL, 'stg')$$,
	$$SELECT apikey.create_key(NULL, 'production', 'x')$$,
	$$SELECT apikey.create_key('bad', NULL, 'x')$$,
	$$SELECT apikey.create_key('bad', 'production', NULL)$$,
	$$SELECT apikey.rename_key(NULL, 'x')$$,
	$$SELECT apikey.rename_key('<key>', NULL)$$,
	$$SELECT apikey.revoke_key(NULL)$$,
	$$SELECT apikey.roll_key(NULL)$$,
	$$SELECT apikey.public_key(NULL, NULL)$$,
	-- unknown things
	$$SELECT apikey.create_key('nobody', 'production', 'x')$$,
	$$SELECT apikey.create_key('bad', 'staging', 'x')$$,
	$$SELECT apikey.revoke_key('00000000000')$$,
	$$SELECT apikey.delete_key('zzzzzzzzzzz')$$,
	-- duplicates
	$$SELECT apikey.create_tenant('bad')$$,
	$$SELECT apikey.create_environment('bad', 'production', 'prod')$$,
	-- lifetimes
	$$SELECT apikey.create_key('bad', 'production', 'x', expires_in => '-1 day')$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', expires_in => '0')$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', expires_in => '101 years')$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', expires_in => '178000000 years')$$,
	$$SELECT apikey.create_tenant('bad-x', max_key_lifetime => '-5 minutes')$$,
	$$SELECT apikey.roll_key('<key>', '-1 second')$$,
	-- over-long and odd text
	$$SELECT apikey.create_tenant(repeat('a', 64))$$,
	$$SELECT apikey.create_tenant('bad-x', repeat('n', 201))$$,
	$$SELECT apikey.create_tenant('ünïcode')$$,
	$$SELECT apikey.create_key('bad', 'production', repeat('n', 201))$$,
	$$SELECT apikey.create_key('bad', 'production', repeat('n', 1000000))$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', repeat('d', 1001))$$,
	$$SELECT apikey.create_key('bad', 'production', E'tab\there')$$,
	$$SELECT apikey.create_key('bad', 'production', '   ')$$,
	$$SELECT apikey.revoke_key('<key>', repeat('r', 1001))$$,
	-- scopes and resources
	$$SELECT apikey.create_key('bad', 'production', 'x', scopes => array_fill('a'::text, ARRAY[100000]))$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', scopes => '{{a,b},{c,d}}')$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', scopes => ARRAY[repeat('a', 129)])$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', scopes => '{"orders read"}')$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', scopes => '{"*:read"}')$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', scopes => '{"ordérs"}')$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', resource => ':42')$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', resource => 'collection:')$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', resource => 'collection: 42')$$,
	$$SELECT apikey.create_key('bad', 'production', 'x', resource => 'collection:' || repeat('9', 200))$$,
	-- key ids of the wrong shape
	$$SELECT apikey.revoke_key('short')$$,
	$$SELECT apikey.revoke_key('0000000000!')$$,
	$$SELECT apikey.revoke_key(repeat('z', 11)::apikey.key_id)$$,
	$$SELECT apikey.revoke_key(42::text::apikey.key_id)$$,
	-- a publication's name
	$$SELECT apikey.create_publication('')$$,
	$$SELECT apikey.create_publication(repeat('p', 64))$$
]) AS stmt;

-- key text passed where a key id belongs is rejected without being echoed
SELECT position(substr(:'api_key', 20, 27) IN pg_temp.try(format('SELECT apikey.revoke_key(%L)', :'api_key'))) AS secret_echoed;
SELECT pg_temp.try(format('SELECT apikey.revoke_key(%L)', :'api_key')) AS result;

-- SQL in labels is just text
SELECT key_id AS inj_id FROM apikey.create_key('bad', 'production', $$x'); DROP TABLE apikey.keys; --$$,
       $$'; SELECT pg_sleep(10); --$$) \gset
SELECT name, description FROM apikey.key_list WHERE key_id = :'inj_id';
SELECT count(*) > 0 AS keys_table_intact FROM apikey.keys WHERE tenant = 'bad';

-- verify turns any text into a status, never an error
SELECT left(k, 30) AS input, (apikey.verify(k)).status FROM unnest(ARRAY[
	NULL, '', ' ', repeat('x', 1000000), E'ak_live_\x01', 'ak_live_' || repeat('é', 44),
	'pk_live_', 'ak__' || repeat('A', 44), '_live_' || repeat('A', 44),
	'ak_live_' || repeat('A', 44) || '_x'
]) AS k;
SELECT (apikey.verify(:'api_key', environment => repeat('e', 100000))).status;
SELECT (apikey.verify(:'api_key', scope => repeat('s', 100000))).status;
SELECT (apikey.verify(:'api_key', resource => '')).status;
SELECT (apikey.verify(:'api_key', scope => '')).status;
SELECT apikey.looks_like_key(NULL) IS NULL AS strict, apikey.looks_like_key(repeat('a', 1000000)) AS huge;

-- nothing was half-written by any failure above
SELECT count(*) AS keys FROM apikey.keys WHERE tenant = 'bad';
SELECT name, status, revoked_reason, rolled_at IS NULL AS never_rolled
  FROM apikey.key_list WHERE key_id = :'key_id';
SELECT count(*) AS tenants_named_bad_x FROM apikey.tenants WHERE slug = 'bad-x';
