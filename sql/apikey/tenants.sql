-- Tenants, their environments and public keys; the audit trail; the
-- authorization of management calls.

CREATE SEQUENCE apikey.tenants_tenant_id_seq;
CREATE TABLE apikey.tenants (
	tenant_id            bigint PRIMARY KEY DEFAULT nextval('apikey.tenants_tenant_id_seq'),
	slug                 text NOT NULL UNIQUE
	                     CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
	name                 text CHECK (length(name) <= 200),
	key_prefix           text NOT NULL DEFAULT 'ak'
	                     CHECK (key_prefix ~ '^[a-z0-9]{1,8}$' AND key_prefix <> 'pk'),
	default_key_lifetime interval CHECK (default_key_lifetime > '0'),
	max_key_lifetime     interval CHECK (max_key_lifetime > '0'),
	created_at           timestamptz NOT NULL DEFAULT now(),
	created_by           text NOT NULL,
	rate_limits          apikey.rate_limit[]    -- one budget for all its keys (usage.sql)
	-- (a default lifetime within the maximum is checked as times, by
	-- apikey_internal.check_key_policy: as intervals, '364 days' is more
	-- than '12 mons')
);
ALTER SEQUENCE apikey.tenants_tenant_id_seq OWNED BY apikey.tenants.tenant_id;
COMMENT ON SEQUENCE apikey.tenants_tenant_id_seq IS 'tenant ids';
COMMENT ON TABLE apikey.tenants IS 'customer accounts; keys never cross tenants';

CREATE TABLE apikey.environments (
	tenant_id  bigint NOT NULL REFERENCES apikey.tenants ON DELETE CASCADE,
	name       text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
	tag        text NOT NULL CHECK (tag ~ '^[a-z0-9]{1,8}$'),
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, name),
	UNIQUE (tenant_id, tag)
);
COMMENT ON TABLE apikey.environments IS 'deployment stages of a tenant (production/live, preview/test, ...); a key is valid in its own only';

CREATE TABLE apikey.public_keys (
	key_id      apikey.key_id PRIMARY KEY,
	tenant_id   bigint NOT NULL,
	environment text NOT NULL,
	public_key  text NOT NULL UNIQUE,
	created_at  timestamptz NOT NULL DEFAULT now(),
	UNIQUE (tenant_id, environment),
	FOREIGN KEY (tenant_id, environment) REFERENCES apikey.environments ON DELETE CASCADE
);
COMMENT ON TABLE apikey.public_keys IS 'one public key per tenant environment: identifies, never authenticates';

CREATE SEQUENCE apikey.audit_event_id_seq;
CREATE TABLE apikey.audit (
	event_id     bigint PRIMARY KEY DEFAULT nextval('apikey.audit_event_id_seq'),
	at           timestamptz NOT NULL DEFAULT now(),
	actor_role   text NOT NULL,
	actor_key_id apikey.key_id,
	tenant_id    bigint NOT NULL,
	tenant       text NOT NULL,
	key_id       apikey.key_id,
	action       text NOT NULL,     -- see audit_log in doc/reference.md for the list
	details      jsonb NOT NULL DEFAULT '{}',
	-- version 0.3.0
	actor        text               -- apikey.set_actor: the human behind the change
);
ALTER SEQUENCE apikey.audit_event_id_seq OWNED BY apikey.audit.event_id;
COMMENT ON SEQUENCE apikey.audit_event_id_seq IS 'audit event ids, in the order events happened';
COMMENT ON TABLE apikey.audit IS 'who did what to which tenant or key; no foreign keys, so it outlives deleted keys';
-- version 0.4.0: a key's revocations, for a hot standby's kill switch (replica.c)
CREATE INDEX audit_revocations ON apikey.audit (key_id, event_id) WHERE action IN ('revoked', 'leaked');

-- The internal functions below (named _*) are called only from the
-- SECURITY DEFINER entry points, which fix the search_path, and are
-- executable by no one else.  Called directly (by the owner), they still
-- answer bad arguments with a clear error.

