-- Tenant administrators: a key of tenant T holding apikey:admin,
-- authenticated by the application's (verifier) role, manages the keys its
-- own key covers (its tenant, its environment, scopes it holds, resources
-- it reaches) and nothing else, whatever the function.  Key texts are
-- random: kept in psql variables, never printed.
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
-- probe(sql): run a statement and undo it; answer 'ok' or its SQLSTATE
CREATE FUNCTION pg_temp.probe(cmd text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE cmd;
	RAISE EXCEPTION 'probe: done' USING ERRCODE = 'P0002';
EXCEPTION
	WHEN no_data_found THEN
		RETURN 'ok';
	WHEN OTHERS THEN
		RETURN SQLSTATE;
END
$$;

CREATE ROLE regress_ta_app;
SELECT apikey.grant_verifier('regress_ta_app');

-- Set up by the (superuser) administrator.
SELECT apikey.create_tenant('ta-acme') > 0 AS created, apikey.create_tenant('ta-globex') > 0 AS created;
CREATE TABLE ta_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
GRANT SELECT ON ta_keys TO regress_ta_app;
INSERT INTO ta_keys
SELECT label, k.key_id, k.api_key
  FROM (VALUES
	('admin',         'ta-acme',   'production', '{apikey:admin,orders:read,orders:write}', NULL),
	('reader',        'ta-acme',   'production', '{orders:read}',                           NULL),
	('reader c7',     'ta-acme',   'production', '{orders:read}',                           'collection:7'),
	('reader c8',     'ta-acme',   'production', '{orders:read}',                           'collection:8'),
	('billing',       'ta-acme',   'production', '{billing:write}',                         NULL),
	('star',          'ta-acme',   'production', '{*}',                                     NULL),
	('star revoked',  'ta-acme',   'production', '{*}',                                     NULL),
	('star expired',  'ta-acme',   'production', '{*}',                                     NULL),
	('preview reader','ta-acme',   'preview',    '{orders:read}',                           NULL),
	('c7 admin',      'ta-acme',   'production', '{apikey:admin,orders:read}',              'collection:7'),
	('preview admin', 'ta-acme',   'preview',    '{apikey:admin,orders:read,orders:write}', NULL),
	('globex admin',  'ta-globex', 'production', '{apikey:admin,*}',                        NULL),
	('globex reader', 'ta-globex', 'production', '{orders:read}',                           NULL)
  ) AS v(label, tenant, environment, scopes, resource),
  LATERAL apikey.create_key(v.tenant, v.environment, v.label, scopes => v.scopes::text[],
                            resource => v.resource) AS k;
SELECT apikey.revoke_key(key_id, 'set up') FROM ta_keys WHERE label = 'star revoked';
SELECT apikey.set_key_expiry(key_id, now() - interval '1 day') FROM ta_keys WHERE label = 'star expired';
SELECT max(event_id) AS audit_mark FROM apikey.audit \gset

SET ROLE regress_ta_app;

-- The rule, as a matrix: each management function on each kind of key,
-- for the unrestricted production administrator.  ok: it acts; 42501: the
-- key is outside what its own key covers; 42704: not a key it can see (a
-- key of another tenant is as absent as one that never existed).
BEGIN;
SELECT status, tenant, environment FROM apikey.authenticate((SELECT api_key FROM ta_keys WHERE label = 'admin'), 'apikey:admin');
SELECT t.label AS target,
       pg_temp.probe(format('SELECT apikey.rename_key(%L, %L)', t.key_id, 'x')) AS rename,
       pg_temp.probe(format('SELECT apikey.describe_key(%L, %L)', t.key_id, 'x')) AS describe,
       pg_temp.probe(format('SELECT apikey.revoke_key(%L)', t.key_id)) AS revoke,
       pg_temp.probe(format('SELECT apikey.reactivate_key(%L)', t.key_id)) AS reactivate,
       pg_temp.probe(format('SELECT apikey.roll_key(%L)', t.key_id)) AS roll,
       pg_temp.probe(format('SELECT apikey.set_key_expiry(%L, now() + interval %L)', t.key_id, '1 day')) AS expiry,
       pg_temp.probe(format('SELECT apikey.delete_key(%L)', t.key_id)) AS delete
  FROM (SELECT label, key_id FROM ta_keys
        UNION ALL SELECT 'never existed', '00000000000'::apikey.key_id) AS t
 ORDER BY t.label;
-- reactivate_key on a revoked key it covers works (above: 55000, as the
-- key is not revoked); on the revoked * key it is refused for rights, not state
SELECT pg_temp.try(format('SELECT apikey.reactivate_key(%L)', key_id)) AS reactivate_star
  FROM ta_keys WHERE label = 'star revoked';
SELECT pg_temp.try(format('SELECT apikey.set_key_expiry(%L, NULL)', key_id)) AS unexpire_star
  FROM ta_keys WHERE label = 'star expired';
-- the error for another tenant's key is the error for a missing key
SELECT replace(pg_temp.try(format('SELECT apikey.revoke_key(%L)', key_id)), key_id::text, '<its id>') AS other_tenant_key
  FROM ta_keys WHERE label = 'globex reader';
SELECT pg_temp.try($$SELECT apikey.revoke_key('00000000000')$$) AS missing_key;
-- creating: its environment, scopes it holds
SELECT c.name, pg_temp.probe(c.sql) AS create_key
  FROM (VALUES
	('own environment, subset of scopes', $$SELECT apikey.create_key('ta-acme', 'production', 'x', scopes => '{orders:read}')$$),
	('own environment, no scopes',        $$SELECT apikey.create_key('ta-acme', 'production', 'x')$$),
	('own environment, apikey:admin',     $$SELECT apikey.create_key('ta-acme', 'production', 'x', scopes => '{apikey:admin}')$$),
	('restricted to a resource',          $$SELECT apikey.create_key('ta-acme', 'production', 'x', scopes => '{orders:read}', resource => 'collection:9')$$),
	('other environment',                 $$SELECT apikey.create_key('ta-acme', 'preview', 'x')$$),
	('scope it lacks',                    $$SELECT apikey.create_key('ta-acme', 'production', 'x', scopes => '{billing:write}')$$),
	('wildcard it lacks',                 $$SELECT apikey.create_key('ta-acme', 'production', 'x', scopes => '{orders:*}')$$),
	('*',                                 $$SELECT apikey.create_key('ta-acme', 'production', 'x', scopes => '{*}')$$),
	('other tenant',                      $$SELECT apikey.create_key('ta-globex', 'production', 'x')$$),
	('unknown tenant',                    $$SELECT apikey.create_key('ta-nope', 'production', 'x')$$)
  ) AS c(name, sql);
-- public keys of its own environment only; tenant settings never
SELECT c.name, pg_temp.probe(c.sql) AS result
  FROM (VALUES
	('public_key production',            $$SELECT apikey.public_key('ta-acme', 'production')$$),
	('regenerate_public_key production', $$SELECT apikey.regenerate_public_key('ta-acme', 'production')$$),
	('public_key preview',               $$SELECT apikey.public_key('ta-acme', 'preview')$$),
	('regenerate_public_key preview',    $$SELECT apikey.regenerate_public_key('ta-acme', 'preview')$$),
	('public_key other tenant',          $$SELECT apikey.public_key('ta-globex', 'production')$$),
	('create_environment',               $$SELECT apikey.create_environment('ta-acme', 'staging', 'stg')$$),
	('set_key_policy',                   $$SELECT apikey.set_key_policy('ta-acme', NULL, NULL)$$),
	('create_tenant',                    $$SELECT apikey.create_tenant('ta-mine')$$),
	('read keys',                        'SELECT count(*) FROM apikey.keys'),
	('read tenants',                     'SELECT count(*) FROM apikey.tenants')
  ) AS c(name, sql);

-- The administrator at work, for real, in this transaction.
SELECT key_id AS new_id, api_key AS new_key, hint AS new_hint
  FROM apikey.create_key('ta-acme', 'production', 'Shopify integration',
                         'orders sync', '{orders:read}', '90 days') \gset
SELECT :'new_key' ~ '^ak_live_' AS new_key_format, apikey.looks_like_key(:'new_key') AS looks_like_key,
       right(:'new_key', 4) = right(:'new_hint', 4) AS hint_matches;
SELECT valid, status, tenant, scopes FROM apikey.verify(:'new_key');
SELECT apikey.rename_key(:'new_id', 'Shopify');
SELECT apikey.describe_key(:'new_id', 'orders sync, all stores');
SELECT apikey.revoke_key(:'new_id', 'leaked in a screenshot');
SELECT status FROM apikey.verify(:'new_key');
SELECT apikey.reactivate_key(:'new_id');
SELECT apikey.roll_key(:'new_id', '1 hour') AS rolled_key \gset
SELECT (SELECT status FROM apikey.verify(:'rolled_key')) AS new_secret,
       (SELECT status FROM apikey.verify(:'new_key')) AS old_secret_in_grace;
SELECT apikey.set_key_expiry(:'new_id', now() + interval '30 days');
SELECT name, description, status, expires_at > now() + interval '29 days' AS expiry_moved,
       previous_secret_expires_at IS NOT NULL AS in_grace
  FROM apikey.key_list WHERE key_id = :'new_id';
-- it lists its own tenant's keys of its own environment (the rule of its
-- management rights), no other tenant's, no other environment's
SELECT count(*) FILTER (WHERE tenant <> 'ta-acme') AS other_tenants_keys,
       count(*) FILTER (WHERE tenant = 'ta-acme' AND environment = 'preview') AS own_preview_keys,
       count(*) FILTER (WHERE tenant = 'ta-acme' AND environment = 'production') > 0 AS own_production_keys
  FROM apikey.key_list;
