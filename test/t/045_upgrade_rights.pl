# What an update must not do: run someone else's code with the extension
# owner's rights, give a role more than it had, or widen a key's restriction.
#
# 1. A schema apikey that a database owner created (0.1.0 and 0.2.0 adopted
#    one): the owner plants apikey.cardinality(text[]), which the management
#    functions of 0.3.0 called unqualified.  The update refuses while the
#    owner owns the schema; once the DBA gives the schema to the superuser,
#    as the error suggests, it must still refuse, naming the planted object,
#    and the planted function must never have run.  The same for an object
#    planted into a 0.3.0 schema (CREATE granted for a while).
# 2. Roles granted single functions by hand keep exactly those (or their
#    replacements); the roles grant_verifier and grant_admin set up end up
#    with what those functions give on a fresh install.
# 3. A 0.2.0 key restricted to the literal resource "folder:*" does not
#    become valid for "folder:payroll"; a 0.3.0 key of that shape is flagged
#    for review, unchanged.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ApikeyTAP;

my $node = new_node('upgrade_rights');

# --- 1. planted objects ---------------------------------------------------

$node->safe_psql('postgres', 'CREATE ROLE dbo LOGIN');
my ($rc, $out, $err);
for my $from ('0.1.0', '0.2.0')
{
	my $db = "planted_$from" =~ s/\W/_/gr;
	$node->safe_psql('postgres', "CREATE DATABASE $db OWNER dbo");
	$node->safe_psql($db, qq{
		SET ROLE dbo;
		CREATE SCHEMA apikey;
		CREATE TABLE public.ran (who text);
		GRANT INSERT ON public.ran TO PUBLIC;
		RESET ROLE;
		CREATE EXTENSION apikey VERSION '$from';
		SET ROLE dbo;
		-- an exact-type match for the built-in cardinality(anyarray)
		CREATE FUNCTION apikey.cardinality(a text[]) RETURNS integer LANGUAGE plpgsql AS \$\$
		BEGIN
			INSERT INTO public.ran VALUES (current_user);
			RETURN pg_catalog.cardinality(a);
		END\$\$;
		RESET ROLE;
	});
	($rc, $out, $err) = $node->psql($db, 'ALTER EXTENSION apikey UPDATE');
	like($err, qr/schema apikey is owned by role dbo/, "$from: the owner's schema: the update refuses");
	$node->safe_psql($db, 'ALTER SCHEMA apikey OWNER TO CURRENT_USER');
	($rc, $out, $err) = $node->psql($db, 'ALTER EXTENSION apikey UPDATE');
	isnt($rc, 0, "$from: the schema given to the superuser, the planted function still there: the update refuses");
	like($err, qr/schema apikey holds function (apikey\.)?cardinality\(text\[\]\), which is not part of extension apikey/,
		"$from: the error names the planted function");
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'apikey'}), $from,
		"$from: nothing was updated");
	# had it been updated, the superuser's next create_key would run the owner's code
	$node->safe_psql($db, q{
		DO $$
		BEGIN
			IF (SELECT extversion FROM pg_extension WHERE extname = 'apikey') = '0.4.0' THEN
				PERFORM apikey.create_tenant('acme', environments => '{production}');
				PERFORM apikey.create_key('acme', 'production', 'k', key_roles => '{}');
			END IF;
		END
		$$;
	});
	is($node->safe_psql($db, 'SELECT count(*) FROM public.ran'), '0',
		"$from: the planted function did not run as the superuser");
	$node->safe_psql($db, 'DROP FUNCTION apikey.cardinality(text[])');
	$node->safe_psql($db, 'ALTER EXTENSION apikey UPDATE');
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'apikey'}), '0.4.0',
		"$from: without it, the update passes");
}

