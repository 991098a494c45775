# No key text in the server log from a deadlock between credit charges.
#
# A deadlock's DETAIL quotes the statement of every process in the cycle,
# however the statement itself is kept out of the log.  Two transactions
# each charge one metered key and then the other's, with the key text
# written into the SQL (as psql's variables and psycopg2 send it): while a
# charge waits, apikey shows a text of its own as the backend's activity,
# so neither the DETAIL nor pg_stat_activity holds the key.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use ApikeyTAP;

my $node = new_node('deadlock_log', conf => "deadlock_timeout = '200ms'\nlog_min_error_statement = error\napikey.environment = 'production'");
$node->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{one,two}'::text[]) AS label, apikey.create_key('acme', 'production', label);
	SELECT apikey.set_credits(key_id, 1000) FROM test_keys;
});

# a session with the key texts in psql variables: :'one' and :'two' put
# them into the SQL text as literals, and this script never holds them
sub session
{
	my ($name) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->query_safe("SET application_name = '$name'");
	$s->query_safe(q{SELECT max(api_key) FILTER (WHERE label = 'one') AS one,
	                        max(api_key) FILTER (WHERE label = 'two') AS two FROM test_keys \gset});
	return $s;
}
my $sa = session('a');
my $sb = session('b');
my $log_start = -s $node->logfile;

$sa->query_safe('BEGIN');
$sa->query_safe(q{SELECT status FROM apikey.authenticate(:'one')});
$sb->query_safe('BEGIN');
$sb->query_safe(q{SELECT status FROM apikey.authenticate(:'two')});
# a waits for two's credits row, which b holds
$sa->{stdin} .= qq{SELECT status FROM apikey.verify(:'two');\n};
$sa->{run}->pump_nb();
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'a' AND wait_event_type = 'Lock'}),
	'a charge waits on the row lock of the other key');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity AS s, test_keys AS k
	 WHERE s.application_name = 'a' AND strpos(s.query, substr(k.api_key, 9)) > 0}),
	'0', '  ... and its activity, in pg_stat_activity, holds no key text');
like($node->safe_psql('postgres', q{SELECT query FROM pg_stat_activity WHERE application_name = 'a'}),
	qr/apikey: charging/, '  ... but what it does');
# b closes the cycle
$sb->{stderr} = '';
$sb->{stdin} .= qq{SELECT status FROM apikey.verify(:'one');\n};
$sb->{run}->pump_nb();
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name IN ('a', 'b') AND wait_event_type = 'Lock'}),
	'the deadlock is broken');
$sa->query('ROLLBACK');
$sb->query('ROLLBACK');

my $log = slurp_file($node->logfile, $log_start);
like($log, qr/deadlock detected/, 'the server log has the deadlock');
like($log, qr/DETAIL:  Process \d+ waits for ShareLock on transaction/, '  ... and its DETAIL');
my @secrets = split /\n/, $node->safe_psql('postgres', 'SELECT api_key FROM test_keys ORDER BY label');
# the key text, its secret part, or any 12-character piece of it
my @found = grep { my $k = $_; grep { index($log, substr($k, $_, 12)) >= 0 } 8 .. length($k) - 12 } @secrets;
is(scalar @found, 0, 'no key text, nor any 12-character piece of one, in the server log');
like($log, qr/Process \d+: -- apikey: charging/, '  ... the DETAIL names the charge instead');

# A charge that fails (here on lock_timeout) puts the activity back too:
# caught in a savepoint, the rest of the statement shows as itself, and so
# does the session once idle, not as a charge that is over.
$node->safe_psql('postgres', q{
	CREATE FUNCTION try_auth(label text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
		BEGIN
			PERFORM apikey.authenticate((SELECT api_key FROM test_keys AS t WHERE t.label = try_auth.label));
		EXCEPTION WHEN lock_not_available THEN
			NULL;
		END;
		RETURN (SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid());
	END $$;
});
# a fresh session holds two's credits row (a and b may still be reporting
# the deadlock)
my $sd = session('d');
$sd->query_safe('BEGIN');
$sd->query_safe(q{SELECT status FROM apikey.authenticate(:'two')});
like($node->safe_psql('postgres', q{SET lock_timeout = '200ms';
	SELECT try_auth('two') AS after_the_failed_charge;}),
	qr/after_the_failed_charge/, 'a charge that failed in a savepoint: the statement shows as itself again');
my $sc = $node->background_psql('postgres', on_error_stop => 0);
$sc->query_safe("SET application_name = 'c'");
$sc->query_safe("SET lock_timeout = '200ms'");
$sc->query(q{SELECT status AS charge_that_times_out FROM apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'two'))});
like($node->safe_psql('postgres', q{SELECT state || ': ' || query FROM pg_stat_activity WHERE application_name = 'c'}),
	qr/^idle: .*charge_that_times_out/, '  ... and one that failed the statement: the idle session shows its statement');
$sd->query('ROLLBACK');

$_->quit for ($sa, $sb, $sc, $sd);
done_testing();
