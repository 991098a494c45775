# Where keys' rows are, shared by every backend (apikey.shared_key_locations).
#
# 1. When the server starts, the event relay notes the row location of
#    every key from the primary key index: a connection's first
#    verification of a key, on a freshly started server, finds the row
#    there instead of descending the index (the index's scans counted by
#    the statistics: next to none), and gets the right answer.
# 2. The control: with apikey.shared_key_locations = 0 the same
#    verifications scan the index once per key, so the count above can see
#    a missing warm-up.  With fewer places than keys, or fewer than one
#    bucket, every key still verifies.
# 3. Locations that went stale are only hints: after revocations and an
#    update of every key, and after VACUUM FULL moved every row, each key
#    verifies as what it now is.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ApikeyTAP;

my $nkeys = 2000;
my $node = new_node('locations', conf => q{
shared_preload_libraries = 'apikey'
log_min_messages = debug1
});
$node->safe_psql('postgres', qq{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (n int PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT n, k.key_id, k.api_key
		  FROM generate_series(1, $nkeys) AS n,
		       apikey.create_key('acme', 'production', 'key ' || n) AS k;
});

# index scans of apikey.keys' primary key so far (statistics flushed by the
# sessions that ended)
sub pkey_scans
{
	return $node->safe_psql('postgres', q{
		SELECT pg_stat_clear_snapshot();
		SELECT idx_scan FROM pg_stat_user_indexes
		 WHERE relid = 'apikey.keys'::regclass
		   AND indexrelid = (SELECT conindid FROM pg_constraint
		                      WHERE conrelid = 'apikey.keys'::regclass AND contype = 'p')});
}

# a new connection verifies every key once: "valid revoked ..." counts
sub verify_all
{
	return $node->safe_psql('postgres', q{
		SELECT string_agg(status || ' ' || n, ', ' ORDER BY status)
		  FROM (SELECT v.status, count(*) AS n
		          FROM test_keys AS t, apikey.verify(t.api_key, 'production') AS v
		         GROUP BY v.status) AS s});
}

# restart, and wait for the relay to note the locations (its DEBUG1 line)
sub restart_and_wait
{
	my $offset = -s $node->logfile;
	$node->restart;
	my $noted;
	for (1 .. 600)
	{
		my $log = slurp_file($node->logfile, $offset);
		if ($log =~ /noted the row locations of (\d+) keys/)
		{
			$noted = $1;
			last;
		}
		select(undef, undef, undef, 0.1);
	}
	return $noted;
}

# 1. first verifications on a freshly started server
my $noted = restart_and_wait();
ok(defined $noted && $noted >= $nkeys * 0.99 && $noted <= $nkeys,
	"the relay noted the locations of nearly all $nkeys keys at start (" . ($noted // 'none') . ")");
my $before = pkey_scans();
is(verify_all(), "valid $nkeys", 'every key verifies on its first verification');
my $scans = pkey_scans() - $before;
cmp_ok($scans, '<=', $nkeys * 0.01,
	"the first verifications scanned the index for at most 1% of the keys ($scans of $nkeys)");

# 2. the control: no shared locations, one index scan per key
$node->append_conf('postgresql.conf', "apikey.shared_key_locations = 0\n");
$node->restart;
$before = pkey_scans();
is(verify_all(), "valid $nkeys", 'without shared locations every key verifies too');
$scans = pkey_scans() - $before;
cmp_ok($scans, '>=', $nkeys, "without them each key's verification scans the index ($scans)");
# fewer places than keys: those that fit are noted, every key verifies;
# fewer than a bucket's four: none at all
$node->append_conf('postgresql.conf', "apikey.shared_key_locations = 1026\n");
$noted = restart_and_wait();
ok(defined $noted && $noted > 0 && $noted <= 1024,
	'with 1026 places (rounded down to 1024) at most 1024 keys are noted (' . ($noted // 'none') . ')');
is(verify_all(), "valid $nkeys", 'and every key verifies');
$node->append_conf('postgresql.conf', "apikey.shared_key_locations = 3\n");
$node->restart;
is(verify_all(), "valid $nkeys", 'with 3 places (none: less than a bucket) every key verifies too');
$node->append_conf('postgresql.conf', "apikey.shared_key_locations = 262144\n");

# 3. stale locations: changed rows, then every row moved
$noted = restart_and_wait();
ok(defined $noted, 'the locations are noted again after a restart');
$node->safe_psql('postgres', q{
	SELECT apikey.revoke_key(key_id) FROM test_keys WHERE n % 10 = 0;
	UPDATE apikey.keys SET description = 'changed' WHERE key_id IN (SELECT key_id FROM test_keys WHERE n % 10 = 1);
});
my $revoked = $nkeys / 10;
my $valid = $nkeys - $revoked;
is(verify_all(), "revoked $revoked, valid $valid", 'changed keys verify as they are now');
$node->safe_psql('postgres', 'VACUUM FULL apikey.keys');
is(verify_all(), "revoked $revoked, valid $valid", 'after VACUUM FULL moved every row, too');
$node->restart;
is(verify_all(), "revoked $revoked, valid $valid", 'and on a new connection after a restart');
$noted = restart_and_wait();
$before = pkey_scans();
is(verify_all(), "revoked $revoked, valid $valid", 'the moved rows noted again');
$scans = pkey_scans() - $before;
cmp_ok($scans, '<=', $nkeys * 0.01, "found without the index ($scans of $nkeys)");

$node->stop;
done_testing();
