# Events never veto a change: with the NOTIFY queue full.
#
# A role that may only connect LISTENs, stays in a transaction (the queue
# cannot move past it) and notifies until the queue is full.  A revocation
# with terminate => true, a leak report and a key creation still commit;
# their events are dropped by the event relay, counted by events_dropped()
# and announced by a warning in the server log; the kill switch still stops
# the revoked key's transaction.
#
# The queue of PostgreSQL 15 holds 8 GB: by default the test lowers
# apikey.events_max_queue_usage so that a few megabytes are "full".  With
# APIKEY_TEST_FULL_NOTIFY_QUEUE=1 it fills the real queue to the point
# where NOTIFY fails (54000), with the setting at its default (about a
# minute, 8 GB of disk).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use ApikeyTAP;

my $full = ($ENV{APIKEY_TEST_FULL_NOTIFY_QUEUE} // '') eq '1';
my $node = new_node('events_queue', conf => "shared_preload_libraries = 'apikey'"
	. ($full ? '' : "\napikey.events_max_queue_usage = 0.0005"));
$node->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{stolen,leaked,before}'::text[]) AS label,
		       apikey.create_key('acme', 'production', label);
	CREATE ROLE nobody LOGIN;
	CREATE ROLE ops LOGIN;
	SELECT apikey.grant_admin('ops');
	SELECT apikey.grant_leak_reporter('ops');
	GRANT SELECT ON test_keys TO ops;
	CREATE TABLE writes (x int); GRANT ALL ON writes TO PUBLIC;
});
my $key = sub { "(SELECT api_key FROM test_keys WHERE label = '$_[0]')" };
my $id = sub { "(SELECT key_id FROM test_keys WHERE label = '$_[0]')" };

