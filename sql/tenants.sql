-- Tenants and environments: the first thing an administrator creates.
-- Like every regression file, this one creates its own tenants and looks
-- only at them, so it passes in any database and in any order.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('acme', 'Acme Inc') > 0 AS created;

-- production (tag live) and preview (tag test) by default
SELECT e.name, e.tag FROM apikey.environments e JOIN apikey.tenants t USING (tenant_id)
 WHERE t.slug = 'acme' ORDER BY e.name;

-- environments can be chosen at creation ("name" or "name:tag") or added later
SELECT apikey.create_tenant('globex', 'Globex', '{production,staging:stg}') > 0 AS created;
SELECT apikey.create_environment('globex', 'preview', 'test');
SELECT e.name, e.tag FROM apikey.environments e JOIN apikey.tenants t USING (tenant_id)
 WHERE t.slug = 'globex' ORDER BY e.name;

-- an environment named without a tag is tagged by its name (production
-- and preview excepted: live and test)
SELECT apikey.create_tenant('tenants-tags', environments => '{production,preview,staging,qa}') > 0 AS created;
SELECT e.name, e.tag FROM apikey.environments e JOIN apikey.tenants t USING (tenant_id)
 WHERE t.slug = 'tenants-tags' ORDER BY e.name;

-- environment names are 1 to 32 characters
SELECT apikey.create_environment('tenants-tags', repeat('e', 32), 'e32');
SELECT apikey.create_environment('tenants-tags', repeat('e', 33), 'e33');
SELECT length(e.name) AS longest_name FROM apikey.environments e JOIN apikey.tenants t USING (tenant_id)
 WHERE t.slug = 'tenants-tags' AND e.tag = 'e32';

-- defaults of the tenant policy
SELECT slug, name, key_prefix, default_key_lifetime, max_key_lifetime, created_by
  FROM apikey.tenants WHERE slug IN ('acme', 'globex', 'tenants-tags') ORDER BY slug;

-- a tenant with its own prefix and lifetime policy
SELECT apikey.create_tenant('initech', NULL, key_prefix => 'ini',
       default_key_lifetime => '30 days', max_key_lifetime => '90 days') > 0 AS created;
SELECT key_prefix, default_key_lifetime, max_key_lifetime FROM apikey.tenants WHERE slug = 'initech';
SELECT apikey.set_key_policy('initech', NULL, '1 year', 'init');
SELECT key_prefix, default_key_lifetime, max_key_lifetime FROM apikey.tenants WHERE slug = 'initech';

-- one public key per tenant environment: pk_<tag>_<id><checksum>
SELECT apikey.public_key('acme', 'production') AS acme_pk \gset
SELECT :'acme_pk' ~ '^pk_live_[0-9A-Za-z]{17}$' AS public_key_format,
       apikey.looks_like_key(:'acme_pk') AS looks_like_key;
SELECT * FROM apikey.identify(:'acme_pk');
SELECT apikey.public_key('acme', 'preview') ~ '^pk_test_' AS preview_tagged_test;

-- regenerating replaces it; the old one identifies nothing any more
SELECT apikey.regenerate_public_key('acme', 'production') AS acme_pk2 \gset
SELECT :'acme_pk2' <> :'acme_pk' AS changed,
       apikey.public_key('acme', 'production') = :'acme_pk2' AS current;
SELECT count(*) AS old_identifies FROM apikey.identify(:'acme_pk');
SELECT tenant FROM apikey.identify(:'acme_pk2');

-- mistakes get clear errors
SELECT apikey.create_tenant('acme');
SELECT apikey.create_tenant('Acme Corp');
SELECT apikey.create_tenant('-acme');
SELECT apikey.create_tenant(NULL);
SELECT apikey.create_tenant('hooli', key_prefix => 'pk');
SELECT apikey.create_tenant('hooli', key_prefix => 'too_long_prefix');
-- the prefix limit at its edge: 9 characters would make key text longer than 62
SELECT apikey.create_tenant('hooli', key_prefix => 'abcdefghi');
SELECT apikey.set_key_policy('initech', NULL, '1 year', 'abcdefghi');
-- and the table refuses it too, whoever writes it (terse: the row holds a time)
\set VERBOSITY terse
UPDATE apikey.tenants SET key_prefix = 'abcdefghi' WHERE slug = 'initech';
\set VERBOSITY default
SELECT apikey.create_tenant('hooli', default_key_lifetime => '-1 day');
SELECT apikey.create_tenant('hooli', default_key_lifetime => '1 year', max_key_lifetime => '1 month');
SELECT apikey.create_tenant('hooli', environments => '{production,Prod}');
SELECT apikey.create_tenant('hooli', environments => '{production,live:live}');
SELECT apikey.create_environment('nosuch', 'staging', 'stg');
SELECT apikey.create_environment('acme', 'production', 'prod');
SELECT apikey.create_environment('acme', 'staging', 'live');
SELECT apikey.create_environment('acme', 'staging', 'staging01');
SELECT apikey.public_key('acme', 'nosuch');
SELECT apikey.public_key('nosuch', 'production');
-- nothing was half-created by the failures above
SELECT slug FROM apikey.tenants
 WHERE slug IN ('acme', 'globex', 'initech', 'tenants-tags', 'hooli', 'nosuch') ORDER BY slug;

-- the audit trail records tenant-level changes
SELECT action, tenant, details->>'environment' AS environment
  FROM apikey.audit_log WHERE tenant IN ('acme', 'globex', 'initech', 'tenants-tags') ORDER BY event_id;
