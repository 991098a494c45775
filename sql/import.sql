-- Importing keys from another system, by their text or by the SHA-256 of
-- their text: verify and authenticate then accept the original text, with
-- the statuses of native keys; rolling one issues apikey key text.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('import-a') > 0 AS a, apikey.create_tenant('import-b') > 0 AS b;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'key [0-9A-Za-z]{11}', 'key <id>');
END
$$;

-- by text: the key id is new, the hint shows the last 4 characters
SELECT apikey.import_key('import-a', 'production', 'legacy billing',
       api_key => 'sk_live_51HxYzLegacyBillingKey0001', description => 'from the old system',
       scopes => '{invoices:read,orders:read}', owner => 'user-17') AS billing_id \gset
SELECT name, description, hint, scopes, status, owner, imported, created_by = current_user AS created_by
  FROM apikey.key_list WHERE key_id = :'billing_id';
SELECT key_hash = digest('sk_live_51HxYzLegacyBillingKey0001', 'sha256') AS pgcrypto_agrees,
       (SELECT i.key_id FROM apikey.imported_keys AS i WHERE i.key_hash = k.key_hash) = k.key_id AS mapped
  FROM apikey.keys AS k WHERE k.key_id = :'billing_id';

-- verify accepts the original text, as it would a native key
SELECT valid, status, key_id = :'billing_id' AS same_key, tenant, environment, scopes, owner
  FROM apikey.verify('sk_live_51HxYzLegacyBillingKey0001');
SELECT status FROM apikey.verify('sk_live_51HxYzLegacyBillingKey0001', scope => 'invoices:read');
SELECT status FROM apikey.verify('sk_live_51HxYzLegacyBillingKey0001', scope => 'invoices:write');
SELECT status FROM apikey.verify('sk_live_51HxYzLegacyBillingKey0001', environment => 'preview');

-- text in no format we know that matches no imported key stays malformed
-- (as before anything was imported): one character off, a prefix, more
SELECT left(t, 40) AS text, length(t), status FROM unnest(ARRAY['sk_live_51HxYzLegacyBillingKey0002',
       'sk_live_51HxYzLegacyBillingKey000', 'sk_live_51HxYzLegacyBillingKey00011',
       ' sk_live_51HxYzLegacyBillingKey0001', '', repeat('x', 2000)]) AS t,
       apikey.verify(t) ORDER BY 1, 2;

-- by the SHA-256 of the text: the other system kept only hashes
SELECT apikey.import_key('import-a', 'production', 'legacy reporting',
       key_hash => digest('rpt-7f3a9c2e-4b1d-4e8a-9f6c-2d5b8a1e7c30', 'sha256'),
       scopes => '{reports:*}', expires_at => now() + interval '10 days',
       hint => 'rpt-…7c30') AS reporting_id \gset
SELECT name, hint, scopes, status, imported, expires_at > now() AS expires_later
  FROM apikey.key_list WHERE key_id = :'reporting_id';
SELECT status, key_id = :'reporting_id' AS same_key FROM apikey.verify('rpt-7f3a9c2e-4b1d-4e8a-9f6c-2d5b8a1e7c30', scope => 'reports:daily');

-- authenticate: the imported key is the transaction's identity
BEGIN;
SELECT status FROM apikey.authenticate('rpt-7f3a9c2e-4b1d-4e8a-9f6c-2d5b8a1e7c30');
SELECT apikey.current_tenant(), apikey.current_key_id() = :'reporting_id' AS key_id,
       apikey.has_scope('reports:daily') AS reports, apikey.has_scope('orders:read') AS orders;
COMMIT;
SELECT pg_temp.try($$SELECT apikey.authenticate('rpt-7f3a9c2e-4b1d-4e8a-9f6c-2d5b8a1e7c3')$$);

