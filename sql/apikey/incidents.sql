-- Adoption and incidents: keys imported from another system, leak reports,
-- the kill switch, events.

-- Functions that take key text hide their statement from the server log
-- when they fail (it may hold the key as a literal).
CREATE FUNCTION apikey_internal.hide_statement() RETURNS void
	AS 'MODULE_PATHNAME', 'hide_statement' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey_internal.hide_statement() IS
	'internal: no error keeps the calling statement in the server log until the transaction ends';

-- Imported keys.  Each is a row of apikey.keys like any other, its
-- key_hash the SHA-256 of its original text; this table leads from that
-- hash to the key, since the text carries no key id.  Verification looks
-- here only for text that is not in apikey's format, and only while the
-- table has rows (imported.c).  A text is unique within a tenant only: a
-- tenant that imports another tenant's text (knowing its hash) neither
-- blocks nor learns of the other's import, and a text that several tenants
-- imported proves none of their keys (not_found) until an administrator
-- settles it (apikey.import_conflicts).
CREATE TABLE apikey.imported_keys (
	key_hash  bytea NOT NULL,
	key_id    apikey.key_id NOT NULL,
	tenant_id bigint NOT NULL,
	PRIMARY KEY (key_hash, tenant_id)
);
CREATE INDEX imported_keys_key_id ON apikey.imported_keys (key_id);
COMMENT ON TABLE apikey.imported_keys IS
	'keys imported from another system: the SHA-256 of the original text, and the key it proves (unique per tenant; a text of several tenants proves none)';

-- For each row (and TRUNCATE), enabled ALWAYS: logical replication's apply
-- worker fires no statement trigger for the rows it applies, and only
-- triggers enabled ALWAYS or REPLICA.
CREATE FUNCTION apikey_internal.imports_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'imports_changed' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION apikey_internal.imports_changed() IS
	'internal: tell every backend, at commit, to look at apikey.imported_keys again';
CREATE TRIGGER imported_keys_changed
	BEFORE INSERT OR UPDATE OR DELETE ON apikey.imported_keys
	FOR EACH ROW EXECUTE FUNCTION apikey_internal.imports_changed();
CREATE TRIGGER imported_keys_truncated BEFORE TRUNCATE ON apikey.imported_keys
	FOR EACH STATEMENT EXECUTE FUNCTION apikey_internal.imports_changed();
ALTER TABLE apikey.imported_keys ENABLE ALWAYS TRIGGER imported_keys_changed,
	ENABLE ALWAYS TRIGGER imported_keys_truncated;

CREATE FUNCTION apikey_internal.import_key_text(api_key text, key_hash bytea,
		OUT key_id apikey.key_id, OUT hash bytea, OUT hint text)
	AS 'MODULE_PATHNAME', 'import_key_text' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey_internal.import_key_text(text, bytea) IS
	'internal: a new key id, the SHA-256 and the hint of an imported key, from its text or its hash (exactly one)';

CREATE FUNCTION apikey.import_key(tenant text, environment text, name text,
		api_key text DEFAULT NULL, key_hash bytea DEFAULT NULL,
		description text DEFAULT NULL, scopes text[] DEFAULT '{}',
		expires_at timestamptz DEFAULT NULL, owner text DEFAULT NULL,
		hint text DEFAULT NULL)
	RETURNS apikey.key_id LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant_slug text;
	key_scopes text[];
	t record;
	g record;
	imposed cidr[];    -- the vendor's allowlist the new key stays within
