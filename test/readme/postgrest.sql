-- The README's PostgREST pre-request function (api.check_key), called as
-- PostgREST calls it: request.method and request.headers set for the
-- transaction, then the function.  Run by test/suites/16-readme.sh as
-- web_app, with the keys as psql variables (never printed).  Prints one
-- "ok"/"FAIL" line per case: the SQLSTATE is PGRST, the message is the JSON
-- body {"code": <status>, "message": ...}, the detail the JSON
-- {"status": 401, 403, 429 or 402, "headers": ...} (WWW-Authenticate with
-- 401, Retry-After with 429), the key is not echoed; a valid key raises
-- nothing and leaves its identity.
\set ON_ERROR_STOP on
\pset tuples_only on
\pset format unaligned

CREATE FUNCTION pg_temp.pre_request(name text, method text, api_key text,
		want_http integer, want_code text) RETURNS text
	LANGUAGE plpgsql
AS $$
DECLARE
	state text;
	msg text;
	det text;
	body json;
	http json;
	got text;
BEGIN
	PERFORM set_config('request.method', method, true);
	PERFORM set_config('request.headers',
		CASE WHEN api_key IS NULL THEN '{"accept": "*/*"}'
		     ELSE json_build_object('accept', '*/*', 'x-api-key', api_key)::text END, true);
	BEGIN
		PERFORM api.check_key();
		got := format('no error, tenant %s', apikey.current_tenant());
		IF want_http = 200 AND apikey.current_tenant() = want_code
		   AND apikey.current_environment() = 'production' THEN
			RETURN 'ok   ' || name || ': ' || got;
		END IF;
		RETURN 'FAIL ' || name || ': ' || got;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	END;
	BEGIN
		body := msg::json;
		http := det::json;
	EXCEPTION WHEN OTHERS THEN
		RETURN format('FAIL %s: %s, message %s, detail %s (not JSON)', name, state, msg, det);
	END;
	got := format('%s, HTTP %s, body %s', state, http->>'status', body);
	IF state = 'PGRST'
	   AND (http->>'status')::integer = want_http
	   AND json_typeof(http->'headers') = 'object'
	   AND ((http->'headers'->>'WWW-Authenticate') IS NOT NULL) = (want_http = 401)
	   AND ((http->'headers'->>'Retry-After') ~ '^[0-9]+$') IS NOT DISTINCT FROM (want_http = 429 OR NULL)
	   AND body->>'code' = want_code
	   AND body->>'message' = 'API key rejected: ' || want_code
	   AND (api_key IS NULL OR api_key = ''
	        OR position(api_key IN msg || coalesce(det, '')) = 0) THEN
		RETURN 'ok   ' || name || ': ' || got;
	END IF;
	RETURN 'FAIL ' || name || ': ' || got;
END
$$;

SELECT pg_temp.pre_request('valid key, GET', 'GET', :'acme', 200, 'acme');
SELECT CASE WHEN apikey.current_tenant() IS NULL THEN 'ok   ' ELSE 'FAIL ' END
       || 'the next transaction has no identity';
SELECT pg_temp.pre_request('valid key, POST (orders:write)', 'POST', :'acme', 200, 'acme');
SELECT pg_temp.pre_request('no X-API-Key header', 'GET', NULL, 401, 'missing_api_key');
SELECT pg_temp.pre_request('empty X-API-Key header', 'GET', '', 401, 'missing_api_key');
SELECT pg_temp.pre_request('malformed key', 'GET', 'ak_live_not_a_key', 401, 'malformed');
SELECT pg_temp.pre_request('unknown key (deleted)', 'GET', :'deleted', 401, 'not_found');
SELECT pg_temp.pre_request('revoked key', 'GET', :'revoked', 401, 'revoked');
SELECT pg_temp.pre_request('expired key', 'GET', :'expired', 401, 'expired');
SELECT pg_temp.pre_request('preview key on production', 'GET', :'acme_preview', 401, 'wrong_environment');
SELECT pg_temp.pre_request('public key', 'GET', :'public_key', 401, 'public_key');
SELECT pg_temp.pre_request('read-only key, GET', 'GET', :'acme_read_only', 200, 'acme');
SELECT pg_temp.pre_request('read-only key, POST', 'POST', :'acme_read_only', 403, 'insufficient_scope');
SELECT pg_temp.pre_request('key over its rate limit', 'GET', :'limited', 429, 'rate_limited');
SELECT pg_temp.pre_request('key out of credits', 'GET', :'spent', 402, 'usage_exceeded');
