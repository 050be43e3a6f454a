#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start/ap_stop take optional arguments
# Build and install approvals, start (or reuse) a private demo cluster with approvals and
# pg_cron preloaded, create both extensions in database postgres (updating approvals to the
# installed version), run test/demo.sql, and leave the cluster running. Safe to run again:
# the cluster is reused (restarted only when the installed library or its settings changed)
# and each run of test/demo.sql shows only its own rows.
#
#   bash test/demo.sh          build, install, (re)start the demo cluster and run the demo
#   bash test/demo.sh stop     stop the demo cluster (its data stays for the next run)
set -euo pipefail

# shellcheck source=test/lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
ap_need_root "$@"
cd "$AP_ROOT"

PORT=54329
DEMO_SQL=$AP_ROOT/test/demo.sql
# Small chunks, so that the demo's batch of 30 000 claims takes a few seconds to watch.
DEMO_CONF="approvals.chunk_size = 500    # test/demo.sh: small chunks, to watch the batch move"

case ${1:-} in
    '') ;;
    stop)
        ap_use_cluster demo "$PORT"
        ap_lock
        if ap_postmaster_pid >/dev/null; then
            ap_stop && echo "The demo cluster is stopped (data kept in $AP_PGDATA)."
        else
            echo "The demo cluster is not running."
        fi
        exit 0 ;;
    *) ap_die "usage: bash test/demo.sh [stop]" ;;
esac
START=$SECONDS

# On failure say where to look; the cluster (if it started) is left running for inspection.
on_exit() {
    local rc=$?
    [[ $rc -eq 0 ]] || echo "demo failed (exit status $rc); server log: ${AP_LOG:-none}" >&2
}
trap on_exit EXIT

ap_install_deps || ap_die "could not install the required packages"
ap_use_cluster demo "$PORT"
ap_lock
export AP_FSYNC=on   # a durable cluster, unlike the test one

echo "== build and install"
ap_prepare_dirs
if ! ap_build "$AP_CLUSTER/build.log"; then
    tail -n 60 "$AP_CLUSTER/build.log"
    ap_die "build failed (full log: $AP_CLUSTER/build.log)"
fi
grep 'warning:' "$AP_CLUSTER/build.log" || true

echo "== demo cluster"
ap_start "$DEMO_CONF" || ap_die "the demo cluster did not start (log: $AP_LOG)"
PGOPTIONS='-c client_min_messages=warning' ap_psql -q -d postgres \
    -c "CREATE EXTENSION IF NOT EXISTS approvals" -c "ALTER EXTENSION approvals UPDATE" \
    -c "CREATE EXTENSION IF NOT EXISTS pg_cron"

if [[ -f $DEMO_SQL ]]; then
    echo "== test/demo.sql"
    ap_psql -d postgres -f "$DEMO_SQL"
else
    ap_note "test/demo.sql does not exist yet; skipped"
fi

cat <<EOF
== done in $((SECONDS - START)) s. The demo cluster keeps running (data: $AP_PGDATA, log: $AP_LOG).
Connect (unix socket only, trust authentication; as root or any local user):
    psql -h $AP_PGHOST -p $AP_PGPORT -U postgres postgres
Stop it (bash $AP_ROOT/test/demo.sh starts it again):
    bash $AP_ROOT/test/demo.sh stop
  which runs, as the postgres OS user:
    runuser -u postgres -- $AP_BIN/pg_ctl -D $AP_PGDATA stop
EOF
