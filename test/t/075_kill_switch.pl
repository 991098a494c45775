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
		  FROM unnest('{victim,bystander,kept,catcher,prepared,leaky,comeback,inner,outer,cursor,copier,metered,snapshot}'::text[]) AS label,
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
	return new_session($node, db => $db, name => $name);
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
is((run_sql($victim, 'BEGIN'))[1], '', 'victim: BEGIN');
is((run_sql($victim, "SELECT status FROM apikey.authenticate(${\ $key->('victim')})"))[0], 'valid',
	'victim: authenticated');
send_sql($victim, 'SELECT pg_sleep(60);');
my $bystander = session('postgres', 'bystander');
run_sql($bystander, 'BEGIN');
is((run_sql($bystander, "SELECT status FROM apikey.authenticate(${\ $key->('bystander')})"))[0], 'valid',
	'bystander: authenticated with another key');
send_sql($bystander, "SELECT pg_sleep(2), 'bystander slept';");
my $plain = session('postgres', 'plain');
send_sql($plain, "SELECT pg_sleep(2), 'plain slept';");
my $elsewhere = session('other', 'elsewhere');
run_sql($elsewhere, 'BEGIN');
is((run_sql($elsewhere, "SELECT status FROM apikey.authenticate(${\ $key->('victim')})"))[0], 'valid',
	'another database: authenticated with a key of the same id');
send_sql($elsewhere, "SELECT pg_sleep(2), 'elsewhere slept';");
my @idle;
for my $i (0, 1)
{
	$idle[$i] = session('postgres', "idle$i");
	run_sql($idle[$i], 'BEGIN');
	is((run_sql($idle[$i], "SELECT status FROM apikey.authenticate(${\ $key->('victim')})"))[0], 'valid',
		"idle $i: authenticated with the victim's key, then idle in its transaction");
}
ok(wait_active(3, q{'victim', 'bystander', 'plain'}), 'three statements in flight');

my $t0 = time;
my ($out, $err) = run_sql($revoker,
	"SELECT apikey.revoke_key(${\ $id->('victim')}, 'incident', terminate => true)");
my $committed = time;
is($err, '', 'the revocation with terminate => true commits');
my $waited = wait_error($victim, qr/canceling statement/, 10);
ok(defined $waited && $waited < 1.0,
	sprintf('the statement in flight is cancelled within a second of the commit (%s)',
		defined $waited ? sprintf('%.3f s; the revoke statement took %.3f s', $waited, $committed - $t0) : 'not at all'));
like($victim->{stderr}, qr/ERROR:  57014: canceling statement due to user request\n(.*\n)?DETAIL:  The API key this transaction authenticated with was revoked with terminate => true/,
	'the cancel says why');
($out, $err) = run_sql($victim, 'ROLLBACK');
($out, $err) = run_sql($victim, "SELECT pg_sleep(0.3), 'next transaction'");
is($err, '', 'the victim session: its next statement runs undisturbed');
($out, $err) = run_sql($victim, "SELECT status FROM apikey.authenticate(${\ $key->('victim')})");
like($err, qr/API key rejected: revoked/, 'the victim session: the key is revoked');

($out, $err) = run_sql($bystander, 'COMMIT');
is($err, '', 'the session of another key: its statement completed and its transaction commits');
like($out, qr/bystander slept/, '  ... with the statement\'s result');
($out, $err) = run_sql($plain, "SELECT 'plain done'");
is($err, '', 'the session without a key: untouched');
like($out, qr/plain slept/, '  ... its statement completed');
($out, $err) = run_sql($elsewhere, 'COMMIT');
is($err, '', 'the session of another database: untouched');
like($out, qr/elsewhere slept/, '  ... its statement completed');

($out, $err) = run_sql($idle[0], 'SELECT 1');
like($err, qr/ERROR:  28000: the API key this transaction authenticated with was revoked/,
	'idle in transaction with the key: the next statement raises 28000');
run_sql($idle[0], 'ROLLBACK');
($out, $err) = run_sql($idle[0], "SELECT pg_sleep(0.3), 'after'");
is($err, '', '  ... and after ROLLBACK the session runs undisturbed');

usleep(500_000);    # the stopped transaction's checks fire while it is idle
($out, $err) = run_sql($idle[1], 'SELECT apikey.current_tenant()');
like($err, qr/was revoked/, 'idle in transaction: its identity functions raise');
run_sql($idle[1], 'ROLLBACK');
run_sql($idle[1], 'BEGIN');
run_sql($idle[1], "SELECT status FROM apikey.authenticate(${\ $key->('bystander')})");
($out, $err) = run_sql($idle[1], "SELECT pg_sleep(0.3), apikey.current_tenant()");
is($err, '', 'the same session authenticated with another key: undisturbed');
($out, $err) = run_sql($idle[1], 'COMMIT');
is($err, '', '  ... and it commits');

