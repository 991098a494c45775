-- apikey 0.2.0 -> 0.3.0
\echo Use "ALTER EXTENSION apikey UPDATE TO '0.3.0'" to load this file. \quit

-- Before anything runs (objects not of the extension: refused since
-- 0.4.0, see CHANGELOG.md): the schema apikey must be the extension owner's,
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

-- last_used_at moves to a narrow table of its own.
CREATE TABLE apikey.key_usage (
	key_id       apikey.key_id PRIMARY KEY,
	last_used_at timestamptz NOT NULL
) WITH (fillfactor = 50);
COMMENT ON TABLE apikey.key_usage IS
	'when each key was last used (written in the background, within apikey.usage_precision)';
INSERT INTO apikey.key_usage (key_id, last_used_at)
SELECT k.key_id, k.last_used_at FROM apikey.keys AS k WHERE k.last_used_at IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('apikey.key_usage', '');

-- The verification result gains owner, meta, remaining, retry_after and
-- resources; a named rate limit is a type of its own.
ALTER TYPE apikey.verification
	ADD ATTRIBUTE owner text,
	ADD ATTRIBUTE meta jsonb,
	ADD ATTRIBUTE remaining bigint,
	ADD ATTRIBUTE retry_after interval,
	ADD ATTRIBUTE resources text[];
CREATE TYPE apikey.rate_limit AS (
	name         text,
	max_requests integer,
	per          interval
);
COMMENT ON TYPE apikey.rate_limit IS 'a named rate limit of a key or a tenant: max_requests per interval';

-- Keys gain what 0.3.0 knows of them; the one resource becomes a list.
ALTER TABLE apikey.keys
	ADD COLUMN effective_scopes   text[] NOT NULL DEFAULT '{}',
	ADD COLUMN resources          text[],
	ADD COLUMN owner              text,
	ADD COLUMN meta               jsonb,
	ADD COLUMN key_roles          text[] NOT NULL DEFAULT '{}',
	ADD COLUMN allowed_ips        cidr[],
	ADD COLUMN rate_limits        apikey.rate_limit[],
	ADD COLUMN tenant_rate_limits apikey.rate_limit[],
	ADD COLUMN has_credits        boolean NOT NULL DEFAULT false,
	ADD COLUMN imported           boolean NOT NULL DEFAULT false;
UPDATE apikey.keys SET effective_scopes = scopes,
	resources = CASE WHEN resource IS NOT NULL THEN ARRAY[resource] END;

-- 0.2.0 matched a key's resource literally; from 0.3.0 on, "type:*" covers
-- every id of that type.  A key restricted to the literal "folder:*" would
-- now reach "folder:payroll": such keys are revoked instead, with a reason
-- that says why (an administrator reactivates one to accept the wildcard,
-- or restricts it with set_key_resources first).  Revoked ones stay revoked
-- and say why as well.  (Added after 0.3.0 was released, see 0.4.0 in
-- CHANGELOG.md.)
WITH flagged AS (
	UPDATE apikey.keys AS k
	   SET revoked_at = COALESCE(k.revoked_at, pg_catalog.now()),
	       revoked_reason = pg_catalog.concat_ws('; ', k.revoked_reason,
	           pg_catalog.format('update to 0.3.0: the resource %s would now cover every id of its type', k.resource))
	  FROM apikey.keys AS old
	 WHERE old.key_id OPERATOR(pg_catalog.=) k.key_id
	   AND k.resource OPERATOR(pg_catalog.~~) '%:*'
	RETURNING k.key_id, k.tenant_id, k.tenant, k.resource, old.revoked_at IS NULL AS was_active)
INSERT INTO apikey.audit (actor_role, tenant_id, tenant, key_id, action, details)
SELECT CURRENT_USER, f.tenant_id, f.tenant, f.key_id, 'revoked',
       pg_catalog.jsonb_build_object('reason', 'update to 0.3.0: a resource pattern now', 'resource', f.resource)
  FROM flagged AS f
 WHERE f.was_active;

CREATE TABLE apikey.credits (
	key_id        apikey.key_id PRIMARY KEY,
	remaining     bigint NOT NULL,
	refill_amount bigint,
	refill_every  interval,
	refilled_at   timestamptz
);
COMMENT ON TABLE apikey.credits IS
	'credits left of usage-limited keys, refilled lazily to refill_amount every refill_every';
SELECT pg_catalog.pg_extension_config_dump('apikey.credits', '');

-- Keys imported from another system: the SHA-256 of each one's original
-- text leads to its key.
CREATE TABLE apikey.imported_keys (
	key_hash bytea PRIMARY KEY,
	key_id   apikey.key_id NOT NULL
);
CREATE INDEX imported_keys_key_id ON apikey.imported_keys (key_id);
COMMENT ON TABLE apikey.imported_keys IS
	'keys imported from another system: the SHA-256 of the original text, and the key it proves';
SELECT pg_catalog.pg_extension_config_dump('apikey.imported_keys', '');

-- Key roles: named scope sets of a tenant.
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

-- The audit trail records the human behind a change (apikey.set_actor).
ALTER TABLE apikey.audit ADD COLUMN actor text;

