# pg_dump / pg_restore into a fresh cluster.
#
# The extension's tables are registered with pg_extension_config_dump, so a
# custom-format dump carries CREATE EXTENSION and the keys, tenants,
# environments, public keys, audit trail and sequence positions.  After a
# restore into a new cluster every table is identical row for row (hashes,
# timestamps, hints), every key verifies exactly as before (revoked keys stay
# revoked, a roll's grace period still holds), and new tenants, keys and
# audit events continue the sequences without unique violations.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ApikeyTAP;

my $old = new_node('old');
$old->safe_psql('postgres', 'CREATE DATABASE app');
$old->safe_psql('app', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme', 'Acme Inc');
	SELECT apikey.create_tenant('globex', 'Globex', '{production,staging:stg}', key_prefix => 'gx',
	                            default_key_lifetime => '30 days', max_key_lifetime => '90 days');
	SELECT apikey.create_environment('acme', 'staging', 'stg');
	SELECT apikey.regenerate_public_key('acme', 'production');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT 'plain', key_id, api_key FROM apikey.create_key('acme', 'production', 'plain');
	INSERT INTO test_keys
		SELECT 'scoped', key_id, api_key
		  FROM apikey.create_key('acme', 'staging', 'scoped', 'with a description',
		                         '{orders:read,collections:*}', '1 year', 'collection:42');
	INSERT INTO test_keys
		SELECT 'globex', key_id, api_key FROM apikey.create_key('globex', 'staging', 'policy lifetime');
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{revoked,rolled,graced,expired,deleted}'::text[]) AS label,
		       apikey.create_key('acme', 'preview', label);
	SELECT apikey.revoke_key((SELECT key_id FROM test_keys WHERE label = 'revoked'), 'leaked');
	INSERT INTO test_keys
		SELECT 'rolled new', key_id, apikey.roll_key(key_id) FROM test_keys WHERE label = 'rolled';
	INSERT INTO test_keys
		SELECT 'graced new', key_id, apikey.roll_key(key_id, '7 days') FROM test_keys WHERE label = 'graced';
	SELECT apikey.set_key_expiry((SELECT key_id FROM test_keys WHERE label = 'expired'), now() - interval '1 hour');
	SELECT apikey.delete_key((SELECT key_id FROM test_keys WHERE label = 'deleted'));
	SELECT apikey.rename_key((SELECT key_id FROM test_keys WHERE label = 'plain'), 'plain, renamed');
	INSERT INTO test_keys VALUES ('public', NULL, apikey.public_key('acme', 'production'));
});

# what must survive: every table, row for row, and the sequences
my $facts = q{
	SELECT 'tenants', count(*), md5(string_agg(t::text, '|' ORDER BY tenant_id)) FROM apikey.tenants AS t
	UNION ALL
	SELECT 'environments', count(*), md5(string_agg(e::text, '|' ORDER BY tenant_id, name)) FROM apikey.environments AS e
	UNION ALL
	SELECT 'public_keys', count(*), md5(string_agg(p::text, '|' ORDER BY key_id)) FROM apikey.public_keys AS p
	UNION ALL
	SELECT 'keys', count(*), md5(string_agg(k::text, '|' ORDER BY key_id)) FROM apikey.keys AS k
	UNION ALL
	SELECT 'audit', count(*), md5(string_agg(a::text, '|' ORDER BY event_id)) FROM apikey.audit AS a
	UNION ALL
	SELECT 'tenant sequence', last_value, is_called::text FROM apikey.tenants_tenant_id_seq
	UNION ALL
	SELECT 'audit sequence', last_value, is_called::text FROM apikey.audit_event_id_seq
	ORDER BY 1};
my $statuses = q{
	SELECT label, v.status, coalesce(v.tenant, '-'), coalesce(v.environment, '-'),
	       coalesce(nullif(array_to_string(v.scopes, ','), ''), '-'), coalesce(v.resource, '-'),
	       coalesce(v.key_id = t.key_id, false)
	  FROM test_keys AS t, apikey.verify(t.api_key) AS v ORDER BY label};
my $before = $old->safe_psql('app', $facts);
my $statuses_before = $old->safe_psql('app', $statuses);
is($statuses_before, join("\n",
	'deleted|not_found|-|-|-|-|f',
	'expired|expired|acme|preview|-|-|t',
	'globex|valid|globex|staging|-|-|t',
	'graced|valid|acme|preview|-|-|t',
	'graced new|valid|acme|preview|-|-|t',
	'plain|valid|acme|production|-|-|t',
	'public|public_key|-|-|-|-|f',
	'revoked|revoked|acme|preview|-|-|t',
	'rolled|not_found|-|-|-|-|f',
	'rolled new|valid|acme|preview|-|-|t',
	'scoped|valid|acme|staging|collections:*,orders:read|collection:42|t'),
	'before the dump: every status as set up');

my $dump = PostgreSQL::Test::Utils::tempdir . '/app.dump';
$old->command_ok([ 'pg_dump', '-Fc', '-d', $old->connstr('app'), '-f', $dump ], 'pg_dump -Fc');
my $stdout = '';
IPC::Run::run([ 'pg_restore', '-l', $dump ], '>', \$stdout);
like($stdout, qr/ EXTENSION - apikey /, 'the dump creates the extension');
like($stdout, qr/TABLE DATA apikey keys /, 'the dump holds the keys');

my $new = new_node('new');
$new->safe_psql('postgres', 'CREATE DATABASE app');
my ($out, $err) = ('', '');
IPC::Run::run([ 'pg_restore', '--exit-on-error', '-d', $new->connstr('app'), $dump ],
	'>', \$out, '2>', \$err);
is($err, '', 'pg_restore into the fresh cluster without errors or warnings');

is($new->safe_psql('app', $facts), $before, 'tenants, environments, public keys, keys, audit and sequences identical');
is($new->safe_psql('app', $statuses), $statuses_before, 'every key verifies after the restore exactly as before');
is($new->safe_psql('app', q{
	SELECT tenant || '/' || environment FROM apikey.identify((SELECT api_key FROM test_keys WHERE label = 'public'));
	SELECT status FROM apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'scoped'), 'collections:read');
}), "acme/production\nvalid", 'public key identifies, private key authenticates after the restore');
($out, $err) = ('', '');
$new->psql('app', q{SELECT apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'revoked'))},
	stderr => \$err);
like($err, qr/API key rejected: revoked/, 'a revoked key stays revoked');

# life goes on: the sequences continue, the restored keys can be managed
is($new->safe_psql('app', q{
	SELECT apikey.create_tenant('initech') > max(tenant_id) FROM apikey.tenants WHERE slug <> 'initech';
	INSERT INTO test_keys SELECT 'after', key_id, api_key FROM apikey.create_key('initech', 'production', 'new');
	SELECT status FROM apikey.verify((SELECT api_key FROM test_keys WHERE label = 'after'));
	SELECT apikey.reactivate_key((SELECT key_id FROM test_keys WHERE label = 'revoked'));
	SELECT status FROM apikey.verify((SELECT api_key FROM test_keys WHERE label = 'revoked'));
	SELECT apikey.create_environment('acme', 'qa', 'qa');
	SELECT count(*) = count(DISTINCT event_id) AND min(event_id) = 1 FROM apikey.audit;
	SELECT action FROM apikey.audit ORDER BY event_id DESC LIMIT 1;
}), "t\nvalid\n\nvalid\n\nt\nenvironment_created",
	'new tenants, keys and audit events after the restore, no unique violation');

done_testing();
