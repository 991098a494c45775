-- Listings for humans.  Full administrators see every tenant; a caller on a
-- tenant's side (a transaction authenticated with a key holding
-- apikey:keys:read or apikey:admin, or acting for a member with that right)
-- sees its own tenant's keys of its environments (with apikey:keys:own, the
-- keys it owns), by the rule of authz.c (apikey_internal.sees); anyone else sees nothing.
-- Never a hash, never a secret.

CREATE VIEW apikey.key_list WITH (security_barrier) AS
SELECT k.key_id,
       k.tenant,
       k.environment,
       k.name,
       k.description,
       k.hint,
       k.scopes,
       CASE WHEN pg_catalog.cardinality(k.resources) OPERATOR(pg_catalog.=) 1 THEN k.resources[1] END AS resource,
       CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
            WHEN k.expires_at <= pg_catalog.now() THEN 'expired'
            ELSE 'active' END AS status,
       k.created_at,
       k.created_by,
       k.expires_at,
       k.revoked_at,
       k.revoked_reason,
       k.rolled_at,
       CASE WHEN k.previous_hash_expires_at > pg_catalog.now()
            THEN k.previous_hash_expires_at END AS previous_secret_expires_at,
       u.last_used_at,
       k.tenant_id,
       k.owner,
       k.meta,
       k.key_roles,
       k.effective_scopes,
       k.resources,
       k.allowed_ips,
       k.rate_limits,
       k.tenant_rate_limits,
       CASE WHEN c.next_refill_at <= pg_catalog.now() THEN c.refill_amount
            ELSE c.remaining END AS remaining,
       c.refill_amount,
       c.refill_every,
       k.imported,
       k.owner_rate_limits,
       apikey_internal.rate_limit_summary(k.rate_limits) AS rate_limit_summary,
       apikey_internal.rate_limit_summary(k.tenant_rate_limits) AS tenant_rate_limit_summary,
       apikey_internal.rate_limit_summary(k.owner_rate_limits) AS owner_rate_limit_summary
  FROM apikey.keys AS k
  LEFT JOIN apikey.key_usage AS u ON u.key_id OPERATOR(pg_catalog.=) k.key_id
  LEFT JOIN apikey.credits AS c ON c.key_id OPERATOR(pg_catalog.=) k.key_id
 WHERE CASE WHEN apikey_internal.acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey_internal.sees(k.tenant_id, k.environment, k.owner) END;
COMMENT ON VIEW apikey.key_list IS
	'API keys for humans: name, hint, scopes, status (active, revoked, expired), dates; never a hash or a secret';
COMMENT ON COLUMN apikey.key_list.key_id IS
	'the key''s public id: 11 base62 characters, also the start of its text; not a secret';
COMMENT ON COLUMN apikey.key_list.tenant IS
	'the slug of the key''s tenant';
COMMENT ON COLUMN apikey.key_list.environment IS
	'the environment the key is valid in (e.g. production, preview)';
COMMENT ON COLUMN apikey.key_list.name IS
	'the key''s name, from create_key or rename_key';
COMMENT ON COLUMN apikey.key_list.description IS
	'free text from create_key or describe_key';
COMMENT ON COLUMN apikey.key_list.hint IS
	'a fragment of the key text for a person to recognise it (e.g. ak_live_…nWl3), never enough to use it';
COMMENT ON COLUMN apikey.key_list.scopes IS
	'the key''s own scopes (effective_scopes adds those of its key roles)';
COMMENT ON COLUMN apikey.key_list.resource IS
	'the one resource the key is restricted to, when it is exactly one (resources lists them all)';
COMMENT ON COLUMN apikey.key_list.status IS
	'active, revoked or expired';
COMMENT ON COLUMN apikey.key_list.created_at IS
	'when the key was created';
COMMENT ON COLUMN apikey.key_list.created_by IS
	'who created it: the actor named by set_actor or act_for, else the role';
COMMENT ON COLUMN apikey.key_list.expires_at IS
	'when the key stops verifying (NULL: never)';
COMMENT ON COLUMN apikey.key_list.revoked_at IS
	'when the key was revoked (NULL: it is not)';
COMMENT ON COLUMN apikey.key_list.revoked_reason IS
	'the reason given when the key was revoked';
COMMENT ON COLUMN apikey.key_list.rolled_at IS
	'when roll_key last gave the key a new secret';
COMMENT ON COLUMN apikey.key_list.previous_secret_expires_at IS
	'until when the secret roll_key replaced still verifies (NULL: it does not)';
COMMENT ON COLUMN apikey.key_list.last_used_at IS
	'the key''s last valid verification, as the usage writer recorded it (NULL: none recorded)';
COMMENT ON COLUMN apikey.key_list.tenant_id IS
	'the tenant''s bigint id, as current_tenant_id() returns it';
