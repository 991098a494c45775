-- The RLS hand-off: the identity apikey.authenticate() establishes is what
-- the application's row-level security policies see, for this transaction
-- only.  Key texts are random: kept in psql variables, never printed.
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

-- The application's schema (test/rls_example.sql, shown in the README),
-- owned by an ordinary role.
CREATE ROLE regress_rls_owner;
CREATE ROLE regress_rls_app;
CREATE ROLE regress_rls_other;
GRANT regress_rls_other TO regress_rls_app;
GRANT CREATE ON DATABASE apikey_authz TO regress_rls_owner;
SET ROLE regress_rls_owner;
\getenv abs_srcdir PG_ABS_SRCDIR
\set example :abs_srcdir '/sql/rls_example.sql'
\i :example
GRANT USAGE ON SCHEMA app TO regress_rls_app, regress_rls_other;
GRANT SELECT, INSERT, UPDATE, DELETE ON app.orders TO regress_rls_app, regress_rls_other;
GRANT SELECT, INSERT ON app.collections TO regress_rls_app;
GRANT EXECUTE ON FUNCTION app.order_summary() TO regress_rls_app;
RESET ROLE;
SELECT apikey.grant_verifier('regress_rls_app');

-- Two tenants and their keys (made by the superuser administrator).
SELECT apikey.create_tenant('rls-a') AS a_id, apikey.create_tenant('rls-b') AS b_id \gset
SELECT key_id AS a_rw_id, api_key AS a_rw FROM apikey.create_key('rls-a', 'production', 'A read-write',
       scopes => '{orders:read,orders:write,collections:read,collections:write}') \gset
SELECT api_key AS a_ro FROM apikey.create_key('rls-a', 'production', 'A read-only',
       scopes => '{orders:read,collections:read}') \gset
SELECT api_key AS a_c2 FROM apikey.create_key('rls-a', 'production', 'A collection 2 only',
       scopes => '{orders:*,collections:read}', resource => 'collection:2') \gset
SELECT api_key AS a_none FROM apikey.create_key('rls-a', 'production', 'A no scopes') \gset
SELECT key_id AS b_rw_id, api_key AS b_rw FROM apikey.create_key('rls-b', 'production', 'B read-write',
       scopes => '{orders:*,collections:*}') \gset

-- Their data, loaded by the superuser (who bypasses RLS).
INSERT INTO app.collections (collection_id, tenant_id, name) VALUES
	(1, :a_id, 'A one'), (2, :a_id, 'A two'), (3, :b_id, 'B three');
INSERT INTO app.orders (tenant_id, collection_id, item, amount) VALUES
	(:a_id, 1, 'A widget', 10), (:a_id, 1, 'A gadget', 20), (:a_id, 2, 'A gizmo', 30),
	(:b_id, 3, 'B widget', 100), (:b_id, 3, 'B gadget', 200);

SET ROLE regress_rls_app;

-- Without authenticate: no identity, no rows.
SELECT apikey.current_tenant() AS tenant, apikey.current_tenant_id() AS tenant_id;
SELECT count(*) AS orders FROM app.orders;
SELECT count(*) AS collections FROM app.collections;
SELECT pg_temp.try($$INSERT INTO app.orders (tenant_id, collection_id, item, amount) VALUES (1, 1, 'x', 1)$$) AS insert;

-- After authenticate(key of A): A's rows only.
BEGIN;
SELECT status, tenant FROM apikey.authenticate(:'a_rw');
SELECT apikey.current_tenant() AS tenant, apikey.current_tenant_id() = :a_id AS tenant_id;
SELECT item, amount FROM app.orders ORDER BY item;
SELECT collection_id, name FROM app.collections ORDER BY 1;
-- B's rows cannot be reached by any predicate
SELECT count(*) AS b_orders FROM app.orders WHERE tenant_id = :b_id;
-- new rows belong to A and record the key that wrote them
INSERT INTO app.orders (collection_id, item, amount) VALUES (2, 'A sprocket', 5)
	RETURNING item, tenant_id = :a_id AS tenant_a, created_by_key = :'a_rw_id' AS by_key;
INSERT INTO app.collections (collection_id, name) VALUES (4, 'A four')
	RETURNING tenant_id = :a_id AS tenant_a, created_by_key = :'a_rw_id' AS by_key;
