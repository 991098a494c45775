# Logical replication: a publisher and a subscriber that verifies keys
# (doc/operations.md, "Replicas, failover and regions").
#
# The publication apikey.create_publication makes holds the tables a
# subscriber needs and none that each server writes itself (key_usage):
# both servers record uses, and the apply worker never stops on them.  On
# the subscriber, a session that already verified sees a revocation
# applied, and a session that already looked for imported keys sees an
# import applied (the change signals are row triggers the apply worker
# fires).  Credits are charged on the publisher only: a charge on the
# subscriber is refused (25006), and so is any other change of apikey's
# tables there, so no subscriber transaction holds a row that the apply
# worker must wait for, and a revocation is applied while one is open.  With apikey.rate_limit_servers = 2 on both servers, a key
# limited to 10 per hour gets 5 on each.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use ApikeyTAP;

my $conf = q{
shared_preload_libraries = 'apikey'
wal_level = logical
apikey.usage_flush_interval = 3600
apikey.rate_limit_servers = 2
};
my $pub = new_node('publisher', allows_streaming => 'logical', conf => $conf);
my $sub = new_node('subscriber', conf => $conf);

$pub->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{reader,revoked later,metered,held,bystander,limited}'::text[]) AS label,
		       apikey.create_key('acme', 'production', label);
	SELECT apikey.set_credits((SELECT key_id FROM test_keys WHERE label = 'metered'), 3);
	SELECT apikey.set_credits((SELECT key_id FROM test_keys WHERE label = 'held'), 100);
	SELECT apikey.set_rate_limit((SELECT key_id FROM test_keys WHERE label = 'limited'),
	                             'hourly', 10, '1 hour');
	-- the text of a key of another system, imported later
	INSERT INTO test_keys VALUES ('legacy', NULL, 'sk_legacy_' || md5(random()::text));
	SELECT apikey.create_publication('apikey');
	CREATE PUBLICATION test_keys FOR TABLE test_keys;
});
is($pub->safe_psql('postgres', q{
	SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables
	 WHERE pubname = 'apikey' AND schemaname = 'apikey'}),
	'credits,environments,imported_keys,key_roles,keys,owner_rate_limits,public_keys,tenants',
	'the publication: the tables verification needs, not key_usage, usage_hourly or audit');

# the subscriber: the extension first, then the subscription (copy_data)
$sub->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
});
my $connstr = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION apikey CONNECTION '$connstr' PUBLICATION apikey, test_keys");
$sub->wait_for_subscription_sync($pub, 'apikey');

my $key = sub { "(SELECT api_key FROM test_keys WHERE label = '$_[0]')" };
my $id = sub { "(SELECT key_id FROM test_keys WHERE label = '$_[0]')" };
is(key_status($sub, 'postgres', 'reader'), 'valid', 'subscriber: a key copied from the publisher verifies');

# a session; statements may fail without ending it
sub session
{
	my ($node) = @_;
	return new_session($node);
}
# seconds until the subscriber answers $want to $sql, or undef after $limit
sub wait_sub
{
	my ($sql, $want, $limit) = @_;
	my $t0 = time;
	while (time - $t0 < $limit)
	{
		my $got = $sub->safe_psql('postgres', $sql);
		return time - $t0 if $got eq $want;
		usleep(20_000);
	}
	return undef;
}
my $status = sub { "SELECT status FROM apikey.verify(${\ $key->($_[0])})" };

# 1. both servers record uses, the subscriber first: the apply worker does
# not stop on key_usage (a published key_usage would bring the publisher's
# row for a key the subscriber has a row of: a duplicate key)
for my $node ($sub, $pub)
{
	$node->safe_psql('postgres', "SELECT apikey.verify(${\ $key->('reader')}); SELECT apikey.usage_flush()");
}
is($sub->safe_psql('postgres', "SELECT count(*) FROM apikey.key_usage WHERE key_id = ${\ $id->('reader')}"),
	'1', 'subscriber: its own use of a key is recorded in its own key_usage');
$pub->safe_psql('postgres', "SELECT apikey.rename_key(${\ $id->('reader')}, 'reader, renamed')");
ok(defined wait_sub("SELECT name FROM apikey.keys WHERE key_id = ${\ $id->('reader')}", 'reader, renamed', 20),
	'subscriber: a change after both servers recorded uses is applied');

# 2. a revocation reaches a subscriber session that verified the key before
my $reader = session($sub);
is((run_sql($reader, $status->('revoked later')))[0], 'valid', 'subscriber session: valid before the revocation');
is((run_sql($reader, $status->('revoked later')))[0], 'valid', '  ... twice (its state is kept by the session)');
$pub->safe_psql('postgres', "SELECT apikey.revoke_key(${\ $id->('revoked later')})");
my $t0 = time;
my $seen;
while (time - $t0 < 20)
{
	$seen = time - $t0, last if (run_sql($reader, $status->('revoked later')))[0] eq 'revoked';
	usleep(5_000);
}
ok(defined $seen,
	sprintf('subscriber session: the revocation, once applied, is seen by its next verification (%s after the commit)',
		defined $seen ? sprintf('%.3f s', $seen) : 'not within 20 s'));
$pub->wait_for_catchup('apikey');

# 3. an import reaches a subscriber session that found no imported keys before
is((run_sql($reader, $status->('legacy')))[0], 'malformed',
	'subscriber session: text of another system before its import: malformed');
$pub->safe_psql('postgres', "SELECT apikey.import_key('acme', 'production', 'legacy', api_key => ${\ $key->('legacy')})");
$pub->wait_for_catchup('apikey');
is((run_sql($reader, $status->('legacy')))[0], 'valid',
	'subscriber session: the import applied is seen by its next verification');
