#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start/ap_stop take optional arguments
# 77_move_partition: the README's procedure for adding a node ("Several nodes", the ```sh block
# that starts with "# move partition"), run as written, moves a partition from one node cluster
# to a new one behind the router:
#   - two node clusters (A, D: private sockets, ports 54374/54375, approvals preloaded) and a
#     router database in the scratch cluster; partitions [A, A]; two tenants on each partition
#   - through the router: claims (some decided, some routed to an approver, one with an
#     idempotency key), a completed batch, a pending batch, a delegation per tenant; A seals
#   - the block moves partition 1 to D; then, through the router: every claim, batch, batch
#     result, delegation and inbox page reads as before; A holds no row of the moved tenants and
#     D holds all of them; the moved tenants' events stay on A (read once through the router); a moved tenant's pending claim is decided on D, its pending batch is
#     started and D's worker completes it; the idempotency key still returns the same claim;
#     partition 0's tenants are unaffected; both nodes' seal chains verify
#   - ids that carry no key of their tenant (a claim id chosen on the node, a tracking_id as
#     0.1.0 made them) route by their own hash, so after the move they are not found; after
#     approvals_router.learn_ids() they route to D
#   - set_partitions refuses NULL, a count that is not a power of two up to 256, a string with a
#     user, a password or a URI, one node spelled two ways; a role cannot map itself to another
#     user of approvals_nodes
#
# Run by test/run.sh against its scratch cluster (the router). Prints "ok N - ..." lines.
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
RUN=mv$(date +%s)$$
ROUTER_DB=${RUN}_router
WORK=$(mktemp -d)
chmod 755 "$WORK"
declare -A CONN=() PCONN=()   # psql as postgres; a partition's string (no user: the caller's)

# node NAME PORT CMD...: run CMD for node cluster NAME (a or d) on PORT.
node() { ap_in_cluster "move$1" "$2" "${@:3}"; }
# psql on node NAME (a or d) by its connection string.
nq() { timeout -k 5 60 "$AP_BIN/psql" -X -v ON_ERROR_STOP=1 -qAt "${CONN[$1]}" "${@:2}"; }
rq() { SQL_TIMEOUT=60 sqld "$ROUTER_DB" "$@"; }

