# Adoption and incidents across sessions.
#
# 1. Events: every audit event is sent at commit on the channel
#    apikey_events, as JSON holding ids only (no key text, no hash, no
#    details); nothing is sent before the commit, nor for a rollback.
# 2. Imported keys: a backend that has seen no imported key (and so does
#    not look for any) sees one imported by another session from its next
#    statement on, even inside an open transaction; once the last imported
#    key is deleted it stops looking again.
# 3. import_key and report_leak, which take key text, keep a failing
#    statement out of the server log.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ApikeyTAP;

my $node = new_node('incidents');
$node->append_conf('postgresql.conf', "max_prepared_transactions = 2\n");
$node->restart;
$node->safe_psql('postgres', q{
	CREATE EXTENSION apikey;
	SELECT apikey.create_tenant('acme');
	CREATE TABLE test_keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);
});

# 1. events
my $listener = $node->background_psql('postgres', on_error_stop => 0);
$listener->query_safe('LISTEN apikey_events');
my $actor = $node->background_psql('postgres', on_error_stop => 0);
# the notifications psql printed since the last call, as decoded payloads
sub notifications
{
	my $out = $listener->query('SELECT 1');
	return [ map { decode_json($_) } $out =~ /^Asynchronous notification "apikey_events" with payload "(.*)" received from server process with PID \d+\.$/mg ];
}
notifications();

$actor->query_safe(q{BEGIN;
	INSERT INTO test_keys SELECT 'evented', key_id, api_key FROM apikey.create_key('acme', 'production', 'evented')});
is(scalar @{ notifications() }, 0, 'nothing is sent before the commit');
$actor->query_safe('COMMIT');
my $events = notifications();
is(scalar @$events, 1, 'the creation is sent at commit');
$actor->query_safe(q{
	SELECT apikey.revoke_key(key_id, 'because') FROM test_keys WHERE label = 'evented';
	SELECT apikey.report_leak(api_key, 'https://example.com/leak') FROM test_keys WHERE label = 'evented';
	SELECT apikey.import_key('acme', 'production', 'legacy', api_key => 'legacy-token-for-events-0001');
	BEGIN;
	SELECT apikey.delete_key(key_id) FROM test_keys WHERE label = 'evented';
	ROLLBACK;
});
push @$events, @{ notifications() };
is(join(',', map { $_->{action} } @$events), 'created,revoked,leaked,imported',
	'one event per audit event, in order; the rolled-back deletion is not sent');
is(join(',', sort keys %{ $events->[0] }), 'action,at,event_id,key_id,tenant_id',
	'the payload holds the event id, time, action, tenant id and key id, nothing else');
my $audit = $node->safe_psql('postgres', q{
	SELECT string_agg(format('%s|%s|%s|%s', event_id, action, tenant_id, key_id), ',' ORDER BY event_id)
	  FROM apikey.audit_log
	 WHERE event_id >= (SELECT min(event_id) FROM apikey.audit_log WHERE details ->> 'name' = 'evented')});
is(join(',', map { join('|', $_->{event_id}, $_->{action}, $_->{tenant_id}, $_->{key_id}) } @$events), $audit,
	'the payloads name the audit events as audit_log has them');
my $texts = $node->safe_psql('postgres', q{
	SELECT string_agg(api_key || ' ' || encode(k.key_hash, 'hex'), ' ')
	  FROM test_keys AS t JOIN apikey.keys AS k USING (key_id) WHERE label = 'evented'});
my $raw = encode_json($events);
my @leaks = grep { index($raw, $_) >= 0 } (split(/ /, $texts), 'legacy-token-for-events-0001', 'because');
is(scalar @leaks, 0, 'no payload holds key text, a hash or details');
$actor->query_safe(q{
	BEGIN;
	SELECT apikey.rename_key(key_id, 'kept') FROM test_keys WHERE label = 'evented';
	SAVEPOINT s;
	SELECT apikey.describe_key(key_id, 'rolled back') FROM test_keys WHERE label = 'evented';
	ROLLBACK TO SAVEPOINT s;
	COMMIT;
});
is(join(',', map { $_->{action} } @{ notifications() }), 'renamed',
	'an event written in a savepoint rolled back is not sent');
