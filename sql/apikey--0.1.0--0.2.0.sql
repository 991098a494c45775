-- apikey 0.1.0 -> 0.2.0
--   last_used_at kept without a write per verification (usage_tracking,
--   the merged last_used_at of key_list); error messages no longer quote
--   values that may be key text; lifetimes judged by the time they give;
--   grant_verifier/grant_admin check the role.
\echo Use "ALTER EXTENSION apikey UPDATE TO '0.2.0'" to load this file. \quit

-- Before anything runs (added after 0.2.0 was released, see 0.4.0 in
-- CHANGELOG.md): the schema apikey must be the extension owner's,
-- writable by no one else, and hold only the extension's own objects.  An
-- object someone else put there (a function named like a built-in that the
-- extension's functions call) would run with the extension owner's rights,
-- in this update already.  Every name here is qualified.
DO $$
DECLARE
	ext pg_catalog.oid;
	nsp pg_catalog.oid;
	schema_owner pg_catalog.name;
	extension_owner pg_catalog.name;
	foreign_object text;
	n_foreign bigint;
BEGIN
	SELECT e.oid, e.extnamespace, pg_catalog.pg_get_userbyid(n.nspowner), pg_catalog.pg_get_userbyid(e.extowner)
	  INTO ext, nsp, schema_owner, extension_owner
	  FROM pg_catalog.pg_extension AS e
	  JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
	 WHERE e.extname OPERATOR(pg_catalog.=) 'apikey';
	IF schema_owner OPERATOR(pg_catalog.<>) extension_owner
	   OR EXISTS (SELECT FROM pg_catalog.pg_namespace AS n, pg_catalog.aclexplode(n.nspacl) AS a
	               WHERE n.oid OPERATOR(pg_catalog.=) nsp
	                 AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
	                 AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner) THEN
		RAISE EXCEPTION 'schema apikey is owned by role %, or others may create objects in it; the extension is owned by %',
			schema_owner, extension_owner
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Objects in that schema run with the extension owner''s rights: reinstall apikey into a schema of its own.';
	END IF;
	SELECT pg_catalog.min(pg_catalog.pg_describe_object(d.classid, d.objid, 0)), pg_catalog.count(DISTINCT (d.classid, d.objid))
	  INTO foreign_object, n_foreign
	  FROM pg_catalog.pg_depend AS d
	 WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
	   AND d.refobjid OPERATOR(pg_catalog.=) nsp
	   AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_extension'::pg_catalog.regclass
	   AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS m
	                    WHERE m.classid OPERATOR(pg_catalog.=) d.classid
	                      AND m.objid OPERATOR(pg_catalog.=) d.objid
	                      AND m.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
	                      AND m.refobjid OPERATOR(pg_catalog.=) ext
	                      AND m.deptype OPERATOR(pg_catalog.=) 'e');
	IF n_foreign OPERATOR(pg_catalog.>) 0 THEN
		RAISE EXCEPTION 'schema apikey holds %, which is not part of extension apikey', foreign_object
			USING ERRCODE = 'insufficient_privilege',
			      DETAIL = pg_catalog.format('%s object(s) in the schema do not belong to the extension; the extension''s functions run with its owner''s rights and must not find them.', n_foreign),
			      HINT = 'Drop those objects or move them to another schema (ALTER ... SET SCHEMA), then update again.';
	END IF;
END
$$;

-- new functions
CREATE FUNCTION apikey._check_key_policy(default_key_lifetime interval,
		max_key_lifetime interval, key_prefix text)
	RETURNS void LANGUAGE plpgsql STABLE
AS $$
BEGIN
	PERFORM apikey._check_lifetime('default_key_lifetime', default_key_lifetime);
	PERFORM apikey._check_lifetime('max_key_lifetime', max_key_lifetime);
	IF default_key_lifetime > max_key_lifetime THEN
		RAISE EXCEPTION 'default_key_lifetime exceeds max_key_lifetime'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF key_prefix IS NULL OR key_prefix !~ '^[a-z0-9]{1,8}$' OR key_prefix = 'pk' THEN
		RAISE EXCEPTION 'invalid key prefix %', apikey._shown(key_prefix)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A key prefix is 1 to 8 lowercase letters or digits; "pk" is reserved for public keys.';
	END IF;
