-- Private keys: the table verification probes, and their lifecycle.

CREATE FUNCTION apikey_internal.generate_key(prefix text, tag text, for_key apikey.key_id DEFAULT NULL,
		OUT key_id apikey.key_id, OUT api_key text, OUT key_hash bytea, OUT hint text)
	AS 'MODULE_PATHNAME', 'generate_key' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey_internal.generate_key(text, text, apikey.key_id) IS
	'internal: new key text (or a new secret for for_key), its SHA-256 and hint';

CREATE FUNCTION apikey_internal.generate_public_key(tag text,
		OUT key_id apikey.key_id, OUT public_key text)
	AS 'MODULE_PATHNAME', 'generate_public_key' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey_internal.generate_public_key(text) IS 'internal: new public key text';

-- Columns that verification reads come first, fixed-width ones leading, so
-- a probe deforms as little of the row as possible.  The management
-- functions validate every value before writing it; the table carries no
-- CHECK or foreign key constraints because those are re-prepared for every
-- INSERT a function runs, which more than doubled the cost of create_key.
CREATE TABLE apikey.keys (
	key_id                   apikey.key_id PRIMARY KEY,
	tenant_id                bigint NOT NULL,
	expires_at               timestamptz,
	revoked_at               timestamptz,
	previous_hash_expires_at timestamptz,
	key_hash                 bytea NOT NULL,
	previous_hash            bytea,
	tenant                   text NOT NULL,
	environment              text NOT NULL,
	scopes                   text[] NOT NULL DEFAULT '{}',
	name                     text NOT NULL,
	description              text,
	hint                     text NOT NULL,
	created_at               timestamptz NOT NULL DEFAULT now(),
	created_by               text NOT NULL,
	revoked_reason           text,
	rolled_at                timestamptz,
	-- version 0.3.0
	effective_scopes         text[] NOT NULL DEFAULT '{}',  -- scopes and those of key_roles
	resources                text[],                        -- NULL: unrestricted
	owner                    text,
	meta                     jsonb,
	key_roles                text[] NOT NULL DEFAULT '{}',
	allowed_ips              cidr[],                        -- NULL: from anywhere
	rate_limits              apikey.rate_limit[],
	tenant_rate_limits       apikey.rate_limit[],           -- the tenant's, kept with each key
	has_credits              boolean NOT NULL DEFAULT false,
	imported                 boolean NOT NULL DEFAULT false,
	-- version 0.4.0
	owner_rate_limits        apikey.rate_limit[]            -- its owner's (usage.sql), kept with each key
);
CREATE INDEX keys_tenant_environment ON apikey.keys (tenant_id, environment);
COMMENT ON TABLE apikey.keys IS
	'private keys: SHA-256 of the key text and a display hint, never the text itself';

-- Every change to a key is noted, so that backends can keep reusing the
-- state of keys they verified before until one of them changes
-- (keychange.c); ALWAYS, so that changes applied by replication count too.
CREATE FUNCTION apikey_internal.key_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'key_changed' LANGUAGE C;
COMMENT ON FUNCTION apikey_internal.key_changed() IS
	'internal: note the keys a transaction changes, for the cache of verified keys';
CREATE TRIGGER keys_changed BEFORE UPDATE OR DELETE ON apikey.keys
	FOR EACH ROW EXECUTE FUNCTION apikey_internal.key_changed();
CREATE TRIGGER keys_truncated BEFORE TRUNCATE ON apikey.keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.key_changed();
ALTER TABLE apikey.keys ENABLE ALWAYS TRIGGER keys_changed,
	ENABLE ALWAYS TRIGGER keys_truncated;

-- When each key was last used, written by the background writer (usage.c),
-- never by verification.  A narrow table of its own, with room on each page
-- for the next version of its rows, so that keeping it costs neither the
-- key table's size nor its cache footprint.  A key's row goes with the key.
CREATE TABLE apikey.key_usage (
	key_id       apikey.key_id PRIMARY KEY,
	last_used_at timestamptz NOT NULL
) WITH (fillfactor = 50);
COMMENT ON TABLE apikey.key_usage IS
	'when each key was last used (written in the background, within apikey.usage_precision)';

