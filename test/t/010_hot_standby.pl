# Verification on a streaming hot standby.
#
# verify and authenticate must work where nothing can be written: on a
# standby, also inside BEGIN READ ONLY, for every status (a write anywhere on
# the verification path would raise "cannot execute ... during recovery").
# Revocations, rolls, reactivations and deletions on the primary are seen on
# the standby once replayed.  On the primary, verifying assigns no
# transaction id and writes nothing, although last_used_at is tracked (the
# library is preloaded on both nodes; uses are kept in shared memory, and
# the writer that flushes them runs once an hour here).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ApikeyTAP;

my $primary = new_node('primary', allows_streaming => 1, conf => q{
shared_preload_libraries = 'apikey'
apikey.usage_flush_interval = 3600
});
$primary->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	SELECT apikey.create_tenant('globex');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT 'reader', key_id, api_key
		  FROM apikey.create_key('acme', 'production', 'reader', scopes => '{orders:read}');
	INSERT INTO test_keys
		SELECT 'restricted', key_id, api_key
		  FROM apikey.create_key('acme', 'production', 'one collection',
		                         scopes => '{collections:read}', resource => 'collection:42');
	INSERT INTO test_keys
		SELECT 'preview', key_id, api_key FROM apikey.create_key('acme', 'preview', 'ci');
	INSERT INTO test_keys
		SELECT 'other tenant', key_id, api_key FROM apikey.create_key('globex', 'production', 'g');
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{to revoke,to roll,to delete,to reactivate,expired}'::text[]) AS label,
		       apikey.create_key('acme', 'production', label);
	SELECT apikey.revoke_key((SELECT key_id FROM test_keys WHERE label = 'to reactivate'));
	SELECT apikey.set_key_expiry((SELECT key_id FROM test_keys WHERE label = 'expired'),
	                             now() - interval '1 minute');
	INSERT INTO test_keys VALUES ('public', NULL, apikey.public_key('acme', 'production'));
	INSERT INTO test_keys VALUES ('malformed', NULL, 'ak_live_not-a-key');
});

$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby, 'replay');
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

# every status, on the standby
my %expect = (
	'reader'        => [ 'valid',              "'production', 'orders:read'" ],
	'restricted'    => [ 'valid',              "'production', 'collections:read', 'collection:42'" ],
	'preview'       => [ 'wrong_environment',  "'production'" ],
	'other tenant'  => [ 'insufficient_scope', "NULL, 'orders:read'" ],
	'to reactivate' => [ 'revoked' ],
	'expired'       => [ 'expired' ],
	'public'        => [ 'public_key' ],
	'malformed'     => [ 'malformed' ],
);
for my $label (sort keys %expect)
{
	my ($status, $args) = @{ $expect{$label} };
	is(key_status($standby, 'postgres', $label, $args), $status, "standby: $label key is $status");
}
is(key_status($standby, 'postgres', 'restricted', "'production', 'collections:read', 'collection:7'"),
	'wrong_resource', 'standby: restricted key on another resource is wrong_resource');

# authenticate and the identity, in an explicitly read-only transaction
my $auth = $standby->safe_psql('postgres', q{
	BEGIN READ ONLY;
	SELECT status FROM apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'reader'), 'orders:read');
	SELECT apikey.current_tenant(), apikey.current_environment(),
	       apikey.current_key_id() = (SELECT key_id FROM test_keys WHERE label = 'reader'),
	       apikey.has_scope('orders:read'), apikey.has_scope('orders:write'),
	       apikey.can_access('order:1', 'orders:read');
	SELECT count(*) FROM apikey.verify((SELECT api_key FROM test_keys WHERE label = 'reader'));
	COMMIT;
	SELECT coalesce(apikey.current_tenant(), 'none after commit');
});
is($auth, "valid\nacme|production|t|t|f|t\n1\nnone after commit",
	'standby: authenticate in BEGIN READ ONLY establishes the identity for the transaction');

