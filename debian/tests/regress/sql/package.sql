-- The packaged extension: the released versions' scripts and the update
-- path through them, a tenant and a key, verification (a wrong secret is
-- not_found), removal.
\set VERBOSITY terse
CREATE EXTENSION apikey VERSION '0.1.0';
ALTER EXTENSION apikey UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'apikey';
DROP EXTENSION apikey;
DROP SCHEMA apikey;

CREATE EXTENSION apikey;
SELECT extversion FROM pg_extension WHERE extname = 'apikey';
SELECT apikey.create_tenant('deb-package') > 0 AS tenant_created;
SELECT api_key, key_id FROM apikey.create_key('deb-package', 'production', 'package test') \gset
SELECT apikey.looks_like_key(:'api_key') AS well_formed;
SELECT valid, status, tenant, environment FROM apikey.verify(:'api_key');
-- the same key id with another secret: rolled without a grace period, the
-- old text's secret is wrong
SELECT apikey.roll_key(:'key_id') AS new_key \gset
SELECT valid, status, tenant FROM apikey.verify(:'api_key');
SELECT valid, status, tenant FROM apikey.verify(:'new_key');

DROP EXTENSION apikey;
SELECT count(*) AS functions_left FROM pg_proc WHERE pronamespace = 'apikey'::regnamespace;
