# last_used_at without a write per verification.
#
# With apikey in shared_preload_libraries, valid verifications are gathered
# in shared memory and written to apikey.key_usage by a background writer
# every apikey.usage_flush_interval, a key's row only when its time moved by
# more than apikey.usage_precision.  Verifying itself writes nothing, not
# even in a loop of thousands; the writer never waits on another
# transaction's lock; the memory it uses is bounded (apikey.usage_max_keys)
# and what it had to drop is counted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use ApikeyTAP;

my $node = PostgreSQL::Test::Cluster->new('usage');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
log_statement = none
shared_preload_libraries = 'apikey'
apikey.usage_flush_interval = 3600
apikey.usage_precision = 0
apikey.usage_max_keys = 1024
apikey.key_cache_size = 1000
});
$node->start;
is($node->safe_psql('postgres', 'SHOW apikey.key_cache_size'), '1000',
	'settings given in the configuration are kept when the library loads');

# poll until a query answers 't' (up to 60 s)
sub wait_for
{
	my ($node, $sql) = @_;
	for (my $i = 0; $i < 600; $i++)
	{
		return 1 if $node->safe_psql('postgres', $sql) eq 't';
		usleep(100_000);
	}
	return 0;
}
sub reload
{
	my ($node, $setting) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET $setting; SELECT pg_reload_conf()");
}
# the last line of a query's output (after a void call's empty line)
sub last_line { my @l = split /\n/, shift; return $l[-1] // ''; }
my $key = sub { "(SELECT api_key FROM test_keys WHERE label = '$_[0]')" };
my $id = sub { "(SELECT key_id FROM test_keys WHERE label = '$_[0]')" };

$node->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{used,unused,deleted,locked,later}'::text[]) AS label,
		       apikey.create_key('acme', 'production', label);
});
like($node->safe_psql('postgres', 'SELECT apikey.usage_tracking()'), qr/^on: flushed every 3600 s/,
	'tracking is on when preloaded');

my $keys_writes = q{SELECT pg_stat_force_next_flush();
	SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relid = 'apikey.keys'::regclass};
my $keys_writes_before = last_line($node->safe_psql('postgres', $keys_writes));