-- not into B, not moved to B
SELECT pg_temp.try(format('INSERT INTO app.orders (tenant_id, collection_id, item, amount) VALUES (%s, 3, %L, 1)', :b_id, 'x')) AS insert_for_b;
-- nor into B's collection under A's name (the foreign key includes the tenant)
SELECT pg_temp.try($$INSERT INTO app.orders (collection_id, item, amount) VALUES (3, 'x', 1)$$) AS insert_into_bs_collection;
SELECT pg_temp.try(format('UPDATE app.orders SET tenant_id = %s WHERE item = %L', :b_id, 'A gizmo')) AS move_to_b;
WITH u AS (UPDATE app.orders SET amount = amount + 1 RETURNING tenant_id) SELECT count(*) AS updated FROM u;
WITH d AS (DELETE FROM app.orders WHERE item = 'B widget' RETURNING 1) SELECT count(*) AS deleted_b FROM d;
-- the application's SECURITY DEFINER function sees the same identity
SELECT * FROM app.order_summary();
-- parallel workers cannot run the identity functions: the plan keeps them
-- in the leader and the answer is the same (16 renamed force_parallel_mode)
SELECT set_config(CASE WHEN current_setting('server_version_num')::int < 160000
                       THEN 'force_parallel_mode' ELSE 'debug_parallel_query' END,
                  'on', true) AS parallel_mode;
SELECT count(*) AS orders FROM app.orders;
COMMIT;

-- The identity ends at COMMIT.
SELECT apikey.current_tenant() AS tenant, count(*) AS orders FROM app.orders;

-- B sees B's rows only, including none of A's new ones.
BEGIN;
SELECT status, tenant FROM apikey.authenticate(:'b_rw');
SELECT item, amount FROM app.orders ORDER BY item;
SELECT collection_id, name FROM app.collections ORDER BY 1;
SELECT * FROM app.order_summary();
ROLLBACK;

-- The identity ends at ROLLBACK.
SELECT apikey.current_tenant() AS tenant, count(*) AS orders FROM app.orders;

-- A read-only key (orders:read) can select but not insert, update or delete.
BEGIN;
SELECT status FROM apikey.authenticate(:'a_ro');
SELECT count(*) AS orders FROM app.orders;
SELECT pg_temp.try($$INSERT INTO app.orders (collection_id, item, amount) VALUES (1, 'x', 1)$$) AS insert;
WITH u AS (UPDATE app.orders SET amount = 0 RETURNING 1) SELECT count(*) AS updated FROM u;
WITH d AS (DELETE FROM app.orders RETURNING 1) SELECT count(*) AS deleted FROM d;
ROLLBACK;

-- A key without scopes: authenticated as A, but the policies give it nothing.
BEGIN;
SELECT status, tenant FROM apikey.authenticate(:'a_none');
SELECT count(*) AS orders FROM app.orders;
SELECT count(*) AS collections FROM app.collections;
ROLLBACK;

-- A resource-restricted key (collection:2) sees and writes its collection only.
BEGIN;
SELECT status, resource FROM apikey.authenticate(:'a_c2');
SELECT collection_id, name FROM app.collections ORDER BY 1;
SELECT item FROM app.orders ORDER BY item;
SELECT pg_temp.try($$INSERT INTO app.orders (collection_id, item, amount) VALUES (2, 'in two', 1)$$) AS insert_into_2;
SELECT pg_temp.try($$INSERT INTO app.orders (collection_id, item, amount) VALUES (1, 'in one', 1)$$) AS insert_into_1;
WITH u AS (UPDATE app.orders SET amount = amount RETURNING collection_id) SELECT collection_id, count(*) AS updated FROM u GROUP BY 1;
ROLLBACK;

-- Each statement outside BEGIN is its own transaction: an autocommitted
-- authenticate is gone by the next statement (what a pooler relies on).
SELECT status FROM apikey.authenticate(:'a_rw');
SELECT apikey.current_tenant() AS tenant, count(*) AS orders FROM app.orders;
-- in one statement it holds for that statement
SELECT (apikey.authenticate(:'a_rw')).status, (SELECT count(*) FROM app.orders) AS orders;

-- SAVEPOINT: an authenticate after a savepoint is undone by ROLLBACK TO,
-- which restores the identity before it; RELEASE keeps it.  A second
-- authenticate replaces the first (the last one wins).
BEGIN;
SELECT status FROM apikey.authenticate(:'a_rw');
SAVEPOINT s1;
SELECT status FROM apikey.authenticate(:'b_rw');
SELECT apikey.current_tenant() AS tenant, count(*) AS orders FROM app.orders;
ROLLBACK TO SAVEPOINT s1;
SELECT apikey.current_tenant() AS tenant, count(*) AS orders FROM app.orders;
SAVEPOINT s2;
SELECT status FROM apikey.authenticate(:'a_ro');
RELEASE SAVEPOINT s2;
SELECT apikey.current_tenant() AS tenant, apikey.has_scope('orders:write') AS can_write;
SELECT status FROM apikey.authenticate(:'b_rw');
SELECT apikey.current_tenant() AS tenant, count(*) AS orders FROM app.orders;
ROLLBACK;
-- a savepoint before the first authenticate: back to no identity
BEGIN;
SAVEPOINT s1;
SELECT status FROM apikey.authenticate(:'a_rw');
ROLLBACK TO SAVEPOINT s1;
SELECT apikey.current_tenant() AS tenant, count(*) AS orders FROM app.orders;
ROLLBACK;
-- a failed authenticate leaves the identity as it was (under a savepoint)
-- or aborts the transaction (without one)
BEGIN;
SELECT status FROM apikey.authenticate(:'a_rw');
SAVEPOINT s1;
SELECT status FROM apikey.authenticate(:'b_rw' || 'x');
ROLLBACK TO SAVEPOINT s1;
SELECT apikey.current_tenant() AS tenant;
SELECT status FROM apikey.authenticate(:'a_ro', 'orders:write');
SELECT apikey.current_tenant() AS tenant;
ROLLBACK;

