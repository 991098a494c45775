# Events sent after commit by the event relay (shared_preload_libraries).
#
# 1. A key change takes no NOTIFY lock: under a synchronous standby that
#    receives nothing (its WAL receiver stopped), a revocation waits for
#    the standby (SyncRep), and a second revocation of another key, from
#    another session, reaches that wait too instead of waiting for the
#    first one's lock.  Both are sent once the standby confirms them.
# 2. Each event is delivered to a listener once, in order, with the payload
#    of 0.3.0; nothing of a rolled-back change or savepoint; a prepared
#    transaction's events once it is committed.  The time from a change's
#    commit to its delivery is measured, with the relay running and with
#    the relay to be started.
# 3. Events committed and not yet sent are sent after a restart.
# 4. A key passing its expiry time is recorded (audit action expired) and
#    sent once, also across a restart; its expiry moved and passed again,
#    once more; a revoked key's expiry is not.
# 5. A standby relays nothing (LISTEN is refused there; no relay runs).
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use ApikeyTAP;

my $primary = new_node('relay_primary', allows_streaming => 1, conf => q{
shared_preload_libraries = 'apikey'
apikey.expiry_check_interval = 1
max_prepared_transactions = 2
});
$primary->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{first,second,evented}'::text[]) AS label,
		       apikey.create_key('acme', 'production', label);
});
$primary->backup('relay_backup');
my $standby = PostgreSQL::Test::Cluster->new('relay_standby');
$standby->init_from_backup($primary, 'relay_backup', has_streaming => 1);
$standby->append_conf('postgresql.conf', "log_statement = none\n");
$standby->start;
$primary->wait_for_catchup($standby, 'replay');

my $id = sub { "(SELECT key_id FROM test_keys WHERE label = '$_[0]')" };

sub session
{
	my ($node, $name) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe("SET application_name = '$name'");
	return $s;
}