-- the key's states, after its secret was proven, as for a native key
SELECT apikey.revoke_key(:'reporting_id', 'test');
SELECT status, key_id = :'reporting_id' AS same_key FROM apikey.verify('rpt-7f3a9c2e-4b1d-4e8a-9f6c-2d5b8a1e7c30');
SELECT apikey.reactivate_key(:'reporting_id');
SELECT apikey.set_key_expiry(:'reporting_id', now() - interval '1 second');
SELECT status FROM apikey.verify('rpt-7f3a9c2e-4b1d-4e8a-9f6c-2d5b8a1e7c30');
SELECT apikey.set_key_expiry(:'reporting_id', NULL);

-- the audit trail says where the key came from; it never holds the text or its hash
SELECT action, details FROM apikey.audit_log WHERE key_id = :'billing_id' ORDER BY event_id;
SELECT action, details ->> 'by' AS by FROM apikey.audit_log WHERE key_id = :'reporting_id' AND action = 'imported';
SELECT count(*) AS audit_rows_with_the_text FROM apikey.audit
 WHERE details::text LIKE '%LegacyBillingKey%' OR details::text LIKE '%' || encode(digest('sk_live_51HxYzLegacyBillingKey0001', 'sha256'), 'hex') || '%';

-- bad input: a clear error, never the text
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'x')$$) AS neither;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'x', api_key => 'abc', key_hash => digest('abc', 'sha256'))$$) AS both;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'x', key_hash => '\x0102')$$) AS short_hash;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'x', key_hash => digest('abc', 'sha512'))$$) AS long_hash;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'x', api_key => '')$$) AS empty_text;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'x', api_key => repeat('k', 1025))$$) AS too_long;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'x', api_key => E'line\nbreak-secret-0123456789')$$) AS control;
SELECT pg_temp.try(format('SELECT apikey.import_key(%L, %L, %L, api_key => %L)', 'import-a', 'production', 'x',
       (SELECT api_key FROM apikey.create_key('import-b', 'production', 'native')))) AS native_text;
SELECT pg_temp.try(format('SELECT apikey.import_key(%L, %L, %L, api_key => %L)', 'import-a', 'production', 'x',
       apikey.public_key('import-a', 'production'))) AS public_key_text;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'again', api_key => 'sk_live_51HxYzLegacyBillingKey0001')$$) AS same_text_again;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'staging', 'x', api_key => 'abcdefgh')$$) AS no_environment;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'x', api_key => 'abcdefgh', scopes => '{Bad Scope}')$$) AS bad_scope;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'x', api_key => 'abcdefgh', hint => repeat('h', 17))$$) AS long_hint;
SELECT count(*) AS keys_left_by_failed_imports FROM apikey.keys
 WHERE tenant IN ('import-a', 'import-b') AND name IN ('x', 'again');

-- a short text shows nothing of itself in the hint
SELECT apikey.import_key('import-b', 'preview', 'short', api_key => 'abcdefgh') AS short_id \gset
SELECT hint FROM apikey.key_list WHERE key_id = :'short_id';
SELECT status, environment FROM apikey.verify('abcdefgh');

-- the tenant's lifetime policy applies as to a key created now
SELECT apikey.set_key_policy('import-b', '30 days', '90 days', 'ak');
SELECT apikey.import_key('import-b', 'production', 'policy', api_key => 'policy-key-0123456789') AS policy_id \gset
SELECT expires_at = created_at + interval '30 days' AS default_lifetime FROM apikey.key_list WHERE key_id = :'policy_id';
SELECT pg_temp.try($$SELECT apikey.import_key('import-b', 'production', 'x', api_key => 'policy-key-x', expires_at => now() + interval '1 year')$$) AS beyond_max;

-- rolling an imported key issues apikey key text; with a grace period the
-- imported text works until it ends
SELECT apikey.roll_key(:'billing_id', '1 hour') AS rolled \gset
SELECT :'rolled' ~ '^ak_live_[0-9A-Za-z]{44}$' AS apikey_format, apikey.looks_like_key(:'rolled') AS well_formed,
       substr(:'rolled', 9, 11) = :'billing_id' AS same_key_id;
