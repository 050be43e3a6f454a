#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start takes optional arguments
# 40_lifecycle: DROP EXTENSION / DROP DATABASE never hang, and the launcher survives the
# extension going away in its own database:
#   - DROP EXTENSION approvals in a scratch database returns within 20 s
#   - DROP DATABASE of another database that has the extension (and a queued batch) returns
#     within 20 s
#   - in database postgres (approvals.database), while a batch worker is in the middle of a
#     batch: DROP EXTENSION approvals CASCADE returns within 20 s, the server does not crash,
#     the launcher logs that the extension is not installed and keeps running (same pid);
#     CREATE EXTENSION approvals again and a queued batch completes.
# The first variant is the plain requirement; the second, with a busy batch worker, checks that
# DROP EXTENSION is not a deadlock victim of a chunk transaction.
# Dropping the extension in postgres deletes what earlier scripts left there, so this runs
# last; the extension is re-created at the end.
#
# Run by test/run.sh against its scratch cluster (AP_ROOT, AP_PGHOST, AP_PGPORT, AP_PGDATA,
# AP_BIN exported). Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
WAIT_INTERVAL=0.2
export PGCONNECT_TIMEOUT=5

# timed DB SQL: run SQL with a 20 s limit; sets ELAPSED (seconds, 2 decimals) and ERR (its
# error output); returns psql's status (124 on timeout).
timed() {
    local t0 t1 rc errf
    errf=$(mktemp)
    t0=$(date +%s.%N)
    SQL_TIMEOUT=20 sqld "$1" -c "$2" >/dev/null 2>"$errf"
    rc=$?
    ERR=$(cat "$errf")
    rm -f "$errf"
    t1=$(date +%s.%N)
    ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    return $rc
}
T0=$SECONDS
RUN=l$(date +%s)$$
DB_A=ap_life_a_$RUN
DB_B=ap_life_b_$RUN
Q='-c client_min_messages=warning'

cleanup() {
    ap_wait_ready 60 >/dev/null || ap_start >/dev/null
    PGOPTIONS=$Q sql -c "DROP DATABASE IF EXISTS $DB_A WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $DB_B WITH (FORCE)" >/dev/null 2>&1
    PGOPTIONS=$Q sql -c "CREATE EXTENSION IF NOT EXISTS approvals" >/dev/null 2>&1
    sql -c "ALTER SYSTEM RESET approvals.naptime" -c "ALTER SYSTEM RESET approvals.chunk_size" \
        -c "ALTER SYSTEM RESET approvals.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

if ! ap_wait_ready 60; then
    not_ok "server accepts connections"
    exit 1
fi
PGOPTIONS=$Q sql -c "CREATE EXTENSION IF NOT EXISTS approvals" \
    || { not_ok "CREATE EXTENSION approvals in database postgres"; exit 1; }

# setup_db DB: a database with the extension, some claims, a processed and a queued batch.
setup_db() {
    sql -c "CREATE DATABASE $1" >/dev/null \
    && sqld "$1" -c "CREATE EXTENSION approvals" \
        -c "SELECT count(*) FROM (SELECT approvals.submit('life', 'x' || g, 'h', actor => 'alice')
            FROM generate_series(1, 200) g) s" \
        -c "SELECT count(*) FROM approvals.process_batch((approvals.create_batch(ARRAY(
            SELECT id FROM approvals.claims WHERE resource_id <= 'x3' ORDER BY id),
            coordinator => 'coord', start => false)).id)" \
        -c "SELECT status FROM approvals.create_batch(ARRAY(SELECT id FROM approvals.claims
            WHERE status = 'pending' ORDER BY id), coordinator => 'coord')" >/dev/null
}

