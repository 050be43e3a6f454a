#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start takes optional arguments
# 10_worker_basic: the background worker in database postgres.
#   - a queued batch is processed without run_queued; batch_progress shows 100 percent
#   - wake-up at commit: with approvals.naptime = 60 a new batch starts within a second
#     (started_at - queued_at < 1 s), so polling cannot explain it
#   - NOTIFY approvals carries the batch id and status completed
#   - the launcher is visible in pg_stat_activity, and is restarted after
#     pg_terminate_backend (bgw_restart_time)
#   - approvals.worker_enabled = off leaves a queued batch queued; on again, it completes
#
# Run by test/run.sh against its scratch cluster (AP_ROOT, AP_PGHOST, AP_PGPORT, AP_PGDATA,
# AP_BIN exported). Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

reload() { sql -c "SELECT pg_reload_conf()" >/dev/null; }
T0=$SECONDS
RUN=w$(date +%s)$$
LISTENER=

cleanup() {
    [[ -n $LISTENER ]] && kill "$LISTENER" 2>/dev/null
    sql -c "ALTER SYSTEM RESET approvals.naptime" -c "ALTER SYSTEM RESET approvals.worker_enabled" \
        -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    rm -f "${LISTEN_OUT:-}"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

if ! ap_wait_ready 60; then
    not_ok "server accepts connections"
    exit 1
fi
PGOPTIONS='-c client_min_messages=warning' sql -c "CREATE EXTENSION IF NOT EXISTS approvals" \
    || { not_ok "CREATE EXTENSION approvals in database postgres"; exit 1; }

# new_batch TAG COUNT [create_batch extra args]: submit COUNT claims, create a batch of them
# (start => true unless overridden); prints the batch id.
new_batch() {
    local tag=$1 count=$2 extra=${3:-}
    sql -c "SELECT count(*) FROM (SELECT approvals.submit('wtest', '$RUN-$tag-' || g, 'h',
                actor => 'alice') FROM generate_series(1, $count) g) s" >/dev/null || return 1
    sql -c "SELECT id FROM approvals.create_batch(ARRAY(SELECT id FROM approvals.claims
                WHERE resource_type = 'wtest' AND resource_id LIKE '$RUN-$tag-%'
                  AND status = 'pending' ORDER BY id), coordinator => 'coord' $extra)"
}
launcher_pid() {
    sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'approvals launcher'"
}

# --- the launcher runs -------------------------------------------------------------------
wait_true 15 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'approvals launcher'"
check "exactly one 'approvals launcher' in pg_stat_activity" "1" \
    "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'approvals launcher'")"

# --- wake-up at commit, not polling: naptime 60 -------------------------------------------
sql -c "ALTER SYSTEM SET approvals.naptime = 60" -c "ALTER SYSTEM RESET approvals.worker_enabled" \
    >/dev/null
reload
sleep 1   # let the launcher read the new naptime (SIGHUP sets its latch)

LISTEN_OUT=$(mktemp)
"$AP_BIN/psql" -X -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres -d postgres \
    -c "SET application_name = 'ap_listen_$RUN'" -c "LISTEN approvals" -c "SELECT pg_sleep(5)" \
    >"$LISTEN_OUT" 2>&1 &
LISTENER=$!
wait_true 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'ap_listen_$RUN'
                              AND query LIKE '%pg_sleep%')" \
    || echo "# listener session did not show up"

B1=$(new_batch a 500)
if [[ ! $B1 =~ ^bat_ ]]; then
    not_ok "create_batch returns a batch (got '$B1')"
else
    ok "create_batch(start => true) returns queued batch $B1"
fi
if wait_true 2 "SELECT status <> 'queued' FROM approvals.batches WHERE id = '$B1'"; then
    ok "batch leaves 'queued' within 2 s with naptime = 60 (woken at commit)"
else
    not_ok "batch leaves 'queued' within 2 s with naptime = 60 (woken at commit)"
    sql -c "SELECT status, queued_at, started_at, now() FROM approvals.batches WHERE id = '$B1'"
fi
if wait_true 30 "SELECT status = 'completed' FROM approvals.batches WHERE id = '$B1'"; then
    ok "the worker completes the batch without run_queued"
else
    not_ok "the worker completes the batch without run_queued"
