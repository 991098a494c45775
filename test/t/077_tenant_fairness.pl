# One tenant cannot take what the others need of the server-wide tables in
# shared memory (issue 19, item 1).
#
# - Rate-limit buckets (apikey.rate_limit_buckets = 1024, the smallest):
#   mallory's administrator (an apikey:admin key, through an application
#   role granted grant_verifier) gives 1500 keys a limit of 366 days and
#   uses each once, more than the whole table.  Then acme's keys, with
#   limits of their own and a tenant limit, are still admitted and counted;
#   mallory's keys beyond its share are refused (rate_limited without
#   retry_after, KA429 from authenticate); apikey.rate_limit_tenants()
#   shows who holds what and who was refused, the server log says so once
#   (without key text), and rate_limit_status() counts the refusals.
#   With apikey.rate_limit_tenant_share = 100 (no reserve) the same attack
#   starves acme: the setting is what protects it.
#   A tenant with brief limits fills the rest, is refused, and once its
#   windows have passed its idle buckets are reused.
# - Pending usage (apikey.usage_max_keys = usage_stats_max_counts = 1024):
#   mallory verifies 2500 keys, with three statuses each, within one round
#   of the writer; acme's verifications after that are still counted
#   (usage_stats) and its last_used_at is set.
#
# Key texts are secrets even in tests: they stay in the table test_keys.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ApikeyTAP;

my $node = new_node('fairness', conf => q{
shared_preload_libraries = 'apikey'
apikey.rate_limit_buckets = 1024
apikey.usage_max_keys = 1024
apikey.usage_stats_max_counts = 1024
apikey.usage_flush_interval = 3600
});
$node->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	CREATE ROLE app LOGIN;
	SELECT apikey.grant_verifier('app');
	SELECT apikey.create_tenant('acme');
	SELECT apikey.create_tenant('mallory');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	GRANT ALL ON test_keys TO app;
	INSERT INTO test_keys SELECT 'mallory admin', key_id, api_key
	  FROM apikey.create_key('mallory', 'production', 'admin', scopes => '{apikey:admin}');
	-- acme: 32 keys with a limit each, and a tenant budget
	INSERT INTO test_keys SELECT 'acme ' || g, k.key_id, k.api_key
	  FROM generate_series(1, 32) AS g, apikey.create_key('acme', 'production', 'acme ' || g) AS k;
	SELECT count(apikey.set_rate_limit(key_id, 'hourly', 100, '1 hour')) FROM test_keys WHERE label LIKE 'acme %';
	SELECT apikey.set_tenant_rate_limit('acme', 'plan', 100000, '1 day');
});

# the attack, as mallory's own administrator: 1500 keys, 366 days each
my $attack = sub {
	my ($from, $to) = @_;
	$node->safe_psql('postgres', qq{
		BEGIN;
		SELECT apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'mallory admin'));
		INSERT INTO test_keys SELECT 'mallory ' || g, k.key_id, k.api_key
		  FROM generate_series($from, $to) AS g, apikey.create_key('mallory', 'production', 'm' || g) AS k;
		SELECT count(apikey.set_rate_limit(key_id, 'yearly', 1000, '366 days'))
		  FROM test_keys WHERE label LIKE 'mallory %' AND label <> 'mallory admin'
		   AND substr(label, 9)::int BETWEEN $from AND $to;
		COMMIT;}, extra_params => [ '-U', 'app' ]);
};
my $statuses = sub {
	my ($like) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT string_agg(status || ' ' || n || CASE WHEN status = 'rate_limited' THEN ' (retry_after ' || r || ')' ELSE '' END,
		                  ', ' ORDER BY status)
		  FROM (SELECT v.status, count(*) AS n, string_agg(DISTINCT coalesce(v.retry_after::text, 'NULL'), ',') AS r
		          FROM test_keys AS t, apikey.verify(t.api_key) AS v
		         WHERE t.label LIKE '$like' AND t.label <> 'mallory admin' GROUP BY v.status) AS x},
		extra_params => [ '-U', 'app' ]);
};
$attack->(1, 1500);
my $mallory = $statuses->('mallory %');
like($mallory, qr/^rate_limited (\d+) \(retry_after NULL\), valid (\d+)$/,
	"mallory's 1500 yearly limits, used once: those beyond its share are refused without retry_after ($mallory)");
