# The kill switch: revoke_key(key_id, reason, terminate => true).
#
# When the revocation commits, the statement in flight of a transaction
# authenticated by that key is cancelled within a second, and that
# transaction can neither run another statement nor commit; sessions of
# other keys, of no key, and of another database are untouched; a
# revocation rolled back (or rolled back to a savepoint) cancels nothing;
# a session whose transaction was stopped runs its next transaction
# undisturbed (no cancel is left over for it).  A leak report terminates
# too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use ApikeyTAP;

my $node = new_node('kill_switch',
	conf => "shared_preload_libraries = 'apikey'\nmax_prepared_transactions = 2");
$node->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{victim,bystander,kept,catcher,prepared,leaky,comeback}'::text[]) AS label,
		       apikey.create_key('acme', 'production', label);
});
my $key = sub { "(SELECT api_key FROM test_keys WHERE label = '$_[0]')" };
my $id = sub { "(SELECT key_id FROM test_keys WHERE label = '$_[0]')" };

# another database holding a key with the victim's id and secret
$node->safe_psql('postgres', 'CREATE DATABASE other');
my $victim_row = $node->safe_psql('postgres', q{
	SELECT format('%L, %L', key_id, key_hash) FROM apikey.keys
	 WHERE key_id = (SELECT key_id FROM test_keys WHERE label = 'victim')});
my $victim_text = $node->safe_psql('postgres', q{SELECT api_key FROM test_keys WHERE label = 'victim'});
$node->safe_psql('other', qq{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	INSERT INTO apikey.keys (key_id, key_hash, tenant_id, tenant, environment, hint, name, created_by)
	SELECT $victim_row, t.tenant_id, 'acme', 'production', 'ak_live_…', 'copy', 'test' FROM apikey.tenants AS t;
	CREATE TABLE test_keys (label text PRIMARY KEY, api_key text);
	INSERT INTO test_keys VALUES ('victim', '$victim_text');
});

# a session; statements may fail without ending it
sub session
{
	my ($db, $name) = @_;
	my $s = $node->background_psql($db, on_error_stop => 0);
	$s->query_safe("SET application_name = '$name'");
	$s->query_safe('\\set VERBOSITY verbose');    # errors with their SQLSTATE
	return $s;
}
# a statement to its end: (output, errors)
sub run
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}
# a statement sent without waiting for it
sub start
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	$s->{stdin} .= "$sql\n";
	$s->{run}->pump_nb();
}
# seconds until the session's errors match, or undef after $limit seconds
sub wait_error
{
	my ($s, $re, $limit) = @_;
	my $t0 = time;
	while (time - $t0 < $limit)
	{
		$s->{run}->pump_nb();
		return time - $t0 if $s->{stderr} =~ $re;
		usleep(2_000);
	}
	return undef;
}
sub wait_active
{
	my ($n, $names) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = $n FROM pg_stat_activity
		 WHERE application_name IN ($names) AND state = 'active' AND wait_event = 'PgSleep'});
}

my $revoker = session('postgres', 'revoker');

# 1. the victim's statement in flight; around it, a session of another key
# in flight, a session of no key in flight, a session of the same id in
# another database in flight, and two sessions of the victim's key idle in
# their transactions
my $victim = session('postgres', 'victim');
is((run($victim, 'BEGIN'))[1], '', 'victim: BEGIN');
is((run($victim, "SELECT status FROM apikey.authenticate(${\ $key->('victim')})"))[0], 'valid',
	'victim: authenticated');
start($victim, 'SELECT pg_sleep(60);');
my $bystander = session('postgres', 'bystander');
run($bystander, 'BEGIN');
is((run($bystander, "SELECT status FROM apikey.authenticate(${\ $key->('bystander')})"))[0], 'valid',
	'bystander: authenticated with another key');
start($bystander, "SELECT pg_sleep(2), 'bystander slept';");
my $plain = session('postgres', 'plain');
start($plain, "SELECT pg_sleep(2), 'plain slept';");
my $elsewhere = session('other', 'elsewhere');
run($elsewhere, 'BEGIN');
is((run($elsewhere, "SELECT status FROM apikey.authenticate(${\ $key->('victim')})"))[0], 'valid',
	'another database: authenticated with a key of the same id');
start($elsewhere, "SELECT pg_sleep(2), 'elsewhere slept';");
my @idle;
for my $i (0, 1)
{
	$idle[$i] = session('postgres', "idle$i");
	run($idle[$i], 'BEGIN');
	is((run($idle[$i], "SELECT status FROM apikey.authenticate(${\ $key->('victim')})"))[0], 'valid',
		"idle $i: authenticated with the victim's key, then idle in its transaction");
}
ok(wait_active(3, q{'victim', 'bystander', 'plain'}), 'three statements in flight');

