-- Verification remembers where each key's row was found, to skip the index
-- next time.  The location is only a hint: whatever happens to the row,
-- verification answers exactly as the index would.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('cache') > 0 AS created;
SELECT key_id, api_key FROM apikey.create_key('cache', 'production', 'cached') \gset

SELECT status FROM apikey.verify(:'api_key');            -- found through the index
SELECT status FROM apikey.verify(:'api_key');            -- found at the remembered place

-- the second verification really skips the index: within a transaction,
-- the index's scan count moves for the first verification of a key only
CREATE FUNCTION pg_temp.pkey_scans() RETURNS bigint LANGUAGE sql AS
$$ SELECT pg_stat_get_xact_numscans('apikey.keys_pkey'::regclass) $$;
CREATE FUNCTION pg_temp.reads() RETURNS bigint LANGUAGE sql AS
$$ SELECT pg_stat_get_xact_numscans('apikey.keys_pkey'::regclass)
        + pg_stat_get_xact_blocks_fetched('apikey.keys'::regclass)
        + pg_stat_get_xact_blocks_fetched('apikey.keys_pkey'::regclass) $$;
SELECT key_id AS fresh_id, api_key AS fresh_key FROM apikey.create_key('cache', 'production', 'fresh') \gset
BEGIN;
SELECT pg_temp.pkey_scans() AS s0 \gset
SELECT status FROM apikey.verify(:'fresh_key');
SELECT pg_temp.pkey_scans() - :s0 AS index_scans_first;
SELECT status FROM apikey.verify(:'fresh_key');
SELECT status FROM apikey.verify(:'fresh_key');
SELECT pg_temp.pkey_scans() - :s0 AS index_scans_after_three;
COMMIT;
-- and a key verified before, unchanged since, is answered from this
-- backend's memory: neither the table nor its index is read again
BEGIN;
SELECT pg_temp.reads() AS r0 \gset
SELECT status FROM apikey.verify(:'fresh_key');
SELECT status FROM apikey.verify(:'fresh_key');
SELECT pg_temp.reads() - :r0 AS reads_for_a_remembered_key;
COMMIT;
-- with the cache off, every verification descends the index
SET apikey.key_cache_size = 0;
BEGIN;
SELECT pg_temp.pkey_scans() AS s0 \gset
SELECT status FROM apikey.verify(:'fresh_key');
SELECT status FROM apikey.verify(:'fresh_key');
SELECT pg_temp.pkey_scans() - :s0 AS index_scans_cache_off;
COMMIT;
RESET apikey.key_cache_size;

-- text that is not key text reads no table: no scan, no block
BEGIN;
SELECT pg_temp.reads() AS r0 \gset
SELECT count(*) FILTER (WHERE v.status = 'malformed') AS malformed
  FROM unnest(ARRAY['', 'ak_live_', 'nope', left(:'fresh_key', -1) || CASE WHEN right(:'fresh_key', 1) = 'x' THEN 'y' ELSE 'x' END,
                    :'fresh_key' || 'x', upper(:'fresh_key'), NULL]) AS t(k),
       apikey.verify(t.k) AS v;
SELECT pg_temp.reads() - :r0 AS reads_for_malformed;
COMMIT;

-- changes that keep the row in place (HOT updates) are seen
SELECT apikey.revoke_key(:'key_id');
SELECT status FROM apikey.verify(:'api_key');
SELECT apikey.reactivate_key(:'key_id');
SELECT status FROM apikey.verify(:'api_key');

-- changes that move the row (an indexed column changes: not a HOT update)
-- are seen
SELECT ctid AS before_move FROM apikey.keys WHERE key_id = :'key_id' \gset
UPDATE apikey.keys SET environment = 'preview' WHERE key_id = :'key_id';
SELECT ctid <> :'before_move' AS row_moved FROM apikey.keys WHERE key_id = :'key_id';
SELECT status, environment FROM apikey.verify(:'api_key');
UPDATE apikey.keys SET environment = 'production' WHERE key_id = :'key_id';
SELECT status, environment FROM apikey.verify(:'api_key');

-- a rewritten table is seen
VACUUM FULL apikey.keys;
SELECT status FROM apikey.verify(:'api_key');

