# Usage control across servers, crashes and concurrent clients.
#
# - Without shared_preload_libraries there are no rate limits: setting one
#   is a clear error, and so is verifying a key that has one (never: no
#   limit at all); credits work; the key text stays out of the log.
# - Rate limits are per server: a hot standby counts its own.  A key with
#   credits cannot be charged on a standby (25006); checking it (cost 0)
#   works there.
# - After the postmaster is killed with SIGKILL, a committed charge is
#   still charged, an uncommitted one is not, and the rate limits start
#   empty again.
# - 8 pgbench clients, 800 attempts in all: against a limit of 200 per hour
#   exactly 200 are admitted, against 300 credits exactly 300 (counted by
#   the clients, by the credits left, and by usage_stats).  And harder:
#   8 clients verifying 5000 times each in one statement, 40 000 attempts
#   as close together as they come, against a limit of 20 000: exactly
#   20 000.
# - A full bucket table (apikey.rate_limit_buckets = 1024, one tenant's
#   alone with apikey.rate_limit_tenant_share = 100) reuses idle
#   buckets (whose window has passed), and otherwise refuses: rate_limited
#   without retry_after, counted in rate_limit_status(), never unlimited.
# - Roles set up with grant_verifier and grant_admin under 0.2.0 may use the
#   usage-control functions and views after ALTER EXTENSION UPDATE exactly
#   as after a fresh install.
#
# Key texts are secrets even in tests: they stay in the table test_keys.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use ApikeyTAP;

my $key = sub { "(SELECT api_key FROM test_keys WHERE label = '$_[0]')" };
my $id = sub { "(SELECT key_id FROM test_keys WHERE label = '$_[0]')" };
my $setup = q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{limited,metered,race limited,race metered,hammered}'::text[]) AS label,
		       apikey.create_key('acme', 'production', label);
};
# the SQLSTATE of a statement that fails (or 'ok')
sub sqlstate
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return 'ok' if $ret == 0;
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : "no SQLSTATE in: $err";
}

# --- without shared_preload_libraries
my $plain = new_node('plain');
$plain->safe_psql('postgres', $setup);
is(sqlstate($plain, "SELECT apikey.set_rate_limit(${\ $id->('limited')}, 'burst', 5, '1 hour')"),
	'55000', 'not preloaded: set_rate_limit is refused (55000)');
is(sqlstate($plain, "SELECT apikey.set_tenant_rate_limit('acme', 'budget', 5, '1 hour')"),
	'55000', 'not preloaded: set_tenant_rate_limit is refused (55000)');
# a limit set elsewhere (a dump restored here, or a server started without
# the library): verification refuses to count it as no limit
$plain->safe_psql('postgres', qq{
	UPDATE apikey.keys SET rate_limits = ARRAY[('burst', 5, '1 hour')::apikey.rate_limit]
	 WHERE key_id = ${\ $id->('limited')}});
is(sqlstate($plain, "SELECT apikey.verify(${\ $key->('limited')})"), '55000',
	'not preloaded: verifying a key that has a rate limit is an error, not unlimited');
my $err;
$plain->psql('postgres', "SELECT apikey.verify(${\ $key->('limited')})", stderr => \$err);
like($err, qr/rate limits need apikey in shared_preload_libraries/, 'the error says why');
$plain->safe_psql('postgres', "SELECT apikey.set_credits(${\ $id->('metered')}, 2)");
is($plain->safe_psql('postgres', qq{
	SELECT string_agg((apikey.verify(${\ $key->('metered')})).status, ' ') FROM generate_series(1, 3)}),
	'valid valid usage_exceeded', 'not preloaded: credits work');
is($plain->safe_psql('postgres', 'SELECT preloaded FROM apikey.rate_limit_status()'), 'f',
	'rate_limit_status says there are no buckets');
is(sqlstate($plain, 'SELECT apikey.usage_flush()'), '55000', 'not preloaded: usage_flush is refused (55000)');
# the kill switch needs the library's shared memory: refused, and nothing revoked
is(sqlstate($plain, "SELECT apikey.revoke_key(${\ $id->('metered')}, 'incident', terminate => true)"), '55000',
	'not preloaded: revoke_key(terminate => true) is refused (55000)');