END
$$;
COMMENT ON FUNCTION apikey._check_key_policy(interval, interval, text) IS
	'internal: validate a tenant''s key lifetimes and prefix';

CREATE FUNCTION apikey._check_role(role regrole) RETURNS void
	LANGUAGE plpgsql STABLE
AS $$
BEGIN
	IF role IS NULL THEN
		RAISE EXCEPTION 'role must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.oid OPERATOR(pg_catalog.=) role) THEN
		RAISE EXCEPTION 'role with OID % does not exist', role::oid USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
COMMENT ON FUNCTION apikey._check_role(regrole) IS 'internal: raise unless the role exists';

CREATE FUNCTION apikey._pending_last_used(key_id apikey.key_id) RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'pending_last_used' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey._pending_last_used(apikey.key_id) IS
	'internal: the last use of a key not yet written to apikey.keys, or NULL';

CREATE FUNCTION apikey._shown(value text) RETURNS text
	AS 'MODULE_PATHNAME', 'shown_value' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikey._shown(text) IS
	'internal: a value as an error message may show it (quoted, or not at all when it may hold a secret)';

CREATE FUNCTION apikey.usage_tracking() RETURNS text
	AS 'MODULE_PATHNAME', 'usage_tracking' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.usage_tracking() IS
	'whether last_used_at is kept (it needs shared_preload_libraries = apikey), how often it is written, and what is pending';

REVOKE EXECUTE ON FUNCTION
	apikey._check_key_policy(interval, interval, text),
	apikey._check_role(regrole),
	apikey._pending_last_used(apikey.key_id),
	apikey._shown(text),
	apikey.usage_tracking()
	FROM PUBLIC;

-- changed functions
CREATE OR REPLACE FUNCTION apikey._add_environment(t apikey.tenants, name text, tag text)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	IF name IS NULL OR tag IS NULL THEN
		RAISE EXCEPTION 'environment name and tag must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name !~ '^[a-z0-9][a-z0-9_-]{0,31}$' THEN
		RAISE EXCEPTION 'invalid environment name %', apikey._shown(name)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'An environment name is 1 to 32 lowercase letters, digits, "_" or "-", starting with a letter or digit.';
	END IF;
	IF tag !~ '^[a-z0-9]{1,8}$' THEN
		RAISE EXCEPTION 'invalid environment tag %', apikey._shown(tag)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A tag is 1 to 8 lowercase letters or digits; it appears in the key text (ak_<tag>_...).';
	END IF;
	IF EXISTS (SELECT FROM apikey.environments AS e WHERE e.tenant_id = t.tenant_id AND e.name = _add_environment.name) THEN
		RAISE EXCEPTION 'environment "%" of tenant "%" already exists', name, t.slug
			USING ERRCODE = 'duplicate_object';
	END IF;
	IF EXISTS (SELECT FROM apikey.environments AS e WHERE e.tenant_id = t.tenant_id AND e.tag = _add_environment.tag) THEN
		RAISE EXCEPTION 'tenant "%" already has an environment tagged "%"', t.slug, tag
			USING ERRCODE = 'duplicate_object';
	END IF;
	INSERT INTO apikey.environments (tenant_id, name, tag) VALUES (t.tenant_id, name, tag);
	PERFORM apikey._new_public_key(t.tenant_id, name, tag);
	PERFORM apikey._audit('environment_created', t.tenant_id, t.slug, NULL,
		jsonb_build_object('environment', name, 'tag', tag));
END
$$;

CREATE OR REPLACE FUNCTION apikey._authorize_key(key_id apikey.key_id) RETURNS apikey.keys
	LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	k apikey.keys;
BEGIN
	PERFORM apikey._authorized_tenant(coalesce(apikey.current_tenant(), ''));
	IF key_id IS NULL THEN
		RAISE EXCEPTION 'key_id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO k FROM apikey.keys AS x WHERE x.key_id = _authorize_key.key_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key % does not exist', key_id USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey._authorized_tenant(k.tenant);
	RETURN k;
