-- Vendor controls: what a full administrator (the vendor running the
-- database for its customers) sets on a tenant's keys, and a tenant's own
-- administrators (keys with apikey:admin) may not lift.
--
--   rate limits  a limit an administrator set on a key stays as it is: a
--                tenant administrator may not change or remove it, and may
--                add limits of its own (other names), which only restrict
--                further.
--   credits      credits an administrator set on a key: a tenant
--                administrator may not replace, remove or add to them (it
--                may take some away).
--   allowlist    an allowlist an administrator set on a key: a tenant
--                administrator may narrow it (networks within it), never
--                drop or widen it.
--   meta         top-level meta fields an administrator wrote on any key of
--                a tenant (or named with set_vendor_meta_fields) are the
--                vendor's for that tenant: a tenant administrator may not
--                set, change or remove them on any key, and edits the rest.
--
-- Which side a caller is on is decided in one place,
-- apikey_internal.by_tenant.

CREATE TABLE apikey.key_vendor_controls (
	key_id      apikey.key_id PRIMARY KEY,             -- deleted with the key (delete_key)
	rate_limits text[] NOT NULL DEFAULT '{}',   -- names of limits an administrator set
	credits     boolean NOT NULL DEFAULT false, -- credits set by an administrator
	allowed_ips cidr[]                          -- the allowlist an administrator set
);
COMMENT ON TABLE apikey.key_vendor_controls IS
	'per key, the rate limits, credits and allowlist an administrator set, which tenant administrators may not lift';

CREATE TABLE apikey.vendor_meta_fields (
	tenant_id bigint NOT NULL REFERENCES apikey.tenants ON DELETE CASCADE,
	field     text NOT NULL,
	PRIMARY KEY (tenant_id, field)
);
COMMENT ON TABLE apikey.vendor_meta_fields IS
	'per tenant, the top-level meta fields that only administrators set (tenant administrators edit the others)';

-- Is the caller on the tenant's side (a tenant administrator: its
-- transaction authenticated a key of the tenant; or a member: act_for)
-- rather than the vendor's (a full administrator)?  Called after the management function's own
-- authorization, which admits no one else.  Anything that lets a caller
-- act within one tenant must answer true here.
CREATE FUNCTION apikey_internal.by_tenant() RETURNS boolean
	LANGUAGE sql STABLE
AS $$
	SELECT apikey_internal.acting_tenant_id() IS NOT NULL
$$;
COMMENT ON FUNCTION apikey_internal.by_tenant() IS
	'internal: is the caller a tenant''s own administrator (not the vendor)? The one rule of which controls a caller may lift';

-- The vendor's controls of a key (a row of defaults when it has none).
CREATE FUNCTION apikey_internal.vendor_controls(key_id apikey.key_id) RETURNS apikey.key_vendor_controls
	LANGUAGE sql STABLE
AS $$
	SELECT v FROM (SELECT $1 AS key_id) AS k
	  LEFT JOIN apikey.key_vendor_controls AS v ON v.key_id OPERATOR(pg_catalog.=) k.key_id
$$;
COMMENT ON FUNCTION apikey_internal.vendor_controls(apikey.key_id) IS
	'internal: the rate limits, credits and allowlist an administrator set on a key (NULL: none)';

CREATE FUNCTION apikey_internal.deny_vendor_control(what text, key_id apikey.key_id)
	RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
	RAISE EXCEPTION 'permission denied: an administrator set %', what
		      || CASE WHEN key_id IS NOT NULL THEN ' of key ' || key_id::text ELSE '' END
		USING ERRCODE = 'insufficient_privilege',
		      HINT = 'A tenant administrator may add restrictions of its own; only an administrator lifts this one.';
END
$$;
COMMENT ON FUNCTION apikey_internal.deny_vendor_control(text, apikey.key_id) IS
	'internal: raise permission denied for a vendor control a tenant administrator tried to lift';