$plain->psql('postgres', "SELECT apikey.revoke_key(${\ $id->('metered')}, terminate => true)", stderr => \$err);
like($err, qr/terminate => true needs apikey in shared_preload_libraries/, '  ... and the error says why');
is($plain->safe_psql('postgres', "SELECT revoked_at IS NULL FROM apikey.keys WHERE key_id = ${\ $id->('metered')}"),
	't', '  ... and the key is not revoked');
$plain->safe_psql('postgres', "SELECT apikey.revoke_key(${\ $id->('metered')}, terminate => false)");
is($plain->safe_psql('postgres', "SELECT revoked_at IS NOT NULL FROM apikey.keys WHERE key_id = ${\ $id->('metered')}"),
	't', 'not preloaded: revoke_key(terminate => false) revokes');
my $texts = $plain->safe_psql('postgres', 'SELECT string_agg(substr(api_key, 9), \' \') FROM test_keys');
my $log = slurp_file($plain->logfile);
is(scalar(grep { index($log, $_) >= 0 } split / /, $texts), 0, 'no key text in the server log');
$plain->stop;

# --- a primary and its standby, the library preloaded on both
my $primary = new_node('primary', allows_streaming => 1, conf => q{
shared_preload_libraries = 'apikey'
apikey.usage_flush_interval = 3600
fsync = on
});
$primary->safe_psql('postgres', $setup . qq{
	SELECT apikey.set_rate_limit(${\ $id->('limited')}, 'hourly', 5, '1 hour');
	SELECT apikey.set_credits(${\ $id->('metered')}, 10);
	SELECT apikey.set_rate_limit(${\ $id->('race limited')}, 'hourly', 200, '1 hour');
	SELECT apikey.set_credits(${\ $id->('race metered')}, 300);
	SELECT apikey.set_rate_limit(${\ $id->('hammered')}, 'hourly', 20000, '1 hour');
	CREATE TABLE attempts (label text, status text);
	CREATE TABLE tallies (admitted bigint, refused bigint);
});
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby, 'replay');

my $six = "SELECT string_agg((apikey.verify(${\ $key->('limited')})).status, ' ') FROM generate_series(1, 6)";
is($primary->safe_psql('postgres', $six), 'valid valid valid valid valid rate_limited',
	'primary: 5 per hour, the sixth is refused');
is($standby->safe_psql('postgres', $six), 'valid valid valid valid valid rate_limited',
	'standby: counts its own 5');
is(sqlstate($standby, "SELECT apikey.verify(${\ $key->('metered')})"), '25006',
	'standby: a key with credits cannot be charged (25006)');
is($standby->safe_psql('postgres', "SELECT status || ' ' || remaining FROM apikey.verify(${\ $key->('metered')}, cost => 0)"),
	'valid 10', 'standby: checking it (cost 0) works');
is(sqlstate($standby, 'SELECT apikey.usage_flush()'), '25006', 'standby: usage is not written there');
like($standby->safe_psql('postgres', 'SELECT apikey.usage_tracking()'), qr/; 0 usage counts pending, 0 verifications not counted/,
	'standby: its verifications are not counted for usage_stats');

# --- a crash: a committed charge stays, an uncommitted one goes, limits restart empty
is($primary->safe_psql('postgres', "SELECT remaining FROM apikey.verify(${\ $key->('metered')}, cost => 3)"),
	'7', 'a charge committed');
my $open = $primary->background_psql('postgres');
$open->query_safe('BEGIN');
is($open->query_safe("SELECT remaining FROM apikey.verify(${\ $key->('metered')}, cost => 5)"), '2',
	'a charge not committed');
