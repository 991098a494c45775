-- apikey 0.3.0 -> 0.4.0
\echo Use "ALTER EXTENSION apikey UPDATE TO '0.4.0'" to load this file. \quit

-- Events are best-effort: dropped, and counted, when the NOTIFY queue is
-- too full to take them.
CREATE FUNCTION apikey.events_dropped() RETURNS bigint
	AS 'MODULE_PATHNAME', 'events_dropped' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION apikey.events_dropped() IS
	'events not sent on apikey_events since the server started because the NOTIFY queue was too full (they are in audit_log); NULL without shared_preload_libraries';
REVOKE EXECUTE ON FUNCTION apikey.events_dropped() FROM PUBLIC;

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
	SET search_path = pg_catalog, apikey, pg_temp
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
	SET search_path = pg_catalog, apikey, pg_temp
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
		apikey.events_dropped()
		TO %s', role);
END
$$;
COMMENT ON FUNCTION apikey.grant_admin(regrole) IS
	'let a role manage every tenant and key (psql administration); whoever may execute create_tenant is an administrator';

-- the full administrators (who may create tenants) named before get the
-- new functions too
DO $$
DECLARE
	r pg_catalog.regrole;
BEGIN
	FOR r IN
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=)
		       'apikey.create_tenant(text, text, text[], text, interval, interval)'::pg_catalog.regprocedure
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
		   AND a.grantee OPERATOR(pg_catalog.<>) 0
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION apikey.events_dropped(), apikey.rate_limit_tenants() TO %s', r);
	END LOOP;
END
$$;
