-- Key roles: named scope sets of a tenant.  A key holds its own scopes and
-- those of its roles (its effective scopes, which verification reads); a
-- role's change applies from the next verification on.  Also editing a
-- key's own scopes and its roles.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('kr-acme') > 0 AS created, apikey.create_tenant('kr-globex') > 0 AS created;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;

SELECT apikey.create_key_role('kr-acme', 'support', '{tickets:read,users:read,tickets:read}');
SELECT apikey.create_key_role('kr-acme', 'billing', '{invoices:*}');
SELECT apikey.create_key_role('kr-acme', 'empty', '{}');
SELECT apikey.create_key_role('kr-globex', 'auditor', '{audit:read}');
SELECT tenant, name, scopes, keys FROM apikey.key_role_list
 WHERE tenant IN ('kr-acme', 'kr-globex') ORDER BY tenant, name;

SELECT key_id, api_key FROM apikey.create_key('kr-acme', 'production', 'helpdesk',
       scopes => '{orders:read}', key_roles => '{support,billing,support}') \gset
SELECT key_id AS plain_id, api_key AS plain_key FROM apikey.create_key('kr-acme', 'production', 'plain',
       scopes => '{users:read}') \gset

-- the key's own scopes, its roles (sorted, once each), and both together
SELECT name, scopes, key_roles, effective_scopes FROM apikey.key_list
 WHERE tenant = 'kr-acme' ORDER BY name;
SELECT s AS scope, v.status
  FROM unnest('{orders:read,tickets:read,invoices:pay,users:read,users:write}'::text[]) AS s,
       LATERAL apikey.verify(:'api_key', scope => s) AS v;
SELECT scopes FROM apikey.verify(:'api_key');
BEGIN;
SELECT status FROM apikey.authenticate(:'api_key', 'invoices:pay');
SELECT apikey.current_scopes(), apikey.has_scope('tickets:read') AS tickets_read;
COMMIT;
SELECT tenant, name, keys FROM apikey.key_role_list WHERE tenant = 'kr-acme' ORDER BY name;

-- changing a role changes every key that has it, from the next
-- verification on, even where this session remembers the key's row
CREATE FUNCTION pg_temp.pkey_scans() RETURNS bigint LANGUAGE sql AS
$$ SELECT pg_stat_get_xact_numscans('apikey.keys_pkey'::regclass) $$;
SELECT status FROM apikey.verify(:'api_key', scope => 'tickets:write');
SELECT (ctid::text::point)[0] AS block_before FROM apikey.keys WHERE key_id = :'key_id' \gset
SELECT apikey.set_key_role_scopes('kr-acme', 'support', '{tickets:*}') AS keys_changed;
-- the key's new row version: in the same block, a HOT update that the
-- remembered place leads to (no index scan); in another block (the page was
-- full), found through the index
SELECT (ctid::text::point)[0] = :block_before AS same_block FROM apikey.keys WHERE key_id = :'key_id' \gset
BEGIN;
SELECT pg_temp.pkey_scans() AS s0 \gset
SELECT status, scopes FROM apikey.verify(:'api_key', scope => 'tickets:write');
SELECT pg_temp.pkey_scans() - :s0 = CASE WHEN :'same_block'::boolean THEN 0 ELSE 1 END AS index_scans_as_expected;
COMMIT;
-- a role of another tenant is another role: its keys are not touched
SELECT apikey.create_key_role('kr-globex', 'support', '{nothing:here}');
SELECT apikey.set_key_role_scopes('kr-globex', 'support', '{still:nothing}') AS keys_changed;
SELECT effective_scopes FROM apikey.key_list WHERE key_id = :'key_id';
-- a change that changes nothing rewrites no key
SELECT apikey.set_key_role_scopes('kr-acme', 'support', '{tickets:*}') AS keys_changed;

-- the key's own scopes, edited later: its roles' still apply
SELECT apikey.set_key_scopes(:'key_id', '{orders:read,orders:write}');
SELECT scopes, effective_scopes FROM apikey.key_list WHERE key_id = :'key_id';
SELECT apikey.set_key_scopes(:'key_id', '{}');
SELECT status, scopes FROM apikey.verify(:'api_key', scope => 'orders:read');
-- its roles, edited later
SELECT apikey.set_key_roles(:'key_id', '{billing}');
SELECT key_roles, effective_scopes FROM apikey.key_list WHERE key_id = :'key_id';
SELECT apikey.set_key_roles(:'plain_id', '{support}');
SELECT apikey.set_key_roles(:'key_id', '{support,billing}');
SELECT status FROM apikey.verify(:'plain_key', scope => 'tickets:close');

-- dropping a role in use is refused; with detach it leaves its keys first
SELECT pg_temp.try($$SELECT apikey.drop_key_role('kr-acme', 'support')$$) AS drop_in_use;
SELECT apikey.drop_key_role('kr-acme', 'empty') AS keys_detached;
SELECT max(event_id) AS before_detach FROM apikey.audit \gset
SELECT apikey.drop_key_role('kr-acme', 'support', detach => true) AS keys_detached;
SELECT name, scopes, key_roles, effective_scopes FROM apikey.key_list
 WHERE tenant = 'kr-acme' ORDER BY name;
