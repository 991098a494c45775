-- verify: is this key valid, whose is it, may it do this?
\set SHOW_CONTEXT never
SELECT apikey.create_tenant('verify-a') > 0 AS a, apikey.create_tenant('verify-b') > 0 AS b;
SELECT api_key AS key_a, key_id AS id_a FROM apikey.create_key('verify-a', 'production', 'orders',
       scopes => '{orders:read,orders:write,reports:*}') \gset
SELECT api_key AS key_b FROM apikey.create_key('verify-b', 'preview', 'everything', scopes => '{*}') \gset
SELECT api_key AS key_c FROM apikey.create_key('verify-a', 'production', 'collection 42',
       scopes => '{collections:read}', resource => 'collection:42') \gset

-- valid: the key's identity comes back
SELECT valid, status, key_id = :'id_a' AS key_id, tenant, environment, scopes, resource,
       expires_at, tenant_id = (SELECT tenant_id FROM apikey.tenants WHERE slug = 'verify-a') AS tenant_id
  FROM apikey.verify(:'key_a');

-- environment: given, or the apikey.environment setting
SELECT status FROM apikey.verify(:'key_a', 'production');
SELECT status, environment FROM apikey.verify(:'key_a', 'preview');
SET apikey.environment = 'preview';
SELECT status FROM apikey.verify(:'key_a');
SELECT status FROM apikey.verify(:'key_b');
SELECT status FROM apikey.verify(:'key_a', 'production');
RESET apikey.environment;

-- scopes: exact, "prefix:*" and "*" wildcards
SELECT s AS scope, (apikey.verify(:'key_a', scope => s)).status
  FROM unnest('{orders:read,orders:delete,reports:daily,reports:daily:pdf,reports,orders}'::text[]) s;
SELECT s AS scope, (apikey.verify(:'key_b', scope => s)).status
  FROM unnest('{orders:read,anything:at:all}'::text[]) s;

-- resources: a restricted key reaches its own resource only
SELECT r AS resource, (apikey.verify(:'key_c', scope => 'collections:read', resource => r)).status
  FROM unnest('{collection:42,collection:43}'::text[]) r;
SELECT status, resource FROM apikey.verify(:'key_c');
SELECT status FROM apikey.verify(:'key_a', resource => 'collection:43');

-- the order of the checks, on one key that fails several at once: revoked,
-- expired, wrong_environment, insufficient_scope, wrong_resource (an
-- application answers 401 for the first three and 403 for the last two)
SELECT api_key AS key_o, key_id AS id_o FROM apikey.create_key('verify-a', 'production', 'order of checks',
       scopes => '{orders:read}', resource => 'collection:42') \gset
CREATE TEMP TABLE asks (ask int, environment text, scope text, resource text);
INSERT INTO asks VALUES
  (1, 'preview',    'orders:write', 'collection:43'),
  (2, 'production', 'orders:write', 'collection:43'),
  (3, 'production', 'orders:read',  'collection:43'),
  (4, 'production', 'orders:read',  'collection:42'),
  (5, 'preview',    NULL,           NULL);
SELECT ask, a.environment, a.scope, a.resource, v.status
  FROM asks a, apikey.verify(:'key_o', a.environment, a.scope, a.resource) v ORDER BY ask;
SELECT apikey.set_key_expiry(:'id_o', now() - interval '1 second');
SELECT ask, v.status FROM asks a, apikey.verify(:'key_o', a.environment, a.scope, a.resource) v ORDER BY ask;
SELECT apikey.revoke_key(:'id_o');
SELECT ask, v.status FROM asks a, apikey.verify(:'key_o', a.environment, a.scope, a.resource) v ORDER BY ask;

-- malformed: rejected by format and checksum, before any table is touched
SELECT k AS input, (apikey.verify(k)).status, apikey.looks_like_key(k) AS looks_like_key
  FROM unnest('{"",hello,ak_live_,ak_live_short}'::text[]) AS k;
