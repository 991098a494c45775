-- set_actor: the human behind a change (e.g. the application's signed-in
-- user) labels the changes of the current transaction: audit_log.actor,
-- and created_by of the keys and key roles created under it.  Without a
-- label both name the database role.  The label ends with the transaction
-- like the identity, so it never reaches the next client of a pooled
-- connection.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('act-acme') > 0 AS created;

CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;
-- the label the audit trail would record now (internal; as the owner)
CREATE FUNCTION pg_temp.actor() RETURNS text LANGUAGE sql AS $$ SELECT apikey_internal.actor() $$;

-- no label: the role
SELECT key_id AS plain_id FROM apikey.create_key('act-acme', 'production', 'unlabelled') \gset
SELECT created_by FROM apikey.key_list WHERE key_id = :'plain_id';

-- labelled: the key's creator, the audit events, the role's creator
BEGIN;
SELECT apikey.set_actor('alice@acme.example');
SELECT key_id FROM apikey.create_key('act-acme', 'production', 'labelled') \gset
SELECT apikey.rename_key(:'key_id', 'labelled, renamed');
SELECT apikey.create_key_role('act-acme', 'viewer', '{orders:read}');
COMMIT;
SELECT created_by FROM apikey.key_list WHERE key_id = :'key_id';
SELECT name, created_by FROM apikey.key_role_list WHERE tenant = 'act-acme';
-- the label ended with the transaction
SELECT pg_temp.actor() AS after_commit;
SELECT apikey.rename_key(:'key_id', 'labelled');
SELECT action, actor_role, actor FROM apikey.audit_log
 WHERE tenant = 'act-acme' AND action NOT IN ('tenant_created', 'environment_created') ORDER BY event_id;

-- ends with a rollback, and with PREPARE TRANSACTION
BEGIN;
SELECT apikey.set_actor('mallory');
ROLLBACK;
SELECT pg_temp.actor() AS after_rollback;
BEGIN;
SELECT apikey.set_actor('mallory');
PREPARE TRANSACTION 'act_prepared';
SELECT pg_temp.actor() AS after_prepare;
COMMIT PREPARED 'act_prepared';
-- outside a transaction block it lasts for its own statement only
SELECT apikey.set_actor('alice');
SELECT pg_temp.actor() AS next_statement;
-- a plain SET cannot set it
SELECT pg_temp.try($$SET apikey.actor = 'mallory'$$) AS set_actor_setting;

-- savepoints: like SET LOCAL, rolling back to a savepoint restores the
-- label in force before it; a released one keeps the newer label; NULL
-- clears it
BEGIN;
SELECT apikey.set_actor('alice');
SAVEPOINT a;
SELECT apikey.set_actor('bob');
SELECT pg_temp.actor() AS in_savepoint;
ROLLBACK TO SAVEPOINT a;
SELECT pg_temp.actor() AS after_rollback_to_savepoint;
SAVEPOINT b;
SELECT apikey.set_actor('carol');
RELEASE SAVEPOINT b;
SELECT pg_temp.actor() AS after_release;
SAVEPOINT c;
SELECT apikey.set_actor(NULL);
SELECT pg_temp.actor() AS cleared;
ROLLBACK TO SAVEPOINT c;
SELECT pg_temp.actor() AS after_rollback_of_clear;
SELECT apikey.set_actor('dave');
SELECT apikey.set_actor('erin');
SELECT pg_temp.actor() AS replaced;
COMMIT;

-- memory stays bounded however often a transaction labels itself
CREATE FUNCTION pg_temp.top_bytes() RETURNS bigint LANGUAGE sql AS
$$ SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'TopMemoryContext' $$;
BEGIN;
SELECT apikey.set_actor('warm-up');
SELECT pg_temp.top_bytes() AS before \gset
DO $$ BEGIN FOR i IN 1..100000 LOOP PERFORM apikey.set_actor('user ' || i); END LOOP; END $$;
SELECT pg_temp.top_bytes() - :before < 65536 AS bounded_after_100000_calls, pg_temp.actor() AS last;
COMMIT;
-- and however many subtransactions that label it commit (exception blocks):
-- the parent keeps the newer label only
BEGIN;
SELECT apikey.set_actor('warm-up');
SELECT pg_temp.top_bytes() AS before \gset
DO $$
BEGIN
	FOR i IN 1..20000 LOOP
		BEGIN
			PERFORM apikey.set_actor('user ' || i);
		EXCEPTION WHEN others THEN
			RAISE;
		END;
	END LOOP;
END
$$;
SELECT pg_temp.top_bytes() - :before < 65536 AS bounded_after_20000_released_subtransactions,
       pg_temp.actor() AS last;
COMMIT;

-- validated as names are: 1 to 200 characters, no control characters
SELECT stmt, pg_temp.try(stmt) AS result FROM unnest(ARRAY[
	$$SELECT apikey.set_actor('')$$,
	$$SELECT apikey.set_actor('   ')$$,
	$$SELECT apikey.set_actor(repeat('a', 201))$$,
	$$SELECT apikey.set_actor(E'alice\nbob')$$,
	$$SELECT apikey.set_actor(E'alice\u007f')$$,
	$$SELECT apikey.set_actor(repeat('ä', 200))$$,
	$$SELECT apikey.set_actor('Zoë Ångström <zoe@example.com>')$$
]) AS stmt;