my ($pid) = slurp_file($primary->data_dir . '/postmaster.pid') =~ /^(\d+)/;
# (a process that exits between the listing and the read is no child of it)
my @children = grep {
	my $stat = eval { slurp_file("/proc/$_/stat") };
	defined $stat && (split / /, ($stat =~ s/^.*\) //sr))[1] == $pid
} map { m{/proc/(\d+)$} ? $1 : () } glob('/proc/[0-9]*');
ok(kill('KILL', $pid), 'postmaster killed with SIGKILL');
$primary->{_pid} = undef;    # the module must not try to stop it
eval { $open->quit };
# its orphaned children must be gone before a new postmaster may start
for (1 .. 300)
{
	last unless grep { -e "/proc/$_" } @children;
	select(undef, undef, undef, 0.1);
}
$primary->start;
ok($primary->log_contains('database system was interrupted|not properly shut down'),
	'the server went through crash recovery');
is($primary->safe_psql('postgres', 'SELECT remaining FROM apikey.key_list WHERE name = \'metered\''), '7',
	'after the crash: the committed charge stays, the other is refunded');
is($primary->safe_psql('postgres', $six), 'valid valid valid valid valid rate_limited',
	'after the crash: the rate limit starts empty');
is($primary->safe_psql('postgres', 'SELECT in_use, refused_full FROM apikey.rate_limit_status()'), '1|0',
	'after the crash: one bucket again');

# --- the race: 8 clients, 800 attempts
for my $label ('race limited', 'race metered')
{
	$primary->pgbench('--no-vacuum --client=8 --jobs=8 --transactions=100', 0, [qr/processed: 800\/800/], [qr/^$/],
		"pgbench: 8 clients, 800 attempts with the key '$label'",
		{ "race_$label" =~ s/ /_/gr => qq{INSERT INTO attempts SELECT '$label', status FROM apikey.verify(${\ $key->($label)});} });
}
is($primary->safe_psql('postgres', q{
	SELECT label || ': ' || string_agg(status || ' ' || n, ', ' ORDER BY status)
	  FROM (SELECT label, status, count(*) AS n FROM attempts GROUP BY 1, 2) AS a GROUP BY label ORDER BY label}),
	"race limited: rate_limited 600, valid 200\nrace metered: usage_exceeded 500, valid 300",
	'exactly 200 admitted by the limit of 200, exactly 300 by the 300 credits');
is($primary->safe_psql('postgres', "SELECT remaining FROM apikey.key_list WHERE name = 'race metered'"), '0',
	'no credit left, none overspent');
$primary->safe_psql('postgres', 'SELECT apikey.usage_flush()');
is($primary->safe_psql('postgres', q{
	SELECT l.name || ': ' || string_agg(s.status || ' ' || s.n, ', ' ORDER BY s.status)
	  FROM (SELECT key_id, status, sum(verifications) AS n FROM apikey.usage_stats GROUP BY 1, 2) AS s
	  JOIN apikey.key_list AS l USING (key_id)
	 WHERE l.name LIKE 'race%' GROUP BY l.name ORDER BY l.name}),
	"race limited: rate_limited 600, valid 200\nrace metered: usage_exceeded 500, valid 300",
	'usage_stats counted the same');

$primary->pgbench('--no-vacuum --client=8 --jobs=8 --transactions=1', 0, [qr/processed: 8\/8/], [qr/^$/],
	'pgbench: 8 clients, 5000 attempts each in one statement',
	{ 'hammer' => qq{INSERT INTO tallies SELECT count(*) FILTER (WHERE v), count(*) FILTER (WHERE NOT v)
		FROM (SELECT (apikey.verify(${\ $key->('hammered')})).valid FROM generate_series(1, 5000)) AS a(v);} });
is($primary->safe_psql('postgres', 'SELECT sum(admitted) || \' admitted, \' || sum(refused) || \' refused\' FROM tallies'),
	'20000 admitted, 20000 refused', 'exactly 20 000 of 40 000 close attempts admitted by a limit of 20 000');

# a full bucket table: 1024 buckets, 32 per partition, all of them for one
# tenant (no reserve for others: test/t/077_tenant_fairness.pl)
$primary->append_conf('postgresql.conf', "apikey.rate_limit_buckets = 1024\napikey.rate_limit_tenant_share = 100");
$primary->restart;
is($primary->safe_psql('postgres', 'SELECT capacity, in_use FROM apikey.rate_limit_status()'), '1024|0',
	'1024 buckets, none in use');
my $batch = sub {
	my ($name, $n, $per) = @_;
	$primary->safe_psql('postgres', qq{
		INSERT INTO test_keys SELECT '$name ' || g, k.key_id, k.api_key
		  FROM generate_series(1, $n) AS g, apikey.create_key('acme', 'production', '$name ' || g) AS k;
		SELECT count(apikey.set_rate_limit(key_id, 'limit', 100, '$per')) FROM test_keys WHERE label LIKE '$name %';});
};
my $verify_batch = sub {
	my ($name) = @_;
	return $primary->safe_psql('postgres', qq{
		SELECT string_agg(status || ' ' || n || CASE WHEN status = 'rate_limited' THEN ' (retry_after ' || r || ')' ELSE '' END,
		                  ', ' ORDER BY status)
		  FROM (SELECT v.status, count(*) AS n, string_agg(DISTINCT coalesce(v.retry_after::text, 'NULL'), ',') AS r
		          FROM test_keys AS t, apikey.verify(t.api_key) AS v
		         WHERE t.label LIKE '$name %' GROUP BY v.status) AS x});
};
# 500 keys whose limits count over one second, then 500 counting over an
# hour: once the second has passed the first ones' buckets are idle and
# make room
$batch->('brief', 500, '1 second');
$batch->('long', 500, '1 hour');
is($verify_batch->('brief'), 'valid 500', '500 keys with a limit: 500 buckets');
usleep(1_200_000);
is($verify_batch->('long'), 'valid 500', 'after their window, the idle buckets make room for 500 more keys');
is($primary->safe_psql('postgres', 'SELECT refused_full FROM apikey.rate_limit_status()'), '0',
	'nothing refused for want of a bucket');
cmp_ok($primary->safe_psql('postgres', 'SELECT in_use FROM apikey.rate_limit_status()'), '<', 1000,
	'idle buckets were freed (fewer than 1000 held)');
# 1500 more keys counting over an hour: the table is full of buckets in use
$batch->('more', 1500, '1 hour');
my $more = $verify_batch->('more');
like($more, qr/^rate_limited (\d+) \(retry_after NULL\), valid (\d+)$/,
	"a full table refuses: rate_limited without retry_after ($more)");
my ($refused, $admitted) = $more =~ /^rate_limited (\d+) .*valid (\d+)$/;
is($primary->safe_psql('postgres', 'SELECT refused_full FROM apikey.rate_limit_status()'), $refused // -1,
	'rate_limit_status counts each refusal');
cmp_ok($primary->safe_psql('postgres', 'SELECT in_use FROM apikey.rate_limit_status()'), '<=', 1024,
	'no more buckets than the table holds');
is($primary->safe_psql('postgres', q{
	SELECT count(*) FROM test_keys AS t, apikey.verify(t.api_key) AS v
	 WHERE t.label LIKE 'more %' AND v.status = 'valid'}), $admitted // -1,
	'the keys that got a bucket keep it; the others stay refused');

# the rights of roles granted before an update are those of a fresh install
$primary->safe_psql('postgres', 'CREATE ROLE up_verifier; CREATE ROLE up_admin');
my $rights = q{
	SELECT r || ': ' || string_agg(o, ', ' ORDER BY o)
	  FROM unnest('{up_verifier,up_admin}'::text[]) AS r,
	       LATERAL (SELECT p.proname::text FROM pg_proc AS p
	                 WHERE p.pronamespace = 'apikey'::regnamespace
	                   AND p.proname ~ '(rate_limit|credits|usage_flush)'
	                   AND has_function_privilege(r, p.oid, 'EXECUTE')
	                UNION ALL
	                SELECT c.relname::text FROM pg_class AS c
	                 WHERE c.relnamespace = 'apikey'::regnamespace
	                   AND c.relname IN ('tenant_list', 'usage_stats', 'usage_hourly')
	                   AND has_table_privilege(r, c.oid, 'SELECT')) AS x(o)
	 GROUP BY r ORDER BY r};
my %rights;
for my $how ('fresh', 'updated')
{
	$primary->safe_psql('postgres', "CREATE DATABASE $how");
	$primary->safe_psql($how, $how eq 'fresh' ? 'CREATE EXTENSION apikey' : "CREATE EXTENSION apikey VERSION '0.2.0'");
	$primary->safe_psql($how, "SELECT apikey.grant_verifier('up_verifier'); SELECT apikey.grant_admin('up_admin')");
	$primary->safe_psql($how, 'ALTER EXTENSION apikey UPDATE') if $how eq 'updated';
	$rights{$how} = $primary->safe_psql($how, $rights);
}
like($rights{fresh}, qr/^up_admin: .*set_tenant_rate_limit.*\nup_verifier: add_credits, .*usage_stats$/s,
	'fresh install: the rights of verifiers and administrators');
is($rights{updated}, $rights{fresh}, 'updated from 0.2.0: the same rights');

$standby->stop;
$primary->stop;
done_testing();
