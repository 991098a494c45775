-- Hostile input: the fixture, the hostile values, every public function and
-- the calls generated from them.  test/suites/60-hostile.sh loads this into
-- a fresh cluster with the extension, then runs hostile.run() per pass.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE SCHEMA hostile;

-- Tenants, environments and keys in every state.
SELECT apikey.create_tenant('acme', 'Acme Inc');
SELECT apikey.create_tenant('globex', 'Globex', '{production,staging:stg}', 'gx',
                            '30 days', '90 days');

CREATE TABLE hostile.keys (label text PRIMARY KEY, key_id apikey.key_id, api_key text);

INSERT INTO hostile.keys
SELECT 'admin', key_id, api_key
  FROM apikey.create_key('acme', 'production', 'hostile admin', NULL, '{apikey:admin,orders:*}');
INSERT INTO hostile.keys
SELECT 'active', key_id, api_key
  FROM apikey.create_key('acme', 'production', 'active', 'd', '{orders:read,orders:write}',
                         '30 days', 'collection:42');
INSERT INTO hostile.keys
SELECT 'preview', key_id, api_key
  FROM apikey.create_key('acme', 'preview', 'preview key', NULL, '{*}');
INSERT INTO hostile.keys
SELECT 'revoked', key_id, api_key
  FROM apikey.create_key('acme', 'production', 'revoked', NULL, '{orders:read}');
SELECT apikey.revoke_key(key_id, 'fixture') FROM hostile.keys WHERE label = 'revoked';
INSERT INTO hostile.keys
SELECT 'expired', key_id, api_key
  FROM apikey.create_key('acme', 'production', 'expired', NULL, '{orders:read}');
SELECT apikey.set_key_expiry(key_id, now() - interval '1 day') FROM hostile.keys WHERE label = 'expired';
INSERT INTO hostile.keys
SELECT 'rolled_old', key_id, api_key
  FROM apikey.create_key('acme', 'production', 'rolled', NULL, '{orders:read}');
INSERT INTO hostile.keys
SELECT 'rolled_new', key_id, apikey.roll_key(key_id, '1 day')
  FROM hostile.keys WHERE label = 'rolled_old';
INSERT INTO hostile.keys
SELECT 'other_tenant', key_id, api_key
  FROM apikey.create_key('globex', 'production', 'globex key', NULL, '{orders:read}');
INSERT INTO hostile.keys
SELECT 'other_env', key_id, api_key
  FROM apikey.create_key('globex', 'staging', 'globex staging', NULL, '{*}');
INSERT INTO hostile.keys
SELECT 'deleted', key_id, api_key
  FROM apikey.create_key('acme', 'production', 'deleted', NULL, '{orders:read}');
SELECT apikey.delete_key(key_id) FROM hostile.keys WHERE label = 'deleted';
INSERT INTO hostile.keys VALUES
	('public_acme', NULL, apikey.public_key('acme', 'production')),
	('public_globex', NULL, apikey.public_key('globex', 'staging'));

CREATE FUNCTION hostile.k(label text) RETURNS text LANGUAGE sql STABLE
	AS $$ SELECT api_key FROM hostile.keys WHERE keys.label = k.label $$;
CREATE FUNCTION hostile.id(label text) RETURNS apikey.key_id LANGUAGE sql STABLE
	AS $$ SELECT key_id FROM hostile.keys WHERE keys.label = id.label $$;

-- Hostile values by type: SQL expressions, evaluated at call time.
CREATE TABLE hostile.vals (type text, label text, expr text, PRIMARY KEY (type, label));

