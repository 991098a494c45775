-- The life of a key: rename, describe, revoke, reactivate, expire, delete.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('life') > 0 AS created;
SELECT key_id, api_key FROM apikey.create_key('life', 'production', 'Zapier') \gset

-- errors name the key; its id is random, so the tests show it as <id>
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, 'key [0-9A-Za-z]{11}', 'key <id>');
END
$$;

SELECT apikey.rename_key(:'key_id', 'Zapier (marketing)');
SELECT apikey.describe_key(:'key_id', 'Posts new leads');
SELECT name, description, status FROM apikey.key_list WHERE key_id = :'key_id';
SELECT apikey.describe_key(:'key_id', NULL);
SELECT description FROM apikey.key_list WHERE key_id = :'key_id';

-- revoke: disabled from the next verification on, with a reason
SELECT apikey.revoke_key(:'key_id', 'leaked in a support ticket');
SELECT status, valid FROM apikey.verify(:'api_key');
SELECT status, revoked_at IS NOT NULL AS revoked_at_set, revoked_reason
  FROM apikey.key_list WHERE key_id = :'key_id';
SELECT pg_temp.try(format('SELECT apikey.revoke_key(%L)', :'key_id'));

-- reactivate: valid again
SELECT apikey.reactivate_key(:'key_id');
SELECT status FROM apikey.verify(:'api_key');
SELECT status, revoked_at, revoked_reason FROM apikey.key_list WHERE key_id = :'key_id';
SELECT pg_temp.try(format('SELECT apikey.reactivate_key(%L)', :'key_id'));

-- a name is 1 to 200 characters, not blank, without control characters;
-- a refused rename changes nothing (on a key of its own)
SELECT key_id AS limits_id FROM apikey.create_key('life', 'production', 'limits') \gset
SELECT what, pg_temp.try(format('SELECT apikey.rename_key(%L, %L)', :'limits_id', n)) AS result
  FROM (VALUES ('null', NULL), ('empty', ''), ('blank', '   '), ('tab', E'a\tb'),
               ('newline', E'a\nb'), ('201 characters', repeat('n', 201)),
               ('200 characters', repeat('n', 200))) AS t(what, n);
SELECT length(name) AS name_length FROM apikey.key_list WHERE key_id = :'limits_id';

-- a revoke reason is at most 1000 characters, without control characters;
-- a refused revoke changes nothing
SELECT what, pg_temp.try(format('SELECT apikey.revoke_key(%L, %L)', :'limits_id', r)) AS result
  FROM (VALUES ('1001 characters', repeat('r', 1001)), ('control character', E'a\x01b')) AS t(what, r);
SELECT status FROM apikey.key_list WHERE key_id = :'limits_id';
SELECT apikey.revoke_key(:'limits_id', repeat('r', 1000));
SELECT status, length(revoked_reason) AS reason_length FROM apikey.key_list WHERE key_id = :'limits_id';
SELECT apikey.delete_key(:'limits_id');

-- revocation is transactional: rolled back, nothing happened
BEGIN;
SELECT apikey.revoke_key(:'key_id', 'oops');
SELECT status FROM apikey.verify(:'api_key');
ROLLBACK;
SELECT status FROM apikey.verify(:'api_key');

-- expiry: set, extend, remove; a past time expires the key now
SELECT now() + interval '1 day' AS in_a_day \gset
SELECT apikey.set_key_expiry(:'key_id', :'in_a_day');
SELECT status, expires_at = :'in_a_day' AS expires_when_set
  FROM apikey.key_list WHERE key_id = :'key_id';
SELECT status FROM apikey.verify(:'api_key');
SELECT apikey.set_key_expiry(:'key_id', now() - interval '1 second');
SELECT status FROM apikey.key_list WHERE key_id = :'key_id';
SELECT status, valid FROM apikey.verify(:'api_key');
SELECT apikey.set_key_expiry(:'key_id', NULL);
SELECT status, expires_at FROM apikey.key_list WHERE key_id = :'key_id';
SELECT status FROM apikey.verify(:'api_key');
-- revoked wins over expired
SELECT apikey.set_key_expiry(:'key_id', now() - interval '1 second');
SELECT apikey.revoke_key(:'key_id');
SELECT status FROM apikey.verify(:'api_key');
SELECT apikey.reactivate_key(:'key_id');
SELECT status FROM apikey.verify(:'api_key');
SELECT apikey.set_key_expiry(:'key_id', NULL);

-- a tenant's maximum lifetime bounds set_key_expiry too
SELECT apikey.create_tenant('life-max', max_key_lifetime => '7 days') > 0 AS created;
SELECT key_id AS max_id FROM apikey.create_key('life-max', 'production', 'weekly', expires_in => '7 days') \gset
SELECT apikey.set_key_expiry(:'max_id', NULL);
SELECT apikey.set_key_expiry(:'max_id', now() + interval '8 days');
SELECT apikey.set_key_expiry(:'max_id', now() + interval '6 days');
SELECT apikey.create_key('life-max', 'production', 'forever');

-- delete: permanent; the key is gone, its history stays
SELECT apikey.delete_key(:'key_id');
SELECT status FROM apikey.verify(:'api_key');
SELECT count(*) AS listed FROM apikey.key_list WHERE key_id = :'key_id';
SELECT f, pg_temp.try(format('SELECT apikey.%s(%L)', f, :'key_id'))
  FROM unnest('{delete_key,reactivate_key,revoke_key,roll_key}'::text[]) f;

-- the audit trail, in order, survives the deletion
SELECT action, actor_role, actor_key_id,
       details - 'revoked_at' - 'from' - 'to' - 'hint' AS details
  FROM apikey.audit_log WHERE key_id = :'key_id' ORDER BY event_id;
SELECT count(*) FILTER (WHERE details ? 'from') AS expiry_events_with_from
  FROM apikey.audit_log WHERE key_id = :'key_id' AND action = 'expiry_changed';
