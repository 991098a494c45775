-- The kill switch's SQL surface, on this suite's server (which preloads
-- apikey): revoke_key(..., terminate => true) revokes and says so in the
-- audit log; terminate => NULL is refused and revokes nothing; without
-- terminate, revoke_key is as before.  What terminate does to running
-- transactions is in test/t/075_kill_switch.pl; without
-- shared_preload_libraries it is refused (test/t/070_usage_control.pl).
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

SELECT apikey.revoke_key(:'id_a', 'incident', terminate => NULL);
SELECT pg_temp.sqlstate_of(format('SELECT apikey.revoke_key(%L, terminate => NULL)', :'id_a'));
SELECT status FROM apikey.verify(:'key_a');

-- terminate => true revokes, and the audit log says it terminated
SELECT apikey.revoke_key(:'id_a', 'incident', terminate => true);
SELECT status FROM apikey.verify(:'key_a');

-- the two-argument call of earlier versions, and the one-argument call
SELECT apikey.reactivate_key(:'id_a');
SELECT apikey.revoke_key(:'id_a', 'incident');
SELECT apikey.revoke_key(:'id_b');
SELECT status FROM apikey.verify(:'key_a');
SELECT status FROM apikey.verify(:'key_b');
SELECT action, details - 'revoked_at' AS details, details ? 'revoked_at' AS says_when
  FROM apikey.audit_log WHERE tenant = 'kill' AND action IN ('revoked', 'reactivated') ORDER BY event_id;

-- terminate => false says nothing of terminate
SELECT apikey.reactivate_key(:'id_b');
SELECT apikey.revoke_key(:'id_b', terminate => false);
SELECT details FROM apikey.audit_log WHERE key_id = :'id_b' AND action = 'revoked' ORDER BY event_id DESC LIMIT 1;
SELECT pg_get_function_identity_arguments('apikey.revoke_key'::regproc);
