#!/usr/bin/env bash
# 70_upgrade: ALTER EXTENSION approvals UPDATE from the released 0.1.0 (API.md section 13).
#   - a database at 0.1.0 filled with realistic rows (test/upgrade/fill_0.1.0.sql: claims in
#     every status with their events, policies, a handler, tenant grants, idempotency keys,
#     a completed, a cancelled, a pending, a queued batch, and one orphaned mid-flight:
#     'processing', first chunk decided, next_position advanced, its worker gone), inserted
#     directly: the current library refuses 0.1.0's functions under the 0.1.0 schema
#   - ALTER EXTENSION approvals UPDATE reaches the default version
#   - the catalog of the updated database equals a fresh CREATE EXTENSION approvals in another
#     database (test/upgrade/catalog.sql: objects, columns, constraints, indexes, sequences,
#     views, functions with their whole definition, triggers, RLS policies and flags, types,
#     privileges, initial privileges, comments, pg_extension_config_dump registrations,
#     extension members); the diff is shown when they differ. Every other version that has an
#     update path to the default is compared the same way (empty database).
#   - every row is kept: per table, the row count and an md5 over the columns that existed
#     before the update are unchanged (and the identity sequences' positions)
#   - after the update CALL approvals.run_queued() resumes the orphaned batch and completes it
#     (and the queued one) with every item decided exactly once, the first chunk untouched and
#     the handler run once per claim decided; the pending batch can be started and processed
#   - the new library under a schema still at 0.1.0: every function and procedure of schema
#     approvals (pg_proc, trigger functions aside) called as superuser either works or fails
#     with "ALTER EXTENSION approvals UPDATE" in its message or hint; only the helpers that
#     keep working under any version (sees_all_tenants, visible_tenants, json_*,
#     api_approval, api_batch_summary) may raise their ordinary argument errors
#     (22004/22023/P0002); no call loses its connection and no process crashes. The
#     append-only trigger keeps refusing UPDATE and TRUNCATE, and approvals_reader can still
#     read the tables (row-level security uses sees_all_tenants/visible_tenants).
#   - the scratch databases are dropped
#
# Run by test/run.sh against its scratch cluster (AP_ROOT, AP_PGHOST, AP_PGPORT, AP_PGDATA,
# AP_BIN exported). Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5
: "${SQL_TIMEOUT:=60}"

T0=$SECONDS
RUN=u$(date +%s)$$
DB_OLD=ap_upg_old_$RUN          # 0.1.0, filled, then updated
DB_NEW=ap_upg_new_$RUN          # fresh install of the default version
DB_STALE=ap_upg_stale_$RUN      # 0.1.0, filled, never updated
DB_EXTRA=ap_upg_extra_$RUN      # other update paths, one at a time
FIXTURES=$AP_ROOT/test/upgrade
OLD=0.1.0
TMP=$(mktemp -d)
LOG_FROM=$(stat -c %s "$AP_LOG" 2>/dev/null || echo 0)
QUIET='-c client_min_messages=warning'

