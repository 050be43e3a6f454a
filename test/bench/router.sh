#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start/ap_stop take optional arguments
# Router benchmark: what forwarding through approvals_router (PL/Proxy) costs a single-claim
# call. One node (database postgres of the bench cluster) and a router database in the same
# cluster with one partition on it; pgbench with CLIENTS clients runs the same script against
# the router and directly against the node, in alternating rounds; prints each round's
# transactions/s and the median ratio (router / direct; the router's cost per call is the rest).
#   submit+decide  approvals.submit then approvals.decide (two calls, two node transactions)
#   decide         approvals.decide alone on a pending claim
#   decide, 1 client   the average latency of one decide, router and direct, and the difference
# On one machine router and node share the 2 cores, so the ratio includes the router's own
# CPU; with the router on its own server the node's throughput is what limits.
#
#   bash test/bench/router.sh [SECONDS_PER_ROUND [ROUNDS [CLIENTS]]]   (default 10 3 8)
set -euo pipefail
# shellcheck source=test/bench/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
ap_need_root "$@"
cd "$AP_ROOT"
SECS=${1:-10}
ROUNDS=${2:-3}
CLIENTS=${3:-8}
[[ $SECS =~ ^[0-9]+$ && $ROUNDS =~ ^[0-9]+$ && $CLIENTS =~ ^[0-9]+$ ]] \
    || ap_die "usage: router.sh [SECONDS_PER_ROUND [ROUNDS [CLIENTS]]]"
# pending claims per client, round and prefix: enough for 30000 decisions/s in all, and for
# 20000/s per client in the test suite's tiny run (fsync off there); a client that ran out
# would abort the run
PER_CLIENT=$((30000 / CLIENTS))
[[ -n ${BENCH_SMOKE:-} && $PER_CLIENT -lt 20000 ]] && PER_CLIENT=20000
QUOTA=$((SECS * PER_CLIENT + 1000))
ROUTER=approvals_bench_router
bench_setup

SCRIPTS=$(mktemp -d)
chmod 755 "$SCRIPTS"
cleanup() {
    rm -rf "$SCRIPTS"
    bq -c "DROP DATABASE IF EXISTS $ROUTER WITH (FORCE)" >/dev/null 2>&1 || true
    [[ -n ${BENCH_SMOKE:-} ]] || ap_stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

rq() { PGOPTIONS="-c client_min_messages=warning" ap_psql -d "$ROUTER" -Atq "$@"; }
bq -c "DROP DATABASE IF EXISTS $ROUTER WITH (FORCE)" -c "CREATE DATABASE $ROUTER"
rq -c "CREATE EXTENSION plproxy" -c "CREATE EXTENSION approvals_router" \
   -c "SELECT approvals_router.set_partitions(ARRAY['host=$AP_PGHOST port=$AP_PGPORT dbname=postgres'])" >/dev/null

echo "preparing $((2 * CLIENTS * ROUNDS * QUOTA)) pending claims for decide ..."
bq <<SQL
INSERT INTO approvals.claims (id, resource_type, resource_id, kind, snapshot_hash, status, requester)
SELECT v || '-' || c || '-' || n, 'bench-d', v || c || '-' || n, 'data_review', 'h', 'pending', 'req'
FROM unnest(ARRAY['r', 'd']) v, generate_series(0, $CLIENTS - 1) c, generate_series(1, $((ROUNDS * QUOTA))) n;
-- for the one-client latency: client 0 of prefixes lr and ld (up to 20000 decisions/s)
INSERT INTO approvals.claims (id, resource_type, resource_id, kind, snapshot_hash, status, requester)
SELECT v || '-0-' || n, 'bench-d', v || '0-' || n, 'data_review', 'h', 'pending', 'req'
FROM unnest(ARRAY['lr', 'ld']) v, generate_series(1, $((SECS * 20000 + 1000))) n;
VACUUM ANALYZE approvals.claims, approvals.events;
CHECKPOINT;
SQL

cat >"$SCRIPTS/both.sql" <<'SQL'
\set r random(1, 2000000000)
SELECT id AS cid FROM approvals.submit('bench', 'R' || :r::text, 'h' || :r::text, actor => 'req', amount => 10) \gset
SELECT status FROM approvals.decide(:cid, 'approved', actor => 'rev');
SQL
cat >"$SCRIPTS/decide.sql" <<'SQL'
\set n :n + 1
SELECT status FROM approvals.decide(:v || '-' || :client_id::text || '-' || :n::text, 'approved', actor => 'rev');
SQL

# Transactions/s of one pgbench run of SCRIPT on database DB (decide: claim prefix V).
run() {
    local r
    r=$(bench_pgbench "$1 on $2" "$2" "$CLIENTS" "$SECS" "$SCRIPTS/$1" -D n="$3" -D v="$4")
    echo "${r% *}"
}

echo "machine: $(bench_machine)"
echo "$CLIENTS clients, $ROUNDS rounds of $SECS s per variant, alternating; router and node on this machine"
declare -a r_both=() r_decide=()
printf '%-15s %6s %12s %12s %8s\n' variant round "router tps" "direct tps" ratio
for ((i = 0; i < ROUNDS; i++)); do
    for v in both decide; do
        r=$(run "$v.sql" "$ROUTER" $((i * QUOTA)) r)
        d=$(run "$v.sql" postgres $((i * QUOTA)) d)
        ratio=$(awk -v r="$r" -v d="$d" 'BEGIN { printf "%.2f", r / d }')
        label=$([[ $v == both ]] && echo submit+decide || echo decide)
        printf '%-15s %6d %12.0f %12.0f %8s\n' "$label" $((i + 1)) "$r" "$d" "$ratio"
        if [[ $v == both ]]; then r_both+=("$ratio"); else r_decide+=("$ratio"); fi
    done
done
# One client: what a call waits for, the round trip to the node included (average latency).
lr=$(bench_pgbench "decide.sql on $ROUTER" "$ROUTER" 1 "$SECS" "$SCRIPTS/decide.sql" -D n=0 -D v=lr)
lr=${lr#* }
ld=$(bench_pgbench "decide.sql on postgres" postgres 1 "$SECS" "$SCRIPTS/decide.sql" -D n=0 -D v=ld)
ld=${ld#* }
printf '%-15s %6s %12s %12s %8s\n' "decide, 1 client" "" "$lr ms" "$ld ms" \
    "+$(awk -v r="$lr" -v d="$ld" 'BEGIN { printf "%.3f", r - d }') ms"
# the router's decisions reached the node: every claim decided through it is approved there
bad=$(bq -c "SELECT count(*) FROM approvals.claims WHERE resource_type = 'bench-d' AND id LIKE 'r-%'
             AND status = 'approved' AND NOT EXISTS (SELECT FROM approvals.events e
             WHERE e.claim_id = claims.id AND e.action = 'approved')")
[[ $bad == 0 ]] || ap_die "$bad claims approved through the router without their audit event"
routed=$(bq -c "SELECT count(*) FROM approvals.claims WHERE id LIKE 'r-%' AND status = 'approved'")
[[ $routed -gt 0 ]] || ap_die "no claim was decided through the router"
printf '\nmedian ratio   submit+decide %s   decide %s   (router / direct on one node)\n' \
    "$(median "${r_both[@]}")" "$(median "${r_decide[@]}")"
