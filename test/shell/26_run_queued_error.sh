#!/usr/bin/env bash
# 26_run_queued_error: a CALL approvals.run_queued() whose chunk raises (here: a statement
# timeout) hands its batch back instead of leaving it 'processing' for the life of its session.
#   - the batch stays 'processing' with no owner, part-way through, while the session that
#     failed is still connected
#   - another run_queued resumes it from its last committed chunk and completes it; every claim
#     is decided exactly once
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
RUN=q$(date +%s)$$
CLAIMS=100
SESSION_A=
cleanup() {
    [[ -n $SESSION_A ]] && kill "$SESSION_A" 2>/dev/null
    sql -c "SELECT approvals.set_handler('rq_slow', NULL)" \
        -c "ALTER SYSTEM RESET approvals.worker_enabled" -c "ALTER SYSTEM RESET approvals.chunk_size" \
        -c "SELECT pg_reload_conf()" >/dev/null 2>&1
}
trap cleanup EXIT

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
PGOPTIONS='-c client_min_messages=warning' sql -c "CREATE EXTENSION IF NOT EXISTS approvals" >/dev/null
sql -c "ALTER SYSTEM SET approvals.worker_enabled = off" -c "ALTER SYSTEM SET approvals.chunk_size = 10" \
    -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
sql -c "SELECT count(*) FROM generate_series(1, $CLAIMS) g,
        LATERAL approvals.submit('rq_slow', '$RUN-' || g, 'h', actor => 'usr_req')" >/dev/null
# Then a handler that takes 50 ms per claim: the batch is 10 chunks of 0.5 s.
sql -c "CREATE OR REPLACE FUNCTION public.rq_slow(c approvals.claims, e approvals.events)
        RETURNS void LANGUAGE sql SET search_path = pg_catalog AS 'SELECT pg_sleep(0.05)'" \
    -c "SELECT approvals.set_handler('rq_slow', 'public.rq_slow(approvals.claims, approvals.events)')" \
    >/dev/null || { not_ok "handler set up"; exit 1; }
BATCH=$(sql -c "SELECT id FROM approvals.create_batch(ARRAY(SELECT id FROM approvals.claims
        WHERE resource_id LIKE '$RUN-%' ORDER BY id), coordinator => 'usr_coord')")
if [[ $BATCH == bat_* ]]; then ok "batch of $CLAIMS slow claims queued"; else not_ok "batch queued"; exit 1; fi

# Session A: run_queued under a 1.5 s statement timeout, then stay connected for a while.
A_OUT=$(mktemp)
timeout -k 5 40 "$AP_BIN/psql" -X -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres -d postgres -qAt \
    -c "SET statement_timeout = '1500ms'" -c "CALL approvals.run_queued()" \
    -c "RESET statement_timeout" -c "SELECT 'A still connected', pg_backend_pid()" -c "SELECT pg_sleep(15)" \
    >"$A_OUT" 2>&1 &
SESSION_A=$!
sleep 4
if grep -q "canceling statement due to statement timeout" "$A_OUT"; then
    ok "session A's run_queued was stopped by its statement timeout"
else
    not_ok "session A's run_queued was stopped by its statement timeout"; sed 's/^/#   /' "$A_OUT"
fi
A_PID=$(grep -o 'A still connected|[0-9]*' "$A_OUT" | cut -d'|' -f2)
if [[ -n $A_PID && $(sql -c "SELECT count(*) FROM pg_stat_activity WHERE pid = $A_PID") == 1 ]]; then
    ok "session A is still connected"
else
    not_ok "session A is still connected"
fi
read -r STATUS OWNER DONE <<<"$(sql -c "SELECT status || ' ' || coalesce(worker_pid::text, 'none') || ' '
                                     || processed_count FROM approvals.batches WHERE id = '$BATCH'")"
check "the batch was handed back: processing, no owner" "processing none" "$STATUS $OWNER"
if ((DONE >= 10 && DONE < CLAIMS)); then
    ok "it had committed some chunks ($DONE of $CLAIMS claims)"
else
    not_ok "it had committed some chunks ($DONE of $CLAIMS claims)"
fi

# Session B resumes it while A is still connected.
SQL_TIMEOUT=60 sql -c "CALL approvals.run_queued()" >/dev/null 2>&1
check "another run_queued resumes and completes it" "completed $CLAIMS 2" \
    "$(sql -c "SELECT status || ' ' || approved_count || ' ' || attempts FROM approvals.batches WHERE id = '$BATCH'")"
check "every claim decided exactly once" "$CLAIMS $CLAIMS" \
    "$(sql -c "SELECT count(*) || ' ' || count(DISTINCT claim_id) FROM approvals.events
               WHERE batch_id = '$BATCH' AND action = 'approved'")"
rm -f "$A_OUT"
echo "# 26_run_queued_error: $((SECONDS - T0)) s"
