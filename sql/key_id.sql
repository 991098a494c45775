-- apikey.key_id: the public handle of a key, 11 base62 characters.
\set SHOW_CONTEXT never
SELECT '00000000000'::apikey.key_id, 'LygHa16AHYF'::apikey.key_id AS max_value;
SELECT 'Abc123XYZ09'::apikey.key_id::text = 'Abc123XYZ09' AS round_trip;

-- text order and value order agree (0-9 < A-Z < a-z)
SELECT k FROM unnest('{LygHa16AHYF,00000000001,AAAAAAAAAAA,0000000000a,99999999999}'::apikey.key_id[]) k ORDER BY k;
SELECT '0000000000A'::apikey.key_id < '0000000000a'::apikey.key_id AS upper_before_lower,
       '0000000000a'::apikey.key_id > '00000000009'::apikey.key_id AS lower_after_digit,
       'Abc123XYZ09'::apikey.key_id = 'Abc123XYZ09' AS eq,
       'Abc123XYZ09'::apikey.key_id <> 'Abc123XYZ0A' AS ne,
       'Abc123XYZ09'::apikey.key_id <= 'Abc123XYZ09' AS le,
       'Abc123XYZ09'::apikey.key_id >= 'Abc123XYZ09' AS ge;

-- btree and hash indexes, hash joins and grouping
CREATE TEMP TABLE ids AS SELECT ('0000000' || lpad(i::text, 4, '0'))::apikey.key_id AS id FROM generate_series(1, 1000) i;
CREATE INDEX ON ids (id);
CREATE INDEX ON ids USING hash (id);
ANALYZE ids;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM ids WHERE id = '00000000500';
SELECT count(*) FROM ids WHERE id = '00000000500';
SELECT count(*) FROM ids WHERE id BETWEEN '00000000100' AND '00000000199';
RESET enable_seqscan;
SET enable_mergejoin = off; SET enable_nestloop = off;
SELECT count(*) FROM ids a JOIN ids b USING (id);
RESET enable_mergejoin; RESET enable_nestloop;
SELECT count(DISTINCT id) FROM ids;

-- binary I/O: eight bytes on the wire, the same value back
SELECT apikey.key_id_send('Abc123XYZ09') AS wire;
SELECT length(apikey.key_id_send('Abc123XYZ09')) AS bytes;

-- bad input: a clear 22P02 error quoting the input, unless it may be key text;
-- eleven base62 characters above the largest key id: 22003, out of range
CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;
SELECT v, pg_temp.sqlstate_of(format('SELECT %L::apikey.key_id', v)) AS sqlstate
  FROM unnest(ARRAY['', 'short', 'LygHa16AHYG', 'Abc123XYZ0!', 'ak_live_Abc123XYZ09' || repeat('x', 33), 'Abc123XYZ09 ']) v;
SELECT ''::apikey.key_id;
SELECT 'short'::apikey.key_id;
SELECT 'LygHa16AHYG'::apikey.key_id;
SELECT 'Abc123XYZ0!'::apikey.key_id;
SELECT ('ak_live_Abc123XYZ09' || repeat('x', 33))::apikey.key_id;
SELECT 'Abc123XYZ09Abc123XYZ09Abc123XYZ09Abc'::apikey.key_id;