my $t0 = time;
my ($out, $err) = run($revoker,
	"SELECT apikey.revoke_key(${\ $id->('victim')}, 'incident', terminate => true)");
my $committed = time;
is($err, '', 'the revocation with terminate => true commits');
my $waited = wait_error($victim, qr/canceling statement/, 10);
ok(defined $waited && $waited < 1.0,
	sprintf('the statement in flight is cancelled within a second of the commit (%s)',
		defined $waited ? sprintf('%.3f s; the revoke statement took %.3f s', $waited, $committed - $t0) : 'not at all'));
like($victim->{stderr}, qr/ERROR:  57014: canceling statement due to user request\n(.*\n)?DETAIL:  The API key this transaction authenticated with was revoked with terminate => true/,
	'the cancel says why');
($out, $err) = run($victim, 'ROLLBACK');
($out, $err) = run($victim, "SELECT pg_sleep(0.3), 'next transaction'");
is($err, '', 'the victim session: its next statement runs undisturbed');
($out, $err) = run($victim, "SELECT status FROM apikey.authenticate(${\ $key->('victim')})");
like($err, qr/API key rejected: revoked/, 'the victim session: the key is revoked');

($out, $err) = run($bystander, 'COMMIT');
is($err, '', 'the session of another key: its statement completed and its transaction commits');
like($out, qr/bystander slept/, '  ... with the statement\'s result');
($out, $err) = run($plain, "SELECT 'plain done'");
is($err, '', 'the session without a key: untouched');
like($out, qr/plain slept/, '  ... its statement completed');
($out, $err) = run($elsewhere, 'COMMIT');
is($err, '', 'the session of another database: untouched');
like($out, qr/elsewhere slept/, '  ... its statement completed');

($out, $err) = run($idle[0], 'SELECT 1');
like($err, qr/ERROR:  28000: the API key this transaction authenticated with was revoked/,
	'idle in transaction with the key: the next statement raises 28000');
run($idle[0], 'ROLLBACK');
($out, $err) = run($idle[0], "SELECT pg_sleep(0.3), 'after'");
is($err, '', '  ... and after ROLLBACK the session runs undisturbed');

usleep(500_000);    # the stopped transaction's checks fire while it is idle
($out, $err) = run($idle[1], 'SELECT apikey.current_tenant()');
like($err, qr/was revoked/, 'idle in transaction: its identity functions raise');
run($idle[1], 'ROLLBACK');
run($idle[1], 'BEGIN');
run($idle[1], "SELECT status FROM apikey.authenticate(${\ $key->('bystander')})");
($out, $err) = run($idle[1], "SELECT pg_sleep(0.3), apikey.current_tenant()");
is($err, '', 'the same session authenticated with another key: undisturbed');
($out, $err) = run($idle[1], 'COMMIT');
is($err, '', '  ... and it commits');

# a transaction of the key that is idle when the key is terminated cannot commit
my $committer = session('postgres', 'committer');
$node->safe_psql('postgres',
	q{INSERT INTO test_keys SELECT 'committer', key_id, api_key FROM apikey.create_key('acme', 'production', 'committer')});
$node->safe_psql('postgres', 'CREATE TABLE writes (x int); GRANT ALL ON writes TO PUBLIC');
run($committer, 'BEGIN');
run($committer, "SELECT status FROM apikey.authenticate(${\ $key->('committer')})");
run($committer, 'INSERT INTO writes VALUES (1)');
run($revoker, "SELECT apikey.revoke_key(${\ $id->('committer')}, terminate => true)");
usleep(300_000);
($out, $err) = run($committer, 'COMMIT');
like($err, qr/ERROR:  28000: .*was revoked/, 'COMMIT of a terminated transaction raises 28000');
is($node->safe_psql('postgres', 'SELECT count(*) FROM writes'), '0', '  ... and nothing it wrote is committed');
($out, $err) = run($committer, "SELECT pg_sleep(0.3), 'after commit'");
is($err, '', '  ... and the session goes on undisturbed');

