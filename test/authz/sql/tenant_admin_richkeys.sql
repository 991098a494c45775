-- Tenant administrators and the functions of richer keys: each obeys the
-- one rule.  An administrator (a key of the tenant holding apikey:admin)
-- creates and edits only keys within its tenant and environment whose
-- every effective scope (its own and its roles') it holds and whose
-- resources it covers; never edits a key to more than that; manages key
-- roles whose scopes it holds and whose keys it could edit; and revokes an
-- owner's keys only when it may revoke every one of them.  Its own IP
-- allowlist does not limit the allowlists it sets.  Key texts are random:
-- kept in a table, never printed.
\set SHOW_CONTEXT never

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

CREATE ROLE regress_tr_app;
SELECT apikey.grant_verifier('regress_tr_app');

-- Set up by the (superuser) administrator.
SELECT apikey.create_tenant('tr-acme') > 0 AS created, apikey.create_tenant('tr-globex') > 0 AS created;
SELECT apikey.create_key_role('tr-acme', 'support', '{tickets:read}');
SELECT apikey.create_key_role('tr-acme', 'billing', '{billing:write}');
SELECT apikey.create_key_role('tr-acme', 'ops', '{orders:read}');
SELECT apikey.create_key_role('tr-acme', 'viewer', '{orders:read}');
SELECT apikey.create_key_role('tr-globex', 'auditor', '{orders:read}');
CREATE TABLE tr_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
GRANT SELECT ON tr_keys TO regress_tr_app;
INSERT INTO tr_keys
SELECT label, k.key_id, k.api_key
  FROM (VALUES
	('admin',          'tr-acme',   'production', '{apikey:admin,orders:read,orders:write,tickets:read}', '{}', NULL, NULL, '{203.0.113.0/24}'),
	('c7 admin',       'tr-acme',   'production', '{apikey:admin,orders:read}', '{}', '{collection:7}', NULL, NULL),
	('preview admin',  'tr-acme',   'preview',    '{apikey:admin,orders:read,tickets:read}', '{}', NULL, NULL, NULL),
	('reader',         'tr-acme',   'production', '{orders:read}', '{}', NULL, 'user_bob', NULL),
	('support',        'tr-acme',   'production', '{}', '{support}', NULL, 'user_bob', NULL),
	('billing',        'tr-acme',   'production', '{}', '{billing}', NULL, 'user_bob', NULL),
	('ops',            'tr-acme',   'production', '{}', '{ops}', NULL, 'user_eve', NULL),
	('preview viewer', 'tr-acme',  'preview',    '{}', '{viewer}', NULL, 'user_carol', NULL),
	('c7 reader',      'tr-acme',   'production', '{orders:read}', '{}', '{collection:7}', 'user_dan', NULL),
	('globex reader',  'tr-globex', 'production', '{orders:read}', '{auditor}', NULL, 'user_bob', NULL)
  ) AS v(label, tenant, environment, scopes, roles, resources, owner, allowed_ips),
  LATERAL apikey.create_key(v.tenant, v.environment, v.label, scopes => v.scopes::text[],
                            key_roles => v.roles::text[], resources => v.resources::text[],
                            owner => v.owner, allowed_ips => v.allowed_ips::cidr[]) AS k;
SELECT max(event_id) AS audit_mark FROM apikey.audit \gset

SET ROLE regress_tr_app;

-- The production administrator (unrestricted; its key has an allowlist,
-- so it authenticates from an address in it).
BEGIN;
SELECT status FROM apikey.authenticate((SELECT api_key FROM tr_keys WHERE label = 'admin'), 'apikey:admin',
                                       client_ip => '203.0.113.5');
-- creating keys: roles count, resources are free for it, allowlists within
-- the one an administrator set on its own key (vendor_controls.sql)
SELECT c.name, pg_temp.probe(c.sql) AS create_key
  FROM (VALUES
	('role it holds',               $$SELECT apikey.create_key('tr-acme', 'production', 'x', key_roles => '{support}')$$),
	('roles it holds, and scopes',  $$SELECT apikey.create_key('tr-acme', 'production', 'x', scopes => '{orders:write}', key_roles => '{support,ops}')$$),
	('role it lacks',               $$SELECT apikey.create_key('tr-acme', 'production', 'x', key_roles => '{billing}')$$),
	('role it lacks among others',  $$SELECT apikey.create_key('tr-acme', 'production', 'x', key_roles => '{support,billing}')$$),
	('role of another tenant',      $$SELECT apikey.create_key('tr-acme', 'production', 'x', key_roles => '{auditor}')$$),
	('several resources',           $$SELECT apikey.create_key('tr-acme', 'production', 'x', resources => '{collection:1,collection:*}')$$),
	('an allowlist within its own', $$SELECT apikey.create_key('tr-acme', 'production', 'x', allowed_ips => '{203.0.113.128/25}')$$),
	('an allowlist beyond its own', $$SELECT apikey.create_key('tr-acme', 'production', 'x', allowed_ips => '{10.0.0.0/8}')$$),
	('owner and meta',              $$SELECT apikey.create_key('tr-acme', 'production', 'x', owner => 'user_zoe', meta => '{"a": 1}')$$),
	('other environment, a role',   $$SELECT apikey.create_key('tr-acme', 'preview', 'x', key_roles => '{ops}')$$),
	('other tenant',                $$SELECT apikey.create_key('tr-globex', 'production', 'x', key_roles => '{auditor}')$$)
  ) AS c(name, sql);
-- editing keys: each function on each kind of key.  ok: it edits;
-- 42501: the key, or the edit, is beyond what its key covers; 42704: not a
-- key it can see
SELECT t.label AS target,
       pg_temp.probe(format('SELECT apikey.set_key_scopes(%L, %L)', t.key_id, '{orders:read,orders:write}')) AS scopes_held,
       pg_temp.probe(format('SELECT apikey.set_key_scopes(%L, %L)', t.key_id, '{billing:write}')) AS scopes_lacked,
       pg_temp.probe(format('SELECT apikey.set_key_roles(%L, %L)', t.key_id, '{support}')) AS role_held,
       pg_temp.probe(format('SELECT apikey.set_key_roles(%L, %L)', t.key_id, '{billing}')) AS role_lacked,
       pg_temp.probe(format('SELECT apikey.set_key_resources(%L, %L)', t.key_id, '{collection:1}')) AS resources,
       pg_temp.probe(format('SELECT apikey.set_key_owner(%L, %L)', t.key_id, 'user_x')) AS owner,
       pg_temp.probe(format('SELECT apikey.set_key_meta(%L, %L)', t.key_id, '{"a": 1}')) AS meta,
       pg_temp.probe(format('SELECT apikey.set_key_allowed_ips(%L, %L)', t.key_id, '{10.0.0.0/8}')) AS allowed_ips
  FROM tr_keys AS t WHERE t.label IN ('reader', 'support', 'billing', 'preview viewer', 'c7 reader', 'globex reader')
 ORDER BY t.label;
-- an owner's keys: all of them or none
SELECT pg_temp.try($$SELECT apikey.revoke_owner_keys('tr-acme', 'user_bob', 'left')$$) AS bob_one_beyond;
SELECT r.label, v.status AS after_refusal
  FROM tr_keys AS r, apikey.verify(r.api_key) AS v
 WHERE r.label IN ('reader', 'support', 'billing') ORDER BY r.label;
SELECT pg_temp.try($$SELECT apikey.revoke_owner_keys('tr-acme', 'user_carol')$$) AS carol_in_preview;
SELECT pg_temp.try($$SELECT apikey.revoke_owner_keys('tr-globex', 'user_bob')$$) AS bob_at_globex;
SELECT pg_temp.probe($$SELECT apikey.revoke_owner_keys('tr-acme', 'user_dan')$$) AS dan_restricted_key;
-- key roles: scopes it holds; keys it could edit
SELECT c.name, pg_temp.probe(c.sql) AS result
  FROM (VALUES
	('create, scopes held',              $$SELECT apikey.create_key_role('tr-acme', 'mine', '{orders:read,tickets:read}')$$),
	('create, scope lacked',             $$SELECT apikey.create_key_role('tr-acme', 'mine', '{billing:write}')$$),
	('create in another tenant',         $$SELECT apikey.create_key_role('tr-globex', 'mine', '{}')$$),
	('change ops to scopes held',        $$SELECT apikey.set_key_role_scopes('tr-acme', 'ops', '{orders:read,orders:write}')$$),
	('change ops to a scope lacked',     $$SELECT apikey.set_key_role_scopes('tr-acme', 'ops', '{orders:*}')$$),
	('change support to a scope lacked', $$SELECT apikey.set_key_role_scopes('tr-acme', 'support', '{tickets:*}')$$),
	('change billing (not held)',        $$SELECT apikey.set_key_role_scopes('tr-acme', 'billing', '{}')$$),
	('change viewer (a preview key)',    $$SELECT apikey.set_key_role_scopes('tr-acme', 'viewer', '{orders:read}')$$),
	('drop billing, detaching',          $$SELECT apikey.drop_key_role('tr-acme', 'billing', detach => true)$$),
	('drop support, detaching',          $$SELECT apikey.drop_key_role('tr-acme', 'support', detach => true)$$),
	('drop viewer, detaching',           $$SELECT apikey.drop_key_role('tr-acme', 'viewer', detach => true)$$),
	('change auditor (other tenant)',    $$SELECT apikey.set_key_role_scopes('tr-globex', 'auditor', '{}')$$)
  ) AS c(name, sql);
-- the ops key with the changed role, in this transaction, and labelled
SELECT apikey.set_actor('alice@tr-acme.example');
SELECT apikey.set_key_role_scopes('tr-acme', 'ops', '{orders:read,orders:write}') AS keys_changed;
SELECT status FROM apikey.verify((SELECT api_key FROM tr_keys WHERE label = 'ops'), scope => 'orders:write');
SELECT apikey.set_key_owner(key_id, 'user_bob') FROM tr_keys WHERE label = 'ops';
-- it lists its own tenant's roles only
SELECT DISTINCT tenant FROM apikey.key_role_list;
COMMIT;

-- A resource-restricted administrator (collection:7): keys within
-- collection:7 only, and no key roles (a role is not restricted).
BEGIN;
SELECT status FROM apikey.authenticate((SELECT api_key FROM tr_keys WHERE label = 'c7 admin'), 'apikey:admin');
SELECT c.name, pg_temp.probe(c.sql) AS result
  FROM (VALUES
	('create within collection:7',       $$SELECT apikey.create_key('tr-acme', 'production', 'x', scopes => '{orders:read}', resources => '{collection:7}')$$),
	('create for collection:7 and 8',    $$SELECT apikey.create_key('tr-acme', 'production', 'x', resources => '{collection:7,collection:8}')$$),
	('create for collection:*',          $$SELECT apikey.create_key('tr-acme', 'production', 'x', resources => '{collection:*}')$$),
	('create unrestricted',              $$SELECT apikey.create_key('tr-acme', 'production', 'x')$$),
	('create with a role it holds',      $$SELECT apikey.create_key('tr-acme', 'production', 'x', key_roles => '{viewer}', resource => 'collection:7')$$),
	('c7 reader to collection:*',        format('SELECT apikey.set_key_resources(%L, %L)', (SELECT key_id FROM tr_keys WHERE label = 'c7 reader'), '{collection:*}')),
	('c7 reader unrestricted',           format('SELECT apikey.set_key_resources(%L, NULL)', (SELECT key_id FROM tr_keys WHERE label = 'c7 reader'))),
	('c7 reader owner',                  format('SELECT apikey.set_key_owner(%L, %L)', (SELECT key_id FROM tr_keys WHERE label = 'c7 reader'), 'user_x')),
	('reader (unrestricted) owner',      format('SELECT apikey.set_key_owner(%L, %L)', (SELECT key_id FROM tr_keys WHERE label = 'reader'), 'user_x')),
	('revoke user_dan''s keys',          $$SELECT apikey.revoke_owner_keys('tr-acme', 'user_dan')$$),
	('create a role',                    $$SELECT apikey.create_key_role('tr-acme', 'mine', '{orders:read}')$$)
  ) AS c(name, sql);
ROLLBACK;

-- The preview administrator: preview keys only.
BEGIN;
SELECT status FROM apikey.authenticate((SELECT api_key FROM tr_keys WHERE label = 'preview admin'), 'apikey:admin');
SELECT c.name, pg_temp.probe(c.sql) AS result
  FROM (VALUES
	('create preview key with a role',   $$SELECT apikey.create_key('tr-acme', 'preview', 'x', key_roles => '{support}')$$),
	('create production key',            $$SELECT apikey.create_key('tr-acme', 'production', 'x', owner => 'user_x')$$),
	('edit a production key''s owner',   format('SELECT apikey.set_key_owner(%L, %L)', (SELECT key_id FROM tr_keys WHERE label = 'reader'), 'user_x')),
	('edit a production key''s allowlist', format('SELECT apikey.set_key_allowed_ips(%L, NULL)', (SELECT key_id FROM tr_keys WHERE label = 'admin'))),
	('revoke user_carol''s keys',        $$SELECT apikey.revoke_owner_keys('tr-acme', 'user_carol')$$),
	('revoke user_bob''s keys',          $$SELECT apikey.revoke_owner_keys('tr-acme', 'user_bob')$$),
	('change ops (production keys)',     $$SELECT apikey.set_key_role_scopes('tr-acme', 'ops', '{orders:read}')$$),
	('change viewer',                    $$SELECT apikey.set_key_role_scopes('tr-acme', 'viewer', '{orders:read,tickets:read}')$$)
  ) AS c(name, sql);
ROLLBACK;

-- A key without apikey:admin, and no key at all: 42501 for each function.
BEGIN;
SELECT status FROM apikey.authenticate((SELECT api_key FROM tr_keys WHERE label = 'reader'));
SELECT c.name, pg_temp.try(c.sql) AS reader_key
  FROM (VALUES
	('set_key_owner own', format('SELECT apikey.set_key_owner(%L, %L)', (SELECT key_id FROM tr_keys WHERE label = 'reader'), 'x')),
	('set_key_scopes own', format('SELECT apikey.set_key_scopes(%L, %L)', (SELECT key_id FROM tr_keys WHERE label = 'reader'), '{}')),
	('revoke_owner_keys', $$SELECT apikey.revoke_owner_keys('tr-acme', 'user_bob')$$),
	('create_key_role', $$SELECT apikey.create_key_role('tr-acme', 'x', '{}')$$)
  ) AS c(name, sql);
SELECT count(*) AS key_role_list_rows FROM apikey.key_role_list;
ROLLBACK;
SELECT c.name, pg_temp.try(c.sql) AS verifier_only
  FROM (VALUES
	('create_key with roles', $$SELECT apikey.create_key('tr-acme', 'production', 'x', key_roles => '{ops}')$$),
	('set_key_scopes', format('SELECT apikey.set_key_scopes(%L, %L)', (SELECT key_id FROM tr_keys WHERE label = 'reader'), '{}')),
	('set_key_roles', format('SELECT apikey.set_key_roles(%L, %L)', (SELECT key_id FROM tr_keys WHERE label = 'reader'), '{}')),
	('set_key_resources', format('SELECT apikey.set_key_resources(%L, NULL)', (SELECT key_id FROM tr_keys WHERE label = 'reader'))),
	('set_key_owner', format('SELECT apikey.set_key_owner(%L, NULL)', (SELECT key_id FROM tr_keys WHERE label = 'reader'))),
	('set_key_meta', format('SELECT apikey.set_key_meta(%L, NULL)', (SELECT key_id FROM tr_keys WHERE label = 'reader'))),
	('set_key_allowed_ips', format('SELECT apikey.set_key_allowed_ips(%L, NULL)', (SELECT key_id FROM tr_keys WHERE label = 'reader'))),
	('revoke_owner_keys', $$SELECT apikey.revoke_owner_keys('tr-acme', 'user_bob')$$),
	('create_key_role', $$SELECT apikey.create_key_role('tr-acme', 'x', '{}')$$),
	('set_key_role_scopes', $$SELECT apikey.set_key_role_scopes('tr-acme', 'ops', '{}')$$),
	('drop_key_role', $$SELECT apikey.drop_key_role('tr-acme', 'ops')$$),
	('set_actor', $$SELECT apikey.set_actor('x')$$)
  ) AS c(name, sql);
SELECT count(*) AS key_role_list_rows FROM apikey.key_role_list;
RESET ROLE;

-- What the superuser sees afterwards: only what the production
-- administrator did for real, by its key and labelled with its actor.
SELECT a.action, r.label, a.actor_role, a.actor, a.actor_key_id = (SELECT key_id FROM tr_keys WHERE label = 'admin') AS by_admin_key,
       a.details
  FROM apikey.audit AS a LEFT JOIN tr_keys AS r USING (key_id)
 WHERE a.event_id > :audit_mark ORDER BY a.event_id;
SELECT label, owner, effective_scopes FROM tr_keys JOIN apikey.key_list USING (key_id)
 WHERE label IN ('ops', 'reader', 'billing') ORDER BY label;
DROP TABLE tr_keys;
