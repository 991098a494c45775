# Shared by the TAP tests of apikey (test/t/*.pl).
#
# Key texts are secrets even in tests: they are kept in a table of the
# database under test (test_keys) and always referred to through it, so no
# SQL text, no failure message and no server log line ever contains one.
package ApikeyTAP;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(new_node key_status new_session run_sql send_sql wait_error);

# A started node with settings for these tests: statements are not logged
# (the cluster module logs them all by default).  conf => "..." adds more
# settings; the other parameters go to init.
sub new_node
{
	my ($name, %params) = @_;
	my $conf = delete $params{conf} // '';
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%params);
	$node->append_conf('postgresql.conf', "log_statement = none\n$conf\n");
	$node->start;
	return $node;
}

# The verification status of test_keys' key with this label, with verify's
# other arguments given as SQL (e.g. "'production', 'orders:read'").
sub key_status
{
	my ($node, $db, $label, $args) = @_;
	$args = defined $args ? ", $args" : '';
	return $node->safe_psql($db,
		"SELECT status FROM apikey.verify((SELECT api_key FROM test_keys WHERE label = '$label')$args)");
}

# A psql session on the node whose statements may fail without ending it,
# errors with their SQLSTATE (VERBOSITY verbose).  db => the database
# (postgres), name => its application_name, user => the role to connect as.
sub new_session
{
	my ($node, %o) = @_;
	my $s = $node->background_psql($o{db} // 'postgres', on_error_stop => 0,
		defined $o{user} ? (extra_params => [ '-U', $o{user} ]) : ());
	$s->query_safe("SET application_name = '$o{name}'") if defined $o{name};
	$s->query_safe('\\set VERBOSITY verbose');
	return $s;
}

# A statement of a session to its end: (output, errors).
sub run_sql
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

# A statement sent to a session without waiting for it.
sub send_sql
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	$s->{stdin} .= "$sql\n";
	$s->{run}->pump_nb();
	return;
}

# Seconds until the session's errors match $re, or undef after $limit seconds.
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

1;
