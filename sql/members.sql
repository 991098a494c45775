-- Tenant members: the application's dashboard role (grant_delegate) acts
-- for one signed-in person of one tenant per transaction (act_for).  Until
-- the transaction ends, every management function and listing acts only
-- within that tenant, those environments and those rights, by the rule
-- tenant administrators' keys obey, and records the person as the actor.
-- The rights are the same words for members and for the scopes of tenant
-- administrators' keys: one test per right for each.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('mem-acme') > 0 AS acme, apikey.create_tenant('mem-globex') > 0 AS globex;
CREATE ROLE mem_dashboard;
SELECT apikey.grant_delegate('mem_dashboard');
CREATE ROLE mem_app;
SELECT apikey.grant_verifier('mem_app');

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	-- key ids are random: shown as ID
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'key [0-9A-Za-z]{8,}( |$)', 'key ID\1', 'g');
END
$$;
-- the keys the tests act on, made by an administrator
CREATE TEMP TABLE mem_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
INSERT INTO mem_keys
SELECT 'alice', key_id, api_key FROM apikey.create_key('mem-acme', 'production', 'alice''s', owner => 'alice')
UNION ALL
SELECT 'bob', key_id, api_key FROM apikey.create_key('mem-acme', 'production', 'bob''s', owner => 'bob', scopes => '{orders:read}')
UNION ALL
SELECT 'preview', key_id, api_key FROM apikey.create_key('mem-acme', 'preview', 'preview')
UNION ALL
SELECT 'globex', key_id, api_key FROM apikey.create_key('mem-globex', 'production', 'globex''s');
GRANT SELECT ON mem_keys TO mem_dashboard, mem_app;
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO mem_dashboard, mem_app;
SELECT key_id AS alice_id FROM mem_keys WHERE label = 'alice' \gset
SELECT key_id AS bob_id FROM mem_keys WHERE label = 'bob' \gset
SELECT key_id AS preview_id FROM mem_keys WHERE label = 'preview' \gset
SELECT key_id AS globex_id FROM mem_keys WHERE label = 'globex' \gset
SELECT key_id AS gone_id FROM apikey.create_key('mem-acme', 'production', 'gone') \gset
SELECT apikey.delete_key(:'gone_id');

-- By itself the dashboard role manages nothing and sees nothing.
SET ROLE mem_dashboard;
SELECT pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x')$$) AS create_key,
       pg_temp.try(format('SELECT apikey.delete_key(%L)', :'alice_id')) AS delete_key;
SELECT count(*) AS keys_seen FROM apikey.key_list;
-- nor may it act as an administrator, or use what act_for does inside
SELECT pg_temp.try($$SELECT apikey.create_tenant('mem-mine')$$) AS create_tenant,
       pg_temp.try($$SELECT apikey_internal.act_for(1, 'mem-acme', 'me', '{apikey:admin}', NULL)$$) AS internal_act_for;

-- act_for: the tenant, the person, the rights (default apikey:admin).
BEGIN;
SELECT apikey.act_for('mem-acme', 'carol@acme.example');
SELECT tenant, name FROM apikey.key_list ORDER BY name;
SELECT key_id AS new_id FROM apikey.create_key('mem-acme', 'production', 'carol''s') \gset
SELECT apikey.rename_key(:'new_id', 'carol''s, renamed');
SELECT name, created_by FROM apikey.key_list WHERE key_id = :'new_id';
SELECT action, actor, actor_role FROM apikey.audit_log WHERE key_id = :'new_id' ORDER BY event_id;
-- another tenant's key id is as absent as a key that never was (42704)
SELECT pg_temp.try(format('SELECT apikey.delete_key(%L)', :'globex_id')) AS other_tenants_key;
SELECT pg_temp.try(format('SELECT apikey.delete_key(%L)', :'gone_id')) AS missing_key;
SELECT replace(pg_temp.try(format('SELECT apikey.rename_key(%L, %L)', :'globex_id', 'x')), :'globex_id', 'ID') =
       replace(pg_temp.try(format('SELECT apikey.rename_key(%L, %L)', :'gone_id', 'x')), :'gone_id', 'ID') AS same_answer;
