-- Tenant administrators: a key of tenant T holding apikey:admin,
-- authenticated by the application's (verifier) role, manages T's keys and
-- nothing else.  Key texts are random: kept in psql variables, never printed.
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

CREATE ROLE regress_ta_app;
SELECT apikey.grant_verifier('regress_ta_app');

-- Set up by the (superuser) administrator.
SELECT apikey.create_tenant('ta-acme') > 0 AS created, apikey.create_tenant('ta-globex') > 0 AS created;
SELECT key_id AS admin_id, api_key AS admin_key FROM apikey.create_key('ta-acme', 'production',
       'acme admin console', scopes => '{apikey:admin,orders:read,orders:write}') \gset
SELECT key_id AS reader_id, api_key AS reader_key FROM apikey.create_key('ta-acme', 'production',
       'acme reporting', scopes => '{orders:read}') \gset
SELECT key_id AS billing_id FROM apikey.create_key('ta-acme', 'production',
       'acme billing', scopes => '{billing:write}') \gset
SELECT key_id AS coll_admin_id, api_key AS coll_admin_key FROM apikey.create_key('ta-acme', 'production',
       'collection 7 admin', scopes => '{apikey:admin,collections:read}', resource => 'collection:7') \gset
SELECT key_id AS globex_id, api_key AS globex_key FROM apikey.create_key('ta-globex', 'production',
       'globex admin', scopes => '{apikey:admin,*}') \gset
SELECT max(event_id) AS audit_mark FROM apikey.audit \gset

SET ROLE regress_ta_app;

-- The tenant administrator at work, in one transaction.
BEGIN;
SELECT status, tenant FROM apikey.authenticate(:'admin_key', 'apikey:admin');
-- it lists its own tenant's keys only
SELECT tenant, name, scopes, status FROM apikey.key_list ORDER BY name;
-- create: the new key text is returned once
SELECT key_id AS new_id, api_key AS new_key, hint AS new_hint
  FROM apikey.create_key('ta-acme', 'production', 'Shopify integration',
                         'orders sync', '{orders:read}', '90 days') \gset
SELECT :'new_key' ~ '^ak_live_' AS new_key_format, apikey.looks_like_key(:'new_key') AS looks_like_key,
       right(:'new_key', 4) = right(:'new_hint', 4) AS hint_matches;
SELECT valid, status, tenant, scopes FROM apikey.verify(:'new_key');
-- also in another environment of the same tenant
SELECT key_id AS preview_id FROM apikey.create_key('ta-acme', 'preview', 'CI') \gset
SELECT apikey.rename_key(:'new_id', 'Shopify');
SELECT apikey.describe_key(:'new_id', 'orders sync, all stores');
SELECT apikey.revoke_key(:'new_id', 'leaked in a screenshot');
SELECT status FROM apikey.verify(:'new_key');
SELECT apikey.reactivate_key(:'new_id');
SELECT apikey.roll_key(:'new_id', '1 hour') AS rolled_key \gset
SELECT (SELECT status FROM apikey.verify(:'rolled_key')) AS new_secret,
       (SELECT status FROM apikey.verify(:'new_key')) AS old_secret_in_grace;
SELECT apikey.set_key_expiry(:'new_id', now() + interval '30 days');
SELECT apikey.delete_key(:'preview_id');
SELECT name, description, status, expires_at > now() + interval '29 days' AS expiry_moved,
       previous_secret_expires_at IS NOT NULL AS in_grace
  FROM apikey.key_list WHERE key_id = :'new_id';
-- public keys of its own tenant
SELECT apikey.public_key('ta-acme', 'production') ~ '^pk_live_' AS own_public_key;
-- it may manage keys it could not have minted (a more powerful key of its
-- tenant) except roll them: rolling hands out the secret
SELECT pg_temp.try(format('SELECT apikey.roll_key(%L)', :'billing_id')) AS roll_more_powerful;
SELECT pg_temp.try(format('SELECT apikey.rename_key(%L, %L)', :'billing_id', 'acme billing (old)')) AS rename_more_powerful;

-- Another tenant, by any argument: 42501.
SELECT c.name, pg_temp.try(c.sql) AS other_tenant
  FROM (VALUES
	('create_key', $$SELECT apikey.create_key('ta-globex', 'production', 'x')$$),
	('create_key named', $$SELECT apikey.create_key(tenant => 'ta-globex', environment => 'production', name => 'x')$$),
	('create_key unknown tenant', $$SELECT apikey.create_key('ta-nope', 'production', 'x')$$),
	('create_key NULL tenant', $$SELECT apikey.create_key(NULL, 'production', 'x')$$),
	('create_key ACME', $$SELECT apikey.create_key('TA-ACME', 'production', 'x')$$),
	('rename_key', format('SELECT apikey.rename_key(%L, %L)', :'globex_id', 'x')),
	('describe_key', format('SELECT apikey.describe_key(%L, %L)', :'globex_id', 'x')),
	('revoke_key', format('SELECT apikey.revoke_key(%L)', :'globex_id')),
	('reactivate_key', format('SELECT apikey.reactivate_key(%L)', :'globex_id')),
	('roll_key', format('SELECT apikey.roll_key(%L)', :'globex_id')),
	('set_key_expiry', format('SELECT apikey.set_key_expiry(%L, now())', :'globex_id')),
	('delete_key', format('SELECT apikey.delete_key(%L)', :'globex_id')),
	('public_key', $$SELECT apikey.public_key('ta-globex', 'production')$$),
	('regenerate_public_key', $$SELECT apikey.regenerate_public_key('ta-globex', 'production')$$),
	('create_tenant', $$SELECT apikey.create_tenant('ta-mine')$$),
	('create_environment', $$SELECT apikey.create_environment('ta-acme', 'staging', 'stg')$$),
	('set_key_policy', $$SELECT apikey.set_key_policy('ta-acme', NULL, NULL)$$),
	('read keys', 'SELECT count(*) FROM apikey.keys'),
	('read tenants', 'SELECT count(*) FROM apikey.tenants')
  ) AS c(name, sql);