SELECT status, key_id = :'billing_id' AS same_key FROM apikey.verify(:'rolled');
SELECT status, key_id = :'billing_id' AS same_key FROM apikey.verify('sk_live_51HxYzLegacyBillingKey0001');
SELECT imported, hint = 'ak_live_…' || right(:'rolled', 4) AS hint_updated, previous_secret_expires_at IS NOT NULL AS in_grace
  FROM apikey.key_list WHERE key_id = :'billing_id';
-- the grace period over: the imported text is not_found (the key is known, the secret no longer)
UPDATE apikey.keys SET previous_hash_expires_at = now() - interval '1 second' WHERE key_id = :'billing_id';
SELECT status FROM apikey.verify('sk_live_51HxYzLegacyBillingKey0001');
-- the next roll forgets the imported text altogether: it is malformed again
SELECT length(apikey.roll_key(:'billing_id')) AS rolled_again;
SELECT status FROM apikey.verify('sk_live_51HxYzLegacyBillingKey0001');
SELECT count(*) AS mappings FROM apikey.imported_keys WHERE key_id = :'billing_id';
-- rolling without grace forgets it at once
SELECT length(apikey.roll_key(:'reporting_id')) AS rolled;
SELECT status FROM apikey.verify('rpt-7f3a9c2e-4b1d-4e8a-9f6c-2d5b8a1e7c30');
SELECT count(*) AS mappings FROM apikey.imported_keys WHERE key_id = :'reporting_id';

-- deleting an imported key deletes its text's entry
SELECT apikey.import_key('import-a', 'production', 'to delete', api_key => 'delete-me-0123456789abcdef') AS del_id \gset
SELECT status FROM apikey.verify('delete-me-0123456789abcdef');
SELECT apikey.delete_key(:'del_id');
SELECT status FROM apikey.verify('delete-me-0123456789abcdef');
SELECT count(*) AS mappings FROM apikey.imported_keys WHERE key_id = :'del_id';

-- an import rolled back leaves nothing, and the text stays malformed
BEGIN;
SELECT apikey.import_key('import-a', 'production', 'rolled back', api_key => 'never-imported-0123456789') IS NOT NULL AS imported;
SELECT status FROM apikey.verify('never-imported-0123456789');
ROLLBACK;
SELECT status FROM apikey.verify('never-imported-0123456789');

-- rights: the rule of every management function.  A verifier role imports
-- only as a tenant administrator, into its own tenant, scopes it holds.
CREATE ROLE import_app;
SELECT apikey.grant_verifier('import_app');
SELECT api_key AS admin_key FROM apikey.create_key('import-a', 'production', 'tenant admin',
       scopes => '{apikey:admin,orders:*}') \gset
SET ROLE import_app;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'x', api_key => 'no-identity-0123')$$) AS not_authenticated;
BEGIN;
SELECT status FROM apikey.authenticate(:'admin_key');
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'by admin', api_key => 'admin-imported-0123', scopes => '{orders:read}')$$) AS own_tenant;
SELECT pg_temp.try($$SELECT apikey.import_key('import-b', 'production', 'x', api_key => 'admin-imported-0124')$$) AS other_tenant;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'production', 'x', api_key => 'admin-imported-0125', scopes => '{invoices:read}')$$) AS scope_not_held;
SELECT pg_temp.try($$SELECT apikey.import_key('import-a', 'preview', 'x', api_key => 'admin-imported-0126')$$) AS other_environment;
COMMIT;
SELECT pg_temp.try($$SELECT * FROM apikey.imported_keys$$) AS read_the_table;
RESET ROLE;
SELECT status FROM apikey.verify('admin-imported-0123');
SELECT actor_role, actor_key_id IS NOT NULL AS by_tenant_admin FROM apikey.audit_log
 WHERE action = 'imported' AND details ->> 'name' = 'by admin';