-- another tenant by name: 42501
SELECT pg_temp.try($$SELECT apikey.create_key('mem-globex', 'production', 'x')$$) AS other_tenant,
       pg_temp.try($$SELECT apikey.public_key('mem-globex', 'production')$$) AS other_public_key;
-- tenant-wide settings of the vendor stay the administrators'
SELECT pg_temp.try($$SELECT apikey.set_tenant_rate_limit('mem-acme', 'x', 1, '1 second')$$) AS tenant_rate_limit;
-- not widened later in the transaction: a second act_for is refused,
-- even a narrower one, and the actor cannot be relabelled
SELECT pg_temp.try($$SELECT apikey.act_for('mem-globex', 'mallory')$$) AS second_act_for,
       pg_temp.try($$SELECT apikey.act_for('mem-acme', 'carol@acme.example', '{apikey:keys:read}')$$) AS narrower,
       pg_temp.try($$SELECT apikey.set_actor('mallory')$$) AS set_actor;
-- nor by a setting
SELECT pg_temp.try($$SET apikey.tenant = 'mem-globex'$$) AS set_tenant;
SELECT count(*) FILTER (WHERE tenant = 'mem-globex') AS globex_keys_seen FROM apikey.key_list;
-- a rolled-back savepoint keeps it (it is never undone before the end)
SAVEPOINT s;
SELECT pg_temp.try(format('SELECT apikey.delete_key(%L)', :'globex_id')) AS in_savepoint;
ROLLBACK TO SAVEPOINT s;
SELECT pg_temp.try($$SELECT apikey.act_for('mem-globex', 'mallory')$$) AS after_savepoint;
COMMIT;
-- It ended with the transaction: the next one (the next client of a
-- transaction-pooled connection) has nothing.
SELECT count(*) AS keys_seen_after_commit FROM apikey.key_list;
SELECT pg_temp.try(format('SELECT apikey.delete_key(%L)', :'new_id')) AS delete_after_commit;
BEGIN;
SELECT apikey.act_for('mem-acme', 'carol@acme.example');
ROLLBACK;
SELECT count(*) AS keys_seen_after_rollback FROM apikey.key_list;
RESET ROLE;
SELECT created_by FROM apikey.key_list WHERE key_id = :'new_id';

-- A member is on the tenant's side: the vendor's controls hold for it
-- (apikey_internal.by_tenant, as the owner sees it).
BEGIN;
SELECT apikey.act_for('mem-acme', 'carol@acme.example');
SELECT apikey_internal.by_tenant() AS by_tenant;
ROLLBACK;
SELECT apikey_internal.by_tenant() AS by_tenant_after;
SELECT apikey.set_rate_limit(:'alice_id', 'vendor', 100, '1 minute');
SET ROLE mem_dashboard;
BEGIN;
SELECT apikey.act_for('mem-acme', 'carol@acme.example');
SELECT pg_temp.try(format('SELECT apikey.remove_rate_limit(%L, %L)', :'alice_id', 'vendor')) AS lift_vendor_limit;
ROLLBACK;
RESET ROLE;
SELECT apikey.remove_rate_limit(:'alice_id', 'vendor');
-- the actor is the member's, whoever may call set_actor
BEGIN;
SELECT apikey.act_for('mem-acme', 'carol@acme.example');
SELECT pg_temp.try($$SELECT apikey.set_actor('mallory')$$) AS set_actor_as_owner;
SELECT apikey_internal.actor() AS actor;
ROLLBACK;
-- and a transaction has one principal: no act_for after authenticate
BEGIN;
SELECT status FROM apikey.authenticate((SELECT api_key FROM mem_keys WHERE label = 'alice'));
SELECT pg_temp.try($$SELECT apikey.act_for('mem-acme', 'carol@acme.example')$$) AS after_authenticate;
ROLLBACK;
BEGIN;
SELECT apikey.act_for('mem-acme', 'carol@acme.example');
SELECT pg_temp.try(format('SELECT apikey.authenticate(%L)', (SELECT api_key FROM mem_keys WHERE label = 'alice'))) AS authenticate_after;
ROLLBACK;
-- outside a transaction block it ends with its statement, and says so
SELECT apikey.act_for('mem-acme', 'carol@acme.example');
SELECT apikey_internal.acting_tenant_id() AS acting_after_statement;

