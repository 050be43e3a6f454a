#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start/ap_stop take optional arguments
# Bulk-approval benchmark: ratios against baselines measured in the same run, never absolute
# goals. Starts its own private cluster (port 54331), submits N claims, and times, each over
# the same N pending claims:
#   floor      one set-based statement: update N claims + insert N audit events + N results
#   batch      approvals.process_batch (the C chunk processor, inside one transaction)
#   run_queued CALL approvals.run_queued() (a commit per chunk)
#   worker     the background worker (create_batch + wait_batch)
#   loop       approvals.decide() called once per claim from PL/pgSQL (on N/10 claims, scaled)
# Every variant but the worker is rolled back, so each sees the same pending claims.
#
#   bash test/bench/bench.sh [N]      (default 100000)
set -euo pipefail
# shellcheck source=test/lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
ap_need_root "$@"
cd "$AP_ROOT"
N=${1:-100000}
[[ $N =~ ^[0-9]+$ && $N -ge 1000 ]] || ap_die "N must be a number >= 1000"

ap_install_deps || ap_die "could not install the required packages"
ap_use_cluster bench 54331
ap_lock
export AP_FSYNC=on
ap_prepare_dirs
ap_build "$AP_CLUSTER/build.log" || { tail -n 40 "$AP_CLUSTER/build.log"; ap_die "build failed"; }
ap_start || ap_die "the bench cluster did not start"
trap 'ap_stop >/dev/null 2>&1 || true' EXIT

# The worker runs in approvals.database (postgres), so the benchmark uses that database of
# its private cluster, with a fresh extension each run.
q() { PGOPTIONS="-c client_min_messages=warning" ap_psql -d postgres -Atq "$@"; }
q -c "DROP EXTENSION IF EXISTS approvals CASCADE" -c "DROP TABLE IF EXISTS ids, floor_items" \
  -c "CREATE EXTENSION approvals"
echo "submitting $N claims ..."
q -c "SELECT count(*) FROM generate_series(1, $N) g,
      LATERAL approvals.submit('bench', 'R-' || g, md5(g::text), actor => 'req', amount => g % 100)" >/dev/null
q -c "CREATE TABLE ids AS SELECT array_agg(id ORDER BY id) AS ids FROM approvals.claims WHERE resource_type = 'bench';
      CREATE UNLOGGED TABLE floor_items (batch_id text, position int, claim_id text, decision text,
                                         error text, processed_at timestamptz);"
q -c "VACUUM ANALYZE"

# Seconds taken by a SQL snippet run in one transaction that is rolled back.
timed() {
    q <<SQL | tail -n 1
BEGIN;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
$1;
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3);
ROLLBACK;
SQL
}

floor=$(timed "WITH u AS (UPDATE approvals.claims c SET status = 'approved', reviewer = 'coord',
                  batch_id = 'bat_floor', decided_at = now(), updated_at = now()
                  WHERE c.id = ANY ((SELECT ids FROM ids)::text[]) AND c.status = 'pending'
                  RETURNING c.id, c.tenant, c.snapshot_hash),
             e AS (INSERT INTO approvals.events (claim_id, batch_id, tenant, actor, action,
                  from_status, to_status, snapshot_hash)
                  SELECT id, 'bat_floor', tenant, 'coord', 'approved', 'pending', 'approved',
                  snapshot_hash FROM u RETURNING claim_id)
             INSERT INTO floor_items SELECT 'bat_floor', row_number() OVER (), claim_id, 'approved',
                  NULL, now() FROM e")
batch=$(timed "SELECT count(*) FROM approvals.process_batch((SELECT id FROM approvals.create_batch(
                  (SELECT ids FROM ids), coordinator => 'coord', start => false)))")
loop_n=$((N / 10))
loop=$(timed "DO \$\$ DECLARE i text; BEGIN
                FOREACH i IN ARRAY (SELECT ids[1:$loop_n] FROM ids) LOOP
                  PERFORM approvals.decide(i, 'approved', actor => 'coord');
                END LOOP; END \$\$")
# run_queued commits per chunk: measure it for real, then the worker on fresh claims.
q -c "ALTER SYSTEM SET approvals.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
q -c "SELECT approvals.create_batch((SELECT ids FROM ids), coordinator => 'coord')" >/dev/null
run_queued=$(q <<SQL | tail -n 1
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
CALL approvals.run_queued();
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3);
SQL
)
q -c "SELECT count(*) FROM generate_series(1, $N) g,
      LATERAL approvals.submit('bench2', 'R-' || g, md5(g::text), actor => 'req')" >/dev/null
q -c "ALTER SYSTEM RESET approvals.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
worker=$(q <<SQL | tail -n 1
SELECT id AS bid FROM approvals.create_batch(ARRAY(SELECT id FROM approvals.claims
    WHERE resource_type = 'bench2' ORDER BY id), coordinator => 'coord') \gset
SELECT extract(epoch FROM completed_at - queued_at) FROM approvals.wait_batch(:'bid', '5 minutes');
SQL
)
worker=$(printf '%.3f' "$worker")
q -c "SELECT status FROM approvals.batches WHERE total_claims = $N AND status <> 'completed'" | grep . \
    && ap_die "a benchmark batch did not complete"

awk -v n="$N" -v f="$floor" -v b="$batch" -v r="$run_queued" -v w="$worker" -v l="$loop" -v ln="$loop_n" 'BEGIN {
    ls = l * n / ln
    printf "\n%-11s %10s %12s %10s\n", "variant", "seconds", "claims/s", "x floor"
    printf "%-11s %10.3f %12.0f %10.2f\n", "floor", f, n / f, 1
    printf "%-11s %10.3f %12.0f %10.2f\n", "batch", b, n / b, b / f
    printf "%-11s %10.3f %12.0f %10.2f\n", "run_queued", r, n / r, r / f
    printf "%-11s %10.3f %12.0f %10.2f\n", "worker", w, n / w, w / f
    printf "%-11s %10.3f %12.0f %10.2f   (decide() per claim, %d claims, scaled)\n", "loop", ls, n / ls, ls / f, ln
}'
