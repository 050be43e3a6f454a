#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start/ap_stop take optional arguments
# Inbox benchmark: how long a page of approvals.inbox takes on a large table, against plain SQL
# over the same rows in the same run. Submits N pending claims (through approvals.submit), each
# waiting for two of A approvers (one step, either may approve), with mixed priorities and
# deadlines, and one delegate who stands in for five approvers. Then, averaged over CALLS
# calls for approvers taken in turn:
#   first page      approvals.inbox(actor, 50)
#   next page       approvals.inbox(actor, 50, after => the first page's last id)
#   delegate        approvals.inbox of the delegate (its own claims and five delegators')
#   floor           plain SQL: the same page read straight from the inbox's index table
#   naive           plain SQL without that table: the pending claims that name the actor,
#                   sorted (what an application without an inbox index would run; a few calls)
# and checks that every first page equals the floor's.
#
#   bash test/bench/inbox.sh [N [A [CALLS]]]      (default 1000000 1000 1000)
set -euo pipefail
# shellcheck source=test/bench/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh"
ap_need_root "$@"
cd "$AP_ROOT"
N=${1:-1000000}
A=${2:-1000}
CALLS=${3:-1000}
[[ $N =~ ^[0-9]+$ && $N -ge 100 ]] || ap_die "N must be a number >= 100"
[[ $A =~ ^[0-9]+$ && $A -ge 10 ]] || ap_die "A must be a number >= 10"
[[ $CALLS =~ ^[0-9]+$ && $CALLS -ge 1 ]] || ap_die "CALLS must be a number >= 1"
bench_setup

echo "machine: $(bench_machine)"
echo "submitting $N claims over $A approvers ..."
t0=$(date +%s)
for ((lo = 1; lo <= N; lo += 100000)); do
    hi=$((lo + 99999 < N ? lo + 99999 : N))
    bq -c "SELECT count(*) FROM generate_series($lo, $hi) g,
           LATERAL approvals.submit('ibx', 'R-' || g, 'h', actor => 'req',
               priority => (ARRAY['low', 'normal', 'normal', 'high', 'urgent'])[g % 5 + 1],
               expires_at => CASE WHEN g % 3 = 0 THEN now() + (g % 97 + 1) * interval '1 hour' END,
               steps => jsonb_build_array(jsonb_build_object('name', 's', 'required', 1,
                   'approvers', jsonb_build_array('apr-' || g % $A, 'apr-' || (g * 7 + 3) % $A))))" \
        >/dev/null
done
echo "submitted in $(($(date +%s) - t0)) s"
bq -c "SELECT approvals.delegate('deleg', delegator => 'apr-' || d) FROM generate_series(1, 5) d" >/dev/null
bq -c "VACUUM ANALYZE approvals.claims" -c "VACUUM ANALYZE approvals.inbox_entries"
echo "inbox entries: $(bq -c "SELECT count(*) FROM approvals.inbox_entries")"

# ms per call of a page query over CALLS approvers taken in turn ($1: SQL of one page for
# actor a (a text variable), returning rows). Runs in one DO block, timed around each call.
per_call() {
    local calls=$1 page_sql=$2
    bq <<SQL | tail -n 1
DO \$\$
DECLARE
    a text; t0 timestamptz; total interval := '0'; n bigint;
BEGIN
    FOR i IN 1..$calls LOOP
        a := 'apr-' || (i * 37) % $A;
        t0 := clock_timestamp();
        SELECT count(*) INTO n FROM ($page_sql) p;
        total := total + (clock_timestamp() - t0);
    END LOOP;
    RAISE WARNING 'RESULT %', round((extract(epoch FROM total) * 1000 / $calls)::numeric, 3);
END \$\$;
SQL
}
# the WARNING line goes to stderr: capture it
ms() { per_call "$1" "$2" 2>&1 | sed -n 's/.*RESULT //p'; }

