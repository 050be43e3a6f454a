#!/usr/bin/env bash
# 52_memory_calls: SQL calls that run long keep their memory flat.
#   - batch_results over a 1,000,000-item batch: the backend's memory, sampled while the call
#     runs (pg_log_backend_memory_contexts every 50 ms), stays under 24 MB: the rows are
#     streamed into the result a page at a time (they used to be held twice, once by SPI and
#     once by the result: over 100 MB)
#   - wait_batch by a tenant-scoped coordinator on a queued batch nobody runs (the worker is
#     off): memory at 2 s and at 10 s of the wait differs by at most 256 kB (every 50 ms poll
#     used to leak, ~10 MB/min)
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
: "${SQL_TIMEOUT:=120}"
export PGCONNECT_TIMEOUT=5

ITEMS=${AP_MEMORY_ITEMS:-1000000}
T0=$SECONDS
RUN=mc$(date +%s)$$
BG=
cleanup() {
    [[ -n $BG ]] && kill "$BG" 2>/dev/null
    sql -c "DROP ROLE IF EXISTS ${RUN}_coord" -c "ALTER SYSTEM RESET approvals.worker_enabled" \
        -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    rm -f "${OUT:-}"
}
trap cleanup EXIT

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
PGOPTIONS='-c client_min_messages=warning' sql -c "CREATE EXTENSION IF NOT EXISTS approvals" \
    >/dev/null || { not_ok "extension present"; exit 1; }

# backend_pid APPNAME: the pid of the (first) backend with that application_name, waiting for it
backend_pid() {
    local i pid
    for ((i = 0; i < 100; i++)); do
        pid=$(sql -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$1' LIMIT 1")
        [[ -n $pid ]] && { echo "$pid"; return 0; }
        sleep 0.05
    done
    return 1
}

# --- batch_results over a million items ----------------------------------------------------
# A pending batch (nobody processes it) whose items are written directly, for speed.
BATCH=$(sql -c "SELECT id FROM approvals.create_batch(ARRAY['${RUN}_1'], coordinator => 'usr_coord',
                start => false)")
if [[ $BATCH == bat_* ]] && SQL_TIMEOUT=300 sql -c "
        INSERT INTO approvals.batch_item_lists (batch_id, first_position, last_position, claim_ids)
        SELECT '$BATCH', s, least(s + 999, $ITEMS),
               ARRAY(SELECT '${RUN}_' || g FROM generate_series(s, least(s + 999, $ITEMS)) g)
        FROM generate_series(2, $ITEMS, 1000) s" >/dev/null; then
    ok "pending batch with $ITEMS items"
else
    not_ok "pending batch with $ITEMS items"
    exit 1
fi

OUT=$(mktemp)
LOG_START=$(wc -l <"$AP_LOG")
PGAPPNAME=${RUN}_results timeout -k 5 300 "$AP_BIN/psql" -X -h "$AP_PGHOST" -p "$AP_PGPORT" \
    -U postgres -d postgres -qAt -c "SELECT count(*) FROM approvals.batch_results('$BATCH')" \
    >"$OUT" 2>&1 &
BG=$!
PID=$(backend_pid "${RUN}_results")
SAMPLES=0
while kill -0 "$BG" 2>/dev/null; do
    [[ $(sql -c "SELECT state = 'active' FROM pg_stat_activity WHERE pid = ${PID:-0}") == t ]] || break
    sql -c "SELECT pg_log_backend_memory_contexts(${PID:-0})" >/dev/null 2>&1 && SAMPLES=$((SAMPLES + 1))
    sleep 0.05
done
wait "$BG"
BG=
check "batch_results returned one row per item" "$ITEMS" "$(cat "$OUT")"
sleep 1
PEAK=$(tail -n "+$((LOG_START + 1))" "$AP_LOG" | grep "\[$PID\] LOG:  Grand total" \
       | sed -E 's/.*Grand total: ([0-9]+) bytes.*/\1/' | sort -n | tail -n 1)
echo "# batch_results: $SAMPLES samples, peak ${PEAK:-?} bytes"
if [[ -z $PEAK ]]; then
    not_ok "batch_results memory could be sampled while it ran"
elif ((PEAK < 24 * 1024 * 1024)); then
    ok "batch_results over $ITEMS items peaks under 24 MB ($PEAK bytes)"
else
    not_ok "batch_results over $ITEMS items peaks under 24 MB ($PEAK bytes)"
fi

# --- wait_batch by a tenant-scoped caller ---------------------------------------------------
sql -c "ALTER SYSTEM SET approvals.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
TBATCH=$(sql -c "CREATE ROLE ${RUN}_coord IN ROLE approvals_coordinator" \
    -c "SELECT approvals.grant_tenant('${RUN}_t', '${RUN}_coord')" \
    -c "SELECT id FROM approvals.create_batch(ARRAY['${RUN}_x'], coordinator => 'usr_coord',
            tenant => '${RUN}_t')" | tail -n 1)
PGAPPNAME=${RUN}_wait timeout -k 5 60 "$AP_BIN/psql" -X -h "$AP_PGHOST" -p "$AP_PGPORT" \
    -U postgres -d postgres -qAt -c "SET ROLE ${RUN}_coord" \
    -c "SELECT status FROM approvals.wait_batch('$TBATCH', '12 seconds')" >"$OUT" 2>&1 &
BG=$!
PID=$(backend_pid "${RUN}_wait")
sleep 2
EARLY=$(grand_total "$PID")
sleep 8
LATE=$(grand_total "$PID")
wait "$BG"
BG=
check "wait_batch returned the queued batch after its timeout" "queued" "$(grep -v NOTICE "$OUT" | grep -vE '^(DETAIL|HINT):' )"
echo "# wait_batch memory: ${EARLY:-?} bytes at 2 s, ${LATE:-?} bytes at 10 s"
if [[ -n $EARLY && -n $LATE ]] && ((LATE <= EARLY + 262144)); then
    ok "wait_batch memory is flat while it waits ($EARLY -> $LATE bytes)"
else
    not_ok "wait_batch memory is flat while it waits (${EARLY:-?} -> ${LATE:-?} bytes)"
fi
sql -c "SELECT approvals.revoke_tenant('${RUN}_t', '${RUN}_coord')" \
    -c "ALTER SYSTEM RESET approvals.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null
sql -c "DELETE FROM approvals.batch_item_lists WHERE batch_id IN ('$BATCH', '$TBATCH')" \
    -c "DELETE FROM approvals.batch_item_results WHERE batch_id IN ('$BATCH', '$TBATCH')" \
    -c "DELETE FROM approvals.batches WHERE id IN ('$BATCH', '$TBATCH')" >/dev/null
echo "# 52_memory_calls: $((SECONDS - T0)) s"