sub session
{
	my ($user, $name) = @_;
	return new_session($node, user => $user, name => $name);
}
# notifications the session received within $limit seconds (psql prints
# them after a statement; the relay sends them soon after the commit)
sub notifications
{
	my ($s, $limit) = @_;
	my $n = 0;
	my $t0 = time;
	do
	{
		my $out = $s->query('SELECT 1');
		$n += () = $out =~ /^Asynchronous notification "apikey_events"/mg;
		usleep(10_000);
	} while (time - $t0 < ($limit // 2));
	return $n;
}

# the setup's events sent
$node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM apikey.event_queue');
my $listener = session('postgres', 'listener');
$listener->query_safe('LISTEN apikey_events');
$node->safe_psql('postgres', q{SELECT apikey.revoke_key(key_id) FROM test_keys WHERE label = 'before'});
is(scalar(notifications($listener)), 1, 'with room in the queue, an event is sent');

# the attack: a role that may only connect holds the queue and floods it
my $stuck = session('nobody', 'stuck');
run_sql($stuck, 'LISTEN flood');    # from 19 only listeners of a channel hold its notifications
run_sql($stuck, 'BEGIN');
run_sql($stuck, 'SELECT 1');
my $flooder = session('nobody', 'flooder');
my ($target, $per_round) = $full ? (1, 20000) : (0.001, 500);
my ($usage, $err) = (0, '');
for my $round (1 .. 400)
{
	(undef, $err) = run_sql($flooder,
		"SELECT count(pg_notify('flood', $round || ':' || g || repeat('x', 7900))) FROM generate_series(1, $per_round) AS g");
	($usage) = run_sql($flooder, 'SELECT pg_notification_queue_usage()');
	last if $err =~ /too many notifications/ || $usage >= $target;
}
diag("queue usage $usage");
if ($full)
{
	like($err, qr/54000: too many notifications in the NOTIFY queue/, 'the queue is full: NOTIFY fails');
}
else
{
	ok($usage > 0.0005, 'the queue is used past apikey.events_max_queue_usage');
}

# the victim's transaction, in flight with the stolen key
my $victim = session('postgres', 'victim');
run_sql($victim, 'BEGIN');
is((run_sql($victim, "SELECT status FROM apikey.authenticate(${\ $key->('stolen')})"))[0], 'valid',
	'the stolen key authenticates a transaction');
run_sql($victim, 'INSERT INTO writes VALUES (1)');

my $ops = session('ops', 'ops');
my $out;
my $log_offset = -s $node->logfile;
($out, $err) = run_sql($ops, "SELECT apikey.revoke_key(${\ $id->('stolen')}, 'stolen', terminate => true)");
unlike($err, qr/ERROR/, 'revoke_key(terminate => true) commits with the queue full');
ok($node->poll_query_until('postgres', 'SELECT apikey.events_dropped() >= 1'),
	'  ... its event is dropped by the relay');
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/WARNING:  1 apikey event was not sent: the NOTIFY queue is [0-9.]+% full/,
	'  ... and a warning in the server log says so');
unlike($log, qr/ak_|[0-9A-Za-z]{20}/, '  ... the warning holds no key text');
is(key_status($node, 'postgres', 'stolen'), 'revoked', '  ... the key is revoked');
($out, $err) = run_sql($victim, 'COMMIT');
like($err, qr/28000: the API key this transaction authenticated with was revoked/,
	'  ... and the kill switch stopped its transaction');
is($node->safe_psql('postgres', 'SELECT count(*) FROM writes'), '0', '  ... nothing it wrote committed');

($out, $err) = run_sql($ops, "SELECT apikey.report_leak(${\ $key->('leaked')}, 'https://example.com/leak')");
is($out, 'revoked', 'report_leak commits with the queue full');
unlike($err, qr/ERROR/, '  ... without an error');
($out, $err) = run_sql($ops, "SELECT count(*) FROM apikey.create_key('acme', 'production', 'new')");
is($out, '1', 'create_key commits with the queue full');

ok($node->poll_query_until('postgres', 'SELECT apikey.events_dropped() = 3'), 'events_dropped() counts the three events');
is($node->safe_psql('postgres', q{
	SELECT string_agg(action, ',' ORDER BY event_id) FROM apikey.audit_log
	 WHERE event_id > (SELECT max(event_id) FROM apikey.audit_log WHERE action = 'revoked'
	                    AND key_id = (SELECT key_id FROM test_keys WHERE label = 'before'))}),
	'revoked,leaked,created', '  ... and audit_log has them');
is($node->safe_psql('postgres', q{SELECT has_function_privilege('nobody', 'apikey.events_dropped()', 'EXECUTE')}),
	'f', 'events_dropped() is for administrators');

# the queue frees up when the stuck session ends: events flow again (the
# sessions opened before the flood are ended from outside: with the real
# queue, their client's timer has run out)
$node->safe_psql('postgres', q{
	SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
	 WHERE application_name IN ('stuck', 'flooder', 'listener')});
eval { $_->quit } for ($stuck, $flooder, $listener);
ok($node->poll_query_until('postgres', 'SELECT pg_notification_queue_usage() < 0.0005'),
	'the stuck session ended, the queue drains');
$listener = session('postgres', 'listener2');
$listener->query_safe('LISTEN apikey_events');
$node->safe_psql('postgres', q{SELECT apikey.rename_key(key_id, 'renamed') FROM test_keys WHERE label = 'before'});
is(scalar(notifications($listener)), 1, '  ... and events are sent again');

$_->quit for ($listener, $victim, $ops);

# From PostgreSQL 17 the queue's size is max_notify_queue_pages: 4000 keys
# created at once in a queue of 64 pages (512 kB) commit, and the relay
# sends their events in transactions of 1000.
SKIP:
{
	skip 'max_notify_queue_pages is from PostgreSQL 17', 3 if $node->pg_version < 17;
	$node->append_conf('postgresql.conf', 'max_notify_queue_pages = 64');
	$node->restart;
	my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM apikey.audit_log');
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		q{SET apikey.events_max_queue_usage = 0.9;
		  SELECT count(*) FROM generate_series(1, 4000) AS g,
		         apikey.create_key('acme', 'production', 'bulk ' || g)});
	is($stdout, '4000', 'a small queue (max_notify_queue_pages): 4000 keys created at once commit');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM apikey.audit_log') - $before, 4000,
		'  ... their events in audit_log');
	ok($node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM apikey.event_queue'),
		'  ... and taken by the relay');
}
done_testing();
