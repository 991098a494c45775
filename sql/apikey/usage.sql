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

CREATE FUNCTION apikey_internal.check_rate_limit(name text, max_requests integer, per interval)
	RETURNS void AS 'MODULE_PATHNAME', 'check_rate_limit' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION apikey_internal.check_rate_limit(text, integer, interval) IS
	'internal: raise unless name, max_requests and per make a rate limit this server can count (it needs shared_preload_libraries = apikey)';

-- The limits with the one named name set to max_requests per per, or
-- removed (max_requests NULL); sorted by name, NULL when none is left.
CREATE FUNCTION apikey_internal.with_rate_limit(limits apikey.rate_limit[], name text,
		max_requests integer, per interval)
	RETURNS apikey.rate_limit[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT pg_catalog.array_agg(ROW(l.name, l.max_requests, l.per)::apikey.rate_limit ORDER BY l.name)
	  FROM (SELECT x.name, x.max_requests, x.per FROM pg_catalog.unnest(limits) AS x
	         WHERE x.name OPERATOR(pg_catalog.<>) with_rate_limit.name
	        UNION ALL
	        SELECT with_rate_limit.name, with_rate_limit.max_requests, with_rate_limit.per
	         WHERE with_rate_limit.max_requests IS NOT NULL) AS l
$$;
COMMENT ON FUNCTION apikey_internal.with_rate_limit(apikey.rate_limit[], text, integer, interval) IS
	'internal: the limits with one set (or removed when max_requests is NULL), sorted by name';

-- The limit named name of limits, as audit details show it (NULL: none).
CREATE FUNCTION apikey_internal.rate_limit_details(limits apikey.rate_limit[], name text)
	RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT pg_catalog.jsonb_build_object('max_requests', x.max_requests, 'per', x.per)
	  FROM pg_catalog.unnest(limits) AS x
	 WHERE x.name OPERATOR(pg_catalog.=) rate_limit_details.name
$$;
COMMENT ON FUNCTION apikey_internal.rate_limit_details(apikey.rate_limit[], text) IS
	'internal: one limit of a list, as audit details show it';

CREATE FUNCTION apikey.set_rate_limit(key_id apikey.key_id, name text, max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
	limits apikey.rate_limit[];
BEGIN
	PERFORM apikey_internal.check_rate_limit(name, max_requests, per);
	limits := apikey_internal.with_rate_limit(k.rate_limits, name, max_requests, per);
	IF cardinality(limits) > 8 THEN
		RAISE EXCEPTION 'key % already has 8 rate limits', k.key_id
			USING ERRCODE = 'program_limit_exceeded',
			      HINT = 'Replace one (same name) or remove one first.';
	END IF;
	PERFORM apikey_internal.vendor_rate_limit(k, name, false);    -- vendor.sql
	UPDATE apikey.keys AS x SET rate_limits = limits WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('rate_limit_set', k.tenant_id, k.tenant, k.key_id,
		jsonb_build_object('name', name,
		                   'from', apikey_internal.rate_limit_details(k.rate_limits, name),
		                   'to', apikey_internal.rate_limit_details(limits, name)));
END
$$;
COMMENT ON FUNCTION apikey.set_rate_limit(apikey.key_id, text, integer, interval) IS
	'add or replace a named rate limit of a key: at most max_requests units per interval (per server; needs shared_preload_libraries = apikey)';

CREATE FUNCTION apikey.remove_rate_limit(key_id apikey.key_id, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
	old jsonb := apikey_internal.rate_limit_details(k.rate_limits, name);
	limits apikey.rate_limit[];
BEGIN
	IF old IS NULL THEN
		RAISE EXCEPTION 'key % has no rate limit %', k.key_id, apikey_internal.shown(name)
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.vendor_rate_limit(k, name, true);    -- vendor.sql
	limits := apikey_internal.with_rate_limit(k.rate_limits, name, NULL, NULL);
	UPDATE apikey.keys AS x SET rate_limits = limits WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('rate_limit_removed', k.tenant_id, k.tenant, k.key_id,
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
CREATE FUNCTION apikey_internal.set_tenant_rate_limits(t apikey.tenants, name text,
		max_requests integer, per interval, action text)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	old apikey.rate_limit[];
	limits apikey.rate_limit[];
	changed bigint;
BEGIN
	PERFORM apikey_internal.require('tenant', t.tenant_id IS NOT NULL);
	SELECT x.rate_limits INTO old FROM apikey.tenants AS x WHERE x.tenant_id = t.tenant_id FOR UPDATE;
	limits := apikey_internal.with_rate_limit(old, name, max_requests, per);
	IF cardinality(limits) > 8 THEN
		RAISE EXCEPTION 'tenant "%" already has 8 rate limits', t.slug
			USING ERRCODE = 'program_limit_exceeded',
			      HINT = 'Replace one (same name) or remove one first.';
	END IF;
	UPDATE apikey.tenants AS x SET rate_limits = limits WHERE x.tenant_id = t.tenant_id;
	UPDATE apikey.keys AS k SET tenant_rate_limits = limits
	 WHERE k.tenant_id = t.tenant_id AND k.tenant_rate_limits IS DISTINCT FROM limits;
	GET DIAGNOSTICS changed = ROW_COUNT;
	PERFORM apikey_internal.audit(action, t.tenant_id, t.slug, NULL,
		jsonb_build_object('name', name,
		                   'from', apikey_internal.rate_limit_details(old, name),
		                   'to', apikey_internal.rate_limit_details(limits, name),
		                   'keys', changed));
END
$$;
COMMENT ON FUNCTION apikey_internal.set_tenant_rate_limits(apikey.tenants, text, integer, interval, text) IS
	'internal: set or remove (max_requests NULL) a tenant''s limit, on the tenant and on each of its keys';

CREATE FUNCTION apikey.set_tenant_rate_limit(tenant text, name text, max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey_internal.authorize_admin();
	t := apikey_internal.authorize_tenant(tenant, 'apikey:admin');
	PERFORM apikey_internal.check_rate_limit(name, max_requests, per);
	PERFORM apikey_internal.set_tenant_rate_limits(t, name, max_requests, per, 'tenant_rate_limit_set');
END
$$;
COMMENT ON FUNCTION apikey.set_tenant_rate_limit(text, text, integer, interval) IS
	'add or replace a named rate limit shared by all of a tenant''s keys: at most max_requests units per interval together (full administrators only)';

CREATE FUNCTION apikey.remove_tenant_rate_limit(tenant text, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey_internal.authorize_admin();
	t := apikey_internal.authorize_tenant(tenant, 'apikey:admin');
	IF apikey_internal.rate_limit_details(t.rate_limits, name) IS NULL THEN
		RAISE EXCEPTION 'tenant "%" has no rate limit %', t.slug, apikey_internal.shown(name)
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey_internal.set_tenant_rate_limits(t, name, NULL, NULL, 'tenant_rate_limit_removed');
END
$$;
COMMENT ON FUNCTION apikey.remove_tenant_rate_limit(text, text) IS
	'remove a named rate limit of a tenant (full administrators only)';

-- A new key carries its tenant's limits, however it is inserted.  The key
-- share lock waits for a change of the tenant's limits in progress (which
-- locks the tenant row for update), so no key misses one.
CREATE FUNCTION apikey_internal.key_tenant_rate_limits() RETURNS trigger
	AS 'MODULE_PATHNAME', 'key_tenant_rate_limits' LANGUAGE C;    -- keylimits.c
COMMENT ON FUNCTION apikey_internal.key_tenant_rate_limits() IS
	'internal: trigger that gives a new key its tenant''s rate limits';
CREATE TRIGGER keys_tenant_rate_limits BEFORE INSERT ON apikey.keys
	FOR EACH ROW EXECUTE FUNCTION apikey_internal.key_tenant_rate_limits();

CREATE FUNCTION apikey.rate_limit_status(OUT preloaded boolean, OUT capacity integer,
		OUT in_use bigint, OUT refused_full bigint)
	AS 'MODULE_PATHNAME', 'rate_limit_status' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey.rate_limit_status() IS
	'rate-limit buckets of this server: whether they exist (shared_preload_libraries), how many there can be, how many are held, and how many requests were refused because none was free';

CREATE FUNCTION apikey_internal.rate_limit_tenants(OUT tenant_id bigint, OUT buckets bigint,
		OUT refused bigint, OUT last_refused timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'rate_limit_tenants' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey_internal.rate_limit_tenants() IS
	'internal: rate-limit buckets held and requests refused for want of one, per tenant id of this database';

CREATE FUNCTION apikey.rate_limit_tenants(OUT tenant text, OUT buckets bigint,
		OUT refused bigint, OUT last_refused timestamptz)
	RETURNS SETOF record LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM apikey_internal.authorize_admin();
	RETURN QUERY
		SELECT coalesce(t.slug, '#' OPERATOR(pg_catalog.||) r.tenant_id::text), r.buckets, r.refused, r.last_refused
		  FROM apikey_internal.rate_limit_tenants() AS r
		  LEFT JOIN apikey.tenants AS t ON t.tenant_id OPERATOR(pg_catalog.=) r.tenant_id
		 ORDER BY r.refused DESC, r.buckets DESC, 1;
END
$$;
COMMENT ON FUNCTION apikey.rate_limit_tenants() IS
	'per tenant of this database: the rate-limit buckets it holds on this server, and how many of its requests were refused because no bucket was left for it (apikey.rate_limit_tenant_share), and when last (full administrators only)';

-- Limits on anything: a namespace of the caller's tenant (or, for full
-- administrators, of the server), an identifier in it (an IP address, a
-- user, an endpoint), counted like key limits (ratelimit.c).
CREATE FUNCTION apikey.rate_limit_take(namespace text, identifier text, max_requests integer,
		per interval, cost integer DEFAULT 1,
		OUT allowed boolean, OUT remaining bigint, OUT retry_after interval)
	AS 'MODULE_PATHNAME', 'rate_limit_take' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION apikey.rate_limit_take(text, text, integer, interval, integer) IS
	'take cost units from the limit of max_requests per interval of one identifier (an IP, a user, an endpoint) of a namespace of the authenticated tenant (global for administrators), per server; returns whether they were taken, what is left, and when to retry';

-- An owner's limits: one budget for every key of one owner of a tenant (a
-- person or a service, apikey.keys.owner).  Each of the owner's keys
-- carries a copy (keys.owner_rate_limits), as with the tenant's limits, so
-- verification reads one row, and a key without an owner's limits costs
-- verification nothing more.  A change locks the tenant row (as a change of
-- the tenant's limits does), so that a key given this owner meanwhile
-- (which reads the owner's limits under a key share lock of the tenant, see
-- below) gets the new ones; a limit an administrator set is the vendor's
-- (vendor.sql).  (set_key_owner locks the key, then the tenant: one that
-- moves a key of the owner concurrently may end in a deadlock error for
-- one of the two, to be retried, never in a key missing the limits.)
CREATE TABLE apikey.owner_rate_limits (
	tenant_id    bigint NOT NULL REFERENCES apikey.tenants ON DELETE CASCADE,
	owner        text NOT NULL,
	name         text NOT NULL,
	max_requests integer NOT NULL,
	per          interval NOT NULL,
	by_vendor    boolean NOT NULL,     -- set by a full administrator: tenant administrators may not lift it
	PRIMARY KEY (tenant_id, owner, name)
);
COMMENT ON TABLE apikey.owner_rate_limits IS
	'rate limits shared by all the keys of one owner of a tenant (copied to each key: keys.owner_rate_limits)';

CREATE FUNCTION apikey_internal.owner_rate_limits(tenant_id bigint, owner text)
	RETURNS apikey.rate_limit[] LANGUAGE sql STABLE
AS $$
	SELECT pg_catalog.array_agg(ROW(l.name, l.max_requests, l.per)::apikey.rate_limit ORDER BY l.name)
	  FROM apikey.owner_rate_limits AS l
	 WHERE l.tenant_id OPERATOR(pg_catalog.=) owner_rate_limits.tenant_id
	   AND l.owner OPERATOR(pg_catalog.=) owner_rate_limits.owner
$$;
COMMENT ON FUNCTION apikey_internal.owner_rate_limits(bigint, text) IS
	'internal: the limits of an owner of a tenant, sorted by name (NULL: none)';

-- Set (max_requests given) or remove one limit of an owner, on the table
-- and on each of the owner's keys.  The caller was authorized for the
-- tenant; a tenant administrator acts only when its key covers every key
-- of the owner (as revoke_owner_keys), and lifts no administrator's limit.
CREATE FUNCTION apikey_internal.set_owner_rate_limit(t apikey.tenants, owner text, name text,
		max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	k apikey.keys;
	old apikey.owner_rate_limits;
	limits apikey.rate_limit[];
	beyond integer := 0;
	covered integer := 0;
	changed bigint;
BEGIN
	PERFORM apikey_internal.require('tenant', t.tenant_id IS NOT NULL);
	PERFORM apikey_internal.authorize(t.slug, NULL, NULL, NULL);
	PERFORM FROM apikey.tenants AS x WHERE x.tenant_id = t.tenant_id FOR UPDATE;
	FOR k IN SELECT * FROM apikey.keys AS x
	          WHERE x.tenant_id = t.tenant_id AND x.owner = set_owner_rate_limit.owner
	          ORDER BY x.key_id
	            FOR UPDATE
	LOOP
		BEGIN
			PERFORM apikey_internal.authorize(k.tenant, k.environment, k.effective_scopes, k.resources);
			covered := covered + 1;
		EXCEPTION WHEN insufficient_privilege THEN
			beyond := beyond + 1;
		END;
	END LOOP;
	IF beyond > 0 THEN
		RAISE EXCEPTION 'permission denied: keys of this owner beyond what the authenticated key manages: % of %',
			beyond, beyond + covered
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'A full administrator, or a tenant administrator whose key covers every key of the owner, sets the owner''s limits.';
	END IF;
	SELECT * INTO old FROM apikey.owner_rate_limits AS x
	 WHERE x.tenant_id = t.tenant_id AND x.owner = set_owner_rate_limit.owner
	   AND x.name = set_owner_rate_limit.name;
	IF max_requests IS NULL AND old.name IS NULL THEN
		RAISE EXCEPTION 'owner % of tenant "%" has no rate limit %', apikey_internal.shown(owner), t.slug, apikey_internal.shown(name)
			USING ERRCODE = 'undefined_object';
	END IF;
	IF old.by_vendor AND apikey_internal.by_tenant() THEN
		PERFORM apikey_internal.deny_vendor_control(pg_catalog.format('the rate limit "%s" of this owner', name), NULL);
	END IF;
	IF max_requests IS NULL THEN
		DELETE FROM apikey.owner_rate_limits AS x
		 WHERE x.tenant_id = t.tenant_id AND x.owner = set_owner_rate_limit.owner
		   AND x.name = set_owner_rate_limit.name;
	ELSE
		INSERT INTO apikey.owner_rate_limits AS x (tenant_id, owner, name, max_requests, per, by_vendor)
		VALUES (t.tenant_id, owner, name, max_requests, per, NOT apikey_internal.by_tenant())
		ON CONFLICT ON CONSTRAINT owner_rate_limits_pkey DO UPDATE
		   SET max_requests = excluded.max_requests, per = excluded.per, by_vendor = excluded.by_vendor;
	END IF;
	limits := apikey_internal.owner_rate_limits(t.tenant_id, owner);
	IF cardinality(limits) > 8 THEN
		RAISE EXCEPTION 'owner % of tenant "%" already has 8 rate limits', apikey_internal.shown(owner), t.slug
			USING ERRCODE = 'program_limit_exceeded',
			      HINT = 'Replace one (same name) or remove one first.';
	END IF;
	UPDATE apikey.keys AS x SET owner_rate_limits = limits
	 WHERE x.tenant_id = t.tenant_id AND x.owner = set_owner_rate_limit.owner
	   AND x.owner_rate_limits IS DISTINCT FROM limits;
	GET DIAGNOSTICS changed = ROW_COUNT;
	PERFORM apikey_internal.audit(CASE WHEN max_requests IS NULL THEN 'owner_rate_limit_removed'
	                           ELSE 'owner_rate_limit_set' END,
		t.tenant_id, t.slug, NULL,
		jsonb_build_object('owner', owner, 'name', name,
		                   'from', CASE WHEN old.name IS NOT NULL
		                                THEN jsonb_build_object('max_requests', old.max_requests, 'per', old.per) END,
		                   'to', CASE WHEN max_requests IS NOT NULL
		                              THEN jsonb_build_object('max_requests', max_requests, 'per', per) END,
		                   'keys', changed));
END
$$;
COMMENT ON FUNCTION apikey_internal.set_owner_rate_limit(apikey.tenants, text, text, integer, interval) IS
	'internal: set or remove (max_requests NULL) a limit of an owner, on the table and on each of the owner''s keys';

CREATE FUNCTION apikey.set_owner_rate_limit(tenant text, owner text, name text,
		max_requests integer, per interval)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant, 'apikey:keys:edit');
BEGIN
	owner := apikey_internal.checked_label('owner', owner, 200, true);
	PERFORM apikey_internal.authorize_owner(owner);
	PERFORM apikey_internal.check_rate_limit(name, max_requests, per);
	PERFORM apikey_internal.set_owner_rate_limit(t, owner, name, max_requests, per);
END
$$;
COMMENT ON FUNCTION apikey.set_owner_rate_limit(text, text, text, integer, interval) IS
	'add or replace a named rate limit shared by all the keys of one owner of a tenant: at most max_requests units per interval together (per server)';

CREATE FUNCTION apikey.remove_owner_rate_limit(tenant text, owner text, name text)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants := apikey_internal.authorize_tenant(tenant, 'apikey:keys:edit');
BEGIN
	PERFORM apikey_internal.require('owner and name', owner IS NOT NULL AND name IS NOT NULL);
	PERFORM apikey_internal.authorize_owner(owner);
	PERFORM apikey_internal.set_owner_rate_limit(t, owner, name, NULL, NULL);
END
$$;
COMMENT ON FUNCTION apikey.remove_owner_rate_limit(text, text, text) IS
	'remove a named rate limit of an owner of a tenant';

-- A key given an owner (created with one, or set_key_owner) carries that
-- owner's limits.  The key share lock waits for a change of the owner's
-- limits in progress (which locks the tenant row for update).  A row
-- inserted with limits of its own (pg_dump's data, restored before the
-- owners' limits) keeps them unless the owner has limits.
CREATE FUNCTION apikey_internal.key_owner_rate_limits() RETURNS trigger
	LANGUAGE plpgsql
AS $$
DECLARE
	limits apikey.rate_limit[];
BEGIN
	IF NEW.owner IS NOT NULL THEN
		PERFORM FROM apikey.tenants AS t
		  WHERE t.tenant_id OPERATOR(pg_catalog.=) NEW.tenant_id
		    FOR KEY SHARE;
		limits := apikey_internal.owner_rate_limits(NEW.tenant_id, NEW.owner);
	END IF;
	IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' OR limits IS NOT NULL THEN
		NEW.owner_rate_limits := limits;
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION apikey_internal.key_owner_rate_limits() IS
	'internal: trigger that gives a key its owner''s rate limits';
CREATE TRIGGER keys_owner_rate_limits BEFORE INSERT ON apikey.keys
	FOR EACH ROW WHEN (NEW.owner IS NOT NULL) EXECUTE FUNCTION apikey_internal.key_owner_rate_limits();
CREATE TRIGGER keys_owner_changed BEFORE UPDATE OF owner ON apikey.keys
	FOR EACH ROW WHEN (NEW.owner IS DISTINCT FROM OLD.owner)
	EXECUTE FUNCTION apikey_internal.key_owner_rate_limits();

-- Credits -------------------------------------------------------------------

CREATE FUNCTION apikey_internal.next_refill(anchor timestamptz, every interval, after timestamptz)
	RETURNS timestamptz AS 'MODULE_PATHNAME', 'next_refill' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION apikey_internal.next_refill(timestamptz, interval, timestamptz) IS
	'internal: the first anchor + n * every (n >= 1) after "after", in UTC with calendar months';

-- Called by verification (credits.c) for a key with credits, in the
-- caller's transaction.  Returns what is left after charging cost (cost 0:
-- charges nothing, and needs one credit left), or -1 minus what there is
-- when that is too few (nothing charged); NULL when the key has no credits.
-- A refill that is due is applied first.  The row lock makes concurrent
-- charges of a key wait for each other (and the UPDATE re-checks the row
-- the previous charge left); a check (cost 0) takes no lock and writes
-- nothing, so it works in a read-only transaction.
CREATE FUNCTION apikey_internal.charge_credits(key_id apikey.key_id, cost integer, at timestamptz)
	RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
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
		 WHERE x.key_id = charge_credits.key_id AND x.remaining >= cost
		   AND (x.next_refill_at IS NULL OR x.next_refill_at > at)
		RETURNING x.remaining INTO left_over;
		IF FOUND THEN
			RETURN left_over;
		END IF;
		SELECT * INTO c FROM apikey.credits AS x WHERE x.key_id = charge_credits.key_id FOR UPDATE;
	ELSE
		SELECT * INTO c FROM apikey.credits AS x WHERE x.key_id = charge_credits.key_id;
	END IF;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	IF c.next_refill_at <= at THEN
		c.remaining := c.refill_amount;
		c.next_refill_at := apikey_internal.next_refill(c.refill_anchor, c.refill_every, at);
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
		 WHERE x.key_id = charge_credits.key_id;
	END IF;
	RETURN c.remaining - cost;
END
$$;
COMMENT ON FUNCTION apikey_internal.charge_credits(apikey.key_id, integer, timestamptz) IS
	'internal: charge a key''s credits in the current transaction (verification calls it); what is left, or -1 minus what there is when too few';

CREATE FUNCTION apikey.set_credits(key_id apikey.key_id, remaining bigint,
		refill_amount bigint DEFAULT NULL, refill_every interval DEFAULT NULL)
	RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
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
		PERFORM apikey_internal.check_lifetime('refill_every', refill_every);
		next_refill := apikey_internal.next_refill(now(), refill_every, now());
	END IF;
	PERFORM apikey_internal.vendor_credits(k, remaining, NULL);    -- vendor.sql
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
	PERFORM apikey_internal.audit('credits_set', k.tenant_id, k.tenant, k.key_id,
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
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey_internal.authorize_key(key_id, 'apikey:keys:edit');
	c apikey.credits;
	at timestamptz := statement_timestamp();
BEGIN
	IF amount IS NULL THEN
		RAISE EXCEPTION 'amount must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM apikey_internal.vendor_credits(k, NULL, amount);    -- vendor.sql
	SELECT * INTO c FROM apikey.credits AS x WHERE x.key_id = k.key_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'key % has no credits (it is unlimited)', k.key_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Give it credits with apikey.set_credits.';
	END IF;
	IF c.next_refill_at <= at THEN
		c.remaining := c.refill_amount;
		c.refilled_at := at;
		c.next_refill_at := apikey_internal.next_refill(c.refill_anchor, c.refill_every, at);
	END IF;
	IF c.remaining + amount < 0 THEN
		RAISE EXCEPTION 'key % has % credits: cannot take % away', k.key_id, c.remaining, -amount
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE apikey.credits AS x
	   SET remaining = c.remaining + amount, refilled_at = c.refilled_at, next_refill_at = c.next_refill_at
	 WHERE x.key_id = k.key_id;
	PERFORM apikey_internal.audit('credits_added', k.tenant_id, k.tenant, k.key_id,
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

-- Rate limits as a person reads them, for the listings: "burst 20/1 s,
-- hourly 1000/1 h", each period in the largest unit it is a whole number
-- of (d, h, min, s, ms), whatever the session's IntervalStyle.  NULL when
-- there are none.  PUBLIC may execute it: key_list and tenant_list call it,
-- and a view's readers need EXECUTE on the functions it calls.
CREATE FUNCTION apikey_internal.rate_limit_summary(limits apikey.rate_limit[]) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.string_agg(pg_catalog.format('%s %s/%s', l.name, l.max_requests,
	           CASE WHEN m.ms % 86400000 = 0 THEN (m.ms / 86400000)::bigint || ' d'
	                WHEN m.ms % 3600000 = 0 THEN (m.ms / 3600000)::bigint || ' h'
	                WHEN m.ms % 60000 = 0 THEN (m.ms / 60000)::bigint || ' min'
	                WHEN m.ms % 1000 = 0 THEN (m.ms / 1000)::bigint || ' s'
	                ELSE pg_catalog.trim_scale(m.ms) || ' ms' END), ', ' ORDER BY l.n)
	  FROM pg_catalog.unnest(limits) WITH ORDINALITY AS l(name, max_requests, per, n),
	       LATERAL (SELECT EXTRACT(epoch FROM l.per) * 1000) AS m(ms)
$$;
COMMENT ON FUNCTION apikey_internal.rate_limit_summary(apikey.rate_limit[]) IS
	'internal: rate limits as text for the listings, e.g. "burst 20/1 s, hourly 1000/1 h"';

-- Listings, visible as key_list is: every tenant to a full administrator,
-- the own tenant to a caller on its side holding apikey:keys:read (an
-- authenticated key or act_for), nothing to anyone else.

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
       t.created_by,
       apikey_internal.rate_limit_summary(t.rate_limits) AS rate_limit_summary
  FROM apikey.tenants AS t
 WHERE CASE WHEN apikey_internal.acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey_internal.sees_tenant(t.tenant_id) END;
COMMENT ON VIEW apikey.tenant_list IS
	'tenants for humans: environments, key policy, rate limits shared by their keys';
COMMENT ON COLUMN apikey.tenant_list.tenant IS
	'the tenant''s slug, as the functions take it';
COMMENT ON COLUMN apikey.tenant_list.tenant_id IS
	'the tenant''s bigint id, as current_tenant_id() returns it';
COMMENT ON COLUMN apikey.tenant_list.name IS
	'the tenant''s display name';
COMMENT ON COLUMN apikey.tenant_list.environments IS
	'the names of the tenant''s environments';
COMMENT ON COLUMN apikey.tenant_list.key_prefix IS
	'the prefix of the text of the tenant''s keys (ak by default)';
COMMENT ON COLUMN apikey.tenant_list.default_key_lifetime IS
	'the lifetime of a key created without an expiry (NULL: none)';
COMMENT ON COLUMN apikey.tenant_list.max_key_lifetime IS
	'the longest lifetime a key may have (NULL: no limit)';
COMMENT ON COLUMN apikey.tenant_list.rate_limits IS
	'the tenant''s rate limits (name, max_requests, per), a budget shared by its keys; rate_limit_summary shows them as text';
COMMENT ON COLUMN apikey.tenant_list.created_at IS
	'when the tenant was created';
COMMENT ON COLUMN apikey.tenant_list.created_by IS
	'the role that created it';
COMMENT ON COLUMN apikey.tenant_list.rate_limit_summary IS
	'the tenant''s rate limits as text, e.g. "api 5000/1 min" (NULL: none)';

CREATE VIEW apikey.usage_stats WITH (security_barrier) AS
SELECT t.slug AS tenant,
       u.key_id,
       u.hour,
       u.status,
       u.verifications,
       u.tenant_id
  FROM apikey.usage_hourly AS u
  JOIN apikey.tenants AS t ON t.tenant_id OPERATOR(pg_catalog.=) u.tenant_id
 WHERE CASE WHEN apikey_internal.acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey_internal.sees(u.tenant_id,
                              (SELECT k.environment FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) u.key_id),
                              (SELECT k.owner FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) u.key_id)) END;
COMMENT ON VIEW apikey.usage_stats IS
	'verifications per key, hour (UTC) and status, as written by the background writer (apikey.usage_flush() writes what is pending)';
COMMENT ON COLUMN apikey.usage_stats.tenant IS
	'the slug of the key''s tenant';
COMMENT ON COLUMN apikey.usage_stats.key_id IS
	'the key verified';
COMMENT ON COLUMN apikey.usage_stats.hour IS
	'the hour (UTC) of the verifications';
COMMENT ON COLUMN apikey.usage_stats.status IS
	'their outcome: valid, or why not (not_found there means a wrong secret for this key id)';
COMMENT ON COLUMN apikey.usage_stats.verifications IS
	'how many verifications of the key had that outcome in that hour';
COMMENT ON COLUMN apikey.usage_stats.tenant_id IS
	'the tenant''s bigint id, as current_tenant_id() returns it';
