# Crash recovery in the middle of a burst of key management.
#
# Three clients create, roll and revoke keys, each change in its own
# transaction (and every fifth key created, rolled and revoked in a single
# transaction), while the postmaster is killed with SIGKILL (a client that
# has already finished its script by then is fine too).  A client logs
# what it received only after COMMIT returned, and logs what it is about to
# do before it starts, so after recovery we know, per key, what committed for
# sure and what was in flight (either outcome is then acceptable, but it
# must be all or nothing and the audit trail must agree).  After recovery:
# every key text a client received verifies (or is revoked, when its revoke
# committed); a rolled key's old text no longer verifies; no key exists
# without its 'created' audit event and no 'created' event without its key;
# each key's audit events count exactly its committed changes; the primary
# key index is intact (amcheck).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use ApikeyTAP;

my $clients    = 3;
my $iterations = 400;    # more than fit before the kill

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
# durable commits, as in production (the cluster module turns fsync off)
$node->append_conf('postgresql.conf', "log_statement = none\nfsync = on\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	CREATE EXTENSION amcheck;
	SELECT apikey.create_tenant('acme');
});

# One psql script per client.  ON_ERROR_STOP: the first failure (the crash)
# ends the client, so nothing is logged for an unacknowledged commit.
my $dir = PostgreSQL::Test::Utils::tempdir;
# the clients' output holds key texts: never leave it behind, pass or fail
END { unlink glob("$dir/client*.out"), "$dir/texts.tsv" if $dir; }
my @runs;
for my $c (1 .. $clients)
{
	my $script = "\\set ON_ERROR_STOP 1\n";
	for my $i (1 .. $iterations)
	{
		my $name = "c$c i$i";
		if ($i % 5 == 0)
		{
			$script .= <<"SQL";
\\echo start bundle $name
BEGIN;
SELECT key_id AS kid FROM apikey.create_key('acme', 'production', 'bundle $name') \\gset
SELECT apikey.roll_key(:'kid') AS key \\gset
SELECT 1 FROM apikey.revoke_key(:'kid', 'bundled') \\g /dev/null
COMMIT;
\\echo bundle :kid :key
SQL
			next;
		}
		$script .= <<"SQL";
\\echo start create $name
BEGIN;
SELECT key_id AS kid, api_key AS key FROM apikey.create_key('acme', 'production', 'key $name') \\gset
COMMIT;
\\echo created :kid :key
SQL
		$script .= <<"SQL" if $i % 2 == 0;
\\echo start roll :kid
BEGIN;
SELECT apikey.roll_key(:'kid') AS key \\gset
COMMIT;
\\echo rolled :kid :key
SQL
		$script .= <<"SQL" if $i % 3 == 0;
\\echo start revoke :kid
BEGIN;
SELECT 1 FROM apikey.revoke_key(:'kid', 'crash test') \\g /dev/null
COMMIT;
\\echo revoked :kid
SQL
	}
	PostgreSQL::Test::Utils::append_to_file("$dir/client$c.sql", $script);
	my ($out, $err) = ("$dir/client$c.out", "$dir/client$c.err");
	push @runs, IPC::Run::start(
		[ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-f', "$dir/client$c.sql" ],
		'>', $out, '2>', $err);
}

# let the burst run, then kill the postmaster (not a shutdown of any kind)
$node->poll_query_until('postgres', 'SELECT count(*) >= 300 FROM apikey.audit WHERE key_id IS NOT NULL')
  or die 'the clients made no progress';
my ($pid) = slurp_file($node->data_dir . '/postmaster.pid') =~ /^(\d+)/;
my @children = grep { parent_of($_) == $pid } map { m{/proc/(\d+)$} ? $1 : () } glob('/proc/[0-9]*');
ok(kill('KILL', $pid), 'postmaster killed with SIGKILL');
$node->{_pid} = undef;    # the module must not try to stop it
my @exit = map { $_->finish; $_->result } @runs;
# a client was cut off by the crash (its connection lost) or, if it was
# quick, had already run its whole script; nothing else may have ended one
my @ends;
for my $c (1 .. $clients)
{
	my $err = slurp_file("$dir/client$c.err");
	push @ends,
	    $exit[ $c - 1 ] == 0 ? 'finished'
	  : $err =~ /server closed the connection unexpectedly|unexpected postmaster exit|connection to server was lost|no connection to the server/
	  ? 'cut off'
	  : 'exit ' . $exit[ $c - 1 ] . ' without losing its connection';
}
is(scalar(grep { $_ ne 'cut off' && $_ ne 'finished' } @ends), 0,
	'every client was cut off by the crash or had finished (' . join(', ', @ends) . ')');

# its orphaned children must be gone before a new postmaster may start
for (1 .. 300)
{
	last unless grep { -e "/proc/$_" } @children;
	select(undef, undef, undef, 0.1);
}
$node->start;
ok($node->log_contains('database system was interrupted|not properly shut down'),
	'the server went through crash recovery');

# What the clients were told (kid => text and what happened) and what was in
# flight.  The texts go into a table of the recovered database, never into SQL.
my (%key, %inflight, @texts);
for my $c (1 .. $clients)
{
	my $last;
	for (split /\n/, slurp_file("$dir/client$c.out"))
	{
		my ($what, @f) = split / /;
		if ($what eq 'start') { $last = [@f]; next; }
		if ($what eq 'created') { $key{$f[0]} = { text => $f[1] }; }
		elsif ($what eq 'rolled')
		{
			$key{$f[0]}{old} = $key{$f[0]}{text};
			$key{$f[0]}{text} = $f[1];
			$key{$f[0]}{rolled} = 1;
		}
		elsif ($what eq 'revoked') { $key{$f[0]}{revoked} = 1; }
		elsif ($what eq 'bundle')
		{
			$key{$f[0]} = { text => $f[1], rolled => 1, revoked => 1 };
		}
		else { die "unexpected client output line from client $c" }
		$last = undef;
	}
	$inflight{"c$c"} = $last if $last;
}
open my $tsv, '>', "$dir/texts.tsv" or die;
for my $kid (sort keys %key)
{
	print $tsv "$kid\tcurrent\t$key{$kid}{text}\n";
	print $tsv "$kid\told\t$key{$kid}{old}\n" if $key{$kid}{old};
}
close $tsv;
unlink map { "$dir/client$_.out" } 1 .. $clients;
$node->safe_psql('postgres', qq{
	CREATE TABLE received (kid text, which text, api_key text);
	COPY received FROM '$dir/texts.tsv';
});
unlink "$dir/texts.tsv";
note(scalar(keys %key) . ' keys acknowledged, in flight: '
	  . join(', ', map { "$_: @{$inflight{$_}}" } sort keys %inflight));
cmp_ok(scalar(keys %key), '>=', 30, 'the clients had created keys before the crash');

my %status = map { my ($k, $w, $s) = split /\|/; ("$k $w" => $s) } split /\n/,
  $node->safe_psql('postgres', 'SELECT kid, which, status FROM received, apikey.verify(api_key)');
my %events = map { my ($k, @n) = split /\|/; ($k => \@n) } split /\n/,
  $node->safe_psql('postgres', q{
	SELECT key_id, count(*) FILTER (WHERE action = 'created'),
	       count(*) FILTER (WHERE action = 'rolled'), count(*) FILTER (WHERE action = 'revoked'),
	       count(*) FROM apikey.audit WHERE key_id IS NOT NULL GROUP BY key_id});

# per acknowledged key: its status and its audit events
my %flight_kid = map { $_->[0] eq 'roll' || $_->[0] eq 'revoke' ? ($_->[1] => $_->[0]) : () } values %inflight;
my @wrong;
for my $kid (sort keys %key)
{
	my $k = $key{$kid};
	my $flight = $flight_kid{$kid} // '';
	my $st = $status{"$kid current"} // 'missing';
	my ($created, $rolled, $revoked, $total) = @{ $events{$kid} // [ 0, 0, 0, 0 ] };
	my ($want_rolled, $want_revoked) = ($k->{rolled} ? 1 : 0, $k->{revoked} ? 1 : 0);
	if ($flight eq 'roll')
	{
		# the roll may have committed unacknowledged: then the text is dead
		$want_rolled = $st eq 'not_found' ? 1 : 0;
		$st = 'valid' if $st eq 'not_found';
	}
	elsif ($flight eq 'revoke')
	{
		$want_revoked = $st eq 'revoked' ? 1 : 0;
		$st = 'valid' if $st eq 'revoked';
	}
	my $want = $k->{revoked} ? 'revoked' : 'valid';
	push @wrong, "$kid: received text is $st, expected $want" if $st ne $want;
	push @wrong, "$kid: text before the roll is " . $status{"$kid old"}
	  if $k->{old} && $status{"$kid old"} ne 'not_found';
	push @wrong, "$kid: audit created/rolled/revoked/total $created/$rolled/$revoked/$total, expected 1/$want_rolled/$want_revoked"
	  if $created != 1 || $rolled != $want_rolled || $revoked != $want_revoked
	  || $total != 1 + $rolled + $revoked;
}
is(join("\n", @wrong), '', 'every acknowledged key verifies as acknowledged and its audit trail counts its committed changes');

# keys nobody was told about: only an in-flight creation that committed, whole
my %flight_name = map { $_->[0] eq 'create' || $_->[0] eq 'bundle' ? ("$_->[1] $_->[2]" => $_->[0]) : () } values %inflight;
my @unacked = split /\n/, $node->safe_psql('postgres', q{
	SELECT k.key_id, k.name, k.revoked_at IS NOT NULL, k.rolled_at IS NOT NULL
	  FROM apikey.keys AS k WHERE k.key_id::text NOT IN (SELECT kid FROM received)});
@wrong = ();
for (@unacked)
{
	my ($kid, $name, $is_revoked, $is_rolled) = split /\|/;
	my ($kind, $who) = $name =~ /^(key|bundle) (c\d+ i\d+)$/ or push(@wrong, "$kid: unexpected name"), next;
	my $flight = $flight_name{$who} // '';
	my ($created, $rolled, $revoked, $total) = @{ $events{$kid} // [ 0, 0, 0, 0 ] };
	if ($kind eq 'key' && $flight eq 'create')
	{
		push @wrong, "$kid: in-flight creation with audit $created/$rolled/$revoked/$total"
		  if "$created/$rolled/$revoked/$total" ne '1/0/0/1' || $is_revoked eq 't' || $is_rolled eq 't';
	}
	elsif ($kind eq 'bundle' && $flight eq 'bundle')
	{
		push @wrong, "$kid: in-flight bundle half done: audit $created/$rolled/$revoked/$total"
		  if "$created/$rolled/$revoked/$total" ne '1/1/1/3' || $is_revoked ne 't' || $is_rolled ne 't';
	}
	else { push @wrong, "$kid ($name) exists but was neither acknowledged nor in flight"; }
}
is(join("\n", @wrong), '', 'unacknowledged keys are only whole in-flight creations (' . scalar(@unacked) . ')');

# the table and the audit trail agree as a whole
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM apikey.keys AS k WHERE NOT EXISTS
	          (SELECT FROM apikey.audit AS a WHERE a.key_id = k.key_id AND a.action = 'created')),
	       (SELECT count(*) FROM apikey.audit AS a WHERE a.action = 'created' AND NOT EXISTS
	          (SELECT FROM apikey.keys AS k WHERE k.key_id = a.key_id)),
	       (SELECT count(*) FROM apikey.audit AS a JOIN apikey.keys AS k USING (key_id)
	         WHERE a.action = 'rolled' AND a.event_id = (SELECT max(event_id) FROM apikey.audit AS b
	                 WHERE b.key_id = k.key_id AND b.action = 'rolled')
	           AND a.details->>'hint' IS DISTINCT FROM k.hint)}),
	'0|0|0', 'no key without its created event, no created event without its key, last roll hint is the key hint');

is($node->safe_psql('postgres', q{
	SELECT bt_index_parent_check('apikey.keys_pkey', true), bt_index_parent_check('apikey.audit_pkey', true);
	CREATE TABLE after_crash AS SELECT api_key FROM apikey.create_key('acme', 'production', 'after the crash');
	SELECT v.status FROM after_crash, apikey.verify(api_key) AS v}),
	"|\nvalid", 'indexes intact (amcheck), and a key created after recovery verifies');

$node->stop;
done_testing();

# parent process id of a process, or 0 when it is gone
sub parent_of
{
	my ($p) = @_;
	open my $fh, '<', "/proc/$p/stat" or return 0;
	my $stat = <$fh> // '';
	return $stat =~ /\) \S (\d+)/ ? $1 : 0;
}
