-- The data behind test/http/server.py, after test/app_setup.sql: two
-- tenants with collections and orders.  Keys are made by the suite.
\set ON_ERROR_STOP on
SELECT apikey.create_tenant('acme') AS a, apikey.create_tenant('globex') AS b \gset
INSERT INTO app.collections (collection_id, tenant_id, name) VALUES
	(1, :a, 'acme one'), (2, :a, 'acme two'), (3, :b, 'globex three');
INSERT INTO app.orders (tenant_id, collection_id, item, amount) VALUES
	(:a, 1, 'acme widget', 10), (:a, 2, 'acme gizmo', 30),
	(:b, 3, 'globex widget', 100), (:b, 3, 'globex gadget', 200);
-- the role the secret-scanning receiver reports leaks as, and nothing else
CREATE ROLE leak_bot LOGIN;
SELECT apikey.grant_leak_reporter('leak_bot');
