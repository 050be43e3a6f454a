#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start takes optional arguments
# 30_pg_cron: the README's pg_cron recipes, with the background worker disabled
# (approvals.worker_enabled = off) so that only pg_cron processes anything:
#   - 'approvals-run'    CALL approvals.run_queued()    processes a queued batch
#   - 'approvals-expire' '* * * * *' SELECT approvals.expire_due()   (exactly as API.md writes
#     it) expires a claim whose policy gave it expires_in => '1 second'
#   - 'approvals-eom'    the scheduled end-of-month batch built from a query over
#     approvals.claims: one batch is created, and processed by 'approvals-run'
#   - cron.job_run_details shows 'succeeded' for each; everything is unscheduled afterwards.
# pg_cron before 1.5 has no 'N seconds' schedules: then the jobs run every minute and the
# waits are up to ~2 minutes.
#
# Run by test/run.sh against its scratch cluster (AP_ROOT, AP_PGHOST, AP_PGPORT, AP_PGDATA,
# AP_BIN exported). Prints "ok N - ..." / "not ok N - ...". pg_cron runs in database postgres
# (cron.database_name).
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
WAIT_INTERVAL=0.5
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
RUN=p$(date +%s)$$
CREATED_CRON=0
SET_CRON_HOST=0
JOBS="'approvals-run', 'approvals-expire', 'approvals-eom'"