SELECT count(*) FILTER (WHERE tenant <> 'ta-acme') AS other_tenants_events
  FROM apikey.audit_log;
-- the audit log names the actor: the database role and the key
SELECT action, actor_role, actor_key_id = (SELECT key_id FROM ta_keys WHERE label = 'admin') AS by_admin_key,
       key_id = :'new_id' AS on_new_key
  FROM apikey.audit_log WHERE event_id > :audit_mark ORDER BY event_id;
COMMIT;

-- A resource-restricted administrator (collection:7): keys restricted to
-- collection:7 only; not the unrestricted ones, not collection:8's.
BEGIN;
SELECT status FROM apikey.authenticate((SELECT api_key FROM ta_keys WHERE label = 'c7 admin'), 'apikey:admin');
SELECT t.label AS target,
       pg_temp.probe(format('SELECT apikey.rename_key(%L, %L)', t.key_id, 'x')) AS rename,
       pg_temp.probe(format('SELECT apikey.revoke_key(%L)', t.key_id)) AS revoke,
       pg_temp.probe(format('SELECT apikey.roll_key(%L)', t.key_id)) AS roll,
       pg_temp.probe(format('SELECT apikey.set_key_expiry(%L, now() + interval %L)', t.key_id, '1 day')) AS expiry,
       pg_temp.probe(format('SELECT apikey.delete_key(%L)', t.key_id)) AS delete
  FROM ta_keys AS t WHERE t.label IN ('reader c7', 'reader c8', 'reader', 'admin', 'c7 admin')
 ORDER BY t.label;
