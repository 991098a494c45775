-- Several resources: a key restricted to a list of objects ("type:id"),
-- or to every object of a type ("type:*"), as GitHub's fine-grained tokens
-- are to selected repositories.  The single resource argument of create_key
-- is one more element of the list.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('res-acme') > 0 AS created;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;

SELECT key_id AS two_id, api_key AS two_key FROM apikey.create_key('res-acme', 'production', 'two repos',
       scopes => '{repo:read}', resources => '{repo:web,repo:api,repo:web}') \gset
SELECT key_id AS star_id, api_key AS star_key FROM apikey.create_key('res-acme', 'production', 'every repo',
       scopes => '{repo:read}', resources => '{repo:*}') \gset
SELECT key_id AS one_id, api_key AS one_key FROM apikey.create_key('res-acme', 'production', 'one repo',
       scopes => '{repo:read}', resource => 'repo:web') \gset
SELECT key_id AS both_id FROM apikey.create_key('res-acme', 'production', 'both arguments',
       resource => 'repo:cli', resources => '{repo:web,repo:cli}') \gset
SELECT key_id AS free_id, api_key AS free_key FROM apikey.create_key('res-acme', 'production', 'unrestricted',
       scopes => '{repo:read}') \gset

-- stored sorted and without duplicates; resource shows the one resource
-- of a key restricted to exactly one
SELECT name, resources, resource FROM apikey.key_list WHERE tenant = 'res-acme' ORDER BY name;

-- verification: a key reaches its own resources only
SELECT k.label, r AS asked, v.status, v.resource, v.resources
  FROM (VALUES ('two repos', :'two_key'), ('every repo', :'star_key'), ('one repo', :'one_key'),
               ('unrestricted', :'free_key')) AS k(label, api_key),
       unnest(ARRAY['repo:web', 'repo:api', 'repo:docs', 'gist:web', NULL]) AS r,
       LATERAL apikey.verify(k.api_key, resource => r) AS v
 ORDER BY k.label, r NULLS LAST;

-- and so does the identity: can_access with each resource
BEGIN;
SELECT status FROM apikey.authenticate(:'two_key');
SELECT apikey.current_resource() AS current_resource,
       apikey.can_access('repo:web', 'repo:read') AS web, apikey.can_access('repo:api', 'repo:read') AS api,
       apikey.can_access('repo:docs', 'repo:read') AS docs, apikey.can_access('repo:web', 'repo:write') AS web_write;
COMMIT;
BEGIN;
SELECT status FROM apikey.authenticate(:'star_key');
SELECT apikey.can_access('repo:anything', 'repo:read') AS any_repo, apikey.can_access('gist:1', 'repo:read') AS a_gist;
COMMIT;

-- editing later, audited with before and after; NULL lifts the restriction
SELECT apikey.set_key_resources(:'one_id', '{repo:docs,repo:web}');
SELECT status FROM apikey.verify(:'one_key', resource => 'repo:docs');
SELECT apikey.set_key_resources(:'one_id', NULL);
SELECT status, resources FROM apikey.verify(:'one_key', resource => 'gist:9');
SELECT apikey.set_key_resources(:'one_id', '{gist:*}');
SELECT status FROM apikey.verify(:'one_key', resource => 'repo:web');
SELECT action, details FROM apikey.audit_log WHERE key_id = :'one_id' ORDER BY event_id;

-- bad input: a clear error, nothing written
SELECT count(*) AS keys_before FROM apikey.keys WHERE tenant = 'res-acme' \gset
SELECT stmt, pg_temp.try(stmt) AS result FROM unnest(ARRAY[
	$$SELECT apikey.create_key('res-acme', 'production', 'x', resources => '{}')$$,
	$$SELECT apikey.create_key('res-acme', 'production', 'x', resources => '{repo}')$$,
	$$SELECT apikey.create_key('res-acme', 'production', 'x', resources => '{repo:}')$$,
	$$SELECT apikey.create_key('res-acme', 'production', 'x', resources => '{:*}')$$,
	$$SELECT apikey.create_key('res-acme', 'production', 'x', resources => '{"repo:a b"}')$$,
	$$SELECT apikey.create_key('res-acme', 'production', 'x', resources => '{repo:a,NULL}')$$,
	$$SELECT apikey.create_key('res-acme', 'production', 'x', resources => '{{repo:a},{repo:b}}')$$,
	$$SELECT apikey.create_key('res-acme', 'production', 'x', resources => ARRAY(SELECT 'repo:' || i FROM generate_series(1, 65) i))$$,
	$$SELECT apikey.create_key('res-acme', 'production', 'x', resources => '{repo:a}', resource => 'bad')$$,
	$$SELECT apikey.set_key_resources(NULL, '{repo:a}')$$,
	$$SELECT apikey.set_key_resources('00000000000', '{repo:a}')$$
]) AS stmt;
SELECT count(*) - :keys_before AS keys_written_by_errors FROM apikey.keys WHERE tenant = 'res-acme';
SELECT pg_temp.try(format('SELECT apikey.set_key_resources(%L, %L)', :'two_id', '{}')) AS set_empty;
SELECT resources AS unchanged FROM apikey.key_list WHERE key_id = :'two_id';
-- at most 64
SELECT key_id AS many_id FROM apikey.create_key('res-acme', 'production', '64 repos',
       resources => ARRAY(SELECT 'repo:' || i FROM generate_series(1, 64) i)) \gset
SELECT cardinality(resources) AS resources FROM apikey.key_list WHERE key_id = :'many_id';
-- the empty list with resource is that one resource
SELECT key_id AS empty_id FROM apikey.create_key('res-acme', 'production', 'x', resources => '{}', resource => 'repo:a') \gset
SELECT resources FROM apikey.key_list WHERE key_id = :'empty_id';
