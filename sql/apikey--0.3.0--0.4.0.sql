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