-- text (also fed to key_id input, regrole input and as key text)
INSERT INTO hostile.vals (type, label, expr) VALUES
	('text', 'null', 'NULL::text'),
	('text', 'empty', $$''$$),
	('text', 'space', $$' '$$),
	('text', 'tab_nl', $$E'\t\n\r'$$),
	('text', 'control', $$E'a\x01b\x1bc\x7f'$$),
	('text', '1mb_ascii', $$repeat('a', 1048576)$$),
	('text', '1mb_utf8', $$repeat('é', 524288)$$),
	('text', '1mb_underscores', $$repeat('ak_live_', 131072)$$),
	('text', 'non_ascii', $$'ünïcødé – 日本語'$$),
	('text', 'emoji', $$'🔑🗝️'$$),
	('text', 'rtl_bidi', $$E'\u202Eevil\u202C'$$),
	('text', 'zero_width', $$E'acme\u200B'$$),
	('text', 'injection_quote', $$'x''; DROP TABLE apikey.keys; --'$$),
	('text', 'injection_or', $$'x'' OR ''1''=''1'$$),
	('text', 'injection_dollar', $q$'$$; DROP TABLE apikey.keys; $$'$q$),
	('text', 'injection_ident', $$'"; DROP SCHEMA apikey CASCADE; --'$$),
	('text', 'injection_bobby', $$'Robert''); DROP TABLE students;--'$$),
	('text', 'format_string', $$'%s%s%n%x%1$s%I%L'$$),
	('text', 'regex_meta', $$'.*^$[(\\'$$),
	('text', 'backslashes', $$E'\\\\x00\\0'$$),
	('text', 'star', $$'*'$$),
	('text', 'scope_admin', $$'apikey:admin'$$),
	('text', 'scope_wild', $$'orders:*'$$),
	('text', 'scope_long', $$repeat('a', 129)$$),
	('text', 'resource', $$'collection:42'$$),
	('text', 'resource_201', $$'c:' || repeat('x', 199)$$),
	('text', 'slug_acme', $$'acme'$$),
	('text', 'slug_globex', $$'globex'$$),
	('text', 'slug_64', $$repeat('a', 64)$$),
	('text', 'env_production', $$'production'$$),
	('text', 'env_staging', $$'staging'$$),
	('text', 'prefix_pk', $$'pk'$$),
	('text', 'key_admin', $$hostile.k('admin')$$),
	('text', 'key_active', $$hostile.k('active')$$),
	('text', 'key_preview', $$hostile.k('preview')$$),
	('text', 'key_revoked', $$hostile.k('revoked')$$),
	('text', 'key_expired', $$hostile.k('expired')$$),
	('text', 'key_rolled_old', $$hostile.k('rolled_old')$$),
	('text', 'key_rolled_new', $$hostile.k('rolled_new')$$),
	('text', 'key_other_tenant', $$hostile.k('other_tenant')$$),
	('text', 'key_other_env', $$hostile.k('other_env')$$),
	('text', 'key_deleted', $$hostile.k('deleted')$$),
	('text', 'key_public', $$hostile.k('public_acme')$$),
	('text', 'key_public_other', $$hostile.k('public_globex')$$),
	('text', 'key_bad_checksum', $$left(hostile.k('active'), -1) || CASE WHEN right(hostile.k('active'), 1) = 'A' THEN 'B' ELSE 'A' END$$),
	('text', 'key_truncated', $$left(hostile.k('active'), -1)$$),
	('text', 'key_padded', $$' ' || hostile.k('active') || E'\n'$$),
	('text', 'key_upper', $$upper(hostile.k('active'))$$),
	('text', 'key_twice', $$hostile.k('active') || hostile.k('active')$$),
	('text', 'key_id_part', $$hostile.id('active')::text$$),
	('text', 'key_secret_part', $$substr(hostile.k('active'), length(hostile.k('active')) - 32, 27)$$),
	('text', 'key_nul_escaped', $$replace(hostile.k('active'), '_', E'\\000')$$),
	('text', 'key_swapped_id', $$regexp_replace(hostile.k('active'), '^(ak_live_)(.{11})', '\1' || hostile.id('other_tenant')::text)$$);

-- key_id: every text value above, cast, plus ids of keys in every state
INSERT INTO hostile.vals (type, label, expr)
SELECT 'key_id', label, CASE WHEN label = 'null' THEN 'NULL::apikey.key_id'
                             ELSE format('(%s)::apikey.key_id', expr) END
  FROM hostile.vals WHERE type = 'text';
INSERT INTO hostile.vals (type, label, expr)
SELECT 'key_id', 'id_' || label, format('hostile.id(%L)', label)
  FROM hostile.keys WHERE key_id IS NOT NULL;