CREATE FUNCTION apikey_internal.require(what text, present boolean) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF present IS NOT TRUE THEN
		RAISE EXCEPTION '% must not be null', coalesce(what, 'argument')
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
END
$$;
COMMENT ON FUNCTION apikey_internal.require(text, boolean) IS
	'internal: raise "<what> must not be null" unless present';

-- Record an event as the calling role and, when authenticated, key; and
-- the human behind it when the transaction is labelled (set_actor).
CREATE FUNCTION apikey_internal.audit(action text, tenant_id bigint, tenant text,
		key_id apikey.key_id, details jsonb DEFAULT '{}')
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	PERFORM apikey_internal.require('action, tenant_id and tenant', action IS NOT NULL
		AND tenant_id IS NOT NULL AND tenant IS NOT NULL);
	INSERT INTO apikey.audit (actor_role, actor_key_id, tenant_id, tenant, key_id, action, details, actor)
	VALUES (apikey_internal.caller()::text, apikey.current_key_id(), $2, $3, $4, $1, coalesce($5, '{}'),
	        apikey_internal.actor());
END
$$;
COMMENT ON FUNCTION apikey_internal.audit(text, bigint, text, apikey.key_id, jsonb) IS
	'internal: append to the audit trail';

CREATE FUNCTION apikey_internal.deny(message text, hint text DEFAULT NULL)
	RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
		MESSAGE = coalesce(message, 'permission denied'),
		HINT = coalesce(hint, 'Administrators are named with apikey.grant_admin; a tenant''s own administrators authenticate with a key holding apikey:admin.');
END
$$;
COMMENT ON FUNCTION apikey_internal.deny(text, text) IS 'internal: raise permission denied';

-- Only full administrators (tenant-level settings, new tenants).
CREATE FUNCTION apikey_internal.authorize_admin() RETURNS void LANGUAGE plpgsql STABLE
AS $$
BEGIN
	IF apikey_internal.acting_tenant_id() IS NOT NULL OR NOT apikey.is_admin() THEN
		PERFORM apikey_internal.deny('permission denied: only an apikey administrator may do this');
	END IF;
END
$$;
COMMENT ON FUNCTION apikey_internal.authorize_admin() IS
	'internal: raise unless the caller is a full administrator (not acting as a key or for a member)';

-- The tenant with this slug, if the caller may use the right on it (see
-- apikey_internal.authorized_tenant); raises 42501 or 42704 otherwise.
CREATE FUNCTION apikey_internal.authorize_tenant(slug text, "right" text) RETURNS apikey.tenants
	LANGUAGE plpgsql STABLE
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	slug := apikey_internal.authorized_tenant(slug, "right");
	SELECT * INTO t FROM apikey.tenants AS x WHERE x.slug = authorize_tenant.slug;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % does not exist', apikey_internal.shown(slug) USING ERRCODE = 'undefined_object';
	END IF;
	RETURN t;
END
$$;
COMMENT ON FUNCTION apikey_internal.authorize_tenant(text, text) IS
	'internal: the tenant, if the caller may use the right (apikey:tenant, ...) on it; raises 42501 otherwise';

CREATE FUNCTION apikey_internal.environment(t apikey.tenants, name text)
	RETURNS apikey.environments LANGUAGE plpgsql STABLE
AS $$
DECLARE
	e apikey.environments;
BEGIN
	PERFORM apikey_internal.require('tenant', t.tenant_id IS NOT NULL);
	IF name IS NULL THEN
		RAISE EXCEPTION 'environment must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO e FROM apikey.environments AS x
	 WHERE x.tenant_id = t.tenant_id AND x.name = environment.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey_internal.shown(name), t.slug
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN e;
END
$$;
COMMENT ON FUNCTION apikey_internal.environment(apikey.tenants, text) IS
	'internal: a tenant''s environment by name; raises 42704 when there is none';

-- Validation of management input (C): each returns its input, normalized,
-- or raises a clear error.
CREATE FUNCTION apikey_internal.shown(value text) RETURNS text
	AS 'MODULE_PATHNAME', 'shown_value' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikey_internal.shown(text) IS
	'internal: a value as an error message may show it (quoted, or not at all when it may hold a secret)';

