# Attacks on a deployment as the README describes it (superuser installs,
# apikey preloaded), each of which must fail:
#
# 1. A database owner who is not a superuser sets the database's
#    search_path to a schema of its own holding an "=" operator on key ids
#    (and "<" on timestamps) that makes it superuser when called, and waits
#    for the background writer of last_used_at to run its statement there.
#    The writer's statements must also run with search_path pg_catalog,
#    pg_temp (seen by a trigger of the test's own on apikey.key_usage), not
#    only with schema-qualified operators.
# 2. On a hot standby, a backend remembers where a key's row was; on the
#    primary the key is deleted and VACUUM cuts the end of the table off
#    without changing its statistics, so no invalidation comes with it.
#    The remembered block no longer exists; the next verification must
#    answer as always, not "could not read block".
# 3. An error raised by the server while a verification handles key text
#    (here a lock timeout) and a failed authenticate called from PL/pgSQL
#    must not write the key to the server log: neither the statement nor
#    the CONTEXT line that quotes the calling statement.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use ApikeyTAP;

my $node = PostgreSQL::Test::Cluster->new('security');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
log_statement = none
shared_preload_libraries = 'apikey'
apikey.usage_flush_interval = 1
apikey.usage_precision = 0
});
$node->start;

# poll until a query answers 't' (up to 60 s)
sub wait_for
{
	my ($node, $db, $sql) = @_;
	for (my $i = 0; $i < 600; $i++)
	{
		return 1 if $node->safe_psql($db, $sql) eq 't';
		usleep(100_000);
	}
	return 0;
}

# 1. the last-used writer and a hostile database owner
$node->safe_psql('postgres', q{
	CREATE ROLE dbo LOGIN;
	CREATE DATABASE owned OWNER dbo;
});
$node->safe_psql('owned', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys AS SELECT api_key FROM apikey.create_key('acme', 'production', 'used');
	GRANT SELECT ON test_keys TO dbo;
	SELECT apikey.grant_verifier('dbo');
	-- what search_path the writer's statements run with, seen by a
	-- statement trigger on the table it writes (a probe of this test)
	CREATE TABLE public.writer_search_path (search_path text);
	CREATE FUNCTION public.note_search_path() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.writer_search_path VALUES (pg_catalog.current_setting('search_path'));
		RETURN NULL;
	END $$;
	CREATE TRIGGER note_search_path AFTER INSERT OR UPDATE ON apikey.key_usage
		FOR EACH STATEMENT EXECUTE FUNCTION public.note_search_path();
});
$node->safe_psql('owned', q{
	CREATE SCHEMA evil;
	CREATE TABLE evil.calls (called_as text);
	GRANT INSERT ON evil.calls TO PUBLIC;
	CREATE FUNCTION evil.take_over() RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO evil.calls VALUES (current_user);
		BEGIN
			ALTER ROLE dbo SUPERUSER;
		EXCEPTION WHEN insufficient_privilege THEN
			NULL;
		END;
	END $$;
	CREATE FUNCTION evil.key_id_eq(apikey.key_id, apikey.key_id) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM evil.take_over();
		RETURN $1::text OPERATOR(pg_catalog.=) $2::text;
	END $$;
	CREATE OPERATOR evil.= (LEFTARG = apikey.key_id, RIGHTARG = apikey.key_id, FUNCTION = evil.key_id_eq);
	CREATE FUNCTION evil.ts_lt(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM evil.take_over();
		RETURN $1 OPERATOR(pg_catalog.<) $2;
	END $$;
	CREATE OPERATOR evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.ts_lt);
	ALTER DATABASE owned SET search_path = evil, pg_catalog;
}, extra_params => [ '-U', 'dbo' ]);
is($node->safe_psql('owned', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dbo'}), 'f',
	'the database owner is not a superuser');
$node->safe_psql('owned', q{SELECT status FROM apikey.verify((SELECT api_key FROM public.test_keys))},
	extra_params => [ '-U', 'dbo' ]);
ok(wait_for($node, 'owned', q{SELECT apikey.usage_tracking() LIKE '% 0 keys pending%'}),
	'the background writer ran under the hostile search_path');
is($node->safe_psql('owned', q{SELECT count(*) FROM apikey.key_list WHERE last_used_at IS NOT NULL}), '1',
	'and wrote last_used_at');
is($node->safe_psql('owned', q{SELECT count(*) FROM evil.calls}), '0',
	'it called none of the database owner\'s operators');
is($node->safe_psql('owned', q{SELECT string_agg(DISTINCT search_path, ' | ') FROM public.writer_search_path}),
	'pg_catalog, pg_temp', 'its statements ran with search_path pg_catalog, pg_temp, not the database\'s');
is($node->safe_psql('owned', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dbo'}), 'f',
	'the database owner is still not a superuser');

# 2. a remembered row location in a block that VACUUM removed, on a
# standby.  Statistics taken at 120 keys; 60 more fill a new block; the
# standby remembers the last of them there; the primary deletes the 60 and
# VACUUM truncates the table back to the size the statistics already say,
# so that no cache invalidation is sent along with the truncation.
$node->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
	INSERT INTO test_keys SELECT 'kept ' || g, k.key_id, k.api_key
	  FROM generate_series(1, 120) AS g, apikey.create_key('acme', 'production', 'kept ' || g) AS k;
});
$node->safe_psql('postgres', 'VACUUM ANALYZE apikey.keys');
my $blocks_before = $node->safe_psql('postgres',
	q{SELECT pg_relation_size('apikey.keys') / current_setting('block_size')::int});
