-- A tenant's key policy: the longest a key may live, judged by the time a
-- lifetime gives (a month is not 30 days when added to a date).
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('policy-90', max_key_lifetime => '90 days') > 0 AS created;
SELECT apikey.create_tenant('policy-365', max_key_lifetime => '365 days') > 0 AS created;

-- within the maximum
SELECT expires_at - now() AS lifetime FROM apikey.create_key('policy-90', 'production', 'ok', expires_in => '90 days');
SELECT expires_at - now() <= interval '90 days' AS within
  FROM apikey.create_key('policy-90', 'production', 'ok', expires_in => '2 mons');
-- calendar months past the maximum: 3 months and 2 days are at least 91 days
SELECT apikey.create_key('policy-90', 'production', 'too long', expires_in => '3 mons 2 days');
SELECT apikey.create_key('policy-365', 'production', 'too long', expires_in => '12 mons 5 days');
SELECT apikey.create_key('policy-365', 'production', 'too long', expires_in => '1 year 1 day');
-- no key was created by the refusals
SELECT name, count(*) FROM apikey.key_list WHERE tenant IN ('policy-90', 'policy-365')
 GROUP BY name ORDER BY name;

-- the same rule for a default lifetime within the maximum
SELECT apikey.set_key_policy('policy-90', '3 mons 2 days', '90 days');
-- '12 mons 1 day' counts 361 days as an interval, but is at least 366 days
-- from any date
SELECT apikey.set_key_policy('policy-365', '12 mons 1 day', '365 days');
SELECT apikey.set_key_policy('policy-90', '1 mon', '90 days');
-- and the other way round: '364 days' is more than '12 mons' as intervals
-- (12 * 30 days), but less as times; accepted, by set_key_policy and by
-- create_tenant
SELECT apikey.set_key_policy('policy-365', '364 days', '12 mons');
SELECT default_key_lifetime, max_key_lifetime FROM apikey.tenant_list WHERE tenant = 'policy-365';
SELECT apikey.create_tenant('policy-year', default_key_lifetime => '364 days', max_key_lifetime => '12 mons') > 0 AS created;
SELECT expires_at - now() <= interval '31 days' AS default_applied
  FROM apikey.create_key('policy-90', 'production', 'by default');
-- and for expiry set later
SELECT key_id AS k FROM apikey.create_key('policy-90', 'production', 'later') \gset
SELECT apikey.set_key_expiry(:'k', now() + interval '3 mons 2 days');
SELECT apikey.set_key_expiry(:'k', now() + interval '89 days');
