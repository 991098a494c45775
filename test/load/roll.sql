\set n random(1, 40)
BEGIN;
UPDATE load.keys SET api_key = apikey.roll_key(key_id) WHERE client = :client_id AND n = :n;
INSERT INTO load.done VALUES ('roll');
COMMIT;
