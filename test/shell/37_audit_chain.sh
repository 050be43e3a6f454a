#!/usr/bin/env bash
# 37_audit_chain: the audit seals checked from outside PostgreSQL, and under concurrent load.
#   (a) a few hundred claims submitted and decided (comments with tabs, newlines, carriage
#       returns, backspaces, form feeds, vertical tabs, other control characters,
#       backslashes, a literal \N, quotes and commas, unicode; NULL and empty values; a
#       batch's events; a delegate's on_behalf_of; actors with a tab or a backslash),
#       sealed in several rounds; each seal's events exported with \copy … CSV (the README's
#       canonical columns), and python3 turns the CSV rows into the canonical COPY-text
#       lines and recomputes every seal's SHA-256 and the whole chain from 64 zeros: equal
#       to audit_seals.hash and to audit_head(); the README's own recipe (prev_hash, then
#       \copy … TO STDOUT, through sha256sum) gives the same hashes;
#   (b) ~10 s of concurrent writers (pgbench: submit + decide in one transaction, with
#       client-side sleeps inside it, one in 8 rolled back) while two loops call seal_audit
#       (as the worker and an admin would) and one calls verify_audit; then one final
#       seal_audit: every committed event is in exactly one seal (no gap, no double
#       coverage), verify_audit is all ok and the outside recomputation still matches.
# Runs in its own database approvals_chain, dropped at the end (the test cluster's worker
# serves database postgres only, so the sealing here is the test's own).
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5 PGCLIENTENCODING=UTF8

DB=approvals_chain
LOAD_SECONDS=${CHAIN_LOAD_SECONDS:-10}
OUT=$(mktemp -d)
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3 || echo python3)
# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
    PGOPTIONS='-c client_min_messages=warning' sql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$OUT"
}
trap cleanup EXIT

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
if ! fresh_db "$DB" >/dev/null \
   || ! PGOPTIONS='-c client_min_messages=warning' sqld "$DB" -c "CREATE EXTENSION approvals" >/dev/null 2>"$OUT/create.err"; then
    not_ok "create database $DB with the extension"; sed 's/^/#   /' "$OUT/create.err"; exit 1
fi
db() { sqld "$DB" "$@"; }

# The README's canonical columns of an event.
COLS="id, claim_id, batch_id, tenant, actor, action, from_status, to_status, comment, snapshot_hash,"
COLS+=" to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), on_behalf_of"

# Export the seals (seals.csv) and each seal's events (seal_<id>.csv) into directory $1.
export_chain() {
    local dir=$1
    mkdir -p "$dir"
    db -c "\\copy (SELECT id, first_event, last_event, event_count, prev_hash, hash FROM approvals.audit_seals ORDER BY id) TO '$dir/seals.csv' CSV" \
        || return 1
    db -c "SELECT format('\\copy (SELECT %s FROM approvals.events WHERE id BETWEEN %s AND %s ORDER BY id) TO ''%s/seal_%s.csv'' CSV',
                         \$c\$$COLS\$c\$, first_event, last_event, '$dir', id)
             FROM approvals.audit_seals ORDER BY id" >"$dir/export.psql" || return 1
    db -f "$dir/export.psql" >/dev/null
}

# Recompute the chain outside PostgreSQL from the CSV files in $1. Prints
#   seals N / events N / hash_mismatch IDS / chain_mismatch IDS / head HASH
cat >"$OUT/chain.py" <<'PY'
import hashlib, os, sys

def parse_csv(path):
    """PostgreSQL's CSV: a quoted field is a value (even empty); an unquoted empty one is NULL."""
    with open(path, encoding='utf-8', newline='') as f:
        data = f.read()
    rows, row, i, n = [], [], 0, len(data)
    while i < n:
        if data[i] == '"':
            i += 1
            buf = []
            while True:
                j = data.index('"', i)
                buf.append(data[i:j])
                if j + 1 < n and data[j + 1] == '"':
                    buf.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            val = ''.join(buf)
        else:
            j = i
            while j < n and data[j] not in ',\n':
                j += 1
            val = data[i:j] or None
            i = j
        row.append(val)
        if i < n and data[i] == ',':
            i += 1
            if i < n and data[i] != '\n':
                continue
            row.append(None)                     # an empty (NULL) last field
        rows.append(row)
        row = []
        i += 1                                   # the newline
    return rows

ESC = {'\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v'}

