# Revocations past one server: a synchronous standby, failover, and the
# kill switch on a hot standby.
#
# Pair 1 (a primary and its synchronous standby, which applies WAL a second
# late): a revocation returns once the standby has applied it
# (apikey.revocation_synchronous_commit = remote_apply, the default), even
# from a session with synchronous_commit = local; with the setting at
# session it returns before (the asynchronous case).  A standby session
# authenticated with a key, in a long statement, is cancelled soon after the
# key's revocation with terminate => true commits on the primary, and its
# transaction cannot commit; a revocation without terminate, and other keys'
# sessions, stop nothing.  The primary is stopped at once and the standby
# promoted: every acknowledged revocation is kept.
#
# Pair 2 (the synchronous standby is down): a revocation whose wait is
# cancelled says so (01KA0) and confirm_revocations() answers canceled, then
# confirmed once the standby is back; with the setting at session, a
# revocation returns with no word and is lost by a failover.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use ApikeyTAP;

my $labels = '{sync,async,durable,victim,quiet,bystander,idle,leaked,warned,silent}';

sub new_pair
{
	my ($name, $standby_conf) = @_;
	my $primary = new_node("${name}_primary", allows_streaming => 1, conf => qq{
shared_preload_libraries = 'apikey'
});
	$primary->safe_psql('postgres', qq{
		CREATE EXTENSION apikey;
		SELECT apikey.create_tenant('acme');
		CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
		INSERT INTO test_keys
			SELECT label, key_id, api_key
			  FROM unnest('$labels'::text[]) AS label,
			       apikey.create_key('acme', 'production', label);
	});
	$primary->backup("${name}_backup");
	my $standby = PostgreSQL::Test::Cluster->new("${name}_standby");
	$standby->init_from_backup($primary, "${name}_backup", has_streaming => 1);
	$standby->append_conf('postgresql.conf', "log_statement = none\n$standby_conf\n");
	$standby->start;
	$primary->wait_for_catchup($standby, 'replay');
	# synchronous from now on
	$primary->safe_psql('postgres', "ALTER SYSTEM SET synchronous_standby_names = '${name}_standby'");
	$primary->reload;
	$primary->poll_query_until('postgres', qq{
		SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = '${name}_standby'});
	return ($primary, $standby);
}

my $id = sub { "(SELECT key_id FROM test_keys WHERE label = '$_[0]')" };
my $key = sub { "(SELECT api_key FROM test_keys WHERE label = '$_[0]')" };

# a session; statements may fail without ending it
sub session
{
	my ($node, $name) = @_;
	return new_session($node, name => $name);
}

# ---- pair 1 ----
my ($primary, $standby) = new_pair('one', 'recovery_min_apply_delay = 1s');
is($primary->safe_psql('postgres', q{
	SELECT sync_state FROM pg_stat_replication WHERE application_name = 'one_standby'}),
	'sync', 'pair 1: the standby is synchronous');

# an application that commits locally only, for speed
my $admin = session($primary, 'admin');
run_sql($admin, 'SET synchronous_commit = local');
my ($out, $err) = run_sql($admin, "SELECT apikey.revoke_key(${\ $id->('sync')})");
is($err, '', 'remote_apply: the revocation returns');
is(key_status($standby, 'postgres', 'sync'), 'revoked',
	'remote_apply: the standby refuses the key when the revocation returns (from a session with synchronous_commit = local)');
is((run_sql($admin, 'SHOW synchronous_commit'))[0], 'local', 'the session\'s synchronous_commit is its own again after the commit');

run_sql($admin, 'SET apikey.revocation_synchronous_commit = session');
my $t0 = time;
($out, $err) = run_sql($admin, "SELECT apikey.revoke_key(${\ $id->('async')})");
my $took = time - $t0;
is(key_status($standby, 'postgres', 'async'), 'valid',
	sprintf('session: the revocation returns (in %.3f s) before the standby (1 s behind) has applied it', $took));
run_sql($admin, 'RESET apikey.revocation_synchronous_commit');