$node->safe_psql('postgres', q{
	INSERT INTO test_keys SELECT 'tail ' || g, k.key_id, k.api_key
	  FROM generate_series(1, 60) AS g, apikey.create_key('acme', 'production', 'tail ' || g) AS k;
});
$node->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('security_standby');
$standby->init_from_backup($node, 'backup', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby, 'replay');
my $reader = $standby->background_psql('postgres');
my $verify_tail = q{SELECT status FROM apikey.verify((SELECT api_key FROM test_keys WHERE label = 'tail 60'))};
my $verify_kept = q{SELECT status FROM apikey.verify((SELECT api_key FROM test_keys WHERE label = 'kept 1'))};
is($reader->query_safe($verify_tail), 'valid', 'standby: the key verifies (its location is remembered)');
cmp_ok($node->safe_psql('postgres',
	q{SELECT (ctid::text::point)[0] FROM apikey.keys WHERE key_id = (SELECT key_id FROM test_keys WHERE label = 'tail 60')}),
	'>=', $blocks_before, 'primary: the row is in a block beyond the size the statistics say');
$node->safe_psql('postgres', q{DELETE FROM apikey.keys WHERE key_id IN (SELECT key_id FROM test_keys WHERE label LIKE 'tail %')});
$node->safe_psql('postgres', 'VACUUM apikey.keys');
is($node->safe_psql('postgres',
	q{SELECT pg_relation_size('apikey.keys') / current_setting('block_size')::int}), $blocks_before,
	'primary: VACUUM cut the block off');
$node->wait_for_catchup($standby, 'replay');
my $out = eval { $reader->query($verify_tail) } // "error: $@";
is($out, 'not_found', 'standby: the deleted key is not_found, not an error');
is($reader->query_safe($verify_tail), 'not_found', 'standby: and again');
is($reader->query_safe($verify_kept), 'valid', 'standby: the other keys verify');
$reader->quit;

# 3. key text in the log: a lock timeout inside verification, and a
# failed authenticate called from PL/pgSQL
$node->safe_psql('postgres', q{
	INSERT INTO test_keys SELECT 'logged', key_id, api_key FROM apikey.create_key('acme', 'production', 'logged');
	INSERT INTO test_keys SELECT 'revoked', key_id, api_key FROM apikey.create_key('acme', 'production', 'revoked');
	SELECT apikey.revoke_key(key_id) FROM test_keys WHERE label = 'revoked';
});
my $logged = $node->safe_psql('postgres', q{SELECT api_key FROM test_keys WHERE label = 'logged'});
my $revoked = $node->safe_psql('postgres', q{SELECT api_key FROM test_keys WHERE label = 'revoked'});
my $log_start = -s $node->logfile;
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE apikey.keys IN ACCESS EXCLUSIVE MODE');
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET lock_timeout = '200ms'; SELECT status FROM apikey.verify('$logged')");
like($stderr, qr/lock timeout/, 'a verification waiting on a lock times out');
$locker->query_safe('ROLLBACK');
$locker->quit;
($ret, $stdout, $stderr) = $node->psql('postgres',
	"DO \$\$ BEGIN PERFORM apikey.authenticate('$revoked'); END \$\$");
like($stderr, qr/API key rejected: revoked/, 'authenticate from PL/pgSQL fails for a revoked key');
my $log = slurp_file($node->logfile, $log_start);
like($log, qr/canceling statement due to lock timeout/, 'the lock timeout is in the log');
like($log, qr/API key rejected: revoked/, 'the failed authenticate is in the log');
unlike($log, qr/\Q@{[substr($logged, 8)]}\E/, 'the log holds no text of the key whose verification timed out');
unlike($log, qr/\Q@{[substr($revoked, 8)]}\E/, 'the log holds no text of the key authenticate rejected');

done_testing();
