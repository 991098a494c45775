#!/usr/bin/env bash
# doc/tenant-members.md, run as it says: the dashboard role's setup as a
# superuser, then each seed's walk-through as the dashboard role, in a
# database of its own on the 16-readme suite's cluster; each block's output
# and the state it leaves (keys, audit trail, actors) are checked, the
# refused blocks must fail with their SQLSTATE (42501 without the delete
# right, 42704 for another tenant's key id), and act_for must not outlive
# its transaction in the session.
# Usage: members.sh WORKDIR, with PGHOST and PGPORT of the cluster.
# Prints one "ok"/"FAIL" line per check.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
. "$REPO/test/hostile/cluster.sh"

work=$1
db=membersdb
failed=0
ok() { echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
# check WHAT GOT WANT
check() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', wanted '$3'"; fi; }
q() { cluster_psql -q -At -d "$db" -c "$1" 2>&1; }
# walk NAME [PSQL-ARGS...]: a block of the page as the dashboard role; its
# output (unaligned) in $work/members-NAME.out; the psql status returned
walk() {
	local name=$1
	shift
	cluster_psql -q -At -U dashboard -d "$db" -v VERBOSITY=verbose "$@" \
		-f "$work/members-$name.sql" >"$work/members-$name.out" 2>&1
}

for b in setup beehiiv klaviyo postman brevo brevo-refused other-tenant environments; do
	"${PY:-/usr/bin/python3}" "$REPO/test/readme/blocks.py" "$REPO/README.md" "members-$b" \
		>"$work/members-$b.sql" || { bad "doc/tenant-members.md has no block members-$b"; exit 1; }
done
chown postgres: "$work"/members-*.sql

cluster_psql -q -d postgres -c "CREATE DATABASE $db" >/dev/null &&
	cluster_psql -q -d "$db" -c "CREATE EXTENSION apikey" >/dev/null 2>&1 ||
	{ bad "CREATE DATABASE $db with apikey"; exit 1; }
if cluster_psql -q -d "$db" -f "$work/members-setup.sql" >"$work/members-setup.out" 2>&1; then
	ok "members-setup runs as a superuser"
else
	bad "members-setup: $(cat "$work/members-setup.out")"
	exit 1
fi

# beehiiv
if walk beehiiv; then ok "members-beehiiv runs as dashboard"; else bad "members-beehiiv: $(cat "$work/members-beehiiv.out")"; fi
grep -Eq '^Zapier\|ak_live_…[0-9A-Za-z]{4}\|active\|ada@newsletter\.example\|' "$work/members-beehiiv.out" &&
	ok "beehiiv: the list shows the name, the last characters, the creator" ||
	bad "beehiiv: the list: $(cat "$work/members-beehiiv.out")"
grep -q 'ak_live_[0-9A-Za-z]\{20,\}' "$work/members-beehiiv.out" &&
	bad "beehiiv: a whole key text in the page's output" || ok "beehiiv: the key text is not printed again"
check "beehiiv: created, renamed, described, deleted, by Ada through the dashboard" \
	"$(q "SELECT string_agg(action || ':' || actor || ':' || actor_role, ' ' ORDER BY event_id)
	        FROM apikey.audit_log WHERE tenant = 'newsletter' AND key_id IS NOT NULL")" \
	"created:ada@newsletter.example:dashboard renamed:ada@newsletter.example:dashboard described:ada@newsletter.example:dashboard deleted:ada@newsletter.example:dashboard"
check "beehiiv: the deleted key is gone" "$(q "SELECT count(*) FROM apikey.key_list WHERE tenant = 'newsletter'")" 0

# Klaviyo
if walk klaviyo; then ok "members-klaviyo runs as dashboard"; else bad "members-klaviyo: $(cat "$work/members-klaviyo.out")"; fi
check "klaviyo: the page shows the account's public key" \
	"$(grep -c '^pk_live_' "$work/members-klaviyo.out")" 1
check "klaviyo: the site id is the tenant's public key" \
	"$(grep '^pk_live_' "$work/members-klaviyo.out")" "$(q "SELECT apikey.public_key('shop', 'production')")"
grep -Eq '^Segment\|ak_live_…[0-9A-Za-z]{4}\|\{events:write\}$' "$work/members-klaviyo.out" &&
	grep -Eq '^Shopify\|ak_live_…[0-9A-Za-z]{4}\|\{lists:read,profiles:read\}$' "$work/members-klaviyo.out" &&
	ok "klaviyo: one labelled key per integration, with its scopes" ||
	bad "klaviyo: the list: $(cat "$work/members-klaviyo.out")"
check "klaviyo: both keys created by Kim" \
	"$(q "SELECT string_agg(name || ':' || created_by, ' ' ORDER BY name) FROM apikey.key_list WHERE tenant = 'shop'")" \
	"Segment:kim@shop.example Shopify:kim@shop.example"

# Postman
if walk postman; then ok "members-postman runs as dashboard"; else bad "members-postman: $(cat "$work/members-postman.out")"; fi
rolled=$(grep -E '^ak_live_[0-9A-Za-z]{20,}$' "$work/members-postman.out" | head -1)
check "postman: the regenerated key is shown once and verifies" \
	"$(q "SELECT status FROM apikey.verify('$rolled')")" valid
check "postman: Priya's key, hers, renamed, rolled, its expiry moved" \
	"$(q "SELECT name || ':' || owner || ':' || created_by || ':' || (rolled_at IS NOT NULL) || ':' ||
	             (expires_at > now() + interval '59 days')
	        FROM apikey.key_list WHERE tenant = 'workspace'")" \
	"CI runner (nightly):priya:priya:true:true"
check "postman: the collection key was created read-only for collection 42, then deleted" \
	"$(q "SELECT string_agg(action || ':' || coalesce(details ->> 'resources', details ->> 'name'), ' ' ORDER BY event_id)
	        FROM apikey.audit_log WHERE tenant = 'workspace'
	         AND key_id = (SELECT key_id FROM apikey.audit_log WHERE tenant = 'workspace' AND action = 'deleted')")" \
	'created:["collection:42"] deleted:Partner access'
grep -Eq '^CI runner \(nightly\)\|priya\|\|priya\|[0-9]{4}-' "$work/members-postman.out" &&
	ok "postman: a team admin lists the keys with creator and creation time" ||
	bad "postman: Lee's list: $(cat "$work/members-postman.out")"

# Brevo
if walk brevo; then ok "members-brevo runs as dashboard"; else bad "members-brevo: $(cat "$work/members-brevo.out")"; fi
grep -Eq '^CRM sync\|ak_live_…[0-9A-Za-z]{4}\|bea@agency\.example$' "$work/members-brevo.out" &&
	ok "brevo: the list shows the last characters" || bad "brevo: the list: $(cat "$work/members-brevo.out")"
check "brevo: the deleted key is gone for good, the other kept" \
	"$(q "SELECT string_agg(name, ' ') FROM apikey.key_list WHERE tenant = 'agency'"):$(q "SELECT count(*) FROM apikey.audit_log WHERE tenant = 'agency' AND action = 'deleted' AND actor = 'bea@agency.example'")" \
	"CRM sync:1"
crm=$(q "SELECT key_id FROM apikey.key_list WHERE tenant = 'agency' AND name = 'CRM sync'")
if walk brevo-refused -v crm_id="$crm"; then
	bad "members-brevo-refused: Bo deleted a key without the delete right"
else
	grep -q 'ERROR:  42501: permission denied: .* does not hold the right apikey:keys:delete' "$work/members-brevo-refused.out" &&
		ok "brevo: a member without the delete right is refused (42501)" ||
		bad "members-brevo-refused: $(cat "$work/members-brevo-refused.out")"
fi
check "brevo: the key Bo tried to delete is still there" \
	"$(q "SELECT count(*) FROM apikey.key_list WHERE key_id = '$crm'")" 1

# another tenant's key id
shopify=$(q "SELECT key_id FROM apikey.key_list WHERE tenant = 'shop' AND name = 'Shopify'")
if walk other-tenant -v key_id_from_url="$shopify"; then
	bad "members-other-tenant: a member deleted another tenant's key"
else
	grep -q "ERROR:  42704: key $shopify does not exist" "$work/members-other-tenant.out" &&
		ok "another tenant's key id is not found (42704)" ||
		bad "members-other-tenant: $(cat "$work/members-other-tenant.out")"
fi
check "another tenant's key is untouched" "$(q "SELECT count(*) FROM apikey.key_list WHERE key_id = '$shopify'")" 1

# environments
if walk environments; then ok "members-environments runs as dashboard"; else bad "members-environments: $(cat "$work/members-environments.out")"; fi
grep -q '^Vercel preview|preview|preview deployments of the web app|revoked$' "$work/members-environments.out" &&
	ok "environments: the preview key, its description, revoked" ||
	bad "environments: the list: $(cat "$work/members-environments.out")"
check "environments: created, revoked, reactivated, deleted by Sam" \
	"$(q "SELECT string_agg(action || ':' || actor, ' ' ORDER BY event_id)
	        FROM apikey.audit_log WHERE tenant = 'startup' AND key_id IS NOT NULL")" \
	"created:sam@startup.example revoked:sam@startup.example reactivated:sam@startup.example deleted:sam@startup.example"
check "environments: production is beyond a preview member" \
	"$(cluster_psql -q -At -U dashboard -d "$db" -v VERBOSITY=sqlstate -c 'BEGIN' \
		-c "SELECT apikey.act_for('startup', 'sam@startup.example', '{apikey:keys:*}', '{preview}')" \
		-c "SELECT apikey.create_key('startup', 'production', 'x')" 2>&1 | grep -o 'ERROR:  [0-9A-Z]*')" \
	"ERROR:  42501"

# act_for ends with its transaction: the next one in the session has nothing
check "the dashboard's next transaction in the same session sees and manages nothing" \
	"$(cluster_psql -q -At -U dashboard -d "$db" -v VERBOSITY=sqlstate -c 'BEGIN' \
		-c "SELECT apikey.act_for('shop', 'kim@shop.example')" -c 'SELECT count(*) FROM apikey.key_list' -c 'COMMIT' \
		-c 'SELECT count(*) FROM apikey.key_list' \
		-c "SELECT apikey.delete_key('$shopify')" 2>&1 | grep -v '^$' | tr '\n' ' ')" \
	"2 0 ERROR:  42501 "
exit $((failed > 0))
