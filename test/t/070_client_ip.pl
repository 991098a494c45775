# IP allowlists against real connections.
#
# A key with allowed_ips is valid only from those networks.  verify and
# authenticate take the client_ip they are given, else the address of the
# connection (inet_client_addr()): here a connection over TCP from
# 127.0.0.1, and one over a Unix socket, which has no address, so a key
# with an allowlist is ip_not_allowed there unless client_ip says where the
# request came from.  Key texts stay in the table test_keys.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ApikeyTAP;

my $node = new_node('client_ip', conf => "listen_addresses = '127.0.0.1'");
$node->append_conf('pg_hba.conf', 'host all all 127.0.0.1/32 trust');
$node->restart;
my $tcp = 'host=127.0.0.1 port=' . $node->port . ' dbname=postgres';

# a query over TCP: its output, or the error
sub tcp_psql
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', $sql, connstr => $tcp, stdout => \$out, stderr => \$err);
	return $err =~ /ERROR/ ? "ERROR: $err" : $out;
}
my $key = sub { "(SELECT api_key FROM test_keys WHERE label = '$_[0]')" };

$node->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT v.label, k.key_id, k.api_key
		  FROM (VALUES ('loopback', '{127.0.0.0/8}'), ('host', '{127.0.0.1/32,192.0.2.0/24}'),
		               ('office', '{10.0.0.0/8}'), ('anywhere', NULL)) AS v(label, ips),
		       LATERAL apikey.create_key('acme', 'production', v.label, owner => 'user_' || v.label,
		                                 allowed_ips => v.ips::cidr[]) AS k;
});

is(tcp_psql('SELECT inet_client_addr()'), '127.0.0.1', 'the TCP connection comes from 127.0.0.1');
is($node->safe_psql('postgres', 'SELECT inet_client_addr() IS NULL'), 't',
	'the Unix-socket connection has no address');

my $statuses = q{
	SELECT string_agg(t.label || '=' || v.status, ' ' ORDER BY t.label)
	  FROM test_keys AS t, apikey.verify(t.api_key, client_ip => %s) AS v};
is(tcp_psql(sprintf($statuses, 'NULL')),
	'anywhere=valid host=valid loopback=valid office=ip_not_allowed',
	'over TCP, without client_ip: the connection\'s address decides');
is(tcp_psql(sprintf($statuses, "'10.1.2.3'")),
	'anywhere=valid host=ip_not_allowed loopback=ip_not_allowed office=valid',
	'over TCP, client_ip decides instead of the connection\'s address');
is(tcp_psql(sprintf($statuses, "'::ffff:127.0.0.1'")),
	'anywhere=valid host=valid loopback=valid office=ip_not_allowed',
	'an IPv4 address written as IPv6 is that IPv4 address');
is($node->safe_psql('postgres', sprintf($statuses, 'NULL')),
	'anywhere=valid host=ip_not_allowed loopback=ip_not_allowed office=ip_not_allowed',
	'over a Unix socket, without client_ip: every key with an allowlist is ip_not_allowed');
is($node->safe_psql('postgres', sprintf($statuses, "'192.0.2.10'")),
	'anywhere=valid host=valid loopback=ip_not_allowed office=ip_not_allowed',
	'over a Unix socket, client_ip decides');

# authenticate: the same rule, and the identity only when allowed
is(tcp_psql('BEGIN; SELECT status, apikey.current_owner() FROM apikey.authenticate(' . $key->('loopback') . '); COMMIT;'),
	'valid|user_loopback', 'over TCP, authenticate accepts a key allowed from 127.0.0.1');
like(tcp_psql('SELECT apikey.authenticate(' . $key->('office') . ')'),
	qr/ERROR:.*API key rejected: ip_not_allowed/, 'over TCP, authenticate refuses a key allowed elsewhere');
my ($rc, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT apikey.authenticate(" . $key->('loopback') . ')');
like($err, qr/ERROR:\s+28000: API key rejected: ip_not_allowed/,
	'over a Unix socket, authenticate refuses a key with an allowlist (SQLSTATE 28000)');
is($node->safe_psql('postgres', 'SELECT apikey.current_owner() FROM apikey.authenticate('
		. $key->('loopback') . ", client_ip => '127.0.0.1')"),
	'user_loopback', 'over a Unix socket, authenticate with client_ip accepts the key');

# an allowlist changed is seen by the next verification of a connection
# that verified the key before (one backend: its address is looked up once)
is(tcp_psql(q{
	SELECT (apikey.verify((SELECT api_key FROM test_keys WHERE label = 'office'))).status;
	SELECT apikey.set_key_allowed_ips((SELECT key_id FROM test_keys WHERE label = 'office'), '{127.0.0.1/32}');
	SELECT (apikey.verify((SELECT api_key FROM test_keys WHERE label = 'office'))).status;
	SELECT apikey.set_key_allowed_ips((SELECT key_id FROM test_keys WHERE label = 'office'), NULL);
	SELECT (apikey.verify((SELECT api_key FROM test_keys WHERE label = 'office'))).status;
}), "ip_not_allowed\n\nvalid\n\nvalid", 'allowlist edits apply to the next verification over TCP');

$node->stop;
done_testing();
