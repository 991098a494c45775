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

-- The functions the extension's own functions call, which no one else
-- should: in a schema of their own, so that \df apikey.* lists what users
-- call.  Created here, so it fails if the schema exists already (no one
-- else's objects can be in it); the extension owner's, and no one else may
-- use it (privileges.sql): triggers and SECURITY DEFINER functions call them.
CREATE SCHEMA apikey_internal;
COMMENT ON SCHEMA apikey_internal IS
	'internal functions of extension apikey: called by its own functions and triggers, not by users';

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
