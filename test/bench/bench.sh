#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start/ap_stop take optional arguments
# Bulk-approval benchmark: ratios against baselines measured in the same run, never absolute
# goals. Submits 2 x N claims on the private bench cluster (port 54331) and times, over the same
# N pending claims (the worker over the other N):
#   floor       one set-based statement: update N claims + insert N audit events + N results
#   guaranteed  the floor plus, in plain SQL, what a batch guarantees on top: the claim list
#               stored first, a lock pass (FOR UPDATE SKIP LOCKED), results written per item
#   batch       create_batch + approvals.process_batch in one transaction (each also timed alone)
#   run_queued  create_batch, then CALL approvals.run_queued() (a commit per chunk)
#   worker      the background worker, create_batch to completed (the other N claims)
#   loop        approvals.decide() called once per claim from PL/pgSQL (N/10 claims, scaled)
# with the WAL each wrote per claim, and the plan-stability case:
#   stale       process_batch of a committed batch while the statistics of the item tables
#               still say they hold 10 items (as after purge_batches and a vacuum), against
#   fresh       the same right after ANALYZE
# Every variant but run_queued and the worker is rolled back, so each sees the same claims.
#
# floor, guaranteed and batch run ROUNDS times, alternating; their medians are reported.
#
#   bash test/bench/bench.sh [N [ROUNDS]]      (default 100000 3)
set -euo pipefail
# shellcheck source=test/bench/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
ap_need_root "$@"
cd "$AP_ROOT"
N=${1:-100000}
ROUNDS=${2:-3}
[[ $N =~ ^[0-9]+$ && $N -ge 100 ]] || ap_die "N must be a number >= 100"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || ap_die "ROUNDS must be a number >= 1"
bench_setup

echo "machine: $(bench_machine)"
# N claims for every variant but the worker (rolled back, or run_queued), N more for the worker:
# both are submitted first, so that every variant works on the same tables (per claim, work on
# a table of 2N claims costs more than on one of N)
echo "submitting 2 x $N claims ..."
for t in bench bench2; do
    bq -c "SELECT count(*) FROM generate_series(1, $N) g,
           LATERAL approvals.submit('$t', 'R-' || g, md5(g::text), actor => 'req', amount => g % 100)" >/dev/null
done
# save_claim_list TABLE TYPE: the client's claim list of resource type TYPE, one row of table
# TABLE (column ids), built before any clock starts
save_claim_list() {
    bq -c "DROP TABLE IF EXISTS $1" \
       -c "CREATE TABLE $1 AS SELECT array_agg(id ORDER BY id) AS ids FROM approvals.claims
           WHERE resource_type = '$2'"
}
save_claim_list ids bench
save_claim_list ids2 bench2
bq -c "DROP TABLE IF EXISTS floor_items, g_items" \
   -c "CREATE UNLOGGED TABLE floor_items (batch_id text, position int, claim_id text, decision text,
                                          error text, processed_at timestamptz);"
# statistics taken now say the item tables hold one batch of 10 items (as after purge_batches
# and a vacuum): every batch below runs on them unless said
bq -c "SELECT count(*) FROM generate_series(1, 10) g,
       LATERAL approvals.submit('warm', 'R-' || g, 'h', actor => 'req')" \
   -c "SELECT count(*) FROM approvals.process_batch((SELECT id FROM approvals.create_batch(
       ARRAY(SELECT id FROM approvals.claims WHERE resource_type = 'warm'), coordinator => 'coord',
       start => false)))" >/dev/null
# the events of the submissions are sealed now, as the running worker would have sealed them
# meanwhile: it does not seal 2N events during the first round
bq -c "SELECT approvals.seal_audit()" >/dev/null
bq -c "VACUUM ANALYZE" -c "CHECKPOINT"

