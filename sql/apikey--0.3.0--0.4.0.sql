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