# roll_key, delete_key, revoke_owner_keys and report_leak wait too
$t0 = time;
run_sql($admin, "SELECT apikey.roll_key(${\ $id->('quiet')})");
$took = time - $t0;
ok($took >= 0.9, sprintf('roll_key waits for the standby to apply it (%.3f s)', $took));
$standby->safe_psql('postgres', 'SELECT 1');    # nothing to wait for here
$t0 = time;
run_sql($admin, q{BEGIN; SELECT apikey.set_key_owner(key_id, 'ann') FROM test_keys WHERE label = 'idle'; COMMIT});
$took = time - $t0;
ok($took < 0.9, sprintf('another change (set_key_owner) commits as the session says (%.3f s)', $took));
$t0 = time;
run_sql($admin, q{SELECT apikey.revoke_owner_keys('acme', 'ann')});
$took = time - $t0;
ok($took >= 0.9, sprintf('revoke_owner_keys waits (%.3f s)', $took));
# a savepoint rolled back revokes nothing, and waits for nothing
$t0 = time;
run_sql($admin, "BEGIN; SAVEPOINT s; SELECT apikey.revoke_key(${\ $id->('bystander')}); ROLLBACK TO SAVEPOINT s; COMMIT");
$took = time - $t0;
ok($took < 0.9, sprintf('a revocation rolled back to a savepoint does not wait (%.3f s)', $took));
is($primary->safe_psql('postgres', "SELECT revoked_at IS NULL FROM apikey.keys WHERE key_id = ${\ $id->('bystander')}"),
	't', '... and revoked nothing');

$standby->append_conf('postgresql.conf', 'recovery_min_apply_delay = 0');
$standby->reload;
$primary->wait_for_catchup($standby, 'replay');

# the kill switch on the standby: a victim in a long statement, an idle one,
# a bystander of another key, a session of a key revoked without terminate
my $victim = session($standby, 'victim');
run_sql($victim, 'BEGIN');
is((run_sql($victim, "SELECT status FROM apikey.authenticate(${\ $key->('victim')})"))[0], 'valid',
	'standby: the victim authenticated');
send_sql($victim, 'SELECT pg_sleep(60);');
my $idle = session($standby, 'idle victim');
run_sql($idle, 'BEGIN');
is((run_sql($idle, "SELECT status FROM apikey.authenticate(${\ $key->('victim')})"))[0], 'valid',
	'standby: a second session authenticated with the victim\'s key, then idle in its transaction');
my $idle2 = session($standby, 'idle victim 2');
run_sql($idle2, 'BEGIN');
run_sql($idle2, "SELECT status FROM apikey.authenticate(${\ $key->('victim')})");
my $bystander = session($standby, 'bystander');
run_sql($bystander, 'BEGIN');
run_sql($bystander, "SELECT status FROM apikey.authenticate(${\ $key->('bystander')})");
send_sql($bystander, "SELECT pg_sleep(1.5), 'bystander slept';");
my $quiet = session($standby, 'quiet');
run_sql($quiet, 'BEGIN');
is((run_sql($quiet, "SELECT status FROM apikey.authenticate(${\ $key->('durable')})"))[0], 'valid',
	'standby: a session authenticated with a key about to be revoked without terminate');
send_sql($quiet, "SELECT pg_sleep(1.5), 'quiet slept';");
ok($standby->poll_query_until('postgres', q{
	SELECT count(*) = 3 FROM pg_stat_activity
	 WHERE application_name IN ('victim', 'bystander', 'quiet') AND wait_event = 'PgSleep'}),
	'standby: three statements in flight');

# revoked asynchronously: what is measured is replay + the watcher + the backend's timer
run_sql($admin, 'SET apikey.revocation_synchronous_commit = session');
run_sql($admin, "SELECT apikey.revoke_key(${\ $id->('durable')})");
$t0 = time;
($out, $err) = run_sql($admin, "SELECT apikey.revoke_key(${\ $id->('victim')}, 'incident', terminate => true)");
my $committed = time;
is($err, '', 'primary: the revocation with terminate => true commits');
my $waited = wait_error($victim, qr/canceling statement/, 10);
ok(defined $waited && $waited + ($committed - $t0) < 1.0,
	sprintf('standby: the statement in flight is cancelled within a second of the commit on the primary (%s)',
		defined $waited ? sprintf('%.3f s after the revoke returned; the revoke took %.3f s', $waited, $committed - $t0)
		: 'not at all'));
diag(sprintf('kill switch on the standby: %.0f ms from the revoke\'s return on the primary to the cancel',
	1000 * $waited)) if defined $waited;
like($victim->{stderr}, qr/57014: canceling statement due to user request\n(.*\n)?DETAIL:  The API key this transaction authenticated with was revoked with terminate => true/,
	'standby: the cancel says why');
($out, $err) = run_sql($victim, 'SELECT 1');
like($err, qr/25P02/, 'standby: the cancelled transaction is aborted');
run_sql($victim, 'ROLLBACK');
($out, $err) = run_sql($idle, 'COMMIT');
like($err, qr/28000: the API key this transaction authenticated with was revoked/,
	'standby: the idle transaction of the key cannot commit');
($out, $err) = run_sql($idle2, 'SELECT 1');
like($err, qr/28000: the API key this transaction authenticated with was revoked/,
	'standby: another idle transaction of the key cannot run a statement');
