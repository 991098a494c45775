-- The apikey demo: the flows of Stripe-, GitHub- and Unkey-style keys, in SQL.
-- Run by test/demo.sh as a superuser, which only creates the roles and the
-- application's table; everything else runs as those roles, so each query
-- works for an administrator who copies it.  (A statement ending in \gset
-- runs without printing its result: the management functions return
-- nothing, and the key's status is shown afterwards instead.)
\set ON_ERROR_STOP on
\pset footer off
-- intervals in words ("1 hour"): PostgreSQL's verbose style, without its "@"
CREATE FUNCTION pg_temp.in_words(i interval) RETURNS text
	LANGUAGE sql SET intervalstyle = postgres_verbose
	AS $$ SELECT ltrim(i::text, '@ ') $$;

\echo
\echo '== 0. Roles, made once by a superuser: key_admins manages keys, web_app is the'
\echo '      application; and the application''s table, one row per order of every'
\echo '      tenant, with a row-level-security policy: a tenant sees its own rows'
CREATE ROLE key_admins;
SELECT apikey.grant_admin('key_admins') \gset
CREATE ROLE web_app;
SELECT apikey.grant_verifier('web_app') \gset
ALTER ROLE web_app SET apikey.environment = 'production';
CREATE SCHEMA app;
CREATE TABLE app.orders (
	order_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id bigint NOT NULL DEFAULT apikey.current_tenant_id(),
	item      text NOT NULL
);
ALTER TABLE app.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY orders_read ON app.orders FOR SELECT
	USING (tenant_id = (SELECT apikey.current_tenant_id())
	       AND (SELECT apikey.has_scope('orders:read')));
CREATE POLICY orders_write ON app.orders FOR INSERT
	WITH CHECK (tenant_id = (SELECT apikey.current_tenant_id())
	            AND (SELECT apikey.has_scope('orders:write')));
GRANT USAGE ON SCHEMA app TO web_app;
GRANT SELECT, INSERT ON app.orders TO web_app;
SET ROLE key_admins;
SELECT current_user AS role \gset
\echo 'From here on, as' :role '(not a superuser)'

\echo
\echo '== 1. A tenant (customer account) with two environments, production (keys'
\echo '      ak_live_...) and preview (ak_test_...), and a public key for each'
SELECT apikey.create_tenant('acme', 'Acme Inc') AS acme_tenant_id;
SELECT apikey.public_key('acme', 'production') AS production,
       apikey.public_key('acme', 'preview') AS preview;
\echo 'A public key only identifies (e.g. in a web page); it never authenticates:'
SELECT * FROM apikey.identify(apikey.public_key('acme', 'production'));

\echo
\echo '== 2. A named production key. The full text is shown this once; only a hash'
\echo '      is stored.'
SELECT key_id, api_key
  FROM apikey.create_key('acme', 'production', 'Shopify integration',
                         description => 'Order sync',
                         scopes => '{orders:read,orders:write}') \gset
\echo 'api_key: ' :api_key
\echo 'key_id:  ' :key_id '(the public handle: listings, revoke, roll, ...)'
SELECT api_key AS ci_key
  FROM apikey.create_key('acme', 'preview', 'CI pipeline', scopes => '{orders:read}') \gset

\echo
\echo '== 3. The listing for humans: names, hints (with the environment''s tag),'
\echo '      scopes, status; never a secret'
SELECT name, hint, scopes, status FROM apikey.key_list ORDER BY created_at;

\echo
\echo '== 4. Verify, as an application would on each request'
SELECT valid, status, tenant, environment, scopes FROM apikey.verify(:'api_key');
SELECT 'as a preview key' AS "verify(api_key, ...)", status
  FROM apikey.verify(:'api_key', environment => 'preview')
UNION ALL
SELECT 'with scope orders:delete', status
  FROM apikey.verify(:'api_key', scope => 'orders:delete')
UNION ALL
SELECT 'the CI key in production', status
  FROM apikey.verify(:'ci_key', environment => 'production')
UNION ALL
SELECT 'a made-up key', status FROM apikey.verify('ak_live_this_is_not_a_real_key')
UNION ALL
SELECT 'a public key', status FROM apikey.verify(apikey.public_key('acme', 'production'));
\echo 'looks_like_key: form and checksum only, no table (for secret scanners):'
SELECT apikey.looks_like_key(:'api_key') AS real_key,
       apikey.looks_like_key('ak_live_0123456789') AS made_up;

\echo
\echo '== 5. Authenticate: the key becomes the identity of the transaction, and the'
\echo '      table''s policy shows that tenant''s rows.  A second tenant, globex:'
SELECT apikey.create_tenant('globex') AS globex_tenant_id;
SELECT api_key AS globex_key
  FROM apikey.create_key('globex', 'production', 'Backend',
                         scopes => '{orders:read,orders:write}') \gset
SET ROLE web_app;
-- what ALTER ROLE ... SET does at login, for this session that switched roles
SET apikey.environment = 'production';
SELECT current_user AS role \gset
\echo 'Now as' :role '(the application): two requests that write orders'
BEGIN;
SELECT status, tenant FROM apikey.authenticate(:'api_key', 'orders:write');
INSERT INTO app.orders (item) VALUES ('2 widgets'), ('1 gizmo');
COMMIT;
BEGIN;
SELECT status, tenant FROM apikey.authenticate(:'globex_key', 'orders:write');
INSERT INTO app.orders (item) VALUES ('5 gadgets');
COMMIT;
\echo 'Each tenant reads its own orders (same table, same query):'
BEGIN;
SELECT apikey.authenticate(:'api_key', 'orders:read') \gset
SELECT apikey.current_tenant() AS tenant, order_id, item FROM app.orders ORDER BY order_id;
COMMIT;
BEGIN;
SELECT apikey.authenticate(:'globex_key', 'orders:read') \gset
SELECT apikey.current_tenant() AS tenant, order_id, item FROM app.orders ORDER BY order_id;
COMMIT;
\echo 'After COMMIT the identity is gone; without authenticate, no rows:'
SELECT apikey.current_tenant() AS tenant, count(*) AS orders_visible FROM app.orders;
SET ROLE key_admins;

\echo
\echo '== 6. Revoke (with a reason), then reactivate'
SELECT apikey.revoke_key(:'key_id', 'posted in a public forum') \gset
SELECT name, status, revoked_reason FROM apikey.key_list WHERE key_id = :'key_id';
SELECT status AS "verify says" FROM apikey.verify(:'api_key');
SELECT apikey.reactivate_key(:'key_id') \gset
SELECT name, status FROM apikey.key_list WHERE key_id = :'key_id';
SELECT status AS "verify says" FROM apikey.verify(:'api_key');

\echo
\echo '== 7. Expiry: a key for a load test, valid for one hour, then expired early'
SELECT key_id AS temp_key_id, api_key AS temp_key
  FROM apikey.create_key('acme', 'production', 'Load test',
                         scopes => '{orders:read}', expires_in => '1 hour') \gset
SELECT name, status, pg_temp.in_words(expires_at - created_at) AS lifetime
  FROM apikey.key_list WHERE key_id = :'temp_key_id';
SELECT apikey.set_key_expiry(:'temp_key_id', now()) \gset
SELECT name, status FROM apikey.key_list WHERE key_id = :'temp_key_id';
SELECT status AS "verify says" FROM apikey.verify(:'temp_key');

\echo
\echo '== 8. Roll: a new secret for the same key; the old one works for a 1-hour'
\echo '      grace period'
SELECT apikey.roll_key(:'key_id', grace => '1 hour') AS new_key \gset
\echo 'new api_key: ' :new_key
SELECT 'old' AS secret, status FROM apikey.verify(:'api_key')
UNION ALL SELECT 'new', status FROM apikey.verify(:'new_key');
SELECT name, hint, status,
       pg_temp.in_words(date_trunc('minute', previous_secret_expires_at - now()
                                             + interval '30 seconds')) AS old_secret_valid_for
  FROM apikey.key_list WHERE key_id = :'key_id';

\echo
\echo '== 9. Delete: permanent'
SELECT apikey.delete_key(:'key_id') \gset
SELECT count(*) AS "keys left with this id" FROM apikey.key_list WHERE key_id = :'key_id';
SELECT status AS "verify says" FROM apikey.verify(:'new_key');

\echo
\echo '== 10. Usage control: a partner key allowed 2 requests a minute, with 3'
\echo '       credits; a refused request spends nothing'
SELECT key_id AS partner_id, api_key AS partner_key
  FROM apikey.create_key('acme', 'production', 'Partner feed',
                         scopes => '{orders:read}') \gset
SELECT apikey.set_rate_limit(:'partner_id', 'per_minute', 2, '1 minute') \gset
SELECT apikey.set_credits(:'partner_id', 3) \gset
SELECT 1 AS request, status, remaining AS credits_left,
       round(extract(epoch FROM retry_after)) AS retry_in_seconds
  FROM apikey.verify(:'partner_key')
UNION ALL SELECT 2, status, remaining, round(extract(epoch FROM retry_after))
  FROM apikey.verify(:'partner_key')
UNION ALL SELECT 3, status, remaining, round(extract(epoch FROM retry_after))
  FROM apikey.verify(:'partner_key');
SELECT name, remaining AS credits_left FROM apikey.key_list
 WHERE key_id = :'partner_id';

\echo
\echo '== 11. Whose key: keys of a person (owner); when they leave, all of their'
\echo '       keys stop in one call'
SELECT key_id AS ada_ci_id, api_key AS ada_ci_key
  FROM apikey.create_key('acme', 'production', 'Ada laptop',
                         owner => 'ada@acme.test') \gset
SELECT key_id AS ada_job_id
  FROM apikey.create_key('acme', 'production', 'Ada nightly job',
                         owner => 'ada@acme.test', meta => '{"team": "data"}') \gset
SELECT name, owner, meta, status FROM apikey.key_list
 WHERE owner = 'ada@acme.test' ORDER BY name;
SELECT apikey.revoke_owner_keys('acme', 'ada@acme.test', 'left the company')
       AS "keys revoked";
SELECT name, status, revoked_reason FROM apikey.key_list
 WHERE owner = 'ada@acme.test' ORDER BY name;
SELECT status AS "verify says" FROM apikey.verify(:'ada_ci_key');

\echo
\echo '== 12. The audit trail outlives the key'
SELECT at::time(0) AS at, action, actor_role AS by,
       CASE action
           WHEN 'created' THEN details->>'name'
           WHEN 'revoked' THEN 'reason: ' || (details->>'reason')
           WHEN 'reactivated' THEN 'had been revoked at '
               || (details->>'revoked_at')::timestamptz::time(0)
           WHEN 'rolled' THEN 'old secret valid for '
               || pg_temp.in_words(make_interval(secs => (details->>'grace_seconds')::float8))
           WHEN 'deleted' THEN 'was ' || (details->>'hint')
       END AS detail
  FROM apikey.audit_log WHERE key_id = :'key_id' ORDER BY event_id;
