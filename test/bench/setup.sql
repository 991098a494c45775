-- Benchmark scaffolding (schema bench), loaded after the extension and the peer.
-- psql variables: tenants (how many apikey tenants to create).
CREATE SCHEMA bench;

-- Time one statement inside the server: milliseconds from clock_timestamp()
-- before to after, and the statement's single bigint result (a count, used
-- as a sanity check).  Nothing crosses the wire but these two numbers.
CREATE FUNCTION bench.run(q text, OUT ms float8, OUT n bigint) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  EXECUTE q INTO n;
  ms := 1000 * extract(epoch FROM clock_timestamp() - t0);
END $$;

-- apikey tenants t1..tN, each with production (live) and preview (test)
SELECT count(apikey.create_tenant('t' || g, 'bench tenant ' || g)) AS tenants
  FROM generate_series(1, :tenants) g;

-- every apikey key text created, in creation order
CREATE TABLE bench.created (seq bigserial PRIMARY KEY, k text NOT NULL);
-- every peer key text created beyond peer.plain (growth phase)
CREATE TABLE bench.pcreated (seq bigserial PRIMARY KEY, k text NOT NULL);
