\set n random(1, 40)
BEGIN;
SELECT apikey.revoke_key(key_id, 'load test') FROM load.keys WHERE client = :client_id AND n = :n;
SELECT apikey.reactivate_key(key_id) FROM load.keys WHERE client = :client_id AND n = :n;
INSERT INTO load.done VALUES ('revoke+reactivate');
COMMIT;
