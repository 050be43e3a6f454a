#!/usr/bin/env bash
# 25_cancel_worker: cancel_batch against a batch the background worker is processing.
#   - cancel returns after the worker's current chunk, with claims_reverted = what the batch
#     had decided by then; the batch ends 'cancelled'
#   - nothing more is decided afterwards: processed_count stays put, the worker moves on
#   - every decided item is 'reverted', the rest unprocessed; every claim is pending again,
#     with one 'approved' and one 'reverted' event (or none) from the batch
#   - cancelling again is 55000 and changes nothing
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
: "${SQL_TIMEOUT:=60}"
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
RUN=c$(date +%s)$$
CLAIMS=20000
cleanup() {
    sql -c "ALTER SYSTEM RESET approvals.chunk_size" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
}
trap cleanup EXIT

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
PGOPTIONS='-c client_min_messages=warning' sql -c "CREATE EXTENSION IF NOT EXISTS approvals" >/dev/null
sql -c "ALTER SYSTEM SET approvals.chunk_size = 50" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5

sql -c "SELECT count(*) FROM generate_series(1, $CLAIMS) g,
        LATERAL approvals.submit('cancelw', '$RUN-' || g, 'h', actor => 'usr_req', amount => 1)" >/dev/null
BATCH=$(sql -c "SELECT id FROM approvals.create_batch(ARRAY(SELECT id FROM approvals.claims
        WHERE resource_id LIKE '$RUN-%' ORDER BY id), coordinator => 'usr_coord')")
if [[ $BATCH == bat_* ]]; then ok "batch of $CLAIMS claims queued"; else not_ok "batch queued"; exit 1; fi

# wait until the worker is well into the batch, then cancel it
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
    p=$(sql -c "SELECT processed_count FROM approvals.batches WHERE id = '$BATCH'")
    ((p >= 2000)) && break
    sleep 0.05
done
OUT=$(sql -c "SELECT cancelled, claims_reverted FROM approvals.cancel_batch('$BATCH', 'stop it')")
read -r CANCELLED REVERTED <<<"$(tr '|' ' ' <<<"$OUT")"
check "cancel_batch on a processing batch answers cancelled = t" "t" "$CANCELLED"
STATE=$(sql -c "SELECT status || ' ' || processed_count || ' ' || reverted_count || ' ' || approved_count
               FROM approvals.batches WHERE id = '$BATCH'")
read -r STATUS PROCESSED REV_COUNT APPROVED <<<"$STATE"
check "the batch is cancelled" "cancelled" "$STATUS"
if ((REVERTED >= 2000 && REVERTED < CLAIMS)); then
    ok "it was cancelled mid-batch ($REVERTED of $CLAIMS decided and reverted)"
else
    not_ok "it was cancelled mid-batch (claims_reverted = $REVERTED)"
fi
check "claims_reverted equals the claims processed so far" "$PROCESSED" "$REVERTED"
check "reverted_count = claims_reverted, approved_count back to 0" "$REVERTED 0" "$REV_COUNT $APPROVED"

sleep 1
check "nothing more is processed after the cancel" "$PROCESSED" \
    "$(sql -c "SELECT processed_count FROM approvals.batches WHERE id = '$BATCH'")"
check "no batch worker is still on it" "0" \
    "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%$BATCH%' AND backend_type = 'approvals batch worker'")"
check "items: the decided ones reverted, the rest unprocessed" "$REVERTED $((CLAIMS - REVERTED))" \
    "$(sql -c "SELECT count(*) FILTER (WHERE decision = 'reverted') || ' ' || count(*) FILTER (WHERE decision IS NULL)
               FROM approvals.batch_items WHERE batch_id = '$BATCH'")"
check "every claim is pending again" "$CLAIMS" \
    "$(sql -c "SELECT count(*) FROM approvals.claims WHERE resource_id LIKE '$RUN-%' AND status = 'pending'")"
check "each decided claim has one 'approved' and one 'reverted' event from the batch" "0" \
    "$(sql -c "SELECT count(*) FROM (SELECT claim_id FROM approvals.events WHERE batch_id = '$BATCH'
               GROUP BY claim_id HAVING count(*) FILTER (WHERE action = 'approved') <> 1
                                     OR count(*) FILTER (WHERE action = 'reverted') <> 1) s")"
check "events: $REVERTED approved and $REVERTED reverted" "$REVERTED $REVERTED" \
    "$(sql -c "SELECT count(*) FILTER (WHERE action = 'approved') || ' ' || count(*) FILTER (WHERE action = 'reverted')
               FROM approvals.events WHERE batch_id = '$BATCH'")"
AGAIN=$(sql -c "SELECT approvals.cancel_batch('$BATCH')" 2>&1)
if grep -q "is cancelled; cannot cancel it" <<<"$AGAIN"; then
    ok "cancelling again is refused (55000) and changes nothing"
else
    not_ok "cancelling again is refused"; echo "#   got: $AGAIN"
fi
echo "# 25_cancel_worker: $((SECONDS - T0)) s"