my ($m_refused, $m_valid) = $mallory =~ /^rate_limited (\d+) .*valid (\d+)$/;
cmp_ok($m_valid // 1024, '<=', 1024 - 32 * 8, '  ... mallory holds at most its part, the last 25% of each partition stay free');

is($statuses->('acme %'), 'valid 32', "acme's 32 keys with limits are admitted while mallory is at its cap");
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE s = 'valid') || ' valid, ' || count(*) FILTER (WHERE s = 'rate_limited') || ' refused'
	  FROM (SELECT (apikey.verify((SELECT api_key FROM test_keys WHERE label = 'acme 1'))).status
	          FROM generate_series(1, 100)) AS x(s)}),
	'99 valid, 1 refused', "  ... and acme's own limit of 100 per hour counts exactly");
is($node->safe_psql('postgres', q{
	SELECT v.status || ' ' || (v.retry_after IS NOT NULL)
	  FROM test_keys AS t, apikey.verify(t.api_key) AS v WHERE t.label = 'acme 1'}), 'rate_limited true',
	'  ... refused with a retry_after: a limit, not a want of buckets');

# a key of mallory that found no bucket: KA429, each time
my $refused_key = $node->safe_psql('postgres', q{
	SELECT t.label FROM test_keys AS t, apikey.verify(t.api_key) AS v
	 WHERE t.label LIKE 'mallory %' AND v.status = 'rate_limited' LIMIT 1});
