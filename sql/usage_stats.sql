-- usage_stats: how many verifications each key had per hour and outcome,
-- counted without a write per verification (backend memory, shared memory,
-- then the background writer; apikey.usage_flush() writes what is pending
-- and returns once it is written).  Key texts are random: kept in psql
-- variables, never printed.
\set SHOW_CONTEXT never

SELECT apikey.create_tenant('us-a') > 0 AS a, apikey.create_tenant('us-b') > 0 AS b;
SELECT api_key AS key_used, key_id AS id_used FROM apikey.create_key('us-a', 'production', 'used',
       scopes => '{orders:read}') \gset
SELECT api_key AS key_old, key_id AS id_old FROM apikey.create_key('us-a', 'production', 'rolled') \gset
SELECT apikey.roll_key(:'id_old') AS key_new \gset
SELECT api_key AS key_revoked, key_id AS id_revoked FROM apikey.create_key('us-a', 'production', 'revoked') \gset
SELECT apikey.revoke_key(:'id_revoked');
SELECT api_key AS key_limited, key_id AS id_limited FROM apikey.create_key('us-a', 'production', 'limited') \gset
SELECT apikey.set_rate_limit(:'id_limited', 'tiny', 1, '1 hour');
SELECT apikey.set_credits(:'id_limited', 1);
SELECT api_key AS key_gone, key_id AS id_gone FROM apikey.create_key('us-a', 'production', 'deleted') \gset
SELECT api_key AS key_b, key_id AS id_b FROM apikey.create_key('us-b', 'production', 'b') \gset
SELECT apikey.delete_key(:'id_gone');

-- every outcome of a known key is counted; a wrong secret of a known key
-- id is not_found (someone holds an old or wrong secret); key text that
-- names no key, malformed text and public keys belong to no key
SELECT count(*) FILTER (WHERE status = 'valid') AS valid,
       count(*) FILTER (WHERE status = 'insufficient_scope') AS insufficient_scope
  FROM generate_series(1, 5) AS i,
       LATERAL apikey.verify(:'key_used', scope => CASE WHEN i <= 3 THEN 'orders:read' ELSE 'orders:write' END) AS v;
SELECT (apikey.verify(:'key_old')).status AS old_secret, (apikey.verify(:'key_old')).status AS old_secret_again,
       (apikey.verify(:'key_new')).status AS new_secret;
SELECT (apikey.verify(:'key_revoked')).status AS revoked;
SELECT (apikey.verify(:'key_limited', cost => 2)).status AS too_costly,
       (apikey.verify(:'key_limited')).status AS first,
       (apikey.verify(:'key_limited')).status AS second;
SELECT (apikey.verify(:'key_gone')).status AS deleted_key, (apikey.verify('ak_live_nope')).status AS malformed,
       (apikey.verify(apikey.public_key('us-a', 'production'))).status AS public_key;
SELECT (apikey.verify(:'key_b')).status AS other_tenant;

-- nothing is written by verification; the flush writes it all
SELECT count(*) AS written_before_the_flush FROM apikey.usage_stats WHERE tenant IN ('us-a', 'us-b');
SELECT apikey.usage_flush();
SELECT apikey.usage_tracking() LIKE '%; 0 usage counts pending, %' AS nothing_pending;
SELECT coalesce(l.name, '(deleted)') AS key, s.status, sum(s.verifications) AS verifications
  FROM apikey.usage_stats AS s LEFT JOIN apikey.key_list AS l USING (key_id)
 WHERE s.tenant = 'us-a'
 GROUP BY 1, 2 ORDER BY 1, 2;
-- hours are whole hours, in UTC, this one (or the one before, at a turn)
SELECT bool_and(hour = date_trunc('hour', hour, 'UTC')
                AND hour >= date_trunc('hour', now() - interval '1 hour', 'UTC')
                AND hour <= now()) AS this_hour
  FROM apikey.usage_stats WHERE tenant = 'us-a';
SELECT last_used_at IS NOT NULL AS last_used FROM apikey.key_list WHERE key_id = :'id_used';

-- exact: a second flush adds nothing, new verifications add to the counts
SELECT apikey.usage_flush();
SELECT sum(verifications) AS still FROM apikey.usage_stats WHERE key_id = :'id_used' AND status = 'valid';
SELECT count(*) FILTER (WHERE (apikey.verify(:'key_used')).valid) AS more FROM generate_series(1, 1000);
SELECT apikey.usage_flush();
SELECT sum(verifications) AS now FROM apikey.usage_stats WHERE key_id = :'id_used' AND status = 'valid';

-- the counts outlive a deleted key, like the audit trail
SELECT apikey.delete_key(:'id_revoked');
SELECT status, sum(verifications) AS verifications FROM apikey.usage_stats
 WHERE key_id = :'id_revoked' GROUP BY status;

-- retention: hours older than apikey.usage_stats_retention (90 days by
-- default) are deleted when the writer next writes for this database
INSERT INTO apikey.usage_hourly (key_id, hour, status, tenant_id, verifications)
SELECT :'id_b', date_trunc('hour', now() - d, 'UTC'), 'valid', tenant_id, 1
  FROM apikey.tenants, unnest('{10 days,89 days,91 days,400 days}'::interval[]) AS d
 WHERE slug = 'us-b';
SELECT (apikey.verify(:'key_b')).status AS b_again;
SELECT apikey.usage_flush();
SELECT round(extract(epoch FROM now() - hour) / 86400) AS days_ago, verifications
  FROM apikey.usage_stats WHERE key_id = :'id_b' AND hour < now() - interval '1 day' ORDER BY hour;
SELECT current_setting('apikey.usage_stats_retention') AS retention;

-- visible as key_list is: every tenant to a full administrator, the own
-- tenant to a transaction authenticated with an apikey:admin key, nothing
-- to anyone else
CREATE ROLE regress_us_app;
SELECT apikey.grant_verifier('regress_us_app');
SELECT api_key AS key_admin FROM apikey.create_key('us-a', 'production', 'admin', scopes => '{apikey:admin}') \gset
SET ROLE regress_us_app;
SELECT count(*) AS rows_without_an_admin_key FROM apikey.usage_stats;
BEGIN;
SELECT status FROM apikey.authenticate(:'key_admin');
SELECT DISTINCT tenant FROM apikey.usage_stats;
COMMIT;
SELECT has_function_privilege('apikey.usage_flush()', 'EXECUTE') AS verifier_may_flush;
RESET ROLE;
DROP OWNED BY regress_us_app;
DROP ROLE regress_us_app;