# a transaction of the key that is idle when the key is terminated cannot commit
my $committer = session('postgres', 'committer');
$node->safe_psql('postgres',
	q{INSERT INTO test_keys SELECT 'committer', key_id, api_key FROM apikey.create_key('acme', 'production', 'committer')});
$node->safe_psql('postgres', 'CREATE TABLE writes (x int); GRANT ALL ON writes TO PUBLIC');
run_sql($committer, 'BEGIN');
run_sql($committer, "SELECT status FROM apikey.authenticate(${\ $key->('committer')})");
run_sql($committer, 'INSERT INTO writes VALUES (1)');
run_sql($revoker, "SELECT apikey.revoke_key(${\ $id->('committer')}, terminate => true)");
usleep(300_000);
($out, $err) = run_sql($committer, 'COMMIT');
like($err, qr/ERROR:  28000: .*was revoked/, 'COMMIT of a terminated transaction raises 28000');
is($node->safe_psql('postgres', 'SELECT count(*) FROM writes'), '0', '  ... and nothing it wrote is committed');
($out, $err) = run_sql($committer, "SELECT pg_sleep(0.3), 'after commit'");
is($err, '', '  ... and the session goes on undisturbed');

# every key the transaction authenticated with is tracked, not only the
# current one: a key terminated while a savepoint's key is the identity
# stops the transaction, and rolling back to the savepoint brings it back
# terminated (so what it wrote before cannot commit)
my $comeback = session('postgres', 'comeback');
run_sql($comeback, 'BEGIN');
run_sql($comeback, "SELECT status FROM apikey.authenticate(${\ $key->('comeback')})");
run_sql($comeback, 'INSERT INTO writes VALUES (2)');
run_sql($comeback, 'SAVEPOINT s');
is((run_sql($comeback, "SELECT status FROM apikey.authenticate(${\ $key->('bystander')})"))[0], 'valid',
	'savepoint: another key is the identity');
run_sql($revoker, "SELECT apikey.revoke_key(${\ $id->('comeback')}, terminate => true)");
($out, $err) = run_sql($comeback, 'ROLLBACK TO s');
is($err, '', '  ... the first key terminated; ROLLBACK TO SAVEPOINT works');
($out, $err) = run_sql($comeback, 'COMMIT');
like($err, qr/ERROR:  28000: the API key this transaction authenticated with was revoked/,
	'  ... and the transaction, back to the terminated key, cannot commit');
is($node->safe_psql('postgres', 'SELECT count(*) FROM writes WHERE x = 2'), '0',
	'  ... nothing it wrote as that key is committed');
run_sql($comeback, 'BEGIN');
run_sql($comeback, "SELECT status FROM apikey.authenticate(${\ $key->('inner')})");
run_sql($comeback, 'SAVEPOINT s');
run_sql($comeback, "SELECT status FROM apikey.authenticate(${\ $key->('outer')})");
run_sql($revoker, "SELECT apikey.revoke_key(${\ $id->('inner')}, terminate => true)");
($out, $err) = run_sql($comeback, 'SELECT 1');
like($err, qr/ERROR:  28000: the API key this transaction authenticated with was revoked/,
	'a key terminated while another is current: the next statement raises');
run_sql($comeback, 'ROLLBACK');

# a cursor declared before the kill: no fetch after it
my $cursor = session('postgres', 'cursor');
run_sql($cursor, 'BEGIN');
run_sql($cursor, "SELECT status FROM apikey.authenticate(${\ $key->('cursor')})");
run_sql($cursor, 'DECLARE c CURSOR FOR SELECT g FROM generate_series(1, 1000) AS g');
($out, $err) = run_sql($cursor, 'FETCH 10 FROM c');
is($out, join("\n", 1 .. 10), 'cursor: ten rows fetched before the kill');
run_sql($revoker, "SELECT apikey.revoke_key(${\ $id->('cursor')}, terminate => true)");
($out, $err) = run_sql($cursor, 'FETCH 10 FROM c');
like($err, qr/ERROR:  28000: the API key this transaction authenticated with was revoked/,
	'  ... FETCH after the kill raises 28000');
