-- Listings for humans.  Full administrators see every tenant; a caller on a
-- tenant's side (a transaction authenticated with a key holding
-- apikey:keys:read or apikey:admin, or acting for a member with that right)
-- sees its own tenant's keys of its environments (with apikey:keys:own, the
-- keys it owns), by the rule of authz.c (_sees); anyone else sees nothing.
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
       k.imported
  FROM apikey.keys AS k
  LEFT JOIN apikey.key_usage AS u ON u.key_id OPERATOR(pg_catalog.=) k.key_id
  LEFT JOIN apikey.credits AS c ON c.key_id OPERATOR(pg_catalog.=) k.key_id
 WHERE CASE WHEN apikey._acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            ELSE apikey._sees(k.tenant_id, k.environment, k.owner) END;
COMMENT ON VIEW apikey.key_list IS
	'API keys for humans: name, hint, scopes, status (active, revoked, expired), dates; never a hash or a secret';

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
 WHERE CASE WHEN apikey._acting_tenant_id() IS NULL THEN (SELECT apikey.is_admin())
            WHEN a.key_id IS NULL THEN apikey._sees_tenant(a.tenant_id)
            -- a key's events as the key is seen; a deleted key's by what
            -- its events recorded (created and deleted say its environment)
            WHEN EXISTS (SELECT FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) a.key_id)
            THEN EXISTS (SELECT FROM apikey.keys AS k WHERE k.key_id OPERATOR(pg_catalog.=) a.key_id
                            AND apikey._sees(k.tenant_id, k.environment, k.owner))
            ELSE apikey._sees(a.tenant_id, a.details OPERATOR(pg_catalog.->>) 'environment',
                              a.details OPERATOR(pg_catalog.->>) 'owner') END;
COMMENT ON VIEW apikey.audit_log IS
	'who did what to which tenant or key, and when; survives the deletion of keys';
