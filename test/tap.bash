# Helpers for test/shell/*.sh (sourced after test/lib.sh): TAP-ish output lines that
# test/run.sh counts, and psql calls on the scratch cluster that are bounded in time.
#   ok DESC / not_ok DESC          print "ok N - DESC" / "not ok N - DESC" (FAILS counts these)
#   check DESC EXPECTED ACTUAL     ok when equal, else not ok with both values
#   sqld DB ARGS... / sql ARGS...  psql -qAt on DB (sql: on postgres), SQL_TIMEOUT s (30)
#   wait_true SECONDS QUERY        poll a boolean QUERY every WAIT_INTERVAL s (0.1) until t
#   grand_total PID                the memory-context grand total of backend PID, in bytes
#                                  (pg_log_backend_memory_contexts, read back from \$AP_LOG)
# shellcheck shell=bash

N=0
FAILS=0
ok() { N=$((N + 1)); echo "ok $N - $*"; }
not_ok() { N=$((N + 1)); FAILS=$((FAILS + 1)); echo "not ok $N - $*"; }
check() {
    if [[ $3 == "$2" ]]; then ok "$1"; else not_ok "$1"; echo "#   expected: $2"; echo "#   got:      $3"; fi
}
sqld() {
    local db=$1
    shift
    timeout -k 5 "${SQL_TIMEOUT:-30}" "$AP_BIN/psql" -X -v ON_ERROR_STOP=1 -h "$AP_PGHOST" \
        -p "$AP_PGPORT" -U postgres -d "$db" -qAt "$@"
}
sql() { sqld postgres "$@"; }
wait_true() {
    local deadline=$((SECONDS + $1)) r
    while ((SECONDS < deadline)); do
        r=$(sql -c "$2" 2>/dev/null) && [[ $r == t ]] && return 0
        sleep "${WAIT_INTERVAL:-0.1}"
    done
    [[ $(sql -c "$2" 2>/dev/null) == t ]]
}
grand_total() {
    local pid=$1 before i line
    before=$(grep -c "\[$pid\] LOG:  Grand total" "$AP_LOG")
    sql -c "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null || return 1
    for ((i = 0; i < 100; i++)); do
        line=$(grep "\[$pid\] LOG:  Grand total" "$AP_LOG" | sed -n "$((before + 1))p")
        if [[ -n $line ]]; then
            sed -E 's/.*Grand total: ([0-9]+) bytes.*/\1/' <<<"$line"
            return 0
        fi
        sleep 0.1
    done
    return 1
}