# The rolled-back variants leave dead claim versions, events and index entries behind. Each
# timed variant starts after a vacuum of them (as autovacuum would between batches), so that
# none pays for cleaning up after the one before it (only claims and events: the statistics of
# the item tables stay stale).
vacuum_dead() { bq -c "VACUUM approvals.claims" -c "VACUUM approvals.events"; }

# "seconds wal_bytes split" of a SQL snippet run in one transaction that is rolled back, each
# right after that vacuum and a checkpoint (so that every variant pays the same full-page images
# in its WAL). split is the seconds until the snippet set psql's t1 (0 when it does not).
timed() {
    vacuum_dead
    bq -c "CHECKPOINT"
    bq <<SQL | tail -n 1
BEGIN;
SELECT extract(epoch FROM clock_timestamp()) AS t0, pg_current_wal_insert_lsn() AS w0 \gset
\set t1 :t0
$1;
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3) || ' ' ||
       pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'w0') || ' ' || round((:t1 - :t0)::numeric, 3);
ROLLBACK;
SQL
}

FLOOR_SQL="WITH u AS (UPDATE approvals.claims c SET status = 'approved', reviewer = 'coord',
                  batch_id = 'bat_floor', decided_at = now(), updated_at = now()
                  WHERE c.id = ANY ((SELECT ids FROM ids)::text[]) AND c.status = 'pending'
                  RETURNING c.id, c.tenant, c.snapshot_hash),
             e AS (INSERT INTO approvals.events (claim_id, batch_id, tenant, actor, action,
                  from_status, to_status, snapshot_hash)
                  SELECT id, 'bat_floor', tenant, 'coord', 'approved', 'pending', 'approved',
                  snapshot_hash FROM u RETURNING claim_id)
             INSERT INTO floor_items SELECT 'bat_floor', row_number() OVER (), claim_id, 'approved',
                  NULL, now() FROM e"
# The floor plus what a batch guarantees on top of it, in plain SQL: the claim list stored as
# items first (create_batch), the claims locked FOR UPDATE SKIP LOCKED before they are decided
# (a claim locked by another transaction is skipped, not waited for), and each item's result
# written into its item row.
bq -c "CREATE TABLE g_items (batch_id text, position int, claim_id text, decision text, error text,
                             processed_at timestamptz, PRIMARY KEY (batch_id, position))
       WITH (fillfactor = 50)"
GUARD_SQL="INSERT INTO g_items (batch_id, position, claim_id)
                  SELECT 'bat_floor', u.ord, u.id FROM unnest((SELECT ids FROM ids)) WITH ORDINALITY u(id, ord);
             SELECT count(*) FROM (SELECT 1 FROM approvals.claims c
                  WHERE c.id = ANY ((SELECT ids FROM ids)::text[]) AND c.status = 'pending'
                  ORDER BY c.id FOR UPDATE SKIP LOCKED) l;
             WITH u AS (UPDATE approvals.claims c SET status = 'approved', reviewer = 'coord',
                  batch_id = 'bat_floor', decided_at = now(), updated_at = now()
                  WHERE c.id = ANY ((SELECT ids FROM ids)::text[]) AND c.status = 'pending'
                  RETURNING c.id, c.tenant, c.snapshot_hash)
             INSERT INTO approvals.events (claim_id, batch_id, tenant, actor, action,
                  from_status, to_status, snapshot_hash)
                  SELECT id, 'bat_floor', tenant, 'coord', 'approved', 'pending', 'approved',
                  snapshot_hash FROM u;
             UPDATE g_items SET decision = 'approved', processed_at = now()"
# create_batch, then process_batch, in one transaction; t1 marks where create_batch returned
BATCH_SQL="SELECT id AS bid FROM approvals.create_batch((SELECT ids FROM ids), coordinator => 'coord',
                  start => false) \\gset
             SELECT extract(epoch FROM clock_timestamp()) AS t1 \\gset
             SELECT count(*) FROM approvals.process_batch(:'bid')"
