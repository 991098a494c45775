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

our @EXPORT = qw(new_node key_status);

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

1;
