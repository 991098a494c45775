-- apikey 0.3.0, as released: the full install script of that version (frozen).
\echo Use "CREATE EXTENSION apikey" to load this file. \quit

-- sql/apikey/types.sql
-- The schema apikey must be the extension's own: created by CREATE
-- EXTENSION, or an empty schema of the installing role that no one else may
-- create objects in.  A schema someone else owns (or can write to) could
-- hold objects that the extension's functions, running as its owner, would
-- find; installing into it would hand that role the owner's rights.  Every
-- name below is qualified: nothing in the schema is trusted yet.
DO $$
DECLARE
	nsp pg_catalog.oid;
	owner pg_catalog.name;
BEGIN
	SELECT n.oid, pg_catalog.pg_get_userbyid(n.nspowner) INTO nsp, owner
	  FROM pg_catalog.pg_namespace AS n WHERE n.nspname OPERATOR(pg_catalog.=) 'apikey';
	IF owner OPERATOR(pg_catalog.<>) CURRENT_USER THEN
		RAISE EXCEPTION 'schema apikey already exists and is owned by role %', owner
			USING ERRCODE = 'duplicate_schema',
			      DETAIL = 'CREATE EXTENSION apikey installs into a schema of its own.',
			      HINT = 'Drop or rename that schema, then run CREATE EXTENSION apikey again.';
	END IF;
	IF EXISTS (SELECT FROM pg_catalog.pg_depend AS d
	            WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
	              AND d.refobjid OPERATOR(pg_catalog.=) nsp
	              AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_extension'::pg_catalog.regclass)
	   OR EXISTS (SELECT FROM pg_catalog.pg_namespace AS n, pg_catalog.aclexplode(n.nspacl) AS a
	               WHERE n.oid OPERATOR(pg_catalog.=) nsp AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
	                 AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner) THEN
		RAISE EXCEPTION 'schema apikey already exists and is not empty, or others may create objects in it'
			USING ERRCODE = 'duplicate_schema',
			      DETAIL = 'CREATE EXTENSION apikey installs into a schema of its own.',
			      HINT = 'Drop or rename that schema, then run CREATE EXTENSION apikey again.';
	END IF;
END
$$;

-- apikey.key_id: the public, non-secret handle of a key (64 bits).
-- Text form: 11 base62 characters, also the first 11 characters of the key
-- text's body.

CREATE TYPE apikey.key_id;

CREATE FUNCTION apikey.key_id_in(cstring) RETURNS apikey.key_id
	AS 'MODULE_PATHNAME', 'key_id_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_out(apikey.key_id) RETURNS cstring
	AS 'MODULE_PATHNAME', 'key_id_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_recv(internal) RETURNS apikey.key_id
	AS 'MODULE_PATHNAME', 'key_id_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_send(apikey.key_id) RETURNS bytea
	AS 'MODULE_PATHNAME', 'key_id_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE apikey.key_id (
	INPUT = apikey.key_id_in,
	OUTPUT = apikey.key_id_out,
	RECEIVE = apikey.key_id_recv,
	SEND = apikey.key_id_send,
	INTERNALLENGTH = 8,
	PASSEDBYVALUE,
	ALIGNMENT = double,
	STORAGE = plain
);
COMMENT ON TYPE apikey.key_id IS 'public handle of an API key: 64 bits, written as 11 base62 characters';

COMMENT ON FUNCTION apikey.key_id_in(cstring) IS 'key_id input: 11 base62 characters';
COMMENT ON FUNCTION apikey.key_id_out(apikey.key_id) IS 'key_id output: 11 base62 characters';
COMMENT ON FUNCTION apikey.key_id_recv(internal) IS 'key_id binary input: 8 bytes';
COMMENT ON FUNCTION apikey.key_id_send(apikey.key_id) IS 'key_id binary output: 8 bytes';