def copy_text(v):
    if v is None:
        return '\\N'
    return ''.join(ESC.get(c, c) for c in v)

d = sys.argv[1]
seals = parse_csv(os.path.join(d, 'seals.csv'))
prev = '0' * 64
bad_hash, bad_chain, events = [], [], 0
for sid, first, last, count, prev_hash, stored in seals:
    if prev_hash != prev:
        bad_chain.append(sid)
    rows = parse_csv(os.path.join(d, 'seal_%s.csv' % sid))
    assert all(len(r) == 12 for r in rows), 'seal %s: a row without 12 columns' % sid
    assert all(int(first) <= int(r[0]) <= int(last) for r in rows)
    events += len(rows)
    text = prev + '\n' + ''.join('\t'.join(copy_text(v) for v in r) + '\n' for r in rows)
    h = hashlib.sha256(text.encode('utf-8')).hexdigest()
    if h != stored or len(rows) != int(count):
        bad_hash.append(sid)
    prev = h                                     # the chain continues from the recomputed hash
print('seals', len(seals))
print('events', events)
print('hash_mismatch', ','.join(bad_hash) or 'none')
print('chain_mismatch', ','.join(bad_chain) or 'none')
print('head', prev)
PY

# Compare the outside recomputation of the chain with the database; $1 names the stage.
check_chain() {
    local stage=$1 dir=$OUT/$1 res want
    if ! export_chain "$dir"; then not_ok "$stage: export the seals and their events as CSV"; return; fi
    if ! res=$("$PY" "$OUT/chain.py" "$dir" 2>&1); then
        not_ok "$stage: python3 recomputes the chain"; printf '#   %s\n' "${res//$'\n'/$'\n'#   }"; return
    fi
    want=$(db -F ' ' -c "SELECT 'seals', count(*) FROM approvals.audit_seals" \
                     -c "SELECT 'events', count(*) FROM approvals.events WHERE id <= (SELECT last_event FROM approvals.audit_head())" \
                     -c "SELECT 'hash_mismatch', 'none'" -c "SELECT 'chain_mismatch', 'none'" \
                     -c "SELECT 'head', hash FROM approvals.audit_head()")
    check "$stage: every seal's hash and the whole chain recomputed outside PostgreSQL from the CSV export match audit_seals and audit_head()" \
        "$want" "$res"
}

# Every committed event is in exactly one seal, seal ids are consecutive and ranges contiguous.
check_coverage() {
    local stage=$1
    check "$stage: every event is in exactly one seal" "0" \
        "$(db -c "SELECT count(*) FROM approvals.events e
                   WHERE (SELECT count(*) FROM approvals.audit_seals s
                           WHERE e.id BETWEEN s.first_event AND s.last_event) <> 1")"
    check "$stage: seal ids consecutive, ranges contiguous from event 1, event_count = the events of the range" "0" \
        "$(db -c "SELECT count(*) FROM approvals.audit_seals s LEFT JOIN approvals.audit_seals p ON p.id = s.id - 1
                   WHERE s.first_event <> coalesce(p.last_event, 0) + 1 OR (p.id IS NULL AND s.id <> 1)
                      OR s.event_count <> (SELECT count(*) FROM approvals.events e
                                            WHERE e.id BETWEEN s.first_event AND s.last_event)")"
    check "$stage: verify_audit() is all ok" "t" \
        "$(db -c "SELECT coalesce(bool_and(ok), false) FROM approvals.verify_audit()")"
}

# ---------------------------------------------------------------------------------------
# (a) events of every shape, sealed in three rounds, recomputed outside
# ---------------------------------------------------------------------------------------
if ! db >"$OUT/gen.out" 2>&1 <<'SQL'
DO $$
DECLARE
    comments text[] := ARRAY[
        E'tab\there', E'new\nline', E'cr\rlf\r\nend', E'back\\slash \\N \\t', E'\\N',
        E'bs\b ff\f vt' || chr(11), 'ctl ' || chr(1) || chr(31) || chr(127), 'ünïcødé ✓ 😀 日本語',
        '"quoted", with, commas', '', NULL, E'trailing backslash\\', E'\t', E'\n'];
    g int;
    r int;
    cid text;
    bid text;