# ROUNDS alternating rounds of the three (all rolled back); the medians are reported
declare -a t_floor=() w_floor=() t_guard=() w_guard=() t_batch=() w_batch=() t_create=()
for ((r = 1; r <= ROUNDS; r++)); do
    read -r t w _ < <(timed "$FLOOR_SQL"); t_floor+=("$t"); w_floor+=("$w")
    read -r t w _ < <(timed "$GUARD_SQL"); t_guard+=("$t"); w_guard+=("$w")
    read -r t w c < <(timed "$BATCH_SQL"); t_batch+=("$t"); w_batch+=("$w"); t_create+=("$c")
    echo "round $r: floor ${t_floor[-1]} s, guaranteed ${t_guard[-1]} s, batch ${t_batch[-1]} s"
done
floor=$(median "${t_floor[@]}"); floor_wal=$(median "${w_floor[@]}")
guard=$(median "${t_guard[@]}"); guard_wal=$(median "${w_guard[@]}")
batch=$(median "${t_batch[@]}"); batch_wal=$(median "${w_batch[@]}")
create=$(median "${t_create[@]}")
declare -a t_process=()
for ((r = 0; r < ROUNDS; r++)); do t_process+=("$(awk -v t="${t_batch[r]}" -v c="${t_create[r]}" 'BEGIN { print t - c }')"); done
process=$(median "${t_process[@]}")
loop_n=$((N / 10))
read -r loop _ < <(timed "DO \$\$ DECLARE i text; BEGIN
                FOREACH i IN ARRAY (SELECT ids[1:$loop_n] FROM ids) LOOP
                  PERFORM approvals.decide(i, 'approved', actor => 'coord');
                END LOOP; END \$\$")

# plan stability: one committed batch, processed (and rolled back) on stale, then fresh statistics
bid=$(bq -c "SELECT id FROM approvals.create_batch((SELECT ids FROM ids), coordinator => 'coord', start => false)")
read -r stale _ < <(timed "SELECT count(*) FROM approvals.process_batch('$bid')")
bq -c "ANALYZE approvals.batch_item_lists, approvals.batch_item_results"
read -r fresh _ < <(timed "SELECT count(*) FROM approvals.process_batch('$bid')")
bq -c "SELECT approvals.cancel_batch('$bid')" >/dev/null

# Before the two committed runs, every table of the extension is vacuumed and analyzed, as
# autovacuum would have done between batches, so that it does not work through what the
# variants above left (a million items, dead rows) while they run and count its WAL as theirs.
settle() { bq -c "VACUUM ANALYZE approvals.claims, approvals.events, approvals.batch_item_lists,
                  approvals.batch_item_results, approvals.batches"; }
settle
# run_queued commits per chunk: measure it for real (the worker off), then the worker on fresh claims.
bq -c "ALTER SYSTEM SET approvals.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
bq -c "SELECT approvals.create_batch((SELECT ids FROM ids), coordinator => 'coord')" >/dev/null
# (a CALL that commits cannot run inside BEGIN: timed on its own)
bq -c "CHECKPOINT"
read -r run_queued run_queued_wal < <(bq <<SQL | tail -n 1
SELECT extract(epoch FROM clock_timestamp()) AS t0, pg_current_wal_insert_lsn() AS w0 \gset
CALL approvals.run_queued();
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3) || ' ' ||
       pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'w0');
SQL
)
settle
# A running worker seals the audit log every naptime. The events run_queued committed while it
# was off (N approved) are sealed now, as it would have done meanwhile, so that its
# batch does not share the 2 cores with a sealing backlog that only this benchmark builds.
bq -c "SELECT approvals.seal_audit()" >/dev/null
bq -c "ALTER SYSTEM RESET approvals.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
bq -c "CHECKPOINT"
w0=$(bq -c "SELECT pg_current_wal_insert_lsn()")
bid=$(bq -c "SELECT id FROM approvals.create_batch((SELECT ids FROM ids2), coordinator => 'coord')")
# Waited for in short calls: one long wait_batch is one statement, whose snapshot would keep
# vacuum from pruning the rows the worker's chunks leave behind for the whole batch.
for ((i = 0; i < 360; i++)); do
    st=$(bq -c "SELECT status FROM approvals.wait_batch('$bid', '5 seconds')")
    [[ $st == completed || $st == failed || $st == cancelled ]] && break
