# The upgrade path: ALTER EXTENSION apikey UPDATE from every older version.
#
# For each version with a full install script (sql/apikey--<v>.sql), oldest
# first, the test installs it, creates keys with it, then walks the update
# path step by step to the default version (ALTER EXTENSION ... UPDATE TO
# each version on pg_extension_update_paths), checking after every step that
# the keys still verify as before.  At the end the upgraded extension must be
# indistinguishable from a fresh CREATE EXTENSION: the same member objects
# with the same definitions (a catalog fingerprint: functions, tables and
# columns in order, constraints, indexes, views, types, operators, operator
# classes, sequences, privileges, initial privileges, comments, config-dump
# registrations; the schemas apikey and apikey_internal, their owners,
# privileges and comments), and the same behaviour on the keys created before the
# update.  (pg_dump --schema-only would not do: it dumps an extension as
# CREATE EXTENSION, never its members.)
#
# Every version's path to the newest is walked (with a single version the
# test checks that no update path is listed, still updates, a no-op, and
# runs the comparison).  New versions are covered as soon as their scripts
# are installed; the test also checks that every script in the
# repository's sql/ is the one installed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename;
use ApikeyTAP;

my $node = new_node('upgrade');
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
my $extdir = "$sharedir/extension";

my ($default) = slurp_file("$extdir/apikey.control") =~ /^\s*default_version\s*=\s*'([^']+)'/m
  or die 'no default_version in apikey.control';
my @full = sort { vcmp($a, $b) } map { basename($_) =~ /^apikey--([^-]+(?:-[^-]+)*)\.sql$/ && $1 !~ /--/ ? $1 : () }
  glob("$extdir/apikey--*.sql");
@full = grep { !/--/ } @full;
note("full install scripts: @full; default version $default");
ok((grep { $_ eq $default } @full), "the default version $default has a full install script");

# what the repository ships is what is installed
SKIP:
{
	skip 'APIKEY_REPO not set', 1 unless $ENV{APIKEY_REPO};
	my @differ;
	for my $f (glob("$ENV{APIKEY_REPO}/sql/apikey--*.sql"))
	{
		my $installed = "$extdir/" . basename($f);
		push @differ, basename($f) . (-e $installed ? ' differs' : ' is not installed')
		  unless -e $installed && slurp_file($installed) eq slurp_file($f);
	}
	is(join(', ', @differ), '', 'every sql/apikey--*.sql of the repository is installed as is');
}

my $paths = $node->safe_psql('postgres', q{
	SELECT source || ' ' || path FROM pg_extension_update_paths('apikey')
	 WHERE path IS NOT NULL AND target = (SELECT default_version FROM pg_available_extensions WHERE name = 'apikey')
	 ORDER BY 1});
my %path = map { my ($s, $p) = split / /; ($s => [ split /--/, $p ]) } split /\n/, $paths;
if (@full == 1)
{
	is($node->safe_psql('postgres', q{
		SELECT count(*) FROM pg_extension_update_paths('apikey') WHERE path IS NOT NULL}),
		'0', 'a single version: no update path is listed');
}

# keys made with whatever version is installed, through the core API only
my $setup = q{
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys
		SELECT label, key_id, api_key
		  FROM unnest('{active,revoked,rolled,graced,deleted,to roll,to revoke}'::text[]) AS label,
		       apikey.create_key('acme', 'production', label, scopes => '{orders:read}');
	INSERT INTO test_keys
		SELECT 'scoped', key_id, api_key
		  FROM apikey.create_key('acme', 'preview', 'scoped', 'desc', '{orders:*}', '1 day', 'shop:1');
	SELECT apikey.revoke_key((SELECT key_id FROM test_keys WHERE label = 'revoked'), 'why');
	INSERT INTO test_keys SELECT 'rolled new', key_id, apikey.roll_key(key_id) FROM test_keys WHERE label = 'rolled';
	INSERT INTO test_keys SELECT 'graced new', key_id, apikey.roll_key(key_id, '1 day') FROM test_keys WHERE label = 'graced';
	SELECT apikey.delete_key((SELECT key_id FROM test_keys WHERE label = 'deleted'));
};
my $statuses = q{
	SELECT label, v.status, coalesce(v.environment, '-'), coalesce(array_to_string(v.scopes, ','), '-'),
	       coalesce(v.resource, '-'), coalesce(v.key_id = t.key_id, false)
	  FROM test_keys AS t, apikey.verify(t.api_key) AS v ORDER BY label};