SELECT what, (apikey.verify(k)).status, apikey.looks_like_key(k) AS looks_like_key
  FROM (VALUES
    ('uppercase prefix and tag', 'AK_LIVE_' || substr(:'key_a', 9)),
    ('last character changed',   'ak_live_' || substr(:'key_a', 9, 43) || CASE WHEN right(:'key_a', 1) = 'x' THEN 'y' ELSE 'x' END),
    ('dashes for underscores',   'ak-live-' || substr(:'key_a', 9)),
    ('one character appended',   :'key_a' || 'x'),
    ('leading space',            ' ' || :'key_a'),
    ('body too long',            'ak_live_' || repeat('a', 100)),
    ('non-ASCII in the body',    'ak_live_' || substr(:'key_a', 9, 11) || 'é' || substr(:'key_a', 21))
  ) AS t(what, k);
SELECT status, valid, key_id, tenant FROM apikey.verify(NULL);

-- a changed secret with a valid checksum: not_found, exactly like an unknown id
CREATE FUNCTION pg_temp.with_checksum(body text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	digits constant text := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
	crc bigint := 4294967295;
	v bigint;
	out text := '';
BEGIN
	-- CRC-32 (zlib) of body, computed bit by bit
	FOR i IN 1..octet_length(body) LOOP
		crc := crc # get_byte(convert_to(body, 'UTF8'), i - 1);
		FOR j IN 1..8 LOOP
			IF crc & 1 = 1 THEN crc := (crc >> 1) # 3988292384; ELSE crc := crc >> 1; END IF;
		END LOOP;
	END LOOP;
	v := crc # 4294967295;
	FOR i IN 1..6 LOOP
		out := substr(digits, (v % 62)::int + 1, 1) || out;
		v := v / 62;
	END LOOP;
	RETURN body || out;
END
$$;
-- the checksum is CRC-32 as zlib computes it: recomputing it reproduces the key
SELECT pg_temp.with_checksum(left(:'key_a', length(:'key_a') - 6)) = :'key_a' AS checksum_is_crc32;
-- the reference itself: CRC-32 of '123456789' is 0xCBF43926 (3jZRME in base62)
SELECT right(pg_temp.with_checksum('123456789'), 6) AS crc32_check_value;
-- texts of every length from 48 to 62 bytes (prefixes and tags of 1 to 8
-- characters): the checksum is accepted at every length and every change
-- of the last checksum digit is caught
SELECT count(*) AS texts,
       count(*) FILTER (WHERE apikey.looks_like_key(k)) AS accepted,
       count(*) FILTER (WHERE apikey.looks_like_key(left(k, -1) || CASE WHEN right(k, 1) = 'A' THEN 'B' ELSE 'A' END)) AS accepted_altered,
       count(DISTINCT length(k)) AS lengths
  FROM generate_series(1, 8) p, generate_series(1, 8) t,
       LATERAL (SELECT pg_temp.with_checksum(repeat('p', p) || '_' || repeat('t', t) || '_' ||
                       substr(:'key_a', 9, 38)) AS k) s;
SELECT status, key_id, tenant
  FROM apikey.verify(pg_temp.with_checksum(substr(:'key_a', 1, 19) || repeat('A', 27)));
-- a key id beyond 64 bits is malformed even with a valid checksum
SELECT status FROM apikey.verify(pg_temp.with_checksum('ak_live_zzzzzzzzzzz' || repeat('A', 27)));
-- the whole text is hashed: another tag makes another, unknown key (the
-- environment that counts is the stored one, see wrong_environment above)
SELECT status FROM apikey.verify(pg_temp.with_checksum('ak_test_' || substr(:'key_a', 9, 38)));

-- public keys identify a tenant but are never valid for verify
SELECT status, valid, tenant FROM apikey.verify(apikey.public_key('verify-a', 'production'));

-- states other than not_found are reported only after the secret is proven
SELECT apikey.revoke_key(:'id_a');
SELECT status FROM apikey.verify(pg_temp.with_checksum(substr(:'key_a', 1, 19) || repeat('A', 27)));
SELECT status, valid, key_id = :'id_a' AS same_key FROM apikey.verify(:'key_a');

-- verification only reads: it works in read-only transactions
BEGIN READ ONLY;
SELECT status FROM apikey.verify(:'key_b');
SELECT status FROM apikey.verify(:'key_c');
COMMIT;

-- the same key verified many times in one statement
SELECT count(*) FILTER (WHERE v.valid) AS valid_count
  FROM generate_series(1, 1000), LATERAL apikey.verify(:'key_b') v;
