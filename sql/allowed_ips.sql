-- IP allowlists: a key with allowed_ips is valid only from those networks.
-- The address is verify's (or authenticate's) client_ip, else the
-- connection's; this suite connects over a Unix socket, which has none, so
-- a key with an allowlist is ip_not_allowed here unless client_ip is given.
-- (test/t/070_client_ip.pl covers connections over TCP.)
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('ip-acme') > 0 AS created;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;

SELECT inet_client_addr() IS NULL AS over_a_unix_socket;

SELECT key_id, api_key FROM apikey.create_key('ip-acme', 'production', 'office',
       scopes => '{orders:read}', allowed_ips => '{192.0.2.0/24,10.0.0.0/8,2001:db8::/32,10.0.0.0/8}') \gset
SELECT key_id AS host_id, api_key AS host_key FROM apikey.create_key('ip-acme', 'production', 'one host',
       allowed_ips => '{198.51.100.7/32}') \gset
SELECT api_key AS free_key FROM apikey.create_key('ip-acme', 'production', 'anywhere') \gset

-- stored sorted and without duplicates
SELECT name, allowed_ips FROM apikey.key_list WHERE tenant = 'ip-acme' ORDER BY name;

SELECT k.label, ip AS client_ip, v.status, v.valid, v.key_id IS NOT NULL AS key_shown
  FROM (VALUES ('office', :'api_key'), ('one host', :'host_key'), ('anywhere', :'free_key')) AS k(label, api_key),
       unnest(ARRAY['192.0.2.1', '192.0.3.1', '10.200.0.1', '2001:db8::1', '2001:db9::1',
                    '198.51.100.7', '198.51.100.8', '::ffff:192.0.2.1', '::ffff:192.0.3.1', NULL]::inet[]) AS ip,
       LATERAL apikey.verify(k.api_key, client_ip => ip) AS v
 ORDER BY k.label, ip NULLS LAST;

-- (an IPv4 address written as IPv6, ::ffff:a.b.c.d, is that IPv4 address)

-- checked after the key's states and the request's scope and resource
SELECT apikey.revoke_key(:'host_id');
SELECT status FROM apikey.verify(:'host_key', client_ip => '192.0.2.1');
SELECT apikey.reactivate_key(:'host_id');
SELECT status FROM apikey.verify(:'api_key', scope => 'orders:write', client_ip => '192.0.2.1') AS wrong_scope_wrong_ip;
SELECT status FROM apikey.verify(:'api_key', 'preview', client_ip => '192.0.2.1') AS wrong_environment_wrong_ip;

-- authenticate: the same check; refused with the status, no identity
SELECT (apikey.authenticate(:'api_key', 'orders:read', client_ip => '10.1.2.3')).status;
SELECT pg_temp.try(format('SELECT apikey.authenticate(%L, client_ip => %L)', :'api_key', '203.0.113.9')) AS elsewhere;
SELECT pg_temp.try(format('SELECT apikey.authenticate(%L)', :'api_key')) AS unix_socket_no_address;
SELECT apikey.current_key_id() AS identity_after_refusals;

-- editing later, audited with before and after; NULL: from anywhere
SELECT apikey.set_key_allowed_ips(:'host_id', '{203.0.113.0/24}');
SELECT status FROM apikey.verify(:'host_key', client_ip => '203.0.113.9');
SELECT status FROM apikey.verify(:'host_key', client_ip => '198.51.100.7');
SELECT apikey.set_key_allowed_ips(:'host_id', NULL);
SELECT status FROM apikey.verify(:'host_key') AS from_the_socket;
SELECT action, details - 'revoked_at' AS details FROM apikey.audit_log WHERE key_id = :'host_id' ORDER BY event_id;

-- bad input: a clear error, nothing written
SELECT count(*) AS keys_before FROM apikey.keys WHERE tenant = 'ip-acme' \gset
SELECT stmt, pg_temp.try(stmt) AS result FROM unnest(ARRAY[
	$$SELECT apikey.create_key('ip-acme', 'production', 'x', allowed_ips => '{10.0.0.1/8}')$$,
	$$SELECT apikey.create_key('ip-acme', 'production', 'x', allowed_ips => '{office}')$$,
	$$SELECT apikey.create_key('ip-acme', 'production', 'x', allowed_ips => '{10.0.0.0/33}')$$,
	$$SELECT apikey.create_key('ip-acme', 'production', 'x', allowed_ips => '{}')$$,
	$$SELECT apikey.create_key('ip-acme', 'production', 'x', allowed_ips => '{10.0.0.0/8,NULL}')$$,
	$$SELECT apikey.create_key('ip-acme', 'production', 'x', allowed_ips => '{{10.0.0.0/8}}')$$,
	$$SELECT apikey.create_key('ip-acme', 'production', 'x', allowed_ips => ARRAY(SELECT ('10.0.' || i || '.0/24')::cidr FROM generate_series(1, 65) i))$$,
	$$SELECT apikey.set_key_allowed_ips(NULL, '{10.0.0.0/8}')$$,
	$$SELECT apikey.set_key_allowed_ips('00000000000', '{10.0.0.0/8}')$$,
	$$SELECT apikey.verify('x', client_ip => '10.0.0.300')$$
]) AS stmt;
SELECT count(*) - :keys_before AS keys_written_by_errors FROM apikey.keys WHERE tenant = 'ip-acme';
SELECT pg_temp.try(format('SELECT apikey.set_key_allowed_ips(%L, %L)', :'key_id', '{}')) AS set_empty;
SELECT allowed_ips AS unchanged FROM apikey.key_list WHERE key_id = :'key_id';