SELECT r AS resource, pg_temp.probe(format('SELECT apikey.create_key(%L, %L, %L, scopes => %L, resource => %L)',
       'ta-acme', 'production', 'viewer', '{orders:read}', r)) AS create_key
  FROM (VALUES ('collection:7'), ('collection:8'), (NULL)) AS v(r);
SELECT pg_temp.probe($$SELECT apikey.regenerate_public_key('ta-acme', 'production')$$) AS regenerate_public_key;
ROLLBACK;

-- A preview administrator: preview keys only; production's are out of reach.
BEGIN;
SELECT status, environment FROM apikey.authenticate((SELECT api_key FROM ta_keys WHERE label = 'preview admin'), 'apikey:admin');
SELECT t.label AS target,
       pg_temp.probe(format('SELECT apikey.rename_key(%L, %L)', t.key_id, 'x')) AS rename,
       pg_temp.probe(format('SELECT apikey.revoke_key(%L)', t.key_id)) AS revoke,
       pg_temp.probe(format('SELECT apikey.roll_key(%L)', t.key_id)) AS roll,
       pg_temp.probe(format('SELECT apikey.delete_key(%L)', t.key_id)) AS delete
  FROM ta_keys AS t WHERE t.label IN ('preview reader', 'reader', 'admin')
 ORDER BY t.label;
SELECT pg_temp.try($$SELECT apikey.regenerate_public_key('ta-acme', 'production')$$) AS regenerate_production_public_key;
SELECT pg_temp.try($$SELECT apikey.create_key('ta-acme', 'production', 'x')$$) AS create_production_key;
ROLLBACK;