INSERT INTO hostile.vals (type, label, expr) VALUES
	('key_id', 'zero', $$'00000000000'::apikey.key_id$$),
	('key_id', 'max_u64', $$'LygHa16AHYF'::apikey.key_id$$),
	('key_id', 'overflow', $$'LygHa16AHYG'::apikey.key_id$$),
	('key_id', 'all_z', $$'zzzzzzzzzzz'::apikey.key_id$$),
	('key_id', 'ten_chars', $$'AAAAAAAAAA'::apikey.key_id$$),
	('key_id', 'twelve_chars', $$'AAAAAAAAAAAA'::apikey.key_id$$),
	('key_id', 'bang', $$'AAAAAAAAAA!'::apikey.key_id$$),
	('key_id', 'integer', $$42::text::apikey.key_id$$),
	('key_id', 'cstring_in', $$apikey.key_id_in('AAAAAAAAAAA'::cstring)$$),
	('key_id', 'cstring_in_key', $$apikey.key_id_in(hostile.k('active')::cstring)$$);

-- text[] (scopes, environments)
INSERT INTO hostile.vals (type, label, expr) VALUES
	('text[]', 'null', 'NULL::text[]'),
	('text[]', 'empty', $$'{}'::text[]$$),
	('text[]', 'null_element', $$ARRAY[NULL]::text[]$$),
	('text[]', 'empty_element', $$ARRAY['']$$),
	('text[]', 'valid', $$ARRAY['orders:read']$$),
	('text[]', 'star', $$ARRAY['*']$$),
	('text[]', 'admin', $$ARRAY['apikey:admin']$$),
	('text[]', 'dup', $$ARRAY['a:b','a:b','a:*']$$),
	('text[]', '64', $$ARRAY(SELECT 's:' || i FROM generate_series(1, 64) i)$$),
	('text[]', '65', $$ARRAY(SELECT 's:' || i FROM generate_series(1, 65) i)$$),
	('text[]', '100k', $$ARRAY(SELECT 's:' || i FROM generate_series(1, 100000) i)$$),
	('text[]', '100k_star', $$array_fill('*'::text, ARRAY[100000])$$),
	('text[]', '100k_null', $$array_fill(NULL::text, ARRAY[100000])$$),
	('text[]', '2d', $$'{{a,b},{c,d}}'::text[]$$),
	('text[]', 'lower_bound', $$'[5:6]={a:b,c:d}'::text[]$$),
	('text[]', 'zero_lower_bound', $$'[0:1]={a:b,c:d}'::text[]$$),
	('text[]', 'negative_bounds', $$'[-2147483648:-2147483647]={*,a:b}'::text[]$$),
	('text[]', '1mb_element', $$ARRAY[repeat('a', 1048576)]$$),
	('text[]', 'injection', $$ARRAY['x''; DROP TABLE apikey.keys; --', '"; --']$$),
	('text[]', 'non_ascii', $$ARRAY['ünï:cødé', '🔑']$$),
	('text[]', 'control', $$ARRAY[E'a\nb', E'\t']$$),
	('text[]', 'key_text', $$ARRAY[hostile.k('active')]$$),
	('text[]', 'envs_dup_tag', $$'{production,live:live}'::text[]$$),
	('text[]', 'envs_17', $$ARRAY(SELECT 'e' || i FROM generate_series(1, 17) i)$$),
	('text[]', 'envs_colons', $$ARRAY['a:b:c', ':', 'x:']$$);

-- interval
INSERT INTO hostile.vals (type, label, expr) VALUES
	('interval', 'null', 'NULL::interval'),
	('interval', 'zero', $$'0'::interval$$),
	('interval', 'one_us', $$'1 microsecond'::interval$$),
	('interval', 'minus_one_us', $$'-1 microsecond'::interval$$),
	('interval', 'day', $$'1 day'::interval$$),
	('interval', '30_days', $$'30 days'::interval$$),
	('interval', '30_days_1us', $$'30 days 1 microsecond'::interval$$),
	('interval', '100_years', $$'100 years'::interval$$),
	('interval', '100_years_1us', $$'100 years 1 microsecond'::interval$$),
	('interval', 'max_years', $$'178000000 years'::interval$$),
	('interval', 'min_years', $$'-178000000 years'::interval$$),
	('interval', 'max_days', $$'2147483647 days'::interval$$),
	('interval', 'min_days', $$'-2147483648 days'::interval$$),
	('interval', 'max_us', $$'9223372036854775807 microseconds'::interval$$),
	('interval', 'min_us', $$'-9223372036854775808 microseconds'::interval$$),
	('interval', 'mixed_signs', $$'1 year -400 days'::interval$$),
	('interval', 'max_all', $$make_interval(years => 178000000, days => 2147483647, secs => 9223372036854)$$),
	('interval', 'month_minus_days', $$'1 month -29 days'::interval$$),
	('interval', 'text_infinity', $$'infinity'::interval$$),
	('interval', 'text_garbage', $$'forever'::interval$$);