COMMENT ON COLUMN apikey.key_list.owner IS
	'the application''s id of the person or account the key belongs to';
COMMENT ON COLUMN apikey.key_list.meta IS
	'the application''s data about the key, returned by verification';
COMMENT ON COLUMN apikey.key_list.key_roles IS
	'the tenant''s key roles the key has (their scopes are in effective_scopes)';
COMMENT ON COLUMN apikey.key_list.effective_scopes IS
	'the scopes verification checks: the key''s own and those of its key roles';
COMMENT ON COLUMN apikey.key_list.resources IS
	'the resources the key is restricted to, "type:id" or "type:*" (NULL: unrestricted)';
COMMENT ON COLUMN apikey.key_list.allowed_ips IS
	'the networks the key may be used from (NULL: anywhere)';
COMMENT ON COLUMN apikey.key_list.rate_limits IS
	'the key''s own rate limits (name, max_requests, per); rate_limit_summary shows them as text';
COMMENT ON COLUMN apikey.key_list.tenant_rate_limits IS
	'the tenant''s rate limits, a budget shared by its keys; tenant_rate_limit_summary shows them as text';
COMMENT ON COLUMN apikey.key_list.remaining IS
	'credits left, counting a refill that is due (NULL: the key has no credits)';
COMMENT ON COLUMN apikey.key_list.refill_amount IS
	'the credits a refill sets remaining to (NULL: no refill)';
COMMENT ON COLUMN apikey.key_list.refill_every IS
	'how often credits are refilled (NULL: never)';
COMMENT ON COLUMN apikey.key_list.imported IS
	'whether the key text came from another system (import_key); false once rolled';
COMMENT ON COLUMN apikey.key_list.rate_limit_summary IS
	'the key''s own rate limits as text, e.g. "burst 20/1 s, hourly 1000/1 h" (NULL: none)';
COMMENT ON COLUMN apikey.key_list.tenant_rate_limit_summary IS
	'the tenant''s rate limits on this key as text, e.g. "api 5000/1 min" (NULL: none)';
COMMENT ON COLUMN apikey.key_list.owner_rate_limits IS
	'the rate limits of the key''s owner, a budget shared by all of that owner''s keys (set_owner_rate_limit); owner_rate_limit_summary shows them as text';
COMMENT ON COLUMN apikey.key_list.owner_rate_limit_summary IS
	'the owner''s rate limits on this key as text, e.g. "api 100/1 min" (NULL: none)';

CREATE VIEW apikey.audit_log WITH (security_barrier) AS
SELECT a.event_id,
       a.at,
       a.action,
       a.tenant,
       a.key_id,
       a.actor_role,
       a.actor_key_id,
       a.details,
       a.tenant_id,
       a.actor
  FROM apikey.audit AS a
 WHERE CASE WHEN apikey_internal.acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            WHEN a.key_id IS NULL THEN apikey_internal.sees_tenant(a.tenant_id)
            -- a key's events as the key is seen; a deleted key's by what
            -- its events recorded (created and deleted say its environment)
            WHEN EXISTS (SELECT FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) a.key_id)
            THEN EXISTS (SELECT FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) a.key_id
                            AND apikey_internal.sees(k.tenant_id, k.environment, k.owner))
            ELSE apikey_internal.sees(a.tenant_id, a.details OPERATOR(pg_catalog.->>) 'environment',
                              a.details OPERATOR(pg_catalog.->>) 'owner') END;
COMMENT ON VIEW apikey.audit_log IS
	'who did what to which tenant or key, and when; survives the deletion of keys';
COMMENT ON COLUMN apikey.audit_log.event_id IS
	'the event''s number, increasing in the order the events were written';
COMMENT ON COLUMN apikey.audit_log.at IS
	'when the change was made';
COMMENT ON COLUMN apikey.audit_log.action IS
	'what was done: created, renamed, revoked, reactivated, rolled, deleted, leaked, …';
COMMENT ON COLUMN apikey.audit_log.tenant IS
	'the slug of the tenant concerned';
COMMENT ON COLUMN apikey.audit_log.key_id IS
	'the key concerned (NULL: a tenant''s event); kept after the key is deleted';
COMMENT ON COLUMN apikey.audit_log.actor_role IS
	'the role that made the change (the caller''s, not a SECURITY DEFINER function''s owner)';
COMMENT ON COLUMN apikey.audit_log.actor_key_id IS
	'the authenticated key the change was made with, a tenant administrator''s (NULL: none)';
COMMENT ON COLUMN apikey.audit_log.details IS
	'what changed, as JSON; never a secret';
COMMENT ON COLUMN apikey.audit_log.tenant_id IS
	'the tenant''s bigint id, as current_tenant_id() returns it';
COMMENT ON COLUMN apikey.audit_log.actor IS
	'the person named by set_actor or act_for in that transaction (NULL: none)';