$actor->query_safe(q{
	BEGIN;
	SELECT apikey.rename_key(key_id, 'prepared') FROM test_keys WHERE label = 'evented';
	PREPARE TRANSACTION 'apikey_events';
});
$node->safe_psql('postgres', q{COMMIT PREPARED 'apikey_events'});
is($node->safe_psql('postgres', q{SELECT name FROM apikey.key_list WHERE key_id = (SELECT key_id FROM test_keys WHERE label = 'evented')}),
	'prepared', 'a transaction that changes keys can be prepared and committed');
is(scalar @{ notifications() }, 0, 'the events of a prepared transaction are not sent');
$listener->quit;

# 2. imported keys seen across sessions
my $verifier = $node->background_psql('postgres', on_error_stop => 0);
my $status = sub { $verifier->query_safe("SELECT status FROM apikey.verify('$_[0]')") };
$node->safe_psql('postgres', q{SELECT apikey.delete_key(key_id) FROM apikey.key_list WHERE imported});
is($status->('old-system-token-0001'), 'malformed', 'garbage is malformed (no imported key)');
$verifier->query_safe('BEGIN');
is($status->('old-system-token-0001'), 'malformed', 'in an open transaction too');
$node->safe_psql('postgres',
	q{SELECT apikey.import_key('acme', 'production', 'old', api_key => 'old-system-token-0001')});
is($status->('old-system-token-0001'), 'valid',
	'imported by another session: valid in the next statement of the open transaction');
$verifier->query_safe('COMMIT');
is($status->('old-system-token-0001'), 'valid', 'and in the next transaction');
is($status->('old-system-token-0002'), 'malformed', 'other garbage is still malformed');
$node->safe_psql('postgres', q{SELECT apikey.delete_key(key_id) FROM apikey.key_list WHERE imported});
is($status->('old-system-token-0001'), 'malformed', 'deleted by another session: malformed again');
is($node->safe_psql('postgres', 'SELECT count(*) FROM apikey.imported_keys'), '0', 'no imported key is left');
# a backend that stops looking reads no table for garbage
my $reads = q{SELECT pg_stat_get_xact_numscans('apikey.imported_keys_pkey'::regclass)
	+ pg_stat_get_xact_blocks_fetched('apikey.imported_keys'::regclass)};
$verifier->query_safe('BEGIN');
my $before = $verifier->query_safe($reads);
$verifier->query_safe(q{SELECT count(*) FROM generate_series(1, 1000) AS g, apikey.verify('garbage ' || g)});
is($verifier->query_safe($reads) - $before, 0, 'with no imported key, 1000 garbage texts read nothing of imported_keys');
$verifier->query_safe('COMMIT');
$node->safe_psql('postgres',
	q{SELECT apikey.import_key('acme', 'production', 'again', api_key => 'old-system-token-0003')});
$verifier->query_safe('BEGIN');
$before = $verifier->query_safe(q{SELECT pg_stat_get_xact_numscans('apikey.imported_keys_pkey'::regclass)});
$verifier->query_safe(q{SELECT count(*) FROM generate_series(1, 1000) AS g, apikey.verify('garbage ' || g)});
is($verifier->query_safe(q{SELECT pg_stat_get_xact_numscans('apikey.imported_keys_pkey'::regclass)}) - $before, 1000,
	'with an imported key, one index probe per garbage text');
$verifier->query_safe('COMMIT');
$verifier->quit;
$actor->quit;

# 3. import_key and report_leak take key text: when they fail, the
# statement (which may hold it as a literal) stays out of the server log
my $log_start = -s $node->logfile;
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT apikey.import_key('acme', 'production', 'dup', api_key => 'old-system-token-0003')});
like($stderr, qr/a key with this text was imported before/, 'importing a text twice fails');
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT apikey.report_leak('old-system-token-0003', E'bad\nsource')});
like($stderr, qr/source must not contain control characters/, 'a leak report with a bad source fails');
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT apikey.report_leak('old-system-token-0004', 'x') || (1 / (random() * 0)::int)::text});
like($stderr, qr/division by zero/, 'a statement failing after report_leak ran');
my $log = slurp_file($node->logfile, $log_start);
like($log, qr/a key with this text was imported before/, 'the failures are in the log');
unlike($log, qr/old-system-token-000[34]/, 'the key texts are not');

done_testing();
