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
		                         created_by, owner, imported)
		VALUES (g.key_id, t.tenant_id, tenant_slug, environment, g.hash, coalesce(hint, g.hint),
		        name, description, key_scopes, key_scopes, expires_at,
		        apikey._caller()::text, owner, true)
		ON CONFLICT DO NOTHING;
		EXIT WHEN FOUND;    -- a key id already taken (1 in 2^64 per key): draw again
	END LOOP;
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
		                   'by', CASE WHEN api_key IS NOT NULL THEN 'text' ELSE 'hash' END));
	RETURN g.key_id;
END
$$;
COMMENT ON FUNCTION apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text) IS
	'import a key of another system by its text or by the SHA-256 of its text; verify and authenticate then accept that text; returns the new key id';

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
		apikey.usage_flush()
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
