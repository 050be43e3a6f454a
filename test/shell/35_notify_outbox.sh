#!/usr/bin/env bash
# 35_notify_outbox: decisions hand their NOTIFY approvals to the scheduler (approvals.outbox)
# instead of serializing their own commits; a listener still gets every one, in commit order,
# within 1 s, and only for what committed.
#   - the notification comes from the scheduler's process, not the deciding backend
#   - commit order: A decides first but commits after B: B's notification comes first
#   - a rolled-back savepoint drops its notification; a rolled-back transaction sends none
#   - approvals.notify = off sends nothing
#   - two equal payloads (NOTIFY folds equal payloads within one transaction) both arrive
#   - each arrives within 1 s of its commit; the outbox is empty afterwards
#   - in a database no scheduler serves, the deciding backend NOTIFYs itself
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

RUN=n$(date +%s)$$
OUT=$(mktemp -d)
chmod 755 "$OUT"
OTHER_DB=approvals_notify_$$
cleanup() {
    sql -c "DROP DATABASE IF EXISTS $OTHER_DB" >/dev/null 2>&1
    rm -rf "$OUT"
}
trap cleanup EXIT

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
PGOPTIONS='-c client_min_messages=warning' sql -c "CREATE EXTENSION IF NOT EXISTS approvals" >/dev/null
wait_true 30 "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'approvals scheduler'
                             AND datname = 'postgres')" \
    || { not_ok "a scheduler serves database postgres"; exit 1; }
ok "a scheduler serves database postgres"
SCHED=$(sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'approvals scheduler' AND datname = 'postgres'")
for i in 1 2 3 4 5 6 7; do
    sql -c "SELECT id FROM approvals.submit('$RUN', 'r$i', 'h', actor => 'req', id => '$RUN-c$i')" >/dev/null
done

# The listener: 50 polls of 0.1 s, each printing the time it ended; psql prints a notification
# after the result of the poll during which it arrived.
{
    echo "LISTEN approvals;"
    for _ in $(seq 1 50); do echo "SELECT 'at', extract(epoch FROM clock_timestamp()) FROM pg_sleep(0.1);"; done
} >"$OUT/listen.sql"
timeout 30 "$AP_BIN/psql" -X -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres -d postgres -At \
    -f "$OUT/listen.sql" >"$OUT/listen.out" 2>&1 &
LISTENER=$!
sleep 0.5

decide() { echo "SELECT status FROM approvals.decide('$RUN-$1', 'approved', actor => 'rev');"; }
# commit order: A decides c1 first and commits after B has committed c2
sql -c "BEGIN" -c "$(decide c1)" -c "SELECT pg_sleep(0.6)" -c "COMMIT" >/dev/null &
A=$!
sleep 0.2
sql -c "$(decide c2)" >/dev/null
wait "$A"
# savepoint rolled back; transaction rolled back; notifications off
sql -c "BEGIN" -c "$(decide c3)" -c "SAVEPOINT s" -c "$(decide c4)" -c "ROLLBACK TO s" -c "COMMIT" >/dev/null
sql -c "BEGIN" -c "$(decide c5)" -c "ROLLBACK" >/dev/null
sql -c "SET approvals.notify = off" -c "$(decide c6)" >/dev/null
# two equal payloads waiting in the outbox, then a decision that wakes the scheduler
sql -c "INSERT INTO approvals.outbox (payload) VALUES ('{\"same\":\"$RUN\"}'), ('{\"same\":\"$RUN\"}')"
T_C7=$(sql -c "SELECT status FROM approvals.decide('$RUN-c7', 'approved', actor => 'rev')" \
           -c "SELECT extract(epoch FROM clock_timestamp())" | tail -n 1)
wait "$LISTENER"

# the notifications of this run, in order, with the pid that sent them
got=$(grep -o "payload \"[^\"]*\\(\"[^\"]*\\)*\" received from server process with PID [0-9]*" "$OUT/listen.out" \
      | grep -E "$RUN" | sed -E 's/.*"claim_id":"[^"]*-(c[0-9])".*PID ([0-9]+)/\1 \2/; s/.*"same":"[^"]*".*PID ([0-9]+)/same \1/')
order=$(awk '{ printf "%s ", $1 }' <<<"$got")
check "every committed decision notified, in commit order, once" "c2 c1 c3 same same c7 " "$order"
pids=$(awk '{ print $2 }' <<<"$got" | sort -u | tr '\n' ' ')
check "sent by the scheduler (pid $SCHED)" "$SCHED " "$pids"
# arrival of c7: no later than the end of the poll after which psql printed it
arrived=$(awk -v run="$RUN" '/^at\|/ { split($0, f, "|"); t = f[2] } index($0, run "-c7") { print t; exit }' "$OUT/listen.out")
if [[ -n $arrived ]] && awk -v a="$arrived" -v c="$T_C7" 'BEGIN { exit !(a - c <= 1.0) }'; then
    ok "c7 arrived within 1 s of its commit ($(awk -v a="$arrived" -v c="$T_C7" 'BEGIN { printf "%.2f", a - c }') s)"
else
    not_ok "c7 arrived within 1 s of its commit (commit $T_C7, seen by $arrived)"
fi
check "the outbox is empty" "0" "$(sql -c "SELECT count(*) FROM approvals.outbox")"

# a database that no scheduler serves (run.sh restricts the worker to postgres): direct NOTIFY
sql -c "CREATE DATABASE $OTHER_DB" >/dev/null
PGOPTIONS="-c client_min_messages=warning" sqld "$OTHER_DB" -c "CREATE EXTENSION approvals" >/dev/null 2>&1
res=$(timeout 30 "$AP_BIN/psql" -X -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres -d "$OTHER_DB" -At 2>&1 <<SQL
LISTEN approvals;
SELECT 'me', pg_backend_pid();
SELECT status FROM approvals.submit('$RUN', 'x', 'h', actor => 'req', id => '$RUN-x');
SELECT status FROM approvals.decide('$RUN-x', 'rejected', actor => 'rev');
SELECT 'outbox', count(*) FROM approvals.outbox;
SQL
)
me=$(sed -n 's/^me|//p' <<<"$res")
if grep -q "\"claim_id\":\"$RUN-x\".*received from server process with PID $me\." <<<"$res"; then
    ok "unserved database: the deciding backend notifies itself"
else
    not_ok "unserved database: the deciding backend notifies itself"; echo "# $res"
fi
check "unserved database: nothing written to its outbox" "outbox|0" "$(grep '^outbox|' <<<"$res")"
echo "1..$N"
exit $((FAILS > 0))
