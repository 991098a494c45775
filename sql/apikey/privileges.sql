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
SELECT pg_catalog.pg_extension_config_dump('apikey.key_vendor_controls', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.vendor_meta_fields', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.owner_rate_limits', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.audit', '');
SELECT pg_catalog.pg_extension_config_dump('apikey.audit_event_id_seq', '');

CREATE FUNCTION apikey_internal.check_role(role regrole) RETURNS void
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
COMMENT ON FUNCTION apikey_internal.check_role(regrole) IS 'internal: raise unless the role exists';

CREATE FUNCTION apikey.grant_verifier(role regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM apikey_internal.check_role(role);
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
		apikey.confirm_revocations(),
		apikey.create_key_role(text, text, text[]), apikey.set_key_role_scopes(text, text, text[]),
		apikey.drop_key_role(text, text, boolean),
		apikey.set_actor(text),
		apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text),
		apikey.expiring_keys(interval),
		apikey.set_rate_limit(apikey.key_id, text, integer, interval),
		apikey.remove_rate_limit(apikey.key_id, text),
		apikey.set_credits(apikey.key_id, bigint, bigint, interval),
		apikey.add_credits(apikey.key_id, bigint),
		apikey.rate_limit_take(text, text, integer, interval, integer),
		apikey.set_owner_rate_limit(text, text, text, integer, interval),
		apikey.remove_owner_rate_limit(text, text, text)
		TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.key_list, apikey.audit_log, apikey.key_role_list TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.tenant_list, apikey.usage_stats TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.vendor_meta_field_list TO %s', role);
END
$$;
COMMENT ON FUNCTION apikey.grant_verifier(regrole) IS
	'let a role (the application''s) verify and authenticate keys; it manages keys only of the tenant of an authenticated apikey:admin key';

CREATE FUNCTION apikey.grant_admin(role regrole) RETURNS void
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
		apikey.rate_limit_tenants(),
		apikey.usage_flush(),
		apikey.events_dropped(),
		apikey.set_vendor_meta_fields(text, text[])
		TO %s', role);
	EXECUTE format('GRANT SELECT ON apikey.import_conflicts TO %s', role);
END
$$;
COMMENT ON FUNCTION apikey.grant_admin(regrole) IS
	'let a role manage every tenant and key (psql administration); whoever may execute create_tenant is an administrator';

REVOKE ALL ON ALL TABLES IN SCHEMA apikey FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA apikey FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA apikey FROM PUBLIC;
REVOKE ALL ON SCHEMA apikey_internal FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA apikey_internal FROM PUBLIC;
-- called by the listings (their readers need EXECUTE on what they call)
GRANT EXECUTE ON FUNCTION apikey_internal.rate_limit_summary(apikey.rate_limit[]) TO PUBLIC;

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
-- The listings' rule (authz.c), evaluated as the role reading them: each
-- answers only about the caller's own transaction.
GRANT EXECUTE ON FUNCTION
	apikey_internal.acting_tenant_id(), apikey_internal.sees(bigint, text, text), apikey_internal.sees_tenant(bigint)
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