my $expected_statuses = join("\n",
	'active|valid|production|orders:read|-|t',
	'deleted|not_found|-|-|-|f',
	'graced|valid|production|orders:read|-|t',
	'graced new|valid|production|orders:read|-|t',
	'revoked|revoked|production|orders:read|-|t',
	'rolled|not_found|-|-|-|f',
	'rolled new|valid|production|orders:read|-|t',
	'scoped|valid|preview|orders:*|shop:1|t',
	'to revoke|valid|production|orders:read|-|t',
	'to roll|valid|production|orders:read|-|t');

# the same things done, after the update, to the keys made before it
my $behaviour = q{
	SELECT status, apikey.current_tenant(), apikey.has_scope('orders:read')
	  FROM apikey.authenticate((SELECT api_key FROM test_keys WHERE label = 'active'), 'orders:read');
	INSERT INTO test_keys SELECT 'to roll new', key_id, apikey.roll_key(key_id, '1 hour') FROM test_keys WHERE label = 'to roll';
	SELECT apikey.revoke_key((SELECT key_id FROM test_keys WHERE label = 'to revoke'));
	SELECT apikey.reactivate_key((SELECT key_id FROM test_keys WHERE label = 'revoked'));
	SELECT apikey.rename_key((SELECT key_id FROM test_keys WHERE label = 'active'), 'renamed');
	INSERT INTO test_keys SELECT 'new', key_id, api_key FROM apikey.create_key('acme', 'production', 'new');
	SELECT label, status FROM test_keys, apikey.verify(api_key, 'production', 'orders:read') ORDER BY label;
	SELECT name, status, environment FROM apikey.key_list ORDER BY name;
	SELECT action, count(*) FROM apikey.audit_log GROUP BY action ORDER BY action;
};

