#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start takes optional arguments
# 20_crash: kill -9 the batch worker in the middle of a batch, many times, each time on a new
# batch; the postmaster restarts every backend (crash recovery), the relaunched launcher
# resumes the batch, and no claim is decided twice:
#   - every item decided, approved_count = approved items = claims = total_claims
#   - exactly one 'approved' event per claim, with the batch's id; attempts = 2
# Plus one round with pg_ctl stop -m immediate (then start), and the quarantine: a batch
# interrupted 3 times ends 'failed' ('quarantined...') while the next batch completes.
#
# Run by test/run.sh against its scratch cluster (AP_ROOT, AP_PGHOST, AP_PGPORT, AP_PGDATA,
# AP_BIN exported). Prints "ok N - ..." / "not ok N - ...". Worker tests use database
# postgres (approvals.database); every run uses fresh resource ids.
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

ROUNDS=${AP_CRASH_ROUNDS:-20}     # kill -9 rounds that must land mid-batch
CLAIMS=3000
CHUNK=100

T0=$SECONDS
RUN=c$(date +%s)$$
LOG_START=$(stat -c %s "$AP_LOG" 2>/dev/null || echo 0)
newlog() { tail -c +"$((LOG_START + 1))" "$AP_LOG"; }

restore() {
    ap_wait_ready 60 >/dev/null || ap_start >/dev/null
    sql -c "ALTER SYSTEM RESET approvals.chunk_size" -c "ALTER SYSTEM RESET approvals.naptime" \
        -c "SELECT pg_reload_conf()" >/dev/null 2>&1
}
# If we die half-way, the server must still be up for the next script.
trap restore EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

if ! ap_wait_ready 60; then
    not_ok "server accepts connections"
    exit 1
fi
PGOPTIONS='-c client_min_messages=warning' sql -c "CREATE EXTENSION IF NOT EXISTS approvals" \
    || { not_ok "CREATE EXTENSION approvals in database postgres"; exit 1; }
set_chunk() {
    sql -c "ALTER SYSTEM SET approvals.chunk_size = $1" -c "ALTER SYSTEM SET approvals.naptime = 1" \
        -c "ALTER SYSTEM RESET approvals.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null
}
set_chunk "$CHUNK"
sleep 0.5

