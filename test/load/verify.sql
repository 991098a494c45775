\set n random(1, 40)
\set c random(0, 1)
SELECT status FROM apikey.verify((SELECT api_key FROM load.keys WHERE client = :c AND n = :n));