-- Bad arguments.
SET ROLE mem_dashboard;
SELECT pg_temp.try($$SELECT apikey.act_for('mem-acme', 'carol', '{apikey:keys:delet}')$$) AS unknown_right,
       pg_temp.try($$SELECT apikey.act_for('mem-acme', 'carol', '{apikey:owner}')$$) AS unknown_right_2,
       pg_temp.try($$SELECT apikey.act_for('mem-nowhere', 'carol')$$) AS unknown_tenant,
       pg_temp.try($$SELECT apikey.act_for('mem-acme', 'carol', environments => '{staging}')$$) AS unknown_environment;
SELECT pg_temp.try($$SELECT apikey.act_for('mem-acme', NULL)$$) AS no_actor,
       pg_temp.try($$SELECT apikey.act_for('mem-acme', ' ')$$) AS blank_actor,
       pg_temp.try($$SELECT apikey.act_for('mem-acme', 'carol', NULL)$$) AS no_rights,
       pg_temp.try($$SELECT apikey.act_for('mem-acme', 'carol', environments => '{NULL}')$$) AS null_environment;
-- the same words are the reserved part of every key's scopes
RESET ROLE;
SELECT pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x', scopes => '{apikey:keys:delet}')$$) AS key_scope;
SELECT pg_temp.try($$SELECT apikey.create_key_role('mem-acme', 'x', '{apikey:everything}')$$) AS role_scope;

-- Environments: those named only, for listing and managing.
SET ROLE mem_dashboard;
BEGIN;
SELECT apikey.act_for('mem-acme', 'dave', environments => '{preview}');
SELECT name, environment FROM apikey.key_list ORDER BY name;
SELECT pg_temp.try(format('SELECT apikey.revoke_key(%L)', :'alice_id')) AS production_key,
       pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x')$$) AS create_in_production,
       pg_temp.try($$SELECT apikey.public_key('mem-acme', 'production')$$) AS production_public_key;
SELECT pg_temp.try(format('SELECT apikey.rename_key(%L, %L)', :'preview_id', 'preview, renamed')) AS preview_key;
SELECT count(*) AS production_events_seen FROM apikey.audit_log WHERE key_id = :'alice_id';
ROLLBACK;

-- What a member gives keys stays within what it holds: the scopes (and
-- those of key roles) among its rights, its environments.
RESET ROLE;
SELECT apikey.create_key_role('mem-acme', 'billing', '{billing:read}');
SET ROLE mem_dashboard;
BEGIN;
SELECT apikey.act_for('mem-acme', 'erin', '{apikey:keys:create,apikey:keys:edit,apikey:keys:read,orders:*}');
SELECT pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x', scopes => '{orders:read}')$$) AS held_scope,
       pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x', scopes => '{billing:read}')$$) AS other_scope,
       pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x', key_roles => '{billing}')$$) AS other_role,
       pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x', scopes => '{apikey:admin}')$$) AS admin_scope;
-- rights are scopes like others: given only when held
SELECT pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x', scopes => '{apikey:keys:read}')$$) AS held_right,
       pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x', scopes => '{apikey:keys:delete}')$$) AS other_right,
       pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x', scopes => '{apikey:keys:own}')$$) AS restriction;