-- A key id that does not exist at all is "does not exist" (42704), one of
-- another tenant is 42501: key ids are public handles, not secrets.
SELECT pg_temp.try($$SELECT apikey.revoke_key('00000000000')$$) AS unknown_key;
-- Scopes it does not hold: 42501.
SELECT s AS scopes, pg_temp.try(format('SELECT apikey.create_key(%L, %L, %L, scopes => %L)',
       'ta-acme', 'production', 'x', s)) AS mint
  FROM unnest('{"{*}","{orders:*}","{billing:write}","{orders:read,billing:read}","{apikey:*}"}'::text[]) AS s;
-- scopes it holds, and subsets of them: ok
SELECT s AS scopes, pg_temp.try(format('SELECT apikey.create_key(%L, %L, %L, scopes => %L)',
       'ta-acme', 'production', 'sub ' || s, s)) AS mint
  FROM unnest('{"{}","{orders:read}","{orders:read,orders:write}","{apikey:admin}"}'::text[]) AS s;
-- everything it saw and did is its own tenant's
SELECT count(*) FILTER (WHERE tenant <> 'ta-acme') AS other_tenants_keys,
       count(*) FILTER (WHERE tenant = 'ta-acme') > 0 AS own_keys
  FROM apikey.key_list;
SELECT count(*) FILTER (WHERE tenant <> 'ta-acme') AS other_tenants_events,
       count(*) FILTER (WHERE tenant = 'ta-acme') > 0 AS own_events
  FROM apikey.audit_log;
-- the audit log names the actor: the database role and the key
SELECT action, actor_role, actor_key_id = :'admin_id' AS by_admin_key,
       key_id = :'new_id' AS on_new_key
  FROM apikey.audit_log WHERE event_id > :audit_mark ORDER BY event_id;
COMMIT;

-- The identity ended with the transaction: nothing to manage or list now.
SELECT apikey.current_tenant() AS tenant;
SELECT pg_temp.try($$SELECT apikey.create_key('ta-acme', 'production', 'x')$$) AS after_commit;
SELECT count(*) AS key_list_rows FROM apikey.key_list;

-- A key without apikey:admin: 42501 for everything, lists nothing.
BEGIN;
SELECT status FROM apikey.authenticate(:'reader_key');
SELECT c.name, pg_temp.try(c.sql) AS reader_key
  FROM (VALUES
	('create_key', $$SELECT apikey.create_key('ta-acme', 'production', 'x')$$),
	('rename_key', format('SELECT apikey.rename_key(%L, %L)', :'reader_id', 'x')),
	('revoke_key own', format('SELECT apikey.revoke_key(%L)', :'reader_id')),
	('roll_key own', format('SELECT apikey.roll_key(%L)', :'reader_id')),
	('delete_key', format('SELECT apikey.delete_key(%L)', :'new_id')),
	('public_key', $$SELECT apikey.public_key('ta-acme', 'production')$$)
  ) AS c(name, sql);
SELECT count(*) AS key_list_rows FROM apikey.key_list;
SELECT count(*) AS audit_log_rows FROM apikey.audit_log;
ROLLBACK;
-- and it cannot authenticate as an administrator
SELECT pg_temp.try(format('SELECT apikey.authenticate(%L, %L)', :'reader_key', 'apikey:admin')) AS authenticate_as_admin;

-- A resource-restricted administrator hands out keys for its resource only.
BEGIN;
SELECT status FROM apikey.authenticate(:'coll_admin_key', 'apikey:admin');
SELECT r AS resource, pg_temp.try(format('SELECT apikey.create_key(%L, %L, %L, scopes => %L, resource => %L)',
       'ta-acme', 'production', 'viewer', '{collections:read}', r)) AS mint
  FROM (VALUES ('collection:7'), ('collection:8'), (NULL)) AS v(r);
ROLLBACK;

-- A second authenticate replaces the identity: the last key wins, here an
-- admin key of the other tenant, which then manages its own tenant only.
BEGIN;
SELECT status FROM apikey.authenticate(:'admin_key');
SELECT status FROM apikey.authenticate(:'globex_key');
SELECT apikey.current_tenant() AS tenant;
SELECT pg_temp.try($$SELECT apikey.create_key('ta-acme', 'production', 'x')$$) AS acme;
SELECT pg_temp.try(format('SELECT apikey.rename_key(%L, %L)', :'new_id', 'x')) AS acme_key;
SELECT DISTINCT tenant FROM apikey.key_list;
ROLLBACK;

-- An unauthenticated transaction and a failed authenticate change nothing.
BEGIN;
SELECT pg_temp.try(format('SELECT apikey.authenticate(%L)', :'admin_key' || 'x')) AS tampered_key;
SELECT apikey.current_tenant() AS tenant;
SELECT pg_temp.try(format('SELECT apikey.delete_key(%L)', :'new_id')) AS delete_key;
ROLLBACK;
RESET ROLE;

-- What the superuser sees afterwards: the Shopify key survived, as rolled;
-- the deleted one is gone but its history stays.
SELECT name, status FROM apikey.key_list WHERE tenant = 'ta-acme' ORDER BY name;
SELECT action, actor_role FROM apikey.audit_log
 WHERE event_id > :audit_mark AND key_id = :'preview_id' ORDER BY event_id;