is($out, '', '  ... and returns no row');
run_sql($cursor, 'ROLLBACK');
# a statement that runs no executor of its own (COPY from a table)
run_sql($cursor, 'BEGIN');
run_sql($cursor, "SELECT status FROM apikey.authenticate(${\ $key->('copier')})");
run_sql($revoker, "SELECT apikey.revoke_key(${\ $id->('copier')}, terminate => true)");
($out, $err) = run_sql($cursor, 'COPY test_keys (label) TO STDOUT');
like($err, qr/ERROR:  28000: the API key this transaction authenticated with was revoked/,
	'COPY of a table after the kill raises 28000');
is($out, '', '  ... and copies no row');
run_sql($cursor, 'ROLLBACK');

# a key read before the kill, authenticated after it: refused.  The charge
# of a metered key waits on its credits row, held by a transaction of the
# same key; the kill commits meanwhile and stops the holder, whose
# rollback lets the waiter through with the key it read before the kill.
$node->safe_psql('postgres', "SELECT apikey.set_credits(${\ $id->('metered')}, 1000000)");
my $holder = session('postgres', 'holder');
run_sql($holder, 'BEGIN');
is((run_sql($holder, "SELECT status FROM apikey.authenticate(${\ $key->('metered')})"))[0], 'valid',
	'metered: the holder authenticated (and holds the credits row)');
my $waiter = session('postgres', 'waiter');
run_sql($waiter, 'BEGIN');
send_sql($waiter, "SELECT status FROM apikey.authenticate(${\ $key->('metered')}); INSERT INTO writes VALUES (3);");
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'waiter' AND wait_event_type = 'Lock'}),
	'  ... the waiter waits on the credits row inside authenticate');
run_sql($revoker, "SELECT apikey.revoke_key(${\ $id->('metered')}, terminate => true)");
usleep(300_000);
run_sql($holder, 'ROLLBACK');
ok(defined wait_error($waiter, qr/ERROR/, 10), '  ... the holder rolled back, the waiter goes on');
like($waiter->{stderr}, qr/ERROR:  28000: API key rejected: revoked/,
	'  ... and its authentication, completed after the kill, is refused');
($out, $err) = run_sql($waiter, 'COMMIT');
is($node->safe_psql('postgres', 'SELECT count(*) FROM writes WHERE x = 3'), '0',
	'  ... nothing it wrote is committed');

# the same with a REPEATABLE READ snapshot taken before the kill
my $rr = session('postgres', 'rr');
run_sql($rr, 'BEGIN ISOLATION LEVEL REPEATABLE READ');
run_sql($rr, 'SELECT 1');
run_sql($revoker, "SELECT apikey.revoke_key(${\ $id->('snapshot')}, terminate => true)");
($out, $err) = run_sql($rr, "SELECT status FROM apikey.authenticate(${\ $key->('snapshot')})");
like($err, qr/ERROR:  28000: API key rejected: revoked/,
	'REPEATABLE READ: a key terminated after the snapshot does not authenticate');
run_sql($rr, 'ROLLBACK');
($out, $err) = run_sql($rr, "SELECT status FROM apikey.authenticate(${\ $key->('bystander')})");
is($err, '', '  ... while another key does, in the next transaction');

# 2. a revocation rolled back, or rolled back to a savepoint, cancels nothing
my $kept = session('postgres', 'kept');
run_sql($kept, 'BEGIN');
is((run_sql($kept, "SELECT status FROM apikey.authenticate(${\ $key->('kept')})"))[0], 'valid',
	'kept: authenticated');
send_sql($kept, "SELECT pg_sleep(1.5), 'kept slept';");
ok(wait_active(1, q{'kept'}), 'its statement is in flight');
($out, $err) = run_sql($revoker, "BEGIN; SELECT apikey.revoke_key(${\ $id->('kept')}, terminate => true); ROLLBACK;");
is($err, '', 'a revocation with terminate => true, rolled back');
($out, $err) = run_sql($revoker, "BEGIN; SAVEPOINT s; SELECT apikey.revoke_key(${\ $id->('kept')}, terminate => true);"
	. " ROLLBACK TO s; COMMIT;");
is($err, '', 'one rolled back to a savepoint, in a transaction that commits');
($out, $err) = run_sql($kept, 'COMMIT');
is($err, '', 'the statement in flight completed and its transaction commits');
like($out, qr/kept slept/, '  ... with its result');
is(key_status($node, 'postgres', 'kept'), 'valid', 'the key is still valid');