# submit_claims TAG COUNT: COUNT pending claims with resource ids RUN-TAG-g.
submit_claims() {
    sql -c "SELECT count(*) FROM (SELECT approvals.submit('crash', '$RUN-$1-' || g, 'h',
                actor => 'alice') FROM generate_series(1, $2) g) s" >/dev/null
}
# create_batch TAG: a queued batch of the claims of TAG; prints its id.
create_batch() {
    sql -c "SELECT id FROM approvals.create_batch(ARRAY(SELECT id FROM approvals.claims
                WHERE resource_type = 'crash' AND resource_id LIKE '$RUN-$1-%'
                  AND status = 'pending' ORDER BY id), coordinator => 'coord')"
}
# poll_pid BATCH THRESHOLD MIN_ATTEMPTS TIMEOUT: in one session, poll every ~2 ms until the
# batch is processing by a worker of attempt >= MIN_ATTEMPTS that has processed more than
# THRESHOLD claims; prints that worker's pid, 0 if the batch finished first, -1 on timeout.
poll_pid() {
    sql -c "DO \$\$
        DECLARE p integer; st text; t0 timestamptz := clock_timestamp();
        BEGIN
            LOOP
                SELECT CASE WHEN status = 'processing' AND processed_count > $2
                                 AND attempts >= $3 THEN worker_pid END, status
                  INTO p, st FROM approvals.batches WHERE id = '$1';
                EXIT WHEN p IS NOT NULL;
                IF st IN ('completed', 'failed', 'cancelled') THEN p := 0; EXIT; END IF;
                IF clock_timestamp() - t0 > interval '$4 seconds' THEN p := -1; EXIT; END IF;
                PERFORM pg_sleep(0.002);
            END LOOP;
            PERFORM set_config('ap.kill_pid', p::text, false);
        END \$\$" -c "SELECT current_setting('ap.kill_pid')"
}
# Retry poll_pid while the server is in crash recovery (connections refused).
poll_pid_retry() {
    local deadline=$((SECONDS + 60)) p
    while ((SECONDS < deadline)); do
        if p=$(SQL_TIMEOUT=40 poll_pid "$@" 2>/dev/null) && [[ -n $p ]]; then
            echo "$p"
            return 0
        fi
        sleep 0.05
    done
    echo -1
}
# wait_ready SECONDS: like ap_wait_ready, but polls every 50 ms (a resumed batch is quick).
wait_ready() {
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        "$AP_BIN/pg_isready" -q -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres -d postgres -t 2 \
            && return 0
        sleep 0.05
    done
    ap_is_ready
}
launcher_pid() {
    sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'approvals launcher'" 2>/dev/null
}
# kill9 PID: kill -9 a batch worker (only if PID really is one) and wait until the crash
# restart has begun (the launcher LPID is gone) and the server accepts connections again.
kill9() {
    local pid=$1 lpid=$2 i
    if [[ $(ps -o cmd= -p "$pid") != *'approvals batch worker'* ]]; then
        echo "# pid $pid is not an approvals batch worker: $(ps -o cmd= -p "$pid")"
        return 1
    fi
    KILL_TIME=$(date +%s.%N)
    kill -9 "$pid" || return 1
    for ((i = 0; i < 300; i++)); do
        if [[ -z $lpid ]] || ! kill -0 "$lpid" 2>/dev/null; then break; fi
        sleep 0.02
    done
    wait_ready 60
}
# verify BATCH TAG CLAIMS EXPECTED_ATTEMPTS: the invariants of a completed batch; prints
# nothing when they hold, the differences otherwise.
verify() {
    local b=$1 tag=$2 n=$3 attempts=$4 got want
    got=$(sql -c "SELECT b.status, b.attempts, b.total_claims, b.processed_count, b.approved_count,
            (SELECT count(*) FROM approvals.batch_items i WHERE i.batch_id = b.id AND i.decision IS NULL),
            (SELECT count(*) FROM approvals.batch_items i WHERE i.batch_id = b.id AND i.decision = 'approved'),
            (SELECT count(*) FROM approvals.claims c WHERE c.resource_type = 'crash'
                AND c.resource_id LIKE '$RUN-$tag-%' AND c.status = 'approved'),
            (SELECT count(*) FROM (SELECT claim_id FROM approvals.events WHERE batch_id = b.id
                AND action = 'approved' GROUP BY claim_id HAVING count(*) <> 1) x),
            (SELECT count(*) FROM approvals.events WHERE batch_id = b.id AND action = 'approved'),
            (SELECT count(*) FROM approvals.batch_items i WHERE i.batch_id = b.id AND
                (SELECT count(*) FROM approvals.events e WHERE e.claim_id = i.claim_id
                   AND e.action = 'approved') <> 1)
          FROM approvals.batches b WHERE b.id = '$b'" 2>&1)
    want="completed|$attempts|$n|$n|$n|0|$n|$n|0|$n|0"
    if [[ $got != "$want" ]]; then
        echo "#   status|attempts|total|processed|approved_count|undecided items|approved items|approved claims|claims with <>1 batch events|batch approved events|claims with <>1 approved events"
        echo "#   expected: $want"
        echo "#   got:      $got"
    fi
}
# finished_before_kill BATCH: the batch completed before KILL_TIME (the kill came too late).
finished_before_kill() {
    [[ $(sql -c "SELECT status = 'completed' AND attempts = 1
                   AND extract(epoch FROM completed_at) <= $KILL_TIME
                 FROM approvals.batches WHERE id = '$1'") == t ]]
}

# --- kill -9 rounds ----------------------------------------------------------------------
landed=0
tries=0
max_tries=$((ROUNDS + 10))
while ((landed < ROUNDS && tries < max_tries)); do
    tries=$((tries + 1))
    rs=$SECONDS
    tag=r$tries
    thr=$((RANDOM % (CLAIMS * 2 / 3) - 1))    # -1 (right after take-over) .. 2/3 of the batch
    if ! submit_claims "$tag" "$CLAIMS"; then
        not_ok "round $tries: submit $CLAIMS claims"
        ap_wait_ready 60 >/dev/null
        continue
    fi
    lpid=$(launcher_pid)
    b=$(create_batch "$tag")
    if [[ ! $b =~ ^bat_ ]]; then
        not_ok "round $tries: create_batch (got '$b')"
        continue
    fi
    pid=$(poll_pid "$b" "$thr" 1 20)
    if [[ $pid == 0 ]]; then
        echo "# round $tries: $b finished before processed_count passed $thr; new batch"
        continue
    elif ! [[ $pid =~ ^[0-9]+$ ]] || ((pid <= 0)); then
        not_ok "round $tries: $b is processed by a worker within 20 s (poll: '$pid')"
        sql -c "SELECT status, processed_count, worker_pid, attempts FROM approvals.batches WHERE id = '$b'"
        continue
    fi
    if ! kill9 "$pid" "$lpid"; then
        not_ok "round $tries: kill -9 $pid, then the server accepts connections again"
        continue
    fi
    t_ready=$SECONDS
    if ! wait_true 60 "SELECT status IN ('completed', 'failed', 'cancelled')
                       FROM approvals.batches WHERE id = '$b'"; then
        not_ok "round $tries: $b completes after kill -9 of worker $pid (processed > $thr)"
        sql -c "SELECT status, processed_count, worker_pid, attempts, error FROM approvals.batches WHERE id = '$b'"
        continue
    fi
    if finished_before_kill "$b"; then
        echo "# round $tries: $b completed just before the kill landed; new batch"
        continue
    fi
    landed=$((landed + 1))
    if ((SECONDS - rs > 10)); then
        echo "# round $tries was slow: ready $((t_ready - rs)) s, completed $((SECONDS - rs)) s after the round began"
    fi
    diff=$(verify "$b" "$tag" "$CLAIMS" 2)
    if ! grep -qF "(PID $pid) was terminated by signal 9" <(newlog); then
        [[ -n $diff ]] && diff+=$'\n'
        diff+="#   the server log has no 'approvals batch worker (PID $pid) was terminated by signal 9'"
    fi
    if [[ -z $diff ]]; then
        ok "kill -9 round $landed: worker $pid killed after > $thr claims; $b resumed and completed, $CLAIMS claims decided once, attempts 2 ($((SECONDS - rs)) s)"
    else
        not_ok "kill -9 round $landed: worker $pid killed after > $thr claims; $b resumed and completed exactly once"
        echo "$diff"
    fi
done
if ((landed < ROUNDS)); then
    not_ok "$ROUNDS kill -9 rounds landed mid-batch (only $landed of $tries tries)"
fi

# --- pg_ctl stop -m immediate mid-batch ----------------------------------------------------
tag=imm
thr=$((RANDOM % 1500 + 200))
if submit_claims "$tag" "$CLAIMS" && b=$(create_batch "$tag") && [[ $b =~ ^bat_ ]]; then
    pid=$(poll_pid "$b" "$thr" 1 20)
    if [[ $pid =~ ^[0-9]+$ ]] && ((pid > 0)); then
        KILL_TIME=$(date +%s.%N)
        ap_pg_ctl stop -m immediate || echo "# pg_ctl stop -m immediate failed"
        if ap_start >/dev/null && ap_wait_ready 60 \
           && wait_true 60 "SELECT status IN ('completed', 'failed', 'cancelled') FROM approvals.batches WHERE id = '$b'"; then
            if finished_before_kill "$b"; then
                echo "# immediate stop came after $b had completed; the check is weaker"
                diff=$(verify "$b" "$tag" "$CLAIMS" 1)
            else
                diff=$(verify "$b" "$tag" "$CLAIMS" 2)
            fi
            if [[ -z $diff ]]; then
                ok "pg_ctl stop -m immediate after > $thr claims, start: $b resumed and completed, $CLAIMS claims decided once"
            else
                not_ok "pg_ctl stop -m immediate mid-batch, start: $b resumed and completed exactly once"
                echo "$diff"
            fi
        else
            not_ok "pg_ctl stop -m immediate mid-batch, start: $b completes"
            sql -c "SELECT status, processed_count, worker_pid, attempts, error FROM approvals.batches WHERE id = '$b'"
        fi
    else
        not_ok "immediate-stop round: $b is processed by a worker (poll: '$pid')"
    fi
else
    not_ok "immediate-stop round: submit claims and create a batch"
fi

# --- quarantine: the same batch interrupted 3 times ----------------------------------------
# Small chunks so that the resumed batch is still running when we catch its new worker.
set_chunk 10
sleep 0.5
tag=quar
QCLAIMS=4000
submit_claims "$tag" "$QCLAIMS" && submit_claims next 300
qb=$(create_batch "$tag")
nb=
qok=1
if [[ ! $qb =~ ^bat_ ]]; then
    not_ok "quarantine: create the batch (got '$qb')"
    qok=0
fi
for k in 1 2 3; do
    ((qok)) || break
    lpid=$(launcher_pid)
    if ((k == 1)); then
        pid=$(poll_pid "$qb" 100 1 20)
    else
        pid=$(poll_pid_retry "$qb" -1 "$k" 20)
    fi
    if ! [[ $pid =~ ^[0-9]+$ ]] || ((pid <= 0)); then
        not_ok "quarantine: attempt $k of $qb is caught processing (poll: '$pid')"
        sql -c "SELECT status, processed_count, worker_pid, attempts FROM approvals.batches WHERE id = '$qb'"
        qok=0
        break
    fi
    # The next batch waits in the queue behind the crash-looping one.
    if ((k == 3)); then nb=$(create_batch next); fi
    if ! kill9 "$pid" "$lpid"; then
        not_ok "quarantine: kill -9 $pid (attempt $k), then the server accepts connections"
        qok=0
        break
    fi
    echo "# quarantine: killed worker $pid of $qb (attempt $k)"
done
if ((qok)); then
    if wait_true 60 "SELECT status IN ('completed', 'failed', 'cancelled') FROM approvals.batches WHERE id = '$qb'"; then
        check "quarantine: $qb interrupted 3 times ends failed, 'quarantined...', attempts 3" \
            "failed|t|3" \
            "$(sql -c "SELECT status, error LIKE 'quarantined%', attempts FROM approvals.batches WHERE id = '$qb'")"
        sql -c "SELECT '#   error: ' || error FROM approvals.batches WHERE id = '$qb'"
    else
        not_ok "quarantine: $qb ends within 60 s after its third interruption"
    fi
    # What it decided before quarantine stays decided, each claim exactly once.
    check "quarantine: decided claims decided once (items = approved_count = events = approved claims)" \
        "t|0|0" \
        "$(sql -c "SELECT b.approved_count = (SELECT count(*) FROM approvals.batch_items i WHERE i.batch_id = b.id AND i.decision = 'approved')
                      AND b.approved_count = (SELECT count(*) FROM approvals.events e WHERE e.batch_id = b.id AND e.action = 'approved')
                      AND b.approved_count = (SELECT count(*) FROM approvals.claims c WHERE c.resource_type = 'crash'
                                                AND c.resource_id LIKE '$RUN-$tag-%' AND c.status = 'approved'),
                      (SELECT count(*) FROM (SELECT claim_id FROM approvals.events WHERE batch_id = b.id
                          AND action = 'approved' GROUP BY claim_id HAVING count(*) <> 1) x),
                      (SELECT count(*) FROM approvals.claims c WHERE c.resource_type = 'crash'
                          AND c.resource_id LIKE '$RUN-$tag-%' AND c.status NOT IN ('approved', 'pending'))
                  FROM approvals.batches b WHERE b.id = '$qb'")"
    if grep -qF "batch \"$qb\" quarantined after 3 interrupted attempts" <(newlog); then
        ok "quarantine: the server log says $qb was quarantined"
    else
        not_ok "quarantine: the server log says $qb was quarantined"
    fi
    if [[ $nb =~ ^bat_ ]] \
       && wait_true 60 "SELECT status IN ('completed', 'failed', 'cancelled') FROM approvals.batches WHERE id = '$nb'"; then
        att=$(sql -c "SELECT attempts FROM approvals.batches WHERE id = '$nb'")
        diff=$(verify "$nb" next 300 "$att")
        if [[ -z $diff ]]; then
            ok "quarantine: the next batch $nb (queued behind it) completes, 300 claims decided once"
        else
            not_ok "quarantine: the next batch $nb completes, 300 claims decided once"
            echo "$diff"
        fi
    else
        not_ok "quarantine: the next batch (got '$nb') completes"
    fi
fi

restore
trap - EXIT
if grep -q 'PANIC' <(newlog); then
    not_ok "no PANIC in the server log"
    newlog | grep -B2 -A2 PANIC | head -n 20 | sed 's/^/#   /'
else
    ok "no PANIC in the server log"
fi
echo "# 20_crash: $N tests, $FAILS failed, $landed kill -9 rounds in $tries tries, $((SECONDS - T0)) s"
[[ $FAILS -eq 0 ]]
