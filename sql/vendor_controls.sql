-- Vendor controls: what a full administrator (the vendor) sets on a
-- tenant's keys stays as set when the tenant's own administrator (a key
-- with apikey:admin) manages them: rate limits and credits it may not
-- remove, change or add to (it may add limits of its own, and take credits
-- away), an allowlist it may only narrow, the vendor's meta fields it may
-- not touch on any key (it edits the others).
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'key [0-9A-Za-z]{11}', 'key <id>');
END
$$;
SELECT apikey.create_tenant('vend') > 0 AS tenant;
CREATE ROLE vend_app;
SELECT apikey.grant_verifier('vend_app');
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO vend_app;

-- the vendor's plan for the tenant's administrator key
SELECT key_id AS admin_id, api_key AS admin_key
  FROM apikey.create_key('vend', 'production', 'tenant admin', scopes => '{apikey:admin,orders:*}',
                         meta => '{"plan": "pro"}', allowed_ips => '{10.0.0.0/8}') \gset
SELECT apikey.set_rate_limit(:'admin_id', 'plan', 100, '1 minute');
SELECT apikey.set_credits(:'admin_id', 1000);

-- the tenant's administrator tries to lift them
SET ROLE vend_app;
BEGIN;
SELECT status FROM apikey.authenticate(:'admin_key', client_ip => '10.1.2.3');
SELECT name, pg_temp.try(sql) AS result FROM (VALUES
	('remove the limit', format('SELECT apikey.remove_rate_limit(%L, %L)', :'admin_id', 'plan')),
	('raise the limit', format('SELECT apikey.set_rate_limit(%L, %L, 1000000, %L)', :'admin_id', 'plan', '1 second')),
	('remove the credits', format('SELECT apikey.set_credits(%L, NULL)', :'admin_id')),
	('replace the credits', format('SELECT apikey.set_credits(%L, 1000000)', :'admin_id')),
	('add credits', format('SELECT apikey.add_credits(%L, 1000)', :'admin_id')),
	('rewrite meta.plan', format('SELECT apikey.set_key_meta(%L, %L)', :'admin_id', '{"plan": "enterprise"}')),
	('drop meta.plan', format('SELECT apikey.set_key_meta(%L, NULL)', :'admin_id')),
	('drop the allowlist', format('SELECT apikey.set_key_allowed_ips(%L, NULL)', :'admin_id')),
	('widen the allowlist', format('SELECT apikey.set_key_allowed_ips(%L, %L)', :'admin_id', '{10.0.0.0/8,0.0.0.0/0}')),
	('a new key with meta.plan', $$SELECT apikey.create_key('vend', 'production', 'x', meta => '{"plan": "enterprise"}')$$)
  ) AS t(name, sql);
COMMIT;
RESET ROLE;
SELECT rate_limits, remaining, meta, allowed_ips FROM apikey.key_list WHERE key_id = :'admin_id';
SELECT count(*) AS keys_named_x FROM apikey.key_list WHERE tenant = 'vend' AND name = 'x';

-- what it may do: add restrictions of its own, take credits away, narrow
-- the allowlist, edit the meta fields that are not the vendor's
SET ROLE vend_app;
BEGIN;
SELECT status FROM apikey.authenticate(:'admin_key', client_ip => '10.1.2.3');
SELECT name, pg_temp.try(sql) AS result FROM (VALUES
	('a limit of its own', format('SELECT apikey.set_rate_limit(%L, %L, 50, %L)', :'admin_id', 'own', '1 minute')),
	('take credits away', format('SELECT apikey.add_credits(%L, -10)', :'admin_id')),
	('narrow the allowlist', format('SELECT apikey.set_key_allowed_ips(%L, %L)', :'admin_id', '{10.1.0.0/16}')),
	('a field of its own', format('SELECT apikey.set_key_meta(%L, %L)', :'admin_id', '{"plan": "pro", "team": "ops"}')),
	('and change it', format('SELECT apikey.set_key_meta(%L, %L)', :'admin_id', '{"plan": "pro", "team": "sales"}')),
	('a new key with its own meta', $$SELECT apikey.create_key('vend', 'production', 'y', meta => '{"team": "ops"}')$$)
  ) AS t(name, sql);
-- its own limit it may change and remove
SELECT pg_temp.try(format('SELECT apikey.remove_rate_limit(%L, %L)', :'admin_id', 'own')) AS remove_own_limit;
-- it sees which fields are the vendor's
SELECT tenant, field FROM apikey.vendor_meta_field_list;
COMMIT;
RESET ROLE;
SELECT rate_limits, remaining, meta, allowed_ips FROM apikey.key_list WHERE key_id = :'admin_id';

-- keys the tenant administrator creates or imports stay within the
-- vendor's allowlist of its own key: it cannot give itself a key usable
-- from anywhere
SET ROLE vend_app;
BEGIN;
SELECT status FROM apikey.authenticate(:'admin_key', client_ip => '10.1.2.3');
SELECT name, pg_temp.try(sql) AS result FROM (VALUES
	('a key from anywhere', $$SELECT apikey.create_key('vend', 'production', 'w', scopes => '{apikey:admin}', allowed_ips => '{0.0.0.0/0}')$$),
	('a key within', $$SELECT apikey.create_key('vend', 'production', 'within', allowed_ips => '{10.9.0.0/16}')$$),
	('an import', $$SELECT apikey.import_key('vend', 'production', 'imported', api_key => 'vend-legacy-0123456789')$$)
  ) AS t(name, sql);
SELECT name, allowed_ips FROM apikey.key_list WHERE tenant = 'vend' AND name IN ('y', 'within', 'imported') ORDER BY name;
SELECT pg_temp.try(format('SELECT apikey.set_key_allowed_ips(%L, NULL)',
       (SELECT key_id FROM apikey.key_list WHERE tenant = 'vend' AND name = 'y'))) AS drop_it_later;
COMMIT;
RESET ROLE;

-- the vendor names fields in advance (and releases them); a tenant
-- administrator then may not set them on any key
SELECT apikey.set_vendor_meta_fields('vend', '{plan,tier}');
SELECT tenant, field FROM apikey.vendor_meta_field_list WHERE tenant = 'vend' ORDER BY field;
SET ROLE vend_app;
BEGIN;
SELECT status FROM apikey.authenticate(:'admin_key', client_ip => '10.1.2.3');
SELECT pg_temp.try($$SELECT apikey.create_key('vend', 'production', 'z', meta => '{"tier": "gold"}')$$) AS tier_on_a_new_key;
SELECT pg_temp.try($$SELECT apikey.set_vendor_meta_fields('vend', '{}')$$) AS release_them;
COMMIT;
RESET ROLE;

-- the vendor itself changes and lifts its controls
SELECT apikey.set_rate_limit(:'admin_id', 'plan', 200, '1 minute');
SELECT apikey.set_credits(:'admin_id', 5000);
SELECT apikey.set_key_meta(:'admin_id', '{"plan": "enterprise", "team": "sales"}');
SELECT apikey.set_key_allowed_ips(:'admin_id', NULL);
SELECT apikey.remove_rate_limit(:'admin_id', 'plan');
SELECT rate_limits, remaining, meta, allowed_ips FROM apikey.key_list WHERE key_id = :'admin_id';
-- the vendor's controls of a deleted key go with it
SELECT apikey.delete_key(:'admin_id');
SELECT count(*) AS controls_left FROM apikey.key_vendor_controls WHERE key_id = :'admin_id';
SELECT action, details FROM apikey.audit_log WHERE action = 'vendor_meta_fields_set';

DROP OWNED BY vend_app;
DROP ROLE vend_app;
