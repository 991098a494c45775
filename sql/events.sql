-- Events for applications: every audit event is also sent at commit on the
-- channel apikey_events (its payload is checked in test/t/076_incidents.pl);
-- expiring_keys lists the keys about to expire, for reminder jobs, and shows
-- what key_list shows the caller.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('expiry-a') > 0 AS a, apikey.create_tenant('expiry-b') > 0 AS b;
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
SELECT count(*) FROM (
	SELECT apikey.create_key('expiry-a', 'production', name, expires_in => e)
	  FROM (VALUES ('in an hour', interval '1 hour'), ('in two days', '2 days'),
	               ('in ten days', '10 days'), ('never', NULL), ('revoked', '1 hour'),
	               ('expired', '1 hour')) AS v(name, e)) AS created;
SELECT apikey.create_key('expiry-a', 'preview', 'preview in a day', expires_in => '1 day') IS NOT NULL AS created;
SELECT apikey.create_key('expiry-b', 'production', 'other tenant in an hour', expires_in => '1 hour') IS NOT NULL AS created;
SELECT apikey.import_key('expiry-a', 'production', 'imported in three days', api_key => 'expiring-legacy-key-0001',
       expires_at => now() + interval '3 days', owner => 'user-42') IS NOT NULL AS imported;
SELECT apikey.revoke_key(key_id) FROM apikey.key_list WHERE tenant = 'expiry-a' AND name = 'revoked';
SELECT apikey.set_key_expiry(key_id, now() - interval '1 second') FROM apikey.key_list
 WHERE tenant = 'expiry-a' AND name = 'expired';

-- active keys expiring within the interval, soonest first
SELECT tenant, environment, name, owner, round(extract(epoch FROM expires_at - now()) / 3600) AS hours_left
  FROM apikey.expiring_keys('4 days') WHERE tenant LIKE 'expiry-%';
SELECT name FROM apikey.expiring_keys('1 hour') WHERE tenant LIKE 'expiry-%';
SELECT count(*) AS within_nothing FROM apikey.expiring_keys('0') WHERE tenant LIKE 'expiry-%';
-- the columns, as key_list has them
SELECT e.key_id = l.key_id AND e.hint = l.hint AND e.tenant_id = l.tenant_id
       AND e.last_used_at IS NOT DISTINCT FROM l.last_used_at AS as_key_list
  FROM apikey.expiring_keys('1 hour') AS e JOIN apikey.key_list AS l USING (key_id)
 WHERE e.tenant = 'expiry-b';

SELECT pg_temp.try($$SELECT * FROM apikey.expiring_keys(NULL)$$) AS null_interval;
SELECT pg_temp.try($$SELECT * FROM apikey.expiring_keys('-1 day')$$) AS negative;

-- visible as key_list is: a verifier role sees nothing until it
-- authenticates a tenant administrator's key, then its own tenant's keys of
-- that key's environment only
CREATE ROLE expiry_app;
SELECT apikey.grant_verifier('expiry_app');
SELECT api_key AS admin_key FROM apikey.create_key('expiry-a', 'production', 'admin',
       scopes => '{apikey:admin}') \gset
SET ROLE expiry_app;
SELECT count(*) AS seen_unauthenticated FROM apikey.expiring_keys('4 days');
BEGIN;
SELECT status FROM apikey.authenticate(:'admin_key');
SELECT tenant, name FROM apikey.expiring_keys('4 days');
COMMIT;
RESET ROLE;
CREATE ROLE expiry_nobody;
SET ROLE expiry_nobody;
SELECT pg_temp.try($$SELECT * FROM apikey.expiring_keys('4 days')$$) AS no_rights;
RESET ROLE;
DROP OWNED BY expiry_app;
DROP ROLE expiry_app, expiry_nobody;

-- the trigger that sends each audit event
SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'apikey.audit'::regclass;
