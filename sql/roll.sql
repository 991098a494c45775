-- Rolling a key: a new secret for the same key, with an optional grace
-- period during which the previous secret still works.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('roll') > 0 AS created;
SELECT key_id, api_key AS old_key, hint AS old_hint FROM apikey.create_key('roll', 'production', 'billing',
       scopes => '{invoices:read}') \gset

-- errors name the key; its id is random, so the tests show it as <id>
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'key [0-9A-Za-z]{11}', 'key <id>');
END
$$;

-- no grace: the old secret stops working at once
SELECT apikey.roll_key(:'key_id') AS new_key \gset
SELECT :'new_key' <> :'old_key' AS new_text,
       substr(:'new_key', 1, 19) = substr(:'old_key', 1, 19) AS same_prefix_tag_and_key_id,
       apikey.looks_like_key(:'new_key') AS well_formed;
SELECT status FROM apikey.verify(:'old_key');
SELECT status, scopes, key_id = :'key_id' AS same_key FROM apikey.verify(:'new_key');
SELECT name, hint = 'ak_live_…' || right(:'new_key', 4) AS hint_updated, rolled_at IS NOT NULL AS rolled,
       previous_secret_expires_at
  FROM apikey.key_list WHERE key_id = :'key_id';
SELECT key_hash = digest(:'new_key', 'sha256') AS pgcrypto_agrees, previous_hash
  FROM apikey.keys WHERE key_id = :'key_id';

-- with grace: both work until the grace period ends
SELECT apikey.roll_key(:'key_id', '1 hour') AS newer_key \gset
SELECT status FROM apikey.verify(:'new_key');
SELECT status FROM apikey.verify(:'newer_key');
SELECT previous_secret_expires_at - rolled_at AS grace
  FROM apikey.key_list WHERE key_id = :'key_id';
SELECT previous_hash = digest(:'new_key', 'sha256') AS previous_is_pgcrypto_digest
  FROM apikey.keys WHERE key_id = :'key_id';

-- the previous secret is still subject to the key's state
SELECT apikey.revoke_key(:'key_id');
SELECT status FROM apikey.verify(:'new_key');
SELECT apikey.reactivate_key(:'key_id');

-- only the immediately previous secret is honoured
SELECT apikey.roll_key(:'key_id', '1 hour') AS newest_key \gset
SELECT status FROM apikey.verify(:'new_key');
SELECT status FROM apikey.verify(:'newer_key');
SELECT status FROM apikey.verify(:'newest_key');

-- when the grace period is over the previous secret is not_found
UPDATE apikey.keys SET previous_hash_expires_at = now() - interval '1 second' WHERE key_id = :'key_id';
SELECT status FROM apikey.verify(:'newer_key');
SELECT previous_secret_expires_at FROM apikey.key_list WHERE key_id = :'key_id';

-- a roll uses the tenant's current prefix
SELECT apikey.set_key_policy('roll', NULL, NULL, 'rk');
SELECT apikey.roll_key(:'key_id') ~ '^rk_live_[0-9A-Za-z]{44}$' AS new_prefix;

-- rolls are transactional
SELECT apikey.roll_key(:'key_id') AS current_key \gset
BEGIN;
SELECT apikey.roll_key(:'key_id') IS NOT NULL AS rolled_in_tx;
ROLLBACK;
SELECT status FROM apikey.verify(:'current_key');

-- what cannot be rolled
SELECT g AS grace, pg_temp.try(format('SELECT apikey.roll_key(%L, %L)', :'key_id', g))
  FROM unnest(ARRAY['-1 hour', '31 days', NULL]) g;
SELECT apikey.revoke_key(:'key_id');
SELECT pg_temp.try(format('SELECT apikey.roll_key(%L)', :'key_id')) AS roll_revoked;
SELECT apikey.reactivate_key(:'key_id');
SELECT apikey.set_key_expiry(:'key_id', now() - interval '1 second');
SELECT pg_temp.try(format('SELECT apikey.roll_key(%L)', :'key_id')) AS roll_expired;
SELECT pg_temp.try($$SELECT apikey.roll_key('00000000000')$$) AS roll_unknown;

-- the audit trail records each roll with its grace period
SELECT action, details->>'grace_seconds' AS grace_seconds, details ? 'previous_hint' AS has_previous_hint
  FROM apikey.audit_log WHERE key_id = :'key_id' AND action = 'rolled' ORDER BY event_id;
