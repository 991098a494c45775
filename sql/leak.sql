-- Leak reports: a secret scanner found key text in public.  A real key
-- (native or imported, of any environment, even expired) is revoked at
-- once and the report audited as 'leaked'; a role granted only
-- report_leak can do nothing else.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('leak') > 0 AS created;
CREATE TABLE pg_temp.leak_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
INSERT INTO pg_temp.leak_keys
SELECT label, key_id, api_key
  FROM unnest('{live,again,expired,rolled,deleted,bystander}'::text[]) AS label,
       apikey.create_key('leak', 'production', label, scopes => '{orders:read}');
INSERT INTO pg_temp.leak_keys
SELECT 'preview', key_id, api_key FROM apikey.create_key('leak', 'preview', 'preview');
INSERT INTO pg_temp.leak_keys
SELECT 'imported', apikey.import_key('leak', 'production', 'imported', api_key => 'ghp_legacyTokenFromTheOldSystem0123'),
       'ghp_legacyTokenFromTheOldSystem0123';
INSERT INTO pg_temp.leak_keys
SELECT 'rolled new', key_id, apikey.roll_key(key_id, '1 day') FROM pg_temp.leak_keys WHERE label = 'rolled';
SELECT apikey.set_key_expiry(key_id, now() - interval '1 minute') FROM pg_temp.leak_keys WHERE label = 'expired';
SELECT apikey.delete_key(key_id) FROM pg_temp.leak_keys WHERE label = 'deleted';
CREATE FUNCTION pg_temp.k(label text) RETURNS text LANGUAGE sql AS
	$$ SELECT api_key FROM pg_temp.leak_keys AS l WHERE l.label = k.label $$;
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- a real key: revoked at once, with the source in the reason
SELECT apikey.report_leak(pg_temp.k('live'), 'https://github.com/acme/app/blob/main/.env');
SELECT status FROM apikey.verify(pg_temp.k('live'));
SELECT l.label, k.status, k.revoked_reason FROM apikey.key_list AS k JOIN pg_temp.leak_keys AS l USING (key_id)
 WHERE l.label = 'live';
-- reported again: already revoked, and the report is audited again
SELECT apikey.report_leak(pg_temp.k('live'), 'https://gist.github.com/someone/1');
SELECT a.action, a.details FROM apikey.audit_log AS a JOIN pg_temp.leak_keys AS l USING (key_id)
 WHERE l.label = 'live' ORDER BY a.event_id;
-- without a source
SELECT apikey.report_leak(pg_temp.k('again'));
SELECT revoked_reason FROM apikey.key_list WHERE key_id = (SELECT key_id FROM pg_temp.leak_keys WHERE label = 'again');

-- any environment (whatever apikey.environment says), expired keys too,
-- imported keys by their original text
SET apikey.environment = 'production';
SELECT l.label, apikey.report_leak(l.api_key)
  FROM pg_temp.leak_keys AS l WHERE l.label IN ('preview', 'expired', 'imported') ORDER BY l.label;
SELECT l.label, v.status FROM pg_temp.leak_keys AS l, apikey.verify(l.api_key) AS v
 WHERE l.label IN ('preview', 'expired', 'imported') ORDER BY l.label;
RESET apikey.environment;

-- the previous secret of a key rolled with a grace period: that text stops
-- working, the key and its current secret go on
SELECT apikey.report_leak(pg_temp.k('rolled'), 'pastebin');
SELECT status FROM apikey.verify(pg_temp.k('rolled'));
SELECT status FROM apikey.verify(pg_temp.k('rolled new'));
SELECT status, previous_secret_expires_at FROM apikey.key_list
 WHERE key_id = (SELECT key_id FROM pg_temp.leak_keys WHERE label = 'rolled');
SELECT details FROM apikey.audit_log
 WHERE key_id = (SELECT key_id FROM pg_temp.leak_keys WHERE label = 'rolled') AND action = 'leaked';