# thousands of valid verifications, one of them in a read-only transaction
$node->safe_psql('postgres', qq{
	SELECT count(*) FROM generate_series(1, 5000), LATERAL apikey.verify(${\ $key->('used')}) v WHERE v.valid;
	SELECT status FROM apikey.verify(${\ $key->('deleted')});
});
$node->safe_psql('postgres', qq{
	BEGIN READ ONLY;
	SELECT status FROM apikey.verify(${\ $key->('used')});
	COMMIT;
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM apikey.key_usage'), '0',
	'nothing written by verification');
is(last_line($node->safe_psql('postgres', $keys_writes)), $keys_writes_before,
	'no row of apikey.keys written by 5001 verifications');
like($node->safe_psql('postgres', 'SELECT apikey.usage_tracking()'), qr/ 2 keys pending/,
	'two keys pending in shared memory');
is($node->safe_psql('postgres', q{SELECT count(*) FROM apikey.key_list WHERE last_used_at IS NOT NULL}), '0',
	'key_list shows what is written, nothing yet');

# a key deleted before the flush is forgotten, not written
$node->safe_psql('postgres', qq{SELECT apikey.delete_key(${\ $id->('deleted')})});

reload($node, 'apikey.usage_flush_interval = 1');
ok(wait_for($node, q{SELECT apikey.usage_tracking() LIKE '% 0 keys pending%'}),
	'the writer drained what was pending');
is($node->safe_psql('postgres', q{
	SELECT string_agg(name || ':' || (last_used_at IS NOT NULL)::text, ',' ORDER BY name) FROM apikey.key_list}),
	'later:false,locked:false,unused:false,used:true',
	'key_list shows the written use; the deleted key was not written');
is($node->safe_psql('postgres', q{
	SELECT last_used_at > now() - interval '1 minute' FROM apikey.key_list WHERE name = 'used'}),
	't', 'the time of the last use');
is(last_line($node->safe_psql('postgres', $keys_writes)), $keys_writes_before + 1,
	'the key table itself was written only by the deletion');

# precision: a key in constant use is rewritten at most once per
# apikey.usage_precision
my $usage_writes = q{SELECT pg_stat_force_next_flush();
	SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relid = 'apikey.key_usage'::regclass};
reload($node, q{apikey.usage_precision = '1h'});
my $written_at = $node->safe_psql('postgres', q{SELECT last_used_at FROM apikey.key_list WHERE name = 'used'});
my $writes_before = last_line($node->safe_psql('postgres', $usage_writes));
$node->safe_psql('postgres', qq{SELECT status FROM apikey.verify(${\ $key->('used')})});
ok(wait_for($node, q{SELECT apikey.usage_tracking() LIKE '% 0 keys pending%'}), 'a newer use was taken');
is($node->safe_psql('postgres', q{SELECT last_used_at FROM apikey.key_list WHERE name = 'used'}), $written_at,
	'within the precision, last_used_at is not rewritten');
is(last_line($node->safe_psql('postgres', $usage_writes)), $writes_before, 'no row written');
reload($node, 'apikey.usage_precision = 0');
$node->safe_psql('postgres', qq{SELECT status FROM apikey.verify(${\ $key->('used')})});
ok(wait_for($node, qq{SELECT last_used_at > '$written_at' FROM apikey.key_list WHERE name = 'used'}),
	'beyond the precision, it is');

# the writer never waits on another transaction's lock: a key being
# deleted (its usage row locked) stays pending while later uses are written,
# and no backend ever waits for a lock meanwhile
$node->safe_psql('postgres', qq{SELECT status FROM apikey.verify(${\ $key->('locked')})});
my $admin = $node->background_psql('postgres');
$admin->query_safe(qq{SELECT status FROM apikey.verify(${\ $key->('locked')})});
ok(wait_for($node, q{SELECT count(*) = 1 FROM apikey.key_list WHERE name = 'locked' AND last_used_at IS NOT NULL}),
	'the key to be deleted has a usage row');
$admin->query_safe(qq{BEGIN; SELECT apikey.delete_key(${\ $id->('locked')})});
$node->safe_psql('postgres', qq{SELECT status FROM apikey.verify(${\ $key->('locked')})});
$node->safe_psql('postgres', qq{SELECT status FROM apikey.verify(${\ $key->('later')})});
my $waited = 0;
my $later_written = 0;
for (my $i = 0; $i < 600 && !$later_written; $i++)
{
	$waited += $node->safe_psql('postgres', q{SELECT (SELECT count(*) FROM pg_locks WHERE NOT granted)
		+ (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock')});
	$later_written = $node->safe_psql('postgres',
		q{SELECT count(*) = 1 FROM apikey.key_usage u JOIN test_keys t USING (key_id) WHERE t.label = 'later'}) eq 't';
	usleep(50_000) unless $later_written;
}
ok($later_written, 'a later use was written while the row was locked');
like($node->safe_psql('postgres', 'SELECT apikey.usage_tracking()'), qr/ 1 keys pending/,
	'the locked key stays pending');
is($waited, 0, 'no backend waited for a lock meanwhile');
$admin->query_safe('COMMIT');
$admin->quit;
ok(wait_for($node, q{SELECT apikey.usage_tracking() LIKE '% 0 keys pending%'}),
	'once deleted, the key is dropped from what is pending');

# apikey.track_usage = off: nothing is gathered
$node->safe_psql('postgres', qq{
	SET apikey.track_usage = off;
	SELECT status FROM apikey.verify(${\ $key->('unused')});
});
like($node->safe_psql('postgres', 'SELECT apikey.usage_tracking()'), qr/ 0 keys pending/,
	'track_usage = off: a use is not gathered');
like($node->safe_psql('postgres', 'SET apikey.track_usage = off; SELECT apikey.usage_tracking()'),
	qr/^off: apikey.track_usage is off/, 'and usage_tracking() says so');

# bounded memory: more keys in use between two flushes than
# apikey.usage_max_keys holds; the excess is counted, not tracked (one
# tenant's keys: the last quarter is kept for others, apikey.usage_tenant_share)
reload($node, 'apikey.usage_flush_interval = 3600');
$node->restart;
$node->safe_psql('postgres', q{
	INSERT INTO test_keys SELECT 'many ' || g, k.key_id, k.api_key
	  FROM generate_series(1, 1500) AS g, apikey.create_key('acme', 'production', 'many ' || g) AS k;
	SELECT count(*) FROM test_keys t, apikey.verify(t.api_key) v WHERE t.label LIKE 'many %' AND v.valid;
});
my $state = $node->safe_psql('postgres', 'SELECT apikey.usage_tracking()');
my ($pending) = $state =~ / (\d+) keys pending/;
my ($dropped) = $state =~ / (\d+) uses dropped/;
is($pending, 768, 'one tenant: three quarters of usage_max_keys (1024) keys pending, the rest kept for other tenants');
cmp_ok($dropped, '>', 0, "the uses that did not fit are counted ($dropped)");
is($pending + $dropped, 1500, 'every use is either pending or counted as dropped');

# on a standby: verification works, writes nothing, and key_list shows
# what the primary wrote
$node->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('usage_standby');
$standby->init_from_backup($node, 'backup', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby, 'replay');
is($standby->safe_psql('postgres', qq{
	BEGIN READ ONLY;
	SELECT status FROM apikey.verify(${\ $key->('used')});
	COMMIT;}), 'valid', 'verify on the standby');
is($standby->safe_psql('postgres', q{
	SELECT l.last_used_at = u.last_used_at FROM apikey.key_list l JOIN apikey.key_usage u USING (key_id) WHERE l.name = 'used'}),
	't', 'the standby lists the use the primary wrote');
like($standby->safe_psql('postgres', 'SELECT apikey.usage_tracking()'), qr/not on this standby/,
	'the standby says it does not write');

done_testing();
