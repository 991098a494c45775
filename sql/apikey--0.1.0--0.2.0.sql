-- apikey 0.1.0 -> 0.2.0: last_used_at kept without a write per verification.
\echo Use "ALTER EXTENSION apikey UPDATE TO '0.2.0'" to load this file. \quit

-- last_used_at (usage.c): pending uses kept in shared memory between writes.
CREATE FUNCTION apikey._pending_last_used(key_id apikey.key_id) RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'pending_last_used' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey._pending_last_used(apikey.key_id) IS
	'internal: the last use of a key not yet written to apikey.keys, or NULL';

CREATE FUNCTION apikey.usage_tracking() RETURNS text
	AS 'MODULE_PATHNAME', 'usage_tracking' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.usage_tracking() IS
	'whether last_used_at is kept (it needs shared_preload_libraries = apikey), how often it is written, and what is pending';

REVOKE EXECUTE ON FUNCTION apikey._pending_last_used(apikey.key_id), apikey.usage_tracking() FROM PUBLIC;

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

CREATE OR REPLACE FUNCTION apikey.grant_verifier(role regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
BEGIN
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

-- roles that may read key_list already may read what it now calls
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
