#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start takes optional arguments
# 15_worker_databases: the worker serves every database that has the extension.
#   - batches queued in two databases at once are both processed by the worker (a scheduler
#     per database, visible as 'approvals scheduler' in pg_stat_activity)
#   - CREATE EXTENSION in a new database: its first batch is processed without waiting for
#     naptime (the launcher notices the CREATE EXTENSION at commit)
#   - DROP DATABASE (without FORCE) of a database whose batch is being processed succeeds
#     within seconds: the worker leaves it first; the other database is unaffected
#   - newcomer messages: wait_batch on a pending batch says so at once (NOTICE with the
#     function to call) instead of waiting silently; process_batch on a batch being processed hints
#     at wait_batch; a role with no approvals role gets a hint naming the roles to grant
#   - approvals.database restricts the worker to one database: a batch elsewhere stays
#     queued, wait_batch there says no worker serves the database, and CREATE EXTENSION in
#     such a database says so in a NOTICE naming run_queued (the server is restarted with the
#     setting, then without it)
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
RUN=wd$(date +%s)$$
DBA=${RUN}_a
DBB=${RUN}_b
DBC=${RUN}_c
DBD=${RUN}_d
RESTRICTED=
cleanup() {
    if [[ -n $RESTRICTED ]]; then ap_start >/dev/null 2>&1; fi   # back to the run's settings
    for d in "$DBA" "$DBB" "$DBC" "$DBD"; do
        sql -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1
    done
    sql -c "DROP ROLE IF EXISTS ${RUN}_nobody" >/dev/null 2>&1
}
trap cleanup EXIT

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
# test/run.sh restricts the worker to database postgres; serve every database here
RESTRICTED=1
if ap_start "approvals.database = ''" >/dev/null && ap_wait_ready 60; then
    ok "restarted with approvals.database empty (every database)"
else
    not_ok "restarted with approvals.database empty (every database)"
    exit 1
fi

# new_db DB: a database with the extension
new_db() {
    sql -c "CREATE DATABASE $1" >/dev/null && sqld "$1" -c "CREATE EXTENSION approvals" 2>&1
}
# submit DB TAG N [resource type]: N pending claims TAG_1..TAG_N in DB
submit() {
    sqld "$1" -c "SELECT count(*) FROM (SELECT approvals.submit('${4:-wd}', '$2-' || g, 'h', actor => 'usr_req',
                    id => '${2}_' || g) FROM generate_series(1, $3) g) s" >/dev/null
}
# batch DB TAG N: a queued batch of TAG_1..TAG_N in DB; prints its id
batch() {
    sqld "$1" -c "SELECT id FROM approvals.create_batch(ARRAY(SELECT '${2}_' || g FROM generate_series(1, $3) g),
                    coordinator => 'usr_coord')"
}
# queue DB TAG N: N claims and a queued batch of them in DB; prints its id
queue() { submit "$1" "$2" "$3" && batch "$1" "$2" "$3"; }
# slow_batch DB TAG N: N claims whose handler (set after they were submitted) takes 10 ms each,
# and a queued batch of them; prints its id
slow_batch() {
    submit "$1" "$2" "$3" wd_slow || return 1
    sqld "$1" -c "CREATE OR REPLACE FUNCTION public.slow(c approvals.claims, e approvals.events)
                  RETURNS void LANGUAGE sql AS 'SELECT pg_sleep(0.01)'" \
        -c "SELECT approvals.set_handler('wd_slow', 'public.slow(approvals.claims, approvals.events)')" \
        >/dev/null || return 1
    batch "$1" "$2" "$3"
}
status() { sqld "$1" -c "SELECT status FROM approvals.batches WHERE id = '$2'"; }
wait_status() {
    local deadline=$((SECONDS + $4))
    while ((SECONDS < deadline)); do
        [[ $(status "$1" "$2" 2>/dev/null) == "$3" ]] && return 0
        sleep 0.2
    done
    return 1
}

# --- two databases at once ---------------------------------------------------------------------
OUT_A=$(new_db "$DBA")
new_db "$DBB" >/dev/null
if grep -q NOTICE <<<"$OUT_A"; then
    not_ok "CREATE EXTENSION in a database the worker serves says nothing (got: $OUT_A)"
else
    ok "CREATE EXTENSION in a database the worker serves says nothing"
fi
BA=$(queue "$DBA" "${RUN}a" 2000)
BB=$(queue "$DBB" "${RUN}b" 2000)
if wait_status "$DBA" "$BA" completed 60 && wait_status "$DBB" "$BB" completed 60; then
    ok "batches queued in two databases are both completed by the worker"
else
    not_ok "batches queued in two databases are both completed by the worker ($(status "$DBA" "$BA"), $(status "$DBB" "$BB"))"
fi
check "a scheduler runs in each of the two databases" "2" \
    "$(sql -c "SELECT count(DISTINCT datname) FROM pg_stat_activity
               WHERE backend_type = 'approvals scheduler' AND datname IN ('$DBA', '$DBB')")"

# --- CREATE EXTENSION in a new database: served at once -------------------------------------------
sql -c "ALTER SYSTEM SET approvals.naptime = '60s'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
new_db "$DBC" >/dev/null
BC=$(queue "$DBC" "${RUN}c" 10)
if wait_status "$DBC" "$BC" completed 10; then
    ok "the first batch of a database that just created the extension completes within 10 s (naptime 60 s)"
