-- The kill switch without shared_preload_libraries (this suite's server):
-- revoke_key(..., terminate => true) is a clear error and revokes nothing;
-- without terminate, revoke_key is as before.  What terminate does is in
-- test/t/075_kill_switch.pl, on a server that preloads apikey.
\set SHOW_CONTEXT never
\set VERBOSITY default
SELECT apikey.create_tenant('kill') > 0 AS created;
SELECT key_id AS id_a, api_key AS key_a FROM apikey.create_key('kill', 'production', 'a') \gset
SELECT key_id AS id_b, api_key AS key_b FROM apikey.create_key('kill', 'production', 'b') \gset

CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;

SELECT apikey.revoke_key(:'id_a', 'incident', terminate => true);
SELECT pg_temp.sqlstate_of(format('SELECT apikey.revoke_key(%L, terminate => true)', :'id_a'));
SELECT status FROM apikey.verify(:'key_a');
SELECT apikey.revoke_key(:'id_a', 'incident', terminate => NULL);
SELECT pg_temp.sqlstate_of(format('SELECT apikey.revoke_key(%L, terminate => NULL)', :'id_a'));
SELECT status FROM apikey.verify(:'key_a');

-- the two-argument call of earlier versions, and the one-argument call
SELECT apikey.revoke_key(:'id_a', 'incident');
SELECT apikey.revoke_key(:'id_b');
SELECT status FROM apikey.verify(:'key_a');
SELECT status FROM apikey.verify(:'key_b');
SELECT action, details FROM apikey.audit_log WHERE tenant = 'kill' AND action = 'revoked' ORDER BY event_id;

-- terminate => false on an unpreloaded server is fine, and says nothing of terminate
SELECT apikey.reactivate_key(:'id_b');
SELECT apikey.revoke_key(:'id_b', terminate => false);
SELECT details FROM apikey.audit_log WHERE key_id = :'id_b' AND action = 'revoked' ORDER BY event_id DESC LIMIT 1;
SELECT pg_get_function_identity_arguments('apikey.revoke_key'::regproc);