END
$$;

CREATE OR REPLACE FUNCTION apikey._authorize_tenant(slug text) RETURNS apikey.tenants
	LANGUAGE plpgsql STABLE
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	slug := apikey._authorized_tenant(slug);
	SELECT * INTO t FROM apikey.tenants AS x WHERE x.slug = _authorize_tenant.slug;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % does not exist', apikey._shown(slug) USING ERRCODE = 'undefined_object';
	END IF;
	RETURN t;
END
$$;

CREATE OR REPLACE FUNCTION apikey._check_lifetime(what text, lifetime interval)
	RETURNS void LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF lifetime IS NULL THEN
		RETURN;
	END IF;
	-- judged by the time it gives: '1 month -29 days' is not positive in February
	IF lifetime > '100 years' OR now() + lifetime <= now() THEN
		RAISE EXCEPTION '% must be between 0 and 100 years, exclusive of 0', what
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Got %s.', lifetime);
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION apikey._environment(t apikey.tenants, name text)
	RETURNS apikey.environments LANGUAGE plpgsql STABLE
AS $$
DECLARE
	e apikey.environments;
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'environment must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO e FROM apikey.environments AS x
	 WHERE x.tenant_id = t.tenant_id AND x.name = _environment.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey._shown(name), t.slug
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN e;
END
$$;

CREATE OR REPLACE FUNCTION apikey.create_key(tenant text, environment text, name text,
		description text DEFAULT NULL, scopes text[] DEFAULT '{}',
		expires_in interval DEFAULT NULL, resource text DEFAULT NULL,
		OUT key_id apikey.key_id, OUT api_key text, OUT hint text, OUT expires_at timestamptz)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	tenant_slug text := apikey._authorized_tenant(tenant);
	key_scopes text[] := apikey._normalized_scopes(scopes);
	t record;
	g record;
BEGIN
	name := apikey._checked_label('key name', name, 200, true);
	description := apikey._checked_label('description', description, 1000, false);
	resource := apikey._checked_resource(resource);
	IF environment IS NULL THEN
		RAISE EXCEPTION 'environment must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT x.tenant_id, x.key_prefix, x.default_key_lifetime, x.max_key_lifetime, e.tag
	  INTO t
	  FROM apikey.tenants AS x
	  LEFT JOIN apikey.environments AS e
	    ON e.tenant_id = x.tenant_id AND e.name = create_key.environment
	 WHERE x.slug = tenant_slug;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % does not exist', apikey._shown(tenant_slug) USING ERRCODE = 'undefined_object';
	ELSIF t.tag IS NULL THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey._shown(environment), tenant_slug
			USING ERRCODE = 'undefined_object';
	END IF;
	IF apikey.current_tenant_id() IS NOT NULL THEN
		PERFORM apikey._check_grantable(key_scopes, resource);
	END IF;
	IF expires_in IS NOT NULL OR t.default_key_lifetime IS NOT NULL OR t.max_key_lifetime IS NOT NULL THEN
		expires_at := apikey._expiry(tenant_slug, expires_in, t.default_key_lifetime, t.max_key_lifetime);
	END IF;
	LOOP
		g := apikey._generate_key(t.key_prefix, t.tag);
		WITH k AS (
			INSERT INTO apikey.keys (key_id, tenant_id, tenant, environment, key_hash, hint,
			                         name, description, scopes, resource, expires_at, created_by)
			VALUES (g.key_id, t.tenant_id, tenant_slug, environment, g.key_hash, g.hint,
			        name, description, key_scopes, resource, expires_at, apikey._caller()::text)
			ON CONFLICT DO NOTHING
			RETURNING 1)
		INSERT INTO apikey.audit (actor_role, actor_key_id, tenant_id, tenant, key_id, action, details)
		SELECT apikey._caller()::text, apikey.current_key_id(), t.tenant_id, tenant_slug, g.key_id, 'created',
		       jsonb_build_object('environment', environment, 'name', name, 'scopes', key_scopes,
		                          'resource', resource, 'expires_at', expires_at)
		  FROM k;
		EXIT WHEN FOUND;    -- a key id already taken (1 in 2^64 per key): draw again
	END LOOP;
	key_id := g.key_id;
	api_key := g.api_key;
	hint := g.hint;