-- timestamptz
INSERT INTO hostile.vals (type, label, expr) VALUES
	('timestamptz', 'null', 'NULL::timestamptz'),
	('timestamptz', 'infinity', $$'infinity'::timestamptz$$),
	('timestamptz', 'minus_infinity', $$'-infinity'::timestamptz$$),
	('timestamptz', 'epoch', $$'epoch'::timestamptz$$),
	('timestamptz', 'min', $$'4714-11-24 00:00:00+00 BC'::timestamptz$$),
	('timestamptz', 'max', $$'294276-12-31 23:59:59.999999+00'::timestamptz$$),
	('timestamptz', 'past', $$now() - interval '1 second'$$),
	('timestamptz', 'now', $$now()$$),
	('timestamptz', 'tomorrow', $$now() + interval '1 day'$$),
	('timestamptz', 'in_91_days', $$now() + interval '91 days'$$),
	('timestamptz', 'out_of_range', $$'294277-01-01 00:00:00+00'::timestamptz$$);

-- regrole
INSERT INTO hostile.vals (type, label, expr) VALUES
	('regrole', 'null', 'NULL::regrole'),
	('regrole', 'app', $$'hostile_app'::regrole$$),
	('regrole', 'postgres', $$'postgres'::regrole$$),
	('regrole', 'public_word', $$'public'::regrole$$),
	('regrole', 'predefined', $$'pg_read_all_data'::regrole$$),
	('regrole', 'missing', $$'no_such_role'::regrole$$),
	('regrole', 'injection', $$'"x; DROP TABLE apikey.keys; --"'::regrole$$),
	('regrole', 'oid_zero', $$0::oid::regrole$$),
	('regrole', 'oid_bogus', $$4294967295::oid::regrole$$);