-- a deleted key is not_found, and a key created after it is found (the
-- remembered place reused by another key's row: in the database below)
SELECT apikey.delete_key(:'key_id');
VACUUM apikey.keys;
SELECT key_id AS other_id, api_key AS other_key FROM apikey.create_key('cache', 'production', 'newcomer') \gset
SELECT status FROM apikey.verify(:'api_key');
SELECT status, key_id = :'other_id' AS other_key_found FROM apikey.verify(:'other_key');

-- the cache can be turned off; the answers are the same
SET apikey.key_cache_size = 0;
SELECT status FROM apikey.verify(:'other_key');
SELECT status FROM apikey.verify(:'api_key');
RESET apikey.key_cache_size;

-- Then, in a database of its own, so that the table holds only what this
-- test puts there: a remembered place reused, and a remembered place that
-- VACUUM cut off the end of the table.  For the latter: statistics taken at
-- 120 keys; 60 more fill a new block; the last of them is remembered there;
-- all 60 are deleted and VACUUM truncates the table back to the size the
-- statistics already say, so no cache invalidation reaches the backend.
-- The remembered block no longer exists.
SELECT current_database() AS regress_db \gset
CREATE DATABASE apikey_truncation;
\c apikey_truncation
SET client_min_messages = error;
CREATE EXTENSION apikey;
RESET client_min_messages;
SELECT apikey.create_tenant('cache') > 0 AS created;

-- a location reused by another key's row: the remembered place now holds
-- another key, and the deleted key is not_found.  (Here the table holds one
-- row, so the newcomer's row lands in the freed place.)
SELECT key_id AS gone_id, api_key AS gone_key FROM apikey.create_key('cache', 'production', 'gone') \gset
SELECT status FROM apikey.verify(:'gone_key');
SELECT ctid AS old_place FROM apikey.keys WHERE key_id = :'gone_id' \gset
SELECT apikey.delete_key(:'gone_id');
-- the event relay (a background worker) sends the events of the changes
-- above; once their queue is empty no snapshot of it older than those
-- changes holds back what VACUUM may remove
DO $$ BEGIN FOR i IN 1..3000 LOOP EXIT WHEN NOT EXISTS (SELECT FROM apikey.event_queue); PERFORM pg_sleep(0.01); END LOOP; END $$;
VACUUM apikey.keys;
SELECT key_id AS other_id, api_key AS other_key FROM apikey.create_key('cache', 'production', 'newcomer') \gset
SELECT ctid = :'old_place' AS place_reused FROM apikey.keys WHERE key_id = :'other_id';
SELECT status FROM apikey.verify(:'gone_key');
SELECT status, key_id = :'other_id' AS other_key_found FROM apikey.verify(:'other_key');
SELECT apikey.delete_key(:'other_id');

CREATE TABLE k (g int, key_id apikey.key_id, api_key text);
INSERT INTO k SELECT g, c.key_id, c.api_key
  FROM generate_series(1, 120) AS g, apikey.create_key('cache', 'production', 'kept ' || g) AS c;
VACUUM ANALYZE apikey.keys;
SELECT pg_relation_size('apikey.keys') / current_setting('block_size')::int AS blocks_before \gset
INSERT INTO k SELECT g, c.key_id, c.api_key
  FROM generate_series(121, 180) AS g, apikey.create_key('cache', 'production', 'tail ' || g) AS c;
SELECT status FROM apikey.verify((SELECT api_key FROM k WHERE g = 180));
SELECT (ctid::text::point)[0] >= :blocks_before AS remembered_in_a_new_block
  FROM apikey.keys WHERE key_id = (SELECT key_id FROM k WHERE g = 180);
DELETE FROM apikey.keys WHERE key_id IN (SELECT key_id FROM k WHERE g > 120);
-- the event relay (a background worker) sends the events of the changes
-- above; once their queue is empty no snapshot of it older than those
-- changes holds back what VACUUM may remove
DO $$ BEGIN FOR i IN 1..3000 LOOP EXIT WHEN NOT EXISTS (SELECT FROM apikey.event_queue); PERFORM pg_sleep(0.01); END LOOP; END $$;
VACUUM apikey.keys;
SELECT pg_relation_size('apikey.keys') / current_setting('block_size')::int = :blocks_before AS truncated;
SELECT status FROM apikey.verify((SELECT api_key FROM k WHERE g = 180));
SELECT status FROM apikey.verify((SELECT api_key FROM k WHERE g = 1));
\c :regress_db
DROP DATABASE apikey_truncation;

-- A transaction that changes many keys (here 100 of another tenant) stops
-- the remembered states of those keys only, not of every key: a tenant's
-- administrator changing its own keys in a loop does not empty every
-- backend's cache.  (A key that shares a change counter with one of the
-- 100, one chance in about 650, is read again: at most one of the five.)
SELECT apikey.create_tenant('cache-other') > 0 AS created;
CREATE TABLE five AS SELECT c.api_key FROM generate_series(1, 5) AS g, apikey.create_key('cache', 'production', 'five ' || g) AS c;
CREATE TABLE hundred AS SELECT c.key_id FROM generate_series(1, 100) AS g, apikey.create_key('cache-other', 'production', 'many ' || g) AS c;
CREATE FUNCTION pg_temp.reads() RETURNS bigint LANGUAGE sql AS
$$ SELECT pg_stat_get_xact_numscans('apikey.keys_pkey'::regclass)
        + pg_stat_get_xact_blocks_fetched('apikey.keys'::regclass)
        + pg_stat_get_xact_blocks_fetched('apikey.keys_pkey'::regclass) $$;
CREATE FUNCTION pg_temp.reads_to_verify(api_key text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	r0 bigint := pg_temp.reads();
BEGIN
	PERFORM apikey.verify(api_key);
	RETURN pg_temp.reads() - r0;
END
$$;
SELECT count(*) FROM five, apikey.verify(five.api_key) AS v WHERE v.status = 'valid';
SELECT count(apikey.rename_key(key_id, 'renamed')) FROM hundred;
BEGIN;
SELECT count(*) FILTER (WHERE pg_temp.reads_to_verify(api_key) > 0) <= 1 AS at_most_one_of_five_read_again FROM five;
COMMIT;

-- A full cache admits a key only when it is seen a second time: a key
-- verified once does not push out the keys in use.  (Two places: the two
-- hot keys fill them; the one-off key, verified once, leaves both there.)
SET apikey.key_cache_size = 2;
CREATE TABLE admission AS SELECT g, c.api_key FROM generate_series(1, 3) AS g,
  apikey.create_key('cache', 'production', 'admission ' || g) AS c;
SELECT count(*) FROM admission a, apikey.verify(a.api_key) AS v WHERE a.g <= 2 AND v.valid;
SELECT status FROM apikey.verify((SELECT api_key FROM admission WHERE g = 3));
BEGIN;
SELECT sum(pg_temp.reads_to_verify(api_key)) AS reads_for_the_hot_keys FROM admission WHERE g <= 2;
COMMIT;
-- seen again, it is admitted (one hot key makes room) and then remembered
SELECT status FROM apikey.verify((SELECT api_key FROM admission WHERE g = 3));
BEGIN;
SELECT pg_temp.reads_to_verify(api_key) AS reads_for_the_admitted_key FROM admission WHERE g = 3;
COMMIT;
RESET apikey.key_cache_size;

-- Keys with the same tenant, environment and scopes share what the cache
-- keeps of them, down to the result row: each key's own id and expiry are
-- in its row, answered from memory or not.
CREATE TABLE shared AS SELECT g, c.key_id, c.api_key, c.expires_at FROM generate_series(1, 4) AS g,
  apikey.create_key('cache', 'production', 'shared ' || g, scopes => '{a:read,b:write}',
                    expires_in => g * interval '1 day') AS c;
SELECT s.g, v.status, v.key_id = s.key_id AS own_id, v.expires_at = s.expires_at AS own_expiry,
       v.scopes, v.tenant, v.environment
  FROM generate_series(1, 3) AS r, shared s, apikey.verify(s.api_key, 'production') v
 ORDER BY r, s.g;
-- and a key of that profile without an expiry has a row without one
SELECT key_id AS noexp_id, api_key AS noexp_key FROM apikey.create_key('cache', 'production', 'no expiry', scopes => '{a:read,b:write}') \gset
SELECT v.status, v.key_id = :'noexp_id' AS own_id, v.expires_at IS NULL AS no_expiry, v.scopes
  FROM generate_series(1, 2), apikey.verify(:'noexp_key', 'production') v;

-- The key table is locked by a transaction's first verification, its
-- index only by the first that descends it; a savepoint rolled back takes
-- its locks with it, and the next descent locks the index again.
CREATE FUNCTION pg_temp.held(rel regclass) RETURNS bigint LANGUAGE sql AS
$$ SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND relation = rel
                                   AND mode = 'AccessShareLock' AND granted $$;
SELECT api_key AS lock_a FROM apikey.create_key('cache', 'production', 'lock a') \gset
SELECT api_key AS lock_b FROM apikey.create_key('cache', 'production', 'lock b') \gset
BEGIN;
SAVEPOINT s;
SELECT status FROM apikey.verify(:'lock_a');    -- through the index
SELECT pg_temp.held('apikey.keys') AS table_locks, pg_temp.held('apikey.keys_pkey') AS index_locks;
ROLLBACK TO SAVEPOINT s;
SELECT pg_temp.held('apikey.keys') AS table_locks, pg_temp.held('apikey.keys_pkey') AS index_locks;
SELECT status FROM apikey.verify(:'lock_b');    -- through the index again
SELECT pg_temp.held('apikey.keys') AS table_locks, pg_temp.held('apikey.keys_pkey') AS index_locks;
COMMIT;
-- a key changed since, found at its remembered location: the table only
UPDATE apikey.keys SET description = 'changed' WHERE name = 'lock a';
BEGIN;
SELECT status FROM apikey.verify(:'lock_a');
SELECT pg_temp.held('apikey.keys') AS table_locks, pg_temp.held('apikey.keys_pkey') AS index_locks;
COMMIT;

-- The result row follows its type when that changes within a session (as
-- an update of the extension altering apikey.verification does): the
-- descriptor a connection keeps is looked up again.  (Sixty more columns
-- make the row's header longer, so the row returned shows which type it
-- was built for; in a database of its own, since the type keeps them.)
CREATE DATABASE apikey_rowtype;
\c apikey_rowtype
SET client_min_messages = warning;
CREATE EXTENSION apikey CASCADE;
RESET client_min_messages;
SELECT apikey.create_tenant('rowtype') > 0 AS created;
SELECT api_key AS rowtype_key FROM apikey.create_key('rowtype', 'production', 'rowtype') \gset
SELECT pg_column_size(apikey.verify(:'rowtype_key')) AS size_before \gset
DO $$ BEGIN
	FOR i IN 1..60 LOOP
		EXECUTE format('ALTER TYPE apikey.verification ADD ATTRIBUTE probe%s integer', i);
	END LOOP;
END $$;
SELECT pg_column_size(apikey.verify(:'rowtype_key')) > :size_before AS row_of_the_new_type,
       (apikey.verify(:'rowtype_key')).status;
\c :regress_db
DROP DATABASE apikey_rowtype;

-- the whole stored hash is compared: with any one of its 32 bytes changed,
-- the key's text is not proven, whether the row is read (the first
-- verification after the change) or the state remembered from that read
-- is used (the next one, which reads nothing); with the byte put back, the
-- key is valid again
SELECT key_id AS hb_id, api_key AS hb_key FROM apikey.create_key('cache', 'production', 'hash bytes') \gset
CREATE TEMP TABLE hash_byte (n int, step text, status text, reads bigint);
-- (the table's and index's reads of the backend not yet reported, read
-- before and after the verification in one statement)
CREATE FUNCTION pg_temp.key_reads() RETURNS bigint LANGUAGE sql AS
$$ SELECT pg_stat_get_xact_numscans('apikey.keys_pkey'::regclass)
        + pg_stat_get_xact_blocks_fetched('apikey.keys'::regclass) $$;
\set ECHO none
SELECT format($$UPDATE apikey.keys SET key_hash = set_byte(key_hash, %1$s, get_byte(key_hash, %1$s) # %3$s) WHERE key_id = %2$L$$,
              n, :'hb_id', 1 << (n % 8)),
       format($$WITH r0 AS MATERIALIZED (SELECT pg_temp.key_reads() AS r),
                     v AS MATERIALIZED (SELECT (apikey.verify(%2$L)).status FROM r0)
                INSERT INTO hash_byte SELECT %1$s, 'read', v.status, pg_temp.key_reads() - r0.r FROM r0, v$$, n, :'hb_key'),
       format($$WITH r0 AS MATERIALIZED (SELECT pg_temp.key_reads() AS r),
                     v AS MATERIALIZED (SELECT (apikey.verify(%2$L)).status FROM r0)
                INSERT INTO hash_byte SELECT %1$s, 'remembered', v.status, pg_temp.key_reads() - r0.r FROM r0, v$$, n, :'hb_key'),
       format($$UPDATE apikey.keys SET key_hash = set_byte(key_hash, %1$s, get_byte(key_hash, %1$s) # %3$s) WHERE key_id = %2$L$$,
              n, :'hb_id', 1 << (n % 8)),
       format($$WITH r0 AS MATERIALIZED (SELECT pg_temp.key_reads() AS r),
                     v AS MATERIALIZED (SELECT (apikey.verify(%2$L)).status FROM r0)
                INSERT INTO hash_byte SELECT %1$s, 'restored', v.status, pg_temp.key_reads() - r0.r FROM r0, v$$, n, :'hb_key')
  FROM generate_series(0, 31) n \gexec
\set ECHO all
SELECT step, status, count(*) AS bytes, count(DISTINCT n) AS positions,
       count(*) FILTER (WHERE reads = 0) AS without_reading
  FROM hash_byte GROUP BY step, status ORDER BY step, status;
