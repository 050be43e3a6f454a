#!/usr/bin/env bash
# 50_memory: the batch worker's memory stays flat over a 1M-claim batch.
#   - 1,000,000 pending claims (inserted directly as the superuser, for speed) in one batch,
#     processed by the background worker in chunks of approvals.chunk_size (1000)
#   - the worker's memory contexts are logged (pg_log_backend_memory_contexts) early in the
#     batch and late in it; the late grand total may exceed the early one by at most 1 MB
#   - the batch completes with every item approved and one 'approved' event per claim
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
: "${SQL_TIMEOUT:=60}"
export PGCONNECT_TIMEOUT=5

CLAIMS=${AP_MEMORY_CLAIMS:-1000000}
T0=$SECONDS
RUN=m$(date +%s)$$

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
PGOPTIONS='-c client_min_messages=warning' sql -c "CREATE EXTENSION IF NOT EXISTS approvals" \
    >/dev/null || { not_ok "extension present"; exit 1; }

if SQL_TIMEOUT=300 sql -c "INSERT INTO approvals.claims (id, resource_type, resource_id, kind,
        snapshot_hash, status, requester)
    SELECT 'clm_${RUN}_' || g, 'mem', '${RUN}-' || g, 'data_review', 'h', 'pending', 'usr_req'
    FROM generate_series(1, $CLAIMS) g" >/dev/null; then
    ok "$CLAIMS pending claims inserted"
else
    not_ok "$CLAIMS pending claims inserted"
    exit 1
fi

BATCH=$(SQL_TIMEOUT=300 sql -c "SELECT id FROM approvals.create_batch(
    ARRAY(SELECT id FROM approvals.claims WHERE resource_type = 'mem' AND resource_id LIKE '${RUN}-%'),
    coordinator => 'usr_coord', comment => '$RUN')")
if [[ $BATCH == bat_* ]]; then ok "batch of $CLAIMS claims queued"; else not_ok "batch queued"; exit 1; fi

# progress(): processed_count and worker_pid of the batch
progress() { sql -c "SELECT processed_count || ' ' || coalesce(worker_pid, 0) || ' ' || status
                     FROM approvals.batches WHERE id = '$BATCH'"; }
wait_processed() {
    local target=$1 deadline=$((SECONDS + 600)) p
    while ((SECONDS < deadline)); do
        read -r p _ _ <<<"$(progress)"
        [[ ${p:-0} -ge $target ]] && return 0
        sleep 0.2
    done
    return 1
}

if wait_processed $((CLAIMS / 10)); then
    read -r _ PID _ <<<"$(progress)"
    EARLY=$(grand_total "$PID")
else
    EARLY=
fi
if [[ -n $EARLY ]] && wait_processed $((CLAIMS * 9 / 10)); then
    read -r _ PID2 _ <<<"$(progress)"
    LATE=$([[ $PID2 == "$PID" ]] && grand_total "$PID")
else
    LATE=
fi
if [[ -n $EARLY && -n $LATE ]]; then
    echo "# worker $PID memory: $EARLY bytes at 10%, $LATE bytes at 90%"
    if ((LATE <= EARLY + 1048576)); then
        ok "worker memory is flat over the batch ($EARLY -> $LATE bytes)"
    else
        not_ok "worker memory is flat over the batch ($EARLY -> $LATE bytes)"
    fi
else
    not_ok "worker memory could be sampled at 10% and 90% of the batch (same worker)"
fi

deadline=$((SECONDS + 900))
while ((SECONDS < deadline)); do
    [[ $(sql -c "SELECT status FROM approvals.batches WHERE id = '$BATCH'") == completed ]] && break
    sleep 0.5
done
RESULT=$(SQL_TIMEOUT=300 sql -c "SELECT b.status, b.approved_count, b.failed_count,
        (SELECT count(*) FROM approvals.batch_items i WHERE i.batch_id = b.id AND i.decision = 'approved'),
        (SELECT count(*) FROM approvals.events e WHERE e.batch_id = b.id AND e.action = 'approved'),
        (SELECT count(DISTINCT e.claim_id) FROM approvals.events e WHERE e.batch_id = b.id)
    FROM approvals.batches b WHERE b.id = '$BATCH'")
EXPECTED="completed|$CLAIMS|0|$CLAIMS|$CLAIMS|$CLAIMS"
if [[ $RESULT == "$EXPECTED" ]]; then
    ok "batch completed: every item approved, one 'approved' event per claim"
else
    not_ok "batch completed: every item approved, one 'approved' event per claim"
    echo "#   expected: $EXPECTED"
    echo "#   got:      $RESULT"
fi
echo "# 50_memory: $CLAIMS claims, $((SECONDS - T0)) s"