# a refused authenticate is a 28000 error, not a write failure
my ($ret, $out, $err) = $standby->psql('postgres', q{
	BEGIN READ ONLY;
	SELECT apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'to reactivate'));
}, on_error_stop => 1, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  28000: API key rejected: revoked/, 'standby: authenticate refuses a revoked key with 28000');

# other read-only calls an application makes
is($standby->safe_psql('postgres', q{
	SELECT tenant || '/' || environment
	  FROM apikey.identify((SELECT api_key FROM test_keys WHERE label = 'public'));
	SELECT apikey.looks_like_key((SELECT api_key FROM test_keys WHERE label = 'reader'));
}), "acme/production\nt", 'standby: identify and looks_like_key');

# a standby session that verified the keys before the changes (replay fires
# no trigger and runs no commit callback: nothing it verified may be reused
# from memory, each verification reads the replayed rows)
my $session = $standby->background_psql('postgres');
my $status_in_session = sub {
	$session->query_safe(qq{SELECT status FROM apikey.verify((SELECT api_key FROM test_keys WHERE label = '$_[0]'))});
};
for my $label ('to revoke', 'to roll', 'to delete', 'to reactivate', 'reader')
{
	$status_in_session->($label) for 1 .. 2;
}

# changes on the primary reach the standby
$primary->safe_psql('postgres', q{
	SELECT apikey.revoke_key((SELECT key_id FROM test_keys WHERE label = 'to revoke'), 'leaked');
	INSERT INTO test_keys
		SELECT 'rolled', key_id, apikey.roll_key(key_id) FROM test_keys WHERE label = 'to roll';
	SELECT apikey.delete_key((SELECT key_id FROM test_keys WHERE label = 'to delete'));
	SELECT apikey.reactivate_key((SELECT key_id FROM test_keys WHERE label = 'to reactivate'));
});
$primary->wait_for_catchup($standby, 'replay');
my %after = (
	'to revoke'     => 'revoked',
	'to roll'       => 'not_found',
	'rolled'        => 'valid',
	'to delete'     => 'not_found',
	'to reactivate' => 'valid',
	'reader'        => 'valid',
);
for my $label (sort keys %after)
{
	is(key_status($standby, 'postgres', $label), $after{$label},
		"standby after replay: $label key is $after{$label}");
}
for my $label (sort keys %after)
{
	next if $label eq 'rolled';
	is($status_in_session->($label), $after{$label},
		"standby after replay, in a session that verified it before: $label key is $after{$label}");
}
$session->quit;
($ret, $out, $err) = $standby->psql('postgres',
	q{SELECT apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'to revoke'))});
like($err, qr/API key rejected: revoked/, 'standby after replay: authenticate refuses the revoked key');
is($standby->safe_psql('postgres', q{
	SELECT status FROM apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'rolled'))}),
	'valid', 'standby after replay: the rolled key authenticates with its new text');

# on the primary: a transaction that only verifies never gets a transaction
# id, and its uses are tracked in memory, not written
like($primary->safe_psql('postgres', 'SELECT apikey.usage_tracking()'), qr/^on: /,
	'primary: last_used_at is tracked');
is($primary->safe_psql('postgres', q{
	BEGIN;
	SELECT count(*) FROM test_keys, apikey.verify(api_key), generate_series(1, 100);
	SELECT status FROM apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'reader'));
	SELECT pg_current_xact_id_if_assigned() IS NULL;
	COMMIT;
	SELECT count(*) FROM apikey.key_usage;
}), "1200\nvalid\nt\n0", 'primary: verify and authenticate assign no transaction id and write nothing');
like($primary->safe_psql('postgres', 'SELECT apikey.usage_tracking()'), qr/ 6 keys pending/,
	'the 6 valid keys\' uses are tracked, in memory');

# nothing on the standby tried to write
my $log = slurp_file($standby->logfile);
unlike($log, qr/during recovery|read-only transaction|TransactionIds/,
	'standby log: no attempted write');

done_testing();