cleanup() {
    ap_wait_ready 60 >/dev/null || true
    local db
    for db in "$DB_OLD" "$DB_NEW" "$DB_STALE" "$DB_EXTRA"; do
        PGOPTIONS=$QUIET sql -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# indent: the lines of stdin as TAP comments (at most $1 lines, default 60).
indent() { head -n "${1:-60}" | sed 's/^/#   /'; }

# new_db DB [VERSION]: create DB with the extension (at VERSION, else the default).
new_db() {
    local version=${2:-}
    PGOPTIONS=$QUIET sql -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" \
        >/dev/null || return 1
    if [[ -n $version ]]; then
        PGOPTIONS=$QUIET sqld "$1" -c "CREATE EXTENSION approvals VERSION '$version'" >/dev/null
    else
        PGOPTIONS=$QUIET sqld "$1" -c "CREATE EXTENSION approvals" >/dev/null
    fi
}

# catalog DB FILE: the catalog dump of DB into FILE.
catalog() { sqld "$1" -f "$FIXTURES/catalog.sql" >"$2"; }

# compare_catalogs WHAT DUMP_UPDATED DUMP_FRESH: ok when equal, else not ok with the diff.
compare_catalogs() {
    local what=$1 a=$2 b=$3 diffs
    if diffs=$(diff -u --label "updated ($what)" --label "fresh $TARGET" "$a" "$b"); then
        ok "catalog after ALTER EXTENSION UPDATE from $what equals a fresh install of $TARGET ($(wc -l <"$a") facts)"
    else
        not_ok "catalog after ALTER EXTENSION UPDATE from $what equals a fresh install of $TARGET"
        echo "#   diff (- updated from $what, + fresh $TARGET; $(grep -c '^[-+][^-+]' <<<"$diffs") lines differ):"
        tail -n +3 <<<"$diffs" | indent 200
    fi
}

if ! ap_wait_ready 60; then
    not_ok "server accepts connections"
    exit 1
fi

# --- versions --------------------------------------------------------------------------
TARGET=$(sql -c "SELECT default_version FROM pg_available_extensions WHERE name = 'approvals'")
AVAILABLE=$(sql -c "SELECT string_agg(version, ' ' ORDER BY version)
                    FROM pg_available_extension_versions WHERE name = 'approvals'")
PATH_OLD=$(sql -c "SELECT path FROM pg_extension_update_paths('approvals')
                   WHERE source = '$OLD' AND target = '$TARGET'")
if [[ -n $TARGET && $TARGET != "$OLD" && -n $PATH_OLD ]]; then
    ok "installed: versions $AVAILABLE, default $TARGET, update path $PATH_OLD"
else
    not_ok "$OLD and a newer default version are installed with an update path (versions: '$AVAILABLE', default '$TARGET', path '$PATH_OLD')"
    exit 1
fi

# --- 1. a database at 0.1.0 with realistic contents ------------------------------------
if new_db "$DB_OLD" "$OLD" && sqld "$DB_OLD" -f "$FIXTURES/fill_0.1.0.sql" >/dev/null; then
    ok "database at $OLD filled: $(sqld "$DB_OLD" -c "SELECT format('%s claims, %s events, %s batches, %s items',
        (SELECT count(*) FROM approvals.claims), (SELECT count(*) FROM approvals.events),
        (SELECT count(*) FROM approvals.batches), (SELECT count(*) FROM approvals.batch_items))")"
else
    not_ok "create a database at $OLD and fill it (test/upgrade/fill_0.1.0.sql)"
    exit 1
fi
check "it is at version $OLD" "$OLD" \
    "$(sqld "$DB_OLD" -c "SELECT extversion FROM pg_extension WHERE extname = 'approvals'")"
# the batches by role in the fixture (ids are deterministic)
batch_id() { sqld "$1" -c "SELECT id FROM approvals.batches WHERE id = 'bat_' || left(md5('upgrade-batch-$2'), 16)"; }
B_MID=$(batch_id "$DB_OLD" b0)
B_QUEUED=$(batch_id "$DB_OLD" d0)
B_PENDING=$(batch_id "$DB_OLD" a0)
B_DONE=$(batch_id "$DB_OLD" c0)
check "the batch mid-flight: processing, 100 of 250 done, next_position 101, its worker gone" \
    "processing|100|250|101|t" \
    "$(sqld "$DB_OLD" -c "SELECT status, processed_count, total_claims, next_position,
                                 NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                                             WHERE a.pid = b.worker_pid AND a.backend_start = b.worker_started)
                          FROM approvals.batches b WHERE id = '$B_MID'")"

# Row counts and checksums over the tables' columns as they are now (a column the update adds
# is not part of them; an oid column is compared as an oid, whatever reg* type the update gives
# it), and the positions of the sequences.
sqld "$DB_OLD" >"$TMP/checksum.sql" -c "
    SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(r, E''\\n'' ORDER BY r COLLATE \"C\"), '''')) FROM (SELECT ROW(%s)::text AS r FROM %s) s;',
                  c.oid::regclass::text,
                  string_agg(quote_ident(a.attname)
                             || CASE WHEN a.atttypid = 'oid'::regtype THEN '::oid' ELSE '' END,
                             ', ' ORDER BY a.attnum), c.oid::regclass)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE n.nspname = 'approvals' AND c.relkind IN ('r', 'p')
    GROUP BY c.oid ORDER BY 1" -c "
    SELECT format('SELECT %L, last_value, is_called FROM %s;', c.oid::regclass::text, c.oid::regclass)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'approvals' AND c.relkind = 'S' ORDER BY 1"
if ! sqld "$DB_OLD" -f "$TMP/checksum.sql" >"$TMP/rows.before" || [[ ! -s $TMP/rows.before ]]; then
    not_ok "row counts and checksums before the update"
fi

# --- 2. ALTER EXTENSION approvals UPDATE -----------------------------------------------
T_UPDATE=$(sql -c "SELECT clock_timestamp()")
UPDATED=
if ERR=$(PGOPTIONS=$QUIET sqld "$DB_OLD" -c "ALTER EXTENSION approvals UPDATE" 2>&1 >/dev/null); then
    ok "ALTER EXTENSION approvals UPDATE on the filled database"
    UPDATED=1
else
    not_ok "ALTER EXTENSION approvals UPDATE on the filled database"
    indent <<<"$ERR"
fi
check "it is at version $TARGET" "$TARGET" \
    "$(sqld "$DB_OLD" -c "SELECT extversion FROM pg_extension WHERE extname = 'approvals'")"

# --- 4. every row kept -----------------------------------------------------------------
if sqld "$DB_OLD" -f "$TMP/checksum.sql" >"$TMP/rows.after" 2>"$TMP/rows.err"; then
    while IFS='|' read -r rel count sum; do
        after=$(awk -F'|' -v r="$rel" '$1 == r { print $2 "|" $3 }' "$TMP/rows.after")
        if [[ $after == "$count|$sum" ]]; then
            case $rel in
                *_seq) ok "sequence $rel kept its position ($count, is_called $sum)" ;;
                *) ok "rows of $rel kept: $count rows, same md5 over the $OLD columns" ;;
            esac
        else
            not_ok "rows of $rel kept (before: $count|$sum, after: ${after:-missing})"
        fi
    done <"$TMP/rows.before"
