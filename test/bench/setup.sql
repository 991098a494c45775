-- Benchmark scaffolding (schema bench), loaded after the extension.
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

-- Bytes per row of a table on disk: heap (with its free space and
-- visibility maps), TOAST (with its index), all indexes; and the rows.
CREATE FUNCTION bench.bytes_per_row(rel regclass,
		OUT heap numeric, OUT toast numeric, OUT indexes numeric, OUT total numeric, OUT n bigint)
	LANGUAGE plpgsql AS $$
DECLARE t bigint; tt bigint; i bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s', rel) INTO n;
  SELECT coalesce(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) INTO tt
    FROM pg_class c WHERE c.oid = rel;
  t := pg_table_size(rel);
  i := pg_indexes_size(rel);
  heap := round((t - tt) / greatest(n, 1)::numeric);
  toast := round(tt / greatest(n, 1)::numeric);
  indexes := round(i / greatest(n, 1)::numeric);
  total := round(pg_total_relation_size(rel) / greatest(n, 1)::numeric);
END $$;

-- Per cent of a table's pages (heap, TOAST, indexes) held in shared_buffers
-- (needs pg_buffercache; PL/pgSQL so that loading this file does not).
CREATE FUNCTION bench.resident_pct(rel regclass) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN
  RETURN (
    WITH rels AS (
      SELECT rel::oid AS oid
      UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid = rel
      UNION ALL SELECT reltoastrelid FROM pg_class WHERE oid = rel AND reltoastrelid <> 0
      UNION ALL SELECT i.indexrelid FROM pg_class c JOIN pg_index i ON i.indrelid = c.reltoastrelid
       WHERE c.oid = rel)
    SELECT round(100.0 * (SELECT count(*) FROM public.pg_buffercache b JOIN rels r
                            ON b.relfilenode = pg_relation_filenode(r.oid)
                           AND b.relforknumber = 0
                           AND b.reldatabase = (SELECT oid FROM pg_database WHERE datname = current_database()))
                 / greatest(1, (SELECT sum(pg_relation_size(oid)) FROM rels) / 8192), 1));
END $$;

-- apikey tenants t1..tN, each with production (live) and preview (test)
SELECT count(apikey.create_tenant('t' || g, 'bench tenant ' || g)) AS tenants
  FROM generate_series(1, :tenants) g;

-- every apikey key text created, in creation order
CREATE TABLE bench.created (seq bigserial PRIMARY KEY, k text NOT NULL);