# a catalog fingerprint of the extension's objects, one line per fact
my $fingerprint = q{
WITH ext AS (SELECT oid, extnamespace FROM pg_extension WHERE extname = 'apikey'),
members AS (
	SELECT d.classid, d.objid FROM pg_depend AS d, ext
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
-- the extension's schema, and those it created (apikey_internal)
schemas AS (
	SELECT extnamespace AS oid FROM ext
	UNION
	SELECT objid FROM members WHERE classid = 'pg_namespace'::regclass),
rels AS (
	SELECT objid AS oid FROM members WHERE classid = 'pg_class'::regclass
	UNION
	SELECT t.typrelid FROM members AS m JOIN pg_type AS t ON t.oid = m.objid
	 WHERE m.classid = 'pg_type'::regclass AND t.typrelid <> 0),
facts(line) AS (
	SELECT 'member ' || pg_describe_object(classid, objid, 0) FROM members
	UNION ALL
	SELECT 'extension relocatable=' || e.extrelocatable || ' schema=' || e.extnamespace::regnamespace
	       || ' config=' || coalesce((SELECT string_agg(c::regclass::text || ':' || coalesce(w, ''), ',' ORDER BY c::regclass::text)
	                                    FROM unnest(e.extconfig, e.extcondition) AS x(c, w)), '-')
	  FROM pg_extension AS e WHERE e.extname = 'apikey'
	UNION ALL
	SELECT 'schema ' || n.nspname || ' owner=' || pg_get_userbyid(n.nspowner) || ' acl=' || coalesce(n.nspacl::text, '-')
	       || ' comment=' || coalesce(obj_description(n.oid, 'pg_namespace'), '-')
	  FROM schemas JOIN pg_namespace AS n USING (oid)
	UNION ALL
	SELECT 'default acl ' || n.nspname || ' ' || d.defaclobjtype::text || ' ' || d.defaclacl::text
	  FROM schemas JOIN pg_namespace AS n USING (oid) JOIN pg_default_acl AS d ON d.defaclnamespace = n.oid
	UNION ALL
	SELECT 'function ' || p.oid::regprocedure || ' owner=' || pg_get_userbyid(p.proowner)
	       || ' acl=' || coalesce(p.proacl::text, '-') || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
	       || ' leakproof=' || p.proleakproof || ' def=' || pg_get_functiondef(p.oid)
	  FROM members AS m JOIN pg_proc AS p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
	UNION ALL
	SELECT 'relation ' || c.oid::regclass || ' kind=' || c.relkind::text || ' owner=' || pg_get_userbyid(c.relowner)
	       || ' acl=' || coalesce(c.relacl::text, '-') || ' options=' || coalesce(c.reloptions::text, '-')
	       || ' rls=' || c.relrowsecurity || '/' || c.relforcerowsecurity || ' persistence=' || c.relpersistence::text
	       || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '-')
	  FROM rels JOIN pg_class AS c USING (oid)
	UNION ALL
	SELECT 'column ' || a.attrelid::regclass || ' #' || row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum)
	       || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
	       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
	       || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
	       || coalesce(' generated ' || nullif(a.attgenerated::text, ''), '') || coalesce(' identity ' || nullif(a.attidentity::text, ''), '')
	       || ' collation=' || a.attcollation::regcollation || ' storage=' || a.attstorage::text
	       || ' acl=' || coalesce(a.attacl::text, '-') || ' comment=' || coalesce(col_description(a.attrelid, a.attnum), '-')
	  FROM rels JOIN pg_attribute AS a ON a.attrelid = rels.oid
	  LEFT JOIN pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	 WHERE a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT 'constraint ' || co.conrelid::regclass || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
	       || ' deferrable=' || co.condeferrable || '/' || co.condeferred
	  FROM rels JOIN pg_constraint AS co ON co.conrelid = rels.oid
	UNION ALL
	SELECT 'index ' || pg_get_indexdef(i.indexrelid) || ' comment=' || coalesce(obj_description(i.indexrelid, 'pg_class'), '-')
	  FROM rels JOIN pg_index AS i ON i.indrelid = rels.oid
	UNION ALL
	SELECT 'view ' || c.oid::regclass || ' ' || pg_get_viewdef(c.oid)
	  FROM rels JOIN pg_class AS c USING (oid) WHERE c.relkind::text IN ('v', 'm')
	UNION ALL
	SELECT 'trigger ' || pg_get_triggerdef(tg.oid) || ' enabled=' || tg.tgenabled::text
	  FROM rels JOIN pg_trigger AS tg ON tg.tgrelid = rels.oid WHERE NOT tg.tgisinternal
	UNION ALL
	SELECT 'policy ' || po.polrelid::regclass || ' ' || po.polname || ' ' || po.polcmd::text || ' ' || po.polpermissive
	       || ' roles=' || po.polroles::regrole[]::text || ' using=' || coalesce(pg_get_expr(po.polqual, po.polrelid), '-')
	       || ' check=' || coalesce(pg_get_expr(po.polwithcheck, po.polrelid), '-')
	  FROM rels JOIN pg_policy AS po ON po.polrelid = rels.oid
	UNION ALL
	SELECT 'rule ' || pg_get_ruledef(r.oid)
	  FROM rels JOIN pg_rewrite AS r ON r.ev_class = rels.oid WHERE r.rulename <> '_RETURN'
	UNION ALL
	SELECT 'sequence ' || s.seqrelid::regclass || ' ' || format_type(s.seqtypid, NULL) || ' start=' || s.seqstart
	       || ' increment=' || s.seqincrement || ' min=' || s.seqmin || ' max=' || s.seqmax
	       || ' cache=' || s.seqcache || ' cycle=' || s.seqcycle
	       || ' owned by=' || coalesce((SELECT d.refobjid::regclass || '.' || a.attname FROM pg_depend AS d
	                                    JOIN pg_attribute AS a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
	                                   WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
	                                     AND d.deptype = 'a'), '-')
	  FROM rels JOIN pg_sequence AS s ON s.seqrelid = rels.oid
	UNION ALL
	SELECT 'type ' || format_type(t.oid, NULL) || ' ' || t.typtype::text || ' len=' || t.typlen || ' byval=' || t.typbyval
	       || ' align=' || t.typalign::text || ' storage=' || t.typstorage::text || ' category=' || t.typcategory::text
	       || ' io=' || t.typinput::regproc || ',' || t.typoutput::regproc || ',' || t.typreceive::regproc || ','
	       || t.typsend::regproc || ',' || t.typmodin::regproc || ',' || t.typanalyze::regproc
	       || ' default=' || coalesce(t.typdefault, '-') || ' notnull=' || t.typnotnull
	       || ' base=' || coalesce(format_type(nullif(t.typbasetype, 0), NULL), '-')
	       || ' acl=' || coalesce(t.typacl::text, '-') || ' comment=' || coalesce(obj_description(t.oid, 'pg_type'), '-')
	  FROM members AS m JOIN pg_type AS t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
	UNION ALL
	SELECT 'operator ' || o.oid::regoperator || ' code=' || o.oprcode::regproc
	       || ' commutator=' || coalesce(nullif(o.oprcom, 0)::regoperator::text, '-')
	       || ' negator=' || coalesce(nullif(o.oprnegate, 0)::regoperator::text, '-')
	       || ' restrict=' || o.oprrest::regproc || ' join=' || o.oprjoin::regproc
	       || ' hashes=' || o.oprcanhash || ' merges=' || o.oprcanmerge
	       || ' comment=' || coalesce(obj_description(o.oid, 'pg_operator'), '-')
	  FROM members AS m JOIN pg_operator AS o ON m.classid = 'pg_operator'::regclass AND o.oid = m.objid
	UNION ALL
	SELECT 'opclass ' || oc.opcname || ' ' || am.amname || ' for ' || format_type(oc.opcintype, NULL)
	       || ' default=' || oc.opcdefault || ' family=' || ofa.opfname
	  FROM members AS m JOIN pg_opclass AS oc ON m.classid = 'pg_opclass'::regclass AND oc.oid = m.objid
	  JOIN pg_am AS am ON am.oid = oc.opcmethod JOIN pg_opfamily AS ofa ON ofa.oid = oc.opcfamily
	UNION ALL
	SELECT 'amop ' || ofa.opfname || ' ' || ao.amopstrategy || ' ' || ao.amopopr::regoperator || ' ' || ao.amoppurpose::text
	  FROM pg_amop AS ao JOIN pg_opfamily AS ofa ON ofa.oid = ao.amopfamily, ext
	 WHERE ofa.opfnamespace = ext.extnamespace
	UNION ALL
	SELECT 'amproc ' || ofa.opfname || ' ' || ap.amprocnum || ' ' || ap.amproc::regprocedure
	  FROM pg_amproc AS ap JOIN pg_opfamily AS ofa ON ofa.oid = ap.amprocfamily, ext
	 WHERE ofa.opfnamespace = ext.extnamespace
	UNION ALL
	SELECT 'init privs ' || pg_describe_object(ip.classoid, ip.objoid, ip.objsubid) || ' ' || ip.privtype::text
	       || ' ' || ip.initprivs::text
	  FROM pg_init_privs AS ip JOIN members AS m ON m.classid = ip.classoid AND m.objid = ip.objoid
)
SELECT replace(line, E'\n', '\n') FROM facts ORDER BY 1};