SELECT apikey.report_leak(pg_temp.k('rolled'), 'pastebin') AS reported_again;

-- not a key of ours: nothing happens, nothing is audited
SELECT t AS text, apikey.report_leak(t) FROM unnest(ARRAY['not a key', '', NULL,
       'ak_live_' || repeat('A', 44)]) AS t;
SELECT apikey.report_leak(pg_temp.k('deleted')) AS deleted_key;
SELECT apikey.report_leak(apikey.public_key('leak', 'production')) AS public_key;
SELECT apikey.report_leak(left(pg_temp.k('bystander'), -6) || 'zzzzzz') AS wrong_checksum;
SELECT status FROM apikey.verify(pg_temp.k('bystander'));
SELECT action, count(*) FROM apikey.audit_log WHERE tenant = 'leak' AND action = 'leaked' GROUP BY action;

-- the source is checked like a reason
SELECT pg_temp.try(format('SELECT apikey.report_leak(%L, %L)', pg_temp.k('bystander'), repeat('s', 501))) AS long_source;
SELECT pg_temp.try(format('SELECT apikey.report_leak(%L, %L)', pg_temp.k('bystander'), E'a\nb')) AS control_source;
SELECT status FROM apikey.verify(pg_temp.k('bystander'));

-- a rolled-back report revokes nothing
BEGIN;
SELECT apikey.report_leak(pg_temp.k('bystander'), 'test');
ROLLBACK;
SELECT status FROM apikey.verify(pg_temp.k('bystander'));

-- a role granted only this: it reports leaks, and does nothing else
CREATE ROLE leak_reporter_role;
SELECT apikey.grant_leak_reporter('leak_reporter_role');
SELECT p.proname FROM pg_proc AS p
 WHERE p.pronamespace = 'apikey'::regnamespace
   AND has_function_privilege('leak_reporter_role', p.oid, 'EXECUTE')
   AND NOT has_function_privilege('public', p.oid, 'EXECUTE') ORDER BY 1;
SELECT c.relname FROM pg_class AS c
 WHERE c.relnamespace = 'apikey'::regnamespace
   AND has_table_privilege('leak_reporter_role', c.oid, 'SELECT, INSERT, UPDATE, DELETE') ORDER BY 1;
SELECT api_key AS bystander_key, key_id AS bystander_id FROM pg_temp.leak_keys WHERE label = 'bystander' \gset
SET ROLE leak_reporter_role;
SELECT pg_temp.try(format('SELECT apikey.verify(%L)', :'bystander_key')) AS verify;
SELECT pg_temp.try(format('SELECT apikey.authenticate(%L)', :'bystander_key')) AS authenticate;
SELECT pg_temp.try(format('SELECT apikey.revoke_key(%L)', :'bystander_id')) AS revoke_key;
SELECT pg_temp.try($$SELECT apikey.create_key('leak', 'production', 'x')$$) AS create_key;
SELECT pg_temp.try($$SELECT apikey.import_key('leak', 'production', 'x', api_key => 'xxxxxxxx')$$) AS import_key;
SELECT pg_temp.try($$SELECT * FROM apikey.key_list$$) AS key_list;
SELECT pg_temp.try($$SELECT * FROM apikey.audit_log$$) AS audit_log;
SELECT pg_temp.try($$SELECT * FROM apikey.keys$$) AS keys;
SELECT apikey.report_leak(:'bystander_key', 'https://github.com/acme/app/commit/1');
RESET ROLE;
SELECT status FROM apikey.verify(:'bystander_key');
SELECT actor_role, details ->> 'source' AS source FROM apikey.audit_log
 WHERE key_id = :'bystander_id' AND action = 'leaked';
DROP OWNED BY leak_reporter_role;
DROP ROLE leak_reporter_role;

SELECT pg_temp.try($$SELECT apikey.grant_leak_reporter(NULL)$$) AS null_role;
SELECT pg_temp.try($$SELECT apikey.grant_leak_reporter(1::regrole)$$) AS no_such_role;
