# Limits on anything (issue 23, item 4): rate_limit_take on any identifier
# and owners' limits shared by all of an owner's keys, under concurrency and
# against a tenant that tries to take the whole table.
#
# - 8 pgbench clients, 800 attempts in all, each in a transaction that
#   authenticates a key of acme and takes from acme's "login" limit of 200
#   per hour on one address: exactly 200 are allowed.  The same against
#   the global namespace of an administrator: exactly 200.
# - 8 clients, 800 verifications spread at random over two keys of one
#   owner whose limit is 200 per hour: exactly 200 valid, from both keys.
# - Fairness (apikey.rate_limit_buckets = 1024, the smallest): mallory's
#   application, authenticated as a key of mallory, takes 3000 distinct
#   identifiers with a window of 366 days, three times the table.  acme's
#   32 identifiers are all still allowed and counted; mallory's beyond its
#   share are refused without retry_after; rate_limit_tenants() shows who
#   holds what; the server log says so without any identifier.
# - pg_dump and pg_restore keep owners' limits, on the table and on each
#   key, and a key created for the owner after the restore gets them.
#
# Key texts are secrets even in tests: they stay in the table test_keys.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ApikeyTAP;

my $node = new_node('limits', conf => q{
shared_preload_libraries = 'apikey'
apikey.rate_limit_buckets = 1024
apikey.usage_flush_interval = 3600
});
$node->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	CREATE ROLE app LOGIN;
	ALTER ROLE app SET apikey.environment = 'production';
	SELECT apikey.grant_verifier('app');
	SELECT apikey.create_tenant('acme');
	SELECT apikey.create_tenant('mallory');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	GRANT SELECT ON test_keys TO app;
	INSERT INTO test_keys SELECT label, k.key_id, k.api_key
	  FROM unnest('{acme app,olivia 1,olivia 2}'::text[]) AS label,
	       apikey.create_key('acme', 'production', label,
	                         owner => CASE WHEN label LIKE 'olivia%' THEN 'olivia' END) AS k;
	INSERT INTO test_keys SELECT 'mallory app', key_id, api_key
	  FROM apikey.create_key('mallory', 'production', 'mallory app');
	SELECT apikey.set_owner_rate_limit('acme', 'olivia', 'hourly', 200, '1 hour');
	CREATE TABLE attempts (what text, admitted boolean);
	GRANT ALL ON attempts TO app;
});

# --- the races: 8 clients, 800 attempts each time
$node->pgbench('--no-vacuum --client=8 --jobs=8 --transactions=100', 0, [qr/processed: 800\/800/], [qr/^$/],
	'pgbench: 8 clients, 800 takes from acme\'s namespace, each after authenticating',
	{ 'take_tenant' => q{
BEGIN;
SELECT FROM apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'acme app'));
INSERT INTO attempts SELECT 'tenant', allowed FROM apikey.rate_limit_take('login', '198.51.100.9', 200, '1 hour');
COMMIT;
} }, '-U', 'app');
$node->pgbench('--no-vacuum --client=8 --jobs=8 --transactions=100', 0, [qr/processed: 800\/800/], [qr/^$/],
	'pgbench: 8 clients, 800 takes from the global namespace, as an administrator',
	{ 'take_global' => q{
INSERT INTO attempts SELECT 'global', allowed FROM apikey.rate_limit_take('login', '198.51.100.9', 200, '1 hour');
} });
$node->pgbench('--no-vacuum --client=8 --jobs=8 --transactions=100', 0, [qr/processed: 800\/800/], [qr/^$/],
	'pgbench: 8 clients, 800 verifications over two keys of one owner',
	{ 'owner' => q{
\set k random(1, 2)
INSERT INTO attempts SELECT 'olivia ' || :k, status = 'valid'
  FROM apikey.verify((SELECT api_key FROM test_keys WHERE label = 'olivia ' || :k));
} });
is($node->safe_psql('postgres', q{
	SELECT string_agg(what || ': ' || n, ', ' ORDER BY what)
	  FROM (SELECT CASE WHEN what LIKE 'olivia%' THEN 'owner' ELSE what END AS what,
	               count(*) FILTER (WHERE admitted) AS n
	          FROM attempts GROUP BY 1) AS a}),
	'global: 200, owner: 200, tenant: 200',
	'exactly 200 of 800 allowed by each limit of 200: a tenant\'s namespace, the global one, an owner\'s keys together');
is($node->safe_psql('postgres', q{
	SELECT count(DISTINCT what) FROM attempts WHERE what LIKE 'olivia%' AND admitted}), '2',
	'  ... the owner\'s budget was shared by both keys');
is($node->safe_psql('postgres', q{
	SELECT allowed || ' ' || remaining || ' ' || (retry_after > '58 minutes')
	  FROM apikey.rate_limit_take('login', '198.51.100.9', 200, '1 hour')}), 'false 0 true',
	'  ... and the next take is refused with when to retry');

