#!/usr/bin/env bash
# 28_chunk_lock_pass: a batch chunk decides its claims with one statement and no lock pass when
# nothing holds them, and takes the lock pass only when that statement cannot finish. The
# chunk says at DEBUG1 when it takes the lock pass ("a chunk takes the lock pass: <why>").
#   - uncontended: no such message; every claim approved, one event each
#   - a claim held FOR UPDATE by another session: still no such message (claim_row_unlocked
#     leaves the held claim out; nothing waits), the held claim fails as locked, the others
#     are approved
#   - a handler that raises for one claim: the message, naming the handler's error; that
#     claim fails with it, the others are approved, each decided once
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
RUN=lp$(date +%s)$$
HOLDER=
OUT=$(mktemp)
cleanup() {
    [[ -n $HOLDER ]] && kill "$HOLDER" 2>/dev/null
    sql -c "SELECT approvals.set_handler('lp_raise', NULL)" >/dev/null 2>&1
    rm -f "$OUT"
}
trap cleanup EXIT

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
PGOPTIONS='-c client_min_messages=warning' sql -c "CREATE EXTENSION IF NOT EXISTS approvals" >/dev/null

# submit COUNT claims of resource type TYPE named $RUN-TYPE-1..COUNT; create a batch of them
# (not started, no retry) and print its id
batch_of() {
    local type=$1 count=$2
    sql -c "SELECT count(*) FROM generate_series(1, $count) g,
            LATERAL approvals.submit('$type', '$RUN-$type-' || g, 'h', actor => 'usr_req')" >/dev/null
    sql -c "SELECT id FROM approvals.create_batch(ARRAY(SELECT id FROM approvals.claims
            WHERE resource_id LIKE '$RUN-$type-%' ORDER BY id), coordinator => 'usr_coord',
            start => false, auto_retry => false)"
}
# process_batch with DEBUG1 messages on: its result ("approved failed") and the messages go to $OUT
process_debug() {
    timeout -k 5 60 "$AP_BIN/psql" -X -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres -d postgres -qAt \
        -c "SET client_min_messages = debug1" \
        -c "SELECT count(*) FILTER (WHERE decision = 'approved') || ' ' || count(*) FILTER (WHERE decision = 'failed')
            FROM approvals.process_batch('$1')" >"$OUT" 2>&1
}
took_lock_pass() { grep -c 'a chunk takes the lock pass' "$OUT"; }
result() { grep -E '^[0-9]+ [0-9]+$' "$OUT"; }
# "approved events / distinct claims" of a batch
events_of() {
    sql -c "SELECT count(*) || ' ' || count(DISTINCT claim_id) FROM approvals.events
            WHERE batch_id = '$1' AND action = 'approved'"
}

# --- uncontended ---------------------------------------------------------------------
B1=$(batch_of lp_free 30)
process_debug "$B1"
check "uncontended: 30 approved, none failed" "30 0" "$(result)"
check "uncontended: the chunk took no lock pass" "0" "$(took_lock_pass)"
check "uncontended: one approved event per claim" "30 30" "$(events_of "$B1")"

# --- a claim held by another session --------------------------------------------------
B2=$(batch_of lp_held 30)
HELD=$(sql -c "SELECT claim_id FROM approvals.batch_items WHERE batch_id = '$B2' AND position = 10")
timeout -k 5 60 "$AP_BIN/psql" -X -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres -d postgres -qAt \
    -c "BEGIN" -c "SELECT id FROM approvals.claims WHERE id = '$HELD' FOR UPDATE" \
    -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
HOLDER=$!
if wait_true 20 "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                  WHERE l.locktype = 'transactionid' AND a.query LIKE '%pg_sleep(30)%')
               AND NOT approvals.claim_row_unlocked((SELECT ctid FROM approvals.claims WHERE id = '$HELD'))"; then
    ok "another session holds claim $HELD (claim_row_unlocked says so)"
else
    not_ok "another session holds claim $HELD (claim_row_unlocked says so)"
fi
process_debug "$B2"
check "held: 29 approved, 1 failed" "29 1" "$(result)"
check "held: the chunk took no lock pass for it (left the held claim out, waited for nothing)" \
    "0" "$(took_lock_pass)"
check "held: the held claim failed as locked" "Claim is locked by another transaction" \
    "$(sql -c "SELECT error FROM approvals.batch_items WHERE batch_id = '$B2' AND claim_id = '$HELD'")"
check "held: one approved event per approved claim" "29 29" "$(events_of "$B2")"
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
HOLDER=

# --- a handler that raises for one claim -------------------------------------------------
# (a handler runs on every state change of its claims, submit included: it refuses approvals only)
sql -c "CREATE OR REPLACE FUNCTION public.lp_raise(c approvals.claims, e approvals.events)
        RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS
        \$f\$ BEGIN IF e.action = 'approved' AND c.resource_id LIKE '%-7' THEN RAISE 'lp_raise refuses %', c.resource_id; END IF; END \$f\$" \
    -c "SELECT approvals.set_handler('lp_raise', 'public.lp_raise(approvals.claims, approvals.events)')" \
    >/dev/null || not_ok "handler set up"
B3=$(batch_of lp_raise 30)
process_debug "$B3"
check "handler: 29 approved, 1 failed" "29 1" "$(result)"
check "handler: the chunk took the lock pass, once" "1" "$(took_lock_pass)"
if grep -q "a chunk takes the lock pass: lp_raise refuses $RUN-lp_raise-7" "$OUT"; then
    ok "handler: the message names the handler's error"
else
    not_ok "handler: the message names the handler's error"; sed 's/^/#   /' "$OUT"
fi
check "handler: the failing claim's item has the handler's message" "lp_raise refuses $RUN-lp_raise-7" \
    "$(sql -c "SELECT i.error FROM approvals.batch_items i JOIN approvals.claims c ON c.id = i.claim_id
               WHERE i.batch_id = '$B3' AND c.resource_id = '$RUN-lp_raise-7'")"
check "handler: one approved event per approved claim, none for the failed one" "29 29" "$(events_of "$B3")"

echo "# 28_chunk_lock_pass: $((SECONDS - T0)) s"