SELECT status FROM apikey.verify(:'plain_key', scope => 'tickets:close');
SELECT status FROM apikey.verify(:'plain_key', scope => 'users:read');
SELECT tenant, name FROM apikey.key_role_list WHERE tenant IN ('kr-acme', 'kr-globex') ORDER BY tenant, name;
-- dropped: a name free again, and unknown to keys
SELECT pg_temp.try(format('SELECT apikey.set_key_roles(%L, %L)', :'key_id', '{support}')) AS dropped_role;
SELECT apikey.create_key_role('kr-acme', 'support', '{tickets:read}');

-- the audit trail: each change with its before and after
-- (the keys a role is detached from are taken in key id order: random here)
SELECT action, key_id = :'key_id' AS helpdesk, key_id = :'plain_id' AS plain, details
  FROM apikey.audit_log WHERE tenant = 'kr-acme' AND action <> 'environment_created'
 ORDER BY event_id > :before_detach, CASE WHEN event_id > :before_detach THEN action END,
          CASE WHEN event_id > :before_detach THEN key_id = :'key_id' END, event_id;

-- bad input: a clear error, nothing written
SELECT count(*) AS keys_before FROM apikey.keys WHERE tenant = 'kr-acme' \gset
SELECT stmt, pg_temp.try(stmt) AS result FROM unnest(ARRAY[
	-- unknown roles, and roles of another tenant
	$$SELECT apikey.create_key('kr-acme', 'production', 'x', key_roles => '{nope}')$$,
	$$SELECT apikey.create_key('kr-acme', 'production', 'x', key_roles => '{billing,auditor}')$$,
	$$SELECT apikey.set_key_role_scopes('kr-acme', 'auditor', '{x:read}')$$,
	$$SELECT apikey.drop_key_role('kr-acme', 'nope')$$,
	$$SELECT apikey.create_key_role('kr-nobody', 'r', '{}')$$,
	-- names
	$$SELECT apikey.create_key_role('kr-acme', 'Support', '{}')$$,
	$$SELECT apikey.create_key_role('kr-acme', '-x', '{}')$$,
	$$SELECT apikey.create_key_role('kr-acme', 'a b', '{}')$$,
	$$SELECT apikey.create_key_role('kr-acme', '', '{}')$$,
	$$SELECT apikey.create_key_role('kr-acme', repeat('ab-', 22), '{}')$$,
	$$SELECT apikey.create_key('kr-acme', 'production', 'x', key_roles => '{Billing}')$$,
	-- scopes, duplicates, sizes
	$$SELECT apikey.create_key_role('kr-acme', 'bad-scope', '{BAD}')$$,
	$$SELECT apikey.create_key_role('kr-acme', 'billing', '{}')$$,
	$$SELECT apikey.set_key_role_scopes('kr-acme', 'billing', '{a:b,""}')$$,
	$$SELECT apikey.create_key('kr-acme', 'production', 'x', key_roles => ARRAY(SELECT 'r' || i FROM generate_series(1, 17) i))$$,
	$$SELECT apikey.create_key('kr-acme', 'production', 'x', key_roles => '{{billing}}')$$,
	-- NULLs
	$$SELECT apikey.create_key('kr-acme', 'production', 'x', key_roles => NULL)$$,
	$$SELECT apikey.create_key('kr-acme', 'production', 'x', key_roles => '{billing,NULL}')$$,
	$$SELECT apikey.create_key_role(NULL, 'r', '{}')$$,
	$$SELECT apikey.create_key_role('kr-acme', NULL, '{}')$$,
	$$SELECT apikey.create_key_role('kr-acme', 'r', NULL)$$,
	$$SELECT apikey.set_key_role_scopes('kr-acme', 'billing', NULL)$$,
	$$SELECT apikey.drop_key_role('kr-acme', NULL)$$,
	$$SELECT apikey.drop_key_role('kr-acme', 'billing', NULL)$$,
	$$SELECT apikey.set_key_roles(NULL, '{}')$$,
	$$SELECT apikey.set_key_scopes(NULL, '{}')$$,
	$$SELECT apikey.set_key_scopes('00000000000', '{}')$$
]) AS stmt;
SELECT count(*) - :keys_before AS keys_written_by_errors FROM apikey.keys WHERE tenant = 'kr-acme';
SELECT pg_temp.try(format('SELECT apikey.set_key_roles(%L, NULL)', :'key_id')) AS set_roles_null,
       pg_temp.try(format('SELECT apikey.set_key_roles(%L, %L)', :'key_id', '{auditor}')) AS other_tenants_role,
       pg_temp.try(format('SELECT apikey.set_key_scopes(%L, NULL)', :'key_id')) AS set_scopes_null,
       pg_temp.try(format('SELECT apikey.set_key_scopes(%L, %L)', :'key_id', '{BAD}')) AS set_bad_scope;
SELECT scopes, key_roles, effective_scopes AS unchanged FROM apikey.key_list WHERE key_id = :'key_id';
SELECT tenant, name, scopes FROM apikey.key_role_list WHERE tenant = 'kr-acme' ORDER BY name;