-- Every public function (and the internal C entry points an administrator
-- can reach), its argument types and a well-formed baseline call.
CREATE TABLE hostile.fns (
	fn        text PRIMARY KEY,
	argtypes  text[] NOT NULL,
	baseline  text[] NOT NULL,
	shape     text NOT NULL DEFAULT 'SELECT * FROM %s'
);
INSERT INTO hostile.fns (fn, argtypes, baseline) VALUES
	('apikey.create_tenant', '{text,text,text[],text,interval,interval}',
	 ARRAY[$$'hostile-new'$$, $$'Hostile'$$, $$'{production,preview}'::text[]$$, $$'ak'$$, 'NULL::interval', 'NULL::interval']),
	('apikey.create_environment', '{text,text,text}', ARRAY[$$'acme'$$, $$'staging'$$, $$'stg'$$]),
	('apikey.set_key_policy', '{text,interval,interval,text}',
	 ARRAY[$$'acme'$$, $$'30 days'::interval$$, $$'90 days'::interval$$, $$'ak'$$]),
	('apikey.public_key', '{text,text}', ARRAY[$$'acme'$$, $$'production'$$]),
	('apikey.regenerate_public_key', '{text,text}', ARRAY[$$'acme'$$, $$'production'$$]),
	('apikey.identify', '{text}', ARRAY[$$hostile.k('public_acme')$$]),
	('apikey.create_key', '{text,text,text,text,text[],interval,text}',
	 ARRAY[$$'acme'$$, $$'production'$$, $$'hostile'$$, $$'desc'$$, $$'{orders:read}'::text[]$$,
	       $$'30 days'::interval$$, $$'collection:42'$$]),
	('apikey.rename_key', '{key_id,text}', ARRAY[$$hostile.id('active')$$, $$'renamed'$$]),
	('apikey.describe_key', '{key_id,text}', ARRAY[$$hostile.id('active')$$, $$'described'$$]),
	('apikey.revoke_key', '{key_id,text}', ARRAY[$$hostile.id('active')$$, $$'reason'$$]),
	('apikey.reactivate_key', '{key_id}', ARRAY[$$hostile.id('revoked')$$]),
	('apikey.delete_key', '{key_id}', ARRAY[$$hostile.id('active')$$]),
	('apikey.roll_key', '{key_id,interval}', ARRAY[$$hostile.id('active')$$, $$'1 hour'::interval$$]),
	('apikey.set_key_expiry', '{key_id,timestamptz}', ARRAY[$$hostile.id('active')$$, $$now() + interval '1 day'$$]),
	('apikey.verify', '{text,text,text,text}',
	 ARRAY[$$hostile.k('active')$$, $$'production'$$, $$'orders:read'$$, $$'collection:42'$$]),
	('apikey.authenticate', '{text,text}', ARRAY[$$hostile.k('active')$$, $$'orders:read'$$]),
	('apikey.looks_like_key', '{text}', ARRAY[$$hostile.k('active')$$]),
	('apikey.has_scope', '{text}', ARRAY[$$'orders:read'$$]),
	('apikey.can_access', '{text,text}', ARRAY[$$'collection:42'$$, $$'orders:read'$$]),
	('apikey.current_tenant', '{}', '{}'),
	('apikey.current_tenant_id', '{}', '{}'),
	('apikey.current_key_id', '{}', '{}'),
	('apikey.current_environment', '{}', '{}'),
	('apikey.current_scopes', '{}', '{}'),
	('apikey.current_resource', '{}', '{}'),
	('apikey.grant_verifier', '{regrole}', ARRAY[$$'hostile_app'::regrole$$]),
	('apikey.grant_admin', '{regrole}', ARRAY[$$'hostile_app'::regrole$$]),
	('apikey_internal.normalized_scopes', '{text[]}', ARRAY[$$'{orders:read,orders:*}'::text[]$$]),
	('apikey_internal.checked_resource', '{text}', ARRAY[$$'collection:42'$$]),
	('apikey_internal.checked_resources', '{text[]}', ARRAY[$$'{collection:42,orders:*}'::text[]$$]),
	('apikey_internal.generate_key', '{text,text,key_id}', ARRAY[$$'ak'$$, $$'live'$$, 'NULL::apikey.key_id']),
	('apikey_internal.generate_public_key', '{text}', ARRAY[$$'live'$$]);
INSERT INTO hostile.fns (fn, argtypes, baseline, shape) VALUES
	('apikey.key_id_out', '{key_id}', ARRAY[$$hostile.id('active')$$], 'SELECT (%s)::text'),
	('key_list', '{}', '{}', 'SELECT count(*) FROM apikey.key_list'),
	('audit_log', '{}', '{}', 'SELECT count(*) FROM apikey.audit_log'),
	('key_id_compare', '{key_id,key_id}', ARRAY[$$hostile.id('active')$$, $$hostile.id('admin')$$],
	 'SELECT %1$s = %2$s, %1$s < %2$s, %1$s >= %2$s, %1$s <> %2$s, apikey.key_id_cmp(%1$s, %2$s), apikey.key_id_hash(%1$s), apikey.key_id_hash_extended(%2$s, -1)'),
	('key_id_index', '{key_id}', ARRAY[$$hostile.id('active')$$],
	 'SELECT count(*) FROM apikey.keys WHERE key_id = %1$s');

-- Every function the list above names must exist: a name that no longer does
-- would leave its values untried (it would pass for want of calls; a call
-- whose arguments no longer fit fails as an unclear error, 42883).  Every
-- other function of the schemas apikey and apikey_internal (a new one, an
-- internal one) is covered generically: its argument types from the catalog,
-- a plain baseline value per type.
DO $$
DECLARE
	missing text;
