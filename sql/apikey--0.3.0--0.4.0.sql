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
	PERFORM apikey._hide_statement();    -- it may hold the key text
	tenant_slug := apikey._authorized_tenant(tenant);
	key_scopes := apikey._normalized_scopes(scopes);
	name := apikey._checked_label('key name', name, 200, true);
	description := apikey._checked_label('description', description, 1000, false);
	owner := apikey._checked_label('owner', owner, 200, false);
	hint := apikey._checked_label('hint', hint, 16, false);
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
		RAISE EXCEPTION 'tenant % does not exist', apikey._shown(tenant_slug) USING ERRCODE = 'undefined_object';
	ELSIF t.tag IS NULL THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey._shown(environment), tenant_slug
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey._authorize(tenant_slug, environment, key_scopes, NULL);
	imposed := apikey._imposed_allowed_ips(NULL);    -- vendor.sql
	-- the tenant's policy, as for a key created now
	IF expires_at IS NULL AND t.default_key_lifetime IS NOT NULL THEN
		expires_at := now() + t.default_key_lifetime;
	END IF;
	IF t.max_key_lifetime IS NOT NULL AND (expires_at IS NULL OR expires_at > now() + t.max_key_lifetime) THEN
		RAISE EXCEPTION 'keys of tenant "%" must expire within % from now', tenant_slug, t.max_key_lifetime
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	LOOP
		g := apikey._import_key_text(api_key, key_hash);
		INSERT INTO apikey.keys (key_id, tenant_id, tenant, environment, key_hash, hint,
		                         name, description, scopes, effective_scopes, expires_at,
		                         created_by, owner, imported, allowed_ips)
		VALUES (g.key_id, t.tenant_id, tenant_slug, environment, g.hash, coalesce(hint, g.hint),
		        name, description, key_scopes, key_scopes, expires_at,
		        apikey._caller()::text, owner, true, imposed)
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
	PERFORM apikey._audit('imported', t.tenant_id, tenant_slug, g.key_id,
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
CREATE FUNCTION apikey._report_disputed_leak(api_key text, source text)
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
		RETURN 'not_found';    -- imported by one tenant at most: _prove_key's answer stands
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
			PERFORM apikey._terminate_at_commit(k.key_id, false);
			stopped := stopped + 1;
		END IF;
		PERFORM apikey._audit('leaked', k.tenant_id, k.tenant, k.key_id,
			jsonb_build_object('source', source, 'secret', CASE WHEN previous THEN 'previous' ELSE 'current' END,
			                   'revoked', NOT previous AND k.revoked_at IS NULL));
	END LOOP;
	RETURN CASE WHEN stopped > 0 THEN 'revoked' ELSE 'already_revoked' END;
END
$$;
COMMENT ON FUNCTION apikey._report_disputed_leak(text, text) IS
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
	PERFORM apikey._hide_statement();    -- it holds the key text
	source := apikey._checked_label('source', source, 500, false);
	p := apikey._prove_key(api_key);
	IF p.key_id IS NULL AND p.status = 'not_found' AND NOT apikey.looks_like_key(api_key) THEN
		RETURN apikey._report_disputed_leak(api_key, source);
	END IF;
	IF p.key_id IS NULL THEN
		RETURN p.status;                  -- malformed, public_key or not_found
	END IF;
	SELECT * INTO k FROM apikey.keys AS x WHERE x.key_id = p.key_id FOR UPDATE;
	-- proven again with the row locked: a roll or deletion may have come first
	p := apikey._prove_key(api_key);
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
		PERFORM apikey._terminate_at_commit(k.key_id, false);
	END IF;
	PERFORM apikey._audit('leaked', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('source', source, 'secret', CASE WHEN previous THEN 'previous' ELSE 'current' END,
		                   'revoked', NOT previous AND k.revoked_at IS NULL));
	RETURN CASE WHEN previous OR k.revoked_at IS NULL THEN 'revoked' ELSE 'already_revoked' END;
END
$$;
COMMENT ON FUNCTION apikey.report_leak(text, text) IS
	'a secret scanner found this key text in public (source: where): a real key is revoked at once and audited as leaked; returns revoked, already_revoked, not_found, malformed or public_key';
REVOKE EXECUTE ON FUNCTION apikey._report_disputed_leak(text, text) FROM PUBLIC;

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
COMMENT ON FUNCTION apikey._notify_event() IS
	'internal: queue an audit event for the event relay (without shared_preload_libraries: send it at commit; ids only)';

-- Rate-limit buckets per tenant (each tenant's share of the table), for
-- full administrators: those who may create tenants.
CREATE FUNCTION apikey._rate_limit_tenants(OUT tenant_id bigint, OUT buckets bigint,
		OUT refused bigint, OUT last_refused timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'rate_limit_tenants' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey._rate_limit_tenants() IS
	'internal: rate-limit buckets held and requests refused for want of one, per tenant id of this database';

CREATE FUNCTION apikey.rate_limit_tenants(OUT tenant text, OUT buckets bigint,
		OUT refused bigint, OUT last_refused timestamptz)
	RETURNS SETOF record LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM apikey._authorize_admin();
	RETURN QUERY
		SELECT coalesce(t.slug, '#' OPERATOR(pg_catalog.||) r.tenant_id::text), r.buckets, r.refused, r.last_refused
		  FROM apikey._rate_limit_tenants() AS r
		  LEFT JOIN apikey.tenants AS t ON t.tenant_id OPERATOR(pg_catalog.=) r.tenant_id
		 ORDER BY r.refused DESC, r.buckets DESC, 1;
END
$$;
COMMENT ON FUNCTION apikey.rate_limit_tenants() IS
	'per tenant of this database: the rate-limit buckets it holds on this server, and how many of its requests were refused because no bucket was left for it (apikey.rate_limit_tenant_share), and when last (full administrators only)';
REVOKE ALL ON FUNCTION apikey._rate_limit_tenants(), apikey.rate_limit_tenants() FROM PUBLIC;

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
CREATE FUNCTION apikey._by_tenant() RETURNS boolean
	LANGUAGE sql STABLE
AS $$
	SELECT apikey.current_tenant_id() IS NOT NULL
$$;
COMMENT ON FUNCTION apikey._by_tenant() IS
	'internal: is the caller a tenant''s own administrator (not the vendor)? The one rule of which controls a caller may lift';

-- The vendor's controls of a key (a row of defaults when it has none).
CREATE FUNCTION apikey._vendor_controls(key_id apikey.key_id) RETURNS apikey.key_vendor_controls
	LANGUAGE sql STABLE
AS $$
	SELECT v FROM (SELECT $1 AS key_id) AS k
	  LEFT JOIN apikey.key_vendor_controls AS v ON v.key_id OPERATOR(pg_catalog.=) k.key_id
$$;
COMMENT ON FUNCTION apikey._vendor_controls(apikey.key_id) IS
	'internal: the rate limits, credits and allowlist an administrator set on a key (NULL: none)';

CREATE FUNCTION apikey._deny_vendor_control(what text, key_id apikey.key_id)
	RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
	RAISE EXCEPTION 'permission denied: an administrator set %', what
		      || CASE WHEN key_id IS NOT NULL THEN ' of key ' || key_id::text ELSE '' END
		USING ERRCODE = 'insufficient_privilege',
		      HINT = 'A tenant administrator may add restrictions of its own; only an administrator lifts this one.';
END
$$;
COMMENT ON FUNCTION apikey._deny_vendor_control(text, apikey.key_id) IS
	'internal: raise permission denied for a vendor control a tenant administrator tried to lift';

-- A key's rate limit named name is being set or removed (max_requests NULL).
CREATE FUNCTION apikey._vendor_rate_limit(k apikey.keys, name text, removed boolean)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	v apikey.key_vendor_controls := apikey._vendor_controls(k.key_id);
BEGIN
	IF apikey._by_tenant() THEN
		IF name OPERATOR(pg_catalog.=) ANY (v.rate_limits) THEN
			PERFORM apikey._deny_vendor_control(pg_catalog.format('the rate limit "%s"', name), k.key_id);
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
COMMENT ON FUNCTION apikey._vendor_rate_limit(apikey.keys, text, boolean) IS
	'internal: an administrator''s rate limit is recorded as the vendor''s; a tenant administrator may not change or remove one';

-- A key's credits are being set (remaining NULL: removed) or added to.
CREATE FUNCTION apikey._vendor_credits(k apikey.keys, remaining bigint, added bigint)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	IF apikey._by_tenant() THEN
		IF (apikey._vendor_controls(k.key_id)).credits
		   AND (added IS NULL OR added OPERATOR(pg_catalog.>) 0) THEN
			PERFORM apikey._deny_vendor_control('the credits', k.key_id);
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
COMMENT ON FUNCTION apikey._vendor_credits(apikey.keys, bigint, bigint) IS
	'internal: an administrator''s credits are recorded as the vendor''s; a tenant administrator may not replace, remove or add to them';

-- A key's allowlist is being set (for a new key, k.key_id is its id).
CREATE FUNCTION apikey._vendor_allowed_ips(key_id apikey.key_id, allowed_ips cidr[])
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	imposed cidr[] := (apikey._vendor_controls(key_id)).allowed_ips;
BEGIN
	IF apikey._by_tenant() THEN
		IF imposed IS NOT NULL AND (allowed_ips IS NULL OR EXISTS (
		       SELECT FROM pg_catalog.unnest(allowed_ips) AS n
		        WHERE NOT n OPERATOR(pg_catalog.<<=) ANY (imposed))) THEN
			PERFORM apikey._deny_vendor_control('the allowlist', key_id);
		END IF;
		RETURN;
	END IF;
	INSERT INTO apikey.key_vendor_controls AS x (key_id, allowed_ips)
	VALUES (key_id, allowed_ips)
	ON CONFLICT ON CONSTRAINT key_vendor_controls_pkey DO UPDATE SET allowed_ips = excluded.allowed_ips;
END
$$;
COMMENT ON FUNCTION apikey._vendor_allowed_ips(apikey.key_id, cidr[]) IS
	'internal: an administrator''s allowlist is recorded as the vendor''s; a tenant administrator may only narrow it';

-- The allowlist a new key must stay within: a tenant administrator whose
-- key carries the vendor's allowlist creates (and imports) keys usable
-- from those networks only (the vendor's for them too), or it could give
-- itself a key usable from anywhere.  NULL: none.
CREATE FUNCTION apikey._imposed_allowed_ips(allowed_ips cidr[]) RETURNS cidr[]
	LANGUAGE plpgsql STABLE
AS $$
DECLARE
	imposed cidr[];
BEGIN
	IF apikey.current_key_id() IS NULL THEN
		RETURN NULL;
	END IF;
	imposed := (apikey._vendor_controls(apikey.current_key_id())).allowed_ips;
	IF imposed IS NOT NULL AND allowed_ips IS NOT NULL AND EXISTS (
	       SELECT FROM pg_catalog.unnest(allowed_ips) AS n
	        WHERE NOT n OPERATOR(pg_catalog.<<=) ANY (imposed)) THEN
		PERFORM apikey._deny_vendor_control('the allowlist of the authenticated key', NULL);
	END IF;
	RETURN imposed;
END
$$;
COMMENT ON FUNCTION apikey._imposed_allowed_ips(cidr[]) IS
	'internal: the vendor''s allowlist of the authenticated tenant administrator''s key, which its new keys stay within (NULL: none)';

-- A key's meta is being set (old NULL: a new key).  A tenant administrator
-- may not touch the tenant's vendor fields; an administrator's writes make
-- the fields it sets, changes or removes the vendor's.
CREATE FUNCTION apikey._vendor_meta(tenant_id bigint, key_id apikey.key_id, old jsonb, new jsonb)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	field text;
BEGIN
	IF apikey._by_tenant() THEN
		SELECT f.field INTO field FROM apikey.vendor_meta_fields AS f
		 WHERE f.tenant_id OPERATOR(pg_catalog.=) _vendor_meta.tenant_id
		   AND (old OPERATOR(pg_catalog.->) f.field) IS DISTINCT FROM (new OPERATOR(pg_catalog.->) f.field)
		 ORDER BY f.field LIMIT 1;
		IF FOUND THEN
			PERFORM apikey._deny_vendor_control(pg_catalog.format('the meta field "%s"', field), key_id);
		END IF;
		RETURN;
	END IF;
	INSERT INTO apikey.vendor_meta_fields (tenant_id, field)
	SELECT _vendor_meta.tenant_id, f
	  FROM (SELECT pg_catalog.jsonb_object_keys(COALESCE(new, '{}'))
	        UNION SELECT pg_catalog.jsonb_object_keys(COALESCE(old, '{}'))) AS x(f)
	 WHERE (old OPERATOR(pg_catalog.->) f) IS DISTINCT FROM (new OPERATOR(pg_catalog.->) f)
	ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION apikey._vendor_meta(bigint, apikey.key_id, jsonb, jsonb) IS
	'internal: tenant administrators may not touch the vendor''s meta fields; fields an administrator writes become the vendor''s';

CREATE FUNCTION apikey.set_vendor_meta_fields(tenant text, fields text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
	old text[];
BEGIN
	PERFORM apikey._authorize_admin();
	t := apikey._authorize_tenant(tenant);
	IF fields IS NULL OR array_ndims(fields) > 1 OR array_position(fields, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'fields must be a one-dimensional array of field names without NULL'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT array_agg(f.field ORDER BY f.field) INTO old
	  FROM apikey.vendor_meta_fields AS f WHERE f.tenant_id = t.tenant_id;
	DELETE FROM apikey.vendor_meta_fields AS f WHERE f.tenant_id = t.tenant_id;
	INSERT INTO apikey.vendor_meta_fields (tenant_id, field)
	SELECT DISTINCT t.tenant_id, apikey._checked_label('field', x, 200, true) FROM unnest(fields) AS x;
	PERFORM apikey._audit('vendor_meta_fields_set', t.tenant_id, t.slug, NULL,
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
REVOKE EXECUTE ON FUNCTION apikey._by_tenant(), apikey._vendor_controls(apikey.key_id),
	apikey._deny_vendor_control(text, apikey.key_id),
	apikey._vendor_rate_limit(apikey.keys, text, boolean),
	apikey._vendor_credits(apikey.keys, bigint, bigint),
	apikey._vendor_allowed_ips(apikey.key_id, cidr[]),
	apikey._imposed_allowed_ips(cidr[]),
	apikey._vendor_meta(bigint, apikey.key_id, jsonb, jsonb),
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
	tenant_slug text := apikey._authorized_tenant(tenant);
	key_scopes text[] := apikey._normalized_scopes(scopes);
	roles text[];
	effective text[] := key_scopes;
	extra jsonb;    -- what 0.3.0 added, for the audit event
	imposed cidr[];    -- the vendor's allowlist the new key stays within
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
	IF resources IS NULL AND owner IS NULL AND meta IS NULL AND allowed_ips IS NULL
	   AND cardinality(key_roles) = 0 THEN
		-- a plain key
		resources := CASE WHEN resource IS NOT NULL THEN ARRAY[resource] END;
	ELSE
		-- resource is one more element of resources
		resources := apikey._checked_resources(CASE WHEN resource IS NULL THEN resources
		                                            ELSE coalesce(resources, '{}') || resource END);
		owner := apikey._checked_label('owner', owner, 200, owner IS NOT NULL);
		meta := apikey._checked_meta(meta);
		IF meta IS NOT NULL THEN
			PERFORM apikey._vendor_meta(t.tenant_id, NULL, NULL, meta);    -- vendor.sql
		END IF;
		allowed_ips := apikey._checked_allowed_ips(allowed_ips);
		IF key_roles IS NULL OR cardinality(key_roles) > 0 THEN
			roles := apikey._checked_key_roles(t.tenant_id, tenant_slug, key_roles);
			effective := apikey._effective_scopes(t.tenant_id, key_scopes, roles);
		END IF;
		-- meta kept whole in the event, its nulls too
		extra := jsonb_strip_nulls(jsonb_build_object('owner', owner, 'key_roles', roles,
		                           'resources', resources, 'allowed_ips', allowed_ips))
		         || CASE WHEN meta IS NOT NULL THEN jsonb_build_object('meta', meta) ELSE '{}' END;
	END IF;
	PERFORM apikey._authorize(tenant_slug, environment, effective, resources);
	IF apikey.current_key_id() IS NOT NULL THEN
		-- the vendor's allowlist of a tenant administrator's key bounds its new keys
		imposed := apikey._imposed_allowed_ips(allowed_ips);    -- vendor.sql
		IF imposed IS NOT NULL AND allowed_ips IS NULL THEN
			allowed_ips := imposed;
			extra := coalesce(extra, '{}') || jsonb_build_object('allowed_ips', allowed_ips);
		END IF;
	END IF;
	IF expires_in IS NOT NULL OR t.default_key_lifetime IS NOT NULL OR t.max_key_lifetime IS NOT NULL THEN
		expires_at := apikey._expiry(tenant_slug, expires_in, t.default_key_lifetime, t.max_key_lifetime);
	END IF;
	LOOP
		g := apikey._generate_key(t.key_prefix, t.tag);
		WITH k AS (
			INSERT INTO apikey.keys (key_id, tenant_id, tenant, environment, key_hash, hint,
			                         name, description, scopes, effective_scopes, resources,
			                         owner, meta, key_roles, allowed_ips,
			                         expires_at, created_by)
			VALUES (g.key_id, t.tenant_id, tenant_slug, environment, g.key_hash, g.hint,
			        name, description, key_scopes, effective, resources,
			        owner, meta, coalesce(roles, '{}'), allowed_ips,
			        expires_at, coalesce(apikey._actor(), apikey._caller()::text))
			ON CONFLICT DO NOTHING
			RETURNING 1)
		INSERT INTO apikey.audit (actor_role, actor_key_id, tenant_id, tenant, key_id, action, details, actor)
		SELECT apikey._caller()::text, apikey.current_key_id(), t.tenant_id, tenant_slug, g.key_id, 'created',
		       jsonb_build_object('environment', environment, 'name', name, 'scopes', key_scopes,
		                          'resource', resource, 'expires_at', expires_at) || coalesce(extra, '{}'),
		       apikey._actor()
		  FROM k;
		EXIT WHEN FOUND;    -- a key id already taken (1 in 2^64 per key): draw again
	END LOOP;
	IF imposed IS NOT NULL THEN
		INSERT INTO apikey.key_vendor_controls (key_id, allowed_ips) VALUES (g.key_id, imposed);
	ELSIF allowed_ips IS NOT NULL THEN
		PERFORM apikey._vendor_allowed_ips(g.key_id, allowed_ips);    -- an administrator's: the vendor's
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
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	DELETE FROM apikey.keys AS x WHERE x.key_id = k.key_id;
	DELETE FROM apikey.key_usage AS u WHERE u.key_id = k.key_id;
	DELETE FROM apikey.credits AS c WHERE c.key_id = k.key_id;
	DELETE FROM apikey.imported_keys AS i WHERE i.key_id = k.key_id;
	DELETE FROM apikey.key_vendor_controls AS v WHERE v.key_id = k.key_id;
	PERFORM apikey._audit('deleted', k.tenant_id, k.tenant, k.key_id,
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
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	meta := apikey._checked_meta(meta);
	PERFORM apikey._vendor_meta(k.tenant_id, k.key_id, k.meta, meta);    -- vendor.sql
	UPDATE apikey.keys AS x SET meta = set_key_meta.meta WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('meta_changed', k.tenant_id, k.tenant, k.key_id,
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
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	allowed_ips := apikey._checked_allowed_ips(allowed_ips);
	PERFORM apikey._vendor_allowed_ips(k.key_id, allowed_ips);    -- vendor.sql
	UPDATE apikey.keys AS x SET allowed_ips = set_key_allowed_ips.allowed_ips WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('allowed_ips_changed', k.tenant_id, k.tenant, k.key_id,
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
	k apikey.keys := apikey._authorize_key(key_id);
	limits apikey.rate_limit[];
BEGIN
	PERFORM apikey._check_rate_limit(name, max_requests, per);
	limits := apikey._with_rate_limit(k.rate_limits, name, max_requests, per);
	IF cardinality(limits) > 8 THEN
		RAISE EXCEPTION 'key % already has 8 rate limits', k.key_id
			USING ERRCODE = 'program_limit_exceeded',
			      HINT = 'Replace one (same name) or remove one first.';
	END IF;
	PERFORM apikey._vendor_rate_limit(k, name, false);    -- vendor.sql
	UPDATE apikey.keys AS x SET rate_limits = limits WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('rate_limit_set', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('name', name,
		                   'from', apikey._rate_limit_details(k.rate_limits, name),
		                   'to', apikey._rate_limit_details(limits, name)));
END
$$;
COMMENT ON FUNCTION apikey.set_rate_limit(apikey.key_id, text, integer, interval) IS
	'add or replace a named rate limit of a key: at most max_requests units per interval (per server; needs shared_preload_libraries = apikey)';

CREATE OR REPLACE FUNCTION apikey.remove_rate_limit(key_id apikey.key_id, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
	old jsonb := apikey._rate_limit_details(k.rate_limits, name);
	limits apikey.rate_limit[];
BEGIN
	IF old IS NULL THEN
		RAISE EXCEPTION 'key % has no rate limit %', k.key_id, apikey._shown(name)
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey._vendor_rate_limit(k, name, true);    -- vendor.sql
	limits := apikey._with_rate_limit(k.rate_limits, name, NULL, NULL);
	UPDATE apikey.keys AS x SET rate_limits = limits WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('rate_limit_removed', k.tenant_id, k.tenant, k.key_id,
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
	k apikey.keys := apikey._authorize_key(key_id);
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
		PERFORM apikey._check_lifetime('refill_every', refill_every);
		next_refill := apikey._next_refill(now(), refill_every, now());
	END IF;
	PERFORM apikey._vendor_credits(k, remaining, NULL);    -- vendor.sql
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
	PERFORM apikey._audit('credits_set', k.tenant_id, k.tenant, k.key_id,
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
	k apikey.keys := apikey._authorize_key(key_id);
	c apikey.credits;
	at timestamptz := statement_timestamp();
BEGIN
	IF amount IS NULL THEN
		RAISE EXCEPTION 'amount must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM apikey._vendor_credits(k, NULL, amount);    -- vendor.sql
	SELECT * INTO c FROM apikey.credits AS x WHERE x.key_id = k.key_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key % has no credits (it is unlimited)', k.key_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Give it credits with apikey.set_credits.';
	END IF;
	IF c.next_refill_at <= at THEN
		c.remaining := c.refill_amount;
		c.refilled_at := at;
		c.next_refill_at := apikey._next_refill(c.refill_anchor, c.refill_every, at);
	END IF;
	IF c.remaining + amount < 0 THEN
		RAISE EXCEPTION 'key % has % credits: cannot take % away', k.key_id, c.remaining, -amount
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE apikey.credits AS x
	   SET remaining = c.remaining + amount, refilled_at = c.refilled_at, next_refill_at = c.next_refill_at
	 WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('credits_added', k.tenant_id, k.tenant, k.key_id,
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
	PERFORM apikey._check_role(role);
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
	FOR EACH ROW EXECUTE FUNCTION apikey._imports_changed();
CREATE TRIGGER imported_keys_truncated BEFORE TRUNCATE ON apikey.imported_keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._imports_changed();
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
CREATE FUNCTION apikey._refuse_on_subscriber() RETURNS trigger
	AS 'MODULE_PATHNAME', 'refuse_on_subscriber' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION apikey._refuse_on_subscriber() IS
	'internal: refuse changes of apikey''s published tables on a logical replication subscriber of them (25006)';
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.tenants
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.environments
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.public_keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.key_roles
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.credits
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.imported_keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._refuse_on_subscriber();
REVOKE EXECUTE ON FUNCTION apikey._refuse_on_subscriber() FROM PUBLIC;

-- Revocations commit as apikey.revocation_synchronous_commit says
-- (replica.c); a hot standby's kill switch finds a key's revocations
-- through audit_revocations.
CREATE FUNCTION apikey._revocation_commit() RETURNS void
	AS 'MODULE_PATHNAME', 'revocation_commit' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey._revocation_commit() IS
	'internal: this transaction revokes; its commit waits for synchronous standbys as apikey.revocation_synchronous_commit says';

CREATE FUNCTION apikey.confirm_revocations() RETURNS text
	AS 'MODULE_PATHNAME', 'confirm_revocations' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey.confirm_revocations() IS
	'wait until the synchronous standbys confirm every revocation committed so far (as apikey.revocation_synchronous_commit asks): confirmed, canceled, no_synchronous_standby or not_asked';
REVOKE EXECUTE ON FUNCTION apikey._revocation_commit(), apikey.confirm_revocations() FROM PUBLIC;

CREATE INDEX audit_revocations ON apikey.audit (key_id, event_id) WHERE action IN ('revoked', 'leaked');

CREATE OR REPLACE FUNCTION apikey.revoke_key(key_id apikey.key_id, reason text DEFAULT NULL,
		terminate boolean DEFAULT false)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	reason := apikey._checked_label('reason', reason, 1000, false);
	IF terminate IS NULL THEN
		RAISE EXCEPTION 'terminate must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF k.revoked_at IS NOT NULL THEN
		RAISE EXCEPTION 'key % is already revoked', k.key_id
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	IF terminate THEN
		PERFORM apikey._terminate_at_commit(k.key_id, true);   -- the kill switch (incidents.sql)
	END IF;
	PERFORM apikey._revocation_commit();
	UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('revoked', k.tenant_id, k.tenant, k.key_id,
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
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	PERFORM apikey._revocation_commit();
	DELETE FROM apikey.keys AS x WHERE x.key_id = k.key_id;
	DELETE FROM apikey.key_usage AS u WHERE u.key_id = k.key_id;
	DELETE FROM apikey.credits AS c WHERE c.key_id = k.key_id;
	DELETE FROM apikey.imported_keys AS i WHERE i.key_id = k.key_id;
	DELETE FROM apikey.key_vendor_controls AS v WHERE v.key_id = k.key_id;
	PERFORM apikey._audit('deleted', k.tenant_id, k.tenant, k.key_id,
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
	k apikey.keys := apikey._authorize_key(key_id);
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
	e := apikey._environment(t, k.environment);
	IF grace > '0' THEN
		grace_end := now() + grace;
	END IF;
	g := apikey._generate_key(t.key_prefix, e.tag, k.key_id);
	PERFORM apikey._revocation_commit();   -- the old secret's end
	UPDATE apikey.keys AS x
	   SET key_hash = g.key_hash, hint = g.hint, rolled_at = now(),
	       previous_hash = CASE WHEN grace_end IS NOT NULL THEN k.key_hash END,
	       previous_hash_expires_at = grace_end, imported = false
	 WHERE x.key_id = k.key_id;
	-- an imported text is found through apikey.imported_keys while it works
	DELETE FROM apikey.imported_keys AS i
	 WHERE i.key_id = k.key_id AND (grace_end IS NULL OR NOT k.imported);
	PERFORM apikey._audit('rolled', k.tenant_id, k.tenant, k.key_id,
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
	PERFORM apikey._hide_statement();    -- it holds the key text
	source := apikey._checked_label('source', source, 500, false);
	p := apikey._prove_key(api_key);
	IF p.key_id IS NULL AND p.status = 'not_found' AND NOT apikey.looks_like_key(api_key) THEN
		RETURN apikey._report_disputed_leak(api_key, source);
	END IF;
	IF p.key_id IS NULL THEN
		RETURN p.status;                  -- malformed, public_key or not_found
	END IF;
	SELECT * INTO k FROM apikey.keys AS x WHERE x.key_id = p.key_id FOR UPDATE;
	-- proven again with the row locked: a roll or deletion may have come first
	p := apikey._prove_key(api_key);
	IF NOT FOUND OR p.key_id IS NULL THEN
		RETURN 'not_found';
	END IF;
	previous := k.key_hash <> sha256(convert_to(api_key, getdatabaseencoding()));
	reason := 'leaked' || coalesce(' (reported by ' || source || ')', '');
	IF previous OR k.revoked_at IS NULL THEN
		PERFORM apikey._revocation_commit();
	END IF;
	IF previous THEN
		-- a secret the key was rolled away from: it stops, the key goes on
		UPDATE apikey.keys AS x SET previous_hash = NULL, previous_hash_expires_at = NULL
		 WHERE x.key_id = k.key_id;
		DELETE FROM apikey.imported_keys AS i
		 WHERE i.key_id = k.key_id AND i.key_hash <> k.key_hash;
	ELSIF k.revoked_at IS NULL THEN
		UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
		PERFORM apikey._terminate_at_commit(k.key_id, false);
	END IF;
	PERFORM apikey._audit('leaked', k.tenant_id, k.tenant, k.key_id,
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
	t apikey.tenants := apikey._authorize_tenant(tenant);
	k apikey.keys;
	revoked integer := 0;
	beyond integer := 0;
BEGIN
	IF owner IS NULL THEN
		RAISE EXCEPTION 'owner must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	reason := apikey._checked_label('reason', reason, 1000, false);
	FOR k IN SELECT * FROM apikey.keys AS x
	          WHERE x.tenant_id = t.tenant_id AND x.owner = revoke_owner_keys.owner
	            AND x.revoked_at IS NULL
	          ORDER BY x.key_id
	            FOR UPDATE
	LOOP
		BEGIN
			PERFORM apikey._authorize(k.tenant, k.environment, k.effective_scopes, k.resources);
		EXCEPTION WHEN insufficient_privilege THEN
			beyond := beyond + 1;
			CONTINUE;
		END;
		UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
		PERFORM apikey._audit('revoked', k.tenant_id, k.tenant, k.key_id,
			jsonb_build_object('reason', reason, 'owner', owner));
		PERFORM apikey._revocation_commit();
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
	PERFORM apikey._check_role(role);
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
		 WHERE p.pronamespace OPERATOR(pg_catalog.=) 'apikey'::pg_catalog.regnamespace
		   AND 'search_path=pg_catalog, apikey, pg_temp' OPERATOR(pg_catalog.=) ANY (p.proconfig)
	LOOP
		EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
	END LOOP;
END
$$;
