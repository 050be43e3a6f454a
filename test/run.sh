#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start/ap_stop take optional arguments
# Build, install and run every test layer against a fresh private scratch cluster.
#
#   bash test/run.sh
#
# Layers: build (warning-free), pg_regress (REGRESS), isolation (ISOLATION), pgTAP
# (test/pgtap/*.sql via pg_prove), shell tests (test/shell/*.sh). Each test is counted; the
# last line printed is "N passed, N failed". Exit status 0 only if nothing failed and
# something passed. Needs root (re-runs itself through sudo otherwise).
set -euo pipefail

# shellcheck source=test/lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
ap_need_root "$@"
cd "$AP_ROOT"

PORT=54330
PASSED=0
FAILED=0
DONE=

pass() { PASSED=$((PASSED + $1)); }
fail() { FAILED=$((FAILED + $1)); }
header() { printf '\n== %s ==\n' "$*"; }

# Print the final line and exit: 0 only if nothing failed and something passed.
finish() {
    DONE=1
    echo "$PASSED passed, $FAILED failed"
    [[ $FAILED -eq 0 && $PASSED -gt 0 ]] && exit 0
    exit 1
}

# Always stop the scratch cluster; if the script dies early, still end with the summary line.
# shellcheck disable=SC2317  # reached through the EXIT trap
on_exit() {
    local rc=$?
    trap - EXIT
    # A test still running (interrupted): timeout passes the TERM on to its whole group.
    if [[ -n ${CMD_PID:-} ]]; then kill -TERM "$CMD_PID" 2>/dev/null || true; fi
    if [[ -n ${SHOW_PID:-} ]]; then kill -TERM "$SHOW_PID" 2>/dev/null || true; fi
    if [[ -n ${AP_PGDATA:-} ]]; then ap_stop >/dev/null 2>&1 || true; fi
    if [[ -z $DONE ]]; then
        echo "run.sh stopped early (exit status $rc)"
        fail 1
        finish
    fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build -----------------------------------------------------------------------------

ap_install_deps || ap_die "could not install the required packages"
ap_use_cluster test "$PORT"
ap_lock
export AP_FSYNC=off
# The worker serves database postgres only, so that the batches the pg_regress, isolation and
# pgTAP databases queue stay as their tests leave them; test/shell/15_worker_databases.sh
# lifts the restriction to test the worker in every database.
export AP_EXTRA_CONF="approvals.database = 'postgres'"

# A fresh cluster every run: stop whatever an interrupted run left, then delete it.
ap_stop >/dev/null 2>&1 || true
case $AP_CLUSTER in
    */.pgtest | /var/tmp/approvals-test-*) rm -rf "$AP_CLUSTER" ;;
    *) ap_die "refusing to delete unexpected cluster directory $AP_CLUSTER" ;;
esac
ap_prepare_dirs

header "build"
BUILD_LOG=$AP_CLUSTER/build.log
if ! ap_build "$BUILD_LOG" clean; then
    tail -n 60 "$BUILD_LOG"
    echo "not ok - build is warning-free (make failed; full log: $BUILD_LOG)"
    fail 1
    finish
fi
if grep -q 'warning:' "$BUILD_LOG"; then
    # The warnings with a few lines of context, without the long compiler command lines.
    grep -B1 -A4 'warning:' "$BUILD_LOG" | grep -vE '^(gcc|cc|clang|/usr/bin/clang|make)' \
        | head -n 100 || true
    echo "not ok - build is warning-free (full log: $BUILD_LOG)"
    fail 1
else
    echo "ok - build is warning-free"
    pass 1
fi

header "scratch cluster"
if ! ap_start; then
    echo "not ok - scratch cluster starts"
    fail 1
    finish
fi
echo "running: data $AP_PGDATA, socket $AP_PGHOST, port $AP_PGPORT, log $AP_LOG"

# --- pg_regress and isolation ----------------------------------------------------------

# run_regress TITLE TOOL MAKEVAR INPUTDIR DBNAME: run the tests named in the Makefile's
# MAKEVAR with TOOL (pg_regress or pg_isolation_regress) and count each test's status line.
run_regress() {
    local title=$1 tool=$2 var=$3 inputdir=$4 db=$5
    local outdir=$AP_CLUSTER/$db tests t status
    read -r -a tests <<<"$(ap_make_var "$var")"
    header "$title"
    if [[ ${#tests[@]} -eq 0 ]]; then
        echo "skipped: no $var tests in the Makefile"
        return 0
    fi
    mkdir -p "$outdir"
    # Not --use-existing: with it pg_regress neither creates the database nor loads the
    # extension. Without it, it (re)creates $db on our server exactly as installcheck does.
    run_logged "$outdir/stdout.txt" '^(SET|DROP DATABASE|CREATE DATABASE|ALTER DATABASE)$' \
        "$tool" --bindir="$AP_BIN" \
        --host="$AP_PGHOST" --port="$AP_PGPORT" --user=postgres \
        --inputdir="$inputdir" --outputdir="$outdir" \
        --load-extension=approvals --dbname="$db" "${tests[@]}"
    # PG15 prints e.g. "test claims   ... ok   25 ms" or "... FAILED" (parallel groups
    # indent instead of "test"). A test with no status line failed (tool aborted).
    local bad=0
    for t in "${tests[@]}"; do
        status=$(sed -nE "s/^(test)? +$t +\.\.\. +(ok|FAILED|failed \(ignored\)).*/\2/p" \
                 "$outdir/stdout.txt" | head -n 1) || true
        case $status in
            ok | "failed (ignored)") pass 1 ;;
            FAILED) fail 1; bad=1 ;;
            *) echo "not ok - $t: no result (exit status $RC)"; fail 1; bad=1 ;;
        esac
    done
    if [[ $bad -eq 1 || $RC -ne 0 ]] && [[ -s $outdir/regression.diffs ]]; then
        echo "--- $outdir/regression.diffs (first 200 lines)"
        head -n 200 "$outdir/regression.diffs"
    fi
}