SELECT pg_temp.try(format('SELECT apikey.set_key_scopes(%L, %L)', :'alice_id', '{orders:write}')) AS widen_to_held,
       pg_temp.try(format('SELECT apikey.set_key_scopes(%L, %L)', :'alice_id', '{billing:read}')) AS widen_beyond;
ROLLBACK;

-- apikey:keys:own: every other right reaches only the member's own keys.
BEGIN;
SELECT apikey.act_for('mem-acme', 'bob', '{apikey:admin,apikey:keys:own,orders:*}');
SELECT name, owner FROM apikey.key_list ORDER BY name;
-- apikey:admin holds every right, to give too
SELECT pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x', scopes => '{apikey:keys:read,apikey:tenant}')$$) AS rights_of_admin;
SELECT pg_temp.try(format('SELECT apikey.revoke_key(%L)', :'alice_id')) AS alices_key,
       pg_temp.try(format('SELECT apikey.rename_key(%L, %L)', :'bob_id', 'bob''s, renamed')) AS own_key,
       pg_temp.try(format('SELECT apikey.set_key_owner(%L, %L)', :'bob_id', 'alice')) AS give_away,
       pg_temp.try($$SELECT apikey.revoke_owner_keys('mem-acme', 'alice')$$) AS revoke_alices;
SELECT key_id AS bobs_new FROM apikey.create_key('mem-acme', 'production', 'bob''s second') \gset
SELECT name, owner, created_by FROM apikey.key_list WHERE key_id = :'bobs_new';
SELECT pg_temp.try($$SELECT apikey.create_key('mem-acme', 'production', 'x', owner => 'alice')$$) AS for_alice;
ROLLBACK;

-- The same restriction on a tenant administrator's key: its owner's keys.
RESET ROLE;
SELECT api_key AS bobs_admin_key FROM apikey.create_key('mem-acme', 'production', 'bob''s admin key',
       scopes => '{apikey:admin,apikey:keys:own,orders:*}', owner => 'bob') \gset
SET ROLE mem_app;
SET client_min_messages = error;
BEGIN;
SELECT status FROM apikey.authenticate(:'bobs_admin_key');
SELECT name, owner FROM apikey.key_list ORDER BY name;
SELECT pg_temp.try(format('SELECT apikey.revoke_key(%L)', :'alice_id')) AS alices_key,
       pg_temp.try(format('SELECT apikey.rename_key(%L, %L)', :'bob_id', 'bob''s, renamed')) AS own_key;
SELECT key_id AS bobs_third FROM apikey.create_key('mem-acme', 'production', 'bob''s third') \gset
SELECT name, owner FROM apikey.key_list WHERE key_id = :'bobs_third';
ROLLBACK;
RESET client_min_messages;
SET ROLE mem_dashboard;

-- One test per right, for members: the action of each right with that
-- right alone, then with every other right (not apikey:admin) but that one.
RESET ROLE;
SELECT key_id AS target_id FROM apikey.create_key('mem-acme', 'production', 'target') \gset
CREATE TEMP TABLE mem_rights (r text PRIMARY KEY, action text);
INSERT INTO mem_rights VALUES
	('apikey:keys:read', $$SELECT apikey.public_key('mem-acme', 'production')$$),
	('apikey:keys:create', $$SELECT apikey.create_key('mem-acme', 'production', 'new')$$),
	('apikey:keys:edit', format('SELECT apikey.rename_key(%L, %L)', :'target_id', 'renamed')),
	('apikey:keys:revoke', format('SELECT apikey.revoke_key(%L)', :'target_id')),
	('apikey:keys:roll', format('SELECT apikey.roll_key(%L)', :'target_id')),
	('apikey:keys:delete', format('SELECT apikey.delete_key(%L)', :'target_id')),
	('apikey:tenant', $$SELECT apikey.create_key_role('mem-acme', 'new', '{}')$$);