-- Usage control: a tenant's rate limits (copied onto its keys), the
-- refill schedule of credits, and the hourly counts behind usage_stats.
ALTER TABLE apikey.tenants ADD COLUMN rate_limits apikey.rate_limit[];
ALTER TABLE apikey.credits
	ADD COLUMN refill_anchor timestamptz,
	ADD COLUMN next_refill_at timestamptz;
-- room on each page for a charge to rewrite its row in place (HOT)
ALTER TABLE apikey.credits SET (fillfactor = 50);
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

-- Every function and view as in 0.3.0 (sql/apikey/*.sql), replaced in place.

CREATE OR REPLACE FUNCTION apikey.key_id_in(cstring) RETURNS apikey.key_id
	AS 'MODULE_PATHNAME', 'key_id_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_out(apikey.key_id) RETURNS cstring
	AS 'MODULE_PATHNAME', 'key_id_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_recv(internal) RETURNS apikey.key_id
	AS 'MODULE_PATHNAME', 'key_id_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_send(apikey.key_id) RETURNS bytea
	AS 'MODULE_PATHNAME', 'key_id_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION apikey.key_id_in(cstring) IS 'key_id input: 11 base62 characters';

COMMENT ON FUNCTION apikey.key_id_out(apikey.key_id) IS 'key_id output: 11 base62 characters';

COMMENT ON FUNCTION apikey.key_id_recv(internal) IS 'key_id binary input: 8 bytes';

COMMENT ON FUNCTION apikey.key_id_send(apikey.key_id) IS 'key_id binary output: 8 bytes';

CREATE OR REPLACE FUNCTION apikey.key_id_eq(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_eq' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_ne(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_ne' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_lt(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_lt' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_le(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_le' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_gt(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_gt' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_ge(apikey.key_id, apikey.key_id) RETURNS boolean
	AS 'MODULE_PATHNAME', 'key_id_ge' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_cmp(apikey.key_id, apikey.key_id) RETURNS integer
	AS 'MODULE_PATHNAME', 'key_id_cmp' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_sortsupport(internal) RETURNS void
	AS 'MODULE_PATHNAME', 'key_id_sortsupport' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_hash(apikey.key_id) RETURNS integer
	AS 'MODULE_PATHNAME', 'key_id_hash' LANGUAGE C IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE;

CREATE OR REPLACE FUNCTION apikey.key_id_hash_extended(apikey.key_id, bigint) RETURNS bigint
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

CREATE OR REPLACE FUNCTION apikey.looks_like_key(api_key text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'looks_like_key' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION apikey.looks_like_key(text) IS
	'does the text have the form and checksum of an apikey key (private or public)? No table access';

CREATE OR REPLACE FUNCTION apikey.verify(api_key text, environment text DEFAULT NULL,
		scope text DEFAULT NULL, resource text DEFAULT NULL,
		cost integer DEFAULT 1, client_ip inet DEFAULT NULL)
	RETURNS apikey.verification
	AS 'MODULE_PATHNAME', 'verify' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION apikey.verify(text, text, text, text, integer, inet) IS
	'check an API key: status valid, malformed, not_found, revoked, expired, wrong_environment, insufficient_scope, wrong_resource, public_key, ip_not_allowed, rate_limited or usage_exceeded; writes nothing unless the key has credits';

CREATE OR REPLACE FUNCTION apikey.authenticate(api_key text, scope text DEFAULT NULL,
		cost integer DEFAULT 1, client_ip inet DEFAULT NULL)
	RETURNS apikey.verification
	AS 'MODULE_PATHNAME', 'authenticate' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION apikey.authenticate(text, text, integer, inet) IS
	'verify an API key (in the environment of apikey.environment) and make it the identity of this transaction; when it is not valid raises SQLSTATE KA429 (rate_limited), KA402 (usage_exceeded) or 28000 (any other status)';

CREATE OR REPLACE FUNCTION apikey.current_tenant() RETURNS text
	AS 'MODULE_PATHNAME', 'current_tenant' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.current_tenant() IS
	'slug of the tenant this transaction was authenticated as, or NULL';

CREATE OR REPLACE FUNCTION apikey.current_tenant_id() RETURNS bigint
	AS 'MODULE_PATHNAME', 'current_tenant_id' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.current_tenant_id() IS
	'id of the tenant this transaction was authenticated as, or NULL';

CREATE OR REPLACE FUNCTION apikey.current_key_id() RETURNS apikey.key_id
	AS 'MODULE_PATHNAME', 'current_key_id' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.current_key_id() IS
	'id of the key this transaction was authenticated with, or NULL';

CREATE OR REPLACE FUNCTION apikey.current_environment() RETURNS text
	AS 'MODULE_PATHNAME', 'current_environment' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.current_environment() IS
	'environment of the key this transaction was authenticated with, or NULL';

CREATE OR REPLACE FUNCTION apikey.current_scopes() RETURNS text[]
	AS 'MODULE_PATHNAME', 'current_scopes' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.current_scopes() IS
	'scopes of the key this transaction was authenticated with, or NULL';

CREATE OR REPLACE FUNCTION apikey.current_resource() RETURNS text
	AS 'MODULE_PATHNAME', 'current_resource' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.current_resource() IS
	'resource the authenticated key is restricted to when it is restricted to exactly one, or NULL';

CREATE OR REPLACE FUNCTION apikey.current_resources() RETURNS text[]
	AS 'MODULE_PATHNAME', 'current_resources' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.current_resources() IS
	'resources the authenticated key is restricted to (patterns such as "collection:*" included), or NULL';

CREATE OR REPLACE FUNCTION apikey.has_scope(scope text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'has_scope' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.has_scope(text) IS
	'does the authenticated key hold the scope (directly or by a * wildcard)? false when not authenticated';

CREATE OR REPLACE FUNCTION apikey.can_access(resource text, scope text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'can_access' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.can_access(text, text) IS
	'may the authenticated key use the scope on the resource? A resource-restricted key reaches its own resources only ("type:*" covers every id of the type)';

CREATE OR REPLACE FUNCTION apikey.is_admin() RETURNS boolean
	AS 'MODULE_PATHNAME', 'is_admin' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.is_admin() IS
	'may the calling role manage every tenant (may it execute apikey.create_tenant)? Answers about the caller only';

CREATE OR REPLACE FUNCTION apikey._caller() RETURNS regrole
	AS 'MODULE_PATHNAME', 'caller' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey._caller() IS
	'internal: the calling role, unaffected by SECURITY DEFINER';

CREATE OR REPLACE FUNCTION apikey._authorized_tenant(slug text) RETURNS text
	AS 'MODULE_PATHNAME', 'authorized_tenant' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey._authorized_tenant(text) IS
	'internal: the slug, if the caller may manage that tenant''s keys at all; raises 42501 otherwise';

CREATE OR REPLACE FUNCTION apikey._authorize(tenant text, environment text, scopes text[], resources text[])
	RETURNS void
	AS 'MODULE_PATHNAME', 'authorize' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey._authorize(text, text, text[], text[]) IS
	'internal: the rule of every management function (tenant, environment, scopes and resources covered by a tenant administrator''s key); raises 42501 otherwise';

CREATE OR REPLACE FUNCTION apikey.usage_tracking() RETURNS text
	AS 'MODULE_PATHNAME', 'usage_tracking' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.usage_tracking() IS
	'whether last_used_at is kept (it needs shared_preload_libraries = apikey), how often it is written, and what is pending';

CREATE OR REPLACE FUNCTION apikey._require(what text, present boolean) RETURNS void
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

CREATE OR REPLACE FUNCTION apikey._audit(action text, tenant_id bigint, tenant text,
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

CREATE OR REPLACE FUNCTION apikey._deny(message text, hint text DEFAULT NULL)
	RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
		MESSAGE = coalesce(message, 'permission denied'),
		HINT = coalesce(hint, 'Administrators are named with apikey.grant_admin; a tenant''s own administrators authenticate with a key holding apikey:admin.');
END
$$;

COMMENT ON FUNCTION apikey._deny(text, text) IS 'internal: raise permission denied';

CREATE OR REPLACE FUNCTION apikey._authorize_admin() RETURNS void LANGUAGE plpgsql STABLE
AS $$
BEGIN
	IF apikey.current_tenant_id() IS NOT NULL OR NOT apikey.is_admin() THEN
		PERFORM apikey._deny('permission denied: only an apikey administrator may do this');
	END IF;
END
$$;

COMMENT ON FUNCTION apikey._authorize_admin() IS
	'internal: raise unless the caller is a full administrator (not acting as a key)';

CREATE OR REPLACE FUNCTION apikey._authorize_tenant(slug text) RETURNS apikey.tenants
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

CREATE OR REPLACE FUNCTION apikey._environment(t apikey.tenants, name text)
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

CREATE OR REPLACE FUNCTION apikey._shown(value text) RETURNS text
	AS 'MODULE_PATHNAME', 'shown_value' LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION apikey._shown(text) IS
	'internal: a value as an error message may show it (quoted, or not at all when it may hold a secret)';

CREATE OR REPLACE FUNCTION apikey._checked_label(what text, value text, maxlen integer, required boolean)
	RETURNS text AS 'MODULE_PATHNAME', 'checked_label' LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION apikey._checked_label(text, text, integer, boolean) IS
	'internal: a name, description or reason of at most maxlen characters without control characters';

CREATE OR REPLACE FUNCTION apikey._normalized_scopes(scopes text[]) RETURNS text[]
	AS 'MODULE_PATHNAME', 'normalized_scopes' LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION apikey._normalized_scopes(text[]) IS
	'internal: at most 64 well-formed scopes ("*", "a:b", "a:*"), sorted, without duplicates';

CREATE OR REPLACE FUNCTION apikey._checked_resource(resource text) RETURNS text
	AS 'MODULE_PATHNAME', 'checked_resource' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION apikey._checked_resource(text) IS
	'internal: a well-formed resource ("type:id", at most 200 characters)';

CREATE OR REPLACE FUNCTION apikey._check_lifetime(what text, lifetime interval)
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

CREATE OR REPLACE FUNCTION apikey._check_key_policy(default_key_lifetime interval,
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

CREATE OR REPLACE FUNCTION apikey._new_public_key(tenant_id bigint, environment text, tag text)
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

CREATE OR REPLACE FUNCTION apikey._add_environment(t apikey.tenants, name text, tag text)
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

CREATE OR REPLACE FUNCTION apikey.create_tenant(slug text, name text DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION apikey.create_environment(tenant text, name text, tag text)
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

CREATE OR REPLACE FUNCTION apikey.set_key_policy(tenant text, default_key_lifetime interval,
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

CREATE OR REPLACE FUNCTION apikey.public_key(tenant text, environment text)
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

CREATE OR REPLACE FUNCTION apikey.regenerate_public_key(tenant text, environment text)
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

CREATE OR REPLACE FUNCTION apikey.identify(public_key text)
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

CREATE OR REPLACE FUNCTION apikey._generate_key(prefix text, tag text, for_key apikey.key_id DEFAULT NULL,
		OUT key_id apikey.key_id, OUT api_key text, OUT key_hash bytea, OUT hint text)
	AS 'MODULE_PATHNAME', 'generate_key' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION apikey._generate_key(text, text, apikey.key_id) IS
	'internal: new key text (or a new secret for for_key), its SHA-256 and hint';

CREATE OR REPLACE FUNCTION apikey._generate_public_key(tag text,
		OUT key_id apikey.key_id, OUT public_key text)
	AS 'MODULE_PATHNAME', 'generate_public_key' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

COMMENT ON FUNCTION apikey._generate_public_key(text) IS 'internal: new public key text';

CREATE OR REPLACE FUNCTION apikey._key_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'key_changed' LANGUAGE C;

COMMENT ON FUNCTION apikey._key_changed() IS
	'internal: note the keys a transaction changes, for the cache of verified keys';

CREATE OR REPLACE FUNCTION apikey._authorize_key(key_id apikey.key_id) RETURNS apikey.keys
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

CREATE OR REPLACE FUNCTION apikey._expiry(slug text, expires_in interval, default_lifetime interval,
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

CREATE OR REPLACE FUNCTION apikey.create_key(tenant text, environment text, name text,
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

CREATE OR REPLACE FUNCTION apikey.rename_key(key_id apikey.key_id, name text)
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

CREATE OR REPLACE FUNCTION apikey.describe_key(key_id apikey.key_id, description text)
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

CREATE OR REPLACE FUNCTION apikey.revoke_key(key_id apikey.key_id, reason text DEFAULT NULL,
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

CREATE OR REPLACE FUNCTION apikey.reactivate_key(key_id apikey.key_id)
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

CREATE OR REPLACE FUNCTION apikey.delete_key(key_id apikey.key_id)
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

CREATE OR REPLACE FUNCTION apikey.roll_key(key_id apikey.key_id, grace interval DEFAULT '0')
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

CREATE OR REPLACE FUNCTION apikey.set_key_expiry(key_id apikey.key_id, expires_at timestamptz)
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

CREATE OR REPLACE FUNCTION apikey._check_rate_limit(name text, max_requests integer, per interval)
	RETURNS void AS 'MODULE_PATHNAME', 'check_rate_limit' LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION apikey._check_rate_limit(text, integer, interval) IS
	'internal: raise unless name, max_requests and per make a rate limit this server can count (it needs shared_preload_libraries = apikey)';

CREATE OR REPLACE FUNCTION apikey._with_rate_limit(limits apikey.rate_limit[], name text,
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

CREATE OR REPLACE FUNCTION apikey._rate_limit_details(limits apikey.rate_limit[], name text)
	RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT pg_catalog.jsonb_build_object('max_requests', x.max_requests, 'per', x.per)
	  FROM pg_catalog.unnest(limits) AS x
	 WHERE x.name OPERATOR(pg_catalog.=) _rate_limit_details.name
$$;

COMMENT ON FUNCTION apikey._rate_limit_details(apikey.rate_limit[], text) IS
	'internal: one limit of a list, as audit details show it';

CREATE OR REPLACE FUNCTION apikey.set_rate_limit(key_id apikey.key_id, name text, max_requests integer, per interval)
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

CREATE OR REPLACE FUNCTION apikey.remove_rate_limit(key_id apikey.key_id, name text)
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

CREATE OR REPLACE FUNCTION apikey._set_tenant_rate_limits(t apikey.tenants, name text,
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

CREATE OR REPLACE FUNCTION apikey.set_tenant_rate_limit(tenant text, name text, max_requests integer, per interval)
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

CREATE OR REPLACE FUNCTION apikey.remove_tenant_rate_limit(tenant text, name text)
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

CREATE OR REPLACE FUNCTION apikey._key_tenant_rate_limits() RETURNS trigger
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

CREATE OR REPLACE FUNCTION apikey.rate_limit_status(OUT preloaded boolean, OUT capacity integer,
		OUT in_use bigint, OUT refused_full bigint)
	AS 'MODULE_PATHNAME', 'rate_limit_status' LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.rate_limit_status() IS
	'rate-limit buckets of this server: whether they exist (shared_preload_libraries), how many there can be, how many are held, and how many requests were refused because none was free';

CREATE OR REPLACE FUNCTION apikey._next_refill(anchor timestamptz, every interval, after timestamptz)
	RETURNS timestamptz AS 'MODULE_PATHNAME', 'next_refill' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION apikey._next_refill(timestamptz, interval, timestamptz) IS
	'internal: the first anchor + n * every (n >= 1) after "after", in UTC with calendar months';

CREATE OR REPLACE FUNCTION apikey._charge_credits(key_id apikey.key_id, cost integer, at timestamptz)
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

CREATE OR REPLACE FUNCTION apikey.set_credits(key_id apikey.key_id, remaining bigint,
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

CREATE OR REPLACE FUNCTION apikey.add_credits(key_id apikey.key_id, amount bigint)
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

CREATE OR REPLACE FUNCTION apikey.usage_flush() RETURNS void
	AS 'MODULE_PATHNAME', 'usage_flush' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION apikey.usage_flush() IS
	'write the pending last uses and usage counts of this server now, and return once they are written';

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
       t.created_by
  FROM apikey.tenants AS t
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE t.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;

COMMENT ON VIEW apikey.tenant_list IS
	'tenants for humans: environments, key policy, rate limits shared by their keys';

CREATE OR REPLACE VIEW apikey.usage_stats WITH (security_barrier) AS
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

CREATE OR REPLACE FUNCTION apikey.set_actor(actor text) RETURNS void
	AS 'MODULE_PATHNAME', 'set_actor' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION apikey.set_actor(text) IS
	'label this transaction''s changes with the human behind them (audit_log.actor, key_list.created_by); ends with the transaction; NULL clears it; grants nothing';

CREATE OR REPLACE FUNCTION apikey._actor() RETURNS text
	AS 'MODULE_PATHNAME', 'current_actor' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey._actor() IS
	'internal: the label set_actor gave this transaction, or NULL';

CREATE OR REPLACE FUNCTION apikey.current_owner() RETURNS text
	AS 'MODULE_PATHNAME', 'current_owner' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.current_owner() IS
	'owner of the key this transaction was authenticated with, or NULL';

CREATE OR REPLACE FUNCTION apikey.current_key_meta() RETURNS jsonb
	AS 'MODULE_PATHNAME', 'current_key_meta' LANGUAGE C STABLE PARALLEL RESTRICTED;

COMMENT ON FUNCTION apikey.current_key_meta() IS
	'metadata (meta) of the key this transaction was authenticated with, or NULL';

CREATE OR REPLACE FUNCTION apikey._checked_resources(resources text[]) RETURNS text[]
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

CREATE OR REPLACE FUNCTION apikey._checked_meta(meta jsonb) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION apikey._checked_allowed_ips(allowed_ips cidr[]) RETURNS cidr[]
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

CREATE OR REPLACE FUNCTION apikey._checked_role_name(name text) RETURNS text
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

CREATE OR REPLACE FUNCTION apikey._checked_key_roles(tenant_id bigint, tenant text, key_roles text[])
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

CREATE OR REPLACE FUNCTION apikey._effective_scopes(tenant_id bigint, scopes text[], key_roles text[])
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

CREATE OR REPLACE FUNCTION apikey.set_key_scopes(key_id apikey.key_id, scopes text[])
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

CREATE OR REPLACE FUNCTION apikey.set_key_roles(key_id apikey.key_id, key_roles text[])
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

CREATE OR REPLACE FUNCTION apikey.set_key_resources(key_id apikey.key_id, resources text[])
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

CREATE OR REPLACE FUNCTION apikey.set_key_owner(key_id apikey.key_id, owner text)
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

CREATE OR REPLACE FUNCTION apikey.set_key_meta(key_id apikey.key_id, meta jsonb)
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

CREATE OR REPLACE FUNCTION apikey.set_key_allowed_ips(key_id apikey.key_id, allowed_ips cidr[])
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

CREATE OR REPLACE FUNCTION apikey.revoke_owner_keys(tenant text, owner text, reason text DEFAULT NULL)
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

CREATE OR REPLACE FUNCTION apikey.create_key_role(tenant text, name text, scopes text[])
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

CREATE OR REPLACE FUNCTION apikey._lock_key_role(t apikey.tenants, name text)
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

CREATE OR REPLACE FUNCTION apikey.set_key_role_scopes(tenant text, name text, scopes text[])
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

CREATE OR REPLACE FUNCTION apikey.drop_key_role(tenant text, name text, detach boolean DEFAULT false)
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
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE r.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;

COMMENT ON VIEW apikey.key_role_list IS
	'key roles of the tenants: name, scopes, how many keys have it';

CREATE OR REPLACE FUNCTION apikey._hide_statement() RETURNS void
	AS 'MODULE_PATHNAME', 'hide_statement' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION apikey._hide_statement() IS
	'internal: no error keeps the calling statement in the server log until the transaction ends';

CREATE OR REPLACE FUNCTION apikey._imports_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'imports_changed' LANGUAGE C VOLATILE;

COMMENT ON FUNCTION apikey._imports_changed() IS
	'internal: tell every backend, at commit, to look at apikey.imported_keys again';

CREATE OR REPLACE FUNCTION apikey._import_key_text(api_key text, key_hash bytea,
		OUT key_id apikey.key_id, OUT hash bytea, OUT hint text)
	AS 'MODULE_PATHNAME', 'import_key_text' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION apikey._import_key_text(text, bytea) IS
	'internal: a new key id, the SHA-256 and the hint of an imported key, from its text or its hash (exactly one)';

CREATE OR REPLACE FUNCTION apikey.import_key(tenant text, environment text, name text,
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

CREATE OR REPLACE FUNCTION apikey._prove_key(api_key text, OUT status text, OUT key_id apikey.key_id)
	AS 'MODULE_PATHNAME', 'prove_key' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION apikey._prove_key(text) IS
	'internal: the key the text proves (status found), without a verification''s effects; else malformed, public_key or not_found';

CREATE OR REPLACE FUNCTION apikey.report_leak(api_key text, source text DEFAULT NULL)
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

CREATE OR REPLACE FUNCTION apikey.grant_leak_reporter(role regrole) RETURNS void
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

CREATE OR REPLACE FUNCTION apikey._terminate_at_commit(key_id apikey.key_id, required boolean) RETURNS boolean
	AS 'MODULE_PATHNAME', 'terminate_at_commit' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION apikey._terminate_at_commit(apikey.key_id, boolean) IS
	'internal: when this transaction commits, stop the transactions authenticated by the key on this server; without shared_preload_libraries an error when required, else false';

CREATE OR REPLACE FUNCTION apikey._notify_event() RETURNS trigger
	AS 'MODULE_PATHNAME', 'notify_event' LANGUAGE C VOLATILE;

COMMENT ON FUNCTION apikey._notify_event() IS
	'internal: send an audit event to the channel apikey_events at commit (ids only)';

CREATE OR REPLACE FUNCTION apikey.expiring_keys(within interval)
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
       k.imported
  FROM apikey.keys AS k
  LEFT JOIN apikey.key_usage AS u ON u.key_id OPERATOR(pg_catalog.=) k.key_id
  LEFT JOIN apikey.credits AS c ON c.key_id OPERATOR(pg_catalog.=) k.key_id
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE k.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;

COMMENT ON VIEW apikey.key_list IS
	'API keys for humans: name, hint, scopes, status (active, revoked, expired), dates; never a hash or a secret';

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
 WHERE CASE WHEN apikey.current_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE a.tenant_id OPERATOR(pg_catalog.=) apikey.current_tenant_id()
                 AND apikey.has_scope('apikey:admin') END;

COMMENT ON VIEW apikey.audit_log IS
	'who did what to which tenant or key, and when; survives the deletion of keys';

CREATE OR REPLACE FUNCTION apikey._check_role(role regrole) RETURNS void
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

CREATE OR REPLACE FUNCTION apikey.grant_verifier(role regrole) RETURNS void
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
		apikey.usage_flush()
		TO %s', role);
END
$$;

COMMENT ON FUNCTION apikey.grant_admin(regrole) IS
	'let a role manage every tenant and key (psql administration); whoever may execute create_tenant is an administrator';

-- A default lifetime within the maximum is checked as times by the
-- functions; the table's check compared them as intervals and refused
-- pairs such as ('364 days', '12 mons').
ALTER TABLE apikey.tenants DROP CONSTRAINT tenants_check;

-- Every change of apikey.imported_keys tells the backends to look at it again.
CREATE TRIGGER imported_keys_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON apikey.imported_keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._imports_changed();
REVOKE ALL ON apikey.imported_keys FROM PUBLIC;

-- Each audit event is also sent at commit on the channel apikey_events.
CREATE TRIGGER audit_notify AFTER INSERT ON apikey.audit
	FOR EACH ROW EXECUTE FUNCTION apikey._notify_event();

-- New functions go to the roles grant_verifier and grant_admin set up, and
-- to no other: a role granted some functions by hand gets no new right.
-- grant_verifier's roles are those holding each of its functions and
-- listings that this update keeps (until 0.4.0, this script gave new
-- functions to whoever held any one related function: see CHANGELOG.md).

-- import_key and expiring_keys for grant_verifier's roles.
DO $$
DECLARE
	r pg_catalog.regrole;
BEGIN
	FOR r IN
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.identify(text)',
		       'apikey.rename_key(apikey.key_id, text)', 'apikey.describe_key(apikey.key_id, text)',
		       'apikey.reactivate_key(apikey.key_id)', 'apikey.delete_key(apikey.key_id)',
		       'apikey.roll_key(apikey.key_id, interval)', 'apikey.set_key_expiry(apikey.key_id, timestamptz)',
		       'apikey.public_key(text, text)', 'apikey.regenerate_public_key(text, text)']::pg_catalog.regprocedure[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT p.oid) OPERATOR(pg_catalog.=) 9
		INTERSECT
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_class AS c, pg_catalog.aclexplode(c.relacl) AS a
		 WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.key_list', 'apikey.audit_log']::pg_catalog.regclass[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT c.oid) OPERATOR(pg_catalog.=) 2
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text),
			apikey.expiring_keys(interval) TO %s', r);
	END LOOP;
END
$$;

-- revoke_key takes terminate: whoever could call the old one may call the
-- new one.
DO $$
DECLARE
	r pg_catalog.regrole;
BEGIN
	FOR r IN
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) 'apikey.revoke_key(apikey.key_id, text)'::pg_catalog.regprocedure
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
		   AND a.grantee OPERATOR(pg_catalog.<>) 0
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION apikey.revoke_key(apikey.key_id, text, boolean) TO %s', r);
	END LOOP;
END
$$;
DROP FUNCTION apikey.revoke_key(apikey.key_id, text);

-- Every change to a key is noted for the cache of verified keys.
CREATE TRIGGER keys_changed BEFORE UPDATE OR DELETE ON apikey.keys
	FOR EACH ROW EXECUTE FUNCTION apikey._key_changed();
CREATE TRIGGER keys_truncated BEFORE TRUNCATE ON apikey.keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey._key_changed();
ALTER TABLE apikey.keys ENABLE ALWAYS TRIGGER keys_changed,
	ENABLE ALWAYS TRIGGER keys_truncated;

-- create_key takes owner, meta, key_roles, resources and allowed_ips:
-- whoever could call the old one may call the new one; grant_verifier's
-- roles may also edit those later, manage key roles, label changes and list
-- the roles.
DO $$
DECLARE
	r pg_catalog.regrole;
BEGIN
	FOR r IN
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) 'apikey.create_key(text, text, text, text, text[], interval, text)'::pg_catalog.regprocedure
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
		   AND a.grantee OPERATOR(pg_catalog.<>) 0
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION
			apikey.create_key(text, text, text, text, text[], interval, text, text, jsonb, text[], text[], cidr[])
			TO %s', r);
	END LOOP;
	FOR r IN
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.identify(text)',
		       'apikey.rename_key(apikey.key_id, text)', 'apikey.describe_key(apikey.key_id, text)',
		       'apikey.reactivate_key(apikey.key_id)', 'apikey.delete_key(apikey.key_id)',
		       'apikey.roll_key(apikey.key_id, interval)', 'apikey.set_key_expiry(apikey.key_id, timestamptz)',
		       'apikey.public_key(text, text)', 'apikey.regenerate_public_key(text, text)']::pg_catalog.regprocedure[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT p.oid) OPERATOR(pg_catalog.=) 9
		INTERSECT
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_class AS c, pg_catalog.aclexplode(c.relacl) AS a
		 WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.key_list', 'apikey.audit_log']::pg_catalog.regclass[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT c.oid) OPERATOR(pg_catalog.=) 2
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION
			apikey.set_key_scopes(apikey.key_id, text[]), apikey.set_key_roles(apikey.key_id, text[]),
			apikey.set_key_resources(apikey.key_id, text[]), apikey.set_key_owner(apikey.key_id, text),
			apikey.set_key_meta(apikey.key_id, jsonb), apikey.set_key_allowed_ips(apikey.key_id, cidr[]),
			apikey.revoke_owner_keys(text, text, text),
			apikey.create_key_role(text, text, text[]), apikey.set_key_role_scopes(text, text, text[]),
			apikey.drop_key_role(text, text, boolean),
			apikey.set_actor(text)
			TO %s', r);
		EXECUTE pg_catalog.format('GRANT SELECT ON apikey.key_role_list TO %s', r);
	END LOOP;
END
$$;
DROP FUNCTION apikey.create_key(text, text, text, text, text[], interval, text);
REVOKE ALL ON apikey.key_roles, apikey.key_role_list FROM PUBLIC;

-- New keys carry their tenant's rate limits.
CREATE TRIGGER keys_tenant_rate_limits BEFORE INSERT ON apikey.keys
	FOR EACH ROW EXECUTE FUNCTION apikey._key_tenant_rate_limits();

-- The new table and listings: for the owner only, as in a fresh install;
-- grant_verifier's roles get the per-key usage functions and the listings,
-- full administrators (grant_admin) the tenant-wide ones.
REVOKE ALL ON apikey.usage_hourly, apikey.tenant_list, apikey.usage_stats FROM PUBLIC;
DO $$
DECLARE
	r pg_catalog.regrole;
BEGIN
	FOR r IN
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.identify(text)',
		       'apikey.rename_key(apikey.key_id, text)', 'apikey.describe_key(apikey.key_id, text)',
		       'apikey.reactivate_key(apikey.key_id)', 'apikey.delete_key(apikey.key_id)',
		       'apikey.roll_key(apikey.key_id, interval)', 'apikey.set_key_expiry(apikey.key_id, timestamptz)',
		       'apikey.public_key(text, text)', 'apikey.regenerate_public_key(text, text)']::pg_catalog.regprocedure[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT p.oid) OPERATOR(pg_catalog.=) 9
		INTERSECT
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_class AS c, pg_catalog.aclexplode(c.relacl) AS a
		 WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.key_list', 'apikey.audit_log']::pg_catalog.regclass[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT c.oid) OPERATOR(pg_catalog.=) 2
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION
			apikey.set_rate_limit(apikey.key_id, text, integer, interval),
			apikey.remove_rate_limit(apikey.key_id, text),
			apikey.set_credits(apikey.key_id, bigint, bigint, interval),
			apikey.add_credits(apikey.key_id, bigint) TO %s', r);
		EXECUTE pg_catalog.format('GRANT SELECT ON apikey.tenant_list, apikey.usage_stats TO %s', r);
	END LOOP;
	FOR r IN
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.identify(text)',
		       'apikey.rename_key(apikey.key_id, text)', 'apikey.describe_key(apikey.key_id, text)',
		       'apikey.reactivate_key(apikey.key_id)', 'apikey.delete_key(apikey.key_id)',
		       'apikey.roll_key(apikey.key_id, interval)', 'apikey.set_key_expiry(apikey.key_id, timestamptz)',
		       'apikey.public_key(text, text)', 'apikey.regenerate_public_key(text, text)']::pg_catalog.regprocedure[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner AND a.grantee OPERATOR(pg_catalog.<>) 0
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT p.oid) OPERATOR(pg_catalog.=) 9
		INTERSECT
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_class AS c, pg_catalog.aclexplode(c.relacl) AS a
		 WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.key_list', 'apikey.audit_log']::pg_catalog.regclass[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT c.oid) OPERATOR(pg_catalog.=) 2
		INTERSECT
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY['apikey.create_tenant(text, text, text[], text, interval, interval)',
		       'apikey.create_environment(text, text, text)',
		       'apikey.set_key_policy(text, interval, interval, text)']::pg_catalog.regprocedure[])
		   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
		 GROUP BY a.grantee HAVING pg_catalog.count(DISTINCT p.oid) OPERATOR(pg_catalog.=) 3
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION
			apikey.set_tenant_rate_limit(text, text, integer, interval),
			apikey.remove_tenant_rate_limit(text, text),
			apikey.rate_limit_status(),
			apikey.usage_flush() TO %s', r);
	END LOOP;
END
$$;

-- What 0.3.0 no longer has: the pending last use (key_list shows the
-- written time), the old name of is_admin, the grantable check (now part of
-- _authorize), and the column that moved to apikey.key_usage.
DROP FUNCTION apikey._pending_last_used(apikey.key_id);
DROP FUNCTION apikey._is_admin();
DROP FUNCTION apikey._check_grantable(text[], text);
ALTER TABLE apikey.keys DROP COLUMN last_used_at, DROP COLUMN resource;

-- verify and authenticate take cost and client_ip: whoever could call the
-- old ones may call the new ones (each its own).
DO $$
DECLARE
	r pg_catalog.regrole;
BEGIN
	FOR r IN
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) 'apikey.verify(text, text, text, text)'::pg_catalog.regprocedure
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
		   AND a.grantee OPERATOR(pg_catalog.<>) 0
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION apikey.verify(text, text, text, text, integer, inet) TO %s', r);
	END LOOP;
	FOR r IN
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) 'apikey.authenticate(text, text)'::pg_catalog.regprocedure
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
		   AND a.grantee OPERATOR(pg_catalog.<>) 0
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION apikey.authenticate(text, text, integer, inet) TO %s', r);
	END LOOP;
END
$$;
DROP FUNCTION apikey.verify(text, text, text, text);
DROP FUNCTION apikey.authenticate(text, text);

-- Privileges as a fresh install has them: internal functions for the owner
-- only, usage_tracking() for administrators only.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA apikey FROM PUBLIC;
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
	apikey.is_admin()
	TO PUBLIC;
REVOKE ALL ON apikey.key_usage, apikey.credits FROM PUBLIC;
DO $$
DECLARE
	r pg_catalog.regrole;
BEGIN
	-- verifiers that are not administrators lose usage_tracking()
	FOR r IN
		SELECT a.grantee::pg_catalog.regrole
		  FROM pg_catalog.pg_proc AS p, pg_catalog.aclexplode(p.proacl) AS a
		 WHERE p.oid OPERATOR(pg_catalog.=) 'apikey.usage_tracking()'::pg_catalog.regprocedure
		   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
		   AND NOT pg_catalog.has_function_privilege(a.grantee,
		       'apikey.create_tenant(text, text, text[], text, interval, interval)', 'EXECUTE')
	LOOP
		EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION apikey.usage_tracking() FROM %s', r);
	END LOOP;
END
$$;

-- The identity functions new in 0.3.0, like the others, for every role.
GRANT EXECUTE ON FUNCTION apikey.current_resources() TO PUBLIC;

-- The identity functions of richer keys, like the others, for every role.
GRANT EXECUTE ON FUNCTION apikey.current_owner(), apikey.current_key_meta() TO PUBLIC;
