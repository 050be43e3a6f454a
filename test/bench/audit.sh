#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start/ap_stop take optional arguments
# Audit and statistics benchmark: sealing and verifying the audit log, and the two statistics
# functions, on N claims (half of them approved by a batch, so about 1.5 N events), each
# against plain SQL doing the same work in the same run:
#   seal_audit     seal every event (the worker is off meanwhile)
#   verify_audit   recompute every seal
#   baseline       one plain SQL statement that hashes the same canonical lines (sha256 over
#                  string_agg of every event's line): the least work a verification can do
#   claim_stats    against the same GROUP BY over approvals.claims in plain SQL
#   approver_stats against the same query over claims, events and inbox entries in plain SQL
#                  (both sides read every column of every row they return, the sum of the rows'
#                  text lengths: a count(*) over the plain query let the planner drop its
#                  percentiles, which made the functions look 2.5 times slower than they are)
# and checks that the seals verify and cover every event once.
#
#   bash test/bench/audit.sh [N]      (default 1000000)
set -euo pipefail
# shellcheck source=test/bench/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
ap_need_root "$@"
cd "$AP_ROOT"
N=${1:-1000000}
[[ $N =~ ^[0-9]+$ && $N -ge 100 ]] || ap_die "N must be a number >= 100"
bench_setup
# no seal by the worker while the data is made and measured
bq -c "ALTER SYSTEM SET approvals.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
# (the test suite's cluster, under BENCH_SMOKE, is left running)
trap 'bq -c "ALTER SYSTEM RESET approvals.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
      [[ -n ${BENCH_SMOKE:-} ]] || ap_stop >/dev/null 2>&1 || true' EXIT

echo "machine: $(bench_machine)"
echo "submitting $N claims, approving half of them ..."
for ((lo = 1; lo <= N; lo += 100000)); do
    hi=$((lo + 99999 < N ? lo + 99999 : N))
    bq -c "SELECT count(*) FROM generate_series($lo, $hi) g,
           LATERAL approvals.submit('aud', 'R-' || g, md5(g::text), actor => 'req', amount => g % 100,
               tenant => 't' || g % 3, note => CASE WHEN g % 7 = 0 THEN E'tab\\there' END,
               approvers => ARRAY['apr-' || g % 100])" >/dev/null
done
bq -c "SELECT count(*) FROM approvals.process_batch((SELECT id FROM approvals.create_batch(
           ARRAY(SELECT id FROM approvals.claims WHERE resource_type = 'aud' AND tenant = 't0' ORDER BY id),
           coordinator => 'coord', tenant => 't0', start => false)))" >/dev/null
bq -c "VACUUM ANALYZE approvals.events" -c "VACUUM ANALYZE approvals.claims" -c "CHECKPOINT"
events=$(bq -c "SELECT count(*) FROM approvals.events")
echo "events: $events"

# seconds of one statement
secs() {
    bq <<SQL | tail -n 1
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
$1;
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3);
SQL
}

seal=$(secs "SELECT approvals.seal_audit()")
verify=$(secs "SELECT count(*) FROM approvals.verify_audit() WHERE ok")
base=$(secs "SELECT encode(sha256(convert_to(string_agg(concat_ws(E'\\t', id::text, claim_id,
           coalesce(batch_id, E'\\\\N'), coalesce(tenant, E'\\\\N'), actor, action,
           coalesce(from_status, E'\\\\N'), coalesce(to_status, E'\\\\N'),
           coalesce(replace(replace(comment, E'\\\\', E'\\\\\\\\'), E'\\t', E'\\\\t'), E'\\\\N'),
           coalesce(snapshot_hash, E'\\\\N'),
           to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
           coalesce(on_behalf_of, E'\\\\N')) || E'\\n', '' ORDER BY id), 'UTF8')), 'hex')
       FROM approvals.events")