# planted into a 0.3.0 schema while someone else could write to it
$node->safe_psql('postgres', 'CREATE DATABASE planted3');
$node->safe_psql('planted3', q{
	CREATE EXTENSION apikey VERSION '0.3.0';
	GRANT CREATE ON SCHEMA apikey TO dbo;
	SET ROLE dbo;
	CREATE FUNCTION apikey.format(text, text) RETURNS text LANGUAGE sql AS 'SELECT $1';
	RESET ROLE;
	REVOKE CREATE ON SCHEMA apikey FROM dbo;
});
($rc, $out, $err) = $node->psql('planted3', 'ALTER EXTENSION apikey UPDATE');
like($err, qr/schema apikey holds function (apikey\.)?format\(text,text\), which is not part of extension apikey/,
	'0.3.0: an object planted in the schema is named and the update refuses');

# --- 2. privileges --------------------------------------------------------

$node->safe_psql('postgres', 'CREATE ROLE app; CREATE ROLE ops; CREATE ROLE only_verify; CREATE ROLE only_create');
# what a role holds beyond PUBLIC: functions, then tables and views
my $rights = q{
	SELECT coalesce(string_agg(x, ' ' ORDER BY x), '-') FROM (
		SELECT p.oid::regprocedure::text AS x FROM pg_proc AS p
		 WHERE p.pronamespace = 'apikey'::regnamespace
		   AND has_function_privilege('%s', p.oid, 'EXECUTE')
		   AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
		UNION ALL
		SELECT c.oid::regclass::text || ':' || priv FROM pg_class AS c,
		       unnest('{SELECT,INSERT,UPDATE,DELETE}'::text[]) AS priv
		 WHERE c.relnamespace = 'apikey'::regnamespace AND c.relkind IN ('r', 'v')
		   AND has_table_privilege('%s', c.oid, priv)) AS r};
sub rights { my ($db, $role) = @_; return $node->safe_psql($db, sprintf($rights, $role, $role)); }

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', q{
	CREATE EXTENSION apikey;
	SELECT apikey.grant_verifier('app');
	SELECT apikey.grant_admin('ops');
});
my %fresh = map { $_ => rights('fresh', $_) } qw(app ops);

for my $from ('0.1.0', '0.2.0')
{
	my $db = "rights_$from" =~ s/\W/_/gr;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, qq{
		CREATE EXTENSION apikey VERSION '$from';
		SELECT apikey.grant_verifier('app');
		SELECT apikey.grant_admin('ops');
		GRANT USAGE ON SCHEMA apikey TO only_verify, only_create;
		GRANT EXECUTE ON FUNCTION apikey.verify(text, text, text, text) TO only_verify;
		GRANT EXECUTE ON FUNCTION apikey.create_key(text, text, text, text, text[], interval, text) TO only_create;
		SELECT apikey.create_tenant('acme');
		CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
		INSERT INTO test_keys SELECT 'folder pattern', key_id, api_key
		  FROM apikey.create_key('acme', 'production', 'f', resource => 'folder:*');
		INSERT INTO test_keys SELECT 'folder one', key_id, api_key
		  FROM apikey.create_key('acme', 'production', 'g', resource => 'folder:1');
	});
	$node->safe_psql($db, 'ALTER EXTENSION apikey UPDATE');
	is(rights($db, 'only_verify'), 'apikey.verify(text,text,text,text,integer,inet)',
		"$from: a role granted only verify has only verify after the update");
	is(rights($db, 'only_create'),
		'apikey.create_key(text,text,text,text,text[],interval,text,text,jsonb,text[],text[],cidr[])',
		"$from: a role granted only create_key has only create_key after the update");
	is(rights($db, 'app'), $fresh{app}, "$from: grant_verifier's role has what grant_verifier gives now");
	is(rights($db, 'ops'), $fresh{ops}, "$from: grant_admin's role has what grant_admin gives now");

	# --- 3. the literal resource of 0.2.0 ---
	is(key_status($node, $db, 'folder pattern', q{resource => 'folder:payroll'}), 'revoked',
		"$from: a key restricted to the literal folder:* is not valid for folder:payroll");
	is($node->safe_psql($db, q{SELECT status || ' ' || revoked_reason FROM apikey.key_list WHERE name = 'f'}),
		'revoked update to 0.3.0: the resource folder:* would now cover every id of its type',
		"$from: it is revoked, and says why");
	is(key_status($node, $db, 'folder one', q{resource => 'folder:1'}), 'valid',
		"$from: a key restricted to one resource is unchanged");
	is($node->safe_psql($db, q{SELECT count(*) FROM apikey.audit_log WHERE action = 'resources_review'}), '0',
		"$from: the revoked key is not flagged for review again");
}

