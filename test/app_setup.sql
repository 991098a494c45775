-- An application database for the pgbouncer and HTTP suites: the example
-- application schema (test/rls_example.sql) owned by app_owner, and app_api,
-- the application's login role, a verifier.  Run by psql as the superuser
-- with -v example=<path of rls_example.sql>.
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