# 3. a statement that catches the cancel: the transaction still cannot go on
my $catcher = session('postgres', 'catcher');
run_sql($catcher, 'BEGIN');
run_sql($catcher, "SELECT status FROM apikey.authenticate(${\ $key->('catcher')})");
send_sql($catcher, q{DO $$ BEGIN PERFORM pg_sleep(5); EXCEPTION WHEN query_canceled THEN RAISE NOTICE 'caught'; END $$;});
ok(wait_active(1, q{'catcher'}), 'catcher: its statement is in flight');
run_sql($revoker, "SELECT apikey.revoke_key(${\ $id->('catcher')}, terminate => true)");
ok(defined wait_error($catcher, qr/NOTICE:  00000: caught/, 5), 'a statement catching the cancel gets it');
($out, $err) = run_sql($catcher, 'SELECT 1');
like($err, qr/ERROR: .*revoked/, '  ... and its transaction cannot run another statement');
run_sql($catcher, 'ROLLBACK');
($out, $err) = run_sql($catcher, "SELECT pg_sleep(0.5), 'after'");
is($err, '', '  ... while the session\'s next transaction runs undisturbed');

# 4. a leak report terminates the leaked key's transactions too
my $leaky = session('postgres', 'leaky');
run_sql($leaky, 'BEGIN');
run_sql($leaky, "SELECT status FROM apikey.authenticate(${\ $key->('leaky')})");
send_sql($leaky, 'SELECT pg_sleep(60);');
ok(wait_active(1, q{'leaky'}), 'leaky: its statement is in flight');
($out, $err) = run_sql($revoker, "SELECT apikey.report_leak(${\ $key->('leaky')}, 'https://example.com')");
is($out, 'revoked', 'report_leak revokes the key');
$waited = wait_error($leaky, qr/canceling statement/, 10);
ok(defined $waited && $waited < 1.0, 'and its statement in flight is cancelled within a second');
run_sql($leaky, 'ROLLBACK');

# 5. a revocation that terminates cannot be prepared (it would commit elsewhere)
($out, $err) = run_sql($revoker, "BEGIN; SELECT apikey.revoke_key(${\ $id->('prepared')}, terminate => true);"
	. " PREPARE TRANSACTION 'revoke';");
like($err, qr/cannot prepare a transaction that revoked a key with terminate => true/,
	'PREPARE TRANSACTION of a terminating revocation is refused');
is(key_status($node, 'postgres', 'prepared'), 'valid', '  ... and the key stays valid');

# ... nor a transaction of a terminated key (it would commit later)
$node->safe_psql('postgres', q{
	INSERT INTO test_keys SELECT 'preparer', key_id, api_key FROM apikey.create_key('acme', 'production', 'preparer')});
my $preparer = session('postgres', 'preparer');
run_sql($preparer, 'BEGIN');
run_sql($preparer, "SELECT status FROM apikey.authenticate(${\ $key->('preparer')})");
run_sql($preparer, 'INSERT INTO writes VALUES (5)');
run_sql($revoker, "SELECT apikey.revoke_key(${\ $id->('preparer')}, terminate => true)");
($out, $err) = run_sql($preparer, "PREPARE TRANSACTION 'preparer'");
like($err, qr/ERROR:  28000: the API key this transaction authenticated with was revoked/,
	'PREPARE TRANSACTION of a terminated key\'s transaction is refused');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'preparer'}), '0',
	'  ... nothing is prepared');
is($node->safe_psql('postgres', 'SELECT count(*) FROM writes WHERE x = 5'), '0', '  ... nor written');
$preparer->quit;

# 5b. a function called through the fast-path protocol runs no statement:
# a large object read with libpq's lo_* calls (psql's \lo_export; the
# first, before the kill, lets libpq look up the functions with a query)
my $lo = $node->safe_psql('postgres', q{SELECT lo_from_bytea(0, '\x73656372657420646f63756d656e74')});
$node->safe_psql('postgres', q{
	INSERT INTO test_keys SELECT 'exporter', key_id, api_key FROM apikey.create_key('acme', 'production', 'exporter')});
my $lo_file = PostgreSQL::Test::Utils::tempdir() . '/lo';
my $exporter = session('postgres', 'exporter');
($out, $err) = run_sql($exporter, "\\lo_export $lo '$lo_file.before'");
is($err, '', 'exporter: a large object exported');
run_sql($exporter, 'BEGIN');
run_sql($exporter, "SELECT status FROM apikey.authenticate(${\ $key->('exporter')})");
run_sql($revoker, "SELECT apikey.revoke_key(${\ $id->('exporter')}, terminate => true)");
($out, $err) = run_sql($exporter, "\\lo_export $lo '$lo_file.after'");
like($err, qr/revoked/, '  ... and after the kill, a fast-path read of it is refused');
ok(!-s "$lo_file.after", '  ... and nothing of it is read');
$exporter->quit;