BEGIN
	SELECT string_agg(f.fn, ', ' ORDER BY f.fn) INTO missing
	  FROM hostile.fns AS f
	 WHERE (f.fn LIKE 'apikey.%' OR f.fn LIKE 'apikey\_internal.%')
	   AND NOT EXISTS (SELECT FROM pg_proc p
	                    WHERE p.pronamespace IN ('apikey'::regnamespace, 'apikey_internal'::regnamespace)
	                      AND p.pronamespace::regnamespace::text || '.' || p.proname = f.fn);
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'hostile.fns names functions that do not exist: %', missing;
	END IF;
END
$$;
CREATE FUNCTION hostile.type_name(t oid) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN t = 'apikey.key_id'::regtype THEN 'key_id'
	            WHEN t = 'timestamptz'::regtype THEN 'timestamptz'
	            ELSE format_type(t, NULL) END
$$;
INSERT INTO hostile.fns (fn, argtypes, baseline)
SELECT p.pronamespace::regnamespace::text || '.' || p.proname,
       ARRAY(SELECT hostile.type_name(a) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS x(a, n) ORDER BY n),
       ARRAY(SELECT CASE hostile.type_name(a)
                        WHEN 'text' THEN $$'acme'$$
                        WHEN 'key_id' THEN $$hostile.id('active')$$
                        WHEN 'text[]' THEN $$'{orders:read}'::text[]$$
                        WHEN 'interval' THEN $$'1 day'::interval$$
                        WHEN 'timestamptz' THEN $$now() + interval '1 day'$$
                        WHEN 'regrole' THEN $$'hostile_app'::regrole$$
                        WHEN 'boolean' THEN 'true'
                        WHEN 'bigint' THEN '1::bigint'
                        WHEN 'integer' THEN '1'
                        ELSE format('NULL::%s', format_type(a, NULL)) END
               FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS x(a, n) ORDER BY n)
  FROM pg_proc p
 WHERE p.pronamespace IN ('apikey'::regnamespace, 'apikey_internal'::regnamespace) AND p.prokind = 'f'
   AND p.proname NOT LIKE 'key\_id\_%'
   AND NOT p.proargtypes::oid[] && ARRAY['internal'::regtype, 'cstring'::regtype]::oid[]
   AND p.prorettype NOT IN ('trigger'::regtype, 'internal'::regtype, 'cstring'::regtype)
ON CONFLICT (fn) DO NOTHING;
-- types without hostile values of their own get NULL and a few extremes
INSERT INTO hostile.vals (type, label, expr)
SELECT DISTINCT t, 'null', format('NULL::%s', CASE t WHEN 'key_id' THEN 'apikey.key_id' ELSE t END)
  FROM hostile.fns, unnest(argtypes) AS t
ON CONFLICT DO NOTHING;
INSERT INTO hostile.vals (type, label, expr) VALUES
	('bigint', 'max', '9223372036854775807::bigint'), ('bigint', 'min', '(-9223372036854775807 - 1)::bigint'),
	('bigint', 'zero', '0::bigint'), ('integer', 'max', '2147483647'), ('integer', 'min', '(-2147483647 - 1)'),
	('integer', 'zero', '0'), ('integer', 'minus_one', '-1'), ('boolean', 'false', 'false'),
	('jsonb', 'big', $$jsonb_build_object('k', repeat('x', 1048576))$$), ('jsonb', 'empty', $$'{}'::jsonb$$)
ON CONFLICT DO NOTHING;

-- The calls: the baseline, all arguments NULL, then each argument in turn
-- replaced by each hostile value of its type.
CREATE TABLE hostile.calls (id serial PRIMARY KEY, fn text, arg int, label text, sql text);

CREATE FUNCTION hostile.render(f hostile.fns, args text[]) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	IF f.fn LIKE 'apikey.%' OR f.fn LIKE 'apikey\_internal.%' THEN
		RETURN format(f.shape, format('%s(%s)', f.fn, array_to_string(args, ', ')));
	END IF;
	RETURN format(f.shape, VARIADIC args);
END
$$;

DO $$
DECLARE
	f hostile.fns;
	v hostile.vals;
	args text[];
	nulls text[];
