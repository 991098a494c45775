-- The benchmark's baseline: API keys the way a team writes them by hand,
-- with pgcrypto and PL/pgSQL, and no extension of its own.
--
--   psql -f baseline.sql
--   psql -v from=1 -v to=100000 -v tenants=120 -f baseline-load.sql
--
-- A key is  bk_<environment tag>_<lookup>_<secret>:  <lookup> is 16 hex
-- digits (64 random bits), stored in clear under a unique index and used to
-- find the row; <secret> is 40 hex digits (160 random bits), of which only
-- SHA-256 is stored.  Verification finds the row by its lookup part, compares
-- the hash, then checks revocation, expiry and the environment, and answers
-- with a status as the application needs it (401 versus 403).  It is
-- read-only: last_used_at is a column, kept by no one here.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA baseline;

CREATE TABLE baseline.api_keys (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id    bigint NOT NULL,
	environment  text NOT NULL,
	lookup       text NOT NULL UNIQUE,
	secret_hash  bytea NOT NULL,
	label        text NOT NULL,
	scopes       text[] NOT NULL DEFAULT '{}',
	created_at   timestamptz NOT NULL DEFAULT now(),
	expires_at   timestamptz,
	revoked_at   timestamptz,
	last_used_at timestamptz
);
CREATE INDEX api_keys_tenant ON baseline.api_keys (tenant_id);

-- A new key; the text is returned once and only its hash is kept.
CREATE FUNCTION baseline.create_key(p_tenant_id bigint, p_environment text,
		p_label text, p_expires_in interval DEFAULT NULL)
	RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	v_lookup text := encode(public.gen_random_bytes(8), 'hex');
	v_secret text := encode(public.gen_random_bytes(20), 'hex');
BEGIN
	INSERT INTO baseline.api_keys (tenant_id, environment, lookup, secret_hash, label, expires_at)
	VALUES (p_tenant_id, p_environment, v_lookup, public.digest(v_secret, 'sha256'),
	        p_label, now() + p_expires_in);
	RETURN 'bk_' || p_environment || '_' || v_lookup || '_' || v_secret;
END $$;

CREATE FUNCTION baseline.revoke_key(p_lookup text) RETURNS boolean LANGUAGE sql AS $$
	UPDATE baseline.api_keys SET revoked_at = now()
	 WHERE lookup = p_lookup AND revoked_at IS NULL
	RETURNING true
$$;

-- Is the key good in this environment?  valid, status (valid, malformed,
-- not_found, revoked, expired, wrong_environment), and whose it is.
CREATE FUNCTION baseline.verify_key(p_key text, p_environment text,
		OUT valid boolean, OUT status text, OUT key_id bigint, OUT tenant_id bigint)
	LANGUAGE plpgsql STABLE AS $$
DECLARE
	v_lookup text;
	v_secret text;
	k record;
BEGIN
	valid := false;
	IF p_key IS NULL OR length(p_key) > 80 OR left(p_key, 3) <> 'bk_' THEN
		status := 'malformed';
		RETURN;
	END IF;
	v_lookup := split_part(p_key, '_', 3);
	v_secret := split_part(p_key, '_', 4);
	IF length(v_lookup) <> 16 OR length(v_secret) <> 40 THEN
		status := 'malformed';
		RETURN;
	END IF;

	SELECT a.id, a.tenant_id, a.environment, a.secret_hash, a.expires_at, a.revoked_at
	  INTO k
	  FROM baseline.api_keys a
	 WHERE a.lookup = v_lookup;
	IF NOT FOUND OR k.secret_hash <> public.digest(v_secret, 'sha256') THEN
		status := 'not_found';
		RETURN;
	END IF;

	key_id := k.id;
	tenant_id := k.tenant_id;
	IF k.revoked_at IS NOT NULL THEN
		status := 'revoked';
	ELSIF k.expires_at <= now() THEN
		status := 'expired';
	ELSIF p_environment IS NOT NULL AND k.environment <> p_environment THEN
		status := 'wrong_environment';
	ELSE
		valid := true;
		status := 'valid';
	END IF;
END $$;
