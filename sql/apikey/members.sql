-- Tenant members (version 0.4): the application's dashboard role acts for
-- one signed-in person of one tenant per transaction.  grant_delegate
-- names the role, which by itself may manage nothing; act_for, called
-- after the application's own sign-in check, confines the rest of the
-- transaction to that tenant, those environments and those rights, by the
-- rule tenant administrators' keys obey (authz.c), and records the person
-- as the actor (audit_log.actor, key_list.created_by).  The delegation
-- lives in backend memory (delegation.c): SET cannot forge it, it ends
-- with the transaction, and a second act_for in the transaction is refused.

CREATE FUNCTION apikey_internal.act_for(tenant_id bigint, tenant text, actor text, rights text[],
		environments text[])
	RETURNS void
	AS 'MODULE_PATHNAME', 'act_for' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey_internal.act_for(bigint, text, text, text[], text[]) IS
	'internal: act for a member until the transaction ends (act_for checks the arguments first)';

CREATE FUNCTION apikey.act_for(tenant text, actor text, rights text[] DEFAULT '{apikey:admin}',
		environments text[] DEFAULT NULL)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
	checked text[];
	envs text[];
	missing text;
BEGIN
	IF tenant IS NULL OR actor IS NULL OR rights IS NULL THEN
		RAISE EXCEPTION 'tenant, actor and rights must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	actor := apikey_internal.checked_label('actor', actor, 200, true);
	-- the rights, and the scopes the member may give keys: unknown apikey: words are 22023
	checked := apikey_internal.normalized_scopes(rights);
	IF environments IS NOT NULL THEN
		IF array_ndims(environments) > 1 OR array_position(environments, NULL) IS NOT NULL THEN
			RAISE EXCEPTION 'environments must be a one-dimensional array of names without NULL'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		envs := ARRAY(SELECT DISTINCT e FROM unnest(environments) AS e ORDER BY 1);
	END IF;
	SELECT * INTO t FROM apikey.tenants AS x WHERE x.slug = act_for.tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % does not exist', apikey_internal.shown(tenant) USING ERRCODE = 'undefined_object';
	END IF;
	SELECT e INTO missing FROM unnest(envs) AS e
	 WHERE NOT EXISTS (SELECT FROM apikey.environments AS x
	                    WHERE x.tenant_id = t.tenant_id AND x.name = e)
	 ORDER BY 1 LIMIT 1;
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey_internal.shown(missing), t.slug
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.act_for(t.tenant_id, t.slug, actor, checked, envs);
END
$$;
COMMENT ON FUNCTION apikey.act_for(text, text, text[], text[]) IS
	'for the rest of this transaction, manage and list keys only as this member of this tenant may: its rights (apikey:keys:read, ... and the scopes it may give keys), its environments (NULL: all), recorded as actor; once per transaction';

CREATE FUNCTION apikey.grant_delegate(role name) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r regrole;
BEGIN
	IF role IS NULL THEN
		RAISE EXCEPTION 'role must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT x.oid::regrole INTO r FROM pg_catalog.pg_roles AS x WHERE x.rolname = role;
	IF r IS NULL THEN
		RAISE EXCEPTION 'role "%" does not exist', role USING ERRCODE = 'undefined_object';
	END IF;
	EXECUTE format('GRANT USAGE ON SCHEMA apikey TO %s', r);
	EXECUTE format('GRANT EXECUTE ON FUNCTION
		apikey.act_for(text, text, text[], text[]),
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
		apikey.create_environment(text, text, text),
		apikey.set_key_policy(text, interval, interval, text),
		apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text),
		apikey.expiring_keys(interval),
		apikey.set_rate_limit(apikey.key_id, text, integer, interval),
		apikey.remove_rate_limit(apikey.key_id, text),
		apikey.set_credits(apikey.key_id, bigint, bigint, interval),
		apikey.add_credits(apikey.key_id, bigint),
		apikey.rate_limit_take(text, text, integer, interval, integer),
		apikey.set_owner_rate_limit(text, text, text, integer, interval),
		apikey.remove_owner_rate_limit(text, text, text)
		TO %s', r);
	EXECUTE format('GRANT SELECT ON apikey.key_list, apikey.audit_log, apikey.key_role_list,
		apikey.tenant_list, apikey.usage_stats, apikey.vendor_meta_field_list TO %s', r);
END
$$;
COMMENT ON FUNCTION apikey.grant_delegate(name) IS
	'let a role (the application''s dashboard) act for tenant members with act_for; by itself it may manage nothing';