BEGIN
	PERFORM apikey_internal.hide_statement();    -- it may hold the key text
	tenant_slug := apikey_internal.authorized_tenant(tenant, 'apikey:keys:create');
	key_scopes := apikey_internal.normalized_scopes(scopes);
	name := apikey_internal.checked_label('key name', name, 200, true);
	description := apikey_internal.checked_label('description', description, 1000, false);
	owner := apikey_internal.checked_label('owner', coalesce(owner, apikey_internal.owned_by()), 200, false);
	PERFORM apikey_internal.authorize_owner(owner);
	hint := apikey_internal.checked_label('hint', hint, 16, false);
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
		RAISE EXCEPTION 'tenant % does not exist', apikey_internal.shown(tenant_slug) USING ERRCODE = 'undefined_object';
	ELSIF t.tag IS NULL THEN
		RAISE EXCEPTION 'environment % of tenant "%" does not exist', apikey_internal.shown(environment), tenant_slug
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.authorize(tenant_slug, environment, key_scopes, NULL);
	imposed := apikey_internal.imposed_allowed_ips(NULL);    -- vendor.sql
	-- the tenant's policy, as for a key created now
	IF expires_at IS NULL AND t.default_key_lifetime IS NOT NULL THEN
		expires_at := now() + t.default_key_lifetime;
	END IF;
	IF t.max_key_lifetime IS NOT NULL AND (expires_at IS NULL OR expires_at > now() + t.max_key_lifetime) THEN
		RAISE EXCEPTION 'keys of tenant "%" must expire within % from now', tenant_slug, t.max_key_lifetime
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	LOOP
		g := apikey_internal.import_key_text(api_key, key_hash);
		INSERT INTO apikey.keys (key_id, tenant_id, tenant, environment, key_hash, hint,
		                         name, description, scopes, effective_scopes, expires_at,
		                         created_by, owner, imported, allowed_ips)
		VALUES (g.key_id, t.tenant_id, tenant_slug, environment, g.hash, coalesce(hint, g.hint),
		        name, description, key_scopes, key_scopes, expires_at,
		        apikey_internal.caller()::text, owner, true, imposed)
		ON CONFLICT DO NOTHING;
		EXIT WHEN FOUND;    -- a key id already taken (1 in 2^64 per key): draw again
	END LOOP;
	IF imposed IS NOT NULL THEN
		INSERT INTO apikey.key_vendor_controls (key_id, allowed_ips) VALUES (g.key_id, imposed);
	END IF;
	-- unique within the tenant; another tenant's import of the same text is
	-- neither an error nor a hint here (see apikey.import_conflicts)
	INSERT INTO apikey.imported_keys (key_hash, key_id, tenant_id) VALUES (g.hash, g.key_id, t.tenant_id)
	ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'a key with this text was imported before' USING ERRCODE = 'unique_violation',
			HINT = 'Each imported key text (or hash) is imported once per tenant.';
	END IF;
	PERFORM apikey_internal.audit('imported', t.tenant_id, tenant_slug, g.key_id,
		jsonb_build_object('environment', environment, 'name', name, 'scopes', key_scopes,
		                   'expires_at', expires_at, 'owner', owner,
		                   'by', CASE WHEN api_key IS NOT NULL THEN 'text' ELSE 'hash' END)
		|| CASE WHEN imposed IS NOT NULL THEN jsonb_build_object('allowed_ips', imposed) ELSE '{}' END);
	RETURN g.key_id;
END
$$;
COMMENT ON FUNCTION apikey.import_key(text, text, text, text, bytea, text, text[], timestamptz, text, text) IS
	'import a key of another system by its text or by the SHA-256 of its text; verify and authenticate then accept that text; returns the new key id';