fi
lat=$(sql -c "SELECT round(extract(epoch FROM started_at - queued_at)::numeric, 3)
              FROM approvals.batches WHERE id = '$B1'")
echo "# started_at - queued_at = ${lat}s"
check "started_at - queued_at < 1 second (was ${lat}s)" t \
    "$(sql -c "SELECT started_at - queued_at < interval '1 second' FROM approvals.batches WHERE id = '$B1'")"
check "batch_progress: 100 percent, 500/500 processed, completed" "completed|500|500|100.0" \
    "$(sql -c "SELECT status, processed_count, total_claims, percent FROM approvals.batch_progress
               WHERE batch_id = '$B1'")"
check "batch items: 500 approved, none undecided; claims approved" "500|0|500" \
    "$(sql -c "SELECT count(*) FILTER (WHERE decision = 'approved'), count(*) FILTER (WHERE decision IS NULL),
                      (SELECT count(*) FROM approvals.claims c WHERE c.batch_id = '$B1' AND c.status = 'approved')
               FROM approvals.batch_items WHERE batch_id = '$B1'")"
check "one 'approved' event per claim for the batch" "500|500" \
    "$(sql -c "SELECT count(*), count(DISTINCT claim_id) FROM approvals.events
               WHERE batch_id = '$B1' AND action = 'approved'")"

# NOTIFY approvals: wait for the listener to finish its pg_sleep.
for _ in $(seq 1 100); do kill -0 "$LISTENER" 2>/dev/null || break; sleep 0.1; done
kill "$LISTENER" 2>/dev/null
wait "$LISTENER" 2>/dev/null
LISTENER=
note=$(grep -F 'Asynchronous notification "approvals"' "$LISTEN_OUT" | grep -F "$B1" \
       | grep -E '\\?"status\\?" *: *\\?"completed\\?"' | head -n 1)
if [[ -n $note ]]; then
    ok "NOTIFY approvals with the batch id and status completed arrives"
else
    not_ok "NOTIFY approvals with the batch id and status completed arrives"
    sed 's/^/#   /' "$LISTEN_OUT"
fi

# --- the launcher is restarted after being terminated ---------------------------------------
L1=$(launcher_pid)
if [[ $L1 =~ ^[0-9]+$ ]]; then
    sql -c "SELECT pg_terminate_backend($L1)" >/dev/null
    if wait_true 15 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                    WHERE backend_type = 'approvals launcher' AND pid <> $L1)"; then
        ok "a new launcher appears within 15 s after pg_terminate_backend($L1) (new pid $(launcher_pid))"
    else
        not_ok "a new launcher appears within 15 s after pg_terminate_backend($L1)"
    fi
else
    not_ok "launcher pid found (got '$L1')"
fi

# --- approvals.worker_enabled --------------------------------------------------------------
sql -c "ALTER SYSTEM SET approvals.naptime = 1" -c "ALTER SYSTEM SET approvals.worker_enabled = off" \
    >/dev/null
reload
sleep 1.5   # the launcher reads the file at its next wake-up (SIGHUP sets the latch)
wait_true 15 "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'approvals batch worker')" \
    || echo "# a batch worker is still running"
B2=$(new_batch b 100)
sleep 3
check "worker_enabled = off: a queued batch stays queued (3 s, naptime 1)" "queued|0" \
    "$(sql -c "SELECT status, processed_count FROM approvals.batches WHERE id = '$B2'")"
sql -c "ALTER SYSTEM RESET approvals.worker_enabled" >/dev/null
reload
if wait_true 15 "SELECT status = 'completed' FROM approvals.batches WHERE id = '$B2'"; then
    ok "worker_enabled back on: the queued batch completes"
else
    not_ok "worker_enabled back on: the queued batch completes"
    sql -c "SELECT status, processed_count, error FROM approvals.batches WHERE id = '$B2'"
fi
check "that batch: 100 approved items, 100 approved events" "100|100" \
    "$(sql -c "SELECT (SELECT approved_count FROM approvals.batches WHERE id = '$B2'),
                      (SELECT count(*) FROM approvals.events WHERE batch_id = '$B2' AND action = 'approved')")"

cleanup
trap - EXIT
echo "# 10_worker_basic: $N tests, $FAILS failed, $((SECONDS - T0)) s"
[[ $FAILS -eq 0 ]]