my ($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT apikey.authenticate((SELECT api_key FROM test_keys WHERE label = '$refused_key'))");
like($err, qr/ERROR:\s+KA429:.*no time to retry is known/s, "authenticate with a refused key of mallory: KA429, no retry time");

# what an administrator sees
my $tenants = $node->safe_psql('postgres', q{
	SELECT tenant || ' ' || buckets || ' ' || refused || ' ' || (last_refused IS NOT NULL)
	  FROM apikey.rate_limit_tenants() ORDER BY tenant});
like($tenants, qr/^acme 33 0 false\nmallory (\d+) (\d+) true$/,
	"rate_limit_tenants: acme's 33 buckets and no refusal, mallory's buckets and refusals ($tenants)");
my ($m_buckets, $m_count) = $tenants =~ /^mallory (\d+) (\d+)/m;
is($m_buckets, $m_valid, "  ... mallory's buckets are its admitted keys");
is($m_count, ($m_refused // 0) + 2, '  ... every refusal counted (a round, one more, and authenticate)');
is($node->safe_psql('postgres', 'SELECT refused_full FROM apikey.rate_limit_status()'), $m_count,
	'rate_limit_status counts the same refusals');
my $mallory_id = $node->safe_psql('postgres', "SELECT tenant_id FROM apikey.tenants WHERE slug = 'mallory'");
my $log = slurp_file($node->logfile);
my @lines = $log =~ /(apikey: a rate-limited request of tenant $mallory_id in database \d+ found no rate-limit bucket)/g;
is(scalar(@lines), 1, 'the server log says once (in a minute) that mallory was refused');
like($log, qr/DETAIL:  The tenant holds its share \(apikey.rate_limit_tenant_share = 25%\)/, '  ... and why');
is($node->psql('postgres', 'SELECT * FROM apikey.rate_limit_tenants()', extra_params => [ '-U', 'app' ]), 3,
	'rate_limit_tenants is for full administrators only');

# a tenant whose limits are brief: it fills what is left, is refused (the
# partitions are full, none of their buckets idle: they are not scanned
# again for a while), and once its windows have passed its idle buckets
# make room for its other keys
$node->safe_psql('postgres', q{
	SELECT apikey.create_tenant('brief');
	INSERT INTO test_keys SELECT 'brief ' || g, k.key_id, k.api_key
	  FROM generate_series(1, 400) AS g, apikey.create_key('brief', 'production', 'brief ' || g) AS k;
	SELECT count(apikey.set_rate_limit(key_id, 'second', 10, '1 second')) FROM test_keys WHERE label LIKE 'brief %';
	CREATE TABLE brief_refused AS
	SELECT t.label FROM test_keys AS t, apikey.verify(t.api_key) AS v
	 WHERE t.label LIKE 'brief %' AND v.status = 'rate_limited';});
my $brief_refused = $node->safe_psql('postgres', 'SELECT count(*) FROM brief_refused');
cmp_ok($brief_refused, '>', 0, "brief's keys beyond the free buckets are refused ($brief_refused)");
sleep(2);
my $brief_after = $node->safe_psql('postgres', q{
	SELECT count(*) FROM test_keys AS t JOIN brief_refused USING (label), apikey.verify(t.api_key) AS v
	 WHERE v.status = 'valid'});
cmp_ok($brief_after, '>', 0, "  ... and once their windows have passed, the idle buckets admit others of them ($brief_after)");
like($node->safe_psql('postgres', "SELECT tenant || ' ' || buckets FROM apikey.rate_limit_tenants() WHERE tenant = 'mallory'"),
	qr/^mallory $m_valid$/, "  ... while mallory's buckets stay");
is($node->safe_psql('postgres', q{
	SELECT (SELECT sum(buckets) FROM apikey.rate_limit_tenants()) = in_use FROM apikey.rate_limit_status()}), 't',
	"  ... and the tenants' buckets, counted through all that, add up to the buckets in use");

# without the reserve, the same attack starves acme: the share is what protects it
$node->append_conf('postgresql.conf', 'apikey.rate_limit_tenant_share = 100');
$node->restart;
$statuses->('mallory %');
like($statuses->('acme %'), qr/rate_limited/, 'with apikey.rate_limit_tenant_share = 100, mallory starves acme');
$node->append_conf('postgresql.conf', 'apikey.rate_limit_tenant_share = 25');
$node->restart;

# --- pending usage: mallory fills both tables within one round of the writer
$node->safe_psql('postgres', 'SELECT apikey.usage_flush()');
$attack->(1501, 2500);
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM test_keys AS t,
	       LATERAL (SELECT apikey.verify(t.api_key) UNION ALL
	                SELECT apikey.verify(t.api_key, 'staging') UNION ALL
	                SELECT apikey.verify(t.api_key, scope => 'x')) AS v
	 WHERE t.label LIKE 'mallory %'}), 3 * 2500 + 3, "mallory: 2500 keys verified with three statuses each");
$statuses->('acme %');
like($node->safe_psql('postgres', 'SELECT apikey.usage_tracking()'), qr/of those, [1-9]\d* uses and [1-9]\d* verifications of tenants beyond their share/,
	'usage_tracking counts what tenants beyond their share lost');
$node->safe_psql('postgres', 'SELECT apikey.usage_flush()');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE last_used_at IS NOT NULL) FROM apikey.key_list WHERE tenant = 'acme'}), 32,
	"acme's keys' last_used_at are written while mallory holds its share of the table");
is($node->safe_psql('postgres', q{
	SELECT count(DISTINCT key_id) FROM apikey.usage_stats
	 WHERE tenant = 'acme' AND status = 'valid' AND hour = date_trunc('hour', now())}), 32,
	"  ... and its verifications are counted in usage_stats");
$log = slurp_file($node->logfile);
like($log, qr/apikey: uses of keys of tenant $mallory_id in database \d+ were not recorded: the tenant holds its share/,
	'the server log says that mallory lost uses');

my $texts = $node->safe_psql('postgres', 'SELECT string_agg(substr(api_key, 9), \' \') FROM test_keys');
is(scalar(grep { index($log, $_) >= 0 } split / /, $texts), 0, 'no key text in the server log');

$node->stop;
done_testing();