CREATE FUNCTION apikey_internal.checked_label(what text, value text, maxlen integer, required boolean)
	RETURNS text AS 'MODULE_PATHNAME', 'checked_label' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikey_internal.checked_label(text, text, integer, boolean) IS
	'internal: a name, description or reason of at most maxlen characters without control characters';

CREATE FUNCTION apikey_internal.normalized_scopes(scopes text[]) RETURNS text[]
	AS 'MODULE_PATHNAME', 'normalized_scopes' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikey_internal.normalized_scopes(text[]) IS
	'internal: at most 64 well-formed scopes ("*", "a:b", "a:*"), sorted, without duplicates';

CREATE FUNCTION apikey_internal.checked_resource(resource text) RETURNS text
	AS 'MODULE_PATHNAME', 'checked_resource' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikey_internal.checked_resource(text) IS
	'internal: a well-formed resource ("type:id", at most 200 characters)';

CREATE FUNCTION apikey_internal.check_lifetime(what text, lifetime interval)
	RETURNS void LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF lifetime IS NULL THEN
		RETURN;
	END IF;
	-- judged by the time it gives: '1 month -29 days' is not positive in February
	IF lifetime > '100 years' OR now() + lifetime <= now() THEN
		RAISE EXCEPTION '% must be between 0 and 100 years, exclusive of 0', coalesce(what, 'lifetime')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Got %s.', lifetime);
	END IF;
END
$$;
COMMENT ON FUNCTION apikey_internal.check_lifetime(text, interval) IS
	'internal: validate a key lifetime';

-- A tenant's key policy: lifetimes, the default within the maximum, the prefix.
CREATE FUNCTION apikey_internal.check_key_policy(default_key_lifetime interval,
		max_key_lifetime interval, key_prefix text)
	RETURNS void LANGUAGE plpgsql STABLE
AS $$
BEGIN
	PERFORM apikey_internal.check_lifetime('default_key_lifetime', default_key_lifetime);
	PERFORM apikey_internal.check_lifetime('max_key_lifetime', max_key_lifetime);
	-- compared as times, as keys will get them: '3 mons' may exceed '90 days'
	IF now() + default_key_lifetime > now() + max_key_lifetime THEN
		RAISE EXCEPTION 'default_key_lifetime exceeds max_key_lifetime'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF key_prefix IS NULL OR key_prefix !~ '^[a-z0-9]{1,8}$' OR key_prefix = 'pk' THEN
		RAISE EXCEPTION 'invalid key prefix %', apikey_internal.shown(key_prefix)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A key prefix is 1 to 8 lowercase letters or digits; "pk" is reserved for public keys.';
	END IF;
END
$$;
COMMENT ON FUNCTION apikey_internal.check_key_policy(interval, interval, text) IS
	'internal: validate a tenant''s key lifetimes and prefix';

CREATE FUNCTION apikey_internal.new_public_key(tenant_id bigint, environment text, tag text)
	RETURNS text LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	g record;
BEGIN
	PERFORM apikey_internal.require('tenant_id, environment and tag',
		tenant_id IS NOT NULL AND environment IS NOT NULL AND tag IS NOT NULL);
	DELETE FROM apikey.public_keys AS p
	 WHERE p.tenant_id = new_public_key.tenant_id AND p.environment = new_public_key.environment;
	LOOP
		g := apikey_internal.generate_public_key(tag);
		INSERT INTO apikey.public_keys (key_id, tenant_id, environment, public_key)
		VALUES (g.key_id, tenant_id, environment, g.public_key)
		ON CONFLICT DO NOTHING;
		EXIT WHEN FOUND;
	END LOOP;
	RETURN g.public_key;
END
$$;
COMMENT ON FUNCTION apikey_internal.new_public_key(bigint, text, text) IS
	'internal: (re)place the public key of a tenant environment';