BEGIN
    PERFORM approvals.delegate('usr_dg', delegator => 'usr_dr', comment => E'out\tof office');
    FOR r IN 1..3 LOOP
        FOR g IN (r - 1) * 100 + 1 .. r * 100 LOOP
            cid := 'clm_chain_' || g;
            PERFORM approvals.submit('chain', 'res-' || g, CASE WHEN g % 7 = 0 THEN E'sha\\256:\t' || g ELSE 'sha256:' || g END,
                                     id => cid, actor => 'usr_req',
                                     tenant => CASE WHEN g % 3 = 0 THEN 'acme' WHEN g % 3 = 1 THEN E'glo\\bex' END,
                                     approvers => CASE WHEN g % 10 = 5 THEN ARRAY['usr_dr'] END);
            IF g % 10 = 5 THEN
                PERFORM approvals.decide(cid, 'approved', comment => comments[1 + g % 14], actor => 'usr_dg',
                                         on_behalf_of => 'usr_dr');
            ELSIF g % 10 = 9 THEN
                PERFORM approvals.cancel_claim(cid, comment => comments[1 + g % 14], actor => 'usr_req');
            ELSIF g % 10 <> 0 THEN
                PERFORM approvals.decide(cid, CASE WHEN g % 4 = 0 THEN 'rejected' WHEN g % 4 = 1 THEN 'abstained' ELSE 'approved' END,
                                         comment => comments[1 + g % 14],
                                         actor => CASE WHEN g % 6 = 0 THEN E'usr\trev' WHEN g % 6 = 1 THEN E'usr\\rev' ELSE 'usr_rev' END);
            END IF;
        END LOOP;
        -- the claims ending in 0 of this round: one batch (events with a batch_id)
        bid := (approvals.create_batch(ARRAY(SELECT 'clm_chain_' || x FROM generate_series((r - 1) * 100 + 10, r * 100, 10) x),
                                       coordinator => 'usr_coord', comment => E'month\tend', start => false,
                                       tenant => NULL)).id;
        PERFORM approvals.process_batch(bid);
        PERFORM approvals.seal_audit();
    END LOOP;
END $$;
SQL
then
    not_ok "(a) generate and seal the events"; sed 's/^/#   /' "$OUT/gen.out" | tail -n 20
fi
check "(a) three seals, together every event" \
    "3 $(db -c "SELECT count(*) FROM approvals.events")" \
    "$(db -F ' ' -c "SELECT count(*), sum(event_count) FROM approvals.audit_seals")"
check "(a) the events include NULL and empty comments, batch ids, on_behalf_of, every escaped character" "t" \
    "$(db -c "SELECT count(*) FILTER (WHERE comment IS NULL) > 0 AND count(*) FILTER (WHERE comment = '') > 0
                 AND count(batch_id) > 0 AND count(on_behalf_of) > 0 AND count(tenant) > 0
                 AND (SELECT count(DISTINCT c) FROM approvals.events x, unnest(ARRAY[1, 8, 9, 10, 11, 12, 13, 92, 127]) c
                       WHERE strpos(x.comment, chr(c)) > 0) = 9
                 AND bool_or(strpos(comment, '😀') > 0) AND bool_or(strpos(actor, chr(9)) > 0)
                 AND bool_or(comment = E'\\\\N')
               FROM approvals.events")"
check_chain "(a)"
# The README's recipe, seal by seal: prev_hash and a newline, then \copy … TO STDOUT (text).
readme_ok=0
readme_n=0
while IFS='|' read -r sid first last hash; do
    readme_n=$((readme_n + 1))
    db -c "SELECT prev_hash FROM approvals.audit_seals WHERE id = $sid" >"$OUT/seal.txt"
    db -c "\\copy (SELECT $COLS FROM approvals.events WHERE id BETWEEN $first AND $last ORDER BY id) TO STDOUT" \
        >>"$OUT/seal.txt"
    [[ $(sha256sum "$OUT/seal.txt" | cut -d' ' -f1) == "$hash" ]] && readme_ok=$((readme_ok + 1))
done < <(db -c "SELECT id, first_event, last_event, hash FROM approvals.audit_seals ORDER BY id")
check "(a) the README's recipe (prev_hash, \\copy … TO STDOUT, sha256sum) gives each seal's hash" "3/3" "$readme_ok/$readme_n"
check_coverage "(a)"

