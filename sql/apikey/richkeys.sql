-- Richer keys: whose a key is (owner), what the application keeps with it
-- (meta), named scope sets (key roles), several resources, IP allowlists,
-- editing all of these later, and the human behind a change (set_actor).
-- Verification reads what these functions write: effective_scopes (the
-- key's own scopes and its roles'), resources, owner, meta, allowed_ips.

-- Key roles: named scope sets of a tenant.  A key's effective_scopes are
-- kept up to date with them, so verification never looks a role up.
CREATE TABLE apikey.key_roles (
	tenant_id  bigint NOT NULL REFERENCES apikey.tenants ON DELETE CASCADE,
	name       text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
	scopes     text[] NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now(),
	created_by text NOT NULL,
	PRIMARY KEY (tenant_id, name)
);
COMMENT ON TABLE apikey.key_roles IS
	'key roles: named scope sets of a tenant; a key holds its own scopes and those of its roles';
SELECT pg_catalog.pg_extension_config_dump('apikey.key_roles', '');

-- The human behind a change (actor.c): a label of the current transaction.
CREATE FUNCTION apikey.set_actor(actor text) RETURNS void
	AS 'MODULE_PATHNAME', 'set_actor' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey.set_actor(text) IS
	'label this transaction''s changes with the human behind them (audit_log.actor, key_list.created_by); ends with the transaction; NULL clears it; grants nothing';

CREATE FUNCTION apikey_internal.actor() RETURNS text
	AS 'MODULE_PATHNAME', 'current_actor' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.actor() IS
	'internal: the label set_actor gave this transaction, or NULL';

-- The identity, continued (identity.c).
CREATE FUNCTION apikey.current_owner() RETURNS text
	AS 'MODULE_PATHNAME', 'current_owner' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.current_owner() IS
	'owner of the key this transaction was authenticated with, or NULL';

CREATE FUNCTION apikey.current_key_meta() RETURNS jsonb
	AS 'MODULE_PATHNAME', 'current_key_meta' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.current_key_meta() IS
	'metadata (meta) of the key this transaction was authenticated with, or NULL';

-- Validation of what a key is given.  Each returns its input, normalized,
-- or raises a clear error; the STRICT ones pass NULL (none) through
-- without being called.

CREATE FUNCTION apikey_internal.checked_resources(resources text[]) RETURNS text[]
	LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
DECLARE
	r text;
BEGIN
	IF array_ndims(resources) > 1 OR cardinality(resources) > 64 THEN
		RAISE EXCEPTION 'resources must be a one-dimensional array of at most 64 resources'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF cardinality(resources) = 0 THEN
		RAISE EXCEPTION 'resources must not be empty' USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'NULL means unrestricted; a restricted key names at least one resource.';
	END IF;
	FOREACH r IN ARRAY resources LOOP
		IF r IS NULL THEN
			RAISE EXCEPTION 'resources must not contain NULL' USING ERRCODE = 'null_value_not_allowed';
		END IF;
		PERFORM apikey_internal.checked_resource(r);
	END LOOP;
	RETURN ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(resources) AS x ORDER BY 1);
END
$$;
COMMENT ON FUNCTION apikey_internal.checked_resources(text[]) IS
	'internal: at most 64 well-formed resources ("type:id", "type:*"), sorted, without duplicates; NULL: unrestricted';

