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
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id, 'apikey:keys:edit');
	limits apikey.rate_limit[];
BEGIN
	PERFORM apikey._check_rate_limit(name, max_requests, per);
	limits := apikey._with_rate_limit(k.rate_limits, name, max_requests, per);
	IF cardinality(limits) > 8 THEN
		RAISE EXCEPTION 'key % already has 8 rate limits', k.key_id
			USING ERRCODE = 'program_limit_exceeded',
			      HINT = 'Replace one (same name) or remove one first.';
	END IF;
	PERFORM apikey._vendor_rate_limit(k, name, false);    -- vendor.sql
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
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id, 'apikey:keys:edit');
	old jsonb := apikey._rate_limit_details(k.rate_limits, name);
	limits apikey.rate_limit[];
BEGIN
	IF old IS NULL THEN
		RAISE EXCEPTION 'key % has no rate limit %', k.key_id, apikey._shown(name)
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM apikey._vendor_rate_limit(k, name, true);    -- vendor.sql
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
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t apikey.tenants;
BEGIN
	PERFORM apikey._authorize_admin();
	t := apikey._authorize_tenant(tenant, 'apikey:admin');
	PERFORM apikey._check_rate_limit(name, max_requests, per);
	PERFORM apikey._set_tenant_rate_limits(t, name, max_requests, per, 'tenant_rate_limit_set');
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
	PERFORM apikey._authorize_admin();
	t := apikey._authorize_tenant(tenant, 'apikey:admin');
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

CREATE FUNCTION apikey._rate_limit_tenants(OUT tenant_id bigint, OUT buckets bigint,
		OUT refused bigint, OUT last_refused timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'rate_limit_tenants' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION apikey._rate_limit_tenants() IS
	'internal: rate-limit buckets held and requests refused for want of one, per tenant id of this database';

CREATE FUNCTION apikey.rate_limit_tenants(OUT tenant text, OUT buckets bigint,
		OUT refused bigint, OUT last_refused timestamptz)
	RETURNS SETOF record LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
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
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id, 'apikey:keys:edit');
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
	PERFORM apikey._vendor_credits(k, remaining, NULL);    -- vendor.sql
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
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k apikey.keys := apikey._authorize_key(key_id, 'apikey:keys:edit');
	c apikey.credits;
	at timestamptz := statement_timestamp();
BEGIN
	IF amount IS NULL THEN
		RAISE EXCEPTION 'amount must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM apikey._vendor_credits(k, NULL, amount);    -- vendor.sql
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
       t.created_by
  FROM apikey.tenants AS t
 WHERE CASE WHEN apikey._acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey._sees_tenant(t.tenant_id) END;
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
 WHERE CASE WHEN apikey._acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey._sees(u.tenant_id,
                              (SELECT k.environment FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) u.key_id),
                              (SELECT k.owner FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) u.key_id)) END;
COMMENT ON VIEW apikey.usage_stats IS
	'verifications per key, hour (UTC) and status, as written by the background writer (apikey.usage_flush() writes what is pending)';
