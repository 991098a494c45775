-- The database behind test/http/server.py: the example application schema
-- (test/rls_example.sql, owned by app_owner), app_api (the server's login
-- role, a verifier), two tenants with collections and orders.  Keys are made
-- by the suite.  psql -v example=<path of rls_example.sql>.
\set ON_ERROR_STOP on
CREATE EXTENSION pgcrypto;
CREATE EXTENSION apikey;
CREATE ROLE app_owner;
CREATE ROLE app_api LOGIN;
GRANT CREATE ON DATABASE apikey TO app_owner;
SET ROLE app_owner;
\i :example
GRANT USAGE ON SCHEMA app TO app_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON app.orders TO app_api;
GRANT SELECT, INSERT ON app.collections TO app_api;
GRANT EXECUTE ON FUNCTION app.order_summary() TO app_api;
RESET ROLE;
SELECT apikey.grant_verifier('app_api');

SELECT apikey.create_tenant('acme') AS a, apikey.create_tenant('globex') AS b \gset
INSERT INTO app.collections (collection_id, tenant_id, name) VALUES
	(1, :a, 'acme one'), (2, :a, 'acme two'), (3, :b, 'globex three');
INSERT INTO app.orders (tenant_id, collection_id, item, amount) VALUES
	(:a, 1, 'acme widget', 10), (:a, 2, 'acme gizmo', 30),
	(:b, 3, 'globex widget', 100), (:b, 3, 'globex gadget', 200);
