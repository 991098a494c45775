-- A transaction may authenticate any number of times: the identity is
-- replaced, not stacked, so backend memory stays bounded by the nesting of
-- savepoints, not by the number of calls.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('memory') > 0 AS created;
CREATE TEMP TABLE memory_key AS
SELECT api_key FROM apikey.create_key('memory', 'production', 'hot', scopes => '{orders:read}');

CREATE FUNCTION pg_temp.top_bytes() RETURNS bigint LANGUAGE sql AS
$$ SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'TopMemoryContext' $$;

BEGIN;
SELECT status FROM apikey.authenticate((SELECT api_key FROM memory_key));
SELECT pg_temp.top_bytes() AS before \gset
DO $$
DECLARE
	k text := (SELECT api_key FROM memory_key);
BEGIN
	FOR i IN 1..100000 LOOP
		PERFORM apikey.authenticate(k, 'orders:read');
	END LOOP;
END
$$;
SELECT pg_temp.top_bytes() - :before < 65536 AS bounded_after_100000_calls,
       apikey.current_tenant() AS tenant;
-- savepoints stack an identity each, and give it back
SAVEPOINT a;
SELECT status FROM apikey.authenticate((SELECT api_key FROM memory_key));
SAVEPOINT b;
SELECT status FROM apikey.authenticate((SELECT api_key FROM memory_key));
RELEASE SAVEPOINT b;
ROLLBACK TO SAVEPOINT a;
SELECT apikey.current_tenant() AS tenant_after_rollback_to_a;
COMMIT;
-- a released savepoint hands its identity to its parent, which keeps only
-- the newer one: a loop of exception blocks (each a subtransaction that
-- commits) stays bounded too
BEGIN;
SELECT status FROM apikey.authenticate((SELECT api_key FROM memory_key));
SELECT pg_temp.top_bytes() AS before \gset
DO $$
DECLARE
	k text := (SELECT api_key FROM memory_key);
BEGIN
	FOR i IN 1..20000 LOOP
		BEGIN
			PERFORM apikey.authenticate(k, 'orders:read');
		EXCEPTION WHEN others THEN
			RAISE;
		END;
	END LOOP;
END
$$;
SELECT pg_temp.top_bytes() - :before < 65536 AS bounded_after_20000_released_subtransactions,
       apikey.current_tenant() AS tenant;
ROLLBACK;
SELECT apikey.current_tenant() AS tenant_after_commit;
