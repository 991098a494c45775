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
	       'keys', 'key_roles', 'credits', 'imported_keys', 'owner_rate_limits'])
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
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.owner_rate_limits
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.refuse_on_subscriber();
