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
CREATE FUNCTION apikey_internal.caller() RETURNS regrole
	AS 'MODULE_PATHNAME', 'caller' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.caller() IS
	'internal: the calling role, unaffected by SECURITY DEFINER';

CREATE FUNCTION apikey_internal.authorized_tenant(slug text, "right" text) RETURNS text
	AS 'MODULE_PATHNAME', 'authorized_tenant' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.authorized_tenant(text, text) IS
	'internal: the slug, if the caller may use the right (apikey:keys:create, ...) on that tenant; raises 42501 otherwise';

CREATE FUNCTION apikey_internal.authorize(tenant text, environment text, scopes text[], resources text[])
	RETURNS void
	AS 'MODULE_PATHNAME', 'authorize' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.authorize(text, text, text[], text[]) IS
	'internal: the rule of every management function (tenant, environment, scopes and resources covered by a tenant administrator''s key or a member''s rights); raises 42501 otherwise';

CREATE FUNCTION apikey_internal.authorize_owner(owner text) RETURNS void
	AS 'MODULE_PATHNAME', 'authorize_owner' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.authorize_owner(text) IS
	'internal: with apikey:keys:own, raises 42501 unless owner is the caller (the member, or the key''s owner)';

CREATE FUNCTION apikey_internal.owned_by() RETURNS text
	AS 'MODULE_PATHNAME', 'owned_by_caller' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.owned_by() IS
	'internal: the owner a caller restricted to its own keys (apikey:keys:own) gives new keys, or NULL';

-- Which side a caller is on, and what its listings show (authz.c):
-- executable by every role, they answer only about the caller's own
-- transaction.
CREATE FUNCTION apikey_internal.acting_tenant_id() RETURNS bigint
	AS 'MODULE_PATHNAME', 'acting_tenant_id' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.acting_tenant_id() IS
	'internal: the tenant of a caller on a tenant''s side (an authenticated key, or act_for), else NULL';

CREATE FUNCTION apikey_internal.acting_tenant() RETURNS text
	AS 'MODULE_PATHNAME', 'acting_tenant' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.acting_tenant() IS
	'internal: the slug of the tenant of a caller on a tenant''s side, else NULL';

CREATE FUNCTION apikey_internal.sees(tenant_id bigint, environment text, owner text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'sees' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.sees(bigint, text, text) IS
	'internal: may a caller on a tenant''s side read a listing''s row of a key of this tenant, environment and owner (apikey:keys:read)?';

CREATE FUNCTION apikey_internal.sees_tenant(tenant_id bigint) RETURNS boolean
	AS 'MODULE_PATHNAME', 'sees_tenant' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.sees_tenant(bigint) IS
	'internal: may a caller on a tenant''s side read a listing''s row of this tenant about no key (apikey:keys:read)?';

-- last_used_at (usage.c)
CREATE FUNCTION apikey.usage_tracking() RETURNS text
	AS 'MODULE_PATHNAME', 'usage_tracking' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.usage_tracking() IS
	'whether last_used_at is kept (it needs shared_preload_libraries = apikey), how often it is written, and what is pending';
