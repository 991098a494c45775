-- The load test's data: tenants, keys the clients change (each client its
-- own, so the clients never wait on or undo each other), and stable keys
-- that only authenticate.  psql variables: clients, per_client, stable.
SELECT count(apikey.create_tenant('load' || t)) FROM generate_series(1, 10) t;
CREATE SCHEMA load;
CREATE TABLE load.keys (client int, n int, key_id apikey.key_id, api_key text,
                        PRIMARY KEY (client, n));
INSERT INTO load.keys
	SELECT c, n, k.key_id, k.api_key
	  FROM generate_series(0, :clients - 1) c, generate_series(1, :per_client) n,
	       LATERAL apikey.create_key('load' || (1 + n % 10), 'production', 'churn ' || c || '/' || n) k;
CREATE TABLE load.stable (id int PRIMARY KEY, api_key text);
INSERT INTO load.stable
	SELECT n, (apikey.create_key('load' || (1 + n % 10), 'production', 'stable ' || n,
	                              scopes => '{orders:read}')).api_key
	  FROM generate_series(1, :stable) n;
-- one row per committed change, written in the change's own transaction
CREATE TABLE load.done (kind text NOT NULL);
