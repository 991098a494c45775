-- Keys: create one, see it once, find it in the listing by its hint.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('shop') > 0 AS created;

SELECT * FROM apikey.create_key('shop', 'production', 'Shopify integration',
       'Syncs orders every 5 minutes', '{orders:read,orders:write}') \gset

-- the key text: <prefix>_<tag>_<11-char key id><27-char secret><6-char checksum>
SELECT :'api_key' ~ '^ak_live_[0-9A-Za-z]{44}$' AS format,
       length(:'api_key') <= 62 AS at_most_62,
       substr(:'api_key', 9, 11) = :'key_id' AS key_id_leads_the_body,
       :'hint' = 'ak_live_…' || right(:'api_key', 4) AS hint_is_prefix_tag_last4,
       apikey.looks_like_key(:'api_key') AS looks_like_key;

-- the longest key text there can be: an 8-character prefix and an
-- 8-character tag make 62 characters
SELECT apikey.create_tenant('keys-longest', key_prefix => 'abcdefgh',
       environments => '{production:abcdefgh}') > 0 AS created;
SELECT length(api_key) AS longest, length(api_key) <= 62 AS at_most_62,
       apikey.looks_like_key(api_key) AS looks_like_key
  FROM apikey.create_key('keys-longest', 'production', 'longest');

SELECT expires_at IS NULL AS never_expires FROM apikey.key_list WHERE key_id = :'key_id';

-- only the SHA-256 of the text is stored: pgcrypto, an independent
-- implementation, computes the same digest
SELECT k.key_hash = digest(:'api_key', 'sha256') AS pgcrypto_agrees,
       k.key_hash = hmac(:'api_key', '', 'sha256') AS is_not_an_hmac
  FROM apikey.keys k WHERE k.key_id = :'key_id';

-- the text itself is nowhere in the tables
SELECT count(*) AS rows_containing_the_secret
  FROM apikey.keys k
 WHERE k::text LIKE '%' || substr(:'api_key', 20, 27) || '%';
SELECT count(*) AS audit_rows_containing_the_secret
  FROM apikey.audit a
 WHERE a::text LIKE '%' || substr(:'api_key', 20, 27) || '%';

-- the listing for humans: never a hash or a secret
SELECT key_id = :'key_id' AS same_key, tenant, environment, name, description,
       hint = :'hint' AS hint_shown, scopes, resource, status,
       created_by, expires_at, revoked_at, last_used_at
  FROM apikey.key_list WHERE tenant = 'shop';
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'apikey' AND table_name = 'key_list' ORDER BY ordinal_position;

-- many keys per tenant and environment; names are labels (duplicates allowed)
SELECT count(*) AS created FROM generate_series(1, 5) AS i,
       LATERAL apikey.create_key('shop', CASE WHEN i % 2 = 0 THEN 'preview' ELSE 'production' END,
                                 'worker') AS k;
SELECT environment, count(*) FROM apikey.key_list WHERE tenant = 'shop'
 GROUP BY environment ORDER BY environment;

-- preview keys carry the test tag
SELECT (apikey.create_key('shop', 'preview', 'CI')).api_key ~ '^ak_test_' AS preview_tag;

-- at most 64 scopes per key
SELECT key_id AS scopes64_id FROM apikey.create_key('shop', 'production', '64 scopes',
       scopes => ARRAY(SELECT 's' || i || ':read' FROM generate_series(1, 64) i)) \gset
SELECT cardinality(scopes) AS scopes FROM apikey.key_list WHERE key_id = :'scopes64_id';
SELECT apikey.create_key('shop', 'production', '65 scopes',
       scopes => ARRAY(SELECT 's' || i || ':read' FROM generate_series(1, 65) i));

-- scopes are validated, deduplicated and sorted
SELECT (apikey.create_key('shop', 'production', 'sorted', scopes => '{b:read,a:*,b:read}')).key_id AS sorted_id \gset
SELECT scopes FROM apikey.key_list WHERE key_id = :'sorted_id';

-- expiry: explicit lifetime, or the tenant's default; a maximum is enforced
SELECT apikey.create_tenant('bank', default_key_lifetime => '30 days', max_key_lifetime => '90 days') > 0 AS created;
SELECT (k.expires_at - now()) AS lifetime FROM apikey.create_key('bank', 'production', 'default lifetime') k;
SELECT (k.expires_at - now()) AS lifetime FROM apikey.create_key('bank', 'production', 'short', expires_in => '1 hour') k;
SELECT apikey.create_key('bank', 'production', 'too long', expires_in => '1 year');
SELECT apikey.create_key('shop', 'production', 'negative', expires_in => '-1 hour');
SELECT apikey.create_key('shop', 'production', 'zero', expires_in => '0');

-- a tenant prefix appears in its keys
SELECT apikey.create_tenant('acme2', key_prefix => 'acme') > 0 AS created;
SELECT (apikey.create_key('acme2', 'production', 'x')).api_key ~ '^acme_live_[0-9A-Za-z]{44}$' AS custom_prefix;

-- resource-restricted keys (a single object)
SELECT key_id AS res_id FROM apikey.create_key('shop', 'production', 'collection 42 reader',
       scopes => '{collections:read}', resource => 'collection:42') \gset
SELECT scopes, resource FROM apikey.key_list WHERE key_id = :'res_id';

-- last_used_at needs shared_preload_libraries = 'apikey' (this test server
-- preloads it and writes only when asked: test/regress.conf)
SELECT apikey.usage_tracking() LIKE 'on: flushed every 3600 s;%' AS tracked;

-- the audit trail tells who created what
SELECT action, tenant, actor_role, details->>'name' AS name
  FROM apikey.audit_log WHERE key_id = :'key_id';

-- errors leave nothing behind
SELECT count(*) AS keys_before FROM apikey.keys WHERE tenant IN ('shop', 'nosuch') \gset
SELECT apikey.create_key('shop', 'production', '');
SELECT apikey.create_key('shop', 'production', NULL);
SELECT apikey.create_key('shop', 'nosuch', 'x');
SELECT apikey.create_key('nosuch', 'production', 'x');
SELECT apikey.create_key('shop', 'production', 'x', scopes => '{Orders:Read}');
SELECT apikey.create_key('shop', 'production', 'x', scopes => '{"orders:*:x"}');
SELECT apikey.create_key('shop', 'production', 'x', scopes => '{orders:read,NULL}');
SELECT apikey.create_key('shop', 'production', 'x', scopes => NULL);
SELECT apikey.create_key('shop', 'production', 'x', resource => 'no-colon');
SELECT apikey.create_key('shop', 'production', repeat('n', 201));
SELECT apikey.create_key('shop', 'production', 'x', repeat('d', 1001));
SELECT apikey.create_key('shop', 'production', E'line\nbreak');
SELECT count(*) = :keys_before AS nothing_half_written FROM apikey.keys WHERE tenant IN ('shop', 'nosuch');