# ---------------------------------------------------------------------------------------
# (b) concurrent writers, two sealers and a verifier for ~10 s
# ---------------------------------------------------------------------------------------
cat >"$OUT/load.sql" <<'SQL'
\set r random(1, 2000000000)
\set s random(0, 3)
\set rb random(1, 8)
BEGIN;
SELECT approvals.submit('load', 'res-' || :client_id || '-' || :r, 'h', id => 'clm_load_' || :client_id || '_' || :r, actor => 'usr_req');
\sleep :s ms
SELECT approvals.decide('clm_load_' || :client_id || '_' || :r, 'approved', comment => E'load\tcomment ' || :r, actor => 'usr_rev');
\sleep :s ms
\if :rb = 1
ROLLBACK;
\else
COMMIT;
\endif
SQL
deadline=$((SECONDS + LOAD_SECONDS))
sealer() {
    local calls=0 errors=0 sealed=0 n
    while ((SECONDS < deadline)); do
        calls=$((calls + 1))
        if n=$(db -c "SELECT approvals.seal_audit()" 2>>"$OUT/sealer_$1.err"); then
            sealed=$((sealed + n))
        else
            errors=$((errors + 1))
        fi
        sleep 0.0$((RANDOM % 3))
    done
    echo "$calls $errors $sealed" >"$OUT/sealer_$1.out"
}
verifier() {
    local calls=0 bad=0 n
    while ((SECONDS < deadline)); do
        calls=$((calls + 1))
        n=$(db -c "SELECT count(*) FILTER (WHERE NOT ok) FROM approvals.verify_audit()" 2>>"$OUT/verifier.err") || n=err
        [[ $n == 0 ]] || bad=$((bad + 1))
        sleep 0.2
    done
    echo "$calls $bad" >"$OUT/verifier.out"
}
sealer 1 &
S1=$!
sealer 2 &
S2=$!
verifier &
V=$!
timeout -k 5 $((LOAD_SECONDS + 30)) "$AP_BIN/pgbench" -n -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres \
    -c 6 -j 3 -T "$LOAD_SECONDS" -f "$OUT/load.sql" "$DB" >"$OUT/pgbench.out" 2>&1
PGBENCH_RC=$?
wait "$S1" "$S2" "$V"
done_tx=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$OUT/pgbench.out")
failed_tx=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$OUT/pgbench.out")
if [[ $PGBENCH_RC -eq 0 && ${done_tx:-0} -gt 100 && ${failed_tx:-0} -eq 0 ]] && ! grep -qi 'abort' "$OUT/pgbench.out"; then
    ok "(b) pgbench: 6 writers, $done_tx transactions of submit + decide in ${LOAD_SECONDS} s, none failed"
else
    not_ok "(b) pgbench ran its writers without a failure (exit $PGBENCH_RC)"; sed 's/^/#   /' "$OUT/pgbench.out" | tail -n 15
fi
read -r c1 e1 n1 <"$OUT/sealer_1.out"
read -r c2 e2 n2 <"$OUT/sealer_2.out"
echo "# sealers: $c1 + $c2 calls, sealed $n1 + $n2 events during the load"
if ((c1 >= 3 && c2 >= 3 && n1 + n2 > 0)); then
    ok "(b) two loops called seal_audit $((c1 + c2)) times during the load and sealed $((n1 + n2)) events"
else
    not_ok "(b) two loops called seal_audit during the load and sealed events ($c1/$c2 calls, $n1/$n2 events)"
fi
if ((e1 + e2 == 0)); then
    ok "(b) concurrent seal_audit calls raised no error"
else
    not_ok "(b) concurrent seal_audit calls raised no error ($((e1 + e2)) of $((c1 + c2)) calls failed)"
    sort "$OUT"/sealer_*.err | uniq -c | sort -rn | head -n 5 | sed 's/^/#   /'
fi
read -r vc vbad <"$OUT/verifier.out"
check "(b) verify_audit during the load: all ok every time ($vc calls)" "0" "$vbad"

check "(b) one seal_audit after the writers ended seals every committed event left" \
    "$(db -c "SELECT count(*) FROM approvals.events WHERE id > coalesce((SELECT last_event FROM approvals.audit_head()), 0)")" \
    "$(db -c "SELECT approvals.seal_audit()")"
check "(b) no event after the newest seal" "0" \
    "$(db -c "SELECT count(*) FROM approvals.events WHERE id > (SELECT last_event FROM approvals.audit_head())")"
check "(b) the seals count every event once" "$(db -c "SELECT count(*) FROM approvals.events")" \
    "$(db -c "SELECT sum(event_count) FROM approvals.audit_seals")"
check_coverage "(b)"
check_chain "(b)"
echo "1..$N"
exit $((FAILS > 0))