CREATE FUNCTION apikey_internal.add_environment(t apikey.tenants, name text, tag text)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	PERFORM apikey_internal.require('tenant', t.tenant_id IS NOT NULL);
	IF name IS NULL OR tag IS NULL THEN
		RAISE EXCEPTION 'environment name and tag must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name !~ '^[a-z0-9][a-z0-9_-]{0,31}$' THEN
		RAISE EXCEPTION 'invalid environment name %', apikey_internal.shown(name)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'An environment name is 1 to 32 lowercase letters, digits, "_" or "-", starting with a letter or digit.';
	END IF;
	IF tag !~ '^[a-z0-9]{1,8}$' THEN
		RAISE EXCEPTION 'invalid environment tag %', apikey_internal.shown(tag)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A tag is 1 to 8 lowercase letters or digits; it appears in the key text (ak_<tag>_...).';
	END IF;
	IF EXISTS (SELECT FROM apikey.environments AS e WHERE e.tenant_id = t.tenant_id AND e.name = add_environment.name) THEN
		RAISE EXCEPTION 'environment "%" of tenant "%" already exists', name, t.slug
			USING ERRCODE = 'duplicate_object';
	END IF;
	IF EXISTS (SELECT FROM apikey.environments AS e WHERE e.tenant_id = t.tenant_id AND e.tag = add_environment.tag) THEN
		RAISE EXCEPTION 'tenant "%" already has an environment tagged "%"', t.slug, tag
			USING ERRCODE = 'duplicate_object';
	END IF;
	INSERT INTO apikey.environments (tenant_id, name, tag) VALUES (t.tenant_id, name, tag);
	PERFORM apikey_internal.new_public_key(t.tenant_id, name, tag);
	PERFORM apikey_internal.audit('environment_created', t.tenant_id, t.slug, NULL,
		jsonb_build_object('environment', name, 'tag', tag));
END
$$;
COMMENT ON FUNCTION apikey_internal.add_environment(apikey.tenants, text, text) IS
	'internal: add an environment and its public key';

CREATE FUNCTION apikey.create_tenant(slug text, name text DEFAULT NULL,
		environments text[] DEFAULT '{production,preview}',
		key_prefix text DEFAULT 'ak',
		default_key_lifetime interval DEFAULT NULL,
		max_key_lifetime interval DEFAULT NULL)
	RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
	env text;
	env_name text;
	env_tag text;