GRANT SELECT ON mem_rights TO mem_dashboard, mem_app;
CREATE FUNCTION pg_temp.as_member(rights text[], action text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM apikey.act_for('mem-acme', 'frank', rights);
	RETURN pg_temp.try(action);
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.as_member(text[], text) TO mem_dashboard;
SET ROLE mem_dashboard;
-- each case in a transaction of its own (act_for once per transaction);
-- the statements are not echoed (they hold random key ids)
\set ECHO none
SELECT s FROM mem_rights, LATERAL (VALUES
	(1, 'BEGIN'),
	(2, format('SELECT %L AS "right", pg_temp.as_member(%L, %L) AS with_it', r, ARRAY[r], action)),
	(3, 'ROLLBACK'),
	(4, 'BEGIN'),
	(5, format('SELECT %L AS "right", pg_temp.as_member(%L, %L) AS without_it', r,
	        ARRAY(SELECT x.r FROM mem_rights AS x WHERE x.r <> mem_rights.r ORDER BY 1), action)),
	(6, 'ROLLBACK')) AS v(n, s)
 ORDER BY r, n \gexec
\set ECHO all
-- tenant settings too, for a member with apikey:tenant
BEGIN;
SELECT apikey.act_for('mem-acme', 'frank', '{apikey:tenant}');
SELECT pg_temp.try($$SELECT apikey.set_key_policy('mem-acme', NULL, '90 days')$$) AS key_policy,
       pg_temp.try($$SELECT apikey.create_environment('mem-acme', 'staging', 'stg')$$) AS environment,
       pg_temp.try($$SELECT apikey.regenerate_public_key('mem-acme', 'preview') IS NOT NULL$$) AS public_key;
ROLLBACK;
BEGIN;
SELECT apikey.act_for('mem-acme', 'frank', '{apikey:keys:*}');
SELECT pg_temp.try($$SELECT apikey.set_key_policy('mem-acme', NULL, '90 days')$$) AS key_policy,
       pg_temp.try($$SELECT apikey.create_environment('mem-acme', 'staging', 'stg')$$) AS environment,
       pg_temp.try($$SELECT apikey.regenerate_public_key('mem-acme', 'preview') IS NOT NULL$$) AS public_key;
ROLLBACK;
-- tenant-wide settings: a member confined to some environments neither
-- changes the policy (every environment's) nor adds an environment beyond
-- its own; and the tenant's side only tightens the policy the vendor set
RESET ROLE;
SELECT apikey.set_key_policy('mem-acme', NULL, '90 days');
SET ROLE mem_dashboard;
BEGIN;
SELECT apikey.act_for('mem-acme', 'frank', '{apikey:tenant}', '{preview}');
SELECT pg_temp.try($$SELECT apikey.set_key_policy('mem-acme', NULL, '30 days')$$) AS confined_policy,
       pg_temp.try($$SELECT apikey.create_environment('mem-acme', 'staging', 'stg')$$) AS confined_environment;
ROLLBACK;
BEGIN;
SELECT apikey.act_for('mem-acme', 'frank', '{apikey:tenant}');
SELECT pg_temp.try($$SELECT apikey.set_key_policy('mem-acme', NULL, NULL)$$) AS no_maximum,
       pg_temp.try($$SELECT apikey.set_key_policy('mem-acme', NULL, '180 days')$$) AS longer,
       pg_temp.try($$SELECT apikey.set_key_policy('mem-acme', NULL, '30 days', 'sk')$$) AS other_prefix,
       pg_temp.try($$SELECT apikey.set_key_policy('mem-acme', '7 days', '30 days')$$) AS tighter;
ROLLBACK;
RESET ROLE;
SELECT apikey.set_key_policy('mem-acme', NULL, NULL);
SET ROLE mem_dashboard;
-- reading: listings with the right, nothing without it
BEGIN;
SELECT apikey.act_for('mem-acme', 'frank', '{apikey:keys:read}');
SELECT count(*) > 0 AS keys_listed, (SELECT count(*) > 0 FROM apikey.audit_log) AS events_listed,
       (SELECT count(*) FROM apikey.tenant_list) AS tenants_listed FROM apikey.key_list;
ROLLBACK;
BEGIN;
SELECT apikey.act_for('mem-acme', 'frank', '{apikey:keys:create,apikey:keys:edit,apikey:keys:revoke,apikey:keys:roll,apikey:keys:delete,apikey:tenant}');
SELECT count(*) AS keys_listed, (SELECT count(*) FROM apikey.audit_log) AS events_listed,
       (SELECT count(*) FROM apikey.tenant_list) AS tenants_listed,
       (SELECT count(*) FROM apikey.expiring_keys('1000 years')) AS expiring_listed FROM apikey.key_list;
ROLLBACK;

-- The same rights as the scopes of tenant administrators' keys.
RESET ROLE;
CREATE TEMP TABLE mem_right_keys (r text, holds boolean, api_key text);
INSERT INTO mem_right_keys
SELECT r, true, (apikey.create_key('mem-acme', 'production', 'holds ' || r, scopes => ARRAY[r])).api_key
  FROM mem_rights
UNION ALL
SELECT r, false, (apikey.create_key('mem-acme', 'production', 'lacks ' || r,
                  scopes => ARRAY(SELECT x.r FROM mem_rights AS x WHERE x.r <> mem_rights.r))).api_key
  FROM mem_rights;
GRANT SELECT ON mem_right_keys TO mem_app;
CREATE FUNCTION pg_temp.as_key(api_key text, action text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM apikey.authenticate(api_key);
	RETURN pg_temp.try(action);
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.as_key(text, text) TO mem_app;
SET ROLE mem_app;
SET client_min_messages = error;
\set ECHO none
SELECT s FROM mem_rights JOIN mem_right_keys USING (r), LATERAL (VALUES
	(1, 'BEGIN'),
	(2, format('SELECT %L AS "right", %L AS key_holds_it, pg_temp.as_key(%L, %L) AS answer', r, holds, api_key, action)),
	(3, 'ROLLBACK')) AS v(n, s)
 ORDER BY r, holds DESC, n \gexec
\set ECHO all
RESET client_min_messages;
RESET ROLE;

-- A member takes from the limits of its tenant's namespace
-- (rate_limit_take): the namespace the tenant's authenticated keys use, not
-- another tenant's; the dashboard role acting for no one has none.
SET ROLE mem_dashboard;
SELECT pg_temp.try($$SELECT apikey.rate_limit_take('signin', 'carol', 2, '1 hour')$$) AS acting_for_no_one;
BEGIN;
SELECT apikey.act_for('mem-acme', 'carol@acme.example', '{apikey:keys:read}');
SELECT allowed, remaining FROM apikey.rate_limit_take('signin', 'carol', 2, '1 hour');
COMMIT;
BEGIN;
SELECT apikey.act_for('mem-acme', 'dave@acme.example', '{apikey:keys:read}');
SELECT allowed, remaining FROM apikey.rate_limit_take('signin', 'carol', 2, '1 hour');
COMMIT;
BEGIN;
SELECT apikey.act_for('mem-globex', 'erin@globex.example', '{apikey:keys:read}');
SELECT allowed, remaining AS other_tenants_own FROM apikey.rate_limit_take('signin', 'carol', 2, '1 hour');
COMMIT;
RESET ROLE;
SET ROLE mem_app;
BEGIN;
SELECT tenant FROM apikey.authenticate((SELECT api_key FROM mem_keys WHERE label = 'alice'));
SELECT allowed, remaining AS the_tenants_key_shares_it FROM apikey.rate_limit_take('signin', 'carol', 2, '1 hour');
ROLLBACK;
RESET ROLE;