FIRST="SELECT * FROM approvals.inbox(actor => a, page_limit => 50)"
NEXT="SELECT * FROM approvals.inbox(actor => a, page_limit => 50,
          after => (SELECT max(id) FILTER (WHERE rn = 50) FROM (SELECT id, row_number() OVER () rn
                    FROM approvals.inbox(actor => a, page_limit => 50)) f))"
DELEG="SELECT * FROM approvals.inbox(actor => 'deleg', page_limit => 50)"
FLOOR="SELECT c.* FROM (SELECT claim_id, rank, expires_key, created_at FROM approvals.inbox_entries
          WHERE actor = a ORDER BY rank, expires_key, created_at, claim_id LIMIT 50) e
       JOIN approvals.claims c ON c.id = e.claim_id
       ORDER BY e.rank, e.expires_key, e.created_at, e.claim_id"
NAIVE="SELECT * FROM approvals.claims WHERE status = 'pending' AND a = ANY (named_approvers)
       ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END,
                expires_at NULLS LAST, created_at, id LIMIT 50"

# correctness: the first page is the floor's page, row for row, for a sample of approvers
bad=$(bq -c "SELECT count(*) FROM generate_series(0, least($A, 50) - 1) i
             WHERE ARRAY(SELECT id FROM approvals.inbox(actor => 'apr-' || i, page_limit => 50))
                IS DISTINCT FROM
                   ARRAY(SELECT e.claim_id FROM approvals.inbox_entries e WHERE e.actor = 'apr-' || i
                         ORDER BY e.rank, e.expires_key, e.created_at, e.claim_id LIMIT 50)")
[[ $bad == 0 ]] || ap_die "$bad inbox pages differ from the plain SQL page"
# the next page follows the first one without a gap or a repeat
bad=$(bq -c "SELECT count(*) FROM generate_series(0, least($A, 20) - 1) i
             WHERE ARRAY(SELECT id FROM approvals.inbox(actor => 'apr-' || i, page_limit => 20))
                   || ARRAY(SELECT id FROM approvals.inbox(actor => 'apr-' || i, page_limit => 20,
                        after => (SELECT id FROM approvals.inbox(actor => 'apr-' || i, page_limit => 20)
                                  OFFSET 19 LIMIT 1)))
                IS DISTINCT FROM ARRAY(SELECT id FROM approvals.inbox(actor => 'apr-' || i, page_limit => 40))")
[[ $bad == 0 ]] || ap_die "$bad inbox second pages do not continue the first"

first=$(ms "$CALLS" "$FIRST")
floor=$(ms "$CALLS" "$FLOOR")
next2=$(ms "$CALLS" "$NEXT")      # two inbox calls: the first page (for its last id), the next
deleg=$(ms "$CALLS" "$DELEG")
naive_calls=$(( CALLS < 10 ? CALLS : 10 ))
naive=$(ms "$naive_calls" "$NAIVE")

awk -v n="$N" -v a="$A" -v c="$CALLS" -v f="$first" -v fl="$floor" -v nx="$next2" -v d="$deleg" \
    -v nv="$naive" -v nc="$naive_calls" 'BEGIN {
    printf "\n%d pending claims, %d approvers (each claim in two inboxes), %d calls each\n", n, a, c
    printf "%-28s %10s %10s\n", "page of 50", "ms/page", "x floor"
    printf "%-28s %10.3f %10.2f\n", "floor (plain SQL, index)", fl, 1
    printf "%-28s %10.3f %10.2f\n", "inbox first page", f, f / fl
    printf "%-28s %10.3f %10.2f   (after => the first page'\''s last id)\n", "inbox next page", nx - f, (nx - f) / fl
    printf "%-28s %10.3f %10.2f   (own claims and 5 delegators'\'')\n", "inbox of a delegate", d, d / fl
    printf "%-28s %10.3f %10.2f   (plain SQL over every pending claim, %d calls)\n", "naive scan", nv, nv / fl, nc
}'