else
    not_ok "the first batch of a database that just created the extension completes within 10 s (naptime 60 s; $(status "$DBC" "$BC"))"
fi
sql -c "ALTER SYSTEM RESET approvals.naptime" -c "SELECT pg_reload_conf()" >/dev/null

# --- DROP DATABASE while its batch is being processed -------------------------------------------
BS=$(slow_batch "$DBB" "${RUN}s" 3000)
if wait_status "$DBB" "$BS" processing 30; then
    ok "a slow batch is being processed in $DBB"
else
    not_ok "a slow batch is being processed in $DBB ($(status "$DBB" "$BS"))"
fi
START=$SECONDS
if SQL_TIMEOUT=60 sql -c "DROP DATABASE $DBB" >/dev/null 2>"$AP_CLUSTER/drop_err.txt"; then
    ok "DROP DATABASE (no FORCE) of a database whose batch is processing succeeds ($((SECONDS - START)) s)"
else
    not_ok "DROP DATABASE (no FORCE) of a database whose batch is processing succeeds: $(cat "$AP_CLUSTER/drop_err.txt")"
fi
BA2=$(queue "$DBA" "${RUN}a2" 10)
if wait_status "$DBA" "$BA2" completed 20; then
    ok "the other database is still served"
else
    not_ok "the other database is still served ($(status "$DBA" "$BA2"))"
fi

# --- messages that say what to do ---------------------------------------------------------------
BP=$(sqld "$DBA" -c "SELECT id FROM approvals.create_batch(ARRAY['${RUN}a_1'], coordinator => 'usr_coord', start => false)")
OUT=$(sqld "$DBA" -c "SELECT status FROM approvals.wait_batch('$BP', '1 second')" 2>&1)
if [[ $OUT == *"is pending"*"approvals.start_batch"* ]]; then
    ok "wait_batch on a pending batch says so at once (NOTICE naming start_batch)"
else
    not_ok "wait_batch on a pending batch says so at once (NOTICE naming start_batch; got: $OUT)"
fi
BS2=$(slow_batch "$DBA" "${RUN}s2" 1500)
wait_status "$DBA" "$BS2" processing 30
OUT=$(sqld "$DBA" -c "SELECT count(*) FROM approvals.process_batch('$BS2')" 2>&1)
if [[ $OUT == *"55000"* || $OUT == *"is processing"* ]] && [[ $OUT == *"approvals.wait_batch"* ]]; then
    ok "process_batch on a batch being processed hints at wait_batch"
else
    not_ok "process_batch on a batch being processed hints at wait_batch (got: $OUT)"
fi
sqld "$DBA" -c "SELECT * FROM approvals.cancel_batch('$BS2')" >/dev/null 2>&1
sql -c "CREATE ROLE ${RUN}_nobody" >/dev/null
OUT=$(sqld "$DBA" -c "SET ROLE ${RUN}_nobody" -c "SELECT approvals.get_batch('$BP')" 2>&1)
if [[ $OUT == *"permission denied for schema approvals"* && $OUT == *"GRANT approvals_reader"* ]]; then
    ok "a role with no approvals role is told which roles to grant"
else
    not_ok "a role with no approvals role is told which roles to grant (got: $OUT)"
fi

# --- approvals.database restricts the worker ----------------------------------------------------
if ap_start "approvals.database = '$DBA'" >/dev/null && ap_wait_ready 60; then
    ok "restarted with approvals.database = '$DBA'"
else
    not_ok "restarted with approvals.database = '$DBA'"
    exit 1
fi
BC2=$(queue "$DBC" "${RUN}c2" 10)
BA3=$(queue "$DBA" "${RUN}a3" 10)
if wait_status "$DBA" "$BA3" completed 30; then ok "$DBA is served"; else not_ok "$DBA is served"; fi
sleep 2
check "a batch in $DBC stays queued" "queued" "$(status "$DBC" "$BC2")"
OUT=$(sqld "$DBC" -c "SELECT status FROM approvals.wait_batch('$BC2', '1 second')" 2>&1)
if [[ $OUT == *"no background worker processes batches in database"*"run_queued"* ]]; then
    ok "wait_batch in a database no worker serves says so, naming run_queued"
else
    not_ok "wait_batch in a database no worker serves says so, naming run_queued (got: $OUT)"
fi
OUT=$(new_db "$DBD")
if [[ $OUT == *NOTICE*"approvals.database"*"run_queued"* ]]; then
    ok "CREATE EXTENSION where no worker will serve says so in a NOTICE naming run_queued"
else
    not_ok "CREATE EXTENSION where no worker will serve says so in a NOTICE naming run_queued (got: $OUT)"
fi
sqld "$DBC" -c "CALL approvals.run_queued()" >/dev/null
check "CALL run_queued() processes it there" "completed" "$(status "$DBC" "$BC2")"
RESTRICTED=
if ap_start >/dev/null && ap_wait_ready 60; then ok "restarted with the run's settings"; else not_ok "restarted with the run's settings"; fi
echo "# 15_worker_databases: $((SECONDS - T0)) s"