-- Texts imported by more than one tenant, which prove none of their keys:
-- for full administrators only (a tenant never learns of another's).
-- Settle one by deleting the import that is not genuine (delete_key).
CREATE VIEW apikey.import_conflicts WITH (security_barrier) AS
SELECT k.tenant,
       i.key_id,
       k.name,
       k.created_at,
       k.created_by,
       o.tenant AS other_tenant,
       j.key_id AS other_key_id
  FROM apikey.imported_keys AS i
  JOIN apikey.imported_keys AS j
    ON j.key_hash OPERATOR(pg_catalog.=) i.key_hash AND j.tenant_id OPERATOR(pg_catalog.<>) i.tenant_id
  JOIN apikey.keys AS k ON k.key_id OPERATOR(pg_catalog.=) i.key_id
  JOIN apikey.keys AS o ON o.key_id OPERATOR(pg_catalog.=) j.key_id
 WHERE apikey_internal.acting_tenant_id() IS NULL AND (SELECT apikey.is_admin());
COMMENT ON VIEW apikey.import_conflicts IS
	'imported keys whose text another tenant imported too: none of them verifies (full administrators only)';
COMMENT ON COLUMN apikey.import_conflicts.tenant IS
	'the slug of the tenant of the imported key';
COMMENT ON COLUMN apikey.import_conflicts.key_id IS
	'the imported key, which does not verify while the conflict lasts';
COMMENT ON COLUMN apikey.import_conflicts.name IS
	'the imported key''s name';
COMMENT ON COLUMN apikey.import_conflicts.created_at IS
	'when the key was imported';
COMMENT ON COLUMN apikey.import_conflicts.created_by IS
	'who imported it';
COMMENT ON COLUMN apikey.import_conflicts.other_tenant IS
	'the slug of the other tenant that imported the same text';
COMMENT ON COLUMN apikey.import_conflicts.other_key_id IS
	'the other tenant''s key with the same text';

-- Leak reports: a secret scanner found this text in public.  A real key is
-- revoked at once (and its transactions terminated when the kill switch is
-- available); the report is audited as 'leaked' either way.  The text of a
-- key's previous secret, still honoured after a roll, stops working and the
-- key's current secret goes on.  A role granted only this
-- (grant_leak_reporter) can do nothing else.
CREATE FUNCTION apikey_internal.prove_key(api_key text, OUT status text, OUT key_id apikey.key_id)
	AS 'MODULE_PATHNAME', 'prove_key' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey_internal.prove_key(text) IS
	'internal: the key the text proves (status found), without a verification''s effects; else malformed, public_key or not_found';

-- An imported text that several tenants imported proves none of their
-- keys; found in public, it is a secret of each of them: every one is
-- revoked (or, for a secret a key was rolled away from, that secret stops),
-- as report_leak does for one key.  'not_found' when no key has it.
CREATE FUNCTION apikey_internal.report_disputed_leak(api_key text, source text)
	RETURNS text LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	h bytea := sha256(convert_to(api_key, getdatabaseencoding()));
	k apikey.keys;
	reason text := 'leaked' || coalesce(' (reported by ' || source || ')', '');
	previous boolean;
	stopped integer := 0;
BEGIN
	IF (SELECT count(*) FROM apikey.imported_keys AS i WHERE i.key_hash = h) < 2 THEN
		RETURN 'not_found';    -- imported by one tenant at most: apikey_internal.prove_key's answer stands
	END IF;
	FOR k IN
		SELECT x.* FROM apikey.keys AS x
		 WHERE x.key_id IN (SELECT i.key_id FROM apikey.imported_keys AS i WHERE i.key_hash = h)
		 ORDER BY x.key_id FOR UPDATE
	LOOP
		previous := k.key_hash <> h;
		IF previous THEN
			UPDATE apikey.keys AS x SET previous_hash = NULL, previous_hash_expires_at = NULL
			 WHERE x.key_id = k.key_id;
			DELETE FROM apikey.imported_keys AS i WHERE i.key_id = k.key_id AND i.key_hash = h;
			stopped := stopped + 1;
		ELSIF k.revoked_at IS NULL THEN
			UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
			PERFORM apikey_internal.terminate_at_commit(k.key_id, false);
			stopped := stopped + 1;
		END IF;
		PERFORM apikey_internal.audit('leaked', k.tenant_id, k.tenant, k.key_id,
			jsonb_build_object('source', source, 'secret', CASE WHEN previous THEN 'previous' ELSE 'current' END,
			                   'revoked', NOT previous AND k.revoked_at IS NULL));
	END LOOP;
	RETURN CASE WHEN stopped > 0 THEN 'revoked' ELSE 'already_revoked' END;
END
$$;
COMMENT ON FUNCTION apikey_internal.report_disputed_leak(text, text) IS
	'internal: report_leak of a text several tenants imported: every key imported with it stops';

CREATE FUNCTION apikey.report_leak(api_key text, source text DEFAULT NULL)
	RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	k apikey.keys;
	reason text;
	previous boolean;
BEGIN
	PERFORM apikey_internal.hide_statement();    -- it holds the key text
	source := apikey_internal.checked_label('source', source, 500, false);
	p := apikey_internal.prove_key(api_key);
	IF p.key_id IS NULL AND p.status = 'not_found' AND NOT apikey.looks_like_key(api_key) THEN
		RETURN apikey_internal.report_disputed_leak(api_key, source);
	END IF;
	IF p.key_id IS NULL THEN
		RETURN p.status;                  -- malformed, public_key or not_found
	END IF;
	SELECT * INTO k FROM apikey.keys AS x WHERE x.key_id = p.key_id FOR UPDATE;
	-- proven again with the row locked: a roll or deletion may have come first
	p := apikey_internal.prove_key(api_key);
	IF NOT FOUND OR p.key_id IS NULL THEN
		RETURN 'not_found';
	END IF;
	previous := k.key_hash <> sha256(convert_to(api_key, getdatabaseencoding()));
	reason := 'leaked' || coalesce(' (reported by ' || source || ')', '');
	IF previous OR k.revoked_at IS NULL THEN
		PERFORM apikey_internal.revocation_commit();
	END IF;
	IF previous THEN
		-- a secret the key was rolled away from: it stops, the key goes on
		UPDATE apikey.keys AS x SET previous_hash = NULL, previous_hash_expires_at = NULL
		 WHERE x.key_id = k.key_id;
		DELETE FROM apikey.imported_keys AS i
		 WHERE i.key_id = k.key_id AND i.key_hash <> k.key_hash;
	ELSIF k.revoked_at IS NULL THEN
		UPDATE apikey.keys AS x SET revoked_at = now(), revoked_reason = reason WHERE x.key_id = k.key_id;
		PERFORM apikey_internal.terminate_at_commit(k.key_id, false);
	END IF;
	PERFORM apikey_internal.audit('leaked', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('source', source, 'secret', CASE WHEN previous THEN 'previous' ELSE 'current' END,
		                   'revoked', NOT previous AND k.revoked_at IS NULL));
	RETURN CASE WHEN previous OR k.revoked_at IS NULL THEN 'revoked' ELSE 'already_revoked' END;
END
$$;
COMMENT ON FUNCTION apikey.report_leak(text, text) IS
	'a secret scanner found this key text in public (source: where): a real key is revoked at once and audited as leaked; returns revoked, already_revoked, not_found, malformed or public_key';

CREATE FUNCTION apikey.grant_leak_reporter(role regrole) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM apikey_internal.check_role(role);
	EXECUTE format('GRANT USAGE ON SCHEMA apikey TO %s', role);
	EXECUTE format('GRANT EXECUTE ON FUNCTION apikey.report_leak(text, text) TO %s', role);
END
$$;
COMMENT ON FUNCTION apikey.grant_leak_reporter(regrole) IS
	'let a role (a secret-scanning receiver''s) report leaked keys with report_leak, and nothing else';

-- The kill switch (killswitch.c): revoke_key(..., terminate => true).
CREATE FUNCTION apikey_internal.terminate_at_commit(key_id apikey.key_id, required boolean) RETURNS boolean
	AS 'MODULE_PATHNAME', 'terminate_at_commit' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey_internal.terminate_at_commit(apikey.key_id, boolean) IS
	'internal: when this transaction commits, stop the transactions authenticated by the key on this server; without shared_preload_libraries an error when required, else false';

-- Events: each audit event is also sent after commit (NOTIFY) on the
-- channel apikey_events.  Anyone who may connect may LISTEN, so the payload
-- holds ids only; what happened in detail is in audit_log, for those who
-- may read it.  With shared_preload_libraries, the change only queues its
-- events' ids in event_queue, in its own transaction; a background worker
-- of this database sends them after the commit, in its own transactions
-- (events.c, relay.c), so that no key change takes NOTIFY's commit lock.
-- Without, the change sends them itself at its commit, as NOTIFY does.
CREATE TABLE apikey.event_queue (
	event_id bigint PRIMARY KEY
);
COMMENT ON TABLE apikey.event_queue IS
	'audit events committed and not yet sent on apikey_events by the event relay (a background worker)';
-- The event relay's state: one row.  Expiries up to expiry_checked_to
-- have their expired event (the relay looks back an hour more, for keys
-- whose expiry was committed late).
CREATE TABLE apikey.event_relay (
	one               boolean PRIMARY KEY DEFAULT true CHECK (one),
	expiry_checked_to timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE apikey.event_relay IS
	'the event relay''s state: keys that expired up to expiry_checked_to have their expired event';
INSERT INTO apikey.event_relay DEFAULT VALUES;
-- what the relay scans for expired keys, and finds their expired events by
CREATE INDEX keys_expiry ON apikey.keys (expires_at) WHERE expires_at IS NOT NULL AND revoked_at IS NULL;
CREATE INDEX audit_expiries ON apikey.audit (key_id) WHERE action = 'expired';
CREATE FUNCTION apikey_internal.notify_event() RETURNS trigger
	AS 'MODULE_PATHNAME', 'notify_event' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION apikey_internal.notify_event() IS
	'internal: queue an audit event for the event relay (without shared_preload_libraries: send it at commit; ids only)';
CREATE TRIGGER audit_notify AFTER INSERT ON apikey.audit
	FOR EACH ROW EXECUTE FUNCTION apikey_internal.notify_event();
-- Events are best-effort: dropped, and counted, when the NOTIFY queue is
-- too full to take them.
CREATE FUNCTION apikey.events_dropped() RETURNS bigint
	AS 'MODULE_PATHNAME', 'events_dropped' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION apikey.events_dropped() IS
	'events not sent on apikey_events since the server started because the NOTIFY queue was too full (they are in audit_log); NULL without shared_preload_libraries';

-- Keys about to expire, for reminder jobs; visible as key_list is.
CREATE FUNCTION apikey.expiring_keys(within interval)
	RETURNS TABLE (key_id apikey.key_id, tenant text, environment text, name text,
	               owner text, hint text, expires_at timestamptz, last_used_at timestamptz,
	               tenant_id bigint)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
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