BEGIN
	FOR f IN SELECT * FROM hostile.fns ORDER BY fn LOOP
		INSERT INTO hostile.calls (fn, arg, label, sql)
		VALUES (f.fn, 0, 'baseline', hostile.render(f, f.baseline));
		IF cardinality(f.argtypes) > 0 THEN
			SELECT array_agg(format('NULL::%s', CASE t WHEN 'key_id' THEN 'apikey.key_id' ELSE t END))
			  INTO nulls FROM unnest(f.argtypes) t;
			INSERT INTO hostile.calls (fn, arg, label, sql)
			VALUES (f.fn, 0, 'all_null', hostile.render(f, nulls));
		END IF;
		FOR i IN 1 .. coalesce(cardinality(f.argtypes), 0) LOOP
			FOR v IN SELECT * FROM hostile.vals WHERE type = f.argtypes[i] ORDER BY label LOOP
				args := f.baseline;
				args[i] := v.expr;
				INSERT INTO hostile.calls (fn, arg, label, sql)
				VALUES (f.fn, i, v.label, hostile.render(f, args));
			END LOOP;
		END LOOP;
	END LOOP;
END
$$;

-- Results, per pass (who calls) and call.
CREATE TABLE hostile.results (
	pass     text,
	call_id  int,
	sqlstate text,
	message  text,
	ms       numeric,
	PRIMARY KEY (pass, call_id)
);

-- The name of an SQLSTATE class, for the suite's summary.
CREATE FUNCTION hostile.class_name(class text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE class
		WHEN '08' THEN 'connection exception'
		WHEN '0A' THEN 'feature not supported'
		WHEN '21' THEN 'cardinality violation'
		WHEN '22' THEN 'data exception'
		WHEN '23' THEN 'integrity constraint violation'
		WHEN '25' THEN 'invalid transaction state'
		WHEN '28' THEN 'invalid authorization'
		WHEN '2B' THEN 'dependent objects still exist'
		WHEN '39' THEN 'external routine invocation'
		WHEN '40' THEN 'transaction rollback'
		WHEN '42' THEN 'syntax error or access rule violation'
		WHEN '53' THEN 'insufficient resources'
		WHEN '54' THEN 'program limit exceeded'
		WHEN '55' THEN 'object not in prerequisite state'
		WHEN '57' THEN 'operator intervention'
		WHEN '58' THEN 'system error'
		WHEN 'P0' THEN 'PL/pgSQL error'
		WHEN 'XX' THEN 'internal error'
		WHEN 'CR' THEN 'crash'
		ELSE 'class ' || class END
$$;

-- Run the calls from from_id on, each in a subtransaction rolled back
-- afterwards (every call sees the same fixture), committing its result, so
-- that after a backend crash the driver knows which call it was.
-- Passes: superuser; tenant_admin (authenticated with the acme admin key
-- first, in the same transaction); app (a role with grant_verifier only).
CREATE PROCEDURE hostile.run(pass text, from_id int DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
	c hostile.calls;
	st text;
	msg text;
	t0 timestamptz;
	admin_key text := hostile.k('admin');
BEGIN
	FOR c IN SELECT * FROM hostile.calls WHERE id >= from_id ORDER BY id LOOP
		st := NULL;
		msg := NULL;
		t0 := clock_timestamp();
		BEGIN
			IF pass = 'tenant_admin' THEN
				PERFORM apikey.authenticate(admin_key);
			END IF;
			EXECUTE c.sql;
			st := '00000';
			RAISE EXCEPTION 'roll back' USING ERRCODE = 'HZ999';
		EXCEPTION WHEN OTHERS THEN
			IF st IS NULL THEN
				GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			END IF;
		END;
		INSERT INTO hostile.results
		VALUES (pass, c.id, st, left(msg, 300),
		        round(extract(epoch FROM clock_timestamp() - t0) * 1000, 1));
		COMMIT;
	END LOOP;
END
$$;

CREATE ROLE hostile_app LOGIN;
SELECT apikey.grant_verifier('hostile_app');
GRANT USAGE ON SCHEMA hostile TO hostile_app;
GRANT SELECT ON hostile.keys, hostile.calls TO hostile_app;
GRANT INSERT ON hostile.results TO hostile_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA hostile TO hostile_app;

SELECT count(*) AS calls FROM hostile.calls;
SELECT string_agg(fn, ' ' ORDER BY fn) AS functions_covered FROM hostile.fns;
