# Revocations with pg_auto_failover (Debian's postgresql-NN-auto-failover):
# a monitor and two nodes running apikey.  Skipped where pg_autoctl and the
# monitor's extension are not installed for this PostgreSQL version.
#
# With pg_auto_failover's defaults (replication-quorum true: the standby is
# synchronous, synchronous_standby_names = 'ANY 1 (...)'), a revocation from
# a session with synchronous_commit = local is refused on the secondary when
# it returns; a secondary session authenticated with a key revoked with
# terminate => true is cancelled; after `pg_autoctl perform failover` the new
# primary keeps both revocations.
use strict;
use warnings;
use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $bindir = `pg_config --bindir`;
chomp $bindir;
my ($major) = `pg_config --version` =~ /PostgreSQL (\d+)/;
my $autoctl = `command -v pg_autoctl 2>/dev/null`;
chomp $autoctl;
my $sysbin = "/usr/lib/postgresql/$major/bin";
my $socket = '/var/run/postgresql';
plan skip_all => "pg_autoctl or the pgautofailover extension for PostgreSQL $major is not installed"
	unless $autoctl && -x "$sysbin/pg_ctl"
	&& -f "/usr/share/postgresql/$major/extension/pgautofailover.control";
plan skip_all => "$socket is not writable (pg_autoctl's nodes put their socket there)"
	unless -d $socket && -w $socket;

my $work = PostgreSQL::Test::Utils::tempdir();
$ENV{HOME} = $work;
$ENV{XDG_CONFIG_HOME} = "$work/config";
$ENV{XDG_DATA_HOME} = "$work/data";
$ENV{XDG_RUNTIME_DIR} = "$work/run";
mkdir "$work/run";
$ENV{PGHOST} = $socket;
delete $ENV{$_} for qw(PGPORT PGDATA PGDATABASE PGUSER);
my %port = map { $_ => PostgreSQL::Test::Cluster::get_free_port() } qw(monitor n1 n2);
my $monitor_uri = "postgres://autoctl_node\@localhost:$port{monitor}/pg_auto_failover?sslmode=disable";
my @started;

sub autoctl
{
	my ($log, @args) = @_;
	my $ok = IPC::Run::run([ $autoctl, @args ], '>', "$work/$log.log", '2>&1');
	return $ok;
}
sub service
{
	my ($name) = @_;
	system("$autoctl run --pgdata $work/$name >$work/$name.run.log 2>&1 &");
	push @started, $name;
}
sub psql
{
	my ($node, $sql) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ "$bindir/psql", '-X', '-At', '-v', 'VERBOSITY=verbose', '-h', $socket,
		'-p', $port{$node}, '-d', 'postgres', '-c', $sql ], '>', \$out, '2>', \$err);
	chomp $out;
	return wantarray ? ($out, $err) : $out;
}
sub state_is
{
	my ($re) = @_;
	for (1 .. 120)
	{
		my $state = '';
		IPC::Run::run([ $autoctl, 'show', 'state', '--pgdata', "$work/monitor" ], '>', \$state, '2>', \my $e);
		return 1 if $state =~ $re;
		sleep 1;
	}
	return 0;
}
END
{
	# the nodes' services first, the monitor's last
	for my $name (reverse @started)
	{
		system("$autoctl stop --pgdata $work/$name >/dev/null 2>&1");
	}
}

ok(autoctl('monitor.create', 'create', 'monitor', '--pgdata', "$work/monitor", '--pgport', $port{monitor},
	'--hostname', 'localhost', '--listen', 'localhost', '--auth', 'trust', '--no-ssl',
	'--pgctl', "$sysbin/pg_ctl"), 'the monitor is created');
service('monitor');
sleep 2;
my @node = ('--hostname', 'localhost', '--listen', 'localhost', '--auth', 'trust', '--no-ssl',
	'--monitor', $monitor_uri, '--pgctl', "$bindir/pg_ctl");
ok(autoctl('n1.create', 'create', 'postgres', '--pgdata', "$work/n1", '--pgport', $port{n1},
	'--name', 'n1', @node), 'node 1 is created');