CREATE FUNCTION apikey_internal.checked_meta(meta jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
DECLARE
	size integer;
BEGIN
	IF jsonb_typeof(meta) <> 'object' THEN
		RAISE EXCEPTION 'meta must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('Got a JSON %s.', jsonb_typeof(meta));
	END IF;
	size := octet_length(meta::text);
	IF size > 4096 THEN
		RAISE EXCEPTION 'meta is too large (% bytes)', size USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'The limit is 4096 bytes of JSON text (as meta::text writes it).';
	END IF;
	RETURN meta;
END
$$;
COMMENT ON FUNCTION apikey_internal.checked_meta(jsonb) IS
	'internal: a JSON object of at most 4096 bytes as text; NULL: none';

CREATE FUNCTION apikey_internal.checked_allowed_ips(allowed_ips cidr[]) RETURNS cidr[]
	LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
BEGIN
	IF array_ndims(allowed_ips) > 1 OR cardinality(allowed_ips) > 64 THEN
		RAISE EXCEPTION 'allowed_ips must be a one-dimensional array of at most 64 networks'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF cardinality(allowed_ips) = 0 THEN
		RAISE EXCEPTION 'allowed_ips must not be empty' USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'NULL means from anywhere; an allowlist names at least one network.';
	END IF;
	IF array_position(allowed_ips, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'allowed_ips must not contain NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	RETURN ARRAY(SELECT DISTINCT x FROM unnest(allowed_ips) AS x ORDER BY 1);
END
$$;
COMMENT ON FUNCTION apikey_internal.checked_allowed_ips(cidr[]) IS
	'internal: at most 64 networks, sorted, without duplicates; NULL: from anywhere';

CREATE FUNCTION apikey_internal.checked_role_name(name text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'key role name must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name !~ '^[a-z0-9][a-z0-9_.-]{0,63}$' THEN
		RAISE EXCEPTION 'invalid key role name %', apikey_internal.shown(name)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A key role name is 1 to 64 lowercase letters, digits, "_", "." or "-", starting with a letter or digit.';
	END IF;
	RETURN name;
END
$$;
COMMENT ON FUNCTION apikey_internal.checked_role_name(text) IS 'internal: a well-formed key role name';

-- The roles of a key, checked and sorted: at most 16, each a role of the
-- key's own tenant.  The roles are locked (FOR SHARE) until the transaction
-- ends, so that a concurrent change of their scopes waits for the key and
-- then rewrites its effective_scopes too.
CREATE FUNCTION apikey_internal.checked_key_roles(tenant_id bigint, tenant text, key_roles text[])
	RETURNS text[] LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	role text;
	existing text[];
BEGIN
	PERFORM apikey_internal.require('tenant_id and tenant', tenant_id IS NOT NULL AND tenant IS NOT NULL);
	IF key_roles IS NULL THEN
		RAISE EXCEPTION 'key_roles must not be null' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'A key without roles has the empty array ''{}''.';
	END IF;
	IF array_ndims(key_roles) > 1 OR cardinality(key_roles) > 16 THEN
		RAISE EXCEPTION 'key_roles must be a one-dimensional array of at most 16 role names'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOREACH role IN ARRAY key_roles LOOP
		PERFORM apikey_internal.checked_role_name(role);
	END LOOP;
	existing := ARRAY(SELECT r.name FROM apikey.key_roles AS r
	                   WHERE r.tenant_id = checked_key_roles.tenant_id
	                     AND r.name = ANY (checked_key_roles.key_roles)
	                   ORDER BY r.name COLLATE "C"
	                     FOR SHARE);
	SELECT x INTO role FROM unnest(key_roles) AS x WHERE x <> ALL (existing) LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'key role "%" of tenant "%" does not exist', role, tenant
			USING ERRCODE = 'undefined_object',
			      HINT = 'Each tenant has its own key roles, created with apikey.create_key_role.';
	END IF;
	RETURN existing;
END
$$;
COMMENT ON FUNCTION apikey_internal.checked_key_roles(bigint, text, text[]) IS
	'internal: at most 16 existing roles of the tenant, sorted, without duplicates, locked FOR SHARE';

-- A key's effective scopes: its own and its roles', sorted (as
-- apikey_internal.normalized_scopes sorts) and without duplicates.
CREATE FUNCTION apikey_internal.effective_scopes(tenant_id bigint, scopes text[], key_roles text[])
	RETURNS text[] LANGUAGE plpgsql STABLE
AS $$
BEGIN
	PERFORM apikey_internal.require('tenant_id, scopes and key_roles',
		tenant_id IS NOT NULL AND scopes IS NOT NULL AND key_roles IS NOT NULL);
	RETURN ARRAY(SELECT DISTINCT u.s
	               FROM (SELECT x COLLATE "C" FROM unnest(effective_scopes.scopes) AS x
	                     UNION ALL
	                     SELECT x COLLATE "C" FROM apikey.key_roles AS r, unnest(r.scopes) AS x
	                      WHERE r.tenant_id = effective_scopes.tenant_id
	                        AND r.name = ANY (effective_scopes.key_roles)) AS u(s)
	              ORDER BY 1);
END
$$;
COMMENT ON FUNCTION apikey_internal.effective_scopes(bigint, text[], text[]) IS
	'internal: the scopes of a key and of its roles, sorted, without duplicates';

-- Editing a key.  Each starts with apikey_internal.authorize_key (the
-- caller may act on the key as it is) and, when scopes, roles or resources
-- change, applies the rule to the new values too: no one edits a key to
-- more than they hold.  Each records the change with its before and after.

CREATE FUNCTION apikey.set_key_scopes(key_id apikey.key_id, scopes text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
	new_scopes text[] := apikey_internal.normalized_scopes(scopes);
	effective text[] := apikey_internal.effective_scopes(k.tenant_id, new_scopes, k.key_roles);
BEGIN
	PERFORM apikey_internal.authorize(k.tenant, k.environment, effective, k.resources);
	UPDATE apikey.keys AS x SET scopes = new_scopes, effective_scopes = effective
	 WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('scopes_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.scopes, 'to', new_scopes));
END
$$;
COMMENT ON FUNCTION apikey.set_key_scopes(apikey.key_id, text[]) IS
	'replace a key''s own scopes (its roles'' scopes still apply), from the next verification on';

CREATE FUNCTION apikey.set_key_roles(key_id apikey.key_id, key_roles text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
	roles text[] := apikey_internal.checked_key_roles(k.tenant_id, k.tenant, key_roles);
	effective text[] := apikey_internal.effective_scopes(k.tenant_id, k.scopes, roles);
BEGIN
	PERFORM apikey_internal.authorize(k.tenant, k.environment, effective, k.resources);
	UPDATE apikey.keys AS x SET key_roles = roles, effective_scopes = effective
	 WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('roles_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.key_roles, 'to', roles));
END
$$;
COMMENT ON FUNCTION apikey.set_key_roles(apikey.key_id, text[]) IS
	'replace a key''s roles (''{}'': none), from the next verification on';

CREATE FUNCTION apikey.set_key_resources(key_id apikey.key_id, resources text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
	new_resources text[] := apikey_internal.checked_resources(resources);
BEGIN
	PERFORM apikey_internal.authorize(k.tenant, k.environment, k.effective_scopes, new_resources);
	UPDATE apikey.keys AS x SET resources = new_resources WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('resources_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.resources, 'to', new_resources));
END
$$;
COMMENT ON FUNCTION apikey.set_key_resources(apikey.key_id, text[]) IS
	'restrict a key to these resources ("type:id" or "type:*"; NULL: unrestricted), from the next verification on';

-- Owner, meta and allowed_ips change neither scopes nor resources: the
-- rule as apikey_internal.authorize_key applied it is the rule for the new
-- values.

CREATE FUNCTION apikey.set_key_owner(key_id apikey.key_id, owner text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
BEGIN
	owner := apikey_internal.checked_label('owner', owner, 200, owner IS NOT NULL);
	PERFORM apikey_internal.authorize_owner(owner);    -- with apikey:keys:own, keys are not given away
	UPDATE apikey.keys AS x SET owner = set_key_owner.owner WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('owner_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.owner, 'to', owner));
END
$$;
COMMENT ON FUNCTION apikey.set_key_owner(apikey.key_id, text) IS
	'set or clear (NULL) whose key it is: the application''s id of a person or account';

CREATE FUNCTION apikey.set_key_meta(key_id apikey.key_id, meta jsonb)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
BEGIN
	meta := apikey_internal.checked_meta(meta);
	PERFORM apikey_internal.vendor_meta(k.tenant_id, k.key_id, k.meta, meta);    -- vendor.sql
	UPDATE apikey.keys AS x SET meta = set_key_meta.meta WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('meta_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.meta, 'to', meta));
END
$$;
COMMENT ON FUNCTION apikey.set_key_meta(apikey.key_id, jsonb) IS
	'set or clear (NULL) the JSON object (at most 4 kB) that verification returns with the key';

CREATE FUNCTION apikey.set_key_allowed_ips(key_id apikey.key_id, allowed_ips cidr[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
BEGIN
	allowed_ips := apikey_internal.checked_allowed_ips(allowed_ips);
	PERFORM apikey_internal.vendor_allowed_ips(k.key_id, allowed_ips);    -- vendor.sql
	UPDATE apikey.keys AS x SET allowed_ips = set_key_allowed_ips.allowed_ips WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('allowed_ips_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.allowed_ips, 'to', allowed_ips));
END
$$;
COMMENT ON FUNCTION apikey.set_key_allowed_ips(apikey.key_id, cidr[]) IS
	'networks a key may be used from (NULL: anywhere), from the next verification on';

-- A person leaves: every key of theirs in the tenant that is not revoked
-- yet (expired ones too, so that a new expiry cannot bring them back) is
-- revoked in this one statement.  All or none: when the caller may not
-- act on every one of them (a tenant administrator or member that does
-- not cover them all), nothing is revoked and the error says how many it
-- could not.
CREATE FUNCTION apikey.revoke_owner_keys(tenant text, owner text, reason text DEFAULT NULL)
	RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant, 'apikey:keys:revoke');
	k apikey.keys;
	revoked integer := 0;
	beyond integer := 0;
BEGIN
	IF owner IS NULL THEN
		RAISE EXCEPTION 'owner must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM apikey_internal.authorize_owner(owner);
	reason := apikey_internal.checked_label('reason', reason, 1000, false);
	FOR k IN SELECT * FROM apikey.keys AS x
	          WHERE x.tenant_id = t.tenant_id AND x.owner = revoke_owner_keys.owner
	            AND x.revoked_at IS NULL
	          ORDER BY x.key_id
	            FOR UPDATE
	LOOP
		BEGIN
			PERFORM apikey_internal.authorize(k.tenant, k.environment, k.effective_scopes, k.resources);
		EXCEPTION WHEN insufficient_privilege THEN
			beyond := beyond + 1;
			CONTINUE;
		END;
		UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
		PERFORM apikey_internal.audit('revoked', k.tenant_id, k.tenant, k.key_id,
			jsonb_build_object('reason', reason, 'owner', owner));
		PERFORM apikey_internal.revocation_commit();
		revoked := revoked + 1;
	END LOOP;
	IF beyond > 0 THEN
		RAISE EXCEPTION 'permission denied: keys of this owner beyond what this transaction manages: % of %; none was revoked',
			beyond, beyond + revoked
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'A full administrator, or a tenant administrator or member covering them all, can revoke them in one call.';
	END IF;
	RETURN revoked;
END
$$;
COMMENT ON FUNCTION apikey.revoke_owner_keys(text, text, text) IS
	'revoke every key of an owner in a tenant at once (all or none); returns how many were revoked';

-- Key roles.  A role is tenant-wide: the rule is applied with no
-- environment to the role's scopes, old and new (a tenant administrator
-- holds every one of them; a resource-restricted one manages no roles), and
-- to the new effective_scopes of every key a change rewrites (a tenant
-- administrator changes no key it could not edit itself, so no key of
-- another environment).  With the role's old scopes held, a key whose new
-- scopes are covered had its old ones covered too.  The keys are locked before the role, in the order
-- set_key_roles locks them, so the two never deadlock; their
-- effective_scopes are rewritten in the same transaction, so every
-- session's next verification sees the change.

CREATE FUNCTION apikey.create_key_role(tenant text, name text, scopes text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant, 'apikey:tenant');
	role_scopes text[];
BEGIN
	name := apikey_internal.checked_role_name(name);
	role_scopes := apikey_internal.normalized_scopes(scopes);
	PERFORM apikey_internal.authorize(t.slug, NULL, role_scopes, NULL);
	INSERT INTO apikey.key_roles (tenant_id, name, scopes, created_by)
	VALUES (t.tenant_id, name, role_scopes, coalesce(apikey_internal.actor(), apikey_internal.caller()::text))
	ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key role "%" of tenant "%" already exists', name, t.slug
			USING ERRCODE = 'duplicate_object';
	END IF;
	PERFORM apikey_internal.audit('key_role_created', t.tenant_id, t.slug, NULL,
		jsonb_build_object('role', name, 'scopes', role_scopes));
END
$$;
COMMENT ON FUNCTION apikey.create_key_role(text, text, text[]) IS
	'create a key role: a named set of scopes that keys of the tenant may be given (create_key key_roles, set_key_roles)';

-- The tenant's role, locked FOR UPDATE after the keys that have it.
CREATE FUNCTION apikey_internal.lock_key_role(t apikey.tenants, name text)
	RETURNS apikey.key_roles LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	role apikey.key_roles;
BEGIN
	PERFORM apikey_internal.require('tenant', t.tenant_id IS NOT NULL);
	name := apikey_internal.checked_role_name(name);
	PERFORM FROM apikey.keys AS x
	  WHERE x.tenant_id = t.tenant_id AND lock_key_role.name = ANY (x.key_roles)
	  ORDER BY x.key_id
	    FOR UPDATE;
	SELECT * INTO role FROM apikey.key_roles AS r
	 WHERE r.tenant_id = t.tenant_id AND r.name = lock_key_role.name
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key role "%" of tenant "%" does not exist', name, t.slug
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN role;
END
$$;
COMMENT ON FUNCTION apikey_internal.lock_key_role(apikey.tenants, text) IS
	'internal: a key role, locked after the keys that have it; 42704 when there is none';

CREATE FUNCTION apikey.set_key_role_scopes(tenant text, name text, scopes text[])
	RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant, 'apikey:tenant');
	role apikey.key_roles := apikey_internal.lock_key_role(t, name);
	role_scopes text[] := apikey_internal.normalized_scopes(scopes);
	k apikey.keys;
	effective text[];
	changed integer := 0;
BEGIN
	PERFORM apikey_internal.authorize(t.slug, NULL, role.scopes, NULL);
	PERFORM apikey_internal.authorize(t.slug, NULL, role_scopes, NULL);
	UPDATE apikey.key_roles AS r SET scopes = role_scopes
	 WHERE r.tenant_id = t.tenant_id AND r.name = role.name;
	-- locked again: keys given the role while this waited for the role's
	-- lock, and the latest version of each (a concurrent edit of its scopes)
	FOR k IN SELECT * FROM apikey.keys AS x
	          WHERE x.tenant_id = t.tenant_id AND role.name = ANY (x.key_roles)
	          ORDER BY x.key_id
	            FOR UPDATE
	LOOP
		effective := apikey_internal.effective_scopes(k.tenant_id, k.scopes, k.key_roles);
		PERFORM apikey_internal.authorize(k.tenant, k.environment, effective, k.resources);
		PERFORM apikey_internal.authorize_owner(k.owner);
		IF effective IS DISTINCT FROM k.effective_scopes THEN
			UPDATE apikey.keys AS x SET effective_scopes = effective WHERE x.key_id = k.key_id;
			changed := changed + 1;
		END IF;
	END LOOP;
	PERFORM apikey_internal.audit('key_role_changed', t.tenant_id, t.slug, NULL,
		jsonb_build_object('role', role.name, 'from', role.scopes, 'to', role_scopes, 'keys_changed', changed));
	RETURN changed;
END
$$;
COMMENT ON FUNCTION apikey.set_key_role_scopes(text, text, text[]) IS
	'replace a key role''s scopes; every key with the role holds the new ones from the next verification on; returns how many keys'' scopes changed';

CREATE FUNCTION apikey.drop_key_role(tenant text, name text, detach boolean DEFAULT false)
	RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant, 'apikey:tenant');
	role apikey.key_roles := apikey_internal.lock_key_role(t, name);
	k apikey.keys;
	roles text[];
	effective text[];
	detached integer := 0;
BEGIN
	IF detach IS NULL THEN
		RAISE EXCEPTION 'detach must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM apikey_internal.authorize(t.slug, NULL, role.scopes, NULL);
	-- locked again: keys given the role while this waited for the role's
	-- lock, and the latest version of each (a concurrent edit of its scopes)
	FOR k IN SELECT * FROM apikey.keys AS x
	          WHERE x.tenant_id = t.tenant_id AND role.name = ANY (x.key_roles)
	          ORDER BY x.key_id
	            FOR UPDATE
	LOOP
		IF NOT detach THEN
			RAISE EXCEPTION 'key role "%" of tenant "%" is in use', role.name, t.slug
				USING ERRCODE = 'object_in_use',
				      DETAIL = format('Keys that have it: %s.', (SELECT count(*) FROM apikey.keys AS x
				                      WHERE x.tenant_id = t.tenant_id AND role.name = ANY (x.key_roles))),
				      HINT = 'drop_key_role(tenant, name, detach => true) removes it from those keys (and its scopes with it), then drops it.';
		END IF;
		roles := array_remove(k.key_roles, role.name);
		effective := apikey_internal.effective_scopes(k.tenant_id, k.scopes, roles);
		PERFORM apikey_internal.authorize(k.tenant, k.environment, effective, k.resources);
		PERFORM apikey_internal.authorize_owner(k.owner);
		UPDATE apikey.keys AS x SET key_roles = roles, effective_scopes = effective
		 WHERE x.key_id = k.key_id;
		PERFORM apikey_internal.audit('roles_changed', k.tenant_id, k.tenant, k.key_id,
			jsonb_build_object('from', k.key_roles, 'to', roles));
		detached := detached + 1;
	END LOOP;
	DELETE FROM apikey.key_roles AS r WHERE r.tenant_id = t.tenant_id AND r.name = role.name;
	PERFORM apikey_internal.audit('key_role_dropped', t.tenant_id, t.slug, NULL,
		jsonb_build_object('role', role.name, 'scopes', role.scopes, 'keys_detached', detached));
	RETURN detached;
END
$$;
COMMENT ON FUNCTION apikey.drop_key_role(text, text, boolean) IS
	'drop a key role; refused while keys have it unless detach, which removes it (and its scopes) from them first; returns how many keys it was removed from';

-- The tenants' key roles, visible as key_list is: every tenant to a full
-- administrator, its own tenant's to a transaction authenticated with an
-- apikey:keys:read key or member, nothing to anyone else.
CREATE VIEW apikey.key_role_list WITH (security_barrier) AS
SELECT t.slug AS tenant,
       r.name,
       r.scopes,
       (SELECT pg_catalog.count(*) FROM apikey.keys AS k
         WHERE k.tenant_id OPERATOR(pg_catalog.=) r.tenant_id
           AND r.name OPERATOR(pg_catalog.=) ANY (k.key_roles)) AS keys,
       r.created_at,
       r.created_by,
       r.tenant_id
  FROM apikey.key_roles AS r
  JOIN apikey.tenants AS t ON t.tenant_id OPERATOR(pg_catalog.=) r.tenant_id
 WHERE CASE WHEN apikey_internal.acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey_internal.sees_tenant(r.tenant_id) END;
COMMENT ON VIEW apikey.key_role_list IS
	'key roles of the tenants: name, scopes, how many keys have it';
COMMENT ON COLUMN apikey.key_role_list.tenant IS
	'the slug of the role''s tenant';
COMMENT ON COLUMN apikey.key_role_list.name IS
	'the key role''s name, unique in its tenant';
COMMENT ON COLUMN apikey.key_role_list.scopes IS
	'the scopes the role gives the keys that have it';
COMMENT ON COLUMN apikey.key_role_list.keys IS
	'how many keys have the role';
COMMENT ON COLUMN apikey.key_role_list.created_at IS
	'when the role was created';
COMMENT ON COLUMN apikey.key_role_list.created_by IS
	'who created it: the actor named by set_actor or act_for, else the role';
COMMENT ON COLUMN apikey.key_role_list.tenant_id IS
	'the tenant''s bigint id, as current_tenant_id() returns it';