-- No SET, set_config, RESET, SET ROLE or SET clause forges or widens it.
-- The apikey. prefix is reserved: only apikey.environment exists.
SET apikey.tenant = 'rls-b';
SET apikey.current_tenant_id = '2';
SELECT set_config('apikey.current_tenant', 'rls-b', false);
SELECT set_config('apikey.identity', 'rls-b', true);
BEGIN;
SELECT status FROM apikey.authenticate(:'a_ro');
SET LOCAL apikey.tenant = 'rls-b';
ROLLBACK;
BEGIN;
SELECT status FROM apikey.authenticate(:'a_ro');
SELECT pg_temp.try(format('SET LOCAL apikey.current_tenant_id = %s', :b_id)) AS set_local;
SELECT pg_temp.try($$SELECT set_config('apikey.scopes', '{*}', true)$$) AS set_config;
-- apikey.environment only chooses where verify and authenticate look
SET LOCAL apikey.environment = 'preview';
SELECT apikey.current_tenant() AS tenant, apikey.current_environment() AS environment,
       apikey.has_scope('orders:write') AS can_write;
RESET apikey.environment;
RESET ALL;
SELECT apikey.current_tenant() AS tenant, apikey.has_scope('orders:write') AS can_write;
-- SET ROLE to another role the application may use: same identity, same rows
SET ROLE regress_rls_other;
SELECT current_user, apikey.current_tenant() AS tenant, count(*) AS orders FROM app.orders;
WITH u AS (UPDATE app.orders SET amount = 0 RETURNING 1) SELECT count(*) AS updated FROM u;
RESET ROLE;
SET ROLE regress_rls_app;
-- functions with SET clauses see the same identity
CREATE FUNCTION pg_temp.whoami() RETURNS text LANGUAGE sql
	SET apikey.environment = 'preview' SET search_path = pg_catalog
	AS $$SELECT apikey.current_tenant() || ' ' || apikey.has_scope('orders:write')::text$$;
SELECT pg_temp.whoami();
SELECT pg_temp.try($$CREATE FUNCTION pg_temp.forge() RETURNS text LANGUAGE sql
	SET apikey.tenant = 'rls-b' AS 'SELECT apikey.current_tenant()'$$) AS set_clause;
-- and the identity functions are STABLE: a statement sees one identity
SELECT count(DISTINCT apikey.current_tenant()) AS identities FROM app.orders;
ROLLBACK;
-- the verifier cannot redefine the identity functions or the policies
SELECT pg_temp.try($$CREATE OR REPLACE FUNCTION apikey.current_tenant_id() RETURNS bigint LANGUAGE sql AS 'SELECT 2'$$) AS replace_identity;
SELECT pg_temp.try($$ALTER TABLE app.orders DISABLE ROW LEVEL SECURITY$$) AS disable_rls;
SELECT pg_temp.try($$DROP POLICY orders_select ON app.orders$$) AS drop_policy;
RESET ROLE;

-- DISCARD ALL (what a pooler runs between clients in session mode) cannot
-- run in a transaction block; the error aborts the transaction, and the
-- identity with it.  (It also drops pg_temp.try, so it comes last.)
SET ROLE regress_rls_app;
BEGIN;
SELECT status FROM apikey.authenticate(:'a_rw');
DISCARD ALL;
ROLLBACK;
SELECT apikey.current_tenant() AS tenant;
SELECT (apikey.authenticate(:'a_rw')).status;
DISCARD ALL;
SET ROLE regress_rls_app;
SELECT apikey.current_tenant() AS tenant, count(*) AS orders FROM app.orders;
RESET ROLE;

-- The superuser's view: every row, written by the key that wrote it.
SELECT t.slug AS tenant, o.item, o.amount, o.created_by_key = :'a_rw_id' AS by_a_rw
  FROM app.orders o JOIN apikey.tenants t USING (tenant_id) ORDER BY o.order_id;
