# shellcheck shell=bash
# Shared by the benchmarks under test/bench/: a private cluster (port 54331) with the
# extension freshly created in database postgres (where the worker runs), and helpers.
#
#   bench_setup          build, install, start the bench cluster, recreate the extension
#   bq ARGS...           psql -Atq on database postgres, warnings only
#   median A B C ...     the median of numbers
#   bench_pgbench WHAT DB CLIENTS SECONDS FILE [-D VAR=VALUE ...]
#                        one pgbench run (prepared statements); prints "TPS LATENCY_MS", dies
#                        when pgbench fails or a transaction failed
# BENCH_SMOKE=1 (set by the test suite) makes every benchmark tiny: it checks that the
# benchmark runs and its work is correct, and its timings mean nothing.
# shellcheck source=test/lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"

bq() { PGOPTIONS="-c client_min_messages=warning" ap_psql -d postgres -Atq "$@"; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

bench_pgbench() {
    local what=$1 db=$2 clients=$3 secs=$4 file=$5 out
    shift 5
    out=$(ap_as_pg "$AP_BIN/pgbench" -n -M prepared -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres \
        -c "$clients" -j "$((clients < 2 ? 1 : 2))" -T "$secs" "$@" -f "$file" "$db" 2>&1) \
        || { printf '%s\n' "$out" >&2; ap_die "pgbench $what failed"; }
    grep -q '^number of failed transactions: 0 ' <<<"$out" \
        || { printf '%s\n' "$out" >&2; ap_die "pgbench $what had failed transactions"; }
    printf '%s %s\n' \
        "$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$out")" \
        "$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' <<<"$out")"
}

bench_setup() {
    ap_install_deps || ap_die "could not install the required packages"
    if [[ -n ${BENCH_SMOKE:-} && -n ${AP_PGDATA:-} ]]; then
        # inside the test suite: its cluster, already built and running
        ap_pin_env
    else
        ap_use_cluster bench 54331
        ap_lock
        export AP_FSYNC=on
        ap_prepare_dirs
        ap_build "$AP_CLUSTER/build.log" || { tail -n 40 "$AP_CLUSTER/build.log"; ap_die "build failed"; }
        ap_start "max_connections = 100" "shared_buffers = 1GB" "max_wal_size = 8GB" \
            || ap_die "the bench cluster did not start"
        trap 'ap_stop >/dev/null 2>&1 || true' EXIT
    fi
    bq -c "DROP EXTENSION IF EXISTS approvals CASCADE" -c "DROP SCHEMA IF EXISTS plain CASCADE" \
       -c "CREATE EXTENSION approvals"
}

# The machine, for the benchmark's header.
bench_machine() {
    printf '%s, %s cores, %s GiB, PostgreSQL %s\n' \
        "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)" "$(nproc)" \
        "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 + 0.5 }' /proc/meminfo)" \
        "$(bq -c "SHOW server_version" | cut -d' ' -f1)"
}