-- A key's rate limit named name is being set or removed (max_requests NULL).
CREATE FUNCTION apikey_internal.vendor_rate_limit(k apikey.keys, name text, removed boolean)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	v apikey.key_vendor_controls := apikey_internal.vendor_controls(k.key_id);
BEGIN
	IF apikey_internal.by_tenant() THEN
		IF name OPERATOR(pg_catalog.=) ANY (v.rate_limits) THEN
			PERFORM apikey_internal.deny_vendor_control(pg_catalog.format('the rate limit "%s"', name), k.key_id);
		END IF;
		RETURN;
	END IF;
	INSERT INTO apikey.key_vendor_controls AS x (key_id, rate_limits)
	VALUES (k.key_id, CASE WHEN removed THEN '{}' ELSE ARRAY[name] END)
	ON CONFLICT (key_id) DO UPDATE
	   SET rate_limits = pg_catalog.array_remove(x.rate_limits, name)
	                     OPERATOR(pg_catalog.||) CASE WHEN removed THEN '{}' ELSE ARRAY[name] END;
END
$$;
COMMENT ON FUNCTION apikey_internal.vendor_rate_limit(apikey.keys, text, boolean) IS
	'internal: an administrator''s rate limit is recorded as the vendor''s; a tenant administrator may not change or remove one';

-- A key's credits are being set (remaining NULL: removed) or added to.
CREATE FUNCTION apikey_internal.vendor_credits(k apikey.keys, remaining bigint, added bigint)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	IF apikey_internal.by_tenant() THEN
		IF (apikey_internal.vendor_controls(k.key_id)).credits
		   AND (added IS NULL OR added OPERATOR(pg_catalog.>) 0) THEN
			PERFORM apikey_internal.deny_vendor_control('the credits', k.key_id);
		END IF;
		RETURN;
	END IF;
	IF added IS NULL THEN
		INSERT INTO apikey.key_vendor_controls AS x (key_id, credits)
		VALUES (k.key_id, remaining IS NOT NULL)
		ON CONFLICT (key_id) DO UPDATE SET credits = excluded.credits;
	END IF;
END
$$;
COMMENT ON FUNCTION apikey_internal.vendor_credits(apikey.keys, bigint, bigint) IS
	'internal: an administrator''s credits are recorded as the vendor''s; a tenant administrator may not replace, remove or add to them';

-- A key's allowlist is being set (for a new key, k.key_id is its id).
CREATE FUNCTION apikey_internal.vendor_allowed_ips(key_id apikey.key_id, allowed_ips cidr[])
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	imposed cidr[] := (apikey_internal.vendor_controls(key_id)).allowed_ips;
BEGIN
	IF apikey_internal.by_tenant() THEN
		IF imposed IS NOT NULL AND (allowed_ips IS NULL OR EXISTS (
		       SELECT FROM pg_catalog.unnest(allowed_ips) AS n
		        WHERE NOT n OPERATOR(pg_catalog.<<=) ANY (imposed))) THEN
			PERFORM apikey_internal.deny_vendor_control('the allowlist', key_id);
		END IF;
		RETURN;
	END IF;
	INSERT INTO apikey.key_vendor_controls AS x (key_id, allowed_ips)
	VALUES (key_id, allowed_ips)
	ON CONFLICT ON CONSTRAINT key_vendor_controls_pkey DO UPDATE SET allowed_ips = excluded.allowed_ips;
END
$$;
COMMENT ON FUNCTION apikey_internal.vendor_allowed_ips(apikey.key_id, cidr[]) IS
	'internal: an administrator''s allowlist is recorded as the vendor''s; a tenant administrator may only narrow it';