END
$$;

CREATE OR REPLACE FUNCTION apikey.create_tenant(slug text, name text DEFAULT NULL,
		environments text[] DEFAULT '{production,preview}',
		key_prefix text DEFAULT 'ak',
		default_key_lifetime interval DEFAULT NULL,
		max_key_lifetime interval DEFAULT NULL)
	RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	t apikey.tenants;
	env text;
	env_name text;
	env_tag text;
BEGIN
	PERFORM apikey._authorize_admin();
	IF slug IS NULL THEN
		RAISE EXCEPTION 'slug must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF slug !~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' THEN
		RAISE EXCEPTION 'invalid tenant slug %', apikey._shown(slug)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A slug is 1 to 63 lowercase letters, digits or "-", starting and ending with a letter or digit.';
	END IF;
	name := apikey._checked_label('tenant name', name, 200, false);
	PERFORM apikey._check_key_policy(default_key_lifetime, max_key_lifetime, key_prefix);
	IF environments IS NULL OR cardinality(environments) > 16 OR array_ndims(environments) > 1 THEN
		RAISE EXCEPTION 'environments must be a one-dimensional array of at most 16 names'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT FROM apikey.tenants AS x WHERE x.slug = create_tenant.slug) THEN
		RAISE EXCEPTION 'tenant "%" already exists', slug USING ERRCODE = 'unique_violation';
	END IF;

	INSERT INTO apikey.tenants AS x (slug, name, key_prefix, default_key_lifetime, max_key_lifetime, created_by)
	VALUES (slug, name, key_prefix, default_key_lifetime, max_key_lifetime, apikey._caller()::text)
	RETURNING * INTO t;
	PERFORM apikey._audit('tenant_created', t.tenant_id, t.slug, NULL,
		jsonb_build_object('name', name, 'key_prefix', key_prefix,
		                   'default_key_lifetime_seconds', extract(epoch FROM default_key_lifetime),
		                   'max_key_lifetime_seconds', extract(epoch FROM max_key_lifetime)));

	-- "name" or "name:tag"; production and preview are tagged live and test
	FOREACH env IN ARRAY environments LOOP
		env_name := split_part(env, ':', 1);
		env_tag := CASE WHEN env LIKE '%:%' THEN substr(env, length(env_name) + 2)
		                WHEN env_name = 'production' THEN 'live'
		                WHEN env_name = 'preview' THEN 'test'
		                ELSE env_name END;
		PERFORM apikey._add_environment(t, env_name, env_tag);
	END LOOP;
	RETURN t.tenant_id;
END
$$;

