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

-- Revocations commit as apikey.revocation_synchronous_commit says
-- (replica.c); a hot standby's kill switch finds a key's revocations
-- through audit_revocations.
CREATE FUNCTION apikey._revocation_commit() RETURNS void
	AS 'MODULE_PATHNAME', 'revocation_commit' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey._revocation_commit() IS
	'internal: this transaction revokes; its commit waits for synchronous standbys as apikey.revocation_synchronous_commit says';

CREATE FUNCTION apikey.confirm_revocations() RETURNS text
	AS 'MODULE_PATHNAME', 'confirm_revocations' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey.confirm_revocations() IS
	'wait until the synchronous standbys confirm every revocation committed so far (as apikey.revocation_synchronous_commit asks): confirmed, canceled, no_synchronous_standby or not_asked';
REVOKE EXECUTE ON FUNCTION apikey._revocation_commit(), apikey.confirm_revocations() FROM PUBLIC;

CREATE INDEX audit_revocations ON apikey.audit (key_id, event_id) WHERE action IN ('revoked', 'leaked');

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
	PERFORM apikey._revocation_commit();
	UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
	PERFORM apikey._audit('revoked', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('reason', reason)
		|| CASE WHEN terminate THEN '{"terminate": true}'::jsonb ELSE '{}' END);
END
$$;
COMMENT ON FUNCTION apikey.revoke_key(apikey.key_id, text, boolean) IS
	'disable a key from the next verification on; reversible with reactivate_key. terminate => true also stops, at commit, the transactions authenticated by the key on this server (needs shared_preload_libraries)';

CREATE OR REPLACE FUNCTION apikey.delete_key(key_id apikey.key_id)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, apikey, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id);
BEGIN
	PERFORM apikey._revocation_commit();
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
	PERFORM apikey._revocation_commit();   -- the old secret's end
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
	IF previous OR k.revoked_at IS NULL THEN
		PERFORM apikey._revocation_commit();
	END IF;
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
		PERFORM apikey._revocation_commit();
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
		apikey.confirm_revocations(),
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