is(key_status($sub, 'postgres', 'legacy'), 'valid', '  ... and by a new session');

# 4. credits are charged on the publisher only
my ($out, $err) = run_sql($reader, "SELECT status FROM apikey.verify(${\ $key->('metered')}, cost => 1)");
like($err, qr/ERROR:  25006: cannot charge the credits of key \w+ on a logical replication subscriber/,
	'subscriber: a charge is refused with 25006');
unlike($err, qr/sk_legacy|ak_live_\w{20}/, '  ... and the error holds no key text');
is((run_sql($reader, "SELECT status || ' ' || remaining FROM apikey.verify(${\ $key->('metered')}, cost => 0)"))[0],
	'valid 3', 'subscriber: a check (cost => 0) sees the credits');
is($pub->safe_psql('postgres', qq{
	SELECT string_agg(status, ',' ORDER BY g) FROM generate_series(1, 4) AS g,
	       LATERAL apikey.verify(${\ $key->('metered')}, cost => 1 + 0 * g)}),
	'valid,valid,valid,usage_exceeded', 'publisher: 3 credits, 3 charges');
$pub->wait_for_catchup('apikey');
is($sub->safe_psql('postgres', "SELECT status FROM apikey.verify(${\ $key->('metered')}, cost => 0)"),
	'usage_exceeded', 'subscriber: the charges applied, none left');

# 5. nor is anything else written there: keys are managed on the publisher
($out, $err) = run_sql($reader, "SELECT apikey.revoke_key(${\ $id->('bystander')})");
like($err, qr/ERROR:  25006: cannot change apikey.keys on a logical replication subscriber of apikey's tables/,
	'subscriber: revoke_key is refused with 25006');
($out, $err) = run_sql($reader, "SELECT apikey.create_key('acme', 'production', 'local')");
like($err, qr/ERROR:  25006: cannot change apikey.keys on a logical replication subscriber of apikey's tables/,
	'subscriber: create_key is refused with 25006');
($out, $err) = run_sql($reader, "SELECT apikey.create_tenant('initech')");
like($err, qr/25006: cannot change apikey.tenants on a logical replication subscriber/,
	'subscriber: create_tenant is refused');
($out, $err) = run_sql($reader, "UPDATE apikey.keys SET name = 'local' WHERE key_id = ${\ $id->('bystander')}");
like($err, qr/25006: cannot change apikey.keys/, 'subscriber: an UPDATE of apikey.keys is refused');
is(key_status($sub, 'postgres', 'bystander'), 'valid', '  ... and the key is as the publisher left it');

# 6. a revocation is applied while subscriber transactions are open: one that
# authenticated and checked credits, one that tried to charge
my $open = session($sub);
run_sql($open, 'BEGIN');
is((run_sql($open, "SELECT status FROM apikey.authenticate(${\ $key->('bystander')})"))[0], 'valid',
	'subscriber: an open transaction authenticated');
is((run_sql($open, "SELECT status FROM apikey.verify(${\ $key->('held')}, cost => 0)"))[0], 'valid',
	'  ... and checked a key\'s credits');
my $charger = session($sub);
run_sql($charger, 'BEGIN');
($out, $err) = run_sql($charger, "SELECT status FROM apikey.verify(${\ $key->('held')}, cost => 1)");
like($err, qr/25006/, 'subscriber: another open transaction tried to charge the key: refused');
$pub->safe_psql('postgres', qq{
	SELECT apikey.verify(${\ $key->('held')}, cost => 1);
	SELECT apikey.revoke_key(${\ $id->('reader')});
});
my $waited = wait_sub($status->('reader'), 'revoked', 20);
ok(defined $waited,
	sprintf('subscriber: the charge and the revocation after it are applied while both stay open (%s)',
		defined $waited ? sprintf('%.3f s', $waited) : 'not within 20 s'));
is($sub->safe_psql('postgres', "SELECT remaining FROM apikey.verify(${\ $key->('held')}, cost => 0)"),
	'99', '  ... the publisher\'s charge is the only one');
run_sql($_, 'ROLLBACK') for ($open, $charger);

# 7. rate limits: each of the 2 servers admits its share of the limit
is($sub->safe_psql('postgres', 'SHOW apikey.rate_limit_servers'), '2', 'apikey.rate_limit_servers = 2');
my $take = qq{SELECT count(*) FILTER (WHERE status = 'valid') || ' ' || count(*) FILTER (WHERE status = 'rate_limited')
	FROM generate_series(1, 10) AS g, LATERAL apikey.verify(${\ $key->('limited')}, cost => 1 + 0 * g)};
is($pub->safe_psql('postgres', $take), '5 5', 'publisher: 5 of 10 admitted under a limit of 10 per hour');
is($sub->safe_psql('postgres', $take), '5 5', 'subscriber: 5 of 10: the two servers admit 10 together');

# every *_error_count column (19 splits sync_error_count by kind)
is($sub->safe_psql('postgres', q{
	SELECT coalesce(sum(j.value::bigint), 0)
	  FROM pg_stat_subscription_stats AS s, json_each_text(row_to_json(s)) AS j
	 WHERE j.key LIKE '%error_count'}),
	'0', 'the subscription never stopped on an error');
# 8. the subscription dropped (a region promoted), the server manages keys
$sub->safe_psql('postgres', 'DROP SUBSCRIPTION apikey');
($out, $err) = run_sql($reader, "SELECT apikey.revoke_key(${\ $id->('bystander')})");
is($err, '', 'subscription dropped: a session that was refused before may revoke');
is((run_sql($reader, "SELECT status FROM apikey.verify(${\ $key->('held')}, cost => 1)"))[1], '',
	'  ... and charge credits');
$reader->quit;
$open->quit;
$charger->quit;
done_testing();