# --- fairness: mallory takes three times the table, one identifier each
$node->restart;    # buckets start empty
my $take = sub {
	my ($tenant, $prefix, $n) = @_;
	return $node->safe_psql('postgres', qq{
		BEGIN;
		SELECT FROM apikey.authenticate((SELECT api_key FROM test_keys WHERE label = '$tenant app'));
		SELECT string_agg(a || ' ' || n || CASE WHEN NOT a THEN ' (retry_after ' || r || ')' ELSE '' END, ', ' ORDER BY a)
		  FROM (SELECT t.allowed AS a, count(*) AS n,
		               string_agg(DISTINCT coalesce(t.retry_after::text, 'NULL'), ',') AS r
		          FROM generate_series(1, $n) AS g,
		               apikey.rate_limit_take('signup', '$prefix-' || g, 1000, '366 days') AS t
		         GROUP BY 1) AS x;
		COMMIT;}, extra_params => [ '-U', 'app' ]);
};
my $mallory = $take->('mallory', 'mallory-ip', 3000);
like($mallory, qr/^false (\d+) \(retry_after NULL\), true (\d+)$/,
	"mallory's 3000 identifiers: those beyond its share are refused without retry_after ($mallory)");
my ($m_refused, $m_allowed) = $mallory =~ /^false (\d+) .*true (\d+)$/;
cmp_ok($m_allowed // 1024, '<=', 1024 - 32 * 8, '  ... mallory holds at most its part, the last 25% of each partition stay free');
is($take->('acme', 'acme-ip', 32), 'true 32', "acme's 32 identifiers are all allowed while mallory is at its cap");
is($node->safe_psql('postgres', q{
	BEGIN;
	SELECT FROM apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'acme app'));
	SELECT string_agg((apikey.rate_limit_take('signup', 'acme-ip-1', 2, '366 days')).allowed::text, ' ')
	  FROM generate_series(1, 3);
	COMMIT;}, extra_params => [ '-U', 'app' ]), 'true false false',
	"  ... and counted: acme-ip-1's limit of 2 (one taken above) admits one more");
my $tenants = $node->safe_psql('postgres', q{
	SELECT tenant || ' ' || buckets || ' ' || refused FROM apikey.rate_limit_tenants() ORDER BY tenant});
like($tenants, qr/^acme 32 0\nmallory (\d+) (\d+)$/,
	"rate_limit_tenants: acme's 32 buckets and no refusal, mallory's buckets and refusals ($tenants)");
my ($m_buckets, $m_count) = $tenants =~ /^mallory (\d+) (\d+)/m;
is($m_buckets, $m_allowed, "  ... mallory's buckets are its allowed identifiers");
is($m_count, $m_refused, '  ... every refusal counted');
my $mallory_id = $node->safe_psql('postgres', "SELECT tenant_id FROM apikey.tenants WHERE slug = 'mallory'");
my $log = slurp_file($node->logfile);
like($log, qr/apikey: a rate-limited request of tenant $mallory_id in database \d+ found no rate-limit bucket/,
	'the server log says that mallory was refused');
unlike($log, qr/mallory-ip|acme-ip|198\.51\.100/, '  ... and no identifier appears in the server log');
my $texts = $node->safe_psql('postgres', 'SELECT string_agg(substr(api_key, 9), \' \') FROM test_keys');
is(scalar(grep { index($log, $_) >= 0 } split / /, $texts), 0, 'no key text in the server log');

# --- pg_dump keeps owners' limits, on the table and on each key
my $dump = PostgreSQL::Test::Utils::tempdir . '/limits.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump -Fc');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
my ($out, $err) = ('', '');
IPC::Run::run([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ], '>', \$out, '2>', \$err);
is($err, '', 'pg_restore without errors');
my $owner_limits = q{
	SELECT (SELECT string_agg(owner || ' ' || name || ' ' || max_requests || ' ' || per, ', ')
	          FROM apikey.owner_rate_limits) || ' | ' ||
	       (SELECT string_agg(name || ' ' || owner_rate_limits::text, ', ' ORDER BY name)
	          FROM apikey.key_list WHERE owner = 'olivia')};
is($node->safe_psql('restored', $owner_limits), $node->safe_psql('postgres', $owner_limits),
	'the owner\'s limits are restored, on the table and on its keys');
is($node->safe_psql('restored', q{
	SELECT count(*) FROM (SELECT apikey.create_key('acme', 'production', 'olivia 3', owner => 'olivia')) AS x;
	SELECT owner_rate_limits::text FROM apikey.key_list WHERE name = 'olivia 3'}),
	'1
{"(hourly,200,01:00:00)"}', '  ... and a key created for the owner after the restore gets them');

$node->stop;
done_testing();