# the fresh install, for reference
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION apikey');
$node->safe_psql('fresh', $setup);
my $fresh_fp = $node->safe_psql('fresh', $fingerprint);
cmp_ok(scalar(split /\n/, $fresh_fp), '>', 100, 'the fingerprint of a fresh install covers the extension');
my $fresh_behaviour = $node->safe_psql('fresh', $behaviour);

# negative control: the fingerprint sees small changes
$node->safe_psql('postgres', 'CREATE DATABASE control');
$node->safe_psql('control', q{
	CREATE EXTENSION apikey;
	ALTER FUNCTION apikey.looks_like_key(text) COST 7;
	COMMENT ON COLUMN apikey.keys.name IS 'changed';
	ALTER TABLE apikey.keys ADD COLUMN extra integer;
	GRANT SELECT ON apikey.keys TO PUBLIC;
	GRANT USAGE ON SCHEMA apikey_internal TO PUBLIC;
});
my %fresh_lines = map { $_ => 1 } split /\n/, $fresh_fp;
my @changed = grep { !$fresh_lines{$_} } split /\n/, $node->safe_psql('control', $fingerprint);
is(scalar(@changed), 5, 'the fingerprint notices a changed cost, comment, column, privilege and internal schema privilege');

for my $from (@full)
{
	my $db = "from_$from" =~ s/\W/_/gr;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION apikey VERSION '$from'");
	$node->safe_psql($db, $setup);
	is($node->safe_psql($db, $statuses), $expected_statuses, "$from: keys made with $from verify");

	my @steps = $from eq $default ? () : @{ $path{$from} // [] };
	shift @steps;    # the path starts with $from itself
	ok($from eq $default || @steps,
		$from eq $default ? "$from is the default version: no path to walk" : "$from: an update path to $default exists");
	for my $to (@steps)
	{
		$node->safe_psql($db, "ALTER EXTENSION apikey UPDATE TO '$to'");
		is($node->safe_psql($db, $statuses), $expected_statuses, "$from: keys still verify after the update to $to");
	}
	$node->safe_psql($db, 'ALTER EXTENSION apikey UPDATE');
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'apikey'}),
		$default, "$from: ALTER EXTENSION apikey UPDATE reaches $default");
	is($node->safe_psql($db, $statuses), $expected_statuses, "$from: keys verify after the update");

	my $fp = $node->safe_psql($db, $fingerprint);
	my %in_fresh = map { $_ => 1 } split /\n/, $fresh_fp;
	my %in_upgraded = map { $_ => 1 } split /\n/, $fp;
	my @diff = ((map { "only in fresh install:    $_" } grep { !$in_upgraded{$_} } sort keys %in_fresh),
		(map { "only in upgraded install: $_" } grep { !$in_fresh{$_} } sort keys %in_upgraded));
	is(join("\n", @diff), '', "$from: the upgraded extension has the same objects as a fresh install");
	is($node->safe_psql($db, $behaviour), $fresh_behaviour,
		"$from: keys made before the update behave as on a fresh install");
}

