-- Least privilege: what a plain role, a verifier (the application's login
-- role) and an administrator may do, and what hostile objects cannot do.
-- Key texts are random: they are kept in psql variables and never printed.
\set SHOW_CONTEXT never

-- try(sql): run a statement, answer 'ok' or its SQLSTATE and message
CREATE FUNCTION pg_temp.try(cmd text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE cmd;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- The extension creates no roles and grants nothing to any role: every
-- privilege on its objects belongs to its owner or is PUBLIC's.
SELECT count(*) AS roles_named_apikey FROM pg_roles WHERE rolname ~* 'apikey';
SELECT count(*) AS other_login_roles FROM pg_roles
 WHERE rolcanlogin AND oid <> (SELECT datdba FROM pg_database WHERE datname = 'template1');
SELECT count(*) AS grants_to_roles
  FROM (SELECT relacl AS acl, relowner AS owner FROM pg_class
         WHERE relnamespace = 'apikey'::regnamespace
        UNION ALL
        SELECT proacl, proowner FROM pg_proc
         WHERE pronamespace IN ('apikey'::regnamespace, 'apikey_internal'::regnamespace)
        UNION ALL
        SELECT nspacl, nspowner FROM pg_namespace WHERE nspname IN ('apikey', 'apikey_internal')) AS o,
       aclexplode(o.acl) AS a
 WHERE a.grantee NOT IN (0, o.owner);
SELECT count(*) AS roles_depending_on_extension
  FROM pg_shdepend d JOIN pg_extension e ON d.objid = e.oid AND d.classid = 'pg_extension'::regclass
 WHERE e.extname = 'apikey' AND d.deptype <> 'o';

-- Every SECURITY DEFINER function has a fixed search_path of pg_catalog
-- and pg_temp only, and no function of the extension sets any other: an
-- unqualified name in a body resolves in pg_catalog alone (functions and
-- operators are never looked up in pg_temp), never through the schema
-- apikey, where an object planted by someone else would be found first.
SELECT p.oid::regprocedure AS security_definer_without_search_path
  FROM pg_proc p
 WHERE p.pronamespace IN ('apikey'::regnamespace, 'apikey_internal'::regnamespace) AND p.prosecdef
   AND NOT EXISTS (SELECT FROM unnest(p.proconfig) AS c
                    WHERE c = 'search_path=pg_catalog, pg_temp');
SELECT p.oid::regprocedure AS search_path_through_another_schema, c
  FROM pg_proc p, unnest(p.proconfig) AS c
 WHERE p.pronamespace IN ('apikey'::regnamespace, 'apikey_internal'::regnamespace)
   AND c LIKE 'search_path=%' AND c <> 'search_path=pg_catalog, pg_temp';
SELECT p.pronamespace::regnamespace AS schema, p.proname, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace IN ('apikey'::regnamespace, 'apikey_internal'::regnamespace) AND p.prosecdef
 ORDER BY 1, 2;
-- the SQL and PL/pgSQL functions without a SET search_path: internal
-- helpers, none SECURITY DEFINER and none executable by anyone but the
-- owner, so they run only inside the SECURITY DEFINER entry points, which
-- fix the search_path for them
SELECT p.pronamespace::regnamespace AS schema, p.proname, l.lanname, p.prosecdef,
       NOT EXISTS (SELECT FROM aclexplode(p.proacl) a WHERE a.grantee <> p.proowner)
         AND p.proacl IS NOT NULL AS owner_only
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace IN ('apikey'::regnamespace, 'apikey_internal'::regnamespace)
   AND l.lanname IN ('sql', 'plpgsql') AND p.proconfig IS NULL
 ORDER BY 1, 2;

-- The schemas.  apikey holds what users call; apikey_internal the
-- functions only the extension's own functions and triggers call, out of
-- sight of \df apikey.*: no function of apikey is named like an internal
-- one (_name).
SELECT p.oid::regprocedure AS underscore_function_in_apikey
  FROM pg_proc p
 WHERE p.pronamespace = 'apikey'::regnamespace AND p.proname LIKE '\_%';
-- Both are the extension owner's, and apikey_internal a member of the
-- extension (apikey, the control file's schema, is made by CREATE EXTENSION
-- and outlives it).  Only the owner may create objects in them, and PUBLIC
-- may not even look up a name in apikey_internal: triggers are called by
-- their OID, the SECURITY DEFINER functions that call the rest run as the
-- owner, and the C code finds them without a lookup that checks USAGE.
SELECT n.nspname,
       EXISTS (SELECT FROM pg_depend d
                WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e'
                  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apikey')) AS member,
       n.nspowner = (SELECT extowner FROM pg_extension WHERE extname = 'apikey') AS owned_by_extension_owner,
       obj_description(n.oid, 'pg_namespace') IS NOT NULL AS commented
  FROM pg_namespace n WHERE n.nspname IN ('apikey', 'apikey_internal') ORDER BY 1;
SELECT n.nspname, CASE a.grantee WHEN 0 THEN 'PUBLIC' WHEN n.nspowner THEN 'owner' ELSE a.grantee::regrole::text END AS grantee,
       a.privilege_type, a.is_grantable
  FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
 WHERE n.nspname IN ('apikey', 'apikey_internal')
 ORDER BY 1, 2, 3;
SELECT n.nspname AS schema_public_may_create_in
  FROM pg_namespace n
 WHERE n.nspname IN ('apikey', 'apikey_internal') AND has_schema_privilege('public', n.oid, 'CREATE');
-- Internal functions PUBLIC may execute: none but those listed here, each
-- with the reason it needs to be.
CREATE TEMP TABLE public_internal_functions (fn regprocedure PRIMARY KEY, reason text NOT NULL);
INSERT INTO public_internal_functions VALUES
	('apikey_internal.rate_limit_summary(apikey.rate_limit[])',
	 'key_list and tenant_list call it: a view''s readers need EXECUTE on the functions it calls'),
	('apikey_internal.acting_tenant_id()',
	 'the listings'' rule, called by the views as the reading role; answers only about the caller''s own transaction'),
	('apikey_internal.sees(bigint, text, text)',
	 'the listings'' rule, called by the views as the reading role; answers only about the caller''s own transaction'),
	('apikey_internal.sees_tenant(bigint)',
	 'the listings'' rule, called by the views as the reading role; answers only about the caller''s own transaction');
SELECT p.oid::regprocedure AS internal_function_public_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'apikey_internal'::regnamespace
   AND EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
   AND p.oid NOT IN (SELECT fn FROM public_internal_functions)
 ORDER BY 1;

-- What PUBLIC may use: the type, looks_like_key, the identity functions and
-- is_admin (each answers about the caller only).
SELECT p.oid::regprocedure::text AS public_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'apikey'::regnamespace
   AND EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
 ORDER BY 1;
SELECT c.relname, a.privilege_type AS public_privilege
  FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
 WHERE c.relnamespace = 'apikey'::regnamespace AND a.grantee = 0;

-- Some keys, made by the bootstrap superuser.
SELECT apikey.create_tenant('acme') > 0 AS created, apikey.create_tenant('globex') > 0 AS created;
SELECT key_id AS acme_id, api_key AS acme_key
  FROM apikey.create_key('acme', 'production', 'acme app', scopes => '{orders:read}') \gset
SELECT key_id AS globex_id, api_key AS globex_key
  FROM apikey.create_key('globex', 'production', 'globex app', scopes => '{orders:read}') \gset
-- a key with credits: its verification charges them through an internal
-- function, whatever role verifies
SELECT key_id AS metered_id, api_key AS metered_key
  FROM apikey.create_key('acme', 'production', 'metered app', scopes => '{orders:read}') \gset
SELECT apikey.set_credits(:'metered_id', 5);

CREATE ROLE regress_plain;
CREATE ROLE regress_app;
CREATE ROLE regress_admin;

-- A plain role: can use the identity functions (empty) and looks_like_key,
-- nothing that exposes or changes keys.
SET ROLE regress_plain;
SELECT apikey.looks_like_key(:'acme_key') AS looks_like_key,
       apikey.current_tenant() AS tenant, apikey.current_key_id() AS key_id,
       apikey.has_scope('orders:read') AS has_scope;
SELECT t AS "table", pg_temp.try(format('SELECT count(*) FROM apikey.%I', t)) AS plain_role
  FROM unnest('{keys,tenants,environments,public_keys,audit,key_list,audit_log}'::text[]) AS t;
SELECT c.name, pg_temp.try(c.sql) AS plain_role
  FROM (VALUES
	('verify', format('SELECT apikey.verify(%L)', :'acme_key')),
	('authenticate', format('SELECT apikey.authenticate(%L)', :'acme_key')),
	('identify', $$SELECT apikey.identify('pk_live_x')$$),
	('create_key', $$SELECT apikey.create_key('acme', 'production', 'mine')$$),
	('rename_key', format('SELECT apikey.rename_key(%L, %L)', :'acme_id', 'x')),
	('describe_key', format('SELECT apikey.describe_key(%L, %L)', :'acme_id', 'x')),
	('revoke_key', format('SELECT apikey.revoke_key(%L)', :'acme_id')),
	('reactivate_key', format('SELECT apikey.reactivate_key(%L)', :'acme_id')),
	('roll_key', format('SELECT apikey.roll_key(%L)', :'acme_id')),
	('set_key_expiry', format('SELECT apikey.set_key_expiry(%L, now())', :'acme_id')),
	('delete_key', format('SELECT apikey.delete_key(%L)', :'acme_id')),
	('public_key', $$SELECT apikey.public_key('acme', 'production')$$),
	('regenerate_public_key', $$SELECT apikey.regenerate_public_key('acme', 'production')$$),
	('create_tenant', $$SELECT apikey.create_tenant('mine')$$),
	('create_environment', $$SELECT apikey.create_environment('acme', 'x', 'x')$$),
	('set_key_policy', $$SELECT apikey.set_key_policy('acme', NULL, NULL)$$),
	('grant_verifier', $$SELECT apikey.grant_verifier('regress_plain')$$),
	('grant_admin', $$SELECT apikey.grant_admin('regress_plain')$$),
	('internal audit', $$SELECT apikey_internal.audit('created', 1, 'acme', NULL)$$),
	('internal authorize_tenant', $$SELECT apikey_internal.authorize_tenant('acme', 'apikey:admin')$$),
	('internal generate_key', $$SELECT apikey_internal.generate_key('ak', 'live')$$),
	('create in schema apikey', $$CREATE FUNCTION apikey.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'$$),
	('create in schema apikey_internal', $$CREATE FUNCTION apikey_internal.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'$$)
  ) AS c(name, sql);
SELECT apikey.is_admin() AS is_admin;
RESET ROLE;

-- grant_verifier: the application's role.
SELECT apikey.grant_verifier('regress_app');
SET ROLE regress_app;
SELECT valid, status, tenant FROM apikey.verify(:'acme_key');
SELECT status FROM apikey.verify(:'acme_key', scope => 'orders:write');
SELECT status FROM apikey.verify('ak_live_notakey');
SELECT valid, status, remaining FROM apikey.verify(:'metered_key');
BEGIN;
SELECT status, tenant FROM apikey.authenticate(:'acme_key', 'orders:read');
SELECT apikey.current_tenant() AS tenant, apikey.current_key_id() = :'acme_id' AS key_id,
       apikey.current_environment() AS environment, apikey.current_scopes() AS scopes,
       apikey.has_scope('orders:read') AS has_read, apikey.has_scope('orders:write') AS has_write;
-- a key without apikey:admin manages nothing, not even itself
SELECT pg_temp.try($$SELECT apikey.create_key('acme', 'production', 'mine')$$) AS create_key;
SELECT pg_temp.try(format('SELECT apikey.revoke_key(%L)', :'acme_id')) AS revoke_own_key;
SELECT count(*) AS key_list_rows FROM apikey.key_list;
SELECT count(*) AS audit_log_rows FROM apikey.audit_log;
COMMIT;
-- without an authenticated admin key: nothing to manage, nothing listed
SELECT c.name, pg_temp.try(c.sql) AS verifier
  FROM (VALUES
	('create_key', $$SELECT apikey.create_key('acme', 'production', 'mine')$$),
	('rename_key', format('SELECT apikey.rename_key(%L, %L)', :'globex_id', 'x')),
	('revoke_key', format('SELECT apikey.revoke_key(%L)', :'globex_id')),
	('roll_key', format('SELECT apikey.roll_key(%L)', :'globex_id')),
	('delete_key', format('SELECT apikey.delete_key(%L)', :'globex_id')),
	('set_key_expiry', format('SELECT apikey.set_key_expiry(%L, now())', :'globex_id')),
	('public_key', $$SELECT apikey.public_key('globex', 'production')$$),
	('create_tenant', $$SELECT apikey.create_tenant('mine')$$),
	('create_environment', $$SELECT apikey.create_environment('acme', 'x', 'x')$$),
	('set_key_policy', $$SELECT apikey.set_key_policy('acme', NULL, NULL)$$),
	('grant_admin', $$SELECT apikey.grant_admin('regress_app')$$),
	('read keys', 'SELECT count(*) FROM apikey.keys'),
	('read key hashes', 'SELECT key_hash FROM apikey.keys LIMIT 1'),
	('read tenants', 'SELECT slug FROM apikey.tenants'),
	('read audit', 'SELECT count(*) FROM apikey.audit')
  ) AS c(name, sql);
SELECT count(*) AS key_list_rows FROM apikey.key_list;
SELECT count(*) AS audit_log_rows FROM apikey.audit_log;
SELECT apikey.is_admin() AS is_admin;
-- granting itself more does not work either
GRANT EXECUTE ON FUNCTION apikey.create_tenant(text, text, text[], text, interval, interval) TO regress_app;
SELECT apikey.is_admin() AS is_admin;
RESET ROLE;
-- Internal functions (schema apikey_internal) are executable by no one but
-- their owner, and the schema usable by no one else, after grant_verifier
-- and grant_admin as before: the listings and every right come through the
-- public functions.  Except the listings' rule (authz.c), which the views
-- call as the role reading them: every role may execute
-- apikey_internal.acting_tenant_id, sees and sees_tenant, which answer only
-- about the caller's own transaction (as is_admin does).
SELECT apikey.grant_admin('regress_admin');
SELECT p.oid::regprocedure::text AS internal_function,
       coalesce((SELECT string_agg(g, ', ' ORDER BY g)
                   FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a,
                        CAST(CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS text) AS g
                  WHERE a.grantee <> p.proowner), 'owner only') AS executable_by
  FROM pg_proc p
 WHERE p.pronamespace = 'apikey_internal'::regnamespace
 ORDER BY 1;
SELECT r AS role, has_schema_privilege(r, 'apikey_internal', 'USAGE') AS internal_usage,
       has_schema_privilege(r, 'apikey_internal', 'CREATE') AS internal_create
  FROM unnest('{regress_plain,regress_app,regress_admin}'::text[]) AS r;
-- usage_tracking() tells server-wide counts: administrators only
SELECT has_function_privilege('regress_app', 'apikey.usage_tracking()', 'EXECUTE') AS verifier_usage_tracking,
       has_function_privilege('regress_admin', 'apikey.usage_tracking()', 'EXECUTE') AS admin_usage_tracking;
-- the verifier's rights, as a catalog sees them
SELECT p.oid::regprocedure::text AS verifier_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'apikey'::regnamespace
   AND has_function_privilege('regress_app', p.oid, 'EXECUTE')
   AND NOT has_function_privilege('regress_plain', p.oid, 'EXECUTE')
 ORDER BY 1;
SELECT c.relname, has_table_privilege('regress_app', c.oid, 'SELECT') AS sel,
       has_table_privilege('regress_app', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE') AS write
  FROM pg_class c
 WHERE c.relnamespace = 'apikey'::regnamespace AND c.relkind IN ('r', 'v', 'S')
 ORDER BY c.relname;

-- grant_delegate: the application's dashboard role, which acts for tenant
-- members (act_for) and by itself manages nothing: the management
-- functions act_for confines and the listings, nothing an administrator
-- or a verifier has besides (no verify, authenticate, set_actor, tenants).
CREATE ROLE regress_dashboard;
SELECT apikey.grant_delegate('regress_dashboard');
SELECT p.oid::regprocedure::text AS delegate_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'apikey'::regnamespace
   AND has_function_privilege('regress_dashboard', p.oid, 'EXECUTE')
   AND NOT has_function_privilege('regress_plain', p.oid, 'EXECUTE')
 ORDER BY 1;
SELECT c.relname AS delegate_may_read
  FROM pg_class c
 WHERE c.relnamespace = 'apikey'::regnamespace
   AND has_table_privilege('regress_dashboard', c.oid, 'SELECT')
 ORDER BY 1;
SELECT count(*) AS delegate_may_write
  FROM pg_class c
 WHERE c.relnamespace = 'apikey'::regnamespace
   AND has_table_privilege('regress_dashboard', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE');
SET ROLE regress_dashboard;
SELECT apikey.is_admin() AS is_admin, (SELECT count(*) FROM apikey.key_list) AS keys_seen,
       pg_temp.try($$SELECT apikey.create_key('acme', 'production', 'x')$$) AS create_key;
RESET ROLE;
SELECT pg_temp.try($$SELECT apikey.grant_delegate('regress_nobody')$$) AS unknown_role;
DROP OWNED BY regress_dashboard;
DROP ROLE regress_dashboard;

-- grant_admin: manages every tenant (psql administration).
SET ROLE regress_admin;
SELECT apikey.is_admin() AS is_admin;
SELECT apikey.create_tenant('initech') > 0 AS created;
SELECT key_id AS initech_id FROM apikey.create_key('initech', 'preview', 'ci', scopes => '{*}') \gset
SELECT apikey.rename_key(:'globex_id', 'globex app, renamed by the admin');
SELECT apikey.revoke_key(:'globex_id', 'rotated');
SELECT apikey.reactivate_key(:'globex_id');
SELECT apikey.public_key('globex', 'production') ~ '^pk_live_' AS public_key;
SELECT apikey.create_environment('initech', 'staging', 'stg');
SELECT tenant, environment, name, status,
       CASE WHEN created_by = session_user THEN 'bootstrap superuser' ELSE created_by END AS created_by
  FROM apikey.key_list ORDER BY tenant, name;
SELECT action, tenant, actor_role, actor_key_id FROM apikey.audit_log
 WHERE actor_role = 'regress_admin' ORDER BY event_id;
-- even an administrator never reads a hash
SELECT pg_temp.try('SELECT key_hash FROM apikey.keys LIMIT 1') AS read_key_hashes;
SELECT count(*) FILTER (WHERE k.api_key IS NOT NULL) AS secrets_in_key_list
  FROM (SELECT to_jsonb(l) ->> 'api_key' AS api_key FROM apikey.key_list l) AS k;
SELECT apikey.delete_key(:'initech_id');
RESET ROLE;

-- Rights are those of the calling role, never those of the owner of a
-- SECURITY DEFINER function in between: an administrator's wrapper called
-- by a verifier manages nothing and lists nothing for it.
CREATE FUNCTION public.admin_wrapper(what text) RETURNS text
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
	IF what = 'list' THEN
		RETURN (SELECT count(*) FROM apikey.key_list)::text;
	END IF;
	RETURN apikey.create_key('globex', 'production', 'via wrapper')::text;
EXCEPTION WHEN insufficient_privilege THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
ALTER FUNCTION public.admin_wrapper(text) OWNER TO regress_admin;
GRANT EXECUTE ON FUNCTION public.admin_wrapper(text) TO regress_app;
SET ROLE regress_admin;
SELECT public.admin_wrapper('list')::int > 0 AS admin_lists_through_it;
SET ROLE regress_app;
SELECT public.admin_wrapper('create') AS verifier_creates_through_it,
       public.admin_wrapper('list') AS verifier_lists_through_it;
RESET ROLE;
DROP FUNCTION public.admin_wrapper(text);

-- Hostile objects.  regress_evil is a verifier that may create objects in
-- public.  It shadows built-ins the management functions use, with
-- functions that raise, plus a has_function_privilege that says yes to
-- everything, temp tables named like the extension's tables, and public
-- tables likewise.
CREATE ROLE regress_evil;
SELECT apikey.grant_verifier('regress_evil');
GRANT CREATE ON SCHEMA public TO regress_evil;
SET ROLE regress_evil;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'hijacked: now()'; END$$;
CREATE FUNCTION public.length(text) RETURNS integer LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'hijacked: length()'; END$$;
CREATE FUNCTION public.btrim(text) RETURNS text LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'hijacked: btrim()'; END$$;
CREATE FUNCTION public.cardinality(anyarray) RETURNS integer LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'hijacked: cardinality()'; END$$;
CREATE FUNCTION public.format(text) RETURNS text LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'hijacked: format()'; END$$;
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'hijacked: format()'; END$$;
CREATE FUNCTION public.has_function_privilege(regrole, oid, text) RETURNS boolean
	LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION public.has_function_privilege(oid, oid, text) RETURNS boolean
	LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION public.evil_eq(text, text) RETURNS boolean LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'hijacked: text = text'; END$$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_eq);
CREATE FUNCTION public.evil_ne(bigint, bigint) RETURNS boolean LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'hijacked: bigint <> bigint'; END$$;
CREATE OPERATOR public.<> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.evil_ne);
CREATE FUNCTION public.evil_match(text, text) RETURNS boolean LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'hijacked: text ~ text'; END$$;
CREATE OPERATOR public.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_match);
CREATE FUNCTION public.evil_le(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'hijacked: timestamptz <= timestamptz'; END$$;
CREATE OPERATOR public.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.evil_le);
CREATE TABLE public.keys (LIKE pg_catalog.pg_class);
CREATE TABLE public.tenants (slug text);
CREATE TEMP TABLE keys (key_id text, key_hash bytea);
CREATE TEMP TABLE tenants (tenant_id bigint, slug text);
CREATE TEMP TABLE audit (action text);
CREATE TEMP TABLE environments (name text);
CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'hijacked: pg_temp.now()'; END$$;
-- the most hostile search_path: public and pg_temp before pg_catalog
SET search_path = public, pg_temp, pg_catalog;
-- the shadows are live: unqualified calls in this session reach them
SELECT now();
SELECT format('%s', 'x');
SELECT 'a'::text = 'a'::text;
SELECT has_function_privilege('regress_evil'::regrole, 'apikey.create_tenant'::regproc::oid, 'EXECUTE') AS shadow_says;
-- but none of them reaches the extension: still not an administrator
SELECT apikey.is_admin() AS is_admin;
SELECT c.name, pg_temp.try(c.sql) AS evil_verifier
  FROM (VALUES
	('create_key', $$SELECT apikey.create_key('acme', 'production', 'mine', scopes => '{*}')$$),
	('revoke_key', pg_catalog.format('SELECT apikey.revoke_key(%L)', :'acme_id')),
	('create_tenant', $$SELECT apikey.create_tenant('evil')$$)
  ) AS c(name, sql);
SELECT valid, status FROM apikey.verify(:'acme_key');
SELECT valid, status FROM apikey.verify(:'acme_key', 'production', 'orders:read');
BEGIN;
SELECT status FROM apikey.authenticate(:'acme_key');
SELECT apikey.current_tenant() AS tenant;
COMMIT;
RESET search_path;
RESET ROLE;

-- The administrator runs every management function with the hostile
-- search_path: no shadow fires, the real tables are written.
SET ROLE regress_admin;
SET search_path = public, pg_temp, pg_catalog;
SELECT apikey.create_tenant('hooli', 'Hooli', '{production,preview,staging:stg}',
       default_key_lifetime => '30 days', max_key_lifetime => '1 year') > 0 AS created;
SELECT apikey.set_key_policy('hooli', '30 days', '1 year', 'hoo');
SELECT key_id AS hooli_id, api_key AS hooli_key
  FROM apikey.create_key('hooli', 'production', 'hooli app', 'with a description',
                         '{orders:read,orders:write}', '7 days', 'collection:1') \gset
SELECT apikey.rename_key(:'hooli_id', 'hooli app 2');
SELECT apikey.describe_key(:'hooli_id', 'another description');
SELECT apikey.revoke_key(:'hooli_id', 'testing');
SELECT apikey.reactivate_key(:'hooli_id');
SELECT apikey.roll_key(:'hooli_id', '1 hour') AS hooli_key2 \gset
SELECT :'hooli_key2' LIKE 'hoo\_live\_%' AS rolled_with_policy_prefix;
SELECT apikey.set_key_expiry(:'hooli_id', pg_catalog.now() OPERATOR(pg_catalog.+) '1 day');
SELECT apikey.public_key('hooli', 'production') IS NOT NULL AS public_key;
SELECT apikey.regenerate_public_key('hooli', 'production') IS NOT NULL AS regenerated;
SELECT count(*) AS identified FROM apikey.identify(apikey.public_key('hooli', 'production'));
SELECT valid, status FROM apikey.verify(:'hooli_key2', 'production', 'orders:write', 'collection:1');
SELECT valid, status FROM apikey.verify(:'hooli_key', 'production', 'orders:write', 'collection:1');
-- (this query is the test's own: it runs with a safe search_path)
RESET search_path;
SELECT name, description, status, scopes, resource, expires_at < now() + '2 days' AS expiry_set,
       previous_secret_expires_at IS NOT NULL AS in_grace
  FROM apikey.key_list WHERE tenant = 'hooli';
SET search_path = public, pg_temp, pg_catalog;
SELECT apikey.delete_key(:'hooli_id');
RESET search_path;
SELECT count(*) AS hooli_keys FROM apikey.key_list WHERE tenant = 'hooli';
SELECT array_agg(action ORDER BY event_id) AS hooli_audit FROM apikey.audit_log WHERE tenant = 'hooli';
RESET ROLE;
SELECT (SELECT count(*) FROM pg_temp.keys) + (SELECT count(*) FROM pg_temp.tenants)
     + (SELECT count(*) FROM pg_temp.audit) + (SELECT count(*) FROM pg_temp.environments)
     + (SELECT count(*) FROM public.keys) + (SELECT count(*) FROM public.tenants) AS rows_in_shadow_tables;
DROP OWNED BY regress_evil;
REVOKE CREATE ON SCHEMA public FROM regress_evil;

-- psql administration: every object of the extension says what it is
-- (\dx+ apikey lists them); none lacks a comment.  Not the objects made
-- along with another (a table's row type, a type's array type: internal
-- dependencies), which are members too from PostgreSQL 17.
SELECT pg_describe_object(d.classid, d.objid, 0) AS uncommented
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apikey')
   AND d.deptype = 'e'
   AND obj_description(d.objid, d.classid::regclass::text) IS NULL
   AND NOT EXISTS (SELECT FROM pg_depend i
                    WHERE i.classid = d.classid AND i.objid = d.objid AND i.deptype = 'i')
 ORDER BY 1;
-- Nor a column of a view of the schema (\d+ apikey.key_list says what each
-- column holds): a new column needs its COMMENT.
SELECT c.relname AS view, a.attname AS uncommented_column
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
 WHERE c.relnamespace = 'apikey'::regnamespace AND c.relkind IN ('v', 'm')
   AND a.attnum > 0 AND NOT a.attisdropped
   AND col_description(c.oid, a.attnum) IS NULL
 ORDER BY 1, 2;
SELECT count(*) AS view_columns, count(col_description(c.oid, a.attnum)) AS commented
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
 WHERE c.relnamespace = 'apikey'::regnamespace AND c.relkind IN ('v', 'm')
   AND a.attnum > 0 AND NOT a.attisdropped;