-- The allowlist a new key must stay within: a tenant administrator whose
-- key carries the vendor's allowlist creates (and imports) keys usable
-- from those networks only (the vendor's for them too), or it could give
-- itself a key usable from anywhere.  NULL: none.
CREATE FUNCTION apikey_internal.imposed_allowed_ips(allowed_ips cidr[]) RETURNS cidr[]
	LANGUAGE plpgsql STABLE
AS $$
DECLARE
	imposed cidr[];
BEGIN
	IF apikey.current_key_id() IS NULL THEN
		RETURN NULL;
	END IF;
	imposed := (apikey_internal.vendor_controls(apikey.current_key_id())).allowed_ips;
	IF imposed IS NOT NULL AND allowed_ips IS NOT NULL AND EXISTS (
	       SELECT FROM pg_catalog.unnest(allowed_ips) AS n
	        WHERE NOT n OPERATOR(pg_catalog.<<=) ANY (imposed)) THEN
		PERFORM apikey_internal.deny_vendor_control('the allowlist of the authenticated key', NULL);
	END IF;
	RETURN imposed;
END
$$;
COMMENT ON FUNCTION apikey_internal.imposed_allowed_ips(cidr[]) IS
	'internal: the vendor''s allowlist of the authenticated tenant administrator''s key, which its new keys stay within (NULL: none)';

-- A key's meta is being set (old NULL: a new key).  A tenant administrator
-- may not touch the tenant's vendor fields; an administrator's writes make
-- the fields it sets, changes or removes the vendor's.
CREATE FUNCTION apikey_internal.vendor_meta(tenant_id bigint, key_id apikey.key_id, old jsonb, new jsonb)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	field text;
BEGIN
	IF apikey_internal.by_tenant() THEN
		SELECT f.field INTO field FROM apikey.vendor_meta_fields AS f
		 WHERE f.tenant_id OPERATOR(pg_catalog.=) vendor_meta.tenant_id
		   AND (old OPERATOR(pg_catalog.->) f.field) IS DISTINCT FROM (new OPERATOR(pg_catalog.->) f.field)
		 ORDER BY f.field LIMIT 1;
		IF FOUND THEN
			PERFORM apikey_internal.deny_vendor_control(pg_catalog.format('the meta field "%s"', field), key_id);
		END IF;
		RETURN;
	END IF;
	INSERT INTO apikey.vendor_meta_fields (tenant_id, field)
	SELECT vendor_meta.tenant_id, f
	  FROM (SELECT pg_catalog.jsonb_object_keys(COALESCE(new, '{}'))
	        UNION SELECT pg_catalog.jsonb_object_keys(COALESCE(old, '{}'))) AS x(f)
	 WHERE (old OPERATOR(pg_catalog.->) f) IS DISTINCT FROM (new OPERATOR(pg_catalog.->) f)
	ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION apikey_internal.vendor_meta(bigint, apikey.key_id, jsonb, jsonb) IS
	'internal: tenant administrators may not touch the vendor''s meta fields; fields an administrator writes become the vendor''s';

CREATE FUNCTION apikey.set_vendor_meta_fields(tenant text, fields text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
	old text[];
BEGIN
	PERFORM apikey_internal.authorize_admin();
	t := apikey_internal.authorize_tenant(tenant, 'apikey:admin');
	IF fields IS NULL OR array_ndims(fields) > 1 OR array_position(fields, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'fields must be a one-dimensional array of field names without NULL'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT array_agg(f.field ORDER BY f.field) INTO old
	  FROM apikey.vendor_meta_fields AS f WHERE f.tenant_id = t.tenant_id;
	DELETE FROM apikey.vendor_meta_fields AS f WHERE f.tenant_id = t.tenant_id;
	INSERT INTO apikey.vendor_meta_fields (tenant_id, field)
	SELECT DISTINCT t.tenant_id, apikey_internal.checked_label('field', x, 200, true) FROM unnest(fields) AS x;
	PERFORM apikey_internal.audit('vendor_meta_fields_set', t.tenant_id, t.slug, NULL,
		jsonb_build_object('from', coalesce(old, '{}'),
		                   'to', ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(fields) AS x ORDER BY 1)));
END
$$;
COMMENT ON FUNCTION apikey.set_vendor_meta_fields(text, text[]) IS
	'name the top-level meta fields of a tenant''s keys that only administrators set (replaces the list; fields an administrator writes are added to it); full administrators only';

-- Who sets what: the vendor's fields of each tenant, for full
-- administrators and the tenant's own administrators (so that a tenant's
-- dashboard knows which fields it may not edit).
CREATE VIEW apikey.vendor_meta_field_list WITH (security_barrier) AS
SELECT t.slug AS tenant,
       f.field,
       t.tenant_id
  FROM apikey.vendor_meta_fields AS f
  JOIN apikey.tenants AS t ON t.tenant_id OPERATOR(pg_catalog.=) f.tenant_id
 WHERE CASE WHEN apikey_internal.acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey_internal.sees_tenant(t.tenant_id) END;
COMMENT ON VIEW apikey.vendor_meta_field_list IS
	'meta fields only administrators set, per tenant: visible as key_list is';
COMMENT ON COLUMN apikey.vendor_meta_field_list.tenant IS
	'the slug of the tenant';
COMMENT ON COLUMN apikey.vendor_meta_field_list.field IS
	'a top-level field of the keys'' meta that only full administrators set';
COMMENT ON COLUMN apikey.vendor_meta_field_list.tenant_id IS
	'the tenant''s bigint id, as current_tenant_id() returns it';