-- Credits of usage-limited keys (apikey.keys.has_credits), charged by
-- verification in the caller's transaction.  Keys without credits have no
-- row here and are never written to.  Half of each page is left free so that
-- a charge rewrites its row in place (a HOT update, no index entry).
CREATE TABLE apikey.credits (
	key_id        apikey.key_id PRIMARY KEY,
	remaining     bigint NOT NULL,
	refill_amount bigint,
	refill_every  interval,
	refilled_at   timestamptz,
	refill_anchor timestamptz,   -- refills fall on refill_anchor + n * refill_every (UTC)
	next_refill_at timestamptz   -- NULL: no refill
) WITH (fillfactor = 50);
COMMENT ON TABLE apikey.credits IS
	'credits left of usage-limited keys, refilled lazily to refill_amount every refill_every';

-- The key, locked, if the caller may use the right (apikey:keys:edit, ...)
-- on it: every function that acts on a key starts here.  The caller's
-- right is checked before the lookup; a caller on a tenant's side (a
-- tenant administrator's key, a member) finds only its own tenant's keys
-- (another tenant's key is as absent as a key that never existed), and
-- then acts only on a key it covers (apikey_internal.authorize, apikey_internal.authorize_owner).
CREATE FUNCTION apikey_internal.authorize_key(key_id apikey.key_id, "right" text) RETURNS apikey.keys
	LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	k apikey.keys;
	acting bigint := apikey_internal.acting_tenant_id();
BEGIN
	PERFORM apikey_internal.authorized_tenant(coalesce(apikey_internal.acting_tenant(), ''), "right");
	IF key_id IS NULL THEN
		RAISE EXCEPTION 'key_id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO k FROM apikey.keys AS x
	 WHERE x.key_id = authorize_key.key_id
	   AND (acting IS NULL OR x.tenant_id = acting)
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key % does not exist', key_id USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.authorize(k.tenant, k.environment, k.effective_scopes, k.resources);
	PERFORM apikey_internal.authorize_owner(k.owner);
	RETURN k;
END
$$;
COMMENT ON FUNCTION apikey_internal.authorize_key(apikey.key_id, text) IS
	'internal: the key row, locked, if the caller may use the right on it; 42704 when there is none it may see, 42501 when it may not act on it';

-- Expiry of a key created now, from the requested lifetime and the
-- tenant's policy.
CREATE FUNCTION apikey_internal.expiry(slug text, expires_in interval, default_lifetime interval,
		max_lifetime interval) RETURNS timestamptz
	LANGUAGE plpgsql STABLE
AS $$
DECLARE
	lifetime interval := coalesce(expires_in, default_lifetime);
BEGIN
	PERFORM apikey_internal.check_lifetime('expires_in', lifetime);
	-- compared as times: a month is not 30 days when added
	IF max_lifetime IS NOT NULL AND (lifetime IS NULL OR now() + lifetime > now() + max_lifetime) THEN
		RAISE EXCEPTION 'keys of tenant "%" must expire within %', slug, max_lifetime
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN now() + lifetime;
END
$$;
COMMENT ON FUNCTION apikey_internal.expiry(text, interval, interval, interval) IS
	'internal: expiry of a new key under the tenant''s lifetime policy';

-- Every key create_key makes: validation in C, one lookup, one INSERT of
-- the key together with its audit event.  What a plain key does not use
-- (owner, meta, roles, resources, allowed_ips) is checked only when given.
-- create_key (C, createkey.c) makes a plain key itself, by the same steps
-- as the plain branch here, and calls this function for every other key.
CREATE FUNCTION apikey_internal.create_key_full(tenant text, environment text, name text,
		description text, scopes text[], expires_in interval, resource text,
		owner text, meta jsonb, key_roles text[], resources text[], allowed_ips cidr[],
		OUT key_id apikey.key_id, OUT api_key text, OUT hint text, OUT expires_at timestamptz)
	LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	tenant_slug text := apikey_internal.authorized_tenant(tenant, 'apikey:keys:create');
	key_scopes text[] := apikey_internal.normalized_scopes(scopes);
	roles text[];
	effective text[] := key_scopes;
	extra jsonb;    -- what 0.3.0 added, for the audit event
	imposed cidr[];    -- the vendor's allowlist the new key stays within
	t record;
	g record;
BEGIN
	name := apikey_internal.checked_label('key name', name, 200, true);
	description := apikey_internal.checked_label('description', description, 1000, false);
	resource := apikey_internal.checked_resource(resource);
	IF environment IS NULL THEN
		RAISE EXCEPTION 'environment must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT x.tenant_id, x.key_prefix, x.default_key_lifetime, x.max_key_lifetime, e.tag
	  INTO t
	  FROM apikey.tenants AS x
	  LEFT JOIN apikey.environments AS e
	    ON e.tenant_id = x.tenant_id AND e.name = create_key_full.environment
	 WHERE x.slug = tenant_slug;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % does not exist', apikey_internal.shown(tenant_slug) USING ERRCODE = 'undefined_object';
	ELSIF t.tag IS NULL THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey_internal.shown(environment), tenant_slug
			USING ERRCODE = 'undefined_object';
	END IF;
	-- with apikey:keys:own, the caller's own key
	owner := coalesce(owner, apikey_internal.owned_by());
	IF resources IS NULL AND owner IS NULL AND meta IS NULL AND allowed_ips IS NULL
	   AND cardinality(key_roles) = 0 THEN
		-- a plain key
		resources := CASE WHEN resource IS NOT NULL THEN ARRAY[resource] END;
	ELSE
		-- resource is one more element of resources
		resources := apikey_internal.checked_resources(CASE WHEN resource IS NULL THEN resources
		                                            ELSE coalesce(resources, '{}') || resource END);
		owner := apikey_internal.checked_label('owner', owner, 200, owner IS NOT NULL);
		meta := apikey_internal.checked_meta(meta);
		IF meta IS NOT NULL THEN
			PERFORM apikey_internal.vendor_meta(t.tenant_id, NULL, NULL, meta);    -- vendor.sql
		END IF;
		allowed_ips := apikey_internal.checked_allowed_ips(allowed_ips);
		IF key_roles IS NULL OR cardinality(key_roles) > 0 THEN
			roles := apikey_internal.checked_key_roles(t.tenant_id, tenant_slug, key_roles);
			effective := apikey_internal.effective_scopes(t.tenant_id, key_scopes, roles);
		END IF;
		-- meta kept whole in the event, its nulls too
		extra := jsonb_strip_nulls(jsonb_build_object('owner', owner, 'key_roles', roles,
		                           'resources', resources, 'allowed_ips', allowed_ips))
		         || CASE WHEN meta IS NOT NULL THEN jsonb_build_object('meta', meta) ELSE '{}' END;
	END IF;
	PERFORM apikey_internal.authorize(tenant_slug, environment, effective, resources);
	PERFORM apikey_internal.authorize_owner(owner);
	IF apikey.current_key_id() IS NOT NULL THEN
		-- the vendor's allowlist of a tenant administrator's key bounds its new keys
		imposed := apikey_internal.imposed_allowed_ips(allowed_ips);    -- vendor.sql
		IF imposed IS NOT NULL AND allowed_ips IS NULL THEN
			allowed_ips := imposed;
			extra := coalesce(extra, '{}') || jsonb_build_object('allowed_ips', allowed_ips);
		END IF;
	END IF;
	IF expires_in IS NOT NULL OR t.default_key_lifetime IS NOT NULL OR t.max_key_lifetime IS NOT NULL THEN
		expires_at := apikey_internal.expiry(tenant_slug, expires_in, t.default_key_lifetime, t.max_key_lifetime);
	END IF;
	LOOP
		g := apikey_internal.generate_key(t.key_prefix, t.tag);
		WITH k AS (
			INSERT INTO apikey.keys (key_id, tenant_id, tenant, environment, key_hash, hint,
			                         name, description, scopes, effective_scopes, resources,
			                         owner, meta, key_roles, allowed_ips,
			                         expires_at, created_by)
			VALUES (g.key_id, t.tenant_id, tenant_slug, environment, g.key_hash, g.hint,
			        name, description, key_scopes, effective, resources,
			        owner, meta, coalesce(roles, '{}'), allowed_ips,
			        expires_at, coalesce(apikey_internal.actor(), apikey_internal.caller()::text))
			ON CONFLICT ON CONSTRAINT keys_pkey DO NOTHING
			RETURNING 1)
		INSERT INTO apikey.audit (actor_role, actor_key_id, tenant_id, tenant, key_id, action, details, actor)
		SELECT apikey_internal.caller()::text, apikey.current_key_id(), t.tenant_id, tenant_slug, g.key_id, 'created',
		       jsonb_build_object('environment', environment, 'name', name, 'scopes', key_scopes,
		                          'resource', resource, 'expires_at', expires_at) || coalesce(extra, '{}'),
		       apikey_internal.actor()
		  FROM k;
		EXIT WHEN FOUND;    -- a key id already taken (1 in 2^64 per key): draw again
	END LOOP;
	IF imposed IS NOT NULL THEN
		INSERT INTO apikey.key_vendor_controls (key_id, allowed_ips) VALUES (g.key_id, imposed);
	ELSIF allowed_ips IS NOT NULL THEN
		PERFORM apikey_internal.vendor_allowed_ips(g.key_id, allowed_ips);    -- an administrator's: the vendor's
	END IF;
	key_id := g.key_id;
	api_key := g.api_key;
	hint := g.hint;
END
$$;
COMMENT ON FUNCTION apikey_internal.create_key_full(text, text, text, text, text[], interval, text,
		text, jsonb, text[], text[], cidr[]) IS
	'internal: create_key for every key (create_key makes plain keys itself)';

-- The hot administrative path (createkey.c): a plain key in C, any other
-- by apikey_internal.create_key_full.
CREATE FUNCTION apikey.create_key(tenant text, environment text, name text,
		description text DEFAULT NULL, scopes text[] DEFAULT '{}',
		expires_in interval DEFAULT NULL, resource text DEFAULT NULL,
		owner text DEFAULT NULL, meta jsonb DEFAULT NULL, key_roles text[] DEFAULT '{}',
		resources text[] DEFAULT NULL, allowed_ips cidr[] DEFAULT NULL,
		OUT key_id apikey.key_id, OUT api_key text, OUT hint text, OUT expires_at timestamptz)
	AS 'MODULE_PATHNAME', 'create_key' LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION apikey.create_key(text, text, text, text, text[], interval, text,
		text, jsonb, text[], text[], cidr[]) IS
	'create a named key; api_key is the full key text, shown this once and never stored';

CREATE FUNCTION apikey.rename_key(key_id apikey.key_id, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
BEGIN
	name := apikey_internal.checked_label('key name', name, 200, true);
	UPDATE apikey.keys AS x SET name = rename_key.name WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('renamed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.name, 'to', name));
END
$$;
COMMENT ON FUNCTION apikey.rename_key(apikey.key_id, text) IS 'rename a key (its label)';

CREATE FUNCTION apikey.describe_key(key_id apikey.key_id, description text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
BEGIN
	description := apikey_internal.checked_label('description', description, 1000, false);
	UPDATE apikey.keys AS x SET description = describe_key.description WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('described', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.description, 'to', description));
END
$$;
COMMENT ON FUNCTION apikey.describe_key(apikey.key_id, text) IS 'set or clear (NULL) a key''s description';

-- Revocations (revoke_key, delete_key, roll_key, report_leak,
-- revoke_owner_keys) commit with synchronous_commit raised to
-- apikey.revocation_synchronous_commit (remote_apply by default): with
-- synchronous standbys, they return once a standby has applied them.
CREATE FUNCTION apikey_internal.revocation_commit() RETURNS void
	AS 'MODULE_PATHNAME', 'revocation_commit' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey_internal.revocation_commit() IS
	'internal: this transaction revokes; its commit waits for synchronous standbys as apikey.revocation_synchronous_commit says';

CREATE FUNCTION apikey.confirm_revocations() RETURNS text
	AS 'MODULE_PATHNAME', 'confirm_revocations' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey.confirm_revocations() IS
	'wait until the synchronous standbys confirm every revocation committed so far (as apikey.revocation_synchronous_commit asks): confirmed, canceled, no_synchronous_standby or not_asked';

CREATE FUNCTION apikey.revoke_key(key_id apikey.key_id, reason text DEFAULT NULL,
		terminate boolean DEFAULT false)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:revoke');
BEGIN
	reason := apikey_internal.checked_label('reason', reason, 1000, false);
	IF terminate IS NULL THEN
		RAISE EXCEPTION 'terminate must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF k.revoked_at IS NOT NULL THEN
		RAISE EXCEPTION 'key % is already revoked', k.key_id
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF terminate THEN
		PERFORM apikey_internal.terminate_at_commit(k.key_id, true);   -- the kill switch (incidents.sql)
	END IF;
	PERFORM apikey_internal.revocation_commit();
	UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('revoked', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('reason', reason)
		|| CASE WHEN terminate THEN '{"terminate": true}'::jsonb ELSE '{}' END);
END
$$;
COMMENT ON FUNCTION apikey.revoke_key(apikey.key_id, text, boolean) IS
	'disable a key from the next verification on; reversible with reactivate_key. terminate => true also stops, at commit, the transactions authenticated by the key on this server (needs shared_preload_libraries)';

CREATE FUNCTION apikey.reactivate_key(key_id apikey.key_id)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:revoke');
BEGIN
	IF k.revoked_at IS NULL THEN
		RAISE EXCEPTION 'key % is not revoked', k.key_id
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	UPDATE apikey.keys AS x SET revoked_at = NULL, revoked_reason = NULL WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('reactivated', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('revoked_at', k.revoked_at, 'reason', k.revoked_reason));
END
$$;
COMMENT ON FUNCTION apikey.reactivate_key(apikey.key_id) IS 'enable a revoked key again';

CREATE FUNCTION apikey.delete_key(key_id apikey.key_id)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:delete');
BEGIN
	PERFORM apikey_internal.revocation_commit();
	DELETE FROM apikey.keys AS x WHERE x.key_id = k.key_id;
	DELETE FROM apikey.key_usage AS u WHERE u.key_id = k.key_id;
	DELETE FROM apikey.credits AS c WHERE c.key_id = k.key_id;
	DELETE FROM apikey.imported_keys AS i WHERE i.key_id = k.key_id;
	DELETE FROM apikey.key_vendor_controls AS v WHERE v.key_id = k.key_id;
	PERFORM apikey_internal.audit('deleted', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('environment', k.environment, 'name', k.name, 'hint', k.hint));
END
$$;
COMMENT ON FUNCTION apikey.delete_key(apikey.key_id) IS
	'delete a key permanently (irreversible); the audit trail keeps its history';

CREATE FUNCTION apikey.roll_key(key_id apikey.key_id, grace interval DEFAULT '0')
	RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:roll');
	t apikey.tenants;
	e apikey.environments;
	g record;
	grace_end timestamptz;
BEGIN
	IF grace IS NULL OR grace < '0' OR grace > '30 days' THEN
		RAISE EXCEPTION 'grace must be between 0 and 30 days' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF k.revoked_at IS NOT NULL THEN
		RAISE EXCEPTION 'key % is revoked', k.key_id USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Reactivate it first, or create a new key.';
	END IF;
	IF k.expires_at <= now() THEN
		RAISE EXCEPTION 'key % has expired', k.key_id USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Extend it with set_key_expiry first, or create a new key.';
	END IF;
	SELECT * INTO STRICT t FROM apikey.tenants AS x WHERE x.tenant_id = k.tenant_id;
	e := apikey_internal.environment(t, k.environment);
	IF grace > '0' THEN
		grace_end := now() + grace;
	END IF;
	g := apikey_internal.generate_key(t.key_prefix, e.tag, k.key_id);
	PERFORM apikey_internal.revocation_commit();   -- the old secret's end
	UPDATE apikey.keys AS x
	   SET key_hash = g.key_hash, hint = g.hint, rolled_at = now(),
	       previous_hash = CASE WHEN grace_end IS NOT NULL THEN k.key_hash END,
	       previous_hash_expires_at = grace_end, imported = false
	 WHERE x.key_id = k.key_id;
	-- an imported text is found through apikey.imported_keys while it works
	DELETE FROM apikey.imported_keys AS i
	 WHERE i.key_id = k.key_id AND (grace_end IS NULL OR NOT k.imported);
	PERFORM apikey_internal.audit('rolled', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('grace_seconds', extract(epoch FROM grace), 'previous_secret_expires_at', grace_end,
		                   'previous_hint', k.hint, 'hint', g.hint));
	RETURN g.api_key;
END
$$;
COMMENT ON FUNCTION apikey.roll_key(apikey.key_id, interval) IS
	'new secret for the same key (id, name, scopes, environment kept); the previous secret keeps working for the grace period (at most 30 days); returns the new key text, shown once';

CREATE FUNCTION apikey.set_key_expiry(key_id apikey.key_id, expires_at timestamptz)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
	t apikey.tenants;
BEGIN
	SELECT * INTO STRICT t FROM apikey.tenants AS x WHERE x.tenant_id = k.tenant_id;
	IF t.max_key_lifetime IS NOT NULL AND (expires_at IS NULL OR expires_at > now() + t.max_key_lifetime) THEN
		RAISE EXCEPTION 'keys of tenant "%" must expire within % from now', t.slug, t.max_key_lifetime
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE apikey.keys AS x SET expires_at = set_key_expiry.expires_at WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('expiry_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.expires_at, 'to', expires_at));
END
$$;
COMMENT ON FUNCTION apikey.set_key_expiry(apikey.key_id, timestamptz) IS
	'set when a key expires (NULL: never, unless the tenant''s policy requires expiry; a past time expires it now)';