service('n1');
ok(state_is(qr/n1 .*\| +single \| +single/), 'node 1 runs alone');
my ($out, $err);
for (1 .. 30)
{
	($out, $err) = psql('n1', q{ALTER SYSTEM SET shared_preload_libraries = 'apikey'});
	last if $out eq 'ALTER SYSTEM' || $err eq '';
	sleep 1;
}
is($err, '', 'node 1: apikey preloaded (ALTER SYSTEM)');
system("$bindir/pg_ctl -D $work/n1 -m fast -w restart -l $work/n1.pg.log >/dev/null");
for (1 .. 30)
{
	last if psql('n1', 'SHOW shared_preload_libraries') eq 'apikey';
	sleep 1;
}
is(psql('n1', 'SHOW shared_preload_libraries'), 'apikey', 'node 1 restarted with apikey');
($out, $err) = psql('n1', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{sync,victim,other}'::text[]) AS label,
		       apikey.create_key('acme', 'production', label);
});
is($err, '', 'node 1: apikey installed, keys created');
ok(autoctl('n2.create', 'create', 'postgres', '--pgdata', "$work/n2", '--pgport', $port{n2},
	'--name', 'n2', @node), 'node 2 is created');
service('n2');
ok(state_is(qr/n1 .*\| +primary \| +primary.*\n.*n2 .*\| +secondary \| +secondary/), 'node 1 primary, node 2 secondary');
like(psql('n1', 'SHOW synchronous_standby_names'), qr/^ANY 1 /, 'pg_auto_failover made the secondary synchronous');
is(psql('n2', 'SHOW shared_preload_libraries'), 'apikey', 'node 2 preloads apikey (copied from node 1)');

my $status = sub {
	psql($_[0], "SELECT status FROM apikey.verify((SELECT api_key FROM test_keys WHERE label = '$_[1]'))");
};
psql('n1', q{SET synchronous_commit = local;
	SELECT apikey.revoke_key((SELECT key_id FROM test_keys WHERE label = 'sync'))});
is($status->('n2', 'sync'), 'revoked', 'the secondary refuses the key when the revocation returns');

# the kill switch on the secondary
my ($vout, $verr) = ('', '');
my $victim = IPC::Run::start([ "$bindir/psql", '-X', '-At', '-v', 'VERBOSITY=verbose', '-h', $socket,
	'-p', $port{n2}, '-d', 'postgres',
	'-c', 'BEGIN',
	'-c', q{SELECT status FROM apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'victim'))},
	'-c', 'SELECT pg_sleep(30)' ], '>', \$vout, '2>', \$verr);
my $t = time;
usleep(50_000) until psql('n2', q{SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'}) eq '1' || time - $t > 20;
my $t0 = time;
psql('n1', q{SELECT apikey.revoke_key((SELECT key_id FROM test_keys WHERE label = 'victim'), 'incident', terminate => true)});
my $returned = time;
$victim->pump_nb() while $victim->pumpable && time - $returned < 10 && usleep(2_000) >= 0;
my $ended = time;
$victim->finish;
like($verr, qr/57014: canceling statement due to user request\n(.*\n)?DETAIL:  The API key this transaction authenticated with was revoked with terminate => true/,
	'the secondary\'s session of the key is cancelled');
ok($ended - $returned < 1,
	sprintf('... %.0f ms after the revocation returned on the primary (it took %.0f ms)',
		1000 * ($ended - $returned), 1000 * ($returned - $t0)));

ok(autoctl('failover', 'perform', 'failover', '--pgdata', "$work/monitor"), 'pg_autoctl perform failover');
ok(state_is(qr/n2 .*\| +primary \| +primary/), 'node 2 is the primary');
is(psql('n2', 'SELECT pg_is_in_recovery()'), 'f', 'node 2 is out of recovery');
is($status->('n2', 'sync'), 'revoked', 'after the failover: the key revoked stays revoked');
is($status->('n2', 'victim'), 'revoked', 'after the failover: the key revoked with terminate stays revoked');
is($status->('n2', 'other'), 'valid', 'after the failover: the other key is valid');

done_testing();