# 0.3.0: "folder:*" was a pattern already; it may have come from 0.2.0
$node->safe_psql('postgres', 'CREATE DATABASE review');
$node->safe_psql('review', q{
	CREATE EXTENSION apikey VERSION '0.3.0';
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys SELECT 'one resource', key_id, api_key
	  FROM apikey.create_key('acme', 'production', 'one', resource => 'folder:*');
	INSERT INTO test_keys SELECT 'resources', key_id, api_key
	  FROM apikey.create_key('acme', 'production', 'many', resources => '{folder:*}');
	SELECT apikey.import_key('acme', 'production', 'legacy', api_key => 'legacy-0123456789abcdef');
	SELECT apikey.grant_verifier('app');
	SELECT apikey.grant_admin('ops');
	GRANT USAGE ON SCHEMA apikey TO only_verify;
	GRANT EXECUTE ON FUNCTION apikey.verify(text, text, text, text, integer, inet) TO only_verify;
	-- as the update to 0.3.0 gave it to a role granted only 0.2.0's verify
	GRANT USAGE ON SCHEMA apikey TO only_create;
	GRANT EXECUTE ON FUNCTION apikey.verify(text, text, text, text, integer, inet),
		apikey.authenticate(text, text, integer, inet) TO only_create;
	-- what an administrator set before 0.4.0: the vendor's after the update
	SELECT apikey.set_credits(key_id, 100), apikey.set_key_meta(key_id, '{"plan": "pro"}'),
	       apikey.set_key_allowed_ips(key_id, '{10.0.0.0/8}')
	  FROM test_keys WHERE label = 'one resource';
});
($rc, $out, $err) = $node->psql('review', 'ALTER EXTENSION apikey UPDATE');
like($err, qr/WARNING:  apikey: 1 key\(s\) restricted to a resource pattern/, '0.3.0: the update warns of keys to review');
like($err, qr/WARNING:  apikey: roles only_create hold functions that the update to 0.3.0 may have given them/,
	'0.3.0: the update names the roles that may have been given rights, and only them');
is($node->safe_psql('review', q{
	SELECT k.name FROM apikey.audit_log AS a JOIN apikey.key_list AS k USING (key_id)
	 WHERE a.action = 'resources_review'}), 'one', '0.3.0: the key made with one resource argument is flagged');
is(key_status($node, 'review', 'one resource', q{resource => 'folder:payroll', client_ip => '10.1.1.1'}), 'valid',
	'0.3.0: and left as it was');

# imported texts, unique per tenant from 0.4.0 on, still verify
is($node->safe_psql('review', q{SELECT status || ' ' || tenant FROM apikey.verify('legacy-0123456789abcdef')}),
	'valid acme', '0.3.0: an imported key verifies after the update');

is($node->safe_psql('review', q{
	SELECT v.credits || ' ' || v.allowed_ips::text || ' ' || (SELECT string_agg(field, ',') FROM apikey.vendor_meta_fields)
	  FROM apikey.key_vendor_controls AS v JOIN test_keys AS t USING (key_id) WHERE t.label = 'one resource'}),
	'true {10.0.0.0/8} plan', "0.3.0: credits, allowlist and meta an administrator set are the vendor's after the update");
is(rights('review', 'only_verify'), 'apikey.verify(text,text,text,text,integer,inet)',
	'0.3.0: a role granted only verify has only verify after the update');
is(rights('review', 'app'), $fresh{app}, "0.3.0: grant_verifier's role has what grant_verifier gives now");
is(rights('review', 'ops'), $fresh{ops}, "0.3.0: grant_admin's role has what grant_admin gives now");

done_testing();
