#!/usr/bin/env bash
# 12_launcher_backoff: the launcher backs off when the batch worker it started found nothing.
#   - a queued batch whose row an open transaction holds (FOR UPDATE) cannot be taken: every
#     batch worker the scheduler starts for it exits at once. Over 10 s (counted from the
#     postmaster's DEBUG1 line for each start) at most 8 are started (the scheduler waits 1 s,
#     2 s, 4 s, ... up to approvals.naptime between them; it used to start one every few
#     hundred milliseconds, thousands over a long transaction)
#   - once the transaction ends, the batch completes without further help
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
RUN=lb$(date +%s)$$
LOCKER=
cleanup() {
    [[ -n $LOCKER ]] && kill "$LOCKER" 2>/dev/null
    sql -c "ALTER SYSTEM RESET approvals.worker_enabled" -c "ALTER SYSTEM RESET log_min_messages" \
        -c "SELECT pg_reload_conf()" >/dev/null 2>&1
}
trap cleanup EXIT

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
PGOPTIONS='-c client_min_messages=warning' sql -c "CREATE EXTENSION IF NOT EXISTS approvals" >/dev/null

# Queue a batch while the worker is off, so that nobody takes it before we lock its row.
sql -c "ALTER SYSTEM SET approvals.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
sql -c "SELECT approvals.submit('lb', '$RUN', 'h', actor => 'usr_req', id => '${RUN}_c')" >/dev/null
BATCH=$(sql -c "SELECT id FROM approvals.create_batch(ARRAY['${RUN}_c'], coordinator => 'usr_coord')")
if [[ $BATCH == bat_* ]]; then ok "batch queued"; else not_ok "batch queued"; exit 1; fi

timeout -k 5 40 "$AP_BIN/psql" -X -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres -d postgres -qAt \
    -c "BEGIN" -c "SELECT 1 FROM approvals.batches WHERE id = '$BATCH' FOR UPDATE" \
    -c "SELECT pg_sleep(13)" -c "ROLLBACK" >/dev/null 2>&1 &
LOCKER=$!
wait_true 10 "SELECT count(*) = 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
              WHERE a.query LIKE '%pg_sleep(13)%' AND l.locktype = 'transactionid'" \
    || { not_ok "an open transaction holds the batch row"; exit 1; }
sql -c "ALTER SYSTEM SET approvals.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null

# Count the batch workers the postmaster starts in 10 s (its DEBUG1 line for each).
LOG_START=$(wc -l <"$AP_LOG")
sql -c "ALTER SYSTEM SET log_min_messages = debug1" -c "SELECT pg_reload_conf()" >/dev/null
sleep 10
sql -c "ALTER SYSTEM RESET log_min_messages" -c "SELECT pg_reload_conf()" >/dev/null
STARTED=$(tail -n "+$((LOG_START + 1))" "$AP_LOG" \
          | grep -c 'starting background worker process "approvals batch worker"')
echo "# batch workers started in 10 s while the batch was locked: ${STARTED:-?}"
if [[ -n $STARTED ]] && ((STARTED >= 1 && STARTED <= 8)); then
    ok "the launcher backs off: $STARTED batch workers in 10 s (at least 1, at most 8)"
else
    not_ok "the launcher backs off: ${STARTED:-?} batch workers in 10 s (at least 1, at most 8)"
fi
check "the batch is still queued while its row is locked" "queued" \
    "$(sql -c "SELECT status FROM approvals.batches WHERE id = '$BATCH'")"

wait "$LOCKER"
LOCKER=
if wait_true 30 "SELECT status = 'completed' FROM approvals.batches WHERE id = '$BATCH'"; then
    ok "after the transaction ends the batch completes"
else
    not_ok "after the transaction ends the batch completes (status $(sql -c "SELECT status FROM approvals.batches WHERE id = '$BATCH'"))"
fi
echo "# 12_launcher_backoff: $((SECONDS - T0)) s"
