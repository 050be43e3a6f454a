# shellcheck shell=bash
# Shared helpers for test/run.sh, test/demo.sh and test/shell/*.sh.
#
# Source it; it only defines variables and functions (and sets no shell options).
# Everything runs against a private cluster: its own data directory, a unix socket in a
# directory inside the cluster directory, a private port and no TCP listener.
#
#   ap_need_root "$@"        re-exec the calling script as root (via sudo) when needed
#   ap_install_deps          apt-get install whatever Debian packages are missing
#   ap_build LOG [clean]     make (+ make install) with the output captured in LOG
#   ap_use_cluster test|demo PORT
#                            choose the cluster directory and export AP_* / PG* for it
#   ap_lock                  serialise runs that use the same cluster
#   ap_start [CONF_LINE...]  initdb if needed, write settings, start (or reuse) the server
#   ap_stop [MODE]           stop the server if it runs (default mode: fast)
#   ap_psql ARGS...          psql -X -v ON_ERROR_STOP=1 on the private socket as postgres
#   ap_pg_ctl ARGS...        pg_ctl for the cluster, run as the postgres OS user
#   ap_postmaster_pid        print the live postmaster's PID (fails if none), for kill -9 tests
#   run_logged LOG HIDE CMD... run CMD under a timeout, output to LOG and shown as it grows
#   fresh_db NAME            (re)create database NAME on the cluster
#   ap_is_ready / ap_wait_ready SECONDS
#                            the server accepts connections (now / within SECONDS)
#
# Variables (exported by ap_use_cluster, inherited by test/shell/*.sh):
#   AP_ROOT  AP_BIN  AP_PG_CONFIG  AP_CLUSTER  AP_PGDATA  AP_PGHOST  AP_PGPORT  AP_LOG
#   AP_FSYNC (on|off)  AP_EXTRA_CONF (extra postgresql.conf lines, newline separated)
#   AP_TIMEOUT (seconds allowed to one test tool run, default 1200)

: "${AP_ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)}"
if [[ -z ${AP_PG_CONFIG:-} ]]; then
    # The versioned pg_config first: /usr/bin/pg_config picks the newest installed major.
    if [[ -x /usr/lib/postgresql/15/bin/pg_config ]]; then
        AP_PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
    else
        AP_PG_CONFIG=/usr/bin/pg_config
    fi
fi
: "${AP_BIN:=/usr/lib/postgresql/15/bin}"
: "${AP_FSYNC:=on}"
: "${AP_EXTRA_CONF:=}"
: "${AP_TIMEOUT:=1200}"
export AP_ROOT AP_PG_CONFIG AP_BIN AP_FSYNC AP_EXTRA_CONF AP_TIMEOUT

# Debian packages the build and every test layer need.
AP_PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap postgresql-15-cron postgresql-15-plproxy
             libtap-parser-sourcehandler-pgtap-perl libipc-run-perl make gcc libc6-dev)

ap_note() { printf 'note: %s\n' "$*"; }
ap_die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# Re-run the calling script as root through sudo unless already root.
# sudo may ask for a password only when there is a terminal to type it on.
ap_need_root() {
    [[ $EUID -eq 0 ]] && return 0
    command -v sudo >/dev/null 2>&1 || ap_die "run this as root (sudo is not installed)"
    local script
    script=$(readlink -f "$0")
    if sudo -n true 2>/dev/null; then
        exec sudo -n -E bash "$script" "$@"
    fi
    [[ -t 0 ]] || ap_die "run this as root, or give this user passwordless sudo"
    exec sudo -E bash "$script" "$@"
}

# Install missing packages (one apt-get update, only when something is missing).
ap_install_deps() {
    local p missing=()
    for p in "${AP_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    ap_note "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || return 1
    apt-get install -y -q --no-install-recommends "${missing[@]}" || return 1
    [[ -x $AP_BIN/postgres ]] || AP_BIN=$("$AP_PG_CONFIG" --bindir)
}

# Build and install the extension; all output goes to LOG. With "clean", rebuild everything
# so that LOG holds every compiler warning. Under sudo the tree is built as the invoking user
# (when that user owns the checkout) so no root-owned objects are left in it.
ap_build() {
    local log=$1 clean=${2:-} as_user=()
    if [[ -n ${SUDO_USER:-} && $SUDO_USER != root \
          && $(stat -c %U "$AP_ROOT") == "$SUDO_USER" ]]; then
        as_user=(runuser -u "$SUDO_USER" --)
    fi
    local make=(make -C "$AP_ROOT" PG_CONFIG="$AP_PG_CONFIG")
    {
        if [[ -n $clean ]]; then "${as_user[@]}" "${make[@]}" clean || return 1; fi
        "${as_user[@]}" "${make[@]}" || return 1
        "${make[@]}" install || return 1
    } >"$log" 2>&1
}

