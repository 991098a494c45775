-- revoke_owner_keys: a person leaves the workspace, and every key of
-- theirs in the tenant stops at once, in one statement.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('ro-acme') > 0 AS created, apikey.create_tenant('ro-globex') > 0 AS created;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;

CREATE TEMP TABLE ro_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
INSERT INTO ro_keys
SELECT label, k.key_id, k.api_key
  FROM (VALUES
	('bob laptop',      'ro-acme',   'production', 'user_bob'),
	('bob ci',          'ro-acme',   'preview',    'user_bob'),
	('bob old',         'ro-acme',   'production', 'user_bob'),
	('bob revoked',     'ro-acme',   'production', 'user_bob'),
	('alice laptop',    'ro-acme',   'production', 'user_alice'),
	('nobody''s',       'ro-acme',   'production', NULL),
	('bob at globex',   'ro-globex', 'production', 'user_bob')
  ) AS v(label, tenant, environment, owner),
  LATERAL apikey.create_key(v.tenant, v.environment, v.label, owner => v.owner) AS k;
SELECT apikey.set_key_expiry(key_id, now() - interval '1 day') FROM ro_keys WHERE label = 'bob old';
SELECT apikey.revoke_key(key_id, 'lost') FROM ro_keys WHERE label = 'bob revoked';

-- undone with the transaction, like any change
BEGIN;
SELECT apikey.revoke_owner_keys('ro-acme', 'user_bob') AS revoked;
ROLLBACK;
SELECT count(*) FILTER (WHERE status = 'revoked') AS revoked_after_rollback
  FROM apikey.key_list WHERE tenant = 'ro-acme';

-- every key of the owner in that tenant not revoked yet, in every
-- environment, expired ones too (so a new expiry cannot revive them)
SELECT apikey.revoke_owner_keys('ro-acme', 'user_bob', 'left the company') AS revoked;
SELECT r.label, v.status, l.revoked_reason
  FROM ro_keys AS r, apikey.verify(r.api_key) AS v, apikey.key_list AS l
 WHERE l.key_id = r.key_id ORDER BY r.label;
SELECT r.label, a.details
  FROM apikey.audit_log AS a JOIN ro_keys AS r USING (key_id)
 WHERE a.action = 'revoked' ORDER BY r.label;
-- an expired key revoked so stays revoked when its expiry is moved
SELECT apikey.set_key_expiry(key_id, NULL) FROM ro_keys WHERE label = 'bob old';
SELECT status FROM apikey.verify((SELECT api_key FROM ro_keys WHERE label = 'bob old'));

-- nothing left to revoke, an unknown owner: 0
SELECT apikey.revoke_owner_keys('ro-acme', 'user_bob') AS again,
       apikey.revoke_owner_keys('ro-acme', 'user_nobody') AS unknown_owner;

-- bad input: a clear error
SELECT stmt, pg_temp.try(stmt) AS result FROM unnest(ARRAY[
	$$SELECT apikey.revoke_owner_keys(NULL, 'user_bob')$$,
	$$SELECT apikey.revoke_owner_keys('ro-acme', NULL)$$,
	$$SELECT apikey.revoke_owner_keys('ro-nobody', 'user_bob')$$,
	$$SELECT apikey.revoke_owner_keys('ro-acme', 'user_alice', repeat('r', 1001))$$,
	$$SELECT apikey.revoke_owner_keys('ro-acme', 'user_alice', E'left\n')$$
]) AS stmt;
SELECT status AS alice_unchanged FROM apikey.verify((SELECT api_key FROM ro_keys WHERE label = 'alice laptop'));