CREATE FUNCTION apikey.key_id_eq(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_eq' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_ne(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_ne' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_lt(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_lt' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_le(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_le' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_gt(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_gt' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_ge(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_ge' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_cmp(apikey.key_id, apikey.key_id) RETURNS integer
	AS 'MODULE_PATHNAME', 'key_id_cmp' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_sortsupport(internal) RETURNS void
	AS 'MODULE_PATHNAME', 'key_id_sortsupport' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_hash(apikey.key_id) RETURNS integer
	AS 'MODULE_PATHNAME', 'key_id_hash' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;
CREATE FUNCTION apikey.key_id_hash_extended(apikey.key_id, bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'key_id_hash_extended' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;

COMMENT ON FUNCTION apikey.key_id_eq(apikey.key_id, apikey.key_id) IS 'key_id equality';
COMMENT ON FUNCTION apikey.key_id_ne(apikey.key_id, apikey.key_id) IS 'key_id inequality';
COMMENT ON FUNCTION apikey.key_id_lt(apikey.key_id, apikey.key_id) IS 'key_id less than';
COMMENT ON FUNCTION apikey.key_id_le(apikey.key_id, apikey.key_id) IS 'key_id less than or equal';
COMMENT ON FUNCTION apikey.key_id_gt(apikey.key_id, apikey.key_id) IS 'key_id greater than';
COMMENT ON FUNCTION apikey.key_id_ge(apikey.key_id, apikey.key_id) IS 'key_id greater than or equal';
COMMENT ON FUNCTION apikey.key_id_cmp(apikey.key_id, apikey.key_id) IS 'key_id btree comparison';
COMMENT ON FUNCTION apikey.key_id_sortsupport(internal) IS 'key_id btree sort support';
COMMENT ON FUNCTION apikey.key_id_hash(apikey.key_id) IS 'key_id hash';
COMMENT ON FUNCTION apikey.key_id_hash_extended(apikey.key_id, bigint) IS 'key_id seeded hash';

-- The comparison operators live in pg_catalog, like those of built-in types,
-- so that "key_id = '...'" works whatever the search_path.  They overload
-- only apikey.key_id, so they shadow nothing.
CREATE OPERATOR pg_catalog.= (
	LEFTARG = apikey.key_id, RIGHTARG = apikey.key_id, PROCEDURE = apikey.key_id_eq,
	COMMUTATOR = OPERATOR(pg_catalog.=), NEGATOR = OPERATOR(pg_catalog.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR pg_catalog.<> (
	LEFTARG = apikey.key_id, RIGHTARG = apikey.key_id, PROCEDURE = apikey.key_id_ne,
	COMMUTATOR = OPERATOR(pg_catalog.<>), NEGATOR = OPERATOR(pg_catalog.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR pg_catalog.< (
	LEFTARG = apikey.key_id, RIGHTARG = apikey.key_id, PROCEDURE = apikey.key_id_lt,
	COMMUTATOR = OPERATOR(pg_catalog.>), NEGATOR = OPERATOR(pg_catalog.>=),
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR pg_catalog.<= (
	LEFTARG = apikey.key_id, RIGHTARG = apikey.key_id, PROCEDURE = apikey.key_id_le,
	COMMUTATOR = OPERATOR(pg_catalog.>=), NEGATOR = OPERATOR(pg_catalog.>),
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR pg_catalog.> (
	LEFTARG = apikey.key_id, RIGHTARG = apikey.key_id, PROCEDURE = apikey.key_id_gt,
	COMMUTATOR = OPERATOR(pg_catalog.<), NEGATOR = OPERATOR(pg_catalog.<=),
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR pg_catalog.>= (
	LEFTARG = apikey.key_id, RIGHTARG = apikey.key_id, PROCEDURE = apikey.key_id_ge,
	COMMUTATOR = OPERATOR(pg_catalog.<=), NEGATOR = OPERATOR(pg_catalog.<),
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);

CREATE OPERATOR CLASS apikey.key_id_ops DEFAULT FOR TYPE apikey.key_id USING btree AS
	OPERATOR 1 pg_catalog.<,
	OPERATOR 2 pg_catalog.<=,
	OPERATOR 3 pg_catalog.=,
	OPERATOR 4 pg_catalog.>=,
	OPERATOR 5 pg_catalog.>,
	FUNCTION 1 apikey.key_id_cmp(apikey.key_id, apikey.key_id),
	FUNCTION 2 apikey.key_id_sortsupport(internal);

CREATE OPERATOR CLASS apikey.key_id_hash_ops DEFAULT FOR TYPE apikey.key_id USING hash AS
	OPERATOR 1 pg_catalog.=,
	FUNCTION 1 apikey.key_id_hash(apikey.key_id),
	FUNCTION 2 apikey.key_id_hash_extended(apikey.key_id, bigint);

COMMENT ON OPERATOR pg_catalog.= (apikey.key_id, apikey.key_id) IS 'key_id equal';
COMMENT ON OPERATOR pg_catalog.<> (apikey.key_id, apikey.key_id) IS 'key_id not equal';
COMMENT ON OPERATOR pg_catalog.< (apikey.key_id, apikey.key_id) IS 'key_id less than';
COMMENT ON OPERATOR pg_catalog.<= (apikey.key_id, apikey.key_id) IS 'key_id less than or equal';
COMMENT ON OPERATOR pg_catalog.> (apikey.key_id, apikey.key_id) IS 'key_id greater than';
COMMENT ON OPERATOR pg_catalog.>= (apikey.key_id, apikey.key_id) IS 'key_id greater than or equal';
COMMENT ON OPERATOR CLASS apikey.key_id_ops USING btree IS 'btree (ordering) support for key_id';
COMMENT ON OPERATOR FAMILY apikey.key_id_ops USING btree IS 'btree (ordering) support for key_id';
COMMENT ON OPERATOR CLASS apikey.key_id_hash_ops USING hash IS 'hash support for key_id';
COMMENT ON OPERATOR FAMILY apikey.key_id_hash_ops USING hash IS 'hash support for key_id';

-- The answer of verify() and authenticate().
CREATE TYPE apikey.verification AS (
	valid       boolean,
	status      text,
	key_id      apikey.key_id,
	tenant      text,
	environment text,
	scopes      text[],
	resource    text,
	expires_at  timestamptz,
	tenant_id   bigint,
	owner       text,
	meta        jsonb,
	remaining   bigint,
	retry_after interval,
	resources   text[]
);
COMMENT ON TYPE apikey.verification IS 'result of apikey.verify and apikey.authenticate; the key''s fields are set only once its secret was proven';

-- A named rate limit: at most max_requests per interval.
CREATE TYPE apikey.rate_limit AS (
	name         text,
	max_requests integer,
	per          interval
);
COMMENT ON TYPE apikey.rate_limit IS 'a named rate limit of a key or a tenant: max_requests per interval';

-- sql/apikey/verify.sql
-- Verification and the authenticated identity (C).

CREATE FUNCTION apikey.looks_like_key(api_key text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'looks_like_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikey.looks_like_key(text) IS
	'does the text have the form and checksum of an apikey key (private or public)? No table access';

CREATE FUNCTION apikey.verify(api_key text, environment text DEFAULT NULL,
		scope text DEFAULT NULL, resource text DEFAULT NULL,
		cost integer DEFAULT 1, client_ip inet DEFAULT NULL)
	RETURNS apikey.verification
	AS 'MODULE_PATHNAME', 'verify' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey.verify(text, text, text, text, integer, inet) IS
	'check an API key: status valid, malformed, not_found, revoked, expired, wrong_environment, insufficient_scope, wrong_resource, public_key, ip_not_allowed, rate_limited or usage_exceeded; writes nothing unless the key has credits';

CREATE FUNCTION apikey.authenticate(api_key text, scope text DEFAULT NULL,
		cost integer DEFAULT 1, client_ip inet DEFAULT NULL)
	RETURNS apikey.verification
	AS 'MODULE_PATHNAME', 'authenticate' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey.authenticate(text, text, integer, inet) IS
	'verify an API key (in the environment of apikey.environment) and make it the identity of this transaction; when it is not valid raises SQLSTATE KA429 (rate_limited), KA402 (usage_exceeded) or 28000 (any other status)';

-- The identity: backend memory of this transaction only.  PARALLEL
-- RESTRICTED because parallel workers do not share it.
CREATE FUNCTION apikey.current_tenant() RETURNS text
	AS 'MODULE_PATHNAME', 'current_tenant' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.current_tenant() IS
	'slug of the tenant this transaction was authenticated as, or NULL';

CREATE FUNCTION apikey.current_tenant_id() RETURNS bigint
	AS 'MODULE_PATHNAME', 'current_tenant_id' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.current_tenant_id() IS
	'id of the tenant this transaction was authenticated as, or NULL';

CREATE FUNCTION apikey.current_key_id() RETURNS apikey.key_id
	AS 'MODULE_PATHNAME', 'current_key_id' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.current_key_id() IS
	'id of the key this transaction was authenticated with, or NULL';

CREATE FUNCTION apikey.current_environment() RETURNS text
	AS 'MODULE_PATHNAME', 'current_environment' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.current_environment() IS
	'environment of the key this transaction was authenticated with, or NULL';

CREATE FUNCTION apikey.current_scopes() RETURNS text[]
	AS 'MODULE_PATHNAME', 'current_scopes' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.current_scopes() IS
	'scopes of the key this transaction was authenticated with, or NULL';

CREATE FUNCTION apikey.current_resource() RETURNS text
	AS 'MODULE_PATHNAME', 'current_resource' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.current_resource() IS
	'resource the authenticated key is restricted to when it is restricted to exactly one, or NULL';

CREATE FUNCTION apikey.current_resources() RETURNS text[]
	AS 'MODULE_PATHNAME', 'current_resources' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.current_resources() IS
	'resources the authenticated key is restricted to (patterns such as "collection:*" included), or NULL';

CREATE FUNCTION apikey.has_scope(scope text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'has_scope' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.has_scope(text) IS
	'does the authenticated key hold the scope (directly or by a * wildcard)? false when not authenticated';

CREATE FUNCTION apikey.can_access(resource text, scope text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'can_access' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.can_access(text, text) IS
	'may the authenticated key use the scope on the resource? A resource-restricted key reaches its own resources only ("type:*" covers every id of the type)';

-- Who may manage which keys (authz.c).
CREATE FUNCTION apikey.is_admin() RETURNS boolean
	AS 'MODULE_PATHNAME', 'is_admin' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.is_admin() IS
	'may the calling role manage every tenant (may it execute apikey.create_tenant)? Answers about the caller only';

-- Internal (executable by the owner only, called from the SECURITY DEFINER
-- entry points): the calling role and the rule of management rights.
CREATE FUNCTION apikey._caller() RETURNS regrole
	AS 'MODULE_PATHNAME', 'caller' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey._caller() IS
	'internal: the calling role, unaffected by SECURITY DEFINER';

CREATE FUNCTION apikey._authorized_tenant(slug text) RETURNS text
	AS 'MODULE_PATHNAME', 'authorized_tenant' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey._authorized_tenant(text) IS
	'internal: the slug, if the caller may manage that tenant''s keys at all; raises 42501 otherwise';

CREATE FUNCTION apikey._authorize(tenant text, environment text, scopes text[], resources text[])
	RETURNS void
	AS 'MODULE_PATHNAME', 'authorize' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey._authorize(text, text, text[], text[]) IS
	'internal: the rule of every management function (tenant, environment, scopes and resources covered by a tenant administrator''s key); raises 42501 otherwise';

-- last_used_at (usage.c)
CREATE FUNCTION apikey.usage_tracking() RETURNS text
	AS 'MODULE_PATHNAME', 'usage_tracking' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.usage_tracking() IS
	'whether last_used_at is kept (it needs shared_preload_libraries = apikey), how often it is written, and what is pending';

-- sql/apikey/tenants.sql
-- Tenants, their environments and public keys; the audit trail; the
-- authorization of management calls.

CREATE SEQUENCE apikey.tenants_tenant_id_seq;
CREATE TABLE apikey.tenants (
	tenant_id            bigint PRIMARY KEY DEFAULT nextval('apikey.tenants_tenant_id_seq'),
	slug                 text NOT NULL UNIQUE
	                     CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
	name                 text CHECK (length(name) <= 200),
	key_prefix           text NOT NULL DEFAULT 'ak'
	                     CHECK (key_prefix ~ '^[a-z0-9]{1,8}$' AND key_prefix <> 'pk'),
	default_key_lifetime interval CHECK (default_key_lifetime > '0'),
	max_key_lifetime     interval CHECK (max_key_lifetime > '0'),
	created_at           timestamptz NOT NULL DEFAULT now(),
	created_by           text NOT NULL,
	rate_limits          apikey.rate_limit[]    -- one budget for all its keys (usage.sql)
	-- (a default lifetime within the maximum is checked as times, by
	-- _check_key_policy: as intervals, '364 days' is more than '12 mons')
);
ALTER SEQUENCE apikey.tenants_tenant_id_seq OWNED BY apikey.tenants.tenant_id;
COMMENT ON SEQUENCE apikey.tenants_tenant_id_seq IS 'tenant ids';
COMMENT ON TABLE apikey.tenants IS 'customer accounts; keys never cross tenants';

CREATE TABLE apikey.environments (
	tenant_id  bigint NOT NULL REFERENCES apikey.tenants ON DELETE CASCADE,
	name       text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
	tag        text NOT NULL CHECK (tag ~ '^[a-z0-9]{1,8}$'),
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, name),
	UNIQUE (tenant_id, tag)
);
COMMENT ON TABLE apikey.environments IS 'deployment stages of a tenant (production/live, preview/test, ...); a key is valid in its own only';

CREATE TABLE apikey.public_keys (
	key_id      apikey.key_id PRIMARY KEY,
	tenant_id   bigint NOT NULL,
	environment text NOT NULL,
	public_key  text NOT NULL UNIQUE,
	created_at  timestamptz NOT NULL DEFAULT now(),
	UNIQUE (tenant_id, environment),
	FOREIGN KEY (tenant_id, environment) REFERENCES apikey.environments ON DELETE CASCADE
);
COMMENT ON TABLE apikey.public_keys IS 'one public key per tenant environment: identifies, never authenticates';

CREATE SEQUENCE apikey.audit_event_id_seq;
CREATE TABLE apikey.audit (
	event_id     bigint PRIMARY KEY DEFAULT nextval('apikey.audit_event_id_seq'),
	at           timestamptz NOT NULL DEFAULT now(),
	actor_role   text NOT NULL,
	actor_key_id apikey.key_id,
	tenant_id    bigint NOT NULL,
	tenant       text NOT NULL,
	key_id       apikey.key_id,
	action       text NOT NULL,     -- see the README for the list
	details      jsonb NOT NULL DEFAULT '{}',
	-- version 0.3.0
	actor        text               -- apikey.set_actor: the human behind the change
);
ALTER SEQUENCE apikey.audit_event_id_seq OWNED BY apikey.audit.event_id;
COMMENT ON SEQUENCE apikey.audit_event_id_seq IS 'audit event ids, in the order events happened';
COMMENT ON TABLE apikey.audit IS 'who did what to which tenant or key; no foreign keys, so it outlives deleted keys';

-- The internal functions below (named _*) are called only from the
-- SECURITY DEFINER entry points, which fix the search_path, and are
-- executable by no one else.  Called directly (by the owner), they still
-- answer bad arguments with a clear error.

CREATE FUNCTION apikey._require(what text, present boolean) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF present IS NOT TRUE THEN
		RAISE EXCEPTION '% must not be null', coalesce(what, 'argument')
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
END
$$;
COMMENT ON FUNCTION apikey._require(text, boolean) IS
	'internal: raise "<what> must not be null" unless present';

-- Record an event as the calling role and, when authenticated, key; and
-- the human behind it when the transaction is labelled (set_actor).
CREATE FUNCTION apikey._audit(action text, tenant_id bigint, tenant text,
		key_id apikey.key_id, details jsonb DEFAULT '{}')
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	PERFORM apikey._require('action, tenant_id and tenant', action IS NOT NULL
		AND tenant_id IS NOT NULL AND tenant IS NOT NULL);
	INSERT INTO apikey.audit (actor_role, actor_key_id, tenant_id, tenant, key_id, action, details, actor)
	VALUES (apikey._caller()::text, apikey.current_key_id(), $2, $3, $4, $1, coalesce($5, '{}'),
	        apikey._actor());
END
$$;
COMMENT ON FUNCTION apikey._audit(text, bigint, text, apikey.key_id, jsonb) IS
	'internal: append to the audit trail';

CREATE FUNCTION apikey._deny(message text, hint text DEFAULT NULL)
	RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
		MESSAGE = coalesce(message, 'permission denied'),
		HINT = coalesce(hint, 'Administrators are named with apikey.grant_admin; a tenant''s own administrators authenticate with a key holding apikey:admin.');
END
$$;
COMMENT ON FUNCTION apikey._deny(text, text) IS 'internal: raise permission denied';

-- Only full administrators (tenant-level settings, new tenants).
CREATE FUNCTION apikey._authorize_admin() RETURNS void LANGUAGE plpgsql STABLE
AS $$
BEGIN
	IF apikey.current_tenant_id() IS NOT NULL OR NOT apikey.is_admin() THEN
		PERFORM apikey._deny('permission denied: only an apikey administrator may do this');
	END IF;
END
$$;
COMMENT ON FUNCTION apikey._authorize_admin() IS
	'internal: raise unless the caller is a full administrator (not acting as a key)';

-- The tenant with this slug, if the caller may manage its keys (see
-- _authorized_tenant); raises 42501 or 42704 otherwise.
CREATE FUNCTION apikey._authorize_tenant(slug text) RETURNS apikey.tenants
	LANGUAGE plpgsql STABLE
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	slug := apikey._authorized_tenant(slug);
	SELECT * INTO t FROM apikey.tenants AS x WHERE x.slug = _authorize_tenant.slug;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % does not exist', apikey._shown(slug) USING ERRCODE = 'undefined_object';
	END IF;
	RETURN t;
END
$$;
COMMENT ON FUNCTION apikey._authorize_tenant(text) IS
	'internal: the tenant, if the caller may manage its keys; raises 42501 otherwise';

CREATE FUNCTION apikey._environment(t apikey.tenants, name text)
	RETURNS apikey.environments LANGUAGE plpgsql STABLE
AS $$
DECLARE
	e apikey.environments;
BEGIN
	PERFORM apikey._require('tenant', t.tenant_id IS NOT NULL);
	IF name IS NULL THEN
		RAISE EXCEPTION 'environment must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO e FROM apikey.environments AS x
	 WHERE x.tenant_id = t.tenant_id AND x.name = _environment.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey._shown(name), t.slug
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN e;
END
$$;
COMMENT ON FUNCTION apikey._environment(apikey.tenants, text) IS
	'internal: a tenant''s environment by name; raises 42704 when there is none';

-- Validation of management input (C): each returns its input, normalized,
-- or raises a clear error.
CREATE FUNCTION apikey._shown(value text) RETURNS text
	AS 'MODULE_PATHNAME', 'shown_value' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikey._shown(text) IS
	'internal: a value as an error message may show it (quoted, or not at all when it may hold a secret)';

CREATE FUNCTION apikey._checked_label(what text, value text, maxlen integer, required boolean)
	RETURNS text AS 'MODULE_PATHNAME', 'checked_label' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikey._checked_label(text, text, integer, boolean) IS
	'internal: a name, description or reason of at most maxlen characters without control characters';

CREATE FUNCTION apikey._normalized_scopes(scopes text[]) RETURNS text[]
	AS 'MODULE_PATHNAME', 'normalized_scopes' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikey._normalized_scopes(text[]) IS
	'internal: at most 64 well-formed scopes ("*", "a:b", "a:*"), sorted, without duplicates';

CREATE FUNCTION apikey._checked_resource(resource text) RETURNS text
	AS 'MODULE_PATHNAME', 'checked_resource' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikey._checked_resource(text) IS
	'internal: a well-formed resource ("type:id", at most 200 characters)';

CREATE FUNCTION apikey._check_lifetime(what text, lifetime interval)
	RETURNS void LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF lifetime IS NULL THEN
		RETURN;
	END IF;
	-- judged by the time it gives: '1 month -29 days' is not positive in February
	IF lifetime > '100 years' OR now() + lifetime <= now() THEN
		RAISE EXCEPTION '% must be between 0 and 100 years, exclusive of 0', coalesce(what, 'lifetime')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Got %s.', lifetime);
	END IF;
END
$$;
COMMENT ON FUNCTION apikey._check_lifetime(text, interval) IS
	'internal: validate a key lifetime';

-- A tenant's key policy: lifetimes, the default within the maximum, the prefix.
CREATE FUNCTION apikey._check_key_policy(default_key_lifetime interval,
		max_key_lifetime interval, key_prefix text)
	RETURNS void LANGUAGE plpgsql STABLE
AS $$
BEGIN
	PERFORM apikey._check_lifetime('default_key_lifetime', default_key_lifetime);
	PERFORM apikey._check_lifetime('max_key_lifetime', max_key_lifetime);
	-- compared as times, as keys will get them: '3 mons' may exceed '90 days'
	IF now() + default_key_lifetime > now() + max_key_lifetime THEN
		RAISE EXCEPTION 'default_key_lifetime exceeds max_key_lifetime'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF key_prefix IS NULL OR key_prefix !~ '^[a-z0-9]{1,8}$' OR key_prefix = 'pk' THEN
		RAISE EXCEPTION 'invalid key prefix %', apikey._shown(key_prefix)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A key prefix is 1 to 8 lowercase letters or digits; "pk" is reserved for public keys.';
	END IF;
END
$$;
COMMENT ON FUNCTION apikey._check_key_policy(interval, interval, text) IS
	'internal: validate a tenant''s key lifetimes and prefix';

CREATE FUNCTION apikey._new_public_key(tenant_id bigint, environment text, tag text)
	RETURNS text LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	g record;
BEGIN
	PERFORM apikey._require('tenant_id, environment and tag',
		tenant_id IS NOT NULL AND environment IS NOT NULL AND tag IS NOT NULL);
	DELETE FROM apikey.public_keys AS p
	 WHERE p.tenant_id = _new_public_key.tenant_id AND p.environment = _new_public_key.environment;
	LOOP
		g := apikey._generate_public_key(tag);
		INSERT INTO apikey.public_keys (key_id, tenant_id, environment, public_key)
		VALUES (g.key_id, tenant_id, environment, g.public_key)
		ON CONFLICT DO NOTHING;
		EXIT WHEN FOUND;
	END LOOP;
	RETURN g.public_key;
END
$$;
COMMENT ON FUNCTION apikey._new_public_key(bigint, text, text) IS
	'internal: (re)place the public key of a tenant environment';

CREATE FUNCTION apikey._add_environment(t apikey.tenants, name text, tag text)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	PERFORM apikey._require('tenant', t.tenant_id IS NOT NULL);
	IF name IS NULL OR tag IS NULL THEN
		RAISE EXCEPTION 'environment name and tag must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name !~ '^[a-z0-9][a-z0-9_-]{0,31}$' THEN
		RAISE EXCEPTION 'invalid environment name %', apikey._shown(name)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'An environment name is 1 to 32 lowercase letters, digits, "_" or "-", starting with a letter or digit.';
	END IF;
	IF tag !~ '^[a-z0-9]{1,8}$' THEN
		RAISE EXCEPTION 'invalid environment tag %', apikey._shown(tag)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A tag is 1 to 8 lowercase letters or digits; it appears in the key text (ak_<tag>_...).';
	END IF;
	IF EXISTS (SELECT FROM apikey.environments AS e WHERE e.tenant_id = t.tenant_id AND e.name = _add_environment.name) THEN
		RAISE EXCEPTION 'environment "%" of tenant "%" already exists', name, t.slug
			USING ERRCODE = 'duplicate_object';
	END IF;
	IF EXISTS (SELECT FROM apikey.environments AS e WHERE e.tenant_id = t.tenant_id AND e.tag = _add_environment.tag) THEN
		RAISE EXCEPTION 'tenant "%" already has an environment tagged "%"', t.slug, tag
			USING ERRCODE = 'duplicate_object';
	END IF;
	INSERT INTO apikey.environments (tenant_id, name, tag) VALUES (t.tenant_id, name, tag);
	PERFORM apikey._new_public_key(t.tenant_id, name, tag);
	PERFORM apikey._audit('environment_created', t.tenant_id, t.slug, NULL,
		jsonb_build_object('environment', name, 'tag', tag));
END
$$;
COMMENT ON FUNCTION apikey._add_environment(apikey.tenants, text, text) IS
	'internal: add an environment and its public key';

CREATE FUNCTION apikey.create_tenant(slug text, name text DEFAULT NULL,
		environments text[] DEFAULT '{production,preview}',
		key_prefix text DEFAULT 'ak',
		default_key_lifetime interval DEFAULT NULL,
		max_key_lifetime interval DEFAULT NULL)
	RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	t apikey.tenants;
	env text;
	env_name text;
	env_tag text;
BEGIN
	PERFORM apikey._authorize_admin();
	IF slug IS NULL THEN
		RAISE EXCEPTION 'slug must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF slug !~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' THEN
		RAISE EXCEPTION 'invalid tenant slug %', apikey._shown(slug)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A slug is 1 to 63 lowercase letters, digits or "-", starting and ending with a letter or digit.';
	END IF;
	name := apikey._checked_label('tenant name', name, 200, false);
	PERFORM apikey._check_key_policy(default_key_lifetime, max_key_lifetime, key_prefix);
	IF environments IS NULL OR cardinality(environments) > 16 OR array_ndims(environments) > 1 THEN
		RAISE EXCEPTION 'environments must be a one-dimensional array of at most 16 names'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT FROM apikey.tenants AS x WHERE x.slug = create_tenant.slug) THEN
		RAISE EXCEPTION 'tenant "%" already exists', slug USING ERRCODE = 'unique_violation';
	END IF;

	INSERT INTO apikey.tenants AS x (slug, name, key_prefix, default_key_lifetime, max_key_lifetime, created_by)
	VALUES (slug, name, key_prefix, default_key_lifetime, max_key_lifetime, apikey._caller()::text)
	RETURNING * INTO t;
	PERFORM apikey._audit('tenant_created', t.tenant_id, t.slug, NULL,
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
		PERFORM apikey._add_environment(t, env_name, env_tag);
	END LOOP;
	RETURN t.tenant_id;
END
$$;
COMMENT ON FUNCTION apikey.create_tenant(text, text, text[], text, interval, interval) IS
	'create a tenant with environments ("name" or "name:tag"; production=live and preview=test by default); returns its id';

CREATE FUNCTION apikey.create_environment(tenant text, name text, tag text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey._authorize_admin();
	t := apikey._authorize_tenant(tenant);
	PERFORM apikey._add_environment(t, name, tag);
END
$$;
COMMENT ON FUNCTION apikey.create_environment(text, text, text) IS
	'add an environment (e.g. staging, tag stg) to a tenant, with its public key';

CREATE FUNCTION apikey.set_key_policy(tenant text, default_key_lifetime interval,
		max_key_lifetime interval, key_prefix text DEFAULT 'ak')
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey._authorize_admin();
	t := apikey._authorize_tenant(tenant);
	PERFORM apikey._check_key_policy(default_key_lifetime, max_key_lifetime, key_prefix);
	UPDATE apikey.tenants AS x
	   SET default_key_lifetime = set_key_policy.default_key_lifetime,
	       max_key_lifetime = set_key_policy.max_key_lifetime,
	       key_prefix = set_key_policy.key_prefix
	 WHERE x.tenant_id = t.tenant_id;
	PERFORM apikey._audit('policy_changed', t.tenant_id, t.slug, NULL,
		jsonb_build_object('default_key_lifetime_seconds', extract(epoch FROM default_key_lifetime),
		                   'max_key_lifetime_seconds', extract(epoch FROM max_key_lifetime),
		                   'key_prefix', key_prefix));
END
$$;
COMMENT ON FUNCTION apikey.set_key_policy(text, interval, interval, text) IS
	'set a tenant''s default and maximum key lifetime (NULL: none) and key prefix, for keys created or rolled from now on';

CREATE FUNCTION apikey.public_key(tenant text, environment text)
	RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	e apikey.environments := apikey._environment(apikey._authorize_tenant(tenant), environment);
BEGIN
	PERFORM apikey._authorize(tenant, e.name, NULL, NULL);
	RETURN (SELECT p.public_key FROM apikey.public_keys AS p
	         WHERE p.tenant_id = e.tenant_id AND p.environment = e.name);
END
$$;
COMMENT ON FUNCTION apikey.public_key(text, text) IS
	'the public key of a tenant environment (pk_<tag>_...): safe to expose, identifies the tenant, grants nothing';

CREATE FUNCTION apikey.regenerate_public_key(tenant text, environment text)
	RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey._authorize_tenant(tenant);
	e apikey.environments := apikey._environment(t, environment);
	result text;
BEGIN
	PERFORM apikey._authorize(t.slug, e.name, NULL, NULL);
	result := apikey._new_public_key(e.tenant_id, e.name, e.tag);
	PERFORM apikey._audit('public_key_regenerated', t.tenant_id, t.slug, NULL,
		jsonb_build_object('environment', e.name));
	RETURN result;
END
$$;
COMMENT ON FUNCTION apikey.regenerate_public_key(text, text) IS
	'replace the public key of a tenant environment; the old one stops identifying';

CREATE FUNCTION apikey.identify(public_key text)
	RETURNS TABLE (tenant text, environment text)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
	SELECT t.slug, p.environment
	  FROM apikey.public_keys AS p JOIN apikey.tenants AS t USING (tenant_id)
	 WHERE p.public_key = identify.public_key
$$;
COMMENT ON FUNCTION apikey.identify(text) IS
	'the tenant and environment a public key identifies (no rows when unknown)';

-- sql/apikey/keys.sql
-- Private keys: the table verification probes, and their lifecycle.

CREATE FUNCTION apikey._generate_key(prefix text, tag text, for_key apikey.key_id DEFAULT NULL,
		OUT key_id apikey.key_id, OUT api_key text, OUT key_hash bytea, OUT hint text)
	AS 'MODULE_PATHNAME', 'generate_key' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey._generate_key(text, text, apikey.key_id) IS
	'internal: new key text (or a new secret for for_key), its SHA-256 and hint';

CREATE FUNCTION apikey._generate_public_key(tag text,
		OUT key_id apikey.key_id, OUT public_key text)
	AS 'MODULE_PATHNAME', 'generate_public_key' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey._generate_public_key(text) IS 'internal: new public key text';

-- Columns that verification reads come first, fixed-width ones leading, so
-- a probe deforms as little of the row as possible.  The management
-- functions validate every value before writing it; the table carries no
-- CHECK or foreign key constraints because those are re-prepared for every
-- INSERT a function runs, which more than doubled the cost of create_key.
CREATE TABLE apikey.keys (
	key_id                   apikey.key_id PRIMARY KEY,
	tenant_id                bigint NOT NULL,
	expires_at               timestamptz,
	revoked_at               timestamptz,
	previous_hash_expires_at timestamptz,
	key_hash                 bytea NOT NULL,
	previous_hash            bytea,
	tenant                   text NOT NULL,
	environment              text NOT NULL,
	scopes                   text[] NOT NULL DEFAULT '{}',
	name                     text NOT NULL,
	description              text,
	hint                     text NOT NULL,
	created_at               timestamptz NOT NULL DEFAULT now(),
	created_by               text NOT NULL,
	revoked_reason           text,
	rolled_at                timestamptz,
	-- version 0.3.0
	effective_scopes         text[] NOT NULL DEFAULT '{}',  -- scopes and those of key_roles
	resources                text[],                        -- NULL: unrestricted
	owner                    text,
	meta                     jsonb,
	key_roles                text[] NOT NULL DEFAULT '{}',
	allowed_ips              cidr[],                        -- NULL: from anywhere
	rate_limits              apikey.rate_limit[],
	tenant_rate_limits       apikey.rate_limit[],           -- the tenant's, kept with each key
	has_credits              boolean NOT NULL DEFAULT false,
	imported                 boolean NOT NULL DEFAULT false
);
CREATE INDEX keys_tenant_environment ON apikey.keys (tenant_id, environment);
COMMENT ON TABLE apikey.keys IS
	'private keys: SHA-256 of the key text and a display hint, never the text itself';

-- Every change to a key is noted, so that backends can keep reusing the
-- state of keys they verified before until one of them changes
-- (keychange.c); ALWAYS, so that changes applied by replication count too.
CREATE FUNCTION apikey._key_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'key_changed' LANGUAGE C;
COMMENT ON FUNCTION apikey._key_changed() IS
	'internal: note the keys a transaction changes, for the cache of verified keys';
CREATE TRIGGER keys_changed BEFORE UPDATE OR DELETE ON apikey.keys
	FOR EACH ROW EXECUTE FUNCTION apikey._key_changed();
CREATE TRIGGER keys_truncated BEFORE TRUNCATE ON apikey.keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._key_changed();
ALTER TABLE apikey.keys ENABLE ALWAYS TRIGGER keys_changed,
	ENABLE ALWAYS TRIGGER keys_truncated;

-- When each key was last used, written by the background writer (usage.c),
-- never by verification.  A narrow table of its own, with room on each page
-- for the next version of its rows, so that keeping it costs neither the
-- key table's size nor its cache footprint.  A key's row goes with the key.
CREATE TABLE apikey.key_usage (
	key_id       apikey.key_id PRIMARY KEY,
	last_used_at timestamptz NOT NULL
) WITH (fillfactor = 50);
COMMENT ON TABLE apikey.key_usage IS
	'when each key was last used (written in the background, within apikey.usage_precision)';

-- Credits of usage-limited keys (apikey.keys.has_credits), charged by
-- verification in the caller's transaction.  Keys without credits have no
-- row here and are never written to.  Half of each page is left free so that
-- a charge rewrites its row in place (a HOT update, no index entry).
CREATE TABLE apikey.credits (
	key_id        apikey.key_id PRIMARY KEY,
	remaining     bigint NOT NULL,
	refill_amount bigint,
	refill_every  interval,
	refilled_at   timestamptz,
	refill_anchor timestamptz,   -- refills fall on refill_anchor + n * refill_every (UTC)
	next_refill_at timestamptz   -- NULL: no refill
) WITH (fillfactor = 50);
COMMENT ON TABLE apikey.credits IS
	'credits left of usage-limited keys, refilled lazily to refill_amount every refill_every';

-- The key, locked, if the caller may manage it: every function that acts
-- on a key starts here.  The caller's right to manage keys at all is
-- checked before the lookup; a tenant administrator finds only its own
-- tenant's keys (another tenant's key is as absent as a key that never
-- existed), and then acts only on a key its own key covers (_authorize).
CREATE FUNCTION apikey._authorize_key(key_id apikey.key_id) RETURNS apikey.keys
	LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	k apikey.keys;
BEGIN
	PERFORM apikey._authorized_tenant(coalesce(apikey.current_tenant(), ''));
	IF key_id IS NULL THEN
		RAISE EXCEPTION 'key_id must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO k FROM apikey.keys AS x
	 WHERE x.key_id = _authorize_key.key_id
	   AND (apikey.current_tenant_id() IS NULL OR x.tenant_id = apikey.current_tenant_id())
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key % does not exist', key_id USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey._authorize(k.tenant, k.environment, k.effective_scopes, k.resources);
	RETURN k;
END
$$;
COMMENT ON FUNCTION apikey._authorize_key(apikey.key_id) IS
	'internal: the key row, locked, if the caller may manage it; 42704 when there is none it may see, 42501 when it may not act on it';

-- Expiry of a key created now, from the requested lifetime and the
-- tenant's policy.
CREATE FUNCTION apikey._expiry(slug text, expires_in interval, default_lifetime interval,
		max_lifetime interval) RETURNS timestamptz
	LANGUAGE plpgsql STABLE
AS $$
DECLARE
	lifetime interval := coalesce(expires_in, default_lifetime);
BEGIN
	PERFORM apikey._check_lifetime('expires_in', lifetime);
	-- compared as times: a month is not 30 days when added
	IF max_lifetime IS NOT NULL AND (lifetime IS NULL OR now() + lifetime > now() + max_lifetime) THEN
		RAISE EXCEPTION 'keys of tenant "%" must expire within %', slug, max_lifetime
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN now() + lifetime;
END
$$;
COMMENT ON FUNCTION apikey._expiry(text, interval, interval, interval) IS
	'internal: expiry of a new key under the tenant''s lifetime policy';

-- The hot administrative path: validation in C, one lookup, one INSERT of
-- the key together with its audit event.  What a plain key does not use
-- (owner, meta, roles, resources, allowed_ips) is checked only when given.
CREATE FUNCTION apikey.create_key(tenant text, environment text, name text,
		description text DEFAULT NULL, scopes text[] DEFAULT '{}',
		expires_in interval DEFAULT NULL, resource text DEFAULT NULL,
		owner text DEFAULT NULL, meta jsonb DEFAULT NULL, key_roles text[] DEFAULT '{}',
		resources text[] DEFAULT NULL, allowed_ips cidr[] DEFAULT NULL,
		OUT key_id apikey.key_id, OUT api_key text, OUT hint text, OUT expires_at timestamptz)
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	tenant_slug text := apikey._authorized_tenant(tenant);
	key_scopes text[] := apikey._normalized_scopes(scopes);
	roles text[];
	effective text[] := key_scopes;
	extra jsonb;    -- what 0.3.0 added, for the audit event
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
	key_id := g.key_id;
	api_key := g.api_key;
	hint := g.hint;
END
$$;
COMMENT ON FUNCTION apikey.create_key(text, text, text, text, text[], interval, text,
		text, jsonb, text[], text[], cidr[]) IS
	'create a named key; api_key is the full key text, shown this once and never stored';

CREATE FUNCTION apikey.rename_key(key_id apikey.key_id, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	name := apikey._checked_label('key name', name, 200, true);
	UPDATE apikey.keys AS x SET name = rename_key.name WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('renamed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.name, 'to', name));
END
$$;
COMMENT ON FUNCTION apikey.rename_key(apikey.key_id, text) IS 'rename a key (its label)';

CREATE FUNCTION apikey.describe_key(key_id apikey.key_id, description text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	description := apikey._checked_label('description', description, 1000, false);
	UPDATE apikey.keys AS x SET description = describe_key.description WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('described', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.description, 'to', description));
END
$$;
COMMENT ON FUNCTION apikey.describe_key(apikey.key_id, text) IS 'set or clear (NULL) a key''s description';

CREATE FUNCTION apikey.revoke_key(key_id apikey.key_id, reason text DEFAULT NULL,
		terminate boolean DEFAULT false)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
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
	UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('revoked', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('reason', reason)
		|| CASE WHEN terminate THEN '{"terminate": true}'::jsonb ELSE '{}' END);
END
$$;
COMMENT ON FUNCTION apikey.revoke_key(apikey.key_id, text, boolean) IS
	'disable a key from the next verification on; reversible with reactivate_key. terminate => true also stops, at commit, the transactions authenticated by the key on this server (needs shared_preload_libraries)';

CREATE FUNCTION apikey.reactivate_key(key_id apikey.key_id)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	IF k.revoked_at IS NULL THEN
		RAISE EXCEPTION 'key % is not revoked', k.key_id
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	UPDATE apikey.keys AS x SET revoked_at = NULL, revoked_reason = NULL WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('reactivated', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('revoked_at', k.revoked_at, 'reason', k.revoked_reason));
END
$$;
COMMENT ON FUNCTION apikey.reactivate_key(apikey.key_id) IS 'enable a revoked key again';

CREATE FUNCTION apikey.delete_key(key_id apikey.key_id)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	DELETE FROM apikey.keys AS x WHERE x.key_id = k.key_id;
	DELETE FROM apikey.key_usage AS u WHERE u.key_id = k.key_id;
	DELETE FROM apikey.credits AS c WHERE c.key_id = k.key_id;
	DELETE FROM apikey.imported_keys AS i WHERE i.key_id = k.key_id;
	PERFORM apikey._audit('deleted', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('environment', k.environment, 'name', k.name, 'hint', k.hint));
END
$$;
COMMENT ON FUNCTION apikey.delete_key(apikey.key_id) IS
	'delete a key permanently (irreversible); the audit trail keeps its history';

CREATE FUNCTION apikey.roll_key(key_id apikey.key_id, grace interval DEFAULT '0')
	RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
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

CREATE FUNCTION apikey.set_key_expiry(key_id apikey.key_id, expires_at timestamptz)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
	t apikey.tenants;
BEGIN
	SELECT * INTO STRICT t FROM apikey.tenants AS x WHERE x.tenant_id = k.tenant_id;
	IF t.max_key_lifetime IS NOT NULL AND (expires_at IS NULL OR expires_at > now() + t.max_key_lifetime) THEN
		RAISE EXCEPTION 'keys of tenant "%" must expire within % from now', t.slug, t.max_key_lifetime
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE apikey.keys AS x SET expires_at = set_key_expiry.expires_at WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('expiry_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.expires_at, 'to', expires_at));
END
$$;
COMMENT ON FUNCTION apikey.set_key_expiry(apikey.key_id, timestamptz) IS
	'set when a key expires (NULL: never, unless the tenant''s policy requires expiry; a past time expires it now)';

-- sql/apikey/usage.sql
-- Usage control: rate limits (ratelimit.c), credits (credits.c) and usage
-- analytics (usage.c), applied by verification after every other check.

-- Verifications per key, hour (UTC) and status, added by the background
-- writer (usage.c), never by verification itself.  It outlives deleted keys,
-- like the audit trail; hours older than apikey.usage_stats_retention are
-- deleted as the writer writes.
CREATE TABLE apikey.usage_hourly (
	key_id        apikey.key_id NOT NULL,
	hour          timestamptz NOT NULL,
	status        text NOT NULL,
	tenant_id     bigint NOT NULL,
	verifications bigint NOT NULL,
	PRIMARY KEY (key_id, hour, status)
);
CREATE INDEX usage_hourly_tenant_hour ON apikey.usage_hourly (tenant_id, hour);
CREATE INDEX usage_hourly_hour ON apikey.usage_hourly (hour);
COMMENT ON TABLE apikey.usage_hourly IS
	'verifications per key, hour and status, written in the background (see the view usage_stats)';
SELECT pg_catalog.pg_extension_config_dump('apikey.usage_hourly', '');

-- Rate limits -------------------------------------------------------------

CREATE FUNCTION apikey._check_rate_limit(name text, max_requests integer, per interval)
	RETURNS void AS 'MODULE_PATHNAME', 'check_rate_limit' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikey._check_rate_limit(text, integer, interval) IS
	'internal: raise unless name, max_requests and per make a rate limit this server can count (it needs shared_preload_libraries = apikey)';

-- The limits with the one named name set to max_requests per per, or
-- removed (max_requests NULL); sorted by name, NULL when none is left.
CREATE FUNCTION apikey._with_rate_limit(limits apikey.rate_limit[], name text,
		max_requests integer, per interval)
	RETURNS apikey.rate_limit[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT pg_catalog.array_agg(ROW(l.name, l.max_requests, l.per)::apikey.rate_limit ORDER BY l.name)
	  FROM (SELECT x.name, x.max_requests, x.per FROM pg_catalog.unnest(limits) AS x
	         WHERE x.name OPERATOR(pg_catalog.<>) _with_rate_limit.name
	        UNION ALL
	        SELECT _with_rate_limit.name, _with_rate_limit.max_requests, _with_rate_limit.per
	         WHERE _with_rate_limit.max_requests IS NOT NULL) AS l
$$;
COMMENT ON FUNCTION apikey._with_rate_limit(apikey.rate_limit[], text, integer, interval) IS
	'internal: the limits with one set (or removed when max_requests is NULL), sorted by name';

-- The limit named name of limits, as audit details show it (NULL: none).
CREATE FUNCTION apikey._rate_limit_details(limits apikey.rate_limit[], name text)
	RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT pg_catalog.jsonb_build_object('max_requests', x.max_requests, 'per', x.per)
	  FROM pg_catalog.unnest(limits) AS x
	 WHERE x.name OPERATOR(pg_catalog.=) _rate_limit_details.name
$$;
COMMENT ON FUNCTION apikey._rate_limit_details(apikey.rate_limit[], text) IS
	'internal: one limit of a list, as audit details show it';

CREATE FUNCTION apikey.set_rate_limit(key_id apikey.key_id, name text, max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
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
	UPDATE apikey.keys AS x SET rate_limits = limits WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('rate_limit_set', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('name', name,
		                   'from', apikey._rate_limit_details(k.rate_limits, name),
		                   'to', apikey._rate_limit_details(limits, name)));
END
$$;
COMMENT ON FUNCTION apikey.set_rate_limit(apikey.key_id, text, integer, interval) IS
	'add or replace a named rate limit of a key: at most max_requests units per interval (per server; needs shared_preload_libraries = apikey)';

CREATE FUNCTION apikey.remove_rate_limit(key_id apikey.key_id, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
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
	limits := apikey._with_rate_limit(k.rate_limits, name, NULL, NULL);
	UPDATE apikey.keys AS x SET rate_limits = limits WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('rate_limit_removed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('name', name, 'from', old));
END
$$;
COMMENT ON FUNCTION apikey.remove_rate_limit(apikey.key_id, text) IS
	'remove a named rate limit of a key';

-- A tenant's limits are a budget over all its keys, in every environment,
-- whatever their scopes: beyond what any tenant administrator's key
-- covers, so only full administrators set them (as the key policy).  Each
-- key carries a copy (keys.tenant_rate_limits), so verification reads one
-- row; the tenant row is locked so that keys created meanwhile (which read
-- the tenant's limits, see below) get the new ones.
CREATE FUNCTION apikey._set_tenant_rate_limits(t apikey.tenants, name text,
		max_requests integer, per interval, action text)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	old apikey.rate_limit[];
	limits apikey.rate_limit[];
	changed bigint;
BEGIN
	PERFORM apikey._require('tenant', t.tenant_id IS NOT NULL);
	SELECT x.rate_limits INTO old FROM apikey.tenants AS x WHERE x.tenant_id = t.tenant_id FOR UPDATE;
	limits := apikey._with_rate_limit(old, name, max_requests, per);
	IF cardinality(limits) > 8 THEN
		RAISE EXCEPTION 'tenant "%" already has 8 rate limits', t.slug
			USING ERRCODE = 'program_limit_exceeded',
			      HINT = 'Replace one (same name) or remove one first.';
	END IF;
	UPDATE apikey.tenants AS x SET rate_limits = limits WHERE x.tenant_id = t.tenant_id;
	UPDATE apikey.keys AS k SET tenant_rate_limits = limits
	 WHERE k.tenant_id = t.tenant_id AND k.tenant_rate_limits IS DISTINCT FROM limits;
	GET DIAGNOSTICS changed = ROW_COUNT;
	PERFORM apikey._audit(action, t.tenant_id, t.slug, NULL,
		jsonb_build_object('name', name,
		                   'from', apikey._rate_limit_details(old, name),
		                   'to', apikey._rate_limit_details(limits, name),
		                   'keys', changed));
END
$$;
COMMENT ON FUNCTION apikey._set_tenant_rate_limits(apikey.tenants, text, integer, interval, text) IS
	'internal: set or remove (max_requests NULL) a tenant''s limit, on the tenant and on each of its keys';

CREATE FUNCTION apikey.set_tenant_rate_limit(tenant text, name text, max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey._authorize_admin();
	t := apikey._authorize_tenant(tenant);
	PERFORM apikey._check_rate_limit(name, max_requests, per);
	PERFORM apikey._set_tenant_rate_limits(t, name, max_requests, per, 'tenant_rate_limit_set');
END
$$;
COMMENT ON FUNCTION apikey.set_tenant_rate_limit(text, text, integer, interval) IS
	'add or replace a named rate limit shared by all of a tenant''s keys: at most max_requests units per interval together (full administrators only)';

CREATE FUNCTION apikey.remove_tenant_rate_limit(tenant text, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey._authorize_admin();
	t := apikey._authorize_tenant(tenant);
	IF apikey._rate_limit_details(t.rate_limits, name) IS NULL THEN
		RAISE EXCEPTION 'tenant "%" has no rate limit %', t.slug, apikey._shown(name)
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey._set_tenant_rate_limits(t, name, NULL, NULL, 'tenant_rate_limit_removed');
END
$$;
COMMENT ON FUNCTION apikey.remove_tenant_rate_limit(text, text) IS
	'remove a named rate limit of a tenant (full administrators only)';

-- A new key carries its tenant's limits, however it is inserted.  The key
-- share lock waits for a change of the tenant's limits in progress (which
-- locks the tenant row for update), so no key misses one.
CREATE FUNCTION apikey._key_tenant_rate_limits() RETURNS trigger
	LANGUAGE plpgsql
AS $$
BEGIN
	SELECT t.rate_limits INTO NEW.tenant_rate_limits
	  FROM apikey.tenants AS t
	 WHERE t.tenant_id OPERATOR(pg_catalog.=) NEW.tenant_id
	   FOR KEY SHARE;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION apikey._key_tenant_rate_limits() IS
	'internal: trigger that gives a new key its tenant''s rate limits';
CREATE TRIGGER keys_tenant_rate_limits BEFORE INSERT ON apikey.keys
	FOR EACH ROW EXECUTE FUNCTION apikey._key_tenant_rate_limits();

CREATE FUNCTION apikey.rate_limit_status(OUT preloaded boolean, OUT capacity integer,
		OUT in_use bigint, OUT refused_full bigint)
	AS 'MODULE_PATHNAME', 'rate_limit_status' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.rate_limit_status() IS
	'rate-limit buckets of this server: whether they exist (shared_preload_libraries), how many there can be, how many are held, and how many requests were refused because none was free';

-- Credits -------------------------------------------------------------------

CREATE FUNCTION apikey._next_refill(anchor timestamptz, every interval, after timestamptz)
	RETURNS timestamptz AS 'MODULE_PATHNAME', 'next_refill' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikey._next_refill(timestamptz, interval, timestamptz) IS
	'internal: the first anchor + n * every (n >= 1) after "after", in UTC with calendar months';

-- Called by verification (credits.c) for a key with credits, in the
-- caller's transaction.  Returns what is left after charging cost (cost 0:
-- charges nothing, and needs one credit left), or -1 minus what there is
-- when that is too few (nothing charged); NULL when the key has no credits.
-- A refill that is due is applied first.  The row lock makes concurrent
-- charges of a key wait for each other (and the UPDATE re-checks the row
-- the previous charge left); a check (cost 0) takes no lock and writes
-- nothing, so it works in a read-only transaction.
CREATE FUNCTION apikey._charge_credits(key_id apikey.key_id, cost integer, at timestamptz)
	RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
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
		 WHERE x.key_id = _charge_credits.key_id AND x.remaining >= cost
		   AND (x.next_refill_at IS NULL OR x.next_refill_at > at)
		RETURNING x.remaining INTO left_over;
		IF FOUND THEN
			RETURN left_over;
		END IF;
		SELECT * INTO c FROM apikey.credits AS x WHERE x.key_id = _charge_credits.key_id FOR UPDATE;
	ELSE
		SELECT * INTO c FROM apikey.credits AS x WHERE x.key_id = _charge_credits.key_id;
	END IF;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	IF c.next_refill_at <= at THEN
		c.remaining := c.refill_amount;
		c.next_refill_at := apikey._next_refill(c.refill_anchor, c.refill_every, at);
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
		 WHERE x.key_id = _charge_credits.key_id;
	END IF;
	RETURN c.remaining - cost;
END
$$;
COMMENT ON FUNCTION apikey._charge_credits(apikey.key_id, integer, timestamptz) IS
	'internal: charge a key''s credits in the current transaction (verification calls it); what is left, or -1 minus what there is when too few';

CREATE FUNCTION apikey.set_credits(key_id apikey.key_id, remaining bigint,
		refill_amount bigint DEFAULT NULL, refill_every interval DEFAULT NULL)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
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

CREATE FUNCTION apikey.add_credits(key_id apikey.key_id, amount bigint)
	RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
	c apikey.credits;
	at timestamptz := statement_timestamp();
BEGIN
	IF amount IS NULL THEN
		RAISE EXCEPTION 'amount must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
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

-- Usage analytics -----------------------------------------------------------

CREATE FUNCTION apikey.usage_flush() RETURNS void
	AS 'MODULE_PATHNAME', 'usage_flush' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey.usage_flush() IS
	'write the pending last uses and usage counts of this server now, and return once they are written';

-- Listings, visible as key_list is: every tenant to a full administrator,
-- the own tenant to a transaction authenticated with an apikey:admin key,
-- nothing to anyone else.

CREATE VIEW apikey.tenant_list WITH (security_barrier) AS
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
       t.created_by
  FROM apikey.tenants AS t
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE t.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;
COMMENT ON VIEW apikey.tenant_list IS
	'tenants for humans: environments, key policy, rate limits shared by their keys';

CREATE VIEW apikey.usage_stats WITH (security_barrier) AS
SELECT t.slug AS tenant,
       u.key_id,
       u.hour,
       u.status,
       u.verifications,
       u.tenant_id
  FROM apikey.usage_hourly AS u
  JOIN apikey.tenants AS t ON t.tenant_id OPERATOR(pg_catalog.=) u.tenant_id
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE u.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;
COMMENT ON VIEW apikey.usage_stats IS
	'verifications per key, hour (UTC) and status, as written by the background writer (apikey.usage_flush() writes what is pending)';

-- sql/apikey/richkeys.sql
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

CREATE FUNCTION apikey._actor() RETURNS text
	AS 'MODULE_PATHNAME', 'current_actor' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey._actor() IS
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

CREATE FUNCTION apikey._checked_resources(resources text[]) RETURNS text[]
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
		PERFORM apikey._checked_resource(r);
	END LOOP;
	RETURN ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(resources) AS x ORDER BY 1);
END
$$;
COMMENT ON FUNCTION apikey._checked_resources(text[]) IS
	'internal: at most 64 well-formed resources ("type:id", "type:*"), sorted, without duplicates; NULL: unrestricted';

CREATE FUNCTION apikey._checked_meta(meta jsonb) RETURNS jsonb
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
COMMENT ON FUNCTION apikey._checked_meta(jsonb) IS
	'internal: a JSON object of at most 4096 bytes as text; NULL: none';

CREATE FUNCTION apikey._checked_allowed_ips(allowed_ips cidr[]) RETURNS cidr[]
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
COMMENT ON FUNCTION apikey._checked_allowed_ips(cidr[]) IS
	'internal: at most 64 networks, sorted, without duplicates; NULL: from anywhere';

CREATE FUNCTION apikey._checked_role_name(name text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'key role name must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name !~ '^[a-z0-9][a-z0-9_.-]{0,63}$' THEN
		RAISE EXCEPTION 'invalid key role name %', apikey._shown(name)
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A key role name is 1 to 64 lowercase letters, digits, "_", "." or "-", starting with a letter or digit.';
	END IF;
	RETURN name;
END
$$;
COMMENT ON FUNCTION apikey._checked_role_name(text) IS 'internal: a well-formed key role name';

-- The roles of a key, checked and sorted: at most 16, each a role of the
-- key's own tenant.  The roles are locked (FOR SHARE) until the transaction
-- ends, so that a concurrent change of their scopes waits for the key and
-- then rewrites its effective_scopes too.
CREATE FUNCTION apikey._checked_key_roles(tenant_id bigint, tenant text, key_roles text[])
	RETURNS text[] LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	role text;
	existing text[];
BEGIN
	PERFORM apikey._require('tenant_id and tenant', tenant_id IS NOT NULL AND tenant IS NOT NULL);
	IF key_roles IS NULL THEN
		RAISE EXCEPTION 'key_roles must not be null' USING ERRCODE = 'null_value_not_allowed',
			HINT = 'A key without roles has the empty array ''{}''.';
	END IF;
	IF array_ndims(key_roles) > 1 OR cardinality(key_roles) > 16 THEN
		RAISE EXCEPTION 'key_roles must be a one-dimensional array of at most 16 role names'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOREACH role IN ARRAY key_roles LOOP
		PERFORM apikey._checked_role_name(role);
	END LOOP;
	existing := ARRAY(SELECT r.name FROM apikey.key_roles AS r
	                   WHERE r.tenant_id = _checked_key_roles.tenant_id
	                     AND r.name = ANY (_checked_key_roles.key_roles)
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
COMMENT ON FUNCTION apikey._checked_key_roles(bigint, text, text[]) IS
	'internal: at most 16 existing roles of the tenant, sorted, without duplicates, locked FOR SHARE';

-- A key's effective scopes: its own and its roles', sorted (as
-- _normalized_scopes sorts) and without duplicates.
CREATE FUNCTION apikey._effective_scopes(tenant_id bigint, scopes text[], key_roles text[])
	RETURNS text[] LANGUAGE plpgsql STABLE
AS $$
BEGIN
	PERFORM apikey._require('tenant_id, scopes and key_roles',
		tenant_id IS NOT NULL AND scopes IS NOT NULL AND key_roles IS NOT NULL);
	RETURN ARRAY(SELECT DISTINCT u.s
	               FROM (SELECT x COLLATE "C" FROM unnest(_effective_scopes.scopes) AS x
	                     UNION ALL
	                     SELECT x COLLATE "C" FROM apikey.key_roles AS r, unnest(r.scopes) AS x
	                      WHERE r.tenant_id = _effective_scopes.tenant_id
	                        AND r.name = ANY (_effective_scopes.key_roles)) AS u(s)
	              ORDER BY 1);
END
$$;
COMMENT ON FUNCTION apikey._effective_scopes(bigint, text[], text[]) IS
	'internal: the scopes of a key and of its roles, sorted, without duplicates';

-- Editing a key.  Each starts with _authorize_key (the caller may act on
-- the key as it is) and, when scopes, roles or resources change, applies
-- the rule to the new values too: no one edits a key to more than they
-- hold.  Each records the change with its before and after.

CREATE FUNCTION apikey.set_key_scopes(key_id apikey.key_id, scopes text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
	new_scopes text[] := apikey._normalized_scopes(scopes);
	effective text[] := apikey._effective_scopes(k.tenant_id, new_scopes, k.key_roles);
BEGIN
	PERFORM apikey._authorize(k.tenant, k.environment, effective, k.resources);
	UPDATE apikey.keys AS x SET scopes = new_scopes, effective_scopes = effective
	 WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('scopes_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.scopes, 'to', new_scopes));
END
$$;
COMMENT ON FUNCTION apikey.set_key_scopes(apikey.key_id, text[]) IS
	'replace a key''s own scopes (its roles'' scopes still apply), from the next verification on';

CREATE FUNCTION apikey.set_key_roles(key_id apikey.key_id, key_roles text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
	roles text[] := apikey._checked_key_roles(k.tenant_id, k.tenant, key_roles);
	effective text[] := apikey._effective_scopes(k.tenant_id, k.scopes, roles);
BEGIN
	PERFORM apikey._authorize(k.tenant, k.environment, effective, k.resources);
	UPDATE apikey.keys AS x SET key_roles = roles, effective_scopes = effective
	 WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('roles_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.key_roles, 'to', roles));
END
$$;
COMMENT ON FUNCTION apikey.set_key_roles(apikey.key_id, text[]) IS
	'replace a key''s roles (''{}'': none), from the next verification on';

CREATE FUNCTION apikey.set_key_resources(key_id apikey.key_id, resources text[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
	new_resources text[] := apikey._checked_resources(resources);
BEGIN
	PERFORM apikey._authorize(k.tenant, k.environment, k.effective_scopes, new_resources);
	UPDATE apikey.keys AS x SET resources = new_resources WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('resources_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.resources, 'to', new_resources));
END
$$;
COMMENT ON FUNCTION apikey.set_key_resources(apikey.key_id, text[]) IS
	'restrict a key to these resources ("type:id" or "type:*"; NULL: unrestricted), from the next verification on';

-- Owner, meta and allowed_ips change neither scopes nor resources: the
-- rule as _authorize_key applied it is the rule for the new values.

CREATE FUNCTION apikey.set_key_owner(key_id apikey.key_id, owner text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	owner := apikey._checked_label('owner', owner, 200, owner IS NOT NULL);
	UPDATE apikey.keys AS x SET owner = set_key_owner.owner WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('owner_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.owner, 'to', owner));
END
$$;
COMMENT ON FUNCTION apikey.set_key_owner(apikey.key_id, text) IS
	'set or clear (NULL) whose key it is: the application''s id of a person or account';

CREATE FUNCTION apikey.set_key_meta(key_id apikey.key_id, meta jsonb)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	meta := apikey._checked_meta(meta);
	UPDATE apikey.keys AS x SET meta = set_key_meta.meta WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('meta_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.meta, 'to', meta));
END
$$;
COMMENT ON FUNCTION apikey.set_key_meta(apikey.key_id, jsonb) IS
	'set or clear (NULL) the JSON object (at most 4 kB) that verification returns with the key';

CREATE FUNCTION apikey.set_key_allowed_ips(key_id apikey.key_id, allowed_ips cidr[])
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	allowed_ips := apikey._checked_allowed_ips(allowed_ips);
	UPDATE apikey.keys AS x SET allowed_ips = set_key_allowed_ips.allowed_ips WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('allowed_ips_changed', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('from', k.allowed_ips, 'to', allowed_ips));
END
$$;
COMMENT ON FUNCTION apikey.set_key_allowed_ips(apikey.key_id, cidr[]) IS
	'networks a key may be used from (NULL: anywhere), from the next verification on';

-- A person leaves: every key of theirs in the tenant that is not revoked
-- yet (expired ones too, so that a new expiry cannot bring them back) is
-- revoked in this one statement.  All or none: when the caller may not
-- act on every one of them (a tenant administrator whose key does not
-- cover them all), nothing is revoked and the error says how many it
-- could not.
CREATE FUNCTION apikey.revoke_owner_keys(tenant text, owner text, reason text DEFAULT NULL)
	RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
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
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey._authorize_tenant(tenant);
	role_scopes text[];
BEGIN
	name := apikey._checked_role_name(name);
	role_scopes := apikey._normalized_scopes(scopes);
	PERFORM apikey._authorize(t.slug, NULL, role_scopes, NULL);
	INSERT INTO apikey.key_roles (tenant_id, name, scopes, created_by)
	VALUES (t.tenant_id, name, role_scopes, coalesce(apikey._actor(), apikey._caller()::text))
	ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key role "%" of tenant "%" already exists', name, t.slug
			USING ERRCODE = 'duplicate_object';
	END IF;
	PERFORM apikey._audit('key_role_created', t.tenant_id, t.slug, NULL,
		jsonb_build_object('role', name, 'scopes', role_scopes));
END
$$;
COMMENT ON FUNCTION apikey.create_key_role(text, text, text[]) IS
	'create a key role: a named set of scopes that keys of the tenant may be given (create_key key_roles, set_key_roles)';

-- The tenant's role, locked FOR UPDATE after the keys that have it.
CREATE FUNCTION apikey._lock_key_role(t apikey.tenants, name text)
	RETURNS apikey.key_roles LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	role apikey.key_roles;
BEGIN
	PERFORM apikey._require('tenant', t.tenant_id IS NOT NULL);
	name := apikey._checked_role_name(name);
	PERFORM FROM apikey.keys AS x
	  WHERE x.tenant_id = t.tenant_id AND _lock_key_role.name = ANY (x.key_roles)
	  ORDER BY x.key_id
	    FOR UPDATE;
	SELECT * INTO role FROM apikey.key_roles AS r
	 WHERE r.tenant_id = t.tenant_id AND r.name = _lock_key_role.name
	   FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key role "%" of tenant "%" does not exist', name, t.slug
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN role;
END
$$;
COMMENT ON FUNCTION apikey._lock_key_role(apikey.tenants, text) IS
	'internal: a key role, locked after the keys that have it; 42704 when there is none';

CREATE FUNCTION apikey.set_key_role_scopes(tenant text, name text, scopes text[])
	RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey._authorize_tenant(tenant);
	role apikey.key_roles := apikey._lock_key_role(t, name);
	role_scopes text[] := apikey._normalized_scopes(scopes);
	k apikey.keys;
	effective text[];
	changed integer := 0;
BEGIN
	PERFORM apikey._authorize(t.slug, NULL, role.scopes, NULL);
	PERFORM apikey._authorize(t.slug, NULL, role_scopes, NULL);
	UPDATE apikey.key_roles AS r SET scopes = role_scopes
	 WHERE r.tenant_id = t.tenant_id AND r.name = role.name;
	-- locked again: keys given the role while this waited for the role's
	-- lock, and the latest version of each (a concurrent edit of its scopes)
	FOR k IN SELECT * FROM apikey.keys AS x
	          WHERE x.tenant_id = t.tenant_id AND role.name = ANY (x.key_roles)
	          ORDER BY x.key_id
	            FOR UPDATE
	LOOP
		effective := apikey._effective_scopes(k.tenant_id, k.scopes, k.key_roles);
		PERFORM apikey._authorize(k.tenant, k.environment, effective, k.resources);
		IF effective IS DISTINCT FROM k.effective_scopes THEN
			UPDATE apikey.keys AS x SET effective_scopes = effective WHERE x.key_id = k.key_id;
			changed := changed + 1;
		END IF;
	END LOOP;
	PERFORM apikey._audit('key_role_changed', t.tenant_id, t.slug, NULL,
		jsonb_build_object('role', role.name, 'from', role.scopes, 'to', role_scopes, 'keys_changed', changed));
	RETURN changed;
END
$$;
COMMENT ON FUNCTION apikey.set_key_role_scopes(text, text, text[]) IS
	'replace a key role''s scopes; every key with the role holds the new ones from the next verification on; returns how many keys'' scopes changed';

CREATE FUNCTION apikey.drop_key_role(tenant text, name text, detach boolean DEFAULT false)
	RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey._authorize_tenant(tenant);
	role apikey.key_roles := apikey._lock_key_role(t, name);
	k apikey.keys;
	roles text[];
	effective text[];
	detached integer := 0;
BEGIN
	IF detach IS NULL THEN
		RAISE EXCEPTION 'detach must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM apikey._authorize(t.slug, NULL, role.scopes, NULL);
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
		effective := apikey._effective_scopes(k.tenant_id, k.scopes, roles);
		PERFORM apikey._authorize(k.tenant, k.environment, effective, k.resources);
		UPDATE apikey.keys AS x SET key_roles = roles, effective_scopes = effective
		 WHERE x.key_id = k.key_id;
		PERFORM apikey._audit('roles_changed', k.tenant_id, k.tenant, k.key_id,
			jsonb_build_object('from', k.key_roles, 'to', roles));
		detached := detached + 1;
	END LOOP;
	DELETE FROM apikey.key_roles AS r WHERE r.tenant_id = t.tenant_id AND r.name = role.name;
	PERFORM apikey._audit('key_role_dropped', t.tenant_id, t.slug, NULL,
		jsonb_build_object('role', role.name, 'scopes', role.scopes, 'keys_detached', detached));
	RETURN detached;
END
$$;
COMMENT ON FUNCTION apikey.drop_key_role(text, text, boolean) IS
	'drop a key role; refused while keys have it unless detach, which removes it (and its scopes) from them first; returns how many keys it was removed from';

-- The tenants' key roles, visible as key_list is: every tenant to a full
-- administrator, its own tenant's to a transaction authenticated with an
-- apikey:admin key, nothing to anyone else.
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
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE r.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;
COMMENT ON VIEW apikey.key_role_list IS
	'key roles of the tenants: name, scopes, how many keys have it';

-- sql/apikey/incidents.sql
-- Adoption and incidents: keys imported from another system, leak reports,
-- the kill switch, events.

-- Functions that take key text hide their statement from the server log
-- when they fail (it may hold the key as a literal).
CREATE FUNCTION apikey._hide_statement() RETURNS void
	AS 'MODULE_PATHNAME', 'hide_statement' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey._hide_statement() IS
	'internal: no error keeps the calling statement in the server log until the transaction ends';

-- Imported keys.  Each is a row of apikey.keys like any other, its
-- key_hash the SHA-256 of its original text; this table leads from that
-- hash to the key, since the text carries no key id.  Verification looks
-- here only for text that is not in apikey's format, and only while the
-- table has rows (imported.c).
CREATE TABLE apikey.imported_keys (
	key_hash bytea PRIMARY KEY,
	key_id   apikey.key_id NOT NULL
);
CREATE INDEX imported_keys_key_id ON apikey.imported_keys (key_id);
COMMENT ON TABLE apikey.imported_keys IS
	'keys imported from another system: the SHA-256 of the original text, and the key it proves';

CREATE FUNCTION apikey._imports_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'imports_changed' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION apikey._imports_changed() IS
	'internal: tell every backend, at commit, to look at apikey.imported_keys again';
CREATE TRIGGER imported_keys_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.imported_keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._imports_changed();

CREATE FUNCTION apikey._import_key_text(api_key text, key_hash bytea,
		OUT key_id apikey.key_id, OUT hash bytea, OUT hint text)
	AS 'MODULE_PATHNAME', 'import_key_text' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey._import_key_text(text, bytea) IS
	'internal: a new key id, the SHA-256 and the hint of an imported key, from its text or its hash (exactly one)';

CREATE FUNCTION apikey.import_key(tenant text, environment text, name text,
		api_key text DEFAULT NULL, key_hash bytea DEFAULT NULL,
		description text DEFAULT NULL, scopes text[] DEFAULT '{}',
		expires_at timestamptz DEFAULT NULL, owner text DEFAULT NULL,
		hint text DEFAULT NULL)
	RETURNS apikey.key_id LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
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
	INSERT INTO apikey.imported_keys (key_hash, key_id) VALUES (g.hash, g.key_id)
	ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'a key with this text was imported before' USING ERRCODE = 'unique_violation',
			HINT = 'Each imported key text (or hash) is imported once.';
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

-- Leak reports: a secret scanner found this text in public.  A real key is
-- revoked at once (and its transactions terminated when the kill switch is
-- available); the report is audited as 'leaked' either way.  The text of a
-- key's previous secret, still honoured after a roll, stops working and the
-- key's current secret goes on.  A role granted only this
-- (grant_leak_reporter) can do nothing else.
CREATE FUNCTION apikey._prove_key(api_key text, OUT status text, OUT key_id apikey.key_id)
	AS 'MODULE_PATHNAME', 'prove_key' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey._prove_key(text) IS
	'internal: the key the text proves (status found), without a verification''s effects; else malformed, public_key or not_found';

CREATE FUNCTION apikey.report_leak(api_key text, source text DEFAULT NULL)
	RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
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

CREATE FUNCTION apikey.grant_leak_reporter(role regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
BEGIN
	PERFORM apikey._check_role(role);
	EXECUTE format('GRANT USAGE ON SCHEMA apikey TO %s', role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION apikey.report_leak(text, text) TO %s', role);
END
$$;
COMMENT ON FUNCTION apikey.grant_leak_reporter(regrole) IS
	'let a role (a secret-scanning receiver''s) report leaked keys with report_leak, and nothing else';

-- The kill switch (killswitch.c): revoke_key(..., terminate => true).
CREATE FUNCTION apikey._terminate_at_commit(key_id apikey.key_id, required boolean) RETURNS boolean
	AS 'MODULE_PATHNAME', 'terminate_at_commit' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey._terminate_at_commit(apikey.key_id, boolean) IS
	'internal: when this transaction commits, stop the transactions authenticated by the key on this server; without shared_preload_libraries an error when required, else false';

-- Events: each audit event is also sent at commit (NOTIFY) on the channel
-- apikey_events.  Anyone who may connect may LISTEN, so the payload holds
-- ids only; what happened in detail is in audit_log, for those who may read
-- it.
CREATE FUNCTION apikey._notify_event() RETURNS trigger
	AS 'MODULE_PATHNAME', 'notify_event' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION apikey._notify_event() IS
	'internal: send an audit event to the channel apikey_events at commit (ids only)';
CREATE TRIGGER audit_notify AFTER INSERT ON apikey.audit
	FOR EACH ROW EXECUTE FUNCTION apikey._notify_event();

-- Keys about to expire, for reminder jobs; visible as key_list is.
CREATE FUNCTION apikey.expiring_keys(within interval)
	RETURNS TABLE (key_id apikey.key_id, tenant text, environment text, name text,
	               owner text, hint text, expires_at timestamptz, last_used_at timestamptz,
	               tenant_id bigint)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
BEGIN
	IF within IS NULL THEN
		RAISE EXCEPTION 'within must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF now() + within < now() THEN
		RAISE EXCEPTION 'within must not be negative' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
	SELECT l.key_id, l.tenant, l.environment, l.name, l.owner, l.hint, l.expires_at,
	       l.last_used_at, l.tenant_id
	  FROM apikey.key_list AS l
	 WHERE l.status = 'active' AND l.expires_at <= now() + within
	 ORDER BY l.expires_at, l.key_id;
END
$$;
COMMENT ON FUNCTION apikey.expiring_keys(interval) IS
	'active keys that expire within the interval, soonest first; shows what key_list shows the caller';

-- sql/apikey/views.sql
-- Listings for humans.  Full administrators see every tenant; a transaction
-- authenticated with an apikey:admin key sees its own tenant; anyone else
-- sees nothing.  Never a hash, never a secret.

CREATE VIEW apikey.key_list WITH (security_barrier) AS
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
       k.imported
  FROM apikey.keys AS k
  LEFT JOIN apikey.key_usage AS u ON u.key_id OPERATOR(pg_catalog.=) k.key_id
  LEFT JOIN apikey.credits AS c ON c.key_id OPERATOR(pg_catalog.=) k.key_id
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE k.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;
COMMENT ON VIEW apikey.key_list IS
	'API keys for humans: name, hint, scopes, status (active, revoked, expired), dates; never a hash or a secret';

CREATE VIEW apikey.audit_log WITH (security_barrier) AS
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
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE a.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;
COMMENT ON VIEW apikey.audit_log IS
	'who did what to which tenant or key, and when; survives the deletion of keys';

-- sql/apikey/privileges.sql
-- Least privilege: PUBLIC may use the type and read its own transaction's
-- identity, nothing else.  An administrator grants the rest explicitly,
-- with grant_verifier and grant_admin or with GRANT.

SELECT pg_catalog.pg_extension_config_dump('apikey.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.tenants_tenant_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.environments', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.public_keys', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.keys', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.key_usage', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.credits', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.imported_keys', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.audit', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.audit_event_id_seq', '');

CREATE FUNCTION apikey._check_role(role regrole) RETURNS void
	LANGUAGE plpgsql STABLE
AS $$
BEGIN
	IF role IS NULL THEN
		RAISE EXCEPTION 'role must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.oid OPERATOR(pg_catalog.=) role) THEN
		RAISE EXCEPTION 'role with OID % does not exist', role::oid USING ERRCODE = 'undefined_object';
	END IF;
END
$$;
COMMENT ON FUNCTION apikey._check_role(regrole) IS 'internal: raise unless the role exists';

CREATE FUNCTION apikey.grant_verifier(role regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, apikey, pg_temp
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
END
$$;
COMMENT ON FUNCTION apikey.grant_verifier(regrole) IS
	'let a role (the application''s) verify and authenticate keys; it manages keys only of the tenant of an authenticated apikey:admin key';

CREATE FUNCTION apikey.grant_admin(role regrole) RETURNS void
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
		apikey.usage_flush()
		TO %s', role);
END
$$;
COMMENT ON FUNCTION apikey.grant_admin(regrole) IS
	'let a role manage every tenant and key (psql administration); whoever may execute create_tenant is an administrator';

REVOKE ALL ON ALL TABLES IN SCHEMA apikey FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA apikey FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA apikey FROM PUBLIC;

GRANT USAGE ON SCHEMA apikey TO PUBLIC;
GRANT EXECUTE ON FUNCTION
	apikey.key_id_in(cstring), apikey.key_id_out(apikey.key_id),
	apikey.key_id_recv(internal), apikey.key_id_send(apikey.key_id),
	apikey.key_id_eq(apikey.key_id, apikey.key_id), apikey.key_id_ne(apikey.key_id, apikey.key_id),
	apikey.key_id_lt(apikey.key_id, apikey.key_id), apikey.key_id_le(apikey.key_id, apikey.key_id),
	apikey.key_id_gt(apikey.key_id, apikey.key_id), apikey.key_id_ge(apikey.key_id, apikey.key_id),
	apikey.key_id_cmp(apikey.key_id, apikey.key_id), apikey.key_id_sortsupport(internal),
	apikey.key_id_hash(apikey.key_id), apikey.key_id_hash_extended(apikey.key_id, bigint),
	apikey.looks_like_key(text),
	apikey.current_tenant(), apikey.current_tenant_id(), apikey.current_key_id(),
	apikey.current_environment(), apikey.current_scopes(), apikey.current_resource(),
	apikey.has_scope(text), apikey.can_access(text, text),
	apikey.is_admin(),
	apikey.current_owner(), apikey.current_key_meta(), apikey.current_resources()
	TO PUBLIC;

-- Said where it is seen: CREATE EXTENSION runs its script with
-- client_min_messages raised to WARNING, so a NOTICE would be swallowed.
DO $$
BEGIN
	IF apikey.usage_tracking() LIKE 'off%' THEN
		RAISE WARNING 'apikey: last_used_at is not tracked in this server'
			USING HINT = 'Add apikey to shared_preload_libraries and restart.';
	END IF;
END
$$;