run_sql($idle2, 'ROLLBACK');
($out, $err) = run_sql($bystander, 'COMMIT');
like($out, qr/bystander slept/, 'standby: a session of another key finishes its statement');
unlike($err, qr/canceling|28000/, '... and commits');
($out, $err) = run_sql($quiet, 'COMMIT');
like($out, qr/quiet slept/, 'standby: a session of a key revoked without terminate finishes its statement');
unlike($err, qr/canceling|28000/, '... and commits');
is((run_sql($victim, 'SELECT 42'))[0], '42', 'standby: the victim\'s session runs its next transaction');
like(slurp_file($standby->logfile), qr/apikey: \d transaction\(s\) of this standby authenticated with 1 key\(s\) whose revocation with terminate was replayed are stopped/,
	'standby log: the watcher stopped the transactions');
run_sql($admin, 'RESET apikey.revocation_synchronous_commit');
$_->quit for ($victim, $idle, $idle2, $bystander, $quiet);

# failover: stop the primary at once, promote the standby
run_sql($admin, "SELECT apikey.report_leak(${\ $key->('leaked')})");
$admin->quit;
$primary->stop('immediate');
$standby->promote;
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'pair 1: the standby is promoted');
for my $label ('sync', 'async', 'victim', 'durable', 'idle', 'leaked')
{
	is(key_status($standby, 'postgres', $label), 'revoked', "after failover: the key revoked ($label) stays revoked");
}
is(key_status($standby, 'postgres', 'bystander'), 'valid', 'after failover: the other key is valid');
$standby->stop;

# ---- pair 2: the synchronous standby is down ----
($primary, $standby) = new_pair('two', '');
$standby->stop;
$admin = session($primary, 'admin');
run_sql($admin, 'SET synchronous_commit = local');
# a wait for synchronous replication ignores statement_timeout: cancel it
my $cancel_when_waiting = sub {
	my $t0 = time;
	my $waiting;
	while (time - $t0 < 20)
	{
		$waiting = $primary->safe_psql('postgres', q{
			SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'admin' AND wait_event = 'SyncRep'});
		last if $waiting eq 't';
		usleep(20_000);
	}
	is($waiting, 't', "admin waits for the synchronous standby ($_[0])");
	$primary->safe_psql('postgres', q{
		SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'admin'});
};
send_sql($admin, "SELECT apikey.revoke_key(${\ $id->('warned')});");
$cancel_when_waiting->('revoke_key');
ok(defined wait_error($admin, qr/01KA0.*\n(.*\n)*HINT/, 10), 'the cancelled revocation returns');
like($admin->{stderr}, qr/WARNING:  01KA0: the revocation committed on this server, but no synchronous standby has confirmed it yet/,
	'a revocation whose wait is cancelled says it is not durable yet (01KA0)');
like($admin->{stderr}, qr/canceling wait for synchronous replication/, '... after PostgreSQL\'s own warning');
unlike($admin->{stderr}, qr/ERROR/, '... and no error: it committed here');
send_sql($admin, 'SELECT apikey.confirm_revocations();');
$cancel_when_waiting->('confirm_revocations');
my $t = time;
$admin->{run}->pump_nb() while $admin->{stdout} !~ /canceled|confirmed/ && time - $t < 10 && usleep(2_000) >= 0;
like($admin->{stdout}, qr/canceled/, 'confirm_revocations(): canceled while no synchronous standby has it');
$admin->{stdout} = '';
run_sql($admin, 'SET apikey.revocation_synchronous_commit = session');
($out, $err) = run_sql($admin, "SELECT apikey.revoke_key(${\ $id->('silent')})");
is($err, '', 'session: the revocation returns with no word (committed locally only)');
run_sql($admin, 'RESET apikey.revocation_synchronous_commit');

# the standby comes back: confirmed
$standby->start;
is((run_sql($admin, 'SELECT apikey.confirm_revocations()'))[0], 'confirmed',
	'confirm_revocations(): confirmed once the standby is back');
$admin->quit;
is(key_status($standby, 'postgres', 'warned'), 'revoked', 'the confirmed revocation is on the standby');

# the failover that loses what only the primary had
$standby->stop;
$primary->safe_psql('postgres', q{
	SET synchronous_commit = local; SET apikey.revocation_synchronous_commit = session;
	SELECT apikey.revoke_key((SELECT key_id FROM test_keys WHERE label = 'bystander'))});
$primary->stop('immediate');
$standby->start;
$standby->promote;
is(key_status($standby, 'postgres', 'bystander'), 'valid',
	'session: a revocation the standby never received is lost by the failover (PostgreSQL\'s asynchronous semantics)');

done_testing();