# 6. the race under load: 8 clients authenticate with a metered key (each
# waits for the credits row the others hold) and write; the key is
# terminated in the middle.  No transaction may write after the kill.
$node->safe_psql('postgres', q{
	CREATE TABLE after_kill (at timestamptz); GRANT ALL ON after_kill TO PUBLIC;
	INSERT INTO test_keys SELECT 'hammered', key_id, api_key FROM apikey.create_key('acme', 'production', 'hammered')});
$node->safe_psql('postgres', "SELECT apikey.set_credits(${\ $id->('hammered')}, 1000000)");
my $script = PostgreSQL::Test::Utils::tempdir() . '/hammer.sql';
PostgreSQL::Test::Utils::append_to_file($script, qq{BEGIN;
SELECT status FROM apikey.authenticate(${\ $key->('hammered')});
SELECT pg_sleep(0.02);
INSERT INTO after_kill SELECT clock_timestamp();
COMMIT;
});
my ($pgb_out, $pgb_err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '--no-vacuum', '--client=8', '--jobs=8', '--time=4', '--file', $script,
	  $node->connstr('postgres') ],
	'>', \$pgb_out, '2>', \$pgb_err);
usleep(1_500_000);
# the time right after the commit, from the revoker's next statement
my ($killed_at) = run_sql($revoker,
	"SELECT apikey.revoke_key(${\ $id->('hammered')}, terminate => true) \\g /dev/null\nSELECT clock_timestamp();");
$pgbench->finish;
my ($before, $after) = split /\|/, $node->safe_psql('postgres',
	"SELECT count(*) FILTER (WHERE at < '$killed_at'), count(*) FILTER (WHERE at >= '$killed_at') FROM after_kill");
diag("pgbench: $pgb_err") if $pgb_err ne "" && $before == 0;
ok($before > 0, "8 clients hammering the metered key: $before transactions committed before the kill");
is($after, '0', '  ... and none wrote after it (the kill was in their way, under load)');

# 7. the table of recent kills overflows (more kills in a bucket than it
# holds while a transaction older than them runs, which any role that may
# connect can keep open): the keys of other tenants still authenticate,
# and a key killed after an open snapshot read it is still refused (the
# first one terminated: its entry is most likely overwritten).
$node->safe_psql('postgres', q{
	SELECT apikey.create_tenant('other');
	INSERT INTO test_keys
		SELECT 'unrelated ' || g, key_id, api_key
		  FROM generate_series(1, 40) AS g, apikey.create_key('other', 'production', 'unrelated ' || g);
	INSERT INTO test_keys SELECT 'stale', key_id, api_key FROM apikey.create_key('acme', 'production', 'stale');
	CREATE ROLE nobody LOGIN;
	CREATE FUNCTION authenticates(api_key text) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		RETURN (SELECT status = 'valid' FROM apikey.authenticate(api_key));
	EXCEPTION WHEN invalid_authorization_specification THEN
		RETURN false;
	END $$;
});
$node->safe_psql('postgres', q{
	SELECT count(*) FROM generate_series(1, 12000) AS g, apikey.create_key('acme', 'production', 'mass ' || g)});
my $old = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'nobody' ]);
$old->query_safe('BEGIN');
$old->query_safe('SELECT pg_current_xact_id()');
my $stale = session('postgres', 'stale');
run_sql($stale, 'BEGIN ISOLATION LEVEL REPEATABLE READ');
run_sql($stale, 'SELECT count(*) FROM test_keys');
($out, $err) = run_sql($revoker, q{
	SELECT count(apikey.revoke_key(key_id, 'mass revocation', terminate => true))
	  FROM (SELECT key_id FROM apikey.keys WHERE name LIKE 'mass %' OR name = 'stale'
	         ORDER BY name = 'stale' DESC, key_id) AS k});
is($out, '12001', 'one transaction terminates 12001 keys: more than the table of recent kills holds');
# each in a transaction of its own (a refusal stops the transaction)
my $valid = grep {
	my ($ret, $stdout) = $node->psql('postgres', "SELECT authenticates(${\ $key->(qq{unrelated $_})})");
	$ret == 0 && $stdout eq 't'
} 1 .. 40;
is($valid, 40, '  ... while an older transaction is open, 40 keys of another tenant authenticate');
($out, $err) = run_sql($stale, "SELECT status FROM apikey.authenticate(${\ $key->('stale')})");
like($err, qr/ERROR:  28000: API key rejected: revoked/,
	'  ... and one of the terminated keys, read with a snapshot older than the kill, is refused');
run_sql($stale, 'ROLLBACK');
$old->quit;

$_->quit for ($revoker, $victim, $bystander, $plain, $elsewhere, @idle, $committer, $kept, $catcher, $leaky, $comeback, $cursor, $holder, $waiter, $rr, $stale);
done_testing();
