\set t random(1, 10)
BEGIN;
SELECT key_id FROM apikey.create_key('load' || :t, 'production', 'created under load');
INSERT INTO load.done VALUES ('create');
COMMIT;