# --- DROP EXTENSION in a scratch database --------------------------------------------------
if setup_db "$DB_A"; then
    if timed "$DB_A" "DROP EXTENSION approvals"; then
        ok "DROP EXTENSION approvals in a scratch database returns promptly (${ELAPSED}s)"
    else
        not_ok "DROP EXTENSION approvals in a scratch database returns within 20 s (${ELAPSED}s)"
    fi
    # PostgreSQL does not make the schema named in the control file a member of the
    # extension, so DROP EXTENSION leaves it behind (empty); a new CREATE EXTENSION reuses it.
    left=$(sqld "$DB_A" -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'approvals'")
    [[ $left != 0 ]] && echo "# note: DROP EXTENSION left the (empty) schema approvals behind"
    check "nothing of the extension is left in schema approvals" "0|0" \
        "$(sqld "$DB_A" -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname = 'approvals'")|$(sqld "$DB_A" -c "SELECT count(*) FROM pg_proc p
                            JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'approvals'")"
    if PGOPTIONS=$Q sqld "$DB_A" -c "CREATE EXTENSION approvals" -c "DROP EXTENSION approvals" >/dev/null; then
        ok "CREATE EXTENSION approvals works again after DROP EXTENSION (and drops again)"
    else
        not_ok "CREATE EXTENSION approvals works again after DROP EXTENSION (and drops again)"
    fi
    if timed postgres "DROP DATABASE $DB_A"; then
        ok "DROP DATABASE of that database returns promptly (${ELAPSED}s)"
    else
        not_ok "DROP DATABASE of that database returns within 20 s (${ELAPSED}s)"
    fi
else
    not_ok "create database $DB_A with the extension, claims and batches"
fi

# --- DROP DATABASE of another database that has the extension ------------------------------
if setup_db "$DB_B"; then
    check "$DB_B has a queued batch (the worker only serves postgres)" "1" \
        "$(sqld "$DB_B" -c "SELECT count(*) FROM approvals.batches WHERE status = 'queued'")"
    if timed postgres "DROP DATABASE $DB_B"; then
        ok "DROP DATABASE of a database with the extension returns promptly (${ELAPSED}s)"
    else
        not_ok "DROP DATABASE of a database with the extension returns within 20 s (${ELAPSED}s)"
    fi
else
    not_ok "create database $DB_B with the extension, claims and batches"
fi

# --- DROP EXTENSION in approvals.database (postgres) while the launcher runs -----------------
sql -c "ALTER SYSTEM SET approvals.naptime = 1" -c "ALTER SYSTEM SET approvals.chunk_size = 10" \
    -c "ALTER SYSTEM RESET approvals.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
PM=$(ap_postmaster_pid)
wait_true 15 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'approvals launcher')"
L=$(sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'approvals launcher'")
if [[ $L =~ ^[0-9]+$ ]]; then
    ok "the launcher runs (pid $L)"
else
    not_ok "the launcher runs (got '$L')"
fi

# wait_log SECONDS FROM REGEX: wait until the server log from byte FROM on matches REGEX.
wait_log() {
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        grep -qE "$3" <(tail -c +"$(($2 + 1))" "$AP_LOG") && return 0
        sleep 0.2
    done
    grep -qE "$3" <(tail -c +"$(($2 + 1))" "$AP_LOG")
}
launchers() {
    sql -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'approvals launcher'"
}

# drop_cycle idle|busy: DROP EXTENSION approvals CASCADE in postgres (busy: while a batch
# worker is in the middle of a batch), check the launcher, CREATE EXTENSION, run a batch.
drop_cycle() {
    local mode=$1 what from ba bb rc
    from=$(stat -c %s "$AP_LOG")
    if [[ $mode == busy ]]; then
        what="while a batch worker is mid-batch"
        sql -c "SELECT count(*) FROM (SELECT approvals.submit('life', '$RUN-$mode-a-' || g, 'h',
                actor => 'alice') FROM generate_series(1, 5000) g) s" >/dev/null
        ba=$(sql -c "SELECT id FROM approvals.create_batch(ARRAY(SELECT id FROM approvals.claims
                     WHERE resource_type = 'life' AND resource_id LIKE '$RUN-$mode-a-%' ORDER BY id),
                     coordinator => 'coord')")
        if wait_true 10 "SELECT status = 'processing' AND processed_count > 0 FROM approvals.batches WHERE id = '$ba'"; then
            echo "# $ba is being processed by worker $(sql -c "SELECT worker_pid FROM approvals.batches WHERE id = '$ba'")"
        else
            echo "# $ba was not caught processing: $(sql -c "SELECT status, processed_count FROM approvals.batches WHERE id = '$ba'")"
        fi
    else
        what="while the launcher runs (no batch)"
        wait_true 15 "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'approvals batch worker')"
    fi
    timed postgres "DROP EXTENSION approvals CASCADE"
    rc=$?
    if ((rc != 124)); then
        ok "DROP EXTENSION approvals CASCADE in postgres $what returns within 20 s (${ELAPSED}s)"
    else
        not_ok "DROP EXTENSION approvals CASCADE in postgres $what returns within 20 s (timed out)"
        sql -c "SELECT pid, backend_type, wait_event_type, wait_event, state, left(query, 60)
                FROM pg_stat_activity WHERE backend_type <> 'client backend' OR query LIKE '%DROP%'" \
            | sed 's/^/#   /'
    fi
    if ((rc == 0)); then
        ok "DROP EXTENSION approvals CASCADE in postgres $what succeeds"
    else
        not_ok "DROP EXTENSION approvals CASCADE in postgres $what succeeds"
        printf '%s\n' "$ERR" | sed 's/^/#   /'
        # Go on with the rest: let the batch finish, then drop again.
        [[ $mode == busy ]] && wait_true 60 "SELECT status <> 'processing' FROM approvals.batches WHERE id = '$ba'"
        timed postgres "DROP EXTENSION approvals CASCADE" \
            || { not_ok "DROP EXTENSION approvals CASCADE (second try)"; printf '%s\n' "$ERR" | sed 's/^/#   /'; }
    fi
    if wait_log 15 "$from" 'extension "approvals" is not installed'; then
        ok "$mode: the launcher logs that the extension is not installed"
        grep 'is not installed' <(tail -c +"$((from + 1))" "$AP_LOG") | tail -n 1 | sed 's/^/#   /'
    else
        not_ok "$mode: the launcher logs within 15 s that the extension is not installed (grep 'is not installed' $AP_LOG)"
    fi
    sleep 2
    check "$mode: the server did not restart (postmaster pid $PM)" "$PM" "$(ap_postmaster_pid)"
    check "$mode: the launcher keeps running (same pid $L)" "$L" "$(launchers)"
    if wait_true 15 "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'approvals batch worker')"; then
        ok "$mode: no batch worker is left running without the extension"
    else
        not_ok "$mode: no batch worker is left running without the extension (15 s)"
        sql -c "SELECT pid, state, left(query, 60) FROM pg_stat_activity
                WHERE backend_type = 'approvals batch worker'" | sed 's/^/#   /'
    fi
    if grep -qE 'was terminated by signal|PANIC|server process .* exited with exit code [^01]' \
            <(tail -c +"$((from + 1))" "$AP_LOG"); then
        not_ok "$mode: no process crashed"
        grep -E -A2 'was terminated by signal|PANIC|exited with exit code' \
            <(tail -c +"$((from + 1))" "$AP_LOG") | head -n 20 | sed 's/^/#   /'
    else
        ok "$mode: no process crashed"
    fi

    # CREATE EXTENSION again: the same launcher picks up a queued batch.
    if PGOPTIONS=$Q sql -c "CREATE EXTENSION approvals"; then
        ok "$mode: CREATE EXTENSION approvals again in postgres"
    else
        not_ok "$mode: CREATE EXTENSION approvals again in postgres"
    fi
    sql -c "SELECT count(*) FROM (SELECT approvals.submit('life', '$RUN-$mode-b-' || g, 'h',
            actor => 'alice') FROM generate_series(1, 300) g) s" >/dev/null
    bb=$(sql -c "SELECT id FROM approvals.create_batch(ARRAY(SELECT id FROM approvals.claims
                 WHERE resource_type = 'life' AND resource_id LIKE '$RUN-$mode-b-%' ORDER BY id),
                 coordinator => 'coord')")
    if wait_true 20 "SELECT status = 'completed' FROM approvals.batches WHERE id = '$bb'"; then
        ok "$mode: a queued batch completes after CREATE EXTENSION (the launcher picked it up)"
    else
        not_ok "$mode: a queued batch completes within 20 s after CREATE EXTENSION"
        sql -c "SELECT status, processed_count, error FROM approvals.batches WHERE id = '$bb'" | sed 's/^/#   /'
    fi
    check "$mode: that batch has 300 approved items and 300 'approved' events" "300|300" \
        "$(sql -c "SELECT approved_count, (SELECT count(*) FROM approvals.events
                   WHERE batch_id = b.id AND action = 'approved') FROM approvals.batches b WHERE id = '$bb'")"
    check "$mode: the launcher is still the same process (pid $L)" "$L" "$(launchers)"
}
drop_cycle idle
drop_cycle busy

cleanup
trap - EXIT
check "scratch databases dropped, extension present in postgres" "0|1" \
    "$(sql -c "SELECT (SELECT count(*) FROM pg_database WHERE datname LIKE 'ap_life_%_$RUN'),
                      (SELECT count(*) FROM pg_extension WHERE extname = 'approvals')")"
echo "# 40_lifecycle: $N tests, $FAILS failed, $((SECONDS - T0)) s"
[[ $FAILS -eq 0 ]]
