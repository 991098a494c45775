-- apikey 0.3.0 -> 0.4.0
\echo Use "ALTER EXTENSION apikey UPDATE TO '0.4.0'" to load this file. \quit

-- Before anything runs: the schema apikey must be the extension owner's,
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

-- The internal functions move to a schema of their own, apikey_internal,
-- so that \df apikey.* lists what users call: the extension owner's, no one
-- else may use it.  Created here, so the update fails if the schema exists
-- already (no one else's objects can be in it).  Moved and renamed, not
-- recreated: the triggers and the C code keep finding the same functions.
-- Every function whose body calls them is replaced below with the new
-- names.
CREATE SCHEMA apikey_internal;
COMMENT ON SCHEMA apikey_internal IS
	'internal functions of extension apikey: called by its own functions and triggers, not by users';
REVOKE ALL ON SCHEMA apikey_internal FROM PUBLIC;
-- owned like apikey (by the extension's owner, checked above), whoever updates
DO $$
BEGIN
	EXECUTE pg_catalog.format('ALTER SCHEMA apikey_internal OWNER TO %I',
		(SELECT pg_catalog.pg_get_userbyid(e.extowner) FROM pg_catalog.pg_extension AS e
		  WHERE e.extname OPERATOR(pg_catalog.=) 'apikey'));
END
$$;
ALTER FUNCTION apikey._actor() SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._actor() RENAME TO actor;
ALTER FUNCTION apikey._add_environment(apikey.tenants, text, text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._add_environment(apikey.tenants, text, text) RENAME TO add_environment;
ALTER FUNCTION apikey._audit(text, bigint, text, apikey.key_id, jsonb) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._audit(text, bigint, text, apikey.key_id, jsonb) RENAME TO audit;
ALTER FUNCTION apikey._authorize(text, text, text[], text[]) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._authorize(text, text, text[], text[]) RENAME TO authorize;
ALTER FUNCTION apikey._authorize_admin() SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._authorize_admin() RENAME TO authorize_admin;
ALTER FUNCTION apikey._authorize_key(apikey.key_id) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._authorize_key(apikey.key_id) RENAME TO authorize_key;
ALTER FUNCTION apikey._authorize_tenant(text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._authorize_tenant(text) RENAME TO authorize_tenant;
ALTER FUNCTION apikey._authorized_tenant(text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._authorized_tenant(text) RENAME TO authorized_tenant;
ALTER FUNCTION apikey._caller() SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._caller() RENAME TO caller;
ALTER FUNCTION apikey._charge_credits(apikey.key_id, integer, timestamptz) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._charge_credits(apikey.key_id, integer, timestamptz) RENAME TO charge_credits;
ALTER FUNCTION apikey._check_key_policy(interval, interval, text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._check_key_policy(interval, interval, text) RENAME TO check_key_policy;
ALTER FUNCTION apikey._check_lifetime(text, interval) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._check_lifetime(text, interval) RENAME TO check_lifetime;
ALTER FUNCTION apikey._check_rate_limit(text, integer, interval) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._check_rate_limit(text, integer, interval) RENAME TO check_rate_limit;
ALTER FUNCTION apikey._check_role(regrole) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._check_role(regrole) RENAME TO check_role;
ALTER FUNCTION apikey._checked_allowed_ips(cidr[]) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._checked_allowed_ips(cidr[]) RENAME TO checked_allowed_ips;
ALTER FUNCTION apikey._checked_key_roles(bigint, text, text[]) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._checked_key_roles(bigint, text, text[]) RENAME TO checked_key_roles;
ALTER FUNCTION apikey._checked_label(text, text, integer, boolean) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._checked_label(text, text, integer, boolean) RENAME TO checked_label;
ALTER FUNCTION apikey._checked_meta(jsonb) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._checked_meta(jsonb) RENAME TO checked_meta;
ALTER FUNCTION apikey._checked_resource(text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._checked_resource(text) RENAME TO checked_resource;
ALTER FUNCTION apikey._checked_resources(text[]) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._checked_resources(text[]) RENAME TO checked_resources;
ALTER FUNCTION apikey._checked_role_name(text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._checked_role_name(text) RENAME TO checked_role_name;
ALTER FUNCTION apikey._deny(text, text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._deny(text, text) RENAME TO deny;
ALTER FUNCTION apikey._effective_scopes(bigint, text[], text[]) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._effective_scopes(bigint, text[], text[]) RENAME TO effective_scopes;
ALTER FUNCTION apikey._environment(apikey.tenants, text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._environment(apikey.tenants, text) RENAME TO environment;
ALTER FUNCTION apikey._expiry(text, interval, interval, interval) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._expiry(text, interval, interval, interval) RENAME TO expiry;
ALTER FUNCTION apikey._generate_key(text, text, apikey.key_id) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._generate_key(text, text, apikey.key_id) RENAME TO generate_key;
ALTER FUNCTION apikey._generate_public_key(text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._generate_public_key(text) RENAME TO generate_public_key;
ALTER FUNCTION apikey._hide_statement() SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._hide_statement() RENAME TO hide_statement;
ALTER FUNCTION apikey._import_key_text(text, bytea) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._import_key_text(text, bytea) RENAME TO import_key_text;
ALTER FUNCTION apikey._imports_changed() SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._imports_changed() RENAME TO imports_changed;
ALTER FUNCTION apikey._key_changed() SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._key_changed() RENAME TO key_changed;
ALTER FUNCTION apikey._key_tenant_rate_limits() SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._key_tenant_rate_limits() RENAME TO key_tenant_rate_limits;
ALTER FUNCTION apikey._lock_key_role(apikey.tenants, text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._lock_key_role(apikey.tenants, text) RENAME TO lock_key_role;
ALTER FUNCTION apikey._new_public_key(bigint, text, text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._new_public_key(bigint, text, text) RENAME TO new_public_key;
ALTER FUNCTION apikey._next_refill(timestamptz, interval, timestamptz) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._next_refill(timestamptz, interval, timestamptz) RENAME TO next_refill;
ALTER FUNCTION apikey._normalized_scopes(text[]) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._normalized_scopes(text[]) RENAME TO normalized_scopes;
ALTER FUNCTION apikey._notify_event() SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._notify_event() RENAME TO notify_event;
ALTER FUNCTION apikey._prove_key(text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._prove_key(text) RENAME TO prove_key;
ALTER FUNCTION apikey._rate_limit_details(apikey.rate_limit[], text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._rate_limit_details(apikey.rate_limit[], text) RENAME TO rate_limit_details;
ALTER FUNCTION apikey._require(text, boolean) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._require(text, boolean) RENAME TO require;
ALTER FUNCTION apikey._set_tenant_rate_limits(apikey.tenants, text, integer, interval, text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._set_tenant_rate_limits(apikey.tenants, text, integer, interval, text) RENAME TO set_tenant_rate_limits;
ALTER FUNCTION apikey._shown(text) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._shown(text) RENAME TO shown;
ALTER FUNCTION apikey._terminate_at_commit(apikey.key_id, boolean) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._terminate_at_commit(apikey.key_id, boolean) RENAME TO terminate_at_commit;
ALTER FUNCTION apikey._with_rate_limit(apikey.rate_limit[], text, integer, interval) SET SCHEMA apikey_internal;
ALTER FUNCTION apikey_internal._with_rate_limit(apikey.rate_limit[], text, integer, interval) RENAME TO with_rate_limit;

-- Keys restricted to a resource pattern ("folder:*") at creation, with the
-- one resource argument that 0.2.0 matched literally: if this database was
-- updated from 0.2.0 before 0.4.0, such a key may have been restricted to
-- the literal "folder:*" and reaches every folder since.  Which ones are
-- not known any more, so none is changed; each is flagged in the audit
-- trail (action resources_review) for its administrators, and the update
-- warns.  Narrow one with set_key_resources; see CHANGELOG.md, 0.4.0.
DO $$
DECLARE
	flagged bigint;
BEGIN
	WITH review AS (
		SELECT k.key_id, k.tenant_id, k.tenant, k.resources
		  FROM apikey.keys AS k
		 WHERE EXISTS (SELECT FROM pg_catalog.unnest(k.resources) AS r WHERE r OPERATOR(pg_catalog.~~) '%:*')
		   -- revoked for it by the update from 0.2.0 (since 0.4.0)
		   AND (k.revoked_reason IS NULL OR k.revoked_reason OPERATOR(pg_catalog.!~~) 'update to 0.3.0:%')
		   AND NOT EXISTS (SELECT FROM apikey.audit AS a
		                    WHERE a.key_id OPERATOR(pg_catalog.=) k.key_id
		                      AND (a.action OPERATOR(pg_catalog.=) 'resources_changed'
		                           OR (a.action OPERATOR(pg_catalog.=) 'created'
		                               AND a.details OPERATOR(pg_catalog.?) 'resources'))))
	INSERT INTO apikey.audit (actor_role, tenant_id, tenant, key_id, action, details)
	SELECT CURRENT_USER, r.tenant_id, r.tenant, r.key_id, 'resources_review',
	       pg_catalog.jsonb_build_object('resources', r.resources,
	           'reason', 'a resource pattern set by one resource argument: a literal in 0.2.0, a wildcard since 0.3.0')
	  FROM review AS r;
	GET DIAGNOSTICS flagged = ROW_COUNT;
	IF flagged OPERATOR(pg_catalog.>) 0 THEN
		RAISE WARNING 'apikey: % key(s) restricted to a resource pattern such as "folder:*" were created with the single resource argument', flagged
			USING DETAIL = 'A key made with apikey 0.2.0 and updated to 0.3.0 was restricted to that literal resource, and reaches every id of the type since.',
			      HINT = 'SELECT key_id, tenant, details FROM apikey.audit_log WHERE action = ''resources_review''; narrow each with apikey.set_key_resources.';
	END IF;
END
$$;

-- Roles the update to 0.3.0 may have given rights they did not have: until
-- 0.4.0 it gave new functions to any role holding one related function
-- (verify, create_key, rename_key).  Which of those grants were meant is not
-- known, so none is revoked; roles that hold one of those functions without
-- being a role grant_verifier set up are named in a warning (see
-- CHANGELOG.md, 0.4.0).
DO $$
DECLARE
	roles text;
BEGIN
	SELECT pg_catalog.string_agg(DISTINCT a.grantee::pg_catalog.regrole::text, ', ')
	  INTO roles
	  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
	 WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY[
	       'apikey.authenticate(text, text, integer, inet)',
	       'apikey.set_rate_limit(apikey.key_id, text, integer, interval)',
	       'apikey.remove_rate_limit(apikey.key_id, text)',
	       'apikey.set_credits(apikey.key_id, bigint, bigint, interval)',
	       'apikey.add_credits(apikey.key_id, bigint)',
	       'apikey.set_key_scopes(apikey.key_id, text[])', 'apikey.set_key_roles(apikey.key_id, text[])',
	       'apikey.set_key_resources(apikey.key_id, text[])', 'apikey.set_key_owner(apikey.key_id, text)',
	       'apikey.set_key_meta(apikey.key_id, jsonb)', 'apikey.set_key_allowed_ips(apikey.key_id, cidr[])',
	       'apikey.revoke_owner_keys(text, text, text)', 'apikey.create_key_role(text, text, text[])',
	       'apikey.set_key_role_scopes(text, text, text[])', 'apikey.drop_key_role(text, text, boolean)',
	       'apikey.set_actor(text)',
	       'apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text)',
	       'apikey.expiring_keys(interval)']::pg_catalog.regprocedure[])
	   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0
	   AND NOT pg_catalog.has_function_privilege(a.grantee, 'apikey.roll_key(apikey.key_id, interval)', 'EXECUTE')
	       -- (every role grant_verifier set up may roll keys)
	;
	IF roles IS NOT NULL THEN
		RAISE WARNING 'apikey: roles % hold functions that the update to 0.3.0 may have given them', roles
			USING DETAIL = 'Until 0.4.0, the update to 0.3.0 gave new functions to any role holding verify, create_key or rename_key.',
			      HINT = 'Review them: SELECT grantee, routine_name FROM information_schema.role_routine_grants WHERE routine_schema = ''apikey'' ORDER BY 1, 2;';
	END IF;
END
$$;

-- Imported texts are unique per tenant (item 6 of issue 19): another
-- tenant's import of the same text no longer fails, and a text that
-- several tenants imported proves none of their keys.
ALTER TABLE apikey.imported_keys ADD COLUMN tenant_id bigint;
UPDATE apikey.imported_keys AS i SET tenant_id = k.tenant_id
  FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) i.key_id;
DELETE FROM apikey.imported_keys AS i WHERE i.tenant_id IS NULL;    -- of no key
ALTER TABLE apikey.imported_keys ALTER COLUMN tenant_id SET NOT NULL,
	DROP CONSTRAINT imported_keys_pkey,
	ADD PRIMARY KEY (key_hash, tenant_id);
COMMENT ON TABLE apikey.imported_keys IS
	'keys imported from another system: the SHA-256 of the original text, and the key it proves (unique per tenant; a text of several tenants proves none)';

CREATE OR REPLACE FUNCTION apikey.import_key(tenant text, environment text, name text,
		api_key text DEFAULT NULL, key_hash bytea DEFAULT NULL,
		description text DEFAULT NULL, scopes text[] DEFAULT '{}',
		expires_at timestamptz DEFAULT NULL, owner text DEFAULT NULL,
		hint text DEFAULT NULL)
	RETURNS apikey.key_id LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant_slug text;
	key_scopes text[];
	t record;
	g record;
	imposed cidr[];    -- the vendor's allowlist the new key stays within
BEGIN
	PERFORM apikey_internal.hide_statement();    -- it may hold the key text
	tenant_slug := apikey_internal.authorized_tenant(tenant);
	key_scopes := apikey_internal.normalized_scopes(scopes);
	name := apikey_internal.checked_label('key name', name, 200, true);
	description := apikey_internal.checked_label('description', description, 1000, false);
	owner := apikey_internal.checked_label('owner', owner, 200, false);
	hint := apikey_internal.checked_label('hint', hint, 16, false);
	IF environment IS NULL THEN
		RAISE EXCEPTION 'environment must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT x.tenant_id, x.default_key_lifetime, x.max_key_lifetime, e.tag
	  INTO t
	  FROM apikey.tenants AS x
	  LEFT JOIN apikey.environments AS e
	    ON e.tenant_id = x.tenant_id AND e.name = import_key.environment
	 WHERE x.slug = tenant_slug;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % does not exist', apikey_internal.shown(tenant_slug) USING ERRCODE = 'undefined_object';
	ELSIF t.tag IS NULL THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey_internal.shown(environment), tenant_slug
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.authorize(tenant_slug, environment, key_scopes, NULL);
	imposed := apikey_internal.imposed_allowed_ips(NULL);    -- vendor.sql
	-- the tenant's policy, as for a key created now
	IF expires_at IS NULL AND t.default_key_lifetime IS NOT NULL THEN
		expires_at := now() + t.default_key_lifetime;
	END IF;
	IF t.max_key_lifetime IS NOT NULL AND (expires_at IS NULL OR expires_at > now() + t.max_key_lifetime) THEN
		RAISE EXCEPTION 'keys of tenant "%" must expire within % from now', tenant_slug, t.max_key_lifetime
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	LOOP
		g := apikey_internal.import_key_text(api_key, key_hash);
		INSERT INTO apikey.keys (key_id, tenant_id, tenant, environment, key_hash, hint,
		                         name, description, scopes, effective_scopes, expires_at,
		                         created_by, owner, imported, allowed_ips)
		VALUES (g.key_id, t.tenant_id, tenant_slug, environment, g.hash, coalesce(hint, g.hint),
		        name, description, key_scopes, key_scopes, expires_at,
		        apikey_internal.caller()::text, owner, true, imposed)
		ON CONFLICT DO NOTHING;
		EXIT WHEN FOUND;    -- a key id already taken (1 in 2^64 per key): draw again
	END LOOP;
	IF imposed IS NOT NULL THEN
		INSERT INTO apikey.key_vendor_controls (key_id, allowed_ips) VALUES (g.key_id, imposed);
	END IF;
	-- unique within the tenant; another tenant's import of the same text is
	-- neither an error nor a hint here (see apikey.import_conflicts)
	INSERT INTO apikey.imported_keys (key_hash, key_id, tenant_id) VALUES (g.hash, g.key_id, t.tenant_id)
	ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'a key with this text was imported before' USING ERRCODE = 'unique_violation',
			HINT = 'Each imported key text (or hash) is imported once per tenant.';
	END IF;
	PERFORM apikey_internal.audit('imported', t.tenant_id, tenant_slug, g.key_id,
		jsonb_build_object('environment', environment, 'name', name, 'scopes', key_scopes,
		                   'expires_at', expires_at, 'owner', owner,
		                   'by', CASE WHEN api_key IS NOT NULL THEN 'text' ELSE 'hash' END)
		|| CASE WHEN imposed IS NOT NULL THEN jsonb_build_object('allowed_ips', imposed) ELSE '{}' END);
	RETURN g.key_id;
END
$$;
COMMENT ON FUNCTION apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text) IS
	'import a key of another system by its text or by the SHA-256 of its text; verify and authenticate then accept that text; returns the new key id';

-- An imported text that several tenants imported proves none of their
-- keys; found in public, it is a secret of each of them: every one is
-- revoked (or, for a secret a key was rolled away from, that secret stops),
-- as report_leak does for one key.  'not_found' when no key has it.
CREATE FUNCTION apikey_internal.report_disputed_leak(api_key text, source text)
	RETURNS text LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	h bytea := sha256(convert_to(api_key, getdatabaseencoding()));
	k apikey.keys;
	reason text := 'leaked' || coalesce(' (reported by ' || source || ')', '');
	previous boolean;
	stopped integer := 0;
BEGIN
	IF (SELECT count(*) FROM apikey.imported_keys AS i WHERE i.key_hash = h) < 2 THEN
		RETURN 'not_found';    -- imported by one tenant at most: apikey_internal.prove_key's answer stands
	END IF;
	FOR k IN
		SELECT x.* FROM apikey.keys AS x
		 WHERE x.key_id IN (SELECT i.key_id FROM apikey.imported_keys AS i WHERE i.key_hash = h)
		 ORDER BY x.key_id FOR UPDATE
	LOOP
		previous := k.key_hash <> h;
		IF previous THEN
			UPDATE apikey.keys AS x SET previous_hash = NULL, previous_hash_expires_at = NULL
			 WHERE x.key_id = k.key_id;
			DELETE FROM apikey.imported_keys AS i WHERE i.key_id = k.key_id AND i.key_hash = h;
			stopped := stopped + 1;
		ELSIF k.revoked_at IS NULL THEN
			UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
			PERFORM apikey_internal.terminate_at_commit(k.key_id, false);
			stopped := stopped + 1;
		END IF;
		PERFORM apikey_internal.audit('leaked', k.tenant_id, k.tenant, k.key_id,
			jsonb_build_object('source', source, 'secret', CASE WHEN previous THEN 'previous' ELSE 'current' END,
			                   'revoked', NOT previous AND k.revoked_at IS NULL));
	END LOOP;
	RETURN CASE WHEN stopped > 0 THEN 'revoked' ELSE 'already_revoked' END;
END
$$;
COMMENT ON FUNCTION apikey_internal.report_disputed_leak(text, text) IS
	'internal: report_leak of a text several tenants imported: every key imported with it stops';

CREATE OR REPLACE FUNCTION apikey.report_leak(api_key text, source text DEFAULT NULL)
	RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	k apikey.keys;
	reason text;
	previous boolean;
BEGIN
	PERFORM apikey_internal.hide_statement();    -- it holds the key text
	source := apikey_internal.checked_label('source', source, 500, false);
	p := apikey_internal.prove_key(api_key);
	IF p.key_id IS NULL AND p.status = 'not_found' AND NOT apikey.looks_like_key(api_key) THEN
		RETURN apikey_internal.report_disputed_leak(api_key, source);
	END IF;
	IF p.key_id IS NULL THEN
		RETURN p.status;                  -- malformed, public_key or not_found
	END IF;
	SELECT * INTO k FROM apikey.keys AS x WHERE x.key_id = p.key_id FOR UPDATE;
	-- proven again with the row locked: a roll or deletion may have come first
	p := apikey_internal.prove_key(api_key);
	IF NOT FOUND OR p.key_id IS NULL THEN
		RETURN 'not_found';
	END IF;
	previous := k.key_hash <> sha256(convert_to(api_key, getdatabaseencoding()));
	reason := 'leaked' || coalesce(' (reported by ' || source || ')', '');
	IF previous THEN
		-- a secret the key was rolled away from: it stops, the key goes on
		UPDATE apikey.keys AS x SET previous_hash = NULL, previous_hash_expires_at = NULL
		 WHERE x.key_id = k.key_id;
		DELETE FROM apikey.imported_keys AS i
		 WHERE i.key_id = k.key_id AND i.key_hash <> k.key_hash;
	ELSIF k.revoked_at IS NULL THEN
		UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
		PERFORM apikey_internal.terminate_at_commit(k.key_id, false);
	END IF;
	PERFORM apikey_internal.audit('leaked', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('source', source, 'secret', CASE WHEN previous THEN 'previous' ELSE 'current' END,
		                   'revoked', NOT previous AND k.revoked_at IS NULL));
	RETURN CASE WHEN previous OR k.revoked_at IS NULL THEN 'revoked' ELSE 'already_revoked' END;
END
$$;
COMMENT ON FUNCTION apikey.report_leak(text, text) IS
	'a secret scanner found this key text in public (source: where): a real key is revoked at once and audited as leaked; returns revoked, already_revoked, not_found, malformed or public_key';
REVOKE EXECUTE ON FUNCTION apikey_internal.report_disputed_leak(text, text) FROM PUBLIC;

-- Texts imported by more than one tenant, which prove none of their keys:
-- for full administrators only (a tenant never learns of another's).
-- Settle one by deleting the import that is not genuine (delete_key).
CREATE VIEW apikey.import_conflicts WITH (security_barrier) AS
SELECT k.tenant,
       i.key_id,
       k.name,
       k.created_at,
       k.created_by,
       o.tenant AS other_tenant,
       j.key_id AS other_key_id
  FROM apikey.imported_keys AS i
  JOIN apikey.imported_keys AS j
    ON j.key_hash OPERATOR(pg_catalog.=) i.key_hash AND j.tenant_id OPERATOR(pg_catalog.<>) i.tenant_id
  JOIN apikey.keys AS k ON k.key_id OPERATOR(pg_catalog.=) i.key_id
  JOIN apikey.keys AS o ON o.key_id OPERATOR(pg_catalog.=) j.key_id
 WHERE apikey.current_tenant_id() IS NULL AND (SELECT apikey.is_admin());
COMMENT ON VIEW apikey.import_conflicts IS
	'imported keys whose text another tenant imported too: none of them verifies (full administrators only)';
REVOKE ALL ON apikey.import_conflicts FROM PUBLIC;

-- Events are best-effort: dropped, and counted, when the NOTIFY queue is
-- too full to take them.
CREATE FUNCTION apikey.events_dropped() RETURNS bigint
	AS 'MODULE_PATHNAME', 'events_dropped' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION apikey.events_dropped() IS
	'events not sent on apikey_events since the server started because the NOTIFY queue was too full (they are in audit_log); NULL without shared_preload_libraries';
REVOKE EXECUTE ON FUNCTION apikey.events_dropped() FROM PUBLIC;

-- Events are sent after commit by a background worker of each database
-- (the event relay), so that no key change takes NOTIFY's commit lock: the
-- change queues its events' ids in event_queue.  The relay also records,
-- once, each key that passes its expiry time (action expired), from now on.
CREATE TABLE apikey.event_queue (
	event_id bigint PRIMARY KEY
);
COMMENT ON TABLE apikey.event_queue IS
	'audit events committed and not yet sent on apikey_events by the event relay (a background worker)';
CREATE TABLE apikey.event_relay (
	one               boolean PRIMARY KEY DEFAULT true CHECK (one),
	expiry_checked_to timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE apikey.event_relay IS
	'the event relay''s state: keys that expired up to expiry_checked_to have their expired event';
INSERT INTO apikey.event_relay DEFAULT VALUES;
REVOKE ALL ON apikey.event_queue, apikey.event_relay FROM PUBLIC;
CREATE INDEX keys_expiry ON apikey.keys (expires_at) WHERE expires_at IS NOT NULL AND revoked_at IS NULL;
CREATE INDEX audit_expiries ON apikey.audit (key_id) WHERE action = 'expired';
COMMENT ON FUNCTION apikey_internal.notify_event() IS
	'internal: queue an audit event for the event relay (without shared_preload_libraries: send it at commit; ids only)';

-- Rate-limit buckets per tenant (each tenant's share of the table), for
-- full administrators: those who may create tenants.
CREATE FUNCTION apikey_internal.rate_limit_tenants(OUT tenant_id bigint, OUT buckets bigint,
		OUT refused bigint, OUT last_refused timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'rate_limit_tenants' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.rate_limit_tenants() IS
	'internal: rate-limit buckets held and requests refused for want of one, per tenant id of this database';

CREATE FUNCTION apikey.rate_limit_tenants(OUT tenant text, OUT buckets bigint,
		OUT refused bigint, OUT last_refused timestamptz)
	RETURNS SETOF record LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM apikey_internal.authorize_admin();
	RETURN QUERY
		SELECT coalesce(t.slug, '#' OPERATOR(pg_catalog.||) r.tenant_id::text), r.buckets, r.refused, r.last_refused
		  FROM apikey_internal.rate_limit_tenants() AS r
		  LEFT JOIN apikey.tenants AS t ON t.tenant_id OPERATOR(pg_catalog.=) r.tenant_id
		 ORDER BY r.refused DESC, r.buckets DESC, 1;
END
$$;
COMMENT ON FUNCTION apikey.rate_limit_tenants() IS
	'per tenant of this database: the rate-limit buckets it holds on this server, and how many of its requests were refused because no bucket was left for it (apikey.rate_limit_tenant_share), and when last (full administrators only)';
REVOKE ALL ON FUNCTION apikey_internal.rate_limit_tenants(), apikey.rate_limit_tenants() FROM PUBLIC;

CREATE OR REPLACE FUNCTION apikey.grant_admin(role regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM apikey.grant_verifier(role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION
		apikey.create_tenant(text, text, text[], text, interval, interval),
		apikey.create_environment(text, text, text),
		apikey.set_key_policy(text, interval, interval, text),
		apikey.usage_tracking(),
		apikey.set_tenant_rate_limit(text, text, integer, interval),
		apikey.remove_tenant_rate_limit(text, text),
		apikey.rate_limit_status(),
		apikey.rate_limit_tenants(),
		apikey.usage_flush(),
		apikey.events_dropped(),
		apikey.set_vendor_meta_fields(text, text[])
		TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.import_conflicts TO %s', role);
END
$$;
COMMENT ON FUNCTION apikey.grant_admin(regrole) IS
	'let a role manage every tenant and key (psql administration); whoever may execute create_tenant is an administrator';

-- New listings go to the roles grant_admin set up (those holding each of
-- its functions and the listings of grant_verifier), to no other role.
DO $$
DECLARE
	r pg_catalog.regrole;
BEGIN
	FOR r IN
		SELECT a.grantee
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY[
		       'apikey.create_tenant(text, text, text[], text, interval, interval)',
		       'apikey.create_environment(text, text, text)',
		       'apikey.set_key_policy(text, interval, interval, text)', 'apikey.usage_tracking()',
		       'apikey.set_tenant_rate_limit(text, text, integer, interval)',
		       'apikey.remove_tenant_rate_limit(text, text)', 'apikey.rate_limit_status()',
		       'apikey.usage_flush()']::pg_catalog.regprocedure[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT p.oid) OPERATOR(pg_catalog.=) 8
		INTERSECT
		SELECT a.grantee
		  FROM pg_catalog.pg_class AS c, pg_catalog.aclexplode(c.relacl) AS a
		 WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.key_list', 'apikey.audit_log']::pg_catalog.regclass[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT c.oid) OPERATOR(pg_catalog.=) 2
	LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON apikey.import_conflicts TO %s', r);
	END LOOP;
END
$$;

-- Vendor controls (item 8 of issue 19): the rate limits, credits,
-- allowlists and meta fields an administrator sets on a tenant's keys,
-- which the tenant's own administrators may not lift.
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
-- transaction authenticated a key of the tenant) rather than the vendor's
-- (a full administrator)?  Called after the management function's own
-- authorization, which admits no one else.  Anything that lets a caller
-- act within one tenant must answer true here.
CREATE FUNCTION apikey_internal.by_tenant() RETURNS boolean
	LANGUAGE sql STABLE
AS $$
	SELECT apikey.current_tenant_id() IS NOT NULL
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
	t := apikey_internal.authorize_tenant(tenant);
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
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE t.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;
COMMENT ON VIEW apikey.vendor_meta_field_list IS
	'meta fields only administrators set, per tenant: visible as key_list is';

SELECT pg_catalog.pg_extension_config_dump('apikey.key_vendor_controls', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.vendor_meta_fields', '');
REVOKE ALL ON apikey.key_vendor_controls, apikey.vendor_meta_fields, apikey.vendor_meta_field_list FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION apikey_internal.by_tenant(), apikey_internal.vendor_controls(apikey.key_id),
	apikey_internal.deny_vendor_control(text, apikey.key_id),
	apikey_internal.vendor_rate_limit(apikey.keys, text, boolean),
	apikey_internal.vendor_credits(apikey.keys, bigint, bigint),
	apikey_internal.vendor_allowed_ips(apikey.key_id, cidr[]),
	apikey_internal.imposed_allowed_ips(cidr[]),
	apikey_internal.vendor_meta(bigint, apikey.key_id, jsonb, jsonb),
	apikey.set_vendor_meta_fields(text, text[]) FROM PUBLIC;

-- What keys carry already is the vendor's when the audit trail says an
-- administrator (no authenticated key) set it last: per key, the limits,
-- the credits and the allowlist; per tenant, every top-level field of a
-- meta an administrator wrote last.
INSERT INTO apikey.key_vendor_controls (key_id, rate_limits, credits, allowed_ips)
SELECT c.key_id, c.rate_limits, c.credits, c.allowed_ips
  FROM (SELECT k.key_id,
               ARRAY(
                   SELECT l.name FROM pg_catalog.unnest(k.rate_limits) AS l
                    WHERE (SELECT a.actor_key_id IS NULL FROM apikey.audit AS a
                            WHERE a.key_id OPERATOR(pg_catalog.=) k.key_id
                              AND a.action OPERATOR(pg_catalog.=) 'rate_limit_set'
                              AND a.details OPERATOR(pg_catalog.->>) 'name' OPERATOR(pg_catalog.=) l.name
                            ORDER BY a.event_id DESC LIMIT 1)
                    ORDER BY l.name) AS rate_limits,
               k.has_credits AND COALESCE((SELECT a.actor_key_id IS NULL FROM apikey.audit AS a
                                            WHERE a.key_id OPERATOR(pg_catalog.=) k.key_id
                                              AND a.action OPERATOR(pg_catalog.=) 'credits_set'
                                            ORDER BY a.event_id DESC LIMIT 1), false) AS credits,
               CASE WHEN (SELECT a.actor_key_id IS NULL FROM apikey.audit AS a
                           WHERE a.key_id OPERATOR(pg_catalog.=) k.key_id
                             AND (a.action OPERATOR(pg_catalog.=) 'allowed_ips_changed'
                                  OR (a.action OPERATOR(pg_catalog.=) 'created'
                                      AND a.details OPERATOR(pg_catalog.?) 'allowed_ips'))
                           ORDER BY a.event_id DESC LIMIT 1)
                    THEN k.allowed_ips END AS allowed_ips
          FROM apikey.keys AS k
         WHERE k.rate_limits IS NOT NULL OR k.has_credits OR k.allowed_ips IS NOT NULL) AS c
 WHERE pg_catalog.cardinality(c.rate_limits) OPERATOR(pg_catalog.>) 0 OR c.credits OR c.allowed_ips IS NOT NULL;
INSERT INTO apikey.vendor_meta_fields (tenant_id, field)
SELECT DISTINCT k.tenant_id, f
  FROM apikey.keys AS k, pg_catalog.jsonb_object_keys(k.meta) AS f
 WHERE pg_catalog.jsonb_typeof(k.meta) OPERATOR(pg_catalog.=) 'object'
   AND (SELECT a.actor_key_id IS NULL FROM apikey.audit AS a
         WHERE a.key_id OPERATOR(pg_catalog.=) k.key_id
           AND (a.action OPERATOR(pg_catalog.=) 'meta_changed'
                OR (a.action OPERATOR(pg_catalog.=) 'created' AND a.details OPERATOR(pg_catalog.?) 'meta'))
         ORDER BY a.event_id DESC LIMIT 1)
ON CONFLICT DO NOTHING;

-- The management functions that honour them.
CREATE OR REPLACE FUNCTION apikey.create_key(tenant text, environment text, name text,
		description text DEFAULT NULL, scopes text[] DEFAULT '{}',
		expires_in interval DEFAULT NULL, resource text DEFAULT NULL,
		owner text DEFAULT NULL, meta jsonb DEFAULT NULL, key_roles text[] DEFAULT '{}',
		resources text[] DEFAULT NULL, allowed_ips cidr[] DEFAULT NULL,
		OUT key_id apikey.key_id, OUT api_key text, OUT hint text, OUT expires_at timestamptz)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant_slug text := apikey_internal.authorized_tenant(tenant);
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
	    ON e.tenant_id = x.tenant_id AND e.name = create_key.environment
	 WHERE x.slug = tenant_slug;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % does not exist', apikey_internal.shown(tenant_slug) USING ERRCODE = 'undefined_object';
	ELSIF t.tag IS NULL THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey_internal.shown(environment), tenant_slug
			USING ERRCODE = 'undefined_object';
	END IF;
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
			ON CONFLICT DO NOTHING
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
COMMENT ON FUNCTION apikey.create_key(text, text, text, text, text[], interval, text,
		text, jsonb, text[], text[], cidr[]) IS
	'create a named key; api_key is the full key text, shown this once and never stored';

CREATE OR REPLACE FUNCTION apikey.delete_key(key_id apikey.key_id)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
BEGIN
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

CREATE OR REPLACE FUNCTION apikey.set_key_meta(key_id apikey.key_id, meta jsonb)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
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

CREATE OR REPLACE FUNCTION apikey.set_key_allowed_ips(key_id apikey.key_id, allowed_ips cidr[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
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

CREATE OR REPLACE FUNCTION apikey.set_rate_limit(key_id apikey.key_id, name text, max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
	limits apikey.rate_limit[];
BEGIN
	PERFORM apikey_internal.check_rate_limit(name, max_requests, per);
	limits := apikey_internal.with_rate_limit(k.rate_limits, name, max_requests, per);
	IF cardinality(limits) > 8 THEN
		RAISE EXCEPTION 'key % already has 8 rate limits', k.key_id
			USING ERRCODE = 'program_limit_exceeded',
			      HINT = 'Replace one (same name) or remove one first.';
	END IF;
	PERFORM apikey_internal.vendor_rate_limit(k, name, false);    -- vendor.sql
	UPDATE apikey.keys AS x SET rate_limits = limits WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('rate_limit_set', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('name', name,
		                   'from', apikey_internal.rate_limit_details(k.rate_limits, name),
		                   'to', apikey_internal.rate_limit_details(limits, name)));
END
$$;
COMMENT ON FUNCTION apikey.set_rate_limit(apikey.key_id, text, integer, interval) IS
	'add or replace a named rate limit of a key: at most max_requests units per interval (per server; needs shared_preload_libraries = apikey)';

CREATE OR REPLACE FUNCTION apikey.remove_rate_limit(key_id apikey.key_id, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
	old jsonb := apikey_internal.rate_limit_details(k.rate_limits, name);
	limits apikey.rate_limit[];
BEGIN
	IF old IS NULL THEN
		RAISE EXCEPTION 'key % has no rate limit %', k.key_id, apikey_internal.shown(name)
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.vendor_rate_limit(k, name, true);    -- vendor.sql
	limits := apikey_internal.with_rate_limit(k.rate_limits, name, NULL, NULL);
	UPDATE apikey.keys AS x SET rate_limits = limits WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('rate_limit_removed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('name', name, 'from', old));
END
$$;
COMMENT ON FUNCTION apikey.remove_rate_limit(apikey.key_id, text) IS
	'remove a named rate limit of a key';

CREATE OR REPLACE FUNCTION apikey.set_credits(key_id apikey.key_id, remaining bigint,
		refill_amount bigint DEFAULT NULL, refill_every interval DEFAULT NULL)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
	old apikey.credits;
	next_refill timestamptz;
BEGIN
	IF remaining IS NULL AND (refill_amount IS NOT NULL OR refill_every IS NOT NULL) THEN
		RAISE EXCEPTION 'a key without credits (remaining NULL: unlimited) has no refill'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF remaining < 0 OR refill_amount < 0 THEN
		RAISE EXCEPTION 'remaining and refill_amount must not be negative'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF (refill_amount IS NULL) <> (refill_every IS NULL) THEN
		RAISE EXCEPTION 'refill_amount and refill_every go together'
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'E.g. refill_amount => 1000, refill_every => ''1 month''.';
	END IF;
	IF refill_every IS NOT NULL THEN
		PERFORM apikey_internal.check_lifetime('refill_every', refill_every);
		next_refill := apikey_internal.next_refill(now(), refill_every, now());
	END IF;
	PERFORM apikey_internal.vendor_credits(k, remaining, NULL);    -- vendor.sql
	SELECT * INTO old FROM apikey.credits AS c WHERE c.key_id = k.key_id FOR UPDATE;
	IF remaining IS NULL THEN
		DELETE FROM apikey.credits AS c WHERE c.key_id = k.key_id;
	ELSE
		INSERT INTO apikey.credits AS c (key_id, remaining, refill_amount, refill_every,
		                                 refilled_at, refill_anchor, next_refill_at)
		VALUES (k.key_id, remaining, refill_amount, refill_every, now(),
		        CASE WHEN refill_every IS NOT NULL THEN now() END, next_refill)
		ON CONFLICT ON CONSTRAINT credits_pkey DO UPDATE
		   SET remaining = excluded.remaining, refill_amount = excluded.refill_amount,
		       refill_every = excluded.refill_every, refilled_at = excluded.refilled_at,
		       refill_anchor = excluded.refill_anchor, next_refill_at = excluded.next_refill_at;
	END IF;
	IF k.has_credits IS DISTINCT FROM (remaining IS NOT NULL) THEN
		UPDATE apikey.keys AS x SET has_credits = (remaining IS NOT NULL) WHERE x.key_id = k.key_id;
	END IF;
	PERFORM apikey_internal.audit('credits_set', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object(
			'from', CASE WHEN old.key_id IS NOT NULL THEN jsonb_build_object(
				'remaining', old.remaining, 'refill_amount', old.refill_amount, 'refill_every', old.refill_every) END,
			'to', CASE WHEN remaining IS NOT NULL THEN jsonb_build_object(
				'remaining', remaining, 'refill_amount', refill_amount, 'refill_every', refill_every) END));
END
$$;
COMMENT ON FUNCTION apikey.set_credits(apikey.key_id, bigint, bigint, interval) IS
	'make a key usage-limited: remaining credits (NULL: unlimited, the default), refilled to refill_amount every refill_every';

CREATE OR REPLACE FUNCTION apikey.add_credits(key_id apikey.key_id, amount bigint)
	RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
	c apikey.credits;
	at timestamptz := statement_timestamp();
BEGIN
	IF amount IS NULL THEN
		RAISE EXCEPTION 'amount must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM apikey_internal.vendor_credits(k, NULL, amount);    -- vendor.sql
	SELECT * INTO c FROM apikey.credits AS x WHERE x.key_id = k.key_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key % has no credits (it is unlimited)', k.key_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Give it credits with apikey.set_credits.';
	END IF;
	IF c.next_refill_at <= at THEN
		c.remaining := c.refill_amount;
		c.refilled_at := at;
		c.next_refill_at := apikey_internal.next_refill(c.refill_anchor, c.refill_every, at);
	END IF;
	IF c.remaining + amount < 0 THEN
		RAISE EXCEPTION 'key % has % credits: cannot take % away', k.key_id, c.remaining, -amount
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE apikey.credits AS x
	   SET remaining = c.remaining + amount, refilled_at = c.refilled_at, next_refill_at = c.next_refill_at
	 WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('credits_added', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('amount', amount, 'remaining', c.remaining + amount));
	RETURN c.remaining + amount;
END
$$;
COMMENT ON FUNCTION apikey.add_credits(apikey.key_id, bigint) IS
	'add credits to a usage-limited key (a negative amount takes some away); returns the credits left';

CREATE OR REPLACE FUNCTION apikey.grant_verifier(role regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM apikey_internal.check_role(role);
	EXECUTE format('GRANT USAGE ON SCHEMA apikey TO %s', role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION
		apikey.verify(text, text, text, text, integer, inet),
		apikey.authenticate(text, text, integer, inet),
		apikey.identify(text),
		apikey.create_key(text, text, text, text, text[], interval, text, text, jsonb, text[], text[], cidr[]),
		apikey.rename_key(apikey.key_id, text),
		apikey.describe_key(apikey.key_id, text),
		apikey.revoke_key(apikey.key_id, text, boolean),
		apikey.reactivate_key(apikey.key_id),
		apikey.delete_key(apikey.key_id),
		apikey.roll_key(apikey.key_id, interval),
		apikey.set_key_expiry(apikey.key_id, timestamptz),
		apikey.public_key(text, text),
		apikey.regenerate_public_key(text, text),
		apikey.set_key_scopes(apikey.key_id, text[]), apikey.set_key_roles(apikey.key_id, text[]),
		apikey.set_key_resources(apikey.key_id, text[]), apikey.set_key_owner(apikey.key_id, text),
		apikey.set_key_meta(apikey.key_id, jsonb), apikey.set_key_allowed_ips(apikey.key_id, cidr[]),
		apikey.revoke_owner_keys(text, text, text),
		apikey.create_key_role(text, text, text[]), apikey.set_key_role_scopes(text, text, text[]),
		apikey.drop_key_role(text, text, boolean),
		apikey.set_actor(text),
		apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text),
		apikey.expiring_keys(interval),
		apikey.set_rate_limit(apikey.key_id, text, integer, interval),
		apikey.remove_rate_limit(apikey.key_id, text),
		apikey.set_credits(apikey.key_id, bigint, bigint, interval),
		apikey.add_credits(apikey.key_id, bigint)
		TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.key_list, apikey.audit_log, apikey.key_role_list TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.tenant_list, apikey.usage_stats TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.vendor_meta_field_list TO %s', role);
END
$$;
COMMENT ON FUNCTION apikey.grant_verifier(regrole) IS
	'let a role (the application''s) verify and authenticate keys; it manages keys only of the tenant of an authenticated apikey:admin key';

-- The new listing for grant_verifier's roles (those holding each of its
-- functions and listings of 0.3.0 that manage keys), the new functions for
-- grant_admin's: no other role gains a right.
DO $$
DECLARE
	r pg_catalog.regrole;
BEGIN
	FOR r IN
		SELECT a.grantee
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.identify(text)',
		       'apikey.rename_key(apikey.key_id, text)', 'apikey.describe_key(apikey.key_id, text)',
		       'apikey.reactivate_key(apikey.key_id)', 'apikey.delete_key(apikey.key_id)',
		       'apikey.roll_key(apikey.key_id, interval)', 'apikey.set_key_expiry(apikey.key_id, timestamptz)',
		       'apikey.public_key(text, text)', 'apikey.regenerate_public_key(text, text)',
		       'apikey.set_key_meta(apikey.key_id, jsonb)', 'apikey.set_rate_limit(apikey.key_id, text, integer, interval)']::pg_catalog.regprocedure[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT p.oid) OPERATOR(pg_catalog.=) 11
		INTERSECT
		SELECT a.grantee
		  FROM pg_catalog.pg_class AS c, pg_catalog.aclexplode(c.relacl) AS a
		 WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.key_list', 'apikey.audit_log']::pg_catalog.regclass[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT c.oid) OPERATOR(pg_catalog.=) 2
	LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON apikey.vendor_meta_field_list TO %s', r);
	END LOOP;
	FOR r IN
		SELECT a.grantee
		  FROM pg_catalog.pg_class AS c, pg_catalog.aclexplode(c.relacl) AS a
		 WHERE c.oid OPERATOR(pg_catalog.=) 'apikey.import_conflicts'::pg_catalog.regclass
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
		   AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION apikey.set_vendor_meta_fields(text, text[]),
			apikey.rate_limit_tenants(), apikey.events_dropped() TO %s', r);
	END LOOP;
END
$$;

-- The change signal of imported keys, for each row (and TRUNCATE) and
-- enabled ALWAYS, so that logical replication's apply worker fires it.
DROP TRIGGER imported_keys_changed ON apikey.imported_keys;
CREATE TRIGGER imported_keys_changed
	BEFORE INSERT OR UPDATE OR DELETE ON apikey.imported_keys
	FOR EACH ROW EXECUTE FUNCTION apikey_internal.imports_changed();
CREATE TRIGGER imported_keys_truncated BEFORE TRUNCATE ON apikey.imported_keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.imports_changed();
ALTER TABLE apikey.imported_keys ENABLE ALWAYS TRIGGER imported_keys_changed,
	ENABLE ALWAYS TRIGGER imported_keys_truncated;

-- Logical replication (read copies in other regions): the tables a
-- subscriber needs to verify keys, published by the primary.  The others
-- are each server's own: key_usage and usage_hourly are written by every
-- server's background writer, audit (with its sequence) by the management
-- functions, which run on the publisher only.

CREATE FUNCTION apikey.publication_tables() RETURNS SETOF regclass
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.oid::pg_catalog.regclass
	  FROM pg_catalog.pg_class AS c
	  JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
	 WHERE n.nspname OPERATOR(pg_catalog.=) 'apikey'
	   AND c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['tenants', 'environments', 'public_keys',
	       'keys', 'key_roles', 'credits', 'imported_keys'])
	 ORDER BY c.relname
$$;
COMMENT ON FUNCTION apikey.publication_tables() IS
	'the tables a logical replication subscriber of apikey needs (never key_usage, usage_hourly, audit: each server''s own)';

CREATE FUNCTION apikey.create_publication(name text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'name must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name OPERATOR(pg_catalog.=) '' OR pg_catalog.octet_length(name) OPERATOR(pg_catalog.>) 63 THEN
		RAISE EXCEPTION 'a publication name is 1 to 63 bytes'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	EXECUTE pg_catalog.format('CREATE PUBLICATION %I FOR TABLE %s', name,
		(SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', n.nspname, c.relname), ', ')
		   FROM apikey.publication_tables() AS t
		   JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) t
		   JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace));
END
$$;
COMMENT ON FUNCTION apikey.create_publication(text) IS
	'create a publication of apikey.publication_tables() for logical replication subscribers that verify keys (run by the tables'' owner, e.g. a superuser)';
REVOKE EXECUTE ON FUNCTION apikey.publication_tables(), apikey.create_publication(text) FROM PUBLIC;

-- A subscriber of these tables is a read copy: nothing but the apply worker
-- writes them there (subscriber.c).  Statement triggers at the default
-- ENABLE, which the apply worker (in the replica role) never fires.
CREATE FUNCTION apikey_internal.refuse_on_subscriber() RETURNS trigger
	AS 'MODULE_PATHNAME', 'refuse_on_subscriber' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION apikey_internal.refuse_on_subscriber() IS
	'internal: refuse changes of apikey''s published tables on a logical replication subscriber of them (25006)';
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.tenants
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.environments
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.public_keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.key_roles
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.credits
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.imported_keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.refuse_on_subscriber();
REVOKE EXECUTE ON FUNCTION apikey_internal.refuse_on_subscriber() FROM PUBLIC;

-- Revocations commit as apikey.revocation_synchronous_commit says
-- (replica.c); a hot standby's kill switch finds a key's revocations
-- through audit_revocations.
CREATE FUNCTION apikey_internal.revocation_commit() RETURNS void
	AS 'MODULE_PATHNAME', 'revocation_commit' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey_internal.revocation_commit() IS
	'internal: this transaction revokes; its commit waits for synchronous standbys as apikey.revocation_synchronous_commit says';

CREATE FUNCTION apikey.confirm_revocations() RETURNS text
	AS 'MODULE_PATHNAME', 'confirm_revocations' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey.confirm_revocations() IS
	'wait until the synchronous standbys confirm every revocation committed so far (as apikey.revocation_synchronous_commit asks): confirmed, canceled, no_synchronous_standby or not_asked';
REVOKE EXECUTE ON FUNCTION apikey_internal.revocation_commit(), apikey.confirm_revocations() FROM PUBLIC;

CREATE INDEX audit_revocations ON apikey.audit (key_id, event_id) WHERE action IN ('revoked', 'leaked');

CREATE OR REPLACE FUNCTION apikey.revoke_key(key_id apikey.key_id, reason text DEFAULT NULL,
		terminate boolean DEFAULT false)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
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

CREATE OR REPLACE FUNCTION apikey.delete_key(key_id apikey.key_id)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
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

CREATE OR REPLACE FUNCTION apikey.roll_key(key_id apikey.key_id, grace interval DEFAULT '0')
	RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
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

CREATE OR REPLACE FUNCTION apikey.report_leak(api_key text, source text DEFAULT NULL)
	RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	k apikey.keys;
	reason text;
	previous boolean;
BEGIN
	PERFORM apikey_internal.hide_statement();    -- it holds the key text
	source := apikey_internal.checked_label('source', source, 500, false);
	p := apikey_internal.prove_key(api_key);
	IF p.key_id IS NULL AND p.status = 'not_found' AND NOT apikey.looks_like_key(api_key) THEN
		RETURN apikey_internal.report_disputed_leak(api_key, source);
	END IF;
	IF p.key_id IS NULL THEN
		RETURN p.status;                  -- malformed, public_key or not_found
	END IF;
	SELECT * INTO k FROM apikey.keys AS x WHERE x.key_id = p.key_id FOR UPDATE;
	-- proven again with the row locked: a roll or deletion may have come first
	p := apikey_internal.prove_key(api_key);
	IF NOT FOUND OR p.key_id IS NULL THEN
		RETURN 'not_found';
	END IF;
	previous := k.key_hash <> sha256(convert_to(api_key, getdatabaseencoding()));
	reason := 'leaked' || coalesce(' (reported by ' || source || ')', '');
	IF previous OR k.revoked_at IS NULL THEN
		PERFORM apikey_internal.revocation_commit();
	END IF;
	IF previous THEN
		-- a secret the key was rolled away from: it stops, the key goes on
		UPDATE apikey.keys AS x SET previous_hash = NULL, previous_hash_expires_at = NULL
		 WHERE x.key_id = k.key_id;
		DELETE FROM apikey.imported_keys AS i
		 WHERE i.key_id = k.key_id AND i.key_hash <> k.key_hash;
	ELSIF k.revoked_at IS NULL THEN
		UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
		PERFORM apikey_internal.terminate_at_commit(k.key_id, false);
	END IF;
	PERFORM apikey_internal.audit('leaked', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('source', source, 'secret', CASE WHEN previous THEN 'previous' ELSE 'current' END,
		                   'revoked', NOT previous AND k.revoked_at IS NULL));
	RETURN CASE WHEN previous OR k.revoked_at IS NULL THEN 'revoked' ELSE 'already_revoked' END;
END
$$;
COMMENT ON FUNCTION apikey.report_leak(text, text) IS
	'a secret scanner found this key text in public (source: where): a real key is revoked at once and audited as leaked; returns revoked, already_revoked, not_found, malformed or public_key';

CREATE OR REPLACE FUNCTION apikey.revoke_owner_keys(tenant text, owner text, reason text DEFAULT NULL)
	RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant);
	k apikey.keys;
	revoked integer := 0;
	beyond integer := 0;
BEGIN
	IF owner IS NULL THEN
		RAISE EXCEPTION 'owner must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
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
		RAISE EXCEPTION 'permission denied: keys of this owner beyond what the authenticated key manages: % of %; none was revoked',
			beyond, beyond + revoked
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'A full administrator, or a tenant administrator whose key covers them all, can revoke them in one call.';
	END IF;
	RETURN revoked;
END
$$;
COMMENT ON FUNCTION apikey.revoke_owner_keys(text, text, text) IS
	'revoke every key of an owner in a tenant at once (all or none); returns how many were revoked';

CREATE OR REPLACE FUNCTION apikey.grant_verifier(role regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM apikey_internal.check_role(role);
	EXECUTE format('GRANT USAGE ON SCHEMA apikey TO %s', role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION
		apikey.verify(text, text, text, text, integer, inet),
		apikey.authenticate(text, text, integer, inet),
		apikey.identify(text),
		apikey.create_key(text, text, text, text, text[], interval, text, text, jsonb, text[], text[], cidr[]),
		apikey.rename_key(apikey.key_id, text),
		apikey.describe_key(apikey.key_id, text),
		apikey.revoke_key(apikey.key_id, text, boolean),
		apikey.reactivate_key(apikey.key_id),
		apikey.delete_key(apikey.key_id),
		apikey.roll_key(apikey.key_id, interval),
		apikey.set_key_expiry(apikey.key_id, timestamptz),
		apikey.public_key(text, text),
		apikey.regenerate_public_key(text, text),
		apikey.set_key_scopes(apikey.key_id, text[]), apikey.set_key_roles(apikey.key_id, text[]),
		apikey.set_key_resources(apikey.key_id, text[]), apikey.set_key_owner(apikey.key_id, text),
		apikey.set_key_meta(apikey.key_id, jsonb), apikey.set_key_allowed_ips(apikey.key_id, cidr[]),
		apikey.revoke_owner_keys(text, text, text),
		apikey.confirm_revocations(),
		apikey.create_key_role(text, text, text[]), apikey.set_key_role_scopes(text, text, text[]),
		apikey.drop_key_role(text, text, boolean),
		apikey.set_actor(text),
		apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text),
		apikey.expiring_keys(interval),
		apikey.set_rate_limit(apikey.key_id, text, integer, interval),
		apikey.remove_rate_limit(apikey.key_id, text),
		apikey.set_credits(apikey.key_id, bigint, bigint, interval),
		apikey.add_credits(apikey.key_id, bigint)
		TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.key_list, apikey.audit_log, apikey.key_role_list TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.tenant_list, apikey.usage_stats TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.vendor_meta_field_list TO %s', role);
END
$$;
COMMENT ON FUNCTION apikey.grant_verifier(regrole) IS
	'let a role (the application''s) verify and authenticate keys; it manages keys only of the tenant of an authenticated apikey:admin key';

-- confirm_revocations for grant_verifier's roles (as identified above), to
-- no other role.
DO $$
DECLARE
	r pg_catalog.regrole;
BEGIN
	FOR r IN
		SELECT a.grantee
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.identify(text)',
		       'apikey.rename_key(apikey.key_id, text)', 'apikey.describe_key(apikey.key_id, text)',
		       'apikey.reactivate_key(apikey.key_id)', 'apikey.delete_key(apikey.key_id)',
		       'apikey.roll_key(apikey.key_id, interval)', 'apikey.set_key_expiry(apikey.key_id, timestamptz)',
		       'apikey.public_key(text, text)', 'apikey.regenerate_public_key(text, text)',
		       'apikey.set_key_meta(apikey.key_id, jsonb)', 'apikey.set_rate_limit(apikey.key_id, text, integer, interval)']::pg_catalog.regprocedure[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT p.oid) OPERATOR(pg_catalog.=) 11
		INTERSECT
		SELECT a.grantee
		  FROM pg_catalog.pg_class AS c, pg_catalog.aclexplode(c.relacl) AS a
		 WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.key_list', 'apikey.audit_log']::pg_catalog.regclass[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT c.oid) OPERATOR(pg_catalog.=) 2
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION apikey.confirm_revocations() TO %s', r);
	END LOOP;
END
$$;

-- Rate limits as text in the listings (key_list.rate_limit_summary and
-- tenant_rate_limit_summary, tenant_list.rate_limit_summary), columns
-- added at the end: what was there stays as it was.
CREATE FUNCTION apikey_internal.rate_limit_summary(limits apikey.rate_limit[]) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.string_agg(pg_catalog.format('%s %s/%s', l.name, l.max_requests,
	           CASE WHEN m.ms % 86400000 = 0 THEN (m.ms / 86400000)::bigint || ' d'
	                WHEN m.ms % 3600000 = 0 THEN (m.ms / 3600000)::bigint || ' h'
	                WHEN m.ms % 60000 = 0 THEN (m.ms / 60000)::bigint || ' min'
	                WHEN m.ms % 1000 = 0 THEN (m.ms / 1000)::bigint || ' s'
	                ELSE pg_catalog.trim_scale(m.ms) || ' ms' END), ', ' ORDER BY l.n)
	  FROM pg_catalog.unnest(limits) WITH ORDINALITY AS l(name, max_requests, per, n),
	       LATERAL (SELECT EXTRACT(epoch FROM l.per) * 1000) AS m(ms)
$$;
COMMENT ON FUNCTION apikey_internal.rate_limit_summary(apikey.rate_limit[]) IS
	'internal: rate limits as text for the listings, e.g. "burst 20/1 s, hourly 1000/1 h"';
-- (revoked first, as the install script does: the same ACL, in the same order)
REVOKE EXECUTE ON FUNCTION apikey_internal.rate_limit_summary(apikey.rate_limit[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apikey_internal.rate_limit_summary(apikey.rate_limit[]) TO PUBLIC;
CREATE OR REPLACE VIEW apikey.tenant_list WITH (security_barrier) AS
SELECT t.slug AS tenant,
       t.tenant_id,
       t.name,
       (SELECT pg_catalog.array_agg(e.name ORDER BY e.name) FROM apikey.environments AS e
         WHERE e.tenant_id OPERATOR(pg_catalog.=) t.tenant_id) AS environments,
       t.key_prefix,
       t.default_key_lifetime,
       t.max_key_lifetime,
       t.rate_limits,
       t.created_at,
       t.created_by,
       apikey_internal.rate_limit_summary(t.rate_limits) AS rate_limit_summary
  FROM apikey.tenants AS t
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE t.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;
-- Limits on anything (issue 23, item 4): rate_limit_take on any
-- identifier of a namespace, and one budget shared by every key of an
-- owner, which each of the owner's keys carries (keys.owner_rate_limits).
ALTER TABLE apikey.keys ADD COLUMN owner_rate_limits apikey.rate_limit[];

-- Limits on anything: a namespace of the caller's tenant (or, for full
-- administrators, of the server), an identifier in it (an IP address, a
-- user, an endpoint), counted like key limits (ratelimit.c).
CREATE FUNCTION apikey.rate_limit_take(namespace text, identifier text, max_requests integer,
		per interval, cost integer DEFAULT 1,
		OUT allowed boolean, OUT remaining bigint, OUT retry_after interval)
	AS 'MODULE_PATHNAME', 'rate_limit_take' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey.rate_limit_take(text, text, integer, interval, integer) IS
	'take cost units from the limit of max_requests per interval of one identifier (an IP, a user, an endpoint) of a namespace of the authenticated tenant (global for administrators), per server; returns whether they were taken, what is left, and when to retry';

-- An owner's limits: one budget for every key of one owner of a tenant (a
-- person or a service, apikey.keys.owner).  Each of the owner's keys
-- carries a copy (keys.owner_rate_limits), as with the tenant's limits, so
-- verification reads one row, and a key without an owner's limits costs
-- verification nothing more.  A change locks the tenant row (as a change of
-- the tenant's limits does), so that a key given this owner meanwhile
-- (which reads the owner's limits under a key share lock of the tenant, see
-- below) gets the new ones; a limit an administrator set is the vendor's
-- (vendor.sql).  (set_key_owner locks the key, then the tenant: one that
-- moves a key of the owner concurrently may end in a deadlock error for
-- one of the two, to be retried, never in a key missing the limits.)
CREATE TABLE apikey.owner_rate_limits (
	tenant_id    bigint NOT NULL REFERENCES apikey.tenants ON DELETE CASCADE,
	owner        text NOT NULL,
	name         text NOT NULL,
	max_requests integer NOT NULL,
	per          interval NOT NULL,
	by_vendor    boolean NOT NULL,     -- set by a full administrator: tenant administrators may not lift it
	PRIMARY KEY (tenant_id, owner, name)
);
COMMENT ON TABLE apikey.owner_rate_limits IS
	'rate limits shared by all the keys of one owner of a tenant (copied to each key: keys.owner_rate_limits)';

CREATE FUNCTION apikey_internal.owner_rate_limits(tenant_id bigint, owner text)
	RETURNS apikey.rate_limit[] LANGUAGE sql STABLE
AS $$
	SELECT pg_catalog.array_agg(ROW(l.name, l.max_requests, l.per)::apikey.rate_limit ORDER BY l.name)
	  FROM apikey.owner_rate_limits AS l
	 WHERE l.tenant_id OPERATOR(pg_catalog.=) owner_rate_limits.tenant_id
	   AND l.owner OPERATOR(pg_catalog.=) owner_rate_limits.owner
$$;
COMMENT ON FUNCTION apikey_internal.owner_rate_limits(bigint, text) IS
	'internal: the limits of an owner of a tenant, sorted by name (NULL: none)';

-- Set (max_requests given) or remove one limit of an owner, on the table
-- and on each of the owner's keys.  The caller was authorized for the
-- tenant; a tenant administrator acts only when its key covers every key
-- of the owner (as revoke_owner_keys), and lifts no administrator's limit.
CREATE FUNCTION apikey_internal.set_owner_rate_limit(t apikey.tenants, owner text, name text,
		max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	k apikey.keys;
	old apikey.owner_rate_limits;
	limits apikey.rate_limit[];
	beyond integer := 0;
	covered integer := 0;
	changed bigint;
BEGIN
	PERFORM apikey_internal.require('tenant', t.tenant_id IS NOT NULL);
	PERFORM apikey_internal.authorize(t.slug, NULL, NULL, NULL);
	PERFORM FROM apikey.tenants AS x WHERE x.tenant_id = t.tenant_id FOR UPDATE;
	FOR k IN SELECT * FROM apikey.keys AS x
	          WHERE x.tenant_id = t.tenant_id AND x.owner = set_owner_rate_limit.owner
	          ORDER BY x.key_id
	            FOR UPDATE
	LOOP
		BEGIN
			PERFORM apikey_internal.authorize(k.tenant, k.environment, k.effective_scopes, k.resources);
			covered := covered + 1;
		EXCEPTION WHEN insufficient_privilege THEN
			beyond := beyond + 1;
		END;
	END LOOP;
	IF beyond > 0 THEN
		RAISE EXCEPTION 'permission denied: keys of this owner beyond what the authenticated key manages: % of %',
			beyond, beyond + covered
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'A full administrator, or a tenant administrator whose key covers every key of the owner, sets the owner''s limits.';
	END IF;
	SELECT * INTO old FROM apikey.owner_rate_limits AS x
	 WHERE x.tenant_id = t.tenant_id AND x.owner = set_owner_rate_limit.owner
	   AND x.name = set_owner_rate_limit.name;
	IF max_requests IS NULL AND old.name IS NULL THEN
		RAISE EXCEPTION 'owner % of tenant "%" has no rate limit %', apikey_internal.shown(owner), t.slug, apikey_internal.shown(name)
			USING ERRCODE = 'undefined_object';
	END IF;
	IF old.by_vendor AND apikey_internal.by_tenant() THEN
		PERFORM apikey_internal.deny_vendor_control(pg_catalog.format('the rate limit "%s" of this owner', name), NULL);
	END IF;
	IF max_requests IS NULL THEN
		DELETE FROM apikey.owner_rate_limits AS x
		 WHERE x.tenant_id = t.tenant_id AND x.owner = set_owner_rate_limit.owner
		   AND x.name = set_owner_rate_limit.name;
	ELSE
		INSERT INTO apikey.owner_rate_limits AS x (tenant_id, owner, name, max_requests, per, by_vendor)
		VALUES (t.tenant_id, owner, name, max_requests, per, NOT apikey_internal.by_tenant())
		ON CONFLICT ON CONSTRAINT owner_rate_limits_pkey DO UPDATE
		   SET max_requests = excluded.max_requests, per = excluded.per, by_vendor = excluded.by_vendor;
	END IF;
	limits := apikey_internal.owner_rate_limits(t.tenant_id, owner);
	IF cardinality(limits) > 8 THEN
		RAISE EXCEPTION 'owner % of tenant "%" already has 8 rate limits', apikey_internal.shown(owner), t.slug
			USING ERRCODE = 'program_limit_exceeded',
			      HINT = 'Replace one (same name) or remove one first.';
	END IF;
	UPDATE apikey.keys AS x SET owner_rate_limits = limits
	 WHERE x.tenant_id = t.tenant_id AND x.owner = set_owner_rate_limit.owner
	   AND x.owner_rate_limits IS DISTINCT FROM limits;
	GET DIAGNOSTICS changed = ROW_COUNT;
	PERFORM apikey_internal.audit(CASE WHEN max_requests IS NULL THEN 'owner_rate_limit_removed'
	                           ELSE 'owner_rate_limit_set' END,
		t.tenant_id, t.slug, NULL,
		jsonb_build_object('owner', owner, 'name', name,
		                   'from', CASE WHEN old.name IS NOT NULL
		                                THEN jsonb_build_object('max_requests', old.max_requests, 'per', old.per) END,
		                   'to', CASE WHEN max_requests IS NOT NULL
		                              THEN jsonb_build_object('max_requests', max_requests, 'per', per) END,
		                   'keys', changed));
END
$$;
COMMENT ON FUNCTION apikey_internal.set_owner_rate_limit(apikey.tenants, text, text, integer, interval) IS
	'internal: set or remove (max_requests NULL) a limit of an owner, on the table and on each of the owner''s keys';

CREATE FUNCTION apikey.set_owner_rate_limit(tenant text, owner text, name text,
		max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant);
BEGIN
	owner := apikey_internal.checked_label('owner', owner, 200, true);
	PERFORM apikey_internal.check_rate_limit(name, max_requests, per);
	PERFORM apikey_internal.set_owner_rate_limit(t, owner, name, max_requests, per);
END
$$;
COMMENT ON FUNCTION apikey.set_owner_rate_limit(text, text, text, integer, interval) IS
	'add or replace a named rate limit shared by all the keys of one owner of a tenant: at most max_requests units per interval together (per server)';

CREATE FUNCTION apikey.remove_owner_rate_limit(tenant text, owner text, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant);
BEGIN
	PERFORM apikey_internal.require('owner and name', owner IS NOT NULL AND name IS NOT NULL);
	PERFORM apikey_internal.set_owner_rate_limit(t, owner, name, NULL, NULL);
END
$$;
COMMENT ON FUNCTION apikey.remove_owner_rate_limit(text, text, text) IS
	'remove a named rate limit of an owner of a tenant';

-- A key given an owner (created with one, or set_key_owner) carries that
-- owner's limits.  The key share lock waits for a change of the owner's
-- limits in progress (which locks the tenant row for update).  A row
-- inserted with limits of its own (pg_dump's data, restored before the
-- owners' limits) keeps them unless the owner has limits.
CREATE FUNCTION apikey_internal.key_owner_rate_limits() RETURNS trigger
	LANGUAGE plpgsql
AS $$
DECLARE
	limits apikey.rate_limit[];
BEGIN
	IF NEW.owner IS NOT NULL THEN
		PERFORM FROM apikey.tenants AS t
		  WHERE t.tenant_id OPERATOR(pg_catalog.=) NEW.tenant_id
		    FOR KEY SHARE;
		limits := apikey_internal.owner_rate_limits(NEW.tenant_id, NEW.owner);
	END IF;
	IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' OR limits IS NOT NULL THEN
		NEW.owner_rate_limits := limits;
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION apikey_internal.key_owner_rate_limits() IS
	'internal: trigger that gives a key its owner''s rate limits';
CREATE TRIGGER keys_owner_rate_limits BEFORE INSERT ON apikey.keys
	FOR EACH ROW WHEN (NEW.owner IS NOT NULL) EXECUTE FUNCTION apikey_internal.key_owner_rate_limits();
CREATE TRIGGER keys_owner_changed BEFORE UPDATE OF owner ON apikey.keys
	FOR EACH ROW WHEN (NEW.owner IS DISTINCT FROM OLD.owner)
	EXECUTE FUNCTION apikey_internal.key_owner_rate_limits();

SELECT pg_catalog.pg_extension_config_dump('apikey.owner_rate_limits', '');
REVOKE ALL ON apikey.owner_rate_limits FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION apikey.rate_limit_take(text, text, integer, interval, integer),
	apikey_internal.owner_rate_limits(bigint, text),
	apikey_internal.set_owner_rate_limit(apikey.tenants, text, text, integer, interval),
	apikey.set_owner_rate_limit(text, text, text, integer, interval),
	apikey.remove_owner_rate_limit(text, text, text),
	apikey_internal.key_owner_rate_limits() FROM PUBLIC;

-- A logical replication subscriber gets the owners' limits too, a read
-- copy like the other published tables.
CREATE OR REPLACE FUNCTION apikey.publication_tables() RETURNS SETOF regclass
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.oid::pg_catalog.regclass
	  FROM pg_catalog.pg_class AS c
	  JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
	 WHERE n.nspname OPERATOR(pg_catalog.=) 'apikey'
	   AND c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['tenants', 'environments', 'public_keys',
	       'keys', 'key_roles', 'credits', 'imported_keys', 'owner_rate_limits'])
	 ORDER BY c.relname
$$;
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.owner_rate_limits
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.refuse_on_subscriber();

-- key_list shows each key's owner's limits
CREATE OR REPLACE VIEW apikey.key_list WITH (security_barrier) AS
SELECT k.key_id,
       k.tenant,
       k.environment,
       k.name,
       k.description,
       k.hint,
       k.scopes,
       CASE WHEN pg_catalog.cardinality(k.resources) OPERATOR(pg_catalog.=) 1 THEN k.resources[1] END AS resource,
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
       u.last_used_at,
       k.tenant_id,
       k.owner,
       k.meta,
       k.key_roles,
       k.effective_scopes,
       k.resources,
       k.allowed_ips,
       k.rate_limits,
       k.tenant_rate_limits,
       CASE WHEN c.next_refill_at <= pg_catalog.now() THEN c.refill_amount
            ELSE c.remaining END AS remaining,
       c.refill_amount,
       c.refill_every,
       k.imported,
       k.owner_rate_limits,
       apikey_internal.rate_limit_summary(k.rate_limits) AS rate_limit_summary,
       apikey_internal.rate_limit_summary(k.tenant_rate_limits) AS tenant_rate_limit_summary,
       apikey_internal.rate_limit_summary(k.owner_rate_limits) AS owner_rate_limit_summary
  FROM apikey.keys AS k
  LEFT JOIN apikey.key_usage AS u ON u.key_id OPERATOR(pg_catalog.=) k.key_id
  LEFT JOIN apikey.credits AS c ON c.key_id OPERATOR(pg_catalog.=) k.key_id
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE k.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;
-- Every column of every view says what it holds (\d+ apikey.key_list).
COMMENT ON COLUMN apikey.tenant_list.tenant IS
	'the tenant''s slug, as the functions take it';
COMMENT ON COLUMN apikey.tenant_list.tenant_id IS
	'the tenant''s bigint id, as current_tenant_id() returns it';
COMMENT ON COLUMN apikey.tenant_list.name IS
	'the tenant''s display name';
COMMENT ON COLUMN apikey.tenant_list.environments IS
	'the names of the tenant''s environments';
COMMENT ON COLUMN apikey.tenant_list.key_prefix IS
	'the prefix of the text of the tenant''s keys (ak by default)';
COMMENT ON COLUMN apikey.tenant_list.default_key_lifetime IS
	'the lifetime of a key created without an expiry (NULL: none)';
COMMENT ON COLUMN apikey.tenant_list.max_key_lifetime IS
	'the longest lifetime a key may have (NULL: no limit)';
COMMENT ON COLUMN apikey.tenant_list.rate_limits IS
	'the tenant''s rate limits (name, max_requests, per), a budget shared by its keys; rate_limit_summary shows them as text';
COMMENT ON COLUMN apikey.tenant_list.created_at IS
	'when the tenant was created';
COMMENT ON COLUMN apikey.tenant_list.created_by IS
	'the role that created it';
COMMENT ON COLUMN apikey.tenant_list.rate_limit_summary IS
	'the tenant''s rate limits as text, e.g. "api 5000/1 min" (NULL: none)';
COMMENT ON COLUMN apikey.usage_stats.tenant IS
	'the slug of the key''s tenant';
COMMENT ON COLUMN apikey.usage_stats.key_id IS
	'the key verified';
COMMENT ON COLUMN apikey.usage_stats.hour IS
	'the hour (UTC) of the verifications';
COMMENT ON COLUMN apikey.usage_stats.status IS
	'their outcome: valid, or why not (not_found there means a wrong secret for this key id)';
COMMENT ON COLUMN apikey.usage_stats.verifications IS
	'how many verifications of the key had that outcome in that hour';
COMMENT ON COLUMN apikey.usage_stats.tenant_id IS
	'the tenant''s bigint id, as current_tenant_id() returns it';
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
COMMENT ON COLUMN apikey.vendor_meta_field_list.tenant IS
	'the slug of the tenant';
COMMENT ON COLUMN apikey.vendor_meta_field_list.field IS
	'a top-level field of the keys'' meta that only full administrators set';
COMMENT ON COLUMN apikey.vendor_meta_field_list.tenant_id IS
	'the tenant''s bigint id, as current_tenant_id() returns it';
COMMENT ON COLUMN apikey.import_conflicts.tenant IS
	'the slug of the tenant of the imported key';
COMMENT ON COLUMN apikey.import_conflicts.key_id IS
	'the imported key, which does not verify while the conflict lasts';
COMMENT ON COLUMN apikey.import_conflicts.name IS
	'the imported key''s name';
COMMENT ON COLUMN apikey.import_conflicts.created_at IS
	'when the key was imported';
COMMENT ON COLUMN apikey.import_conflicts.created_by IS
	'who imported it';
COMMENT ON COLUMN apikey.import_conflicts.other_tenant IS
	'the slug of the other tenant that imported the same text';
COMMENT ON COLUMN apikey.import_conflicts.other_key_id IS
	'the other tenant''s key with the same text';
COMMENT ON COLUMN apikey.key_list.key_id IS
	'the key''s public id: 11 base62 characters, also the start of its text; not a secret';
COMMENT ON COLUMN apikey.key_list.tenant IS
	'the slug of the key''s tenant';
COMMENT ON COLUMN apikey.key_list.environment IS
	'the environment the key is valid in (e.g. production, preview)';
COMMENT ON COLUMN apikey.key_list.name IS
	'the key''s name, from create_key or rename_key';
COMMENT ON COLUMN apikey.key_list.description IS
	'free text from create_key or describe_key';
COMMENT ON COLUMN apikey.key_list.hint IS
	'a fragment of the key text for a person to recognise it (e.g. ak_live_…nWl3), never enough to use it';
COMMENT ON COLUMN apikey.key_list.scopes IS
	'the key''s own scopes (effective_scopes adds those of its key roles)';
COMMENT ON COLUMN apikey.key_list.resource IS
	'the one resource the key is restricted to, when it is exactly one (resources lists them all)';
COMMENT ON COLUMN apikey.key_list.status IS
	'active, revoked or expired';
COMMENT ON COLUMN apikey.key_list.created_at IS
	'when the key was created';
COMMENT ON COLUMN apikey.key_list.created_by IS
	'who created it: the actor named by set_actor or act_for, else the role';
COMMENT ON COLUMN apikey.key_list.expires_at IS
	'when the key stops verifying (NULL: never)';
COMMENT ON COLUMN apikey.key_list.revoked_at IS
	'when the key was revoked (NULL: it is not)';
COMMENT ON COLUMN apikey.key_list.revoked_reason IS
	'the reason given when the key was revoked';
COMMENT ON COLUMN apikey.key_list.rolled_at IS
	'when roll_key last gave the key a new secret';
COMMENT ON COLUMN apikey.key_list.previous_secret_expires_at IS
	'until when the secret roll_key replaced still verifies (NULL: it does not)';
COMMENT ON COLUMN apikey.key_list.last_used_at IS
	'the key''s last valid verification, as the usage writer recorded it (NULL: none recorded)';
COMMENT ON COLUMN apikey.key_list.tenant_id IS
	'the tenant''s bigint id, as current_tenant_id() returns it';
COMMENT ON COLUMN apikey.key_list.owner IS
	'the application''s id of the person or account the key belongs to';
COMMENT ON COLUMN apikey.key_list.meta IS
	'the application''s data about the key, returned by verification';
COMMENT ON COLUMN apikey.key_list.key_roles IS
	'the tenant''s key roles the key has (their scopes are in effective_scopes)';
COMMENT ON COLUMN apikey.key_list.effective_scopes IS
	'the scopes verification checks: the key''s own and those of its key roles';
COMMENT ON COLUMN apikey.key_list.resources IS
	'the resources the key is restricted to, "type:id" or "type:*" (NULL: unrestricted)';
COMMENT ON COLUMN apikey.key_list.allowed_ips IS
	'the networks the key may be used from (NULL: anywhere)';
COMMENT ON COLUMN apikey.key_list.rate_limits IS
	'the key''s own rate limits (name, max_requests, per); rate_limit_summary shows them as text';
COMMENT ON COLUMN apikey.key_list.tenant_rate_limits IS
	'the tenant''s rate limits, a budget shared by its keys; tenant_rate_limit_summary shows them as text';
COMMENT ON COLUMN apikey.key_list.remaining IS
	'credits left, counting a refill that is due (NULL: the key has no credits)';
COMMENT ON COLUMN apikey.key_list.refill_amount IS
	'the credits a refill sets remaining to (NULL: no refill)';
COMMENT ON COLUMN apikey.key_list.refill_every IS
	'how often credits are refilled (NULL: never)';
COMMENT ON COLUMN apikey.key_list.imported IS
	'whether the key text came from another system (import_key); false once rolled';
COMMENT ON COLUMN apikey.key_list.rate_limit_summary IS
	'the key''s own rate limits as text, e.g. "burst 20/1 s, hourly 1000/1 h" (NULL: none)';
COMMENT ON COLUMN apikey.key_list.tenant_rate_limit_summary IS
	'the tenant''s rate limits on this key as text, e.g. "api 5000/1 min" (NULL: none)';
COMMENT ON COLUMN apikey.key_list.owner_rate_limits IS
	'the rate limits of the key''s owner, a budget shared by all of that owner''s keys (set_owner_rate_limit); owner_rate_limit_summary shows them as text';
COMMENT ON COLUMN apikey.key_list.owner_rate_limit_summary IS
	'the owner''s rate limits on this key as text, e.g. "api 100/1 min" (NULL: none)';
COMMENT ON COLUMN apikey.audit_log.event_id IS
	'the event''s number, increasing in the order the events were written';
COMMENT ON COLUMN apikey.audit_log.at IS
	'when the change was made';
COMMENT ON COLUMN apikey.audit_log.action IS
	'what was done: created, renamed, revoked, reactivated, rolled, deleted, leaked, …';
COMMENT ON COLUMN apikey.audit_log.tenant IS
	'the slug of the tenant concerned';
COMMENT ON COLUMN apikey.audit_log.key_id IS
	'the key concerned (NULL: a tenant''s event); kept after the key is deleted';
COMMENT ON COLUMN apikey.audit_log.actor_role IS
	'the role that made the change (the caller''s, not a SECURITY DEFINER function''s owner)';
COMMENT ON COLUMN apikey.audit_log.actor_key_id IS
	'the authenticated key the change was made with, a tenant administrator''s (NULL: none)';
COMMENT ON COLUMN apikey.audit_log.details IS
	'what changed, as JSON; never a secret';
COMMENT ON COLUMN apikey.audit_log.tenant_id IS
	'the tenant''s bigint id, as current_tenant_id() returns it';
COMMENT ON COLUMN apikey.audit_log.actor IS
	'the person named by set_actor or act_for in that transaction (NULL: none)';

-- The functions of 0.3.0 not replaced above whose bodies call internal
-- functions, with their new names (apikey_internal.name; a parameter
-- qualified with the function's own name, as name.parameter).  The text
-- of sql/apikey/*.sql.

CREATE OR REPLACE FUNCTION apikey_internal.audit(action text, tenant_id bigint, tenant text,
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

CREATE OR REPLACE FUNCTION apikey_internal.authorize_admin() RETURNS void LANGUAGE plpgsql STABLE
AS $$
BEGIN
	IF apikey.current_tenant_id() IS NOT NULL OR NOT apikey.is_admin() THEN
		PERFORM apikey_internal.deny('permission denied: only an apikey administrator may do this');
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION apikey_internal.authorize_tenant(slug text) RETURNS apikey.tenants
	LANGUAGE plpgsql STABLE
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	slug := apikey_internal.authorized_tenant(slug);
	SELECT * INTO t FROM apikey.tenants AS x WHERE x.slug = authorize_tenant.slug;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % does not exist', apikey_internal.shown(slug) USING ERRCODE = 'undefined_object';
	END IF;
	RETURN t;
END
$$;

CREATE OR REPLACE FUNCTION apikey_internal.environment(t apikey.tenants, name text)
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

CREATE OR REPLACE FUNCTION apikey_internal.check_key_policy(default_key_lifetime interval,
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

CREATE OR REPLACE FUNCTION apikey_internal.new_public_key(tenant_id bigint, environment text, tag text)
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

CREATE OR REPLACE FUNCTION apikey_internal.add_environment(t apikey.tenants, name text, tag text)
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

CREATE OR REPLACE FUNCTION apikey.create_tenant(slug text, name text DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION apikey.create_environment(tenant text, name text, tag text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey_internal.authorize_admin();
	t := apikey_internal.authorize_tenant(tenant);
	PERFORM apikey_internal.add_environment(t, name, tag);
END
$$;

CREATE OR REPLACE FUNCTION apikey.set_key_policy(tenant text, default_key_lifetime interval,
		max_key_lifetime interval, key_prefix text DEFAULT 'ak')
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey_internal.authorize_admin();
	t := apikey_internal.authorize_tenant(tenant);
	PERFORM apikey_internal.check_key_policy(default_key_lifetime, max_key_lifetime, key_prefix);
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

CREATE OR REPLACE FUNCTION apikey.public_key(tenant text, environment text)
	RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e apikey.environments := apikey_internal.environment(apikey_internal.authorize_tenant(tenant), environment);
BEGIN
	PERFORM apikey_internal.authorize(tenant, e.name, NULL, NULL);
	RETURN (SELECT p.public_key FROM apikey.public_keys AS p
	         WHERE p.tenant_id = e.tenant_id AND p.environment = e.name);
END
$$;

CREATE OR REPLACE FUNCTION apikey.regenerate_public_key(tenant text, environment text)
	RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant);
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

CREATE OR REPLACE FUNCTION apikey_internal.authorize_key(key_id apikey.key_id) RETURNS apikey.keys
	LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	k apikey.keys;
BEGIN
	PERFORM apikey_internal.authorized_tenant(coalesce(apikey.current_tenant(), ''));
	IF key_id IS NULL THEN
		RAISE EXCEPTION 'key_id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO k FROM apikey.keys AS x
	 WHERE x.key_id = authorize_key.key_id
	   AND (apikey.current_tenant_id() IS NULL OR x.tenant_id = apikey.current_tenant_id())
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key % does not exist', key_id USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.authorize(k.tenant, k.environment, k.effective_scopes, k.resources);
	RETURN k;
END
$$;

CREATE OR REPLACE FUNCTION apikey_internal.expiry(slug text, expires_in interval, default_lifetime interval,
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

CREATE OR REPLACE FUNCTION apikey.rename_key(key_id apikey.key_id, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
BEGIN
	name := apikey_internal.checked_label('key name', name, 200, true);
	UPDATE apikey.keys AS x SET name = rename_key.name WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('renamed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.name, 'to', name));
END
$$;

CREATE OR REPLACE FUNCTION apikey.describe_key(key_id apikey.key_id, description text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
BEGIN
	description := apikey_internal.checked_label('description', description, 1000, false);
	UPDATE apikey.keys AS x SET description = describe_key.description WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('described', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.description, 'to', description));
END
$$;

CREATE OR REPLACE FUNCTION apikey.reactivate_key(key_id apikey.key_id)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
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

CREATE OR REPLACE FUNCTION apikey.set_key_expiry(key_id apikey.key_id, expires_at timestamptz)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
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

CREATE OR REPLACE FUNCTION apikey_internal.with_rate_limit(limits apikey.rate_limit[], name text,
		max_requests integer, per interval)
	RETURNS apikey.rate_limit[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT pg_catalog.array_agg(ROW(l.name, l.max_requests, l.per)::apikey.rate_limit ORDER BY l.name)
	  FROM (SELECT x.name, x.max_requests, x.per FROM pg_catalog.unnest(limits) AS x
	         WHERE x.name OPERATOR(pg_catalog.<>) with_rate_limit.name
	        UNION ALL
	        SELECT with_rate_limit.name, with_rate_limit.max_requests, with_rate_limit.per
	         WHERE with_rate_limit.max_requests IS NOT NULL) AS l
$$;

CREATE OR REPLACE FUNCTION apikey_internal.rate_limit_details(limits apikey.rate_limit[], name text)
	RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT pg_catalog.jsonb_build_object('max_requests', x.max_requests, 'per', x.per)
	  FROM pg_catalog.unnest(limits) AS x
	 WHERE x.name OPERATOR(pg_catalog.=) rate_limit_details.name
$$;

CREATE OR REPLACE FUNCTION apikey_internal.set_tenant_rate_limits(t apikey.tenants, name text,
		max_requests integer, per interval, action text)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	old apikey.rate_limit[];
	limits apikey.rate_limit[];
	changed bigint;
BEGIN
	PERFORM apikey_internal.require('tenant', t.tenant_id IS NOT NULL);
	SELECT x.rate_limits INTO old FROM apikey.tenants AS x WHERE x.tenant_id = t.tenant_id FOR UPDATE;
	limits := apikey_internal.with_rate_limit(old, name, max_requests, per);
	IF cardinality(limits) > 8 THEN
		RAISE EXCEPTION 'tenant "%" already has 8 rate limits', t.slug
			USING ERRCODE = 'program_limit_exceeded',
			      HINT = 'Replace one (same name) or remove one first.';
	END IF;
	UPDATE apikey.tenants AS x SET rate_limits = limits WHERE x.tenant_id = t.tenant_id;
	UPDATE apikey.keys AS k SET tenant_rate_limits = limits
	 WHERE k.tenant_id = t.tenant_id AND k.tenant_rate_limits IS DISTINCT FROM limits;
	GET DIAGNOSTICS changed = ROW_COUNT;
	PERFORM apikey_internal.audit(action, t.tenant_id, t.slug, NULL,
		jsonb_build_object('name', name,
		                   'from', apikey_internal.rate_limit_details(old, name),
		                   'to', apikey_internal.rate_limit_details(limits, name),
		                   'keys', changed));
END
$$;

CREATE OR REPLACE FUNCTION apikey.set_tenant_rate_limit(tenant text, name text, max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey_internal.authorize_admin();
	t := apikey_internal.authorize_tenant(tenant);
	PERFORM apikey_internal.check_rate_limit(name, max_requests, per);
	PERFORM apikey_internal.set_tenant_rate_limits(t, name, max_requests, per, 'tenant_rate_limit_set');
END
$$;

CREATE OR REPLACE FUNCTION apikey.remove_tenant_rate_limit(tenant text, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey_internal.authorize_admin();
	t := apikey_internal.authorize_tenant(tenant);
	IF apikey_internal.rate_limit_details(t.rate_limits, name) IS NULL THEN
		RAISE EXCEPTION 'tenant "%" has no rate limit %', t.slug, apikey_internal.shown(name)
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.set_tenant_rate_limits(t, name, NULL, NULL, 'tenant_rate_limit_removed');
END
$$;

CREATE OR REPLACE FUNCTION apikey_internal.charge_credits(key_id apikey.key_id, cost integer, at timestamptz)
	RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c apikey.credits;
	refilled boolean := false;
	left_over bigint;
BEGIN
	IF cost IS NULL OR cost < 0 OR at IS NULL THEN
		RAISE EXCEPTION 'cost must be at least 0, and at must not be null'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- the common case in one statement: enough credits, no refill due
	IF cost > 0 THEN
		UPDATE apikey.credits AS x SET remaining = x.remaining - cost
		 WHERE x.key_id = charge_credits.key_id AND x.remaining >= cost
		   AND (x.next_refill_at IS NULL OR x.next_refill_at > at)
		RETURNING x.remaining INTO left_over;
		IF FOUND THEN
			RETURN left_over;
		END IF;
		SELECT * INTO c FROM apikey.credits AS x WHERE x.key_id = charge_credits.key_id FOR UPDATE;
	ELSE
		SELECT * INTO c FROM apikey.credits AS x WHERE x.key_id = charge_credits.key_id;
	END IF;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	IF c.next_refill_at <= at THEN
		c.remaining := c.refill_amount;
		c.next_refill_at := apikey_internal.next_refill(c.refill_anchor, c.refill_every, at);
		refilled := true;
	END IF;
	IF c.remaining < greatest(cost, 1) THEN
		RETURN -1 - c.remaining;
	END IF;
	IF cost > 0 THEN
		UPDATE apikey.credits AS x
		   SET remaining = c.remaining - cost,
		       refilled_at = CASE WHEN refilled THEN at ELSE x.refilled_at END,
		       next_refill_at = c.next_refill_at
		 WHERE x.key_id = charge_credits.key_id;
	END IF;
	RETURN c.remaining - cost;
END
$$;

CREATE OR REPLACE FUNCTION apikey_internal.checked_resources(resources text[]) RETURNS text[]
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

CREATE OR REPLACE FUNCTION apikey_internal.checked_role_name(name text) RETURNS text
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

CREATE OR REPLACE FUNCTION apikey_internal.checked_key_roles(tenant_id bigint, tenant text, key_roles text[])
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

CREATE OR REPLACE FUNCTION apikey_internal.effective_scopes(tenant_id bigint, scopes text[], key_roles text[])
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

CREATE OR REPLACE FUNCTION apikey.set_key_scopes(key_id apikey.key_id, scopes text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
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

CREATE OR REPLACE FUNCTION apikey.set_key_roles(key_id apikey.key_id, key_roles text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
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

CREATE OR REPLACE FUNCTION apikey.set_key_resources(key_id apikey.key_id, resources text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
	new_resources text[] := apikey_internal.checked_resources(resources);
BEGIN
	PERFORM apikey_internal.authorize(k.tenant, k.environment, k.effective_scopes, new_resources);
	UPDATE apikey.keys AS x SET resources = new_resources WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('resources_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.resources, 'to', new_resources));
END
$$;

CREATE OR REPLACE FUNCTION apikey.set_key_owner(key_id apikey.key_id, owner text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id);
BEGIN
	owner := apikey_internal.checked_label('owner', owner, 200, owner IS NOT NULL);
	UPDATE apikey.keys AS x SET owner = set_key_owner.owner WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('owner_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.owner, 'to', owner));
END
$$;

CREATE OR REPLACE FUNCTION apikey.create_key_role(tenant text, name text, scopes text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant);
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

CREATE OR REPLACE FUNCTION apikey_internal.lock_key_role(t apikey.tenants, name text)
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

CREATE OR REPLACE FUNCTION apikey.set_key_role_scopes(tenant text, name text, scopes text[])
	RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant);
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

CREATE OR REPLACE FUNCTION apikey.drop_key_role(tenant text, name text, detach boolean DEFAULT false)
	RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant);
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

CREATE OR REPLACE FUNCTION apikey.grant_leak_reporter(role regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM apikey_internal.check_role(role);
	EXECUTE format('GRANT USAGE ON SCHEMA apikey TO %s', role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION apikey.report_leak(text, text) TO %s', role);
END
$$;

COMMENT ON VIEW apikey.key_list IS
	'API keys for humans: name, hint, scopes, status (active, revoked, expired), dates; never a hash or a secret';

CREATE OR REPLACE FUNCTION apikey.grant_verifier(role regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM apikey_internal.check_role(role);
	EXECUTE format('GRANT USAGE ON SCHEMA apikey TO %s', role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION
		apikey.verify(text, text, text, text, integer, inet),
		apikey.authenticate(text, text, integer, inet),
		apikey.identify(text),
		apikey.create_key(text, text, text, text, text[], interval, text, text, jsonb, text[], text[], cidr[]),
		apikey.rename_key(apikey.key_id, text),
		apikey.describe_key(apikey.key_id, text),
		apikey.revoke_key(apikey.key_id, text, boolean),
		apikey.reactivate_key(apikey.key_id),
		apikey.delete_key(apikey.key_id),
		apikey.roll_key(apikey.key_id, interval),
		apikey.set_key_expiry(apikey.key_id, timestamptz),
		apikey.public_key(text, text),
		apikey.regenerate_public_key(text, text),
		apikey.set_key_scopes(apikey.key_id, text[]), apikey.set_key_roles(apikey.key_id, text[]),
		apikey.set_key_resources(apikey.key_id, text[]), apikey.set_key_owner(apikey.key_id, text),
		apikey.set_key_meta(apikey.key_id, jsonb), apikey.set_key_allowed_ips(apikey.key_id, cidr[]),
		apikey.revoke_owner_keys(text, text, text),
		apikey.confirm_revocations(),
		apikey.create_key_role(text, text, text[]), apikey.set_key_role_scopes(text, text, text[]),
		apikey.drop_key_role(text, text, boolean),
		apikey.set_actor(text),
		apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text),
		apikey.expiring_keys(interval),
		apikey.set_rate_limit(apikey.key_id, text, integer, interval),
		apikey.remove_rate_limit(apikey.key_id, text),
		apikey.set_credits(apikey.key_id, bigint, bigint, interval),
		apikey.add_credits(apikey.key_id, bigint),
		apikey.rate_limit_take(text, text, integer, interval, integer),
		apikey.set_owner_rate_limit(text, text, text, integer, interval),
		apikey.remove_owner_rate_limit(text, text, text)
		TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.key_list, apikey.audit_log, apikey.key_role_list TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.tenant_list, apikey.usage_stats TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.vendor_meta_field_list TO %s', role);
END
$$;
COMMENT ON FUNCTION apikey.grant_verifier(regrole) IS
	'let a role (the application''s) verify and authenticate keys; it manages keys only of the tenant of an authenticated apikey:admin key';

-- The new functions for grant_verifier's roles (as identified above; the
-- roles grant_admin set up are among them), to no other role.
DO $$
DECLARE
	r pg_catalog.regrole;
BEGIN
	FOR r IN
		SELECT a.grantee
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.identify(text)',
		       'apikey.rename_key(apikey.key_id, text)', 'apikey.describe_key(apikey.key_id, text)',
		       'apikey.reactivate_key(apikey.key_id)', 'apikey.delete_key(apikey.key_id)',
		       'apikey.roll_key(apikey.key_id, interval)', 'apikey.set_key_expiry(apikey.key_id, timestamptz)',
		       'apikey.public_key(text, text)', 'apikey.regenerate_public_key(text, text)',
		       'apikey.set_key_meta(apikey.key_id, jsonb)', 'apikey.set_rate_limit(apikey.key_id, text, integer, interval)']::pg_catalog.regprocedure[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT p.oid) OPERATOR(pg_catalog.=) 11
		INTERSECT
		SELECT a.grantee
		  FROM pg_catalog.pg_class AS c, pg_catalog.aclexplode(c.relacl) AS a
		 WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.key_list', 'apikey.audit_log']::pg_catalog.regclass[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT c.oid) OPERATOR(pg_catalog.=) 2
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION
			apikey.rate_limit_take(text, text, integer, interval, integer),
			apikey.set_owner_rate_limit(text, text, text, integer, interval),
			apikey.remove_owner_rate_limit(text, text, text) TO %s', r);
	END LOOP;
END
$$;


-- Tenant members (issue 23, items 1 and 2)
-- Tenant members (issue 23): the application's dashboard role acts for
-- one member of one tenant per transaction (grant_delegate, act_for), and
-- rights finer than apikey:admin, the same words for members and for the
-- scopes of tenant administrators' keys (authz.c, delegation.c).  Every
-- management function names the right it needs; the listings show a
-- caller on a tenant's side the rows of its environments (and, with
-- apikey:keys:own, of its own keys).

CREATE OR REPLACE FUNCTION apikey_internal.authorized_tenant(slug text, "right" text) RETURNS text
	AS 'MODULE_PATHNAME', 'authorized_tenant' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.authorized_tenant(text, text) IS
	'internal: the slug, if the caller may use the right (apikey:keys:create, ...) on that tenant; raises 42501 otherwise';

CREATE OR REPLACE FUNCTION apikey_internal.authorize(tenant text, environment text, scopes text[], resources text[])
	RETURNS void
	AS 'MODULE_PATHNAME', 'authorize' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.authorize(text, text, text[], text[]) IS
	'internal: the rule of every management function (tenant, environment, scopes and resources covered by a tenant administrator''s key or a member''s rights); raises 42501 otherwise';

CREATE OR REPLACE FUNCTION apikey_internal.authorize_owner(owner text) RETURNS void
	AS 'MODULE_PATHNAME', 'authorize_owner' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.authorize_owner(text) IS
	'internal: with apikey:keys:own, raises 42501 unless owner is the caller (the member, or the key''s owner)';

CREATE OR REPLACE FUNCTION apikey_internal.owned_by() RETURNS text
	AS 'MODULE_PATHNAME', 'owned_by_caller' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.owned_by() IS
	'internal: the owner a caller restricted to its own keys (apikey:keys:own) gives new keys, or NULL';

CREATE OR REPLACE FUNCTION apikey_internal.acting_tenant_id() RETURNS bigint
	AS 'MODULE_PATHNAME', 'acting_tenant_id' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.acting_tenant_id() IS
	'internal: the tenant of a caller on a tenant''s side (an authenticated key, or act_for), else NULL';

CREATE OR REPLACE FUNCTION apikey_internal.acting_tenant() RETURNS text
	AS 'MODULE_PATHNAME', 'acting_tenant' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.acting_tenant() IS
	'internal: the slug of the tenant of a caller on a tenant''s side, else NULL';

CREATE OR REPLACE FUNCTION apikey_internal.sees(tenant_id bigint, environment text, owner text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'sees' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.sees(bigint, text, text) IS
	'internal: may a caller on a tenant''s side read a listing''s row of a key of this tenant, environment and owner (apikey:keys:read)?';

CREATE OR REPLACE FUNCTION apikey_internal.sees_tenant(tenant_id bigint) RETURNS boolean
	AS 'MODULE_PATHNAME', 'sees_tenant' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.sees_tenant(bigint) IS
	'internal: may a caller on a tenant''s side read a listing''s row of this tenant about no key (apikey:keys:read)?';

REVOKE EXECUTE ON FUNCTION apikey_internal.authorized_tenant(text, text), apikey_internal.authorize_owner(text),
	apikey_internal.owned_by(), apikey_internal.acting_tenant(),
	apikey_internal.acting_tenant_id(), apikey_internal.sees(bigint, text, text), apikey_internal.sees_tenant(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	apikey_internal.acting_tenant_id(), apikey_internal.sees(bigint, text, text), apikey_internal.sees_tenant(bigint)
	TO PUBLIC;

CREATE OR REPLACE FUNCTION apikey_internal.authorize_admin() RETURNS void LANGUAGE plpgsql STABLE
AS $$
BEGIN
	IF apikey_internal.acting_tenant_id() IS NOT NULL OR NOT apikey.is_admin() THEN
		PERFORM apikey_internal.deny('permission denied: only an apikey administrator may do this');
	END IF;
END
$$;
COMMENT ON FUNCTION apikey_internal.authorize_admin() IS
	'internal: raise unless the caller is a full administrator (not acting as a key or for a member)';

CREATE OR REPLACE FUNCTION apikey_internal.authorize_tenant(slug text, "right" text) RETURNS apikey.tenants
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

CREATE OR REPLACE FUNCTION apikey.create_environment(tenant text, name text, tag text)
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

CREATE OR REPLACE FUNCTION apikey.set_key_policy(tenant text, default_key_lifetime interval,
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

CREATE OR REPLACE FUNCTION apikey.public_key(tenant text, environment text)
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

CREATE OR REPLACE FUNCTION apikey.regenerate_public_key(tenant text, environment text)
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

CREATE OR REPLACE FUNCTION apikey_internal.authorize_key(key_id apikey.key_id, "right" text) RETURNS apikey.keys
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

CREATE OR REPLACE FUNCTION apikey.create_key(tenant text, environment text, name text,
		description text DEFAULT NULL, scopes text[] DEFAULT '{}',
		expires_in interval DEFAULT NULL, resource text DEFAULT NULL,
		owner text DEFAULT NULL, meta jsonb DEFAULT NULL, key_roles text[] DEFAULT '{}',
		resources text[] DEFAULT NULL, allowed_ips cidr[] DEFAULT NULL,
		OUT key_id apikey.key_id, OUT api_key text, OUT hint text, OUT expires_at timestamptz)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
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
	    ON e.tenant_id = x.tenant_id AND e.name = create_key.environment
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
			ON CONFLICT DO NOTHING
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
COMMENT ON FUNCTION apikey.create_key(text, text, text, text, text[], interval, text,
		text, jsonb, text[], text[], cidr[]) IS
	'create a named key; api_key is the full key text, shown this once and never stored';

CREATE OR REPLACE FUNCTION apikey.rename_key(key_id apikey.key_id, name text)
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

CREATE OR REPLACE FUNCTION apikey.describe_key(key_id apikey.key_id, description text)
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

CREATE OR REPLACE FUNCTION apikey.revoke_key(key_id apikey.key_id, reason text DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION apikey.reactivate_key(key_id apikey.key_id)
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

CREATE OR REPLACE FUNCTION apikey.delete_key(key_id apikey.key_id)
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

CREATE OR REPLACE FUNCTION apikey.roll_key(key_id apikey.key_id, grace interval DEFAULT '0')
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

CREATE OR REPLACE FUNCTION apikey.set_key_expiry(key_id apikey.key_id, expires_at timestamptz)
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

CREATE OR REPLACE FUNCTION apikey.set_rate_limit(key_id apikey.key_id, name text, max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
	limits apikey.rate_limit[];
BEGIN
	PERFORM apikey_internal.check_rate_limit(name, max_requests, per);
	limits := apikey_internal.with_rate_limit(k.rate_limits, name, max_requests, per);
	IF cardinality(limits) > 8 THEN
		RAISE EXCEPTION 'key % already has 8 rate limits', k.key_id
			USING ERRCODE = 'program_limit_exceeded',
			      HINT = 'Replace one (same name) or remove one first.';
	END IF;
	PERFORM apikey_internal.vendor_rate_limit(k, name, false);    -- vendor.sql
	UPDATE apikey.keys AS x SET rate_limits = limits WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('rate_limit_set', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('name', name,
		                   'from', apikey_internal.rate_limit_details(k.rate_limits, name),
		                   'to', apikey_internal.rate_limit_details(limits, name)));
END
$$;
COMMENT ON FUNCTION apikey.set_rate_limit(apikey.key_id, text, integer, interval) IS
	'add or replace a named rate limit of a key: at most max_requests units per interval (per server; needs shared_preload_libraries = apikey)';

CREATE OR REPLACE FUNCTION apikey.remove_rate_limit(key_id apikey.key_id, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
	old jsonb := apikey_internal.rate_limit_details(k.rate_limits, name);
	limits apikey.rate_limit[];
BEGIN
	IF old IS NULL THEN
		RAISE EXCEPTION 'key % has no rate limit %', k.key_id, apikey_internal.shown(name)
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.vendor_rate_limit(k, name, true);    -- vendor.sql
	limits := apikey_internal.with_rate_limit(k.rate_limits, name, NULL, NULL);
	UPDATE apikey.keys AS x SET rate_limits = limits WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('rate_limit_removed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('name', name, 'from', old));
END
$$;
COMMENT ON FUNCTION apikey.remove_rate_limit(apikey.key_id, text) IS
	'remove a named rate limit of a key';

CREATE OR REPLACE FUNCTION apikey.set_tenant_rate_limit(tenant text, name text, max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey_internal.authorize_admin();
	t := apikey_internal.authorize_tenant(tenant, 'apikey:admin');
	PERFORM apikey_internal.check_rate_limit(name, max_requests, per);
	PERFORM apikey_internal.set_tenant_rate_limits(t, name, max_requests, per, 'tenant_rate_limit_set');
END
$$;
COMMENT ON FUNCTION apikey.set_tenant_rate_limit(text, text, integer, interval) IS
	'add or replace a named rate limit shared by all of a tenant''s keys: at most max_requests units per interval together (full administrators only)';

CREATE OR REPLACE FUNCTION apikey.remove_tenant_rate_limit(tenant text, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey_internal.authorize_admin();
	t := apikey_internal.authorize_tenant(tenant, 'apikey:admin');
	IF apikey_internal.rate_limit_details(t.rate_limits, name) IS NULL THEN
		RAISE EXCEPTION 'tenant "%" has no rate limit %', t.slug, apikey_internal.shown(name)
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.set_tenant_rate_limits(t, name, NULL, NULL, 'tenant_rate_limit_removed');
END
$$;
COMMENT ON FUNCTION apikey.remove_tenant_rate_limit(text, text) IS
	'remove a named rate limit of a tenant (full administrators only)';

CREATE OR REPLACE FUNCTION apikey.set_credits(key_id apikey.key_id, remaining bigint,
		refill_amount bigint DEFAULT NULL, refill_every interval DEFAULT NULL)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
	old apikey.credits;
	next_refill timestamptz;
BEGIN
	IF remaining IS NULL AND (refill_amount IS NOT NULL OR refill_every IS NOT NULL) THEN
		RAISE EXCEPTION 'a key without credits (remaining NULL: unlimited) has no refill'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF remaining < 0 OR refill_amount < 0 THEN
		RAISE EXCEPTION 'remaining and refill_amount must not be negative'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF (refill_amount IS NULL) <> (refill_every IS NULL) THEN
		RAISE EXCEPTION 'refill_amount and refill_every go together'
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'E.g. refill_amount => 1000, refill_every => ''1 month''.';
	END IF;
	IF refill_every IS NOT NULL THEN
		PERFORM apikey_internal.check_lifetime('refill_every', refill_every);
		next_refill := apikey_internal.next_refill(now(), refill_every, now());
	END IF;
	PERFORM apikey_internal.vendor_credits(k, remaining, NULL);    -- vendor.sql
	SELECT * INTO old FROM apikey.credits AS c WHERE c.key_id = k.key_id FOR UPDATE;
	IF remaining IS NULL THEN
		DELETE FROM apikey.credits AS c WHERE c.key_id = k.key_id;
	ELSE
		INSERT INTO apikey.credits AS c (key_id, remaining, refill_amount, refill_every,
		                                 refilled_at, refill_anchor, next_refill_at)
		VALUES (k.key_id, remaining, refill_amount, refill_every, now(),
		        CASE WHEN refill_every IS NOT NULL THEN now() END, next_refill)
		ON CONFLICT ON CONSTRAINT credits_pkey DO UPDATE
		   SET remaining = excluded.remaining, refill_amount = excluded.refill_amount,
		       refill_every = excluded.refill_every, refilled_at = excluded.refilled_at,
		       refill_anchor = excluded.refill_anchor, next_refill_at = excluded.next_refill_at;
	END IF;
	IF k.has_credits IS DISTINCT FROM (remaining IS NOT NULL) THEN
		UPDATE apikey.keys AS x SET has_credits = (remaining IS NOT NULL) WHERE x.key_id = k.key_id;
	END IF;
	PERFORM apikey_internal.audit('credits_set', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object(
			'from', CASE WHEN old.key_id IS NOT NULL THEN jsonb_build_object(
				'remaining', old.remaining, 'refill_amount', old.refill_amount, 'refill_every', old.refill_every) END,
			'to', CASE WHEN remaining IS NOT NULL THEN jsonb_build_object(
				'remaining', remaining, 'refill_amount', refill_amount, 'refill_every', refill_every) END));
END
$$;
COMMENT ON FUNCTION apikey.set_credits(apikey.key_id, bigint, bigint, interval) IS
	'make a key usage-limited: remaining credits (NULL: unlimited, the default), refilled to refill_amount every refill_every';

CREATE OR REPLACE FUNCTION apikey.add_credits(key_id apikey.key_id, amount bigint)
	RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
	c apikey.credits;
	at timestamptz := statement_timestamp();
BEGIN
	IF amount IS NULL THEN
		RAISE EXCEPTION 'amount must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM apikey_internal.vendor_credits(k, NULL, amount);    -- vendor.sql
	SELECT * INTO c FROM apikey.credits AS x WHERE x.key_id = k.key_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key % has no credits (it is unlimited)', k.key_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Give it credits with apikey.set_credits.';
	END IF;
	IF c.next_refill_at <= at THEN
		c.remaining := c.refill_amount;
		c.refilled_at := at;
		c.next_refill_at := apikey_internal.next_refill(c.refill_anchor, c.refill_every, at);
	END IF;
	IF c.remaining + amount < 0 THEN
		RAISE EXCEPTION 'key % has % credits: cannot take % away', k.key_id, c.remaining, -amount
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE apikey.credits AS x
	   SET remaining = c.remaining + amount, refilled_at = c.refilled_at, next_refill_at = c.next_refill_at
	 WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('credits_added', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('amount', amount, 'remaining', c.remaining + amount));
	RETURN c.remaining + amount;
END
$$;
COMMENT ON FUNCTION apikey.add_credits(apikey.key_id, bigint) IS
	'add credits to a usage-limited key (a negative amount takes some away); returns the credits left';

CREATE OR REPLACE FUNCTION apikey.set_key_scopes(key_id apikey.key_id, scopes text[])
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

CREATE OR REPLACE FUNCTION apikey.set_key_roles(key_id apikey.key_id, key_roles text[])
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

CREATE OR REPLACE FUNCTION apikey.set_key_resources(key_id apikey.key_id, resources text[])
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

CREATE OR REPLACE FUNCTION apikey.set_key_owner(key_id apikey.key_id, owner text)
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

CREATE OR REPLACE FUNCTION apikey.set_key_meta(key_id apikey.key_id, meta jsonb)
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

CREATE OR REPLACE FUNCTION apikey.set_key_allowed_ips(key_id apikey.key_id, allowed_ips cidr[])
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

CREATE OR REPLACE FUNCTION apikey.revoke_owner_keys(tenant text, owner text, reason text DEFAULT NULL)
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

CREATE OR REPLACE FUNCTION apikey.create_key_role(tenant text, name text, scopes text[])
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

CREATE OR REPLACE FUNCTION apikey.set_key_role_scopes(tenant text, name text, scopes text[])
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

CREATE OR REPLACE FUNCTION apikey.drop_key_role(tenant text, name text, detach boolean DEFAULT false)
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

CREATE OR REPLACE FUNCTION apikey_internal.by_tenant() RETURNS boolean
	LANGUAGE sql STABLE
AS $$
	SELECT apikey_internal.acting_tenant_id() IS NOT NULL
$$;
COMMENT ON FUNCTION apikey_internal.by_tenant() IS
	'internal: is the caller a tenant''s own administrator (not the vendor)? The one rule of which controls a caller may lift';

CREATE OR REPLACE FUNCTION apikey.set_vendor_meta_fields(tenant text, fields text[])
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

CREATE OR REPLACE FUNCTION apikey_internal.act_for(tenant_id bigint, tenant text, actor text, rights text[],
		environments text[])
	RETURNS void
	AS 'MODULE_PATHNAME', 'act_for' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey_internal.act_for(bigint, text, text, text[], text[]) IS
	'internal: act for a member until the transaction ends (act_for checks the arguments first)';

CREATE OR REPLACE FUNCTION apikey.act_for(tenant text, actor text, rights text[] DEFAULT '{apikey:admin}',
		environments text[] DEFAULT NULL)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
	checked text[];
	envs text[];
	missing text;
BEGIN
	IF tenant IS NULL OR actor IS NULL OR rights IS NULL THEN
		RAISE EXCEPTION 'tenant, actor and rights must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	actor := apikey_internal.checked_label('actor', actor, 200, true);
	-- the rights, and the scopes the member may give keys: unknown apikey: words are 22023
	checked := apikey_internal.normalized_scopes(rights);
	IF environments IS NOT NULL THEN
		IF array_ndims(environments) > 1 OR array_position(environments, NULL) IS NOT NULL THEN
			RAISE EXCEPTION 'environments must be a one-dimensional array of names without NULL'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		envs := ARRAY(SELECT DISTINCT e FROM unnest(environments) AS e ORDER BY 1);
	END IF;
	SELECT * INTO t FROM apikey.tenants AS x WHERE x.slug = act_for.tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % does not exist', apikey_internal.shown(tenant) USING ERRCODE = 'undefined_object';
	END IF;
	SELECT e INTO missing FROM unnest(envs) AS e
	 WHERE NOT EXISTS (SELECT FROM apikey.environments AS x
	                    WHERE x.tenant_id = t.tenant_id AND x.name = e)
	 ORDER BY 1 LIMIT 1;
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey_internal.shown(missing), t.slug
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.act_for(t.tenant_id, t.slug, actor, checked, envs);
END
$$;
COMMENT ON FUNCTION apikey.act_for(text, text, text[], text[]) IS
	'for the rest of this transaction, manage and list keys only as this member of this tenant may: its rights (apikey:keys:read, ... and the scopes it may give keys), its environments (NULL: all), recorded as actor; once per transaction';

CREATE OR REPLACE FUNCTION apikey.grant_delegate(role name) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r regrole;
BEGIN
	IF role IS NULL THEN
		RAISE EXCEPTION 'role must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT x.oid::regrole INTO r FROM pg_catalog.pg_roles AS x WHERE x.rolname = role;
	IF r IS NULL THEN
		RAISE EXCEPTION 'role "%" does not exist', role USING ERRCODE = 'undefined_object';
	END IF;
	EXECUTE format('GRANT USAGE ON SCHEMA apikey TO %s', r);
	EXECUTE format('GRANT EXECUTE ON FUNCTION
		apikey.act_for(text, text, text[], text[]),
		apikey.create_key(text, text, text, text, text[], interval, text, text, jsonb, text[], text[], cidr[]),
		apikey.rename_key(apikey.key_id, text),
		apikey.describe_key(apikey.key_id, text),
		apikey.revoke_key(apikey.key_id, text, boolean),
		apikey.reactivate_key(apikey.key_id),
		apikey.delete_key(apikey.key_id),
		apikey.roll_key(apikey.key_id, interval),
		apikey.set_key_expiry(apikey.key_id, timestamptz),
		apikey.public_key(text, text),
		apikey.regenerate_public_key(text, text),
		apikey.set_key_scopes(apikey.key_id, text[]), apikey.set_key_roles(apikey.key_id, text[]),
		apikey.set_key_resources(apikey.key_id, text[]), apikey.set_key_owner(apikey.key_id, text),
		apikey.set_key_meta(apikey.key_id, jsonb), apikey.set_key_allowed_ips(apikey.key_id, cidr[]),
		apikey.revoke_owner_keys(text, text, text),
		apikey.create_key_role(text, text, text[]), apikey.set_key_role_scopes(text, text, text[]),
		apikey.drop_key_role(text, text, boolean),
		apikey.create_environment(text, text, text),
		apikey.set_key_policy(text, interval, interval, text),
		apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text),
		apikey.expiring_keys(interval),
		apikey.set_rate_limit(apikey.key_id, text, integer, interval),
		apikey.remove_rate_limit(apikey.key_id, text),
		apikey.set_credits(apikey.key_id, bigint, bigint, interval),
		apikey.add_credits(apikey.key_id, bigint),
		apikey.rate_limit_take(text, text, integer, interval, integer),
		apikey.set_owner_rate_limit(text, text, text, integer, interval),
		apikey.remove_owner_rate_limit(text, text, text)
		TO %s', r);
	EXECUTE format('GRANT SELECT ON apikey.key_list, apikey.audit_log, apikey.key_role_list,
		apikey.tenant_list, apikey.usage_stats, apikey.vendor_meta_field_list TO %s', r);
END
$$;
COMMENT ON FUNCTION apikey.grant_delegate(name) IS
	'let a role (the application''s dashboard) act for tenant members with act_for; by itself it may manage nothing';

CREATE OR REPLACE FUNCTION apikey.import_key(tenant text, environment text, name text,
		api_key text DEFAULT NULL, key_hash bytea DEFAULT NULL,
		description text DEFAULT NULL, scopes text[] DEFAULT '{}',
		expires_at timestamptz DEFAULT NULL, owner text DEFAULT NULL,
		hint text DEFAULT NULL)
	RETURNS apikey.key_id LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant_slug text;
	key_scopes text[];
	t record;
	g record;
	imposed cidr[];    -- the vendor's allowlist the new key stays within
BEGIN
	PERFORM apikey_internal.hide_statement();    -- it may hold the key text
	tenant_slug := apikey_internal.authorized_tenant(tenant, 'apikey:keys:create');
	key_scopes := apikey_internal.normalized_scopes(scopes);
	name := apikey_internal.checked_label('key name', name, 200, true);
	description := apikey_internal.checked_label('description', description, 1000, false);
	owner := apikey_internal.checked_label('owner', coalesce(owner, apikey_internal.owned_by()), 200, false);
	PERFORM apikey_internal.authorize_owner(owner);
	hint := apikey_internal.checked_label('hint', hint, 16, false);
	IF environment IS NULL THEN
		RAISE EXCEPTION 'environment must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT x.tenant_id, x.default_key_lifetime, x.max_key_lifetime, e.tag
	  INTO t
	  FROM apikey.tenants AS x
	  LEFT JOIN apikey.environments AS e
	    ON e.tenant_id = x.tenant_id AND e.name = import_key.environment
	 WHERE x.slug = tenant_slug;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % does not exist', apikey_internal.shown(tenant_slug) USING ERRCODE = 'undefined_object';
	ELSIF t.tag IS NULL THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey_internal.shown(environment), tenant_slug
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.authorize(tenant_slug, environment, key_scopes, NULL);
	imposed := apikey_internal.imposed_allowed_ips(NULL);    -- vendor.sql
	-- the tenant's policy, as for a key created now
	IF expires_at IS NULL AND t.default_key_lifetime IS NOT NULL THEN
		expires_at := now() + t.default_key_lifetime;
	END IF;
	IF t.max_key_lifetime IS NOT NULL AND (expires_at IS NULL OR expires_at > now() + t.max_key_lifetime) THEN
		RAISE EXCEPTION 'keys of tenant "%" must expire within % from now', tenant_slug, t.max_key_lifetime
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	LOOP
		g := apikey_internal.import_key_text(api_key, key_hash);
		INSERT INTO apikey.keys (key_id, tenant_id, tenant, environment, key_hash, hint,
		                         name, description, scopes, effective_scopes, expires_at,
		                         created_by, owner, imported, allowed_ips)
		VALUES (g.key_id, t.tenant_id, tenant_slug, environment, g.hash, coalesce(hint, g.hint),
		        name, description, key_scopes, key_scopes, expires_at,
		        apikey_internal.caller()::text, owner, true, imposed)
		ON CONFLICT DO NOTHING;
		EXIT WHEN FOUND;    -- a key id already taken (1 in 2^64 per key): draw again
	END LOOP;
	IF imposed IS NOT NULL THEN
		INSERT INTO apikey.key_vendor_controls (key_id, allowed_ips) VALUES (g.key_id, imposed);
	END IF;
	-- unique within the tenant; another tenant's import of the same text is
	-- neither an error nor a hint here (see apikey.import_conflicts)
	INSERT INTO apikey.imported_keys (key_hash, key_id, tenant_id) VALUES (g.hash, g.key_id, t.tenant_id)
	ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'a key with this text was imported before' USING ERRCODE = 'unique_violation',
			HINT = 'Each imported key text (or hash) is imported once per tenant.';
	END IF;
	PERFORM apikey_internal.audit('imported', t.tenant_id, tenant_slug, g.key_id,
		jsonb_build_object('environment', environment, 'name', name, 'scopes', key_scopes,
		                   'expires_at', expires_at, 'owner', owner,
		                   'by', CASE WHEN api_key IS NOT NULL THEN 'text' ELSE 'hash' END)
		|| CASE WHEN imposed IS NOT NULL THEN jsonb_build_object('allowed_ips', imposed) ELSE '{}' END);
	RETURN g.key_id;
END
$$;
COMMENT ON FUNCTION apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text) IS
	'import a key of another system by its text or by the SHA-256 of its text; verify and authenticate then accept that text; returns the new key id';

REVOKE EXECUTE ON FUNCTION apikey_internal.authorize_tenant(text, text), apikey_internal.authorize_key(apikey.key_id, text),
	apikey_internal.act_for(bigint, text, text, text[], text[]), apikey.act_for(text, text, text[], text[]),
	apikey.grant_delegate(name) FROM PUBLIC;
DROP FUNCTION apikey_internal.authorize_key(apikey.key_id), apikey_internal.authorize_tenant(text),
	apikey_internal.authorized_tenant(text);


CREATE OR REPLACE VIEW apikey.audit_log WITH (security_barrier) AS
SELECT a.event_id,
       a.at,
       a.action,
       a.tenant,
       a.key_id,
       a.actor_role,
       a.actor_key_id,
       a.details,
       a.tenant_id,
       a.actor
  FROM apikey.audit AS a
 WHERE CASE WHEN apikey_internal.acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            WHEN a.key_id IS NULL THEN apikey_internal.sees_tenant(a.tenant_id)
            -- a key's events as the key is seen; a deleted key's by what
            -- its events recorded (created and deleted say its environment)
            WHEN EXISTS (SELECT FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) a.key_id)
            THEN EXISTS (SELECT FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) a.key_id
                            AND apikey_internal.sees(k.tenant_id, k.environment, k.owner))
            ELSE apikey_internal.sees(a.tenant_id, a.details OPERATOR(pg_catalog.->>) 'environment',
                              a.details OPERATOR(pg_catalog.->>) 'owner') END;


CREATE OR REPLACE VIEW apikey.usage_stats WITH (security_barrier) AS
SELECT t.slug AS tenant,
       u.key_id,
       u.hour,
       u.status,
       u.verifications,
       u.tenant_id
  FROM apikey.usage_hourly AS u
  JOIN apikey.tenants AS t ON t.tenant_id OPERATOR(pg_catalog.=) u.tenant_id
 WHERE CASE WHEN apikey_internal.acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey_internal.sees(u.tenant_id,
                              (SELECT k.environment FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) u.key_id),
                              (SELECT k.owner FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) u.key_id)) END;

CREATE OR REPLACE VIEW apikey.key_role_list WITH (security_barrier) AS
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

CREATE OR REPLACE VIEW apikey.vendor_meta_field_list WITH (security_barrier) AS
SELECT t.slug AS tenant,
       f.field,
       t.tenant_id
  FROM apikey.vendor_meta_fields AS f
  JOIN apikey.tenants AS t ON t.tenant_id OPERATOR(pg_catalog.=) f.tenant_id
 WHERE CASE WHEN apikey_internal.acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey_internal.sees_tenant(t.tenant_id) END;

CREATE OR REPLACE VIEW apikey.import_conflicts WITH (security_barrier) AS
SELECT k.tenant,
       i.key_id,
       k.name,
       k.created_at,
       k.created_by,
       o.tenant AS other_tenant,
       j.key_id AS other_key_id
  FROM apikey.imported_keys AS i
  JOIN apikey.imported_keys AS j
    ON j.key_hash OPERATOR(pg_catalog.=) i.key_hash AND j.tenant_id OPERATOR(pg_catalog.<>) i.tenant_id
  JOIN apikey.keys AS k ON k.key_id OPERATOR(pg_catalog.=) i.key_id
  JOIN apikey.keys AS o ON o.key_id OPERATOR(pg_catalog.=) j.key_id
 WHERE apikey_internal.acting_tenant_id() IS NULL AND (SELECT apikey.is_admin());

-- The final text of what several changes above defined (one source of truth: sql/apikey/*.sql)
CREATE OR REPLACE FUNCTION apikey.set_owner_rate_limit(tenant text, owner text, name text,
		max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant, 'apikey:keys:edit');
BEGIN
	owner := apikey_internal.checked_label('owner', owner, 200, true);
	PERFORM apikey_internal.authorize_owner(owner);
	PERFORM apikey_internal.check_rate_limit(name, max_requests, per);
	PERFORM apikey_internal.set_owner_rate_limit(t, owner, name, max_requests, per);
END
$$;

CREATE OR REPLACE FUNCTION apikey.remove_owner_rate_limit(tenant text, owner text, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant, 'apikey:keys:edit');
BEGIN
	PERFORM apikey_internal.require('owner and name', owner IS NOT NULL AND name IS NOT NULL);
	PERFORM apikey_internal.authorize_owner(owner);
	PERFORM apikey_internal.set_owner_rate_limit(t, owner, name, NULL, NULL);
END
$$;

CREATE OR REPLACE VIEW apikey.tenant_list WITH (security_barrier) AS
SELECT t.slug AS tenant,
       t.tenant_id,
       t.name,
       (SELECT pg_catalog.array_agg(e.name ORDER BY e.name) FROM apikey.environments AS e
         WHERE e.tenant_id OPERATOR(pg_catalog.=) t.tenant_id) AS environments,
       t.key_prefix,
       t.default_key_lifetime,
       t.max_key_lifetime,
       t.rate_limits,
       t.created_at,
       t.created_by,
       apikey_internal.rate_limit_summary(t.rate_limits) AS rate_limit_summary
  FROM apikey.tenants AS t
 WHERE CASE WHEN apikey_internal.acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey_internal.sees_tenant(t.tenant_id) END;

CREATE OR REPLACE VIEW apikey.key_list WITH (security_barrier) AS
SELECT k.key_id,
       k.tenant,
       k.environment,
       k.name,
       k.description,
       k.hint,
       k.scopes,
       CASE WHEN pg_catalog.cardinality(k.resources) OPERATOR(pg_catalog.=) 1 THEN k.resources[1] END AS resource,
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
       u.last_used_at,
       k.tenant_id,
       k.owner,
       k.meta,
       k.key_roles,
       k.effective_scopes,
       k.resources,
       k.allowed_ips,
       k.rate_limits,
       k.tenant_rate_limits,
       CASE WHEN c.next_refill_at <= pg_catalog.now() THEN c.refill_amount
            ELSE c.remaining END AS remaining,
       c.refill_amount,
       c.refill_every,
       k.imported,
       k.owner_rate_limits,
       apikey_internal.rate_limit_summary(k.rate_limits) AS rate_limit_summary,
       apikey_internal.rate_limit_summary(k.tenant_rate_limits) AS tenant_rate_limit_summary,
       apikey_internal.rate_limit_summary(k.owner_rate_limits) AS owner_rate_limit_summary
  FROM apikey.keys AS k
  LEFT JOIN apikey.key_usage AS u ON u.key_id OPERATOR(pg_catalog.=) k.key_id
  LEFT JOIN apikey.credits AS c ON c.key_id OPERATOR(pg_catalog.=) k.key_id
 WHERE CASE WHEN apikey_internal.acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey_internal.sees(k.tenant_id, k.environment, k.owner) END;


-- create_key makes a plain key in C (createkey.c), every other key by
-- apikey_internal.create_key_full, its PL/pgSQL body before.
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
CREATE OR REPLACE FUNCTION apikey.create_key(tenant text, environment text, name text,
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

REVOKE EXECUTE ON FUNCTION apikey_internal.create_key_full(text, text, text, text, text[], interval, text,
		text, jsonb, text[], text[], cidr[]) FROM PUBLIC;

-- The trigger that gives a new key its tenant's rate limits, in C (keylimits.c)
CREATE OR REPLACE FUNCTION apikey_internal.key_tenant_rate_limits() RETURNS trigger
	AS 'MODULE_PATHNAME', 'key_tenant_rate_limits' LANGUAGE C;    -- keylimits.c

-- No function resolves an unqualified name through the schema apikey: the
-- fixed search_path is pg_catalog and pg_temp only (every body names the
-- extension's objects with their schema).  Kept last, so that it applies to
-- every function this script creates or replaces as well.
DO $$
DECLARE
	f pg_catalog.regprocedure;
BEGIN
	FOR f IN
		SELECT p.oid FROM pg_catalog.pg_proc AS p
		 WHERE p.pronamespace OPERATOR(pg_catalog.=) ANY (ARRAY['apikey', 'apikey_internal']::pg_catalog.regnamespace[])
		   AND 'search_path=pg_catalog, apikey, pg_temp' OPERATOR(pg_catalog.=) ANY (p.proconfig)
	LOOP
		EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
	END LOOP;
END
$$;