cs=$(secs "SELECT sum(length(s::text)) FROM approvals.claim_stats() s")
cs_plain=$(secs "SELECT sum(length(s::text)) FROM (SELECT c.resource_type, count(*),
           count(*) FILTER (WHERE c.status = 'approved'), count(*) FILTER (WHERE c.status = 'rejected'),
           count(*) FILTER (WHERE c.status = 'cancelled'), count(*) FILTER (WHERE c.status = 'expired'),
           count(*) FILTER (WHERE c.status = 'pending'),
           count(*) FILTER (WHERE c.status = 'pending' AND c.expires_at <= now()),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY c.decided_at - c.created_at)
             FILTER (WHERE c.status IN ('approved', 'rejected')),
           percentile_cont(0.9) WITHIN GROUP (ORDER BY c.decided_at - c.created_at)
             FILTER (WHERE c.status IN ('approved', 'rejected'))
       FROM approvals.claims c WHERE c.created_at >= now() - interval '30 days'
       GROUP BY c.resource_type) s")
as=$(secs "SELECT sum(length(s::text)) FROM approvals.approver_stats() s")
as_plain=$(secs "WITH c AS (SELECT c.id FROM approvals.claims c
                             WHERE c.created_at >= now() - interval '30 days'),
       e AS (SELECT e.actor, e.action,
               e.at - lag(e.at) OVER (PARTITION BY e.claim_id ORDER BY e.id) AS response
             FROM c JOIN approvals.events e ON e.claim_id = c.id),
       d AS (SELECT e.actor, count(*) AS decisions,
               count(*) FILTER (WHERE e.action = 'approved') AS approved,
               count(*) FILTER (WHERE e.action = 'rejected') AS rejected,
               count(*) FILTER (WHERE e.action = 'abstained') AS abstained,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY e.response) AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY e.response) AS p90
             FROM e WHERE e.action IN ('approved', 'rejected', 'abstained') GROUP BY e.actor),
       a AS (SELECT i.actor, count(*) AS pending,
               count(*) FILTER (WHERE i.expires_key <= now()) AS overdue
             FROM c JOIN approvals.inbox_entries i ON i.claim_id = c.id GROUP BY i.actor)
       SELECT sum(length(s::text)) FROM (SELECT coalesce(d.actor, a.actor), coalesce(d.decisions, 0),
         coalesce(d.approved, 0), coalesce(d.rejected, 0), coalesce(d.abstained, 0), d.p50, d.p90,
         coalesce(a.pending, 0), coalesce(a.overdue, 0)
         FROM d FULL JOIN a ON a.actor = d.actor ORDER BY 1) s")

bad=$(bq -c "SELECT count(*) FROM approvals.verify_audit() WHERE NOT ok")
[[ $bad == 0 ]] || ap_die "$bad seals do not verify"
bad=$(bq -c "SELECT count(*) FROM approvals.events e
             WHERE (SELECT count(*) FROM approvals.audit_seals s
                    WHERE e.id BETWEEN s.first_event AND s.last_event) <> 1")
[[ $bad == 0 ]] || ap_die "$bad events are not in exactly one seal"
seals=$(bq -c "SELECT count(*) FROM approvals.audit_seals")

awk -v n="$N" -v ev="$events" -v se="$seals" -v s="$seal" -v v="$verify" -v b="$base" \
    -v cs="$cs" -v csp="$cs_plain" -v as="$as" -v asp="$as_plain" 'BEGIN {
    printf "\n%d claims, %d events, %d seals\n", n, ev, se
    printf "%-34s %9s %12s %9s\n", "", "seconds", "events/s", "x plain"
    printf "%-34s %9.3f %12.0f %9s\n", "seal_audit (every event)", s, ev / s, ""
    printf "%-34s %9.3f %12.0f %9.2f   (plain: one sha256 over every line, %.3f s)\n", "verify_audit (every seal)", v, ev / v, v / b, b
    printf "%-34s %9.3f %12s %9.2f   (the same in plain SQL: %.3f s)\n", "claim_stats (30 days)", cs, "", cs / csp, csp
    printf "%-34s %9.3f %12s %9.2f   (the same in plain SQL: %.3f s)\n", "approver_stats (30 days)", as, "", as / asp, asp
}'