else
    not_ok "rows can be read with the $OLD columns after the update"
    indent <"$TMP/rows.err"
fi

# --- 3. the catalog equals a fresh install ---------------------------------------------
if new_db "$DB_NEW" && catalog "$DB_NEW" "$TMP/fresh.cat"; then
    check "fresh CREATE EXTENSION approvals installs $TARGET" "$TARGET" \
        "$(sqld "$DB_NEW" -c "SELECT extversion FROM pg_extension WHERE extname = 'approvals'")"
    if catalog "$DB_OLD" "$TMP/updated.cat"; then
        compare_catalogs "$OLD, filled" "$TMP/updated.cat" "$TMP/fresh.cat"
    else
        not_ok "catalog dump of the updated database"
    fi
    # any other version with an update path to the default, in an empty database
    for v in $(sql -c "SELECT source FROM pg_extension_update_paths('approvals')
                       WHERE target = '$TARGET' AND path IS NOT NULL AND source <> '$OLD'
                       ORDER BY source"); do
        if new_db "$DB_EXTRA" "$v" \
           && PGOPTIONS=$QUIET sqld "$DB_EXTRA" -c "ALTER EXTENSION approvals UPDATE" >/dev/null \
           && catalog "$DB_EXTRA" "$TMP/extra.cat"; then
            compare_catalogs "$v, empty" "$TMP/extra.cat" "$TMP/fresh.cat"
        else
            not_ok "install $v, update it to $TARGET and dump its catalog"
        fi
        PGOPTIONS=$QUIET sql -c "DROP DATABASE IF EXISTS $DB_EXTRA WITH (FORCE)" >/dev/null
    done
else
    not_ok "fresh CREATE EXTENSION approvals in another database and its catalog dump"
fi

# --- 5. the mid-flight batch finishes after the update ----------------------------------
# run_queued (the worker serves only approvals.database) in chunks of 40: the orphaned batch
# first (oldest queued_at), then the queued one.
finish_batches() {
    local ERR
    if ERR=$(PGOPTIONS='-c approvals.chunk_size=40' SQL_TIMEOUT=120 \
             sqld "$DB_OLD" -c "CALL approvals.run_queued()" 2>&1 >/dev/null); then
        ok "CALL approvals.run_queued() after the update"
    else
        not_ok "CALL approvals.run_queued() after the update"
        indent <<<"$ERR"
    fi
    check "the mid-flight batch completed: 250 processed, 243 approved, 7 failed, 2nd attempt, no owner" \
        "completed|250|243|7|2|t" \
        "$(sqld "$DB_OLD" -c "SELECT status, processed_count, approved_count, failed_count, attempts,
                                     worker_pid IS NULL AND completed_at IS NOT NULL
                              FROM approvals.batches WHERE id = '$B_MID'")"
    check "every item of it decided, none twice: items undecided | claims with 2+ decision events | approved events" \
        "0|0|243" \
        "$(sqld "$DB_OLD" -c "SELECT (SELECT count(*) FROM approvals.batch_items
                                      WHERE batch_id = '$B_MID' AND decision IS NULL),
                                     (SELECT count(*) FROM (SELECT claim_id FROM approvals.events
                                          WHERE batch_id = '$B_MID' AND action IN ('approved', 'rejected')
                                          GROUP BY claim_id HAVING count(*) > 1) d),
                                     (SELECT count(*) FROM approvals.events
                                      WHERE batch_id = '$B_MID' AND action = 'approved')")"
    check "its first chunk (decided under $OLD) was not processed again" "0" \
        "$(sqld "$DB_OLD" -c "SELECT count(*) FROM approvals.batch_items
                              WHERE batch_id = '$B_MID' AND position <= 100 AND processed_at >= '$T_UPDATE'")"
    check "items decided after the update: 145 approved, and the failures in order" \
        "145|Claim already processed,Claim not found,Claim already processed,Claim belongs to another tenant,Claim belongs to another tenant,Claim expired,Requester cannot decide own claim" \
        "$(sqld "$DB_OLD" -c "SELECT count(*) FILTER (WHERE position > 100 AND decision = 'approved'),
                                     string_agg(error, ',' ORDER BY position) FILTER (WHERE decision = 'failed')
                              FROM approvals.batch_items WHERE batch_id = '$B_MID'")"
    check "the handler ran once per claim the batch approved (243 rows for 243 claims)" "243|243" \
        "$(sqld "$DB_OLD" -c "SELECT count(*), count(DISTINCT p.claim_id) FROM public.upgrade_payments p
                              JOIN approvals.events e ON e.claim_id = p.claim_id AND e.batch_id = '$B_MID'
                                                     AND e.action = 'approved'
                              WHERE p.action = 'approved'")"
    check "the queued batch completed too (30 approved)" "completed|30" \
        "$(sqld "$DB_OLD" -c "SELECT status, approved_count FROM approvals.batches WHERE id = '$B_QUEUED'")"
    check "the pending batch from $OLD can be started and processed (10 approved)" "queued|10|completed|10" \
        "$(sqld "$DB_OLD" -c "SELECT status FROM approvals.start_batch('$B_PENDING')" \
                          -c "SELECT count(*) FROM approvals.process_batch('$B_PENDING') WHERE decision = 'approved'" \
                          -c "SELECT status, approved_count FROM approvals.batches WHERE id = '$B_PENDING'" \
           2>&1 | paste -sd'|')"
    check "the completed batch from $OLD reads back (batch_results, api_get_batch)" "20|18|completed" \
        "$(sqld "$DB_OLD" -c "SELECT (SELECT count(*) FROM approvals.batch_results('$B_DONE')),
                                     (SELECT count(*) FROM approvals.batch_results('$B_DONE') WHERE decision = 'approved'),
                                     approvals.api_get_batch('$B_DONE') ->> 'status'" 2>&1)"
}
if [[ -n $UPDATED ]]; then
    finish_batches
else
    not_ok "the batches from $OLD finish after the update (not tried: the update failed)"
fi

# --- 6. the new library under a schema still at 0.1.0 -----------------------------------
if new_db "$DB_STALE" "$OLD" && sqld "$DB_STALE" -f "$FIXTURES/fill_0.1.0.sql" >/dev/null; then
    ok "second database at $OLD filled, not updated"
else
    not_ok "second database at $OLD filled"
    exit 1
fi
# arguments for each function: real rows of the fixture (each call is rolled back), so
# that a call gets past its argument checks; a function not listed gets NULLs.
S_MID=$(batch_id "$DB_STALE" b0)
S_QUEUED=$(batch_id "$DB_STALE" d0)
S_PENDING=$(batch_id "$DB_STALE" a0)
S_DONE=$(batch_id "$DB_STALE" c0)
mapfile -t S_CLAIMS < <(sqld "$DB_STALE" -c "SELECT i.claim_id FROM approvals.batch_items i
                                             WHERE i.batch_id = '$S_PENDING' ORDER BY i.position LIMIT 4")
declare -A ARGS=(
    [sees_all_tenants]=""
    [visible_tenants]=""
    [submit]="'invoice', 'INV-STALE-1', 'sha256:stale', actor => 'usr_req'"
    [decide]="'${S_CLAIMS[0]:-}', 'approved', 'fine', NULL, 'usr_mgr_jane'"
    [cancel_claim]="'${S_CLAIMS[1]:-}', 'not needed'"
    [expire_due]=""
    [set_policy]="'stale_type', NULL, NULL, NULL, 1"
    [set_handler]="'invoice', NULL"
    [grant_tenant]="'stale', 'approvals_reader'"
    [revoke_tenant]="'acme', 'approvals_reader'"
    [json_ts]="now()"
    [json_required]="'{\"a\": \"b\"}', 'a'"
    [json_text_array]="'{\"ids\": [\"x\", \"y\"]}', 'ids', true"
    [api_approval]="(SELECT c FROM approvals.claims c ORDER BY c.id LIMIT 1)"
    [api_submit]="'{\"resourceType\": \"invoice\", \"resourceId\": \"INV-STALE-2\", \"dataSnapshotHash\": \"h\", \"merchantId\": \"acme\", \"actorId\": \"usr_req\"}'"
    [api_respond]="'${S_CLAIMS[2]:-}', '{\"outcome\": \"rejected\", \"data\": {\"comment\": \"no\"}}', 'usr_mgr_jane'"
    [create_batch]="ARRAY['${S_CLAIMS[3]:-}'], 'usr_coord', 'stale', 'approve', false"
    [update_batch]="'$S_PENDING', NULL, NULL, 'amended'"
    [start_batch]="'$S_PENDING'"
    [process_batch]="'$S_QUEUED'"
    [cancel_batch]="'$S_MID', 'stop'"
    [batch_results]="'$S_DONE'"
    [list_batches]=""
    [get_batch]="'$S_DONE'"
    [wait_batch]="'$S_DONE', '1 second'"
    [run_queued]="1"
    [purge_batches]="'1000 years'"
    [api_batch_summary]="(SELECT b FROM approvals.batches b ORDER BY b.id LIMIT 1)"
    [api_list_batches]="1, 5"
    [api_get_batch]="'$S_DONE'"
    [api_create_batch]="'{\"claim_ids\": [\"${S_CLAIMS[3]:-}\"], \"coordinator_id\": \"usr_coord\"}'"
    [api_update_batch]="'$S_PENDING', '{\"comment\": \"amended\"}'"
    [api_cancel_batch]="'$S_PENDING'"
)
# functions that keep working under any version (their argument errors are theirs)
KEEP_WORKING=' sees_all_tenants visible_tenants api_approval api_batch_summary '

# stale_call NAME KIND NULLARGS: call approvals.NAME under the stale schema and judge it.
stale_call() {
    local name=$1 kind=$2 nullargs=$3 args stmt out rc state
    if [[ -v ARGS[$name] ]]; then args=${ARGS[$name]}; else args=$nullargs; fi
    if [[ $kind == p ]]; then
        stmt="CALL approvals.$name($args)"
    else
        stmt="SELECT approvals.$name($args)"
    fi
    out=$(PGOPTIONS=$QUIET sqld "$DB_STALE" -v VERBOSITY=verbose \
              -c "BEGIN" -c "$stmt" -c "ROLLBACK" 2>&1 >/dev/null)
    rc=$?
    state=$(sed -nE 's/^(psql:[^ ]* )?ERROR: +([0-9A-Z]{5}): .*/\2/p' <<<"$out" | head -n 1)
    if ((rc == 0)); then
        ok "$name works under $OLD"
    elif ((rc == 2)) || grep -qE 'server closed the connection|terminated abnormally|connection to server .* lost' <<<"$out"; then
        not_ok "$name: the connection was lost (crash?) — $stmt"
        indent 20 <<<"$out"
        ap_wait_ready 60 >/dev/null
    elif grep -q 'ALTER EXTENSION approvals UPDATE' <<<"$out"; then
        ok "$name says to run ALTER EXTENSION approvals UPDATE ($state)"
    elif [[ $KEEP_WORKING == *" $name "* || $name == json_* ]] \
         && [[ $state == 22004 || $state == 22023 || $state == P0002 ]]; then
        ok "$name raises its own argument error $state under $OLD"
    else
        not_ok "$name either works or says to run ALTER EXTENSION approvals UPDATE — $stmt"
        indent 20 <<<"$out"
    fi
}

# null_probe NAME KIND NULLARGS: the same function with every argument NULL; any error is
# fine, a lost connection is not. Appends NAME to LOST when it was.
null_probe() {
    local stmt out rc
    [[ -n $3 ]] || return 0
    if [[ $2 == p ]]; then stmt="CALL approvals.$1($3)"; else stmt="SELECT approvals.$1($3)"; fi
    out=$(PGOPTIONS=$QUIET sqld "$DB_STALE" -c "BEGIN" -c "$stmt" -c "ROLLBACK" 2>&1 >/dev/null)
    rc=$?
    if ((rc == 2)) || grep -qE 'server closed the connection|terminated abnormally' <<<"$out"; then
        LOST+=("$1")
        ap_wait_ready 60 >/dev/null
    fi
    return 0
}

N_STALE=0
LOST=()
while IFS='|' read -r name kind nullargs; do
    [[ -n $name ]] || continue
    stale_call "$name" "$kind" "$nullargs"
    null_probe "$name" "$kind" "$nullargs"
    N_STALE=$((N_STALE + 1))
done < <(sqld "$DB_STALE" -c "
    SELECT p.proname, p.prokind,
           coalesce((SELECT string_agg('NULL::' || format_type(t, NULL), ', ' ORDER BY o)
                     FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, o)), '')
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'approvals' AND p.prokind IN ('f', 'p')
      AND p.prorettype <> 'trigger'::regtype
    ORDER BY p.proname, p.oid")
check "every function and procedure of $OLD was called under the stale schema" 33 "$N_STALE"
check "called with all-NULL arguments under the stale schema, no function lost its connection" "" "${LOST[*]}"

# the trigger function and the row-level security helpers keep working
out=$(sqld "$DB_STALE" -c "UPDATE approvals.events SET actor = actor WHERE id = 1" 2>&1)
if grep -q 'append-only' <<<"$out"; then
    ok "under $OLD the events trigger still refuses UPDATE (append-only)"
else
    not_ok "under $OLD the events trigger still refuses UPDATE (append-only)"
    indent 10 <<<"$out"
fi
out=$(sqld "$DB_STALE" -c "TRUNCATE approvals.events" 2>&1)
if grep -q 'append-only' <<<"$out"; then
    ok "under $OLD the events trigger still refuses TRUNCATE"
else
    not_ok "under $OLD the events trigger still refuses TRUNCATE"
    indent 10 <<<"$out"
fi
check "under $OLD approvals_reader still reads claims through row-level security (NULL-tenant and granted acme claims)" \
    "$(sqld "$DB_STALE" -c "SELECT count(*) FROM approvals.claims WHERE tenant IS NULL OR tenant = 'acme'")" \
    "$(sqld "$DB_STALE" -c "SET ROLE approvals_reader" -c "SELECT count(*) FROM approvals.claims" 2>&1)"

if grep -qE 'terminated by signal|PANIC|was terminated by exception' <(tail -c +"$((LOG_FROM + 1))" "$AP_LOG"); then
    not_ok "no server process crashed during the test"
    grep -E -A2 'terminated by signal|PANIC|was terminated by exception' \
        <(tail -c +"$((LOG_FROM + 1))" "$AP_LOG") | indent 20
else
    ok "no server process crashed during the test"
fi

# --- 7. clean up -----------------------------------------------------------------------
cleanup
trap - EXIT
check "scratch databases dropped" "0" \
    "$(sql -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'ap_upg_%_$RUN'")"
echo "# 70_upgrade: $N tests, $FAILS failed, $((SECONDS - T0)) s"
[[ $FAILS -eq 0 ]]
