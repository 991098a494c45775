\set i random(1, 50)
BEGIN;
SELECT status FROM apikey.authenticate((SELECT api_key FROM load.stable WHERE id = :i), 'orders:read');
SELECT apikey.current_tenant();
COMMIT;