# Print the value of a Makefile variable (e.g. REGRESS), expanded by make itself; falls back
# to reading the assignment lines when make cannot parse the Makefile.
ap_make_var() {
    local var=$1 out
    # shellcheck disable=SC2016  # $(VAR) is for make, not the shell
    if out=$(printf 'ap-print-var:\n\t@echo $(%s)\n' "$var" \
             | make -s --no-print-directory -C "$AP_ROOT" -f Makefile -f - \
                    PG_CONFIG="$AP_PG_CONFIG" ap-print-var 2>/dev/null); then
        printf '%s\n' "$out"
        return 0
    fi
    awk -v v="$var" '
        { line = $0
          while (line ~ /\\$/ && (getline nxt) > 0) line = substr(line, 1, length(line) - 1) " " nxt
          sub(/#.*/, "", line) }
        line ~ ("^[ \t]*" v "[ \t]*[:+]?=") {
          plus = (line ~ ("^[ \t]*" v "[ \t]*\\+="))
          sub(/^[^=]*=/, "", line)
          val = plus ? val " " line : line }
        END { print val }' "$AP_ROOT/Makefile"
}

# A short, stable hash of the checkout path (names fallback directories and lock files).
ap_hash() { printf '%s' "$AP_ROOT" | sha256sum | cut -c1-10; }

# Choose the cluster for PURPOSE (test -> $AP_ROOT/.pgtest, demo -> $AP_ROOT/.pgdata) on PORT.
# Falls back to /var/tmp/approvals-PURPOSE-HASH when the postgres OS user cannot reach the
# checkout, or when the socket path would be too long for a unix socket.
ap_use_cluster() {
    local purpose=$1 port=$2 dir
    AP_PURPOSE=$purpose
    case $purpose in
        test) dir=$AP_ROOT/.pgtest ;;
        demo) dir=$AP_ROOT/.pgdata ;;
        *)    dir=$AP_ROOT/.pg$purpose ;;
    esac
    if ! runuser -u postgres -- test -x "$AP_ROOT" 2>/dev/null; then
        dir=/var/tmp/approvals-$purpose-$(ap_hash)
        ap_note "postgres cannot enter $AP_ROOT; using $dir for the $purpose cluster"
    elif (( ${#dir} + ${#port} + 16 > 107 )); then
        dir=/var/tmp/approvals-$purpose-$(ap_hash)
        ap_note "socket path under $AP_ROOT is too long; using $dir for the $purpose cluster"
    fi
    AP_CLUSTER=$dir
    AP_PGDATA=$dir/data
    AP_PGHOST=$dir/sock
    AP_PGPORT=$port
    AP_LOG=$dir/server.log
    export AP_CLUSTER AP_PGDATA AP_PGHOST AP_PGPORT AP_LOG
    ap_pin_env
}

# ap_in_cluster PURPOSE PORT CMD...: run CMD (e.g. ap_start, ap_stop) for another cluster, in a
# subshell, so that the calling script's AP_* and PG* variables stay those of its own cluster.
ap_in_cluster() {
    local purpose=$1 port=$2
    shift 2
    (ap_use_cluster "$purpose" "$port" >/dev/null && "$@")
}

# Point libpq's environment at the private cluster only (no service files, no other host).
ap_pin_env() {
    unset PGHOSTADDR PGSERVICE PGSERVICEFILE PGDATABASE PGOPTIONS PGCLUSTER PGSSLMODE PGPASSWORD
    export PGHOST=$AP_PGHOST PGPORT=$AP_PGPORT PGUSER=postgres
}

# When lib.sh is sourced by a test/shell script, the cluster comes from the environment.
if [[ -n ${AP_PGDATA:-} && -n ${AP_PGHOST:-} && -n ${AP_PGPORT:-} ]]; then
    : "${AP_CLUSTER:=$(dirname "$AP_PGDATA")}"
    : "${AP_LOG:=$AP_CLUSTER/server.log}"
    export AP_CLUSTER AP_LOG
    ap_pin_env
fi

# Hold an exclusive lock on this checkout's PURPOSE cluster until the calling script exits
# (fd 9), so two runs never share or delete each other's cluster; waits for a run in progress.
ap_lock() {
    exec 9>"/var/tmp/approvals-$AP_PURPOSE-$(ap_hash).lock"
    if ! flock -n 9; then
        ap_note "another run is using $AP_CLUSTER; waiting for it"
        flock 9
    fi
}

# Run a command as the postgres OS user (from /, so no "could not change directory" noise).
ap_as_pg() { (cd / && runuser -u postgres -- "$@"); }

# pg_ctl for the cluster. fd 9 (the lock) is closed so a server never inherits it.
ap_pg_ctl() {
    ap_as_pg "$AP_BIN/pg_ctl" -D "$AP_PGDATA" -l "$AP_LOG" -w -t 120 -s "$@" 9>&-
}

# psql on the private socket as the postgres database user.
ap_psql() {
    "$AP_BIN/psql" -X -v ON_ERROR_STOP=1 -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres "$@"
}

# Create the cluster directory layout: root-owned top, postgres-owned data/, sock/ and log.
ap_prepare_dirs() {
    mkdir -p "$AP_CLUSTER" "$AP_PGDATA" "$AP_PGHOST"
    chmod 755 "$AP_CLUSTER" "$AP_PGHOST"
    chmod 700 "$AP_PGDATA"
    touch "$AP_LOG"
    chown postgres:postgres "$AP_PGDATA" "$AP_PGHOST" "$AP_LOG"
}

ap_initdb() {
    ap_prepare_dirs
    ap_as_pg "$AP_BIN/initdb" -D "$AP_PGDATA" --auth=trust -U postgres --encoding=UTF8 \
        --locale=C >"$AP_CLUSTER/initdb.log" 2>&1 \
        || { cat "$AP_CLUSTER/initdb.log"; return 1; }
}

# Write the cluster's settings to $AP_PGDATA/approvals_scratch.conf (included from
# postgresql.conf). Extra lines come from AP_EXTRA_CONF and then from the arguments.
ap_configure() {
    local conf=$AP_PGDATA/approvals_scratch.conf sock=${AP_PGHOST//\'/\'\'} line
    {
        echo "# Written by test/lib.sh on every start; edit AP_EXTRA_CONF instead."
        echo "port = $AP_PGPORT"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$sock'"
        echo "shared_preload_libraries = 'approvals,pg_cron'"
        echo "cron.database_name = 'postgres'"
        echo "cron.host = '$sock'    # pg_cron connects over the private socket (no TCP here)"
        echo "max_worker_processes = 16"
        echo "logging_collector = off"
        [[ $AP_FSYNC == off ]] && echo "fsync = off"
        [[ -n $AP_EXTRA_CONF ]] && printf '%s\n' "$AP_EXTRA_CONF"
        for line in "$@"; do printf '%s\n' "$line"; done
    } >"$conf.new" || return 1
    chown postgres:postgres "$conf.new" && chmod 600 "$conf.new" && mv -f "$conf.new" "$conf"
    grep -qx "include 'approvals_scratch.conf'" "$AP_PGDATA/postgresql.conf" \
        || echo "include 'approvals_scratch.conf'" >>"$AP_PGDATA/postgresql.conf"
}

# Print the PID of this cluster's live postmaster; fails when none runs. A pid file naming a
# dead process, or a process that is not a postmaster in this data directory, is stale.
ap_postmaster_pid() {
    local pid
    pid=$(head -n 1 "$AP_PGDATA/postmaster.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$(readlink -f "$AP_PGDATA")" ]] || return 1
    echo "$pid"
}

# PIDs of live processes whose working directory is the data directory (a postmaster and
# its children chdir there); zombies have no working directory and are not listed.
ap_datadir_procs() {
    local d p data
    data=$(readlink -f "$AP_PGDATA")
    for d in /proc/[0-9]*; do
        p=$(readlink "$d/cwd" 2>/dev/null) || continue
        [[ $p == "$data" ]] && echo "${d#/proc/}"
    done
    return 0
}

ap_is_ready() {
    "$AP_BIN/pg_isready" -q -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres -d postgres -t 2
}

# Wait up to $1 seconds for the server to accept connections.
ap_wait_ready() {
    local i
    for ((i = 0; i < $1; i++)); do
        ap_is_ready && return 0
        sleep 1
    done
    ap_is_ready
}

# What the running server must have loaded: the settings file and the installed library.
ap_signature() {
    cat "$AP_PGDATA/approvals_scratch.conf" "$("$AP_PG_CONFIG" --pkglibdir)/approvals.so" \
        2>/dev/null | sha256sum | cut -d' ' -f1
}

# Start the cluster, creating it first if needed. Idempotent: a running server is reused
# (restarted only if the installed library or the settings changed since it started); a
# stopped one, or one that left a stale postmaster.pid behind, is started.
ap_start() {
    ap_prepare_dirs
    if [[ ! -s $AP_PGDATA/PG_VERSION ]]; then
        ap_initdb || return 1
    fi
    ap_configure "$@" || return 1
    local sig sigfile=$AP_CLUSTER/started.sig attempt
    sig=$(ap_signature)
    # Our postmaster is alive: wait until it accepts connections (it may be starting or in
    # crash recovery), unless it dies meanwhile.
    for attempt in $(seq 1 120); do
        ap_postmaster_pid >/dev/null || break
        if ap_is_ready; then
            if [[ $sig != "$(cat "$sigfile" 2>/dev/null)" ]]; then
                ap_note "restarting the server in $AP_PGDATA (library or settings changed)"
                ap_pg_ctl restart -m fast || { tail -n 30 "$AP_LOG"; return 1; }
                echo "$sig" >"$sigfile"
            fi
            return 0
        fi
        sleep 1
    done
    if ap_postmaster_pid >/dev/null; then
        ap_note "the server in $AP_PGDATA does not accept connections"
        return 1
    fi
    # After a kill -9 of the postmaster its backends exit on their own; wait for them, then
    # the pid and socket lock files are stale (their pid may be a zombie or reused).
    for attempt in $(seq 1 30); do
        [[ -z $(ap_datadir_procs) ]] && break
        sleep 1
    done
    if [[ -n $(ap_datadir_procs) ]]; then
        ap_note "processes still use $AP_PGDATA: $(ap_datadir_procs | tr '\n' ' ')"
        return 1
    fi
    if [[ -e $AP_PGDATA/postmaster.pid ]]; then
        ap_note "removing stale $AP_PGDATA/postmaster.pid"
        rm -f "$AP_PGDATA/postmaster.pid"
    fi
    rm -f "$AP_PGHOST/.s.PGSQL.$AP_PGPORT" "$AP_PGHOST/.s.PGSQL.$AP_PGPORT.lock"
    for attempt in 1 2 3; do
        if ap_pg_ctl start; then
            echo "$sig" >"$sigfile"
            return 0
        fi
        [[ $attempt -lt 3 ]] && sleep 2
    done
    ap_note "server failed to start; end of $AP_LOG:"
    tail -n 30 "$AP_LOG"
    return 1
}

# Stop the server if it runs: MODE (default fast), then immediate if that fails.
ap_stop() {
    ap_postmaster_pid >/dev/null || return 0
    ap_pg_ctl stop -m "${1:-fast}" || ap_pg_ctl stop -m immediate
}

# --- for the test drivers (test/run.sh, test/valgrind.sh) -------------------------------

# run_logged LOG HIDE CMD...: run CMD under a timeout (AP_RUN_TIMEOUT, else AP_TIMEOUT
# seconds) with its output going to LOG, and show LOG as it grows, except lines matching the
# regex HIDE (when not empty); sets RC to CMD's status. CMD runs in the background so that
# INT/TERM interrupt the run at once (the driver's on_exit then ends CMD_PID), and so that a
# stray process keeping CMD's output open cannot hang us.
RC=0
CMD_PID=
SHOW_PID=
run_logged() {
    local log=$1 hide=$2 timeout=${AP_RUN_TIMEOUT:-$AP_TIMEOUT}
    shift 2
    : >"$log"
    timeout -k 30 "$timeout" "$@" >"$log" 2>&1 &
    CMD_PID=$!
    if [[ -n $hide ]]; then
        tail -s 0.2 -n +1 -f --pid="$CMD_PID" "$log" | grep --line-buffered -vE "$hide" &
    else
        tail -s 0.2 -n +1 -f --pid="$CMD_PID" "$log" &
    fi
    SHOW_PID=$!
    RC=0
    wait "$CMD_PID" || RC=$?
    CMD_PID=
    wait "$SHOW_PID" || true
    SHOW_PID=
    if [[ $RC -eq 124 ]]; then echo "(timed out after ${timeout}s)"; fi
    return 0
}

# (Re)create database $1 on the scratch cluster.
fresh_db() {
    PGOPTIONS='-c client_min_messages=warning' ap_psql -q -d postgres \
        -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
}
