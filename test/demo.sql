-- The apikey demo: the flows of Stripe-, GitHub- and Unkey-style keys, in SQL.
\set ON_ERROR_STOP on
\pset footer off
\echo
\echo '== 1. A tenant (customer account) with production (live) and preview (test) environments'
SELECT apikey.create_tenant('acme', 'Acme Inc') AS tenant_id;
SELECT e.name AS environment, e.tag, apikey.public_key('acme', e.name) AS public_key
  FROM apikey.environments e JOIN apikey.tenants t USING (tenant_id) WHERE t.slug = 'acme';

\echo
\echo '== 2. A named production key. The full text is shown this once and never stored.'
SELECT key_id, api_key, hint
  FROM apikey.create_key('acme', 'production', 'Shopify integration',
                         description => 'Order sync', scopes => '{orders:read,orders:write}') \gset
\echo 'api_key: ' :api_key
\echo 'key_id:  ' :key_id
SELECT (apikey.create_key('acme', 'preview', 'CI pipeline', scopes => '{orders:read}')).hint AS second_key_hint;

\echo
\echo '== 3. The listing for humans: names, hints, scopes, status. Never a hash or a secret.'
SELECT key_id, environment, name, hint, scopes, status, expires_at FROM apikey.key_list ORDER BY created_at;

\echo
\echo '== 4. Verify, as an application would on each request'
SELECT valid, status, tenant, environment, scopes FROM apikey.verify(:'api_key');
SELECT status FROM apikey.verify(:'api_key', environment => 'preview');
SELECT status FROM apikey.verify(:'api_key', scope => 'orders:delete');
SELECT status FROM apikey.verify('ak_live_this_is_not_a_real_key');
\echo 'looks_like_key (format and checksum only, for secret scanners):'
SELECT apikey.looks_like_key(:'api_key') AS real_key, apikey.looks_like_key('ak_live_0123456789') AS made_up;

\echo
\echo '== 5. Authenticate: the key becomes the identity of the transaction, for RLS policies'
BEGIN;
SELECT status FROM apikey.authenticate(:'api_key');
SELECT apikey.current_tenant(), apikey.current_key_id(), apikey.has_scope('orders:read') AS can_read_orders;
COMMIT;
SELECT apikey.current_tenant() AS after_commit;

\echo
\echo '== 6. Revoke (with a reason), then reactivate'
SELECT apikey.revoke_key(:'key_id', 'posted in a public forum');
SELECT status FROM apikey.verify(:'api_key');
SELECT apikey.reactivate_key(:'key_id');
SELECT status FROM apikey.verify(:'api_key');

\echo
\echo '== 7. Roll: a new secret for the same key; the old one works for a 1-hour grace period'
SELECT apikey.roll_key(:'key_id', grace => '1 hour') AS new_key \gset
\echo 'new api_key: ' :new_key
SELECT 'old' AS secret, status FROM apikey.verify(:'api_key')
UNION ALL SELECT 'new', status FROM apikey.verify(:'new_key');
SELECT name, hint, previous_secret_expires_at FROM apikey.key_list WHERE key_id = :'key_id';

\echo
\echo '== 8. Delete: permanent'
SELECT apikey.delete_key(:'key_id');
SELECT status FROM apikey.verify(:'new_key');

\echo
\echo '== 9. The audit trail outlives the key'
SELECT at::time(0) AS at, action, key_id, actor_role, details - 'environment' AS details
  FROM apikey.audit_log WHERE key_id = :'key_id' ORDER BY event_id;