CREATE OR REPLACE FUNCTION apikey.grant_verifier(role regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
BEGIN
	PERFORM apikey._check_role(role);
	EXECUTE format('GRANT USAGE ON SCHEMA apikey TO %s', role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION
		apikey.verify(text, text, text, text),
		apikey.authenticate(text, text),
		apikey.identify(text),
		apikey.create_key(text, text, text, text, text[], interval, text),
		apikey.rename_key(apikey.key_id, text),
		apikey.describe_key(apikey.key_id, text),
		apikey.revoke_key(apikey.key_id, text),
		apikey.reactivate_key(apikey.key_id),
		apikey.delete_key(apikey.key_id),
		apikey.roll_key(apikey.key_id, interval),
		apikey.set_key_expiry(apikey.key_id, timestamptz),
		apikey.public_key(text, text),
		apikey.regenerate_public_key(text, text)
		TO %s', role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION apikey._pending_last_used(apikey.key_id), apikey.usage_tracking() TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.key_list, apikey.audit_log TO %s', role);
END
$$;

CREATE OR REPLACE FUNCTION apikey.set_key_policy(tenant text, default_key_lifetime interval,
		max_key_lifetime interval, key_prefix text DEFAULT 'ak')
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey._authorize_admin();
	t := apikey._authorize_tenant(tenant);
	PERFORM apikey._check_key_policy(default_key_lifetime, max_key_lifetime, key_prefix);
	UPDATE apikey.tenants AS x
	   SET default_key_lifetime = set_key_policy.default_key_lifetime,
	       max_key_lifetime = set_key_policy.max_key_lifetime,
	       key_prefix = set_key_policy.key_prefix
	 WHERE x.tenant_id = t.tenant_id;
	PERFORM apikey._audit('policy_changed', t.tenant_id, t.slug, NULL,
		jsonb_build_object('default_key_lifetime_seconds', extract(epoch FROM default_key_lifetime),
		                   'max_key_lifetime_seconds', extract(epoch FROM max_key_lifetime),
		                   'key_prefix', key_prefix));
END
$$;

-- comments on every object
COMMENT ON OPERATOR pg_catalog.= (apikey.key_id, apikey.key_id) IS 'key_id equal';
COMMENT ON OPERATOR pg_catalog.<> (apikey.key_id, apikey.key_id) IS 'key_id not equal';
COMMENT ON OPERATOR pg_catalog.< (apikey.key_id, apikey.key_id) IS 'key_id less than';
COMMENT ON OPERATOR pg_catalog.<= (apikey.key_id, apikey.key_id) IS 'key_id less than or equal';
COMMENT ON OPERATOR pg_catalog.> (apikey.key_id, apikey.key_id) IS 'key_id greater than';
COMMENT ON OPERATOR pg_catalog.>= (apikey.key_id, apikey.key_id) IS 'key_id greater than or equal';
COMMENT ON OPERATOR CLASS apikey.key_id_ops USING btree IS 'btree (ordering) support for key_id';
COMMENT ON OPERATOR FAMILY apikey.key_id_ops USING btree IS 'btree (ordering) support for key_id';
COMMENT ON OPERATOR CLASS apikey.key_id_hash_ops USING hash IS 'hash support for key_id';
COMMENT ON OPERATOR FAMILY apikey.key_id_hash_ops USING hash IS 'hash support for key_id';
COMMENT ON SEQUENCE apikey.tenants_tenant_id_seq IS 'tenant ids';
COMMENT ON SEQUENCE apikey.audit_event_id_seq IS 'audit event ids, in the order events happened';

-- the listing merges the uses not yet written
CREATE OR REPLACE VIEW apikey.key_list WITH (security_barrier) AS
SELECT k.key_id,
       k.tenant,
       k.environment,
       k.name,
       k.description,
       k.hint,
       k.scopes,
       k.resource,
       CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
            WHEN k.expires_at <= pg_catalog.now() THEN 'expired'
            ELSE 'active' END AS status,
       k.created_at,
       k.created_by,
       k.expires_at,
       k.revoked_at,
       k.revoked_reason,
       k.rolled_at,
       CASE WHEN k.previous_hash_expires_at > pg_catalog.now()
            THEN k.previous_hash_expires_at END AS previous_secret_expires_at,
       greatest(k.last_used_at, apikey._pending_last_used(k.key_id)) AS last_used_at,
       k.tenant_id
  FROM apikey.keys AS k
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey._is_admin())
            ELSE k.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;

-- roles that may read key_list already may run what it now calls
DO $$
DECLARE
	r regrole;
BEGIN
	FOR r IN SELECT DISTINCT a.grantee::regrole
	           FROM pg_class c, aclexplode(c.relacl) a
	          WHERE c.oid = 'apikey.key_list'::regclass AND a.privilege_type = 'SELECT'
	            AND a.grantee <> c.relowner AND a.grantee <> 0
	LOOP
		EXECUTE format('GRANT EXECUTE ON FUNCTION apikey._pending_last_used(apikey.key_id), apikey.usage_tracking() TO %s', r);
	END LOOP;
END
$$;

DO $$
BEGIN
	IF apikey.usage_tracking() LIKE 'off%' THEN
		RAISE NOTICE 'apikey: last_used_at is not tracked in this server'
			USING HINT = 'Add apikey to shared_preload_libraries and restart to keep it (without a write per verification).';
	END IF;
END
$$;