DROP OWNED BY import_app;
DROP ROLE import_app;

-- An imported text is unique within its tenant only.  A tenant
-- administrator who knows the SHA-256 of another tenant's legacy key
-- imports it first: the other tenant's own import must neither fail nor
-- tell of it, and the text must not authenticate as the first one's key.
-- A text that several tenants imported proves none of their keys
-- (not_found) until an administrator, who alone sees the conflict,
-- settles it.
SELECT apikey.create_tenant('import-victim') > 0 AS victim, apikey.create_tenant('import-attacker') > 0 AS attacker;
CREATE ROLE import_app2;
SELECT apikey.grant_verifier('import_app2');
SELECT api_key AS attacker_admin FROM apikey.create_key('import-attacker', 'production', 'tenant admin',
       scopes => '{apikey:admin}') \gset
SET ROLE import_app2;
BEGIN;
SELECT status FROM apikey.authenticate(:'attacker_admin');
SELECT apikey.import_key('import-attacker', 'production', 'claimed',
       key_hash => digest('victim-legacy-0123456789abcdef', 'sha256')) IS NOT NULL AS attacker_imported;
COMMIT;
RESET ROLE;
SELECT pg_temp.try($$SELECT apikey.import_key('import-victim', 'production', 'legacy',
       api_key => 'victim-legacy-0123456789abcdef')$$) AS victim_import;
SELECT valid, status, key_id IS NULL AS no_key, tenant FROM apikey.verify('victim-legacy-0123456789abcdef');
SELECT pg_temp.try($$SELECT apikey.authenticate('victim-legacy-0123456789abcdef')$$) AS authenticate;
-- a full administrator sees the conflict, from both sides
SELECT tenant, name, other_tenant FROM apikey.import_conflicts ORDER BY tenant;
-- a tenant administrator does not, nor the other tenant's keys
SET ROLE import_app2;
BEGIN;
SELECT status FROM apikey.authenticate(:'attacker_admin');
SELECT pg_temp.try($$SELECT count(*) FROM apikey.import_conflicts$$) AS conflicts;
SELECT tenant, name FROM apikey.key_list WHERE name IN ('claimed', 'legacy') ORDER BY tenant;
COMMIT;
RESET ROLE;
-- settled: the false import deleted, the victim's text is its key again
SELECT apikey.delete_key(key_id) FROM apikey.import_conflicts WHERE tenant = 'import-attacker';
SELECT valid, status, tenant FROM apikey.verify('victim-legacy-0123456789abcdef');
SELECT count(*) AS conflicts FROM apikey.import_conflicts;
-- a text several tenants imported, found in public: it is a secret of
-- each of them, and every key imported with it is revoked
SET ROLE import_app2;
BEGIN;
SELECT status FROM apikey.authenticate(:'attacker_admin');
SELECT apikey.import_key('import-attacker', 'production', 'claimed again',
       key_hash => digest('victim-legacy-0123456789abcdef', 'sha256')) IS NOT NULL AS attacker_imported;
COMMIT;
RESET ROLE;
SELECT apikey.report_leak('victim-legacy-0123456789abcdef', 'a scanner') AS reported;
SELECT tenant, name, status, revoked_reason FROM apikey.key_list
 WHERE name IN ('legacy', 'claimed again') AND tenant LIKE 'import-%' ORDER BY tenant;
SELECT apikey.report_leak('victim-legacy-0123456789abcdef', 'a scanner') AS reported_again;
SELECT apikey.delete_key(key_id) FROM apikey.import_conflicts WHERE tenant = 'import-attacker';

-- the same text twice within one tenant is still refused
SELECT pg_temp.try($$SELECT apikey.import_key('import-victim', 'production', 'again',
       key_hash => digest('victim-legacy-0123456789abcdef', 'sha256'))$$) AS same_text_same_tenant;
DROP OWNED BY import_app2;
DROP ROLE import_app2;
