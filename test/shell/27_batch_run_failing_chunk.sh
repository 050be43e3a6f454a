#!/usr/bin/env bash
# 27_batch_run_failing_chunk: the driver's retry policy when a chunk fails for good.
#   - a batch whose every chunk raises (a trigger installed by the superuser refuses to write
#     its items) is handed back after each failure and taken again: after 3 attempts it is
#     quarantined ('failed', 'quarantined: ...', attempts 3), nothing of it decided
#   - the batch queued behind it completes
#   - CALL run_queued() on such a batch raises the chunk's error to its caller and leaves the
#     batch handed back (processing, no owner)
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
RUN=fc$(date +%s)$$
cleanup() {
    sql -c "DROP TRIGGER IF EXISTS ${RUN}_refuse ON approvals.batch_item_results" \
        -c "DROP FUNCTION IF EXISTS public.${RUN}_refuse()" \
        -c "ALTER SYSTEM RESET approvals.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
}
trap cleanup EXIT

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
PGOPTIONS='-c client_min_messages=warning' sql -c "CREATE EXTENSION IF NOT EXISTS approvals" >/dev/null

# new_batch TAG: three claims and a queued batch of them; prints the batch id
new_batch() {
    sql -c "SELECT count(*) FROM (SELECT approvals.submit('fc', '$RUN-$1-' || g, 'h', actor => 'usr_req',
                id => '${RUN}_$1_' || g) FROM generate_series(1, 3) g) s" >/dev/null || return 1
    sql -c "SELECT id FROM approvals.create_batch(ARRAY(SELECT '${RUN}_$1_' || g FROM generate_series(1, 3) g),
                coordinator => 'usr_coord', start => ${2:-true})"
}

sql -c "CREATE FUNCTION public.${RUN}_refuse() RETURNS trigger LANGUAGE plpgsql AS \$f\$
        BEGIN RAISE EXCEPTION 'refused by ${RUN}'; END \$f\$" \
    -c "CREATE TRIGGER ${RUN}_refuse BEFORE INSERT ON approvals.batch_item_results FOR EACH ROW
        WHEN (array_to_string(NEW.claim_ids, ' ') LIKE '%${RUN}_bad%') EXECUTE FUNCTION public.${RUN}_refuse()" >/dev/null \
    || { not_ok "trigger installed"; exit 1; }

# --- the worker: hand back, take again, quarantine --------------------------------------------
BAD=$(new_batch bad)
GOOD=$(new_batch good)
if [[ $BAD == bat_* && $GOOD == bat_* ]]; then ok "two batches queued"; else not_ok "two batches queued"; exit 1; fi
if wait_true 60 "SELECT status = 'failed' FROM approvals.batches WHERE id = '$BAD'"; then
    ok "the batch whose chunks always fail ends failed"
else
    not_ok "the batch whose chunks always fail ends failed (now: $(sql -c "SELECT status || ' ' || attempts FROM approvals.batches WHERE id = '$BAD'"))"
fi
check "it was quarantined after 3 attempts, nothing decided" "t|3|0|0" \
    "$(sql -c "SELECT error LIKE 'quarantined%', attempts, processed_count,
                      (SELECT count(*) FROM approvals.claims WHERE id LIKE '${RUN}_bad%' AND status <> 'pending')
               FROM approvals.batches WHERE id = '$BAD'")"
if grep -q "refused by ${RUN}" "$AP_LOG"; then
    ok "the worker logged the chunk's error"
else
    not_ok "the worker logged the chunk's error"
fi
if wait_true 30 "SELECT status = 'completed' FROM approvals.batches WHERE id = '$GOOD'"; then
    ok "the batch queued behind it completes"
else
    not_ok "the batch queued behind it completes"
fi

# --- run_queued: the error reaches the caller, the batch is handed back -----------------------
sql -c "ALTER SYSTEM SET approvals.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
BAD2=$(new_batch bad2)
OUT=$(sql -c "CALL approvals.run_queued()" 2>&1)
if grep -q "refused by ${RUN}" <<<"$OUT"; then
    ok "CALL run_queued() raises the chunk's error"
else
    not_ok "CALL run_queued() raises the chunk's error (got: $OUT)"
fi
check "the batch is handed back: processing, no owner, attempts 1, nothing decided" "processing||1|0" \
    "$(sql -c "SELECT status, worker_pid, attempts, processed_count FROM approvals.batches WHERE id = '$BAD2'")"
sql -c "SELECT * FROM approvals.cancel_batch('$BAD2')" >/dev/null
echo "# 27_batch_run_failing_chunk: $((SECONDS - T0)) s"
