#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start/ap_stop take optional arguments
# Single-claim benchmark: pgbench with CLIENTS clients, the extension against the plain SQL an
# application would otherwise write, on tables of the same shape (plain.claims and plain.events
# are CREATE TABLE ... (LIKE approvals.* INCLUDING ALL)), in alternating rounds; prints each
# round's transactions/s and the median ratio (extension / plain; above 1 is faster).
#   submit+decide  approvals.submit then approvals.decide (two transactions) against: supersede
#                  the resource's pending claim, insert the claim and its audit row; lock the
#                  claim, update it, insert its audit row (two transactions)
#   decide         approvals.decide alone on a pending claim against its plain second half
# Notifications are on (the default) and the worker runs, as in production.
#
#   bash test/bench/single.sh [SECONDS_PER_ROUND [ROUNDS [CLIENTS]]]   (default 15 3 8)
set -euo pipefail
# shellcheck source=test/bench/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
ap_need_root "$@"
cd "$AP_ROOT"
SECS=${1:-15}
ROUNDS=${2:-3}
CLIENTS=${3:-8}
[[ $SECS =~ ^[0-9]+$ && $ROUNDS =~ ^[0-9]+$ && $CLIENTS =~ ^[0-9]+$ ]] \
    || ap_die "usage: single.sh [SECONDS_PER_ROUND [ROUNDS [CLIENTS]]]"
# pending claims made ready for "decide" per client and round: enough for 30000 decisions/s
# in all (a client that ran out would abort the run)
QUOTA=$((SECS * 30000 / CLIENTS + 1000))
bench_setup

SCRIPTS=$(mktemp -d)
chmod 755 "$SCRIPTS"
trap 'rm -rf "$SCRIPTS"; [[ -n ${BENCH_SMOKE:-} ]] || ap_stop >/dev/null 2>&1 || true' EXIT

echo "preparing $((CLIENTS * ROUNDS * QUOTA)) pending claims for each decide variant ..."
bq <<SQL
CREATE SCHEMA plain;
CREATE TABLE plain.claims (LIKE approvals.claims INCLUDING ALL);
CREATE TABLE plain.events (LIKE approvals.events INCLUDING ALL);
-- the pending claims that "decide" decides: d-<client>-<n>, the same in both
INSERT INTO approvals.claims (id, resource_type, resource_id, kind, snapshot_hash, status, requester)
SELECT 'd-' || c || '-' || n, 'bench-d', c || '-' || n, 'data_review', 'h', 'pending', 'req'
FROM generate_series(0, $CLIENTS - 1) c, generate_series(1, $((ROUNDS * QUOTA))) n;
INSERT INTO plain.claims SELECT * FROM approvals.claims WHERE resource_type = 'bench-d';
VACUUM ANALYZE approvals.claims, plain.claims, approvals.events, plain.events;
CHECKPOINT;
SQL

cat >"$SCRIPTS/ext_both.sql" <<'SQL'
\set r random(1, 2000000000)
SELECT id AS cid FROM approvals.submit('bench', 'R' || :r::text, 'h' || :r::text, actor => 'req', amount => 10) \gset
SELECT status FROM approvals.decide(:cid, 'approved', actor => 'rev');
SQL
cat >"$SCRIPTS/plain_both.sql" <<'SQL'
\set r random(1, 2000000000)
BEGIN;
WITH s AS (UPDATE plain.claims SET status = 'cancelled', updated_at = now()
           WHERE tenant IS NULL AND resource_type = 'bench' AND resource_id = 'R' || :r::text
             AND status = 'pending' RETURNING id, snapshot_hash)
INSERT INTO plain.events (claim_id, actor, action, from_status, to_status, comment, snapshot_hash)
SELECT id, 'req', 'superseded', 'pending', 'cancelled', 'superseded', snapshot_hash FROM s;
INSERT INTO plain.claims (id, resource_type, resource_id, kind, snapshot_hash, status, requester, amount)
VALUES ('clm_' || md5(random()::text), 'bench', 'R' || :r::text, 'data_review', 'h' || :r::text, 'pending', 'req', 10)
RETURNING id AS cid \gset
INSERT INTO plain.events (claim_id, actor, action, to_status, snapshot_hash)
VALUES (:cid, 'req', 'submitted', 'pending', 'h' || :r::text);
END;
BEGIN;
SELECT status, requester, approved_by FROM plain.claims WHERE id = :cid FOR UPDATE;
UPDATE plain.claims SET status = 'approved', reviewer = 'rev', approval_count = approval_count + 1,
       approved_by = approved_by || 'rev'::text, decided_at = now(), updated_at = now()
WHERE id = :cid;
INSERT INTO plain.events (claim_id, actor, action, from_status, to_status, snapshot_hash)
VALUES (:cid, 'rev', 'approved', 'pending', 'approved', 'h' || :r::text);
END;
SQL
cat >"$SCRIPTS/ext_decide.sql" <<'SQL'
\set n :n + 1
SELECT status FROM approvals.decide('d-' || :client_id::text || '-' || :n::text, 'approved', actor => 'rev');
SQL
cat >"$SCRIPTS/plain_decide.sql" <<'SQL'
\set n :n + 1
BEGIN;
SELECT status, requester, approved_by FROM plain.claims
WHERE id = 'd-' || :client_id::text || '-' || :n::text FOR UPDATE;
UPDATE plain.claims SET status = 'approved', reviewer = 'rev', approval_count = approval_count + 1,
       approved_by = approved_by || 'rev'::text, decided_at = now(), updated_at = now()
WHERE id = 'd-' || :client_id::text || '-' || :n::text;
INSERT INTO plain.events (claim_id, actor, action, from_status, to_status, snapshot_hash)
VALUES ('d-' || :client_id::text || '-' || :n::text, 'rev', 'approved', 'pending', 'approved', 'h');
END;
SQL

# Transactions/s of one pgbench run (a script counts as one pgbench transaction).
run() {
    local r
    r=$(bench_pgbench "$1" postgres "$CLIENTS" "$SECS" "$SCRIPTS/$1" -D n="$2")
    echo "${r% *}"
}

echo "machine: $(bench_machine)"
echo "$CLIENTS clients, $ROUNDS rounds of $SECS s per variant, alternating"
declare -a r_both=() r_decide=()
printf '%-15s %6s %12s %12s %8s\n' variant round "ext tps" "plain tps" ratio
for ((i = 0; i < ROUNDS; i++)); do
    for v in both decide; do
        e=$(run "ext_$v.sql" $((i * QUOTA)))
        p=$(run "plain_$v.sql" $((i * QUOTA)))
        ratio=$(awk -v e="$e" -v p="$p" 'BEGIN { printf "%.2f", e / p }')
        label=$([[ $v == both ]] && echo submit+decide || echo decide)
        printf '%-15s %6d %12.0f %12.0f %8s\n' "$label" $((i + 1)) "$e" "$p" "$ratio"
        if [[ $v == both ]]; then r_both+=("$ratio"); else r_decide+=("$ratio"); fi
    done
done
# every decision of the extension left its audit row and its claim decided
bad=$(bq -c "SELECT count(*) FROM approvals.claims c WHERE c.status = 'approved'
             AND NOT EXISTS (SELECT FROM approvals.events e WHERE e.claim_id = c.id AND e.action = 'approved')")
[[ $bad == 0 ]] || ap_die "$bad approved claims without their audit event"
printf '\nmedian ratio   submit+decide %s   decide %s   (extension / plain SQL; target >= 0.90)\n' \
    "$(median "${r_both[@]}")" "$(median "${r_decide[@]}")"
