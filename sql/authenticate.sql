-- authenticate: verify and make the key the identity of the transaction,
-- for row-level-security policies.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('auth-a') > 0 AS a, apikey.create_tenant('auth-b') > 0 AS b;
SELECT api_key AS key_a, key_id AS id_a FROM apikey.create_key('auth-a', 'production', 'app',
       scopes => '{orders:read,reports:*}') \gset
SELECT api_key AS key_b FROM apikey.create_key('auth-b', 'preview', 'app', scopes => '{*}',
       resource => 'collection:7') \gset

-- nobody is authenticated to begin with
SELECT apikey.current_tenant(), apikey.current_tenant_id(), apikey.current_key_id(),
       apikey.current_environment(), apikey.current_scopes(), apikey.current_resource(),
       apikey.has_scope('orders:read'), apikey.can_access('collection:7', 'orders:read');

BEGIN;
SELECT valid, status, tenant FROM apikey.authenticate(:'key_a');
SELECT apikey.current_tenant(),
       apikey.current_tenant_id() = (SELECT tenant_id FROM apikey.tenants WHERE slug = 'auth-a') AS tenant_id,
       apikey.current_key_id() = :'id_a' AS key_id,
       apikey.current_environment(), apikey.current_scopes(), apikey.current_resource();
SELECT s AS scope, apikey.has_scope(s) FROM unnest('{orders:read,orders:write,reports:x,reports}'::text[]) s;
SELECT apikey.can_access('collection:1', 'orders:read') AS unrestricted_key,
       apikey.can_access('collection:1', 'orders:write') AS lacks_scope,
       apikey.has_scope(NULL) AS null_scope;
COMMIT;
-- the identity ends with the transaction
SELECT apikey.current_tenant(), apikey.current_key_id();

-- and with a rollback
BEGIN;
SELECT status FROM apikey.authenticate(:'key_a');
ROLLBACK;
SELECT apikey.current_tenant();

-- and with PREPARE TRANSACTION: the prepared transaction is no longer this
-- session's, and whoever commits it later gets no identity from it
BEGIN;
SELECT status FROM apikey.authenticate(:'key_a');
PREPARE TRANSACTION 'apikey_authenticate';
SELECT apikey.current_tenant() AS after_prepare, apikey.current_key_id() AS key_id,
       apikey.has_scope('orders:read') AS has_scope;
COMMIT PREPARED 'apikey_authenticate';
SELECT apikey.current_tenant() AS after_commit_prepared;

-- outside a transaction block it lasts for its own statement only
SELECT (apikey.authenticate(:'key_a')).status;
SELECT apikey.current_tenant();

-- a resource-restricted key
BEGIN;
SELECT status FROM apikey.authenticate(:'key_b');
SELECT apikey.current_resource(), apikey.current_resources(),
       apikey.can_access('collection:7', 'orders:read') AS own_collection,
       apikey.can_access('collection:8', 'orders:read') AS other_collection;
COMMIT;

-- savepoints: like SET LOCAL, a rolled-back savepoint restores the
-- identity in force before it; a second authenticate replaces the first
BEGIN;
SELECT status FROM apikey.authenticate(:'key_a');
SAVEPOINT s1;
SELECT status FROM apikey.authenticate(:'key_b');
SELECT apikey.current_tenant() AS inside_savepoint;
ROLLBACK TO s1;
SELECT apikey.current_tenant() AS after_rollback_to;
SAVEPOINT s2;
SELECT status FROM apikey.authenticate(:'key_b');
RELEASE s2;
SELECT apikey.current_tenant() AS after_release;
COMMIT;
SELECT apikey.current_tenant() AS after_commit;

-- a failed authenticate raises SQLSTATE 28000, names the status and never echoes the key
CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;
SELECT pg_temp.sqlstate_of(format('SELECT apikey.authenticate(%L)', k)) AS sqlstate
  FROM unnest(ARRAY['ak_live_' || repeat('A', 44), :'key_a' || 'x']) k;
SELECT pg_temp.sqlstate_of(format('SELECT apikey.authenticate(%L, %L)', :'key_a', 'orders:write')) AS sqlstate;
SELECT apikey.authenticate('ak_live_' || repeat('A', 44));
SELECT apikey.authenticate(:'key_a', 'orders:write');
SELECT apikey.authenticate(NULL);
SELECT apikey.authenticate(apikey.public_key('auth-a', 'production'));
SET apikey.environment = 'preview';
SELECT apikey.authenticate(:'key_a');
SELECT (apikey.authenticate(:'key_b')).status;
RESET apikey.environment;
-- a failure inside a transaction leaves no identity behind
BEGIN;
SELECT status FROM apikey.authenticate(:'key_a');
SAVEPOINT s;
SELECT apikey.authenticate(:'key_a', 'admin:all');
ROLLBACK TO s;
SELECT apikey.current_tenant() AS still_the_first;
COMMIT;

-- settings cannot forge the identity: the apikey prefix is reserved, and the
-- identity is not a setting at all
SET apikey.tenant = 'auth-b';
SELECT set_config('apikey.current_tenant', 'auth-b', false);
SELECT apikey.current_tenant();
BEGIN;
SELECT status FROM apikey.authenticate(:'key_a');
SET LOCAL apikey.environment = 'preview';
RESET ALL;
SELECT apikey.current_tenant() AS unchanged_by_settings;
COMMIT;

-- authenticate in a read-only transaction
BEGIN READ ONLY;
SELECT status FROM apikey.authenticate(:'key_a');
SELECT apikey.current_tenant();
COMMIT;


-- without apikey.environment, authenticate accepts any environment's keys
-- and warned about it once in this session (at its first call above); a
-- cautious operator makes it refuse instead
SET apikey.require_environment = on;
SELECT apikey.authenticate(:'key_a');
SET apikey.environment = 'production';
SELECT status FROM apikey.authenticate(:'key_a');
SELECT apikey.authenticate(:'key_b');
RESET apikey.environment;
RESET apikey.require_environment;
-- only a superuser (or ALTER ROLE by one) sets it
CREATE ROLE regress_auth_plain;
SET ROLE regress_auth_plain;
SET apikey.require_environment = off;
RESET ROLE;
DROP ROLE regress_auth_plain;