cleanup() {
    ap_wait_ready 60 >/dev/null || ap_start >/dev/null
    PGOPTIONS='-c client_min_messages=warning' sql \
        -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname IN ($JOBS)" \
        -c "ALTER SYSTEM RESET approvals.worker_enabled" -c "ALTER SYSTEM RESET approvals.naptime" \
        -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    sql -c "DELETE FROM approvals.policies WHERE resource_type = 'cronexp'" >/dev/null 2>&1
    if ((CREATED_CRON)); then
        sql -c "DROP EXTENSION IF EXISTS pg_cron" >/dev/null 2>&1
        CREATED_CRON=0
    fi
    if ((SET_CRON_HOST)); then
        SET_CRON_HOST=0
        sql -c "ALTER SYSTEM RESET cron.host" >/dev/null 2>&1
        ap_pg_ctl restart -m fast >/dev/null 2>&1 || ap_start >/dev/null
        ap_wait_ready 60 >/dev/null
    fi
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
if [[ $(sql -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'") == 0 ]]; then
    CREATED_CRON=1
fi
if sql -c "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null; then
    ok "CREATE EXTENSION IF NOT EXISTS pg_cron in database postgres"
else
    not_ok "CREATE EXTENSION IF NOT EXISTS pg_cron in database postgres"
    exit 1
fi
CRON_VERSION=$(sql -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")

# pg_cron runs jobs over a libpq connection to cron.host (default localhost) unless
# cron.use_background_workers is on. The scratch cluster has no TCP listener, so point
# cron.host at its socket directory (a postmaster setting: restart), and undo it at the end.
cron_host=$(sql -c "SHOW cron.host")
cron_bgw=$(sql -c "SHOW cron.use_background_workers")
if [[ $cron_bgw != on && $cron_host != /* ]] \
   && [[ $(sql -c "SHOW listen_addresses") == "" ]]; then
    echo "# pg_cron cannot connect: cron.host = '$cron_host', listen_addresses = ''; setting cron.host = '$AP_PGHOST' (restart)"
    SET_CRON_HOST=1
    sql -c "ALTER SYSTEM SET cron.host = '$AP_PGHOST'" >/dev/null
    if ! ap_pg_ctl restart -m fast || ! ap_wait_ready 60; then
        not_ok "restart with cron.host = '$AP_PGHOST'"
        exit 1
    fi
fi

# Only cron may process: the worker off, and no batch worker left running.
sql -c "ALTER SYSTEM SET approvals.worker_enabled = off" -c "ALTER SYSTEM SET approvals.naptime = 1" \
    -c "SELECT pg_reload_conf()" >/dev/null
sleep 1.5
wait_true 15 "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'approvals batch worker')" \
    || echo "# a batch worker is still running"

# 'N seconds' schedules exist from pg_cron 1.5 on.
if [[ $(sql -c "SELECT string_to_array(split_part('$CRON_VERSION', '-', 1), '.')::int[] >= '{1,5}'") == t ]]; then
    FAST='1 seconds'
    EOM_SCHED='10 seconds'   # unscheduled after its first run; leave time to do that
    BOUND=20
else
    FAST='* * * * *'
    EOM_SCHED='* * * * *'
    BOUND=75
    echo "# pg_cron $CRON_VERSION has no seconds schedules: jobs run every minute (waits up to ~2 min)"
fi
# Do not start right before a minute boundary: a claim that expires in 1 second would then
# miss this minute's expire_due run.
if [[ $FAST == '* * * * *' ]] && (( 10#$(date +%S) >= 55 )); then
    sleep $((61 - 10#$(date +%S)))
fi

# --- what the jobs will act on -----------------------------------------------------------
# A queued batch (start => true) that only run_queued can process now.
sql -c "SELECT count(*) FROM (SELECT approvals.submit('cronq', '$RUN-' || g, 'h', actor => 'alice')
        FROM generate_series(1, 200) g) s" >/dev/null
QB=$(sql -c "SELECT id FROM approvals.create_batch(ARRAY(SELECT id FROM approvals.claims
             WHERE resource_type = 'cronq' AND resource_id LIKE '$RUN-%' ORDER BY id),
             coordinator => 'coord')")
check "a batch created with start => true is queued (worker off)" "queued" \
    "$(sql -c "SELECT status FROM approvals.batches WHERE id = '$QB'")"

# A claim that expires one second after it is submitted.
sql -c "SELECT approvals.set_policy(resource_type => 'cronexp', expires_in => '1 second')" >/dev/null
EXP=$(sql -c "SELECT id FROM approvals.submit('cronexp', '$RUN', 'h', actor => 'alice')")
check "a claim under policy expires_in => '1 second' is pending with expires_at ~1 s away" "pending|t" \
    "$(sql -c "SELECT status, expires_at BETWEEN now() AND now() + interval '2 seconds'
               FROM approvals.claims WHERE id = '$EXP'")"

# Pending 'eom' claims for the end-of-month job (any left by an earlier run are cancelled).
sql -c "SELECT count(approvals.cancel_claim(id)) FROM approvals.claims
        WHERE status = 'pending' AND resource_type = 'eom'" >/dev/null
sql -c "SELECT count(*) FROM (SELECT approvals.submit('eom', '$RUN-' || g, 'h', actor => 'alice')
        FROM generate_series(1, 50) g) s" >/dev/null
EOM_MAX_BATCH=$(sql -c "SELECT coalesce(max(created_at), '-infinity') FROM approvals.batches")

# --- schedule -------------------------------------------------------------------------------
J_RUN=$(sql -c "SELECT cron.schedule('approvals-run', '$FAST', 'CALL approvals.run_queued()')")
J_EXP=$(sql -c "SELECT cron.schedule('approvals-expire', '* * * * *', 'SELECT approvals.expire_due()');")
J_EOM=$(sql -c "SELECT cron.schedule('approvals-eom', '$EOM_SCHED', \$cmd\$SELECT approvals.create_batch(ARRAY(SELECT id FROM approvals.claims WHERE status = 'pending' AND resource_type = 'eom' ORDER BY id), coordinator => 'coord', comment => 'end of month')\$cmd\$)")
if [[ $J_RUN =~ ^[0-9]+$ && $J_EXP =~ ^[0-9]+$ && $J_EOM =~ ^[0-9]+$ ]]; then
    ok "cron.schedule: approvals-run ('$FAST'), approvals-expire ('* * * * *'), approvals-eom ('$EOM_SCHED')"
else
    not_ok "cron.schedule of the three jobs (got '$J_RUN' '$J_EXP' '$J_EOM')"
fi
check "cron.job holds approvals-expire exactly as the README writes it" \
    "* * * * *|SELECT approvals.expire_due()|postgres" \
    "$(sql -c "SELECT schedule, command, database FROM cron.job WHERE jobname = 'approvals-expire'")"

# --- the end-of-month job creates one batch; unschedule it at once -----------------------
eom_q="SELECT id FROM approvals.batches WHERE comment = 'end of month' AND created_at > '$EOM_MAX_BATCH'"
if wait_true "$BOUND" "SELECT EXISTS ($eom_q)"; then
    sql -c "SELECT cron.unschedule('approvals-eom')" >/dev/null
    EB=$(sql -c "$eom_q ORDER BY created_at LIMIT 1")
    ok "the end-of-month job created batch $EB"
else
    sql -c "SELECT cron.unschedule('approvals-eom')" >/dev/null
    EB=
    not_ok "the end-of-month job creates a batch within ${BOUND}s"
    sql -c "SELECT status, return_message FROM cron.job_run_details WHERE jobid = $J_EOM" | sed 's/^/#   /'
fi

# --- run_queued processes the queued batch ---------------------------------------------------
if wait_true "$BOUND" "SELECT status = 'completed' FROM approvals.batches WHERE id = '$QB'"; then
    ok "cron's CALL approvals.run_queued() completes the queued batch $QB"
else
    not_ok "cron's CALL approvals.run_queued() completes the queued batch $QB within ${BOUND}s"
    sql -c "SELECT status, return_message FROM cron.job_run_details WHERE jobid = $J_RUN" | sed 's/^/#   /'
fi
check "$QB: 200 claims approved, 200 'approved' events" "completed|200|200|200" \
    "$(sql -c "SELECT status, approved_count,
                      (SELECT count(*) FROM approvals.claims WHERE batch_id = b.id AND status = 'approved'),
                      (SELECT count(*) FROM approvals.events WHERE batch_id = b.id AND action = 'approved')
               FROM approvals.batches b WHERE id = '$QB'")"

# --- approvals-expire expires the claim -------------------------------------------------------
if wait_true "$BOUND" "SELECT status = 'expired' FROM approvals.claims WHERE id = '$EXP'"; then
    ok "the approvals-expire job expires the overdue claim $EXP"
else
    not_ok "the approvals-expire job expires the overdue claim $EXP within ${BOUND}s"
    sql -c "SELECT status, return_message FROM cron.job_run_details WHERE jobid = $J_EXP" | sed 's/^/#   /'
fi
check "the claim has an 'expired' event" "1" \
    "$(sql -c "SELECT count(*) FROM approvals.events WHERE claim_id = '$EXP' AND action = 'expired'")"

# --- the end-of-month batch is processed (by the next run of approvals-run) -------------------
if [[ -n $EB ]]; then
    if wait_true $((BOUND + 60)) "SELECT status = 'completed' FROM approvals.batches WHERE id = '$EB'"; then
        ok "the end-of-month batch $EB is processed by cron's run_queued"
    else
        not_ok "the end-of-month batch $EB is processed within $((BOUND + 60))s"
    fi
    check "end-of-month batch: the 50 pending 'eom' claims, all approved, coordinator coord" \
        "50|50|coord|end of month|50" \
        "$(sql -c "SELECT total_claims, approved_count, coordinator, comment,
                          (SELECT count(*) FROM approvals.claims WHERE batch_id = b.id
                             AND resource_id LIKE '$RUN-%' AND status = 'approved')
                   FROM approvals.batches b WHERE id = '$EB'")"
    check "exactly one end-of-month batch was created" "1" \
        "$(sql -c "SELECT count(*) FROM ($eom_q) s")"
fi

# --- cron.job_run_details ---------------------------------------------------------------------
check "cron.job_run_details: approvals-run succeeded (and never failed)" "t|0" \
    "$(sql -c "SELECT count(*) FILTER (WHERE status = 'succeeded') > 0, count(*) FILTER (WHERE status = 'failed')
               FROM cron.job_run_details WHERE jobid = $J_RUN")"
check "cron.job_run_details: approvals-expire succeeded (and never failed)" "t|0" \
    "$(sql -c "SELECT count(*) FILTER (WHERE status = 'succeeded') > 0, count(*) FILTER (WHERE status = 'failed')
               FROM cron.job_run_details WHERE jobid = $J_EXP")"
check "cron.job_run_details: approvals-eom succeeded" "t" \
    "$(sql -c "SELECT bool_or(status = 'succeeded') FROM cron.job_run_details WHERE jobid = $J_EOM")"
bad=$(sql -c "SELECT '#   ' || jobid || ' ' || status || ': ' || coalesce(return_message, '')
              FROM cron.job_run_details WHERE jobid IN ($J_RUN, $J_EXP, $J_EOM) AND status <> 'succeeded'")
[[ -n $bad ]] && printf '%s\n' "$bad"

# --- unschedule everything --------------------------------------------------------------------
sql -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname IN ($JOBS)" >/dev/null
check "all jobs unscheduled" "0" "$(sql -c "SELECT count(*) FROM cron.job WHERE jobname IN ($JOBS)")"
sql -c "DELETE FROM cron.job_run_details WHERE jobid IN ($J_RUN, $J_EXP, $J_EOM)" >/dev/null

cleanup
trap - EXIT
check "approvals.worker_enabled is back on (server up after the settings were restored)" "0" \
    "$(sql -c "SELECT count(*) FROM pg_settings WHERE name = 'approvals.worker_enabled' AND setting <> 'on'")"
echo "# 30_pg_cron: $N tests, $FAILS failed, pg_cron $CRON_VERSION, $((SECONDS - T0)) s"
[[ $FAILS -eq 0 ]]