# and what that behaviour is
is($fresh_behaviour, join("\n",
	'valid|acme|t', '', '', '',
	'active|valid', 'deleted|not_found', 'graced|valid', 'graced new|valid', 'new|insufficient_scope',
	'revoked|valid', 'rolled|not_found', 'rolled new|valid', 'scoped|wrong_environment',
	'to revoke|revoked', 'to roll|valid', 'to roll new|valid',
	'graced|active|production', 'new|active|production',
	'renamed|active|production', 'revoked|active|production', 'rolled|active|production',
	'scoped|active|preview', 'to revoke|revoked|production', 'to roll|active|production',
	'created|9', 'deleted|1', 'environment_created|2', 'reactivated|1', 'renamed|1', 'revoked|2',
	'rolled|3', 'tenant_created|1'),
	'the behaviour compared is the documented one');

done_testing();

# compare versions: numeric parts numerically
sub vcmp
{
	my @a = split /[.-]/, shift;
	my @b = split /[.-]/, shift;
	while (@a || @b)
	{
		my ($x, $y) = (shift(@a) // '', shift(@b) // '');
		my $c = ($x =~ /^\d+$/ && $y =~ /^\d+$/) ? $x <=> $y : $x cmp $y;
		return $c if $c;
	}
	return 0;
}
