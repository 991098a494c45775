# apikey refuses to verify from its tables once Citus has made them
# distributed or reference tables (README, "Replicas, failover and
# regions"): the local table Citus leaves behind is stale, and a key revoked
# afterwards would still verify.  Citus cannot be installed here; its
# catalog is stood in for by pg_catalog.pg_dist_partition (logicalrelid
# regclass, as Citus has it), created with allow_system_table_mods, and its
# trigger there, which invalidates the relation cache entry of a table it
# converts, by a GRANT on the table in the same transaction.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ApikeyTAP;

my $node = new_node('citus_standin', conf => q{
shared_preload_libraries = 'apikey'
allow_system_table_mods = on
});
$node->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys SELECT 'k', key_id, api_key FROM apikey.create_key('acme', 'production', 'k');
	CREATE ROLE nobody_in_particular;
});
my $verify = q{SELECT status FROM apikey.verify((SELECT api_key FROM test_keys WHERE label = 'k'))};
my $authenticate = q{SELECT status FROM apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'k'))};

my $s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe('\\set VERBOSITY verbose');

is((run_sql($s, $verify))[0], 'valid', 'an ordinary table: valid');

# Citus installed, apikey's tables left alone
$node->safe_psql('postgres', q{
	CREATE TABLE pg_catalog.pg_dist_partition (logicalrelid regclass NOT NULL, partmethod "char" NOT NULL);
	CREATE TABLE app_orders (tenant_id bigint, id bigint);
	INSERT INTO pg_catalog.pg_dist_partition VALUES ('app_orders', 'h');
});
is($node->safe_psql('postgres', $verify), 'valid', 'Citus present, apikey.keys an ordinary table: valid');
is((run_sql($s, $verify))[0], 'valid', '  ... also in a session that verified before');

# apikey.keys made a reference table
$node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO pg_catalog.pg_dist_partition VALUES ('apikey.keys', 'n');
	GRANT SELECT ON apikey.keys TO nobody_in_particular;  -- Citus' relcache invalidation
	COMMIT;
});
my ($out, $err) = run_sql($s, $verify);
like($err, qr/ERROR:  0A000: apikey.keys is a Citus table: apikey does not verify keys from Citus tables/,
	'apikey.keys a Citus table: a session that verified before gets 0A000');
($out, $err) = run_sql($s, $authenticate);
like($err, qr/0A000: apikey.keys is a Citus table/, '  ... and so does authenticate');
my ($rc, $stdout, $stderr) = $node->psql('postgres', $verify, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($stderr, qr/0A000: apikey.keys is a Citus table/, '  ... and a new session');
unlike($stderr, qr/ak_live_\w{20}/, '  ... the error holds no key text');

# the other tables verification reads
$node->safe_psql('postgres', q{
	DELETE FROM pg_catalog.pg_dist_partition WHERE logicalrelid = 'apikey.keys'::regclass;
	INSERT INTO pg_catalog.pg_dist_partition VALUES ('apikey.imported_keys', 'n');
});
($rc, $stdout, $stderr) = $node->psql('postgres', $verify, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($stderr, qr/0A000: apikey.imported_keys is a Citus table/, 'apikey.imported_keys a Citus table: 0A000');
$node->safe_psql('postgres', q{
	DELETE FROM pg_catalog.pg_dist_partition WHERE logicalrelid = 'apikey.imported_keys'::regclass;
	GRANT SELECT ON apikey.keys TO nobody_in_particular;
});
is((run_sql($s, $verify))[0], 'valid', 'ordinary tables again: valid');

$s->quit;
done_testing();