PGXS_DIR=$(dirname "$("$AP_PG_CONFIG" --pgxs)")/..
run_regress "pg_regress" "$PGXS_DIR/test/regress/pg_regress" REGRESS \
    "$AP_ROOT" approvals_regress
run_regress "isolation" "$PGXS_DIR/test/isolation/pg_isolation_regress" ISOLATION \
    "$AP_ROOT/test/isolation" approvals_isolation

# --- pgTAP -----------------------------------------------------------------------------

run_pgtap() {
    local files=() out=$AP_CLUSTER/pgtap.txt
    header "pgTAP"
    mapfile -t files < <(cd "$AP_ROOT" && find test/pgtap -maxdepth 1 -name '*.sql' \
                                               2>/dev/null | LC_ALL=C sort)
    if [[ ${#files[@]} -eq 0 ]]; then
        echo "skipped: no test/pgtap/*.sql"
        return 0
    fi
    if ! fresh_db approvals_tap \
         || ! ap_psql -q -d approvals_tap -c "CREATE EXTENSION pgtap" \
                      -c "CREATE EXTENSION approvals"; then
        echo "not ok - create database approvals_tap with pgtap and approvals"
        fail 1
        return 0
    fi
    run_logged "$out" '' pg_prove --norc --nocolor --psql-bin "$AP_BIN/psql" \
        --host "$AP_PGHOST" --port "$AP_PGPORT" --username postgres \
        --dbname approvals_tap "${files[@]}"
    # Total assertions from "Files=N, Tests=M"; failures from the Test Summary Report:
    # "FILE (Wstat: W [(exited N)] Tests: T Failed: F)" counts F, at least 1 if the file died
    # (Wstat != 0: dubious) or had parse errors (bad plan, no plan).
    local total failed
    total=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$out" | tail -n 1)
    failed=$(awk '
        function flush() { if (file) sum += (f > 0 ? f : (bad ? 1 : 0)); file = 0 }
        /^Test Summary Report/ { report = 1; next }
        !report { next }
        /^Files=[0-9]+, Tests=/ { flush(); report = 0; next }
        /\(Wstat: [0-9]+.* Tests: [0-9]+ Failed: [0-9]+\)$/ {
            flush(); file = 1
            match($0, /Wstat: [0-9]+/); bad = (substr($0, RSTART + 7, RLENGTH - 7) + 0 != 0)
            match($0, /Failed: [0-9]+/); f = substr($0, RSTART + 8, RLENGTH - 8) + 0
            next }
        file && /^ +Parse errors:/ { bad = 1 }
        END { flush(); print sum + 0 }' "$out")
    if [[ -z $total ]]; then
        echo "not ok - pg_prove produced no summary (exit status $RC)"
        fail 1
        return 0
    fi
    # Failed assertions are part of Tests=; failures of whole files (died, bad plan) are not.
    local failed_asserts
    failed_asserts=$(awk '/^Test Summary Report/ { r = 1 } r && match($0, /Failed: [0-9]+\)$/) {
        s += substr($0, RSTART + 8, RLENGTH - 9) } END { print s + 0 }' "$out")
    [[ $RC -ne 0 && $failed -eq 0 ]] && failed=1
    pass $((total - failed_asserts))
    fail "$failed"
    echo "pgTAP: $((total - failed_asserts)) assertions passed, $failed failed"
}
run_pgtap

# --- shell tests -----------------------------------------------------------------------

run_shell_tests() {
    local files=() f log n_ok n_not
    header "shell tests"
    mapfile -t files < <(cd "$AP_ROOT" && find test/shell -maxdepth 1 -name '*.sh' \
                                               2>/dev/null | LC_ALL=C sort)
    if [[ ${#files[@]} -eq 0 ]]; then
        echo "skipped: no test/shell/*.sh"
        return 0
    fi
    mkdir -p "$AP_CLUSTER/shell"
    for f in "${files[@]}"; do
        log=$AP_CLUSTER/shell/$(basename "$f" .sh).txt
        echo "--- $f"
        # fd 9 (the run lock) is not passed on: a server started by a test must not hold it.
        run_logged "$log" '' bash "$AP_ROOT/$f" 9>&-
        n_ok=$(grep -cE '^ok [0-9]+' "$log" || true)
        n_not=$(grep -cE '^not ok [0-9]+' "$log" || true)
        pass "$n_ok"
        fail "$n_not"
        if [[ $RC -ne 0 && $n_not -eq 0 ]]; then
            echo "not ok - $f exited with status $RC"
            fail 1
        elif [[ $RC -eq 0 && $((n_ok + n_not)) -eq 0 ]] && ! grep -qE '^1\.\.0' "$log"; then
            echo "not ok - $f reported no results"
            fail 1
        fi
        # A crash test may leave the server down; bring it back for the next script.
        if ! ap_start >/dev/null; then
            echo "not ok - scratch cluster restarts after $f"
            fail 1
            return 0
        fi
    done
}
run_shell_tests

# --- done ------------------------------------------------------------------------------

header "stop"
ap_stop || true
echo
finish