BEGIN
	PERFORM apikey_internal.authorize_admin();
	IF slug IS NULL THEN
		RAISE EXCEPTION 'slug must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF slug !~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' THEN
		RAISE EXCEPTION 'invalid tenant slug %', apikey_internal.shown(slug)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A slug is 1 to 63 lowercase letters, digits or "-", starting and ending with a letter or digit.';
	END IF;
	name := apikey_internal.checked_label('tenant name', name, 200, false);
	PERFORM apikey_internal.check_key_policy(default_key_lifetime, max_key_lifetime, key_prefix);
	IF environments IS NULL OR cardinality(environments) > 16 OR array_ndims(environments) > 1 THEN
		RAISE EXCEPTION 'environments must be a one-dimensional array of at most 16 names'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT FROM apikey.tenants AS x WHERE x.slug = create_tenant.slug) THEN
		RAISE EXCEPTION 'tenant "%" already exists', slug USING ERRCODE = 'unique_violation';
	END IF;

	INSERT INTO apikey.tenants AS x (slug, name, key_prefix, default_key_lifetime, max_key_lifetime, created_by)
	VALUES (slug, name, key_prefix, default_key_lifetime, max_key_lifetime, apikey_internal.caller()::text)
	RETURNING * INTO t;
	PERFORM apikey_internal.audit('tenant_created', t.tenant_id, t.slug, NULL,
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
		PERFORM apikey_internal.add_environment(t, env_name, env_tag);
	END LOOP;
	RETURN t.tenant_id;
END
$$;
COMMENT ON FUNCTION apikey.create_tenant(text, text, text[], text, interval, interval) IS
	'create a tenant with environments ("name" or "name:tag"; production=live and preview=test by default); returns its id';

CREATE FUNCTION apikey.create_environment(tenant text, name text, tag text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	t := apikey_internal.authorize_tenant(tenant, 'apikey:tenant');
	-- a caller confined to some environments (a tenant administrator's key,
	-- a member act_for gave environments) adds none beyond them
	PERFORM apikey_internal.authorize(t.slug, name, NULL, NULL);
	PERFORM apikey_internal.add_environment(t, name, tag);
END
$$;
COMMENT ON FUNCTION apikey.create_environment(text, text, text) IS
	'add an environment (e.g. staging, tag stg) to a tenant, with its public key';

CREATE FUNCTION apikey.set_key_policy(tenant text, default_key_lifetime interval,
		max_key_lifetime interval, key_prefix text DEFAULT 'ak')
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	t := apikey_internal.authorize_tenant(tenant, 'apikey:tenant');
	PERFORM apikey_internal.check_key_policy(default_key_lifetime, max_key_lifetime, key_prefix);
	IF apikey_internal.by_tenant() THEN
		-- the policy holds for every environment: the tenant's side changes
		-- it only when it covers them all
		PERFORM apikey_internal.authorize(t.slug, e.name, NULL, NULL)
		   FROM apikey.environments AS e WHERE e.tenant_id = t.tenant_id;
		-- and only tightens it: a longer (or no) maximum lifetime and another
		-- key prefix are the vendor's to allow
		IF t.max_key_lifetime IS NOT NULL
		   AND (max_key_lifetime IS NULL OR max_key_lifetime > t.max_key_lifetime) THEN
			PERFORM apikey_internal.deny_vendor_control('the maximum lifetime of this tenant''s keys', NULL);
		END IF;
		IF key_prefix IS DISTINCT FROM t.key_prefix THEN
			PERFORM apikey_internal.deny_vendor_control('the key prefix of this tenant', NULL);
		END IF;
	END IF;
	UPDATE apikey.tenants AS x
	   SET default_key_lifetime = set_key_policy.default_key_lifetime,
	       max_key_lifetime = set_key_policy.max_key_lifetime,
	       key_prefix = set_key_policy.key_prefix
	 WHERE x.tenant_id = t.tenant_id;
	PERFORM apikey_internal.audit('policy_changed', t.tenant_id, t.slug, NULL,
		jsonb_build_object('default_key_lifetime_seconds', extract(epoch FROM default_key_lifetime),
		                   'max_key_lifetime_seconds', extract(epoch FROM max_key_lifetime),
		                   'key_prefix', key_prefix));
END
$$;
COMMENT ON FUNCTION apikey.set_key_policy(text, interval, interval, text) IS
	'set a tenant''s default and maximum key lifetime (NULL: none) and key prefix, for keys created or rolled from now on';

CREATE FUNCTION apikey.public_key(tenant text, environment text)
	RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e apikey.environments := apikey_internal.environment(apikey_internal.authorize_tenant(tenant, 'apikey:keys:read'), environment);
BEGIN
	PERFORM apikey_internal.authorize(tenant, e.name, NULL, NULL);
	RETURN (SELECT p.public_key FROM apikey.public_keys AS p
	         WHERE p.tenant_id = e.tenant_id AND p.environment = e.name);
END
$$;
COMMENT ON FUNCTION apikey.public_key(text, text) IS
	'the public key of a tenant environment (pk_<tag>_...): safe to expose, identifies the tenant, grants nothing';

CREATE FUNCTION apikey.regenerate_public_key(tenant text, environment text)
	RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant, 'apikey:tenant');
	e apikey.environments := apikey_internal.environment(t, environment);
	result text;
BEGIN
	PERFORM apikey_internal.authorize(t.slug, e.name, NULL, NULL);
	result := apikey_internal.new_public_key(e.tenant_id, e.name, e.tag);
	PERFORM apikey_internal.audit('public_key_regenerated', t.tenant_id, t.slug, NULL,
		jsonb_build_object('environment', e.name));
	RETURN result;
END
$$;
COMMENT ON FUNCTION apikey.regenerate_public_key(text, text) IS
	'replace the public key of a tenant environment; the old one stops identifying';

CREATE FUNCTION apikey.identify(public_key text)
	RETURNS TABLE (tenant text, environment text)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT t.slug, p.environment
	  FROM apikey.public_keys AS p JOIN apikey.tenants AS t USING (tenant_id)
	 WHERE p.public_key = identify.public_key
$$;
COMMENT ON FUNCTION apikey.identify(text) IS
	'the tenant and environment a public key identifies (no rows when unknown)';