my $listener = session($primary, 'listener');
$listener->query_safe('LISTEN apikey_events');
# the notifications psql printed since the last call, as decoded payloads
sub notifications
{
	my $out = $listener->query('SELECT 1');
	return map { decode_json($_) } $out =~
	  /^Asynchronous notification "apikey_events" with payload "(.*)" received from server process with PID \d+\.$/mg;
}
# at least $n notifications, or what came within $limit seconds
sub wait_events
{
	my ($n, $limit) = @_;
	my @got;
	my $t0 = time;
	while (time - $t0 < $limit)
	{
		push @got, notifications();
		last if @got >= $n;
		usleep(5_000);
	}
	return @got;
}
sub audit
{
	my ($where) = @_;
	return $primary->safe_psql('postgres', qq{
		SELECT string_agg(format('%s|%s|%s|%s', event_id, action, tenant_id, key_id), ',' ORDER BY event_id)
		  FROM apikey.audit_log WHERE $where});
}
sub names { join(',', map { join('|', $_->{event_id}, $_->{action}, $_->{tenant_id}, $_->{key_id} // '') } @_) }
wait_events(3, 2);    # the creations above

# ---- 1. no NOTIFY lock under a synchronous standby ----
$primary->safe_psql('postgres', "ALTER SYSTEM SET synchronous_standby_names = 'relay_standby'");
$primary->reload;
$primary->poll_query_until('postgres', q{
	SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'relay_standby'});
# the standby's WAL receiver stops: commits on the primary wait
$standby->safe_psql('postgres', "ALTER SYSTEM SET primary_conninfo = ''");
$standby->reload;
$primary->poll_query_until('postgres', 'SELECT count(*) = 0 FROM pg_stat_replication');
my $mark = $primary->safe_psql('postgres', 'SELECT max(event_id) FROM apikey.audit');
my $sa = session($primary, 'revoker_a');
my $sb = session($primary, 'revoker_b');
send_sql($sa, "SELECT apikey.revoke_key(${\ $id->('first')});");
ok($primary->poll_query_until('postgres', q{
	SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE application_name = 'revoker_a'}),
	'A revokes a key and waits for the synchronous standby');
send_sql($sb, "SELECT apikey.revoke_key(${\ $id->('second')});");
my ($waits, $t0) = ('', time);
while (time - $t0 < 10)
{
	$waits = $primary->safe_psql('postgres', q{
		SELECT coalesce(wait_event_type, '') || ':' || coalesce(wait_event, '')
		  FROM pg_stat_activity WHERE application_name = 'revoker_b'});
	last if $waits eq 'IPC:SyncRep' || $waits =~ /^Lock:/;
	usleep(10_000);
}
is($waits, 'IPC:SyncRep', 'B revokes another key: it reaches the synchronous wait too, no lock wait (both committed here)');
is(scalar(notifications()), 0, '  ... nothing is sent while the standby has not confirmed them');
$standby->safe_psql('postgres', "ALTER SYSTEM RESET primary_conninfo");
$standby->reload;
$sa->query_safe('SELECT 1');
$sb->query_safe('SELECT 1');
my @events = sort { $a->{event_id} <=> $b->{event_id} } wait_events(2, 10);
is(names(@events), audit("event_id > $mark"), 'once the standby confirms, both revocations are sent');
$sa->quit;
$sb->quit;
$primary->safe_psql('postgres', "ALTER SYSTEM RESET synchronous_standby_names");
$primary->reload;

# ---- 2. delivery ----
my $actor = session($primary, 'actor');
$mark = $primary->safe_psql('postgres', 'SELECT max(event_id) FROM apikey.audit');
$actor->query_safe(q{BEGIN;
	SELECT apikey.rename_key(key_id, 'in flight') FROM test_keys WHERE label = 'evented'});
usleep(300_000);
is(scalar(notifications()), 0, 'nothing is sent before the commit');
$actor->query_safe('COMMIT');
$actor->query_safe(q{
	SELECT apikey.revoke_key(key_id, 'because') FROM test_keys WHERE label = 'evented';
	SELECT apikey.reactivate_key(key_id) FROM test_keys WHERE label = 'evented';
	BEGIN;
	SELECT apikey.delete_key(key_id) FROM test_keys WHERE label = 'evented';
	ROLLBACK;
	BEGIN;
	SELECT apikey.rename_key(key_id, 'kept') FROM test_keys WHERE label = 'evented';
	SAVEPOINT s;
	SELECT apikey.describe_key(key_id, 'rolled back') FROM test_keys WHERE label = 'evented';
	ROLLBACK TO SAVEPOINT s;
	COMMIT;
	BEGIN;
	SELECT apikey.rename_key(key_id, 'prepared') FROM test_keys WHERE label = 'evented';
	PREPARE TRANSACTION 'relayed';
	COMMIT PREPARED 'relayed';
});
@events = wait_events(5, 15);
push @events, wait_events(1, 1.5);    # anything more
is(join(',', map { $_->{action} } @events), 'renamed,revoked,reactivated,renamed,renamed',
	'each event once, in order; neither the rolled-back deletion nor the savepoint rolled back; the prepared one once committed');
is(names(@events), audit("event_id > $mark"), '  ... the payloads name the audit events as audit_log has them');
is(join(',', sort keys %{ $events[0] }), 'action,at,event_id,key_id,tenant_id',
	'  ... the payload holds the event id, time, action, tenant id and key id, nothing else');
like($events[0]{at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/, '  ... the time in UTC');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM apikey.event_queue'), '0', '  ... and the queue is empty');

# time from commit to delivery
sub delivery
{
	my ($pause) = @_;
	my @ms;
	for my $i (1 .. 10)
	{
		usleep($pause * 1_000_000) if $pause;
		$actor->query_safe("SELECT apikey.rename_key(${\ $id->('evented')}, 'timed $i')");
		my $t = time;
		my @got = wait_events(1, 10);
		push @ms, (time - $t) * 1000 if @got == 1;
	}
	@ms = sort { $a <=> $b } @ms;
	return (scalar(@ms), $ms[int(@ms / 2)], $ms[-1]);
}
my ($n, $median, $max) = delivery(0);
is($n, 10, 'ten changes in a row, each delivered');
diag(sprintf('commit to delivery, relay running: median %.1f ms, max %.1f ms', $median, $max));
ok($max < 1000, '  ... within a second');
($n, $median, $max) = delivery(1.5);
is($n, 10, 'ten changes 1.5 s apart (the relay left: the launcher starts one), each delivered');
diag(sprintf('commit to delivery, relay started: median %.1f ms, max %.1f ms', $median, $max));
ok($max < 2000, '  ... within two seconds');

# ---- 3. queued events survive a restart ----
my $holder = session($primary, 'holder');
$holder->query_safe('BEGIN; SELECT 1 FROM apikey.event_relay FOR UPDATE');
$mark = $primary->safe_psql('postgres', 'SELECT max(event_id) FROM apikey.audit');
$actor->query_safe("SELECT apikey.rename_key(${\ $id->('evented')}, 'before restart')");
usleep(300_000);
is(scalar(notifications()), 0, 'the relay is held: the event stays queued');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM apikey.event_queue'), '1', '  ... in event_queue');
$_->quit for ($actor, $listener);
# stopped at once, while the relay still waits for the row
$primary->stop('immediate');
eval { $holder->quit };
$primary->start;
# the launcher looks at every database at start: the relay sends the queued
# event (before a listener can connect: that it left the queue is the proof,
# since the relay deletes and sends in one transaction)
ok($primary->poll_query_until('postgres', 'SELECT count(*) = 0 FROM apikey.event_queue'),
	'after a restart, the queued event is sent');
$listener = session($primary, 'listener');
$listener->query_safe('LISTEN apikey_events');

# ---- 4. expiry ----
$primary->safe_psql('postgres', q{
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{short,revoked}'::text[]) AS label,
		       apikey.create_key('acme', 'production', label, expires_in => '2 seconds');
	SELECT apikey.revoke_key(key_id) FROM test_keys WHERE label = 'revoked'});
wait_events(3, 5);
$mark = $primary->safe_psql('postgres', 'SELECT max(event_id) FROM apikey.audit');
@events = wait_events(1, 10);
is(join(',', map { $_->{action} } @events), 'expired', 'a key passing its expiry time sends an expired event');
is($events[0]{key_id}, $primary->safe_psql('postgres', "SELECT ${\ $id->('short')}"), '  ... of that key');
is(names(@events), audit("event_id > $mark"), '  ... recorded in audit_log');
is($primary->safe_psql('postgres', qq{
	SELECT (details ->> 'expires_at')::timestamptz = (SELECT expires_at FROM apikey.keys WHERE key_id = ${\ $id->('short')})
	  FROM apikey.audit_log WHERE action = 'expired'}), 't', '  ... with the expiry it passed');
push @events, wait_events(1, 3);
is(scalar(@events), 1, '  ... once, and none for the revoked key');
$listener->quit;
$primary->restart;
$listener = session($primary, 'listener');
$listener->query_safe('LISTEN apikey_events');
is(scalar(wait_events(1, 3)), 0, '  ... nor again after a restart');
is($primary->safe_psql('postgres', q{SELECT count(*) FROM apikey.audit_log WHERE action = 'expired'}), '1',
	'  ... one expired event in audit_log');
$primary->safe_psql('postgres', "SELECT apikey.set_key_expiry(${\ $id->('short')}, now() + interval '2 seconds')");
@events = wait_events(2, 10);
is(join(',', map { $_->{action} } @events), 'expiry_changed,expired',
	'its expiry moved into the future and passed again: a new expired event');
# a relay that last looked a month ago (a server down that long): it
# records what expired in the last week, not older news
$primary->safe_psql('postgres', q{
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{missed,old}'::text[]) AS label,
		       apikey.create_key('acme', 'production', label)});
wait_events(2, 5);
$mark = $primary->safe_psql('postgres', 'SELECT max(event_id) FROM apikey.audit');
$primary->safe_psql('postgres', q{
	BEGIN;
	SELECT FROM apikey.event_relay FOR UPDATE;
	SELECT apikey.set_key_expiry(key_id, now() - interval '2 days') FROM test_keys WHERE label = 'missed';
	SELECT apikey.set_key_expiry(key_id, now() - interval '10 days') FROM test_keys WHERE label = 'old';
	UPDATE apikey.event_relay SET expiry_checked_to = now() - interval '30 days';
	COMMIT});
@events = wait_events(3, 10);
push @events, wait_events(1, 2);
is(join(',', map { $_->{action} . ':' . $_->{key_id} } grep { $_->{action} eq 'expired' } @events),
	'expired:' . $primary->safe_psql('postgres', "SELECT ${\ $id->('missed')}"),
	'after a long pause, the expiry of two days ago is recorded, not the one of ten days ago');
$listener->quit;

# ---- 5. standby ----
# the primary's relay shows as such (else the standby's count below proves nothing)
ok($primary->poll_query_until('postgres', q{
	SELECT count(*) >= 1 FROM pg_stat_activity WHERE backend_type = 'apikey event relay'}),
	'the primary runs a relay (backend type "apikey event relay")');
$primary->wait_for_catchup($standby, 'replay');
my ($ret, $stdout, $stderr) = $standby->psql('postgres', 'LISTEN apikey_events');
like($stderr, qr/cannot execute LISTEN during recovery/, 'a standby refuses LISTEN: no events there');
is($standby->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'apikey event relay%'}), '0',
	'  ... and runs no relay');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM apikey.event_queue'), '0',
	'  ... its queue is the primary\'s, replayed');

done_testing();
