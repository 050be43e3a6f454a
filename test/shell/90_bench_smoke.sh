#!/usr/bin/env bash
# 90_bench_smoke: the benchmarks under test/bench/ run, tiny, on the test cluster (their
# timings mean nothing here; no timing is asserted). Each checks its own work and fails when it
# is wrong: bench.sh that every batch completed and every claim was decided exactly once by
# run_queued and by the worker; single.sh that pgbench had no failed transaction and that every
# approved claim has its audit event; inbox.sh that its pages equal plain SQL's and continue
# one another; router.sh that its calls through approvals_router were decided on the node;
# audit.sh that every seal verifies and covers each event once. Runs last: the benchmarks
# recreate the extension in database postgres.
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
export BENCH_SMOKE=1
if out=$(timeout 600 bash "$AP_ROOT/test/bench/bench.sh" 2000 1 2>&1) \
    && grep -q '^plan stability: ' <<<"$out" && grep -q '^worker ' <<<"$out" \
    && grep -Eq '^  create +[0-9]' <<<"$out" && grep -Eq '^  process +[0-9]' <<<"$out"; then
    ok "bench.sh 2000 (1 round): every variant ran and checked its work"
else
    not_ok "bench.sh 2000"; sed 's/^/#   /' <<<"$out" | tail -n 20
fi
if out=$(timeout 600 bash "$AP_ROOT/test/bench/single.sh" 2 1 2 2>&1) \
    && grep -q '^median ratio ' <<<"$out"; then
    ok "single.sh (2 s, 1 round, 2 clients): both variants ran without a failed transaction"
else
    not_ok "single.sh"; sed 's/^/#   /' <<<"$out" | tail -n 20
fi
if out=$(timeout 600 bash "$AP_ROOT/test/bench/inbox.sh" 2000 20 20 2>&1) \
    && grep -q '^inbox of a delegate ' <<<"$out"; then
    ok "inbox.sh (2000 claims, 20 approvers): every page equals plain SQL's, pages continue"
else
    not_ok "inbox.sh"; sed 's/^/#   /' <<<"$out" | tail -n 20
fi
if out=$(timeout 600 bash "$AP_ROOT/test/bench/router.sh" 2 1 2 2>&1) \
    && grep -q '^median ratio ' <<<"$out"; then
    ok "router.sh (2 s, 1 round, 2 clients): calls through the router reached the node, none failed"
else
    not_ok "router.sh"; sed 's/^/#   /' <<<"$out" | tail -n 20
fi
if out=$(timeout 600 bash "$AP_ROOT/test/bench/audit.sh" 2000 2>&1) \
    && grep -Eq '^approver_stats \(30 days\) +[0-9]' <<<"$out"; then
    ok "audit.sh 2000: every seal verifies, every event is in exactly one seal"
else
    not_ok "audit.sh"; sed 's/^/#   /' <<<"$out" | tail -n 20
fi
PGOPTIONS='-c client_min_messages=warning' sql -c "DROP SCHEMA IF EXISTS plain CASCADE" \
    -c "DROP TABLE IF EXISTS ids, ids2, floor_items, g_items" >/dev/null
echo "1..$N"
exit $((FAILS > 0))
