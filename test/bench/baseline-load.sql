-- Load keys into the baseline (baseline.sql) for the benchmark: keys
-- :from .. :to of environment 'live', over :tenants tenants.  The benchmark
-- presents the key texts again, so they are kept in baseline.issued (a real
-- deployment keeps none).
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS baseline.issued (n bigint PRIMARY KEY, k text NOT NULL);
INSERT INTO baseline.issued (n, k)
SELECT g, baseline.create_key(1 + g % :tenants, 'live', 'bench key ' || g)
  FROM generate_series(:from, :to) g;