-- A key without apikey:admin: 42501 for everything, lists nothing.
BEGIN;
SELECT status FROM apikey.authenticate((SELECT api_key FROM ta_keys WHERE label = 'reader'));
SELECT c.name, pg_temp.try(c.sql) AS reader_key
  FROM (VALUES
	('create_key', $$SELECT apikey.create_key('ta-acme', 'production', 'x')$$),
	('rename_key own', format('SELECT apikey.rename_key(%L, %L)', (SELECT key_id FROM ta_keys WHERE label = 'reader'), 'x')),
	('revoke_key own', format('SELECT apikey.revoke_key(%L)', (SELECT key_id FROM ta_keys WHERE label = 'reader'))),
	('roll_key own', format('SELECT apikey.roll_key(%L)', (SELECT key_id FROM ta_keys WHERE label = 'reader'))),
	('public_key', $$SELECT apikey.public_key('ta-acme', 'production')$$)
  ) AS c(name, sql);
SELECT count(*) AS key_list_rows FROM apikey.key_list;
SELECT count(*) AS audit_log_rows FROM apikey.audit_log;
ROLLBACK;
-- and it cannot authenticate as an administrator
SELECT pg_temp.try(format('SELECT apikey.authenticate(%L, %L)',
       (SELECT api_key FROM ta_keys WHERE label = 'reader'), 'apikey:admin')) AS authenticate_as_admin;

-- Without any identity, the verifier role manages nothing (42501) for
-- every management function.
SELECT c.name, pg_temp.try(c.sql) AS verifier_only
  FROM (VALUES
	('create_key', $$SELECT apikey.create_key('ta-acme', 'production', 'x')$$),
	('rename_key', format('SELECT apikey.rename_key(%L, %L)', (SELECT key_id FROM ta_keys WHERE label = 'reader'), 'x')),
	('describe_key', format('SELECT apikey.describe_key(%L, %L)', (SELECT key_id FROM ta_keys WHERE label = 'reader'), 'x')),
	('revoke_key', format('SELECT apikey.revoke_key(%L)', (SELECT key_id FROM ta_keys WHERE label = 'reader'))),
	('reactivate_key', format('SELECT apikey.reactivate_key(%L)', (SELECT key_id FROM ta_keys WHERE label = 'star revoked'))),
	('roll_key', format('SELECT apikey.roll_key(%L)', (SELECT key_id FROM ta_keys WHERE label = 'reader'))),
	('set_key_expiry', format('SELECT apikey.set_key_expiry(%L, NULL)', (SELECT key_id FROM ta_keys WHERE label = 'reader'))),
	('delete_key', format('SELECT apikey.delete_key(%L)', (SELECT key_id FROM ta_keys WHERE label = 'reader'))),
	('delete_key unknown', $$SELECT apikey.delete_key('00000000000')$$),
	('public_key', $$SELECT apikey.public_key('ta-acme', 'production')$$),
	('regenerate_public_key', $$SELECT apikey.regenerate_public_key('ta-acme', 'production')$$)
  ) AS c(name, sql);

-- A second authenticate replaces the identity: the last key wins, here an
-- admin key of the other tenant, which then manages its own tenant only.
BEGIN;
SELECT status FROM apikey.authenticate((SELECT api_key FROM ta_keys WHERE label = 'admin'));
SELECT status FROM apikey.authenticate((SELECT api_key FROM ta_keys WHERE label = 'globex admin'));
SELECT apikey.current_tenant() AS tenant;
SELECT pg_temp.try($$SELECT apikey.create_key('ta-acme', 'production', 'x')$$) AS acme;
SELECT replace(pg_temp.try(format('SELECT apikey.rename_key(%L, %L)', :'new_id', 'x')), :'new_id', '<its id>') AS acme_key;
SELECT DISTINCT tenant FROM apikey.key_list;
ROLLBACK;

-- An unauthenticated transaction and a failed authenticate change nothing.
BEGIN;
SELECT pg_temp.try(format('SELECT apikey.authenticate(%L)', (SELECT api_key FROM ta_keys WHERE label = 'admin') || 'x')) AS tampered_key;
SELECT apikey.current_tenant() AS tenant;
SELECT pg_temp.try(format('SELECT apikey.delete_key(%L)', :'new_id')) AS delete_key;
ROLLBACK;
RESET ROLE;

-- What the superuser sees afterwards: the Shopify key, as rolled; every
-- key the matrix probed is as it was (probes are undone).
SELECT name, status FROM apikey.key_list WHERE tenant = 'ta-acme' ORDER BY name;
SELECT count(*) AS events_by_probes FROM apikey.audit
 WHERE event_id > :audit_mark AND key_id IN (SELECT key_id FROM ta_keys);
DROP TABLE ta_keys;
