-- CREATE EXTENSION installs into a schema of its own.  A schema named
-- apikey that exists beforehand is used only when it is an empty schema of
-- the installing role that no one else may create objects in; otherwise
-- its owner (or whoever may write to it) could plant objects that the
-- extension's SECURITY DEFINER functions would find, and run them with the
-- extension owner's rights.
\set SHOW_CONTEXT never
SELECT current_database() AS regress_db \gset
CREATE ROLE regress_squatter;
CREATE DATABASE regress_install;
\c regress_install
SET client_min_messages = error;

-- another role's schema, with a planted exact-type match for a built-in
-- that the management functions call
CREATE SCHEMA apikey AUTHORIZATION regress_squatter;
SET ROLE regress_squatter;
CREATE FUNCTION apikey.cardinality(text[]) RETURNS integer LANGUAGE sql
	AS $$ SELECT 0 $$;
RESET ROLE;
CREATE EXTENSION apikey;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'apikey';
DROP SCHEMA apikey CASCADE;

-- another role's empty schema
CREATE SCHEMA apikey AUTHORIZATION regress_squatter;
CREATE EXTENSION apikey;
DROP SCHEMA apikey;

-- the installer's own schema, but others may create objects in it
CREATE SCHEMA apikey;
GRANT CREATE ON SCHEMA apikey TO regress_squatter;
CREATE EXTENSION apikey;
DROP SCHEMA apikey;

-- the installer's own schema, holding something already
CREATE SCHEMA apikey;
CREATE TABLE apikey.keys (x int);
CREATE EXTENSION apikey;
DROP SCHEMA apikey CASCADE;

-- the installer's own empty schema: installed
CREATE SCHEMA apikey;
CREATE EXTENSION apikey;
SELECT n.nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS owned_by_installer
  FROM pg_namespace n WHERE nspname = 'apikey';
DROP EXTENSION apikey;
DROP SCHEMA apikey;

-- the internal schema apikey_internal exists already (anyone's, even the
-- installer's and empty): not installed, nothing can have been planted
CREATE SCHEMA apikey_internal AUTHORIZATION regress_squatter;
SET client_min_messages = warning;
CREATE EXTENSION apikey;
SET client_min_messages = error;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'apikey';
DROP SCHEMA apikey_internal;
SELECT count(*) AS schema_apikey_left FROM pg_namespace WHERE nspname = 'apikey';

-- apikey_internal is created with the extension and dropped with it
CREATE EXTENSION apikey;
DROP EXTENSION apikey;
SELECT nspname AS left_after_drop_extension FROM pg_namespace WHERE nspname LIKE 'apikey%' ORDER BY 1;
DROP SCHEMA apikey;

-- no schema: CREATE EXTENSION creates its own
CREATE EXTENSION apikey;
SELECT extname, extnamespace::regnamespace AS schema FROM pg_extension WHERE extname = 'apikey';

-- However an object came into the schema later (only its owner, a
-- superuser, can put one there; an update refuses to run while one is
-- there), no function of the extension finds it: their search_path is
-- pg_catalog and pg_temp, and their bodies name the extension's objects
-- with the schema.  Exact-type matches for built-ins the bodies call:
CREATE FUNCTION apikey.cardinality(text[]) RETURNS integer LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'planted apikey.cardinality(text[]) ran'; END$$;
CREATE FUNCTION apikey.array_ndims(text[]) RETURNS integer LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'planted apikey.array_ndims(text[]) ran'; END$$;
CREATE FUNCTION apikey.format(text, text) RETURNS text LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'planted apikey.format(text, text) ran'; END$$;
CREATE FUNCTION apikey.jsonb_build_object(text, text, text, text) RETURNS jsonb LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'planted apikey.jsonb_build_object ran'; END$$;
CREATE FUNCTION apikey.octet_length(text) RETURNS integer LANGUAGE plpgsql
	AS $$BEGIN RAISE EXCEPTION 'planted apikey.octet_length(text) ran'; END$$;
SELECT apikey.create_tenant('planted', environments => '{production,preview}') > 0 AS tenant;
SELECT k.key_id IS NOT NULL AS created
  FROM apikey.create_key('planted', 'production', 'k', scopes => '{a:b}', key_roles => '{}',
                         owner => 'o', meta => '{"plan": "pro"}', resources => '{folder:1}') AS k;
SELECT apikey.set_key_meta(key_id, '{"plan": "free"}'),
       apikey.set_credits(key_id, 100),
       apikey.set_key_resources(key_id, '{folder:2}')
  FROM apikey.key_list WHERE name = 'k';
SELECT apikey.import_key('planted', 'production', 'legacy', api_key => 'legacy-text-123') IS NOT NULL AS imported;
SELECT status FROM apikey.verify('legacy-text-123');

\c :regress_db
DROP DATABASE regress_install;
DROP ROLE regress_squatter;