# a terminated key that becomes the identity again (a savepoint rolled back
# after another key was authenticated without a statement of its own, in
# PL/pgSQL) comes back terminated
my $comeback = session('postgres', 'comeback');
run($comeback, q{SELECT set_config('test.other_key', api_key, false) FROM test_keys WHERE label = 'bystander'});
run($comeback, 'BEGIN');
run($comeback, "SELECT status FROM apikey.authenticate(${\ $key->('comeback')})");
run($revoker, "SELECT apikey.revoke_key(${\ $id->('comeback')}, terminate => true)");
run($comeback, 'SAVEPOINT s');
($out, $err) = run($comeback, q{DO $$ DECLARE s text; BEGIN s := (apikey.authenticate(current_setting('test.other_key'))).status; END $$});
is($err, '', 'terminated key: another key authenticated from PL/pgSQL after a savepoint');
run($comeback, 'ROLLBACK TO s');
($out, $err) = run($comeback, 'SELECT apikey.current_tenant()');
like($err, qr/ERROR:  28000: the API key this transaction authenticated with was revoked/,
	'  ... rolled back to the savepoint, the terminated key is the identity again, and still terminated');
run($comeback, 'ROLLBACK');

# 2. a revocation rolled back, or rolled back to a savepoint, cancels nothing
my $kept = session('postgres', 'kept');
run($kept, 'BEGIN');
is((run($kept, "SELECT status FROM apikey.authenticate(${\ $key->('kept')})"))[0], 'valid',
	'kept: authenticated');
start($kept, "SELECT pg_sleep(1.5), 'kept slept';");
ok(wait_active(1, q{'kept'}), 'its statement is in flight');
($out, $err) = run($revoker, "BEGIN; SELECT apikey.revoke_key(${\ $id->('kept')}, terminate => true); ROLLBACK;");
is($err, '', 'a revocation with terminate => true, rolled back');
($out, $err) = run($revoker, "BEGIN; SAVEPOINT s; SELECT apikey.revoke_key(${\ $id->('kept')}, terminate => true);"
	. " ROLLBACK TO s; COMMIT;");
is($err, '', 'one rolled back to a savepoint, in a transaction that commits');
($out, $err) = run($kept, 'COMMIT');
is($err, '', 'the statement in flight completed and its transaction commits');
like($out, qr/kept slept/, '  ... with its result');
is(key_status($node, 'postgres', 'kept'), 'valid', 'the key is still valid');

# 3. a statement that catches the cancel: the transaction still cannot go on
my $catcher = session('postgres', 'catcher');
run($catcher, 'BEGIN');
run($catcher, "SELECT status FROM apikey.authenticate(${\ $key->('catcher')})");
start($catcher, q{DO $$ BEGIN PERFORM pg_sleep(5); EXCEPTION WHEN query_canceled THEN RAISE NOTICE 'caught'; END $$;});
ok(wait_active(1, q{'catcher'}), 'catcher: its statement is in flight');
run($revoker, "SELECT apikey.revoke_key(${\ $id->('catcher')}, terminate => true)");
ok(defined wait_error($catcher, qr/NOTICE:  00000: caught/, 5), 'a statement catching the cancel gets it');
($out, $err) = run($catcher, 'SELECT 1');
like($err, qr/ERROR: .*revoked/, '  ... and its transaction cannot run another statement');
run($catcher, 'ROLLBACK');
($out, $err) = run($catcher, "SELECT pg_sleep(0.5), 'after'");
is($err, '', '  ... while the session\'s next transaction runs undisturbed');

# 4. a leak report terminates the leaked key's transactions too
my $leaky = session('postgres', 'leaky');
run($leaky, 'BEGIN');
run($leaky, "SELECT status FROM apikey.authenticate(${\ $key->('leaky')})");
start($leaky, 'SELECT pg_sleep(60);');
ok(wait_active(1, q{'leaky'}), 'leaky: its statement is in flight');
($out, $err) = run($revoker, "SELECT apikey.report_leak(${\ $key->('leaky')}, 'https://example.com')");
is($out, 'revoked', 'report_leak revokes the key');
$waited = wait_error($leaky, qr/canceling statement/, 10);
ok(defined $waited && $waited < 1.0, 'and its statement in flight is cancelled within a second');
run($leaky, 'ROLLBACK');

# 5. a revocation that terminates cannot be prepared (it would commit elsewhere)
($out, $err) = run($revoker, "BEGIN; SELECT apikey.revoke_key(${\ $id->('prepared')}, terminate => true);"
	. " PREPARE TRANSACTION 'revoke';");
like($err, qr/cannot prepare a transaction that revoked a key with terminate => true/,
	'PREPARE TRANSACTION of a terminating revocation is refused');
is(key_status($node, 'postgres', 'prepared'), 'valid', '  ... and the key stays valid');

$_->quit for ($revoker, $victim, $bystander, $plain, $elsewhere, @idle, $committer, $kept, $catcher, $leaky, $comeback);
done_testing();