cleanup() {
    sql -c "DROP DATABASE IF EXISTS $ROUTER_DB WITH (FORCE)" >/dev/null 2>&1
    node a 54374 ap_stop >/dev/null 2>&1
    node d 54375 ap_stop >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

ap_wait_ready 60 || { not_ok "the router's cluster accepts connections"; exit 1; }

# --- two node clusters and the router ------------------------------------------------------------
for n in a:54374 d:54375; do
    name=${n%%:*} port=${n##*:}
    if ! node "$name" "$port" ap_start "approvals.naptime = 1" "approvals.chunk_size = 20" >"$WORK/start_$name.log" 2>&1; then
        not_ok "node $name starts"; sed 's/^/#   /' "$WORK/start_$name.log" | tail -n 20
        exit 1
    fi
    PCONN[$name]=$(node "$name" "$port" bash -c 'echo "host=$AP_PGHOST port=$AP_PGPORT dbname=postgres"')
    CONN[$name]="${PCONN[$name]} user=postgres"
    PGOPTIONS='-c client_min_messages=warning' nq "$name" -c "DROP EXTENSION IF EXISTS approvals CASCADE" \
        -c "CREATE EXTENSION approvals" >/dev/null || { not_ok "CREATE EXTENSION approvals on node $name"; exit 1; }
done
ok "two node clusters (A, D) run with approvals preloaded"

ROUTER="host=$AP_PGHOST port=$AP_PGPORT dbname=$ROUTER_DB user=postgres"
if sql -c "CREATE DATABASE $ROUTER_DB" >/dev/null \
    && rq -c "CREATE EXTENSION plproxy" -c "CREATE EXTENSION approvals_router" \
          -c "SELECT approvals_router.set_partitions(ARRAY['${PCONN[a]}', '${PCONN[a]}'])" >/dev/null; then
    ok "router: partitions [A, A]"
else
    not_ok "router: partitions [A, A]"; exit 1
fi

# two tenants on each partition
mapfile -t STAY < <(rq -c "SELECT t FROM (SELECT '${RUN}_' || g AS t FROM generate_series(1, 200) g) s
                           WHERE approvals_router.partition_of(t) = 0 LIMIT 2")
mapfile -t MOVE < <(rq -c "SELECT t FROM (SELECT '${RUN}_' || g AS t FROM generate_series(1, 200) g) s
                           WHERE approvals_router.partition_of(t) = 1 LIMIT 2")
check "two tenants on each partition" "2 2" "${#STAY[@]} ${#MOVE[@]}"

# --- the tenants' data, made through the router ------------------------------------------------------
for t in "${STAY[@]}" "${MOVE[@]}"; do
    rq >/dev/null <<SQL || not_ok "data of tenant $t"
SELECT approvals.submit('mv', '$t-' || g, 'h' || g, tenant => '$t', actor => 'usr_req', amount => g)
FROM generate_series(1, 20) g;
SELECT approvals.submit('mv', '$t-routed', 'h', tenant => '$t', actor => 'usr_req', approvers => ARRAY['usr_rev1']);
SELECT approvals.submit('mv', '$t-idem', 'h', tenant => '$t', actor => 'usr_req', idempotency_key => 'k-$t');
SELECT approvals.decide(id, 'approved', actor => 'usr_rev') FROM approvals.claims
 WHERE tenant = '$t' AND resource_id IN ('$t-1', '$t-2', '$t-3', '$t-4', '$t-5');
SELECT count(*) FROM approvals.process_batch((approvals.create_batch(
    ARRAY(SELECT id FROM approvals.claims WHERE tenant = '$t' AND resource_id IN
          (SELECT '$t-' || g FROM generate_series(1, 10) g) ORDER BY id),
    tenant => '$t', coordinator => 'usr_coord', start => false)).id);
SELECT approvals.create_batch(
    ARRAY(SELECT id FROM approvals.claims WHERE tenant = '$t' AND resource_id IN
          (SELECT '$t-' || g FROM generate_series(11, 15) g) ORDER BY id),
    tenant => '$t', coordinator => 'usr_coord', start => false, reference => 'pending-$t');
SELECT approvals.delegate('usr_dg', tenant => '$t', delegator => 'usr_rev1');
SQL
done
rq -c "SELECT approvals.seal_audit()" >/dev/null
# Ids that carry no key of their tenant, as 0.1.0 made them or a caller chose them on a node:
# a claim id and a tracking_id of a tenant of partition 1 whose own hash says partition 0.
LEGACY=$(rq -c "SELECT id FROM (SELECT 'inv-$RUN-' || g AS id FROM generate_series(1, 100) g) s
                WHERE approvals_router.carried_key(id) & 1 = 0 LIMIT 1")
TRACK=$(rq -c "SELECT u FROM (SELECT lpad(to_hex(k), 2, '0') || substr(gen_random_uuid()::text, 3) AS u
                              FROM generate_series(0, 254, 2) k) s LIMIT 1")
t1=${MOVE[1]}
nq a -c "SELECT approvals.submit('mv', '$t1-legacy', 'h', tenant => '$t1', actor => 'usr_req', id => '$LEGACY')" \
     -c "UPDATE approvals.batches SET tracking_id = '$TRACK' WHERE reference = 'pending-$t1'" >/dev/null \
    || not_ok "a legacy claim id and tracking_id on node A"
check "node A has every tenant's claims; D none" "89 0" \
    "$(nq a -c "SELECT count(*) FROM approvals.claims") $(nq d -c "SELECT count(*) FROM approvals.claims")"

# What the router reads, as one text per relation.
snapshot() {
    rq -c "SELECT string_agg(concat_ws(',', id, tenant, status, approval_count, reviewer, batch_id, assignee), ';' ORDER BY id) FROM approvals.claims" \
       -c "SELECT string_agg(concat_ws(',', id, tenant, status, total_claims, processed_count, approved_count, reference, tracking_id), ';' ORDER BY id) FROM approvals.batches" \
       -c "SELECT string_agg(concat_ws(',', batch_id, position, claim_id, decision), ';' ORDER BY batch_id, position) FROM approvals.batch_items" \
       -c "SELECT string_agg(concat_ws(',', id, tenant, delegator, delegate), ';' ORDER BY id) FROM approvals.delegations" \
       -c "SELECT string_agg(id, ' ') FROM approvals.inbox(actor => 'usr_rev1', page_limit => 100)" \
       -c "SELECT string_agg(concat_ws(',', action, claim_id, actor, at), ';' ORDER BY claim_id, at, action) FROM approvals.events"
}
snapshot >"$WORK/before" || not_ok "read everything through the router before the move"

# --- the README's procedure, as written -------------------------------------------------------------
awk '/^```sh$/ { inb = 1; n = 0; next } inb && /^```$/ { inb = 0; if (found) exit; next }
     inb { if (n++ == 0 && $0 ~ /^# move partition/) found = 1; if (found) print }' \
    "$AP_ROOT/README.md" >"$WORK/move.sh"
if [[ ! -s $WORK/move.sh ]]; then
    not_ok "the README has the move block (a \`\`\`sh block starting with '# move partition')"
    exit 1
fi
if env PATH="$AP_BIN:$PATH" PGCONNECT_TIMEOUT=5 A="${CONN[a]}" D="${CONN[d]}" ROUTER="$ROUTER" P=1 N=2 \
       PARTS="ARRAY['${PCONN[a]}', '${PCONN[d]}']" timeout 300 bash "$WORK/move.sh" >"$WORK/move.log" 2>&1; then
    ok "the README's move block runs: partition 1 moves from A to D"
else
    not_ok "the README's move block runs"; sed 's/^/#   /' "$WORK/move.log" | tail -n 20
fi
check "the router's partitions are [A, D]" "${PCONN[a]}|${PCONN[d]}" \
    "$(rq -c "SELECT string_agg(conninfo, '|' ORDER BY partition) FROM approvals_router.partitions")"

# --- after ----------------------------------------------------------------------------------------------
snapshot >"$WORK/after" || not_ok "read everything through the router after the move"
for i in 1 2 3 4 5 6; do
    what=$(sed -n "${i}p" <<<"claims
batches
batch items
delegations
usr_rev1's inbox
events")
    check "through the router, $what read the same before and after the move" \
        "$(sed -n "${i}p" "$WORK/before")" "$(sed -n "${i}p" "$WORK/after")"
done
inlist() { printf "'%s'," "$@" | sed 's/,$//'; }
check "node A holds no claim, batch, delegation or inbox entry of the moved tenants" "0 0 0 0" \
    "$(nq a -c "SELECT (SELECT count(*) FROM approvals.claims WHERE tenant IN ($(inlist "${MOVE[@]}")))
                    || ' ' || (SELECT count(*) FROM approvals.batches WHERE tenant IN ($(inlist "${MOVE[@]}")))
                    || ' ' || (SELECT count(*) FROM approvals.delegations WHERE tenant IN ($(inlist "${MOVE[@]}")))
                    || ' ' || (SELECT count(*) FROM approvals.inbox_entries WHERE tenant IN ($(inlist "${MOVE[@]}")))")"
check "node D holds the moved tenants' 45 claims and 4 batches, and nothing else" "45 45 4" \
    "$(nq d -c "SELECT (SELECT count(*) FROM approvals.claims) || ' '
                    || (SELECT count(*) FROM approvals.claims WHERE tenant IN ($(inlist "${MOVE[@]}"))) || ' '
                    || (SELECT count(*) FROM approvals.batches)")"
check "the moved tenants' events stay on A (its sealed history); D starts without them" "t 0" \
    "$(nq a -c "SELECT count(*) > 0 FROM approvals.events WHERE tenant IN ($(inlist "${MOVE[@]}"))") $(nq d -c "SELECT count(*) FROM approvals.events")"

# a moved tenant works on D
t=${MOVE[0]}
check "a moved tenant's pending claim is decided through the router (on D)" "approved" \
    "$(rq -c "SELECT status FROM approvals.decide((SELECT id FROM approvals.claims WHERE tenant = '$t' AND resource_id = '$t-20'), 'approved', actor => 'usr_rev')")"
check "the decision's event is on D" "1" \
    "$(nq d -c "SELECT count(*) FROM approvals.events e JOIN approvals.claims c ON c.id = e.claim_id
                WHERE c.resource_id = '$t-20' AND e.action = 'approved'")"
bid=$(rq -c "SELECT id FROM approvals.batches WHERE reference = 'pending-$t'")
rq -c "SELECT approvals.start_batch('$bid')" >/dev/null
check "its pending batch, started through the router, is completed by D's worker" "completed 5" \
    "$(rq -c "SELECT status || ' ' || approved_count FROM approvals.wait_batch('$bid', '60 s')")"
check "the idempotency key of a moved claim still returns the same claim" \
    "$(rq -c "SELECT id FROM approvals.claims WHERE tenant = '$t' AND resource_id = '$t-idem'")" \
    "$(rq -c "SELECT id FROM approvals.submit('mv', '$t-idem', 'h', tenant => '$t', actor => 'usr_req', idempotency_key => 'k-$t')")"
s=${STAY[0]}
# set_partitions refuses what would break routing or identity, and changes nothing then
sqlstate() { rq -v VERBOSITY=sqlstate -c "$1" 2>&1 | sed -n 's/^ERROR:  //p'; }
A0=${PCONN[a]}
check "set_partitions: NULL, a NULL string, 3 or 512 entries, a user, a password, a URI, one node spelled two ways" \
    "22004 22004 22023 22023 22023 22023 22023 22023" \
    "$(sqlstate "SELECT approvals_router.set_partitions(NULL)") $(sqlstate "SELECT approvals_router.set_partitions(ARRAY['$A0', NULL])") $(sqlstate "SELECT approvals_router.set_partitions(ARRAY['$A0', '$A0', '$A0'])") $(sqlstate "SELECT approvals_router.set_partitions(array_fill('$A0'::text, ARRAY[512]))") $(sqlstate "SELECT approvals_router.set_partitions(ARRAY['$A0 user=postgres'])") $(sqlstate "SELECT approvals_router.set_partitions(ARRAY['$A0 password=x'])") $(sqlstate "SELECT approvals_router.set_partitions(ARRAY['postgresql:///postgres'])") $(sqlstate "SELECT approvals_router.set_partitions(ARRAY['$A0', '  $A0'])")"
check "after the refused calls the partitions are still [A, D]" "${PCONN[a]}|${PCONN[d]}" \
    "$(rq -c "SELECT string_agg(conninfo, '|' ORDER BY partition) FROM approvals_router.partitions")"
# only a superuser maps users of approvals_nodes: a role mapping itself to postgres is 42501
sql -c "CREATE ROLE ${RUN}_r IN ROLE approvals_reader" >/dev/null
check "a role with USAGE on approvals_nodes cannot map itself to another user (42501)" "42501" \
    "$(sqlstate "SET ROLE ${RUN}_r; CREATE USER MAPPING FOR ${RUN}_r SERVER approvals_nodes OPTIONS (user 'postgres')")"
sql -c "DROP ROLE IF EXISTS ${RUN}_r" >/dev/null
check "a tenant of partition 0 is unaffected (submit and decide through the router, on A)" "approved 1" \
    "$(rq -c "SELECT status FROM approvals.decide((approvals.submit('mv', '$s-new', 'h', tenant => '$s', actor => 'usr_req')).id, 'approved', actor => 'usr_rev')") $(nq a -c "SELECT count(*) FROM approvals.claims WHERE resource_id = '$s-new'")"
# the legacy ids route by their own hash (to A) until the router learns them
check "a claim id that carries no key routes by its own hash: not found after its tenant moved" "P0002" \
    "$(rq -v VERBOSITY=sqlstate -c "SELECT status FROM approvals.decide('$LEGACY', 'approved', actor => 'usr_rev')" 2>&1 | sed -n 's/^ERROR:  //p')"
check "learn_ids records the claim id and the tracking_id that carry no key of their tenant" "t" \
    "$(rq -c "SELECT approvals_router.learn_ids() >= 2" -c "SELECT count(*) = 2 FROM approvals_router.id_routes
              WHERE id IN ('$LEGACY', replace('$TRACK', '-', ''))" | sort -u | tr -d '\n')"
check "after learn_ids the legacy claim is decided through the router (on D)" "approved" \
    "$(rq -c "SELECT status FROM approvals.decide('$LEGACY', 'approved', actor => 'usr_rev')")"
check "after learn_ids api_approve_file finds the batch by its legacy tracking_id (on D)" "PROCESSING" \
    "$(rq -c "SELECT approvals.api_approve_file(jsonb_build_object('tracking_id', '$TRACK',
                 'transactions', (SELECT jsonb_agg(claim_id) FROM approvals.batch_results(
                                     (SELECT id FROM approvals.batches WHERE reference = 'pending-$t1'))))) ->> 'status'")"
rq -c "SELECT approvals.seal_audit()" >/dev/null
check "both nodes' seal chains verify after the move (A kept its sealed events)" "t t" \
    "$(rq -c "SELECT bool_and(ok) FROM approvals.verify_audit()") $(rq -c "SELECT count(*) = 2 FROM approvals.audit_head()")"

echo "# 77_move_partition: $N tests, $FAILS failed, $((SECONDS - T0)) s"
echo "1..$N"
exit $((FAILS > 0))
