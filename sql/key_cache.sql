-- Verification remembers where each key's row was found, to skip the index
-- next time.  The location is only a hint: whatever happens to the row,
-- verification answers exactly as the index would.
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('cache') > 0 AS created;
SELECT key_id, api_key FROM apikey.create_key('cache', 'production', 'cached') \gset

SELECT status FROM apikey.verify(:'api_key');            -- found through the index
SELECT status FROM apikey.verify(:'api_key');            -- found at the remembered place

-- changes that keep the row in place (HOT updates) are seen
SELECT apikey.revoke_key(:'key_id');
SELECT status FROM apikey.verify(:'api_key');
SELECT apikey.reactivate_key(:'key_id');
SELECT status FROM apikey.verify(:'api_key');

-- changes that move the row (an indexed column changes) are seen
SELECT ctid AS before_move FROM apikey.keys WHERE key_id = :'key_id' \gset
UPDATE apikey.keys SET environment = 'preview' WHERE key_id = :'key_id';
SELECT status, environment FROM apikey.verify(:'api_key');
UPDATE apikey.keys SET environment = 'production' WHERE key_id = :'key_id';
SELECT ctid <> :'before_move' AS row_moved FROM apikey.keys WHERE key_id = :'key_id';
SELECT status, environment FROM apikey.verify(:'api_key');

-- a rewritten table is seen
VACUUM FULL apikey.keys;
SELECT status FROM apikey.verify(:'api_key');

-- a location reused by another key's row: the remembered place now holds
-- another key, and the deleted key is not_found
SELECT ctid AS old_place FROM apikey.keys WHERE key_id = :'key_id' \gset
SELECT apikey.delete_key(:'key_id');
VACUUM apikey.keys;
SELECT key_id AS other_id, api_key AS other_key FROM apikey.create_key('cache', 'production', 'newcomer') \gset
SELECT ctid = :'old_place' AS place_reused FROM apikey.keys WHERE key_id = :'other_id';
SELECT status FROM apikey.verify(:'api_key');
SELECT status, key_id = :'other_id' AS other_key_found FROM apikey.verify(:'other_key');

-- the cache can be turned off; the answers are the same
SET apikey.key_cache_size = 0;
SELECT status FROM apikey.verify(:'other_key');
SELECT status FROM apikey.verify(:'api_key');
RESET apikey.key_cache_size;