done
read -r worker worker_wal < <(bq -c "
    SELECT round(extract(epoch FROM completed_at - queued_at)::numeric, 3) || ' ' ||
           pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$w0')
    FROM approvals.batches WHERE id = '$bid'")
bad=$(bq -c "SELECT count(*) FROM approvals.batches WHERE total_claims = $N AND status NOT IN ('completed', 'cancelled')")
[[ $bad == 0 ]] || ap_die "$bad benchmark batches did not complete"
# the worker's and run_queued's batches decided every claim, each once
bad=$(bq -c "SELECT count(*) FROM approvals.claims WHERE resource_type IN ('bench', 'bench2') AND status <> 'approved'")
[[ $bad == 0 ]] || ap_die "$bad claims left undecided by run_queued or the worker"
bad=$(bq -c "SELECT count(*) FROM (SELECT claim_id FROM approvals.events WHERE action = 'approved'
             GROUP BY claim_id HAVING count(*) > 1) d")
[[ $bad == 0 ]] || ap_die "$bad claims decided more than once"

awk -v n="$N" -v rounds="$ROUNDS" -v f="$floor" -v fw="$floor_wal" -v g="$guard" -v gw="$guard_wal" -v b="$batch" -v bw="$batch_wal" \
    -v cr="$create" -v pr="$process" \
    -v r="$run_queued" -v rw="$run_queued_wal" -v w="$worker" -v ww="$worker_wal" \
    -v l="$loop" -v ln="$loop_n" -v st="$stale" -v fr="$fresh" 'BEGIN {
    ls = l * n / ln
    printf "\n%d claims (floor, guaranteed, batch: medians of %d rounds)\n%-11s %10s %12s %10s %12s %8s\n", n, rounds, "variant", "seconds", "claims/s", "x floor", "WAL B/claim", "x floor"
    printf "%-11s %10.3f %12.0f %10.2f %12.0f %8.2f\n", "floor", f, n / f, 1, fw / n, 1
    printf "%-11s %10.3f %12.0f %10.2f %12.0f %8.2f   (the floor + item rows + a lock pass, plain SQL)\n", "guaranteed", g, n / g, g / f, gw / n, gw / fw
    printf "%-11s %10.3f %12.0f %10.2f %12.0f %8.2f   (%.2f x guaranteed)\n", "batch", b, n / b, b / f, bw / n, bw / fw, b / g
    printf "%-11s %10.3f %12.0f %10.2f %12s %8s   (of batch: totals the amounts, stores the claim lists)\n", "  create", cr, n / cr, cr / f, "", ""
    printf "%-11s %10.3f %12.0f %10.2f %12s %8s   (of batch: process_batch alone)\n", "  process", pr, n / pr, pr / f, "", ""
    printf "%-11s %10.3f %12.0f %10.2f %12.0f %8.2f   (create_batch not included)\n", "run_queued", r, n / r, r / f, rw / n, rw / fw
    printf "%-11s %10.3f %12.0f %10.2f %12.0f %8.2f   (create_batch to completed)\n", "worker", w, n / w, w / f, ww / n, ww / fw
    printf "%-11s %10.3f %12.0f %10.2f %12s %8s   (decide() per claim, %d claims, scaled)\n", "loop", ls, n / ls, ls / f, "", "", ln
    printf "\nplan stability: process_batch on stale statistics %.3f s, fresh %.3f s: %.2f x fresh\n", st, fr, st / fr
}'
