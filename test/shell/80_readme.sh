#!/usr/bin/env bash
# 80_readme: the README's SQL examples run as written.
#   - every fenced block of README.md has an info string, and every SQL block is either
#     ```sql (runnable) or ```sql excerpt (a fragment, not run); anything else fails
#   - the runnable blocks are extracted and run in document order, each with its own psql
#     session (psql -X -v ON_ERROR_STOP=1, as a superuser) on a fresh database
#     approvals_readme: one "ok"/"not ok" line per block, naming the README line of its
#     opening fence (errors are reported with their README line)
#   - a block that calls pg_cron (cron.*) runs in pg_cron's database (cron.database_name,
#     'postgres' on the scratch cluster), where pg_cron is created if missing (and dropped
#     again); the command of every job it scheduled must then run once in approvals_readme
#     (the database the README installed approvals in), and the jobs are unscheduled
#   - every batch the blocks created completed without a failed item (a batch reports its
#     failures in its rows, not as an error)
#   - the excerpt that lists every function's signature (its first line is "-- every function
#     and procedure of schema approvals") matches pg_proc of the installed extension
#   - afterwards (and before, after an interrupted run) the database, the roles the README
#     creates (CREATE ROLE name) and the jobs it schedules are dropped, so it can run again
#
# AP_README=FILE runs the blocks of another file (e.g. a deliberately broken copy, to see
# the test fail); AP_README_VERBOSE=1 prints every block's output (as "#" lines).
# Run by test/run.sh against its scratch cluster, or by hand:
#   source test/lib.sh && ap_use_cluster readme 54345 && ap_start && bash test/shell/80_readme.sh
# Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
README=${AP_README:-$AP_ROOT/README.md}
DB=approvals_readme
WORK=$(mktemp -d)
CREATED_CRON=0
CRON_DB=
ROLES=()
JOBS=()

quiet() { PGOPTIONS='-c client_min_messages=warning' "$@"; }

# Drop what the README's blocks create: the database, the jobs, the roles (in that order:
# a role cannot be dropped while objects of approvals_readme depend on it).
drop_all() {
    local r j
    quiet sql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
    if [[ -n $CRON_DB ]]; then
        for j in "${JOBS[@]}"; do
            quiet sqld "$CRON_DB" \
                -c "DELETE FROM cron.job_run_details WHERE jobid IN (SELECT jobid FROM cron.job WHERE jobname = '$j')" \
                -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = '$j'" >/dev/null 2>&1
        done
    fi
    for r in "${ROLES[@]}"; do
        quiet sql -c "DROP ROLE IF EXISTS \"$r\"" >/dev/null 2>&1
    done
}
cleanup() {
    drop_all
    if ((CREATED_CRON)); then
        quiet sqld "$CRON_DB" -c "DROP EXTENSION IF EXISTS pg_cron" >/dev/null 2>&1
        CREATED_CRON=0
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

if ! ap_wait_ready 60; then
    not_ok "server accepts connections"
    exit 1
fi
if [[ ! -r $README ]]; then
    not_ok "read $README"
    exit 1
fi

# --- extract the blocks -----------------------------------------------------------------------
# $WORK/LINE.sql holds the runnable block whose opening fence is on README line LINE (and
# $WORK/xLINE.sql an excerpt); $WORK/blocks lists "LINE" per runnable block in order;
# $WORK/bad lists fences that break the convention.
awk -v dir="$WORK" '
    function fail(msg) { print "line " NR ": " msg >> (dir "/bad") }
    !inblock && /^[ \t]*```/ {
        info = $0
        sub(/^[ \t]*```[ \t]*/, "", info); sub(/[ \t]+$/, "", info)
        inblock = 1; file = ""
        if (info == "") fail("a fenced block without an info string")
        else if (info == "sql") { file = dir "/" NR ".sql"; print NR >> (dir "/blocks") }
        else if (info ~ /^sql[ \t]+excerpt$/) file = dir "/x" NR ".sql"
        else if (info ~ /^sql/) fail("unknown SQL block marker \"" info "\"")
        else if (info ~ /^(psql|pgsql|postgres|postgresql|plpgsql)/) fail("SQL block with info string \"" info "\" (use sql or sql excerpt)")
        next
    }
    inblock && /^[ \t]*```[ \t]*$/ { inblock = 0; if (file != "") close(file); next }
    inblock && file != "" { print > file }
    END { if (inblock) fail("a fenced block is never closed") }
' "$README"

if [[ -s $WORK/bad ]]; then
    not_ok "every fenced block has an info string; SQL blocks are \`\`\`sql or \`\`\`sql excerpt"
    sed 's/^/#   /' "$WORK/bad"
else
    ok "every fenced block has an info string; SQL blocks are \`\`\`sql or \`\`\`sql excerpt"
fi
mapfile -t BLOCKS < <(cat "$WORK/blocks" 2>/dev/null)
if [[ ${#BLOCKS[@]} -eq 0 ]]; then
    not_ok "the README has runnable SQL blocks"
    exit 1
fi

# Roles the blocks create, and pg_cron jobs they schedule (by name).
mapfile -t ROLES < <(cd "$WORK" && cat "${BLOCKS[@]/%/.sql}" \
    | grep -oiE 'CREATE[[:space:]]+ROLE[[:space:]]+("[^"]+"|[a-z_][a-z0-9_$]*)' \
    | awk '{ r = $3; if (r ~ /^"/) gsub(/"/, "", r); else r = tolower(r); print r }' | sort -u)
mapfile -t JOBS < <(cd "$WORK" && cat "${BLOCKS[@]/%/.sql}" \
    | grep -oE "cron\.schedule(_in_database)?\([[:space:]]*'[^']+'" | sed -E "s/.*'([^']+)'/\1/" | sort -u)

# --- a fresh database (and pg_cron where it lives, when a block needs it) -----------------------
CRON_DB=$(sql -c "SELECT setting FROM pg_settings WHERE name = 'cron.database_name'")
drop_all
if ! quiet sql -c "CREATE DATABASE $DB" >/dev/null; then
    not_ok "CREATE DATABASE $DB"
    exit 1
fi
if (cd "$WORK" && grep -qE '\bcron\.' "${BLOCKS[@]/%/.sql}"); then
    if [[ -z $CRON_DB ]]; then
        not_ok "pg_cron is preloaded (a README block calls cron.*)"
    else
        if [[ $(sqld "$CRON_DB" -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'") == 0 ]]; then
            CREATED_CRON=1
            quiet sqld "$CRON_DB" -c "CREATE EXTENSION pg_cron" >/dev/null \
                || not_ok "CREATE EXTENSION pg_cron in $CRON_DB"
        fi
    fi
fi

# --- run the blocks in order -------------------------------------------------------------------
# run_block LINE DB: run $WORK/LINE.sql in DB; prints psql's output, README line numbers added
run_block() {
    local line=$1 db=$2 out rc
    out=$(cd "$WORK" && timeout -k 5 "${SQL_TIMEOUT:-120}" "$AP_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
              -h "$AP_PGHOST" -p "$AP_PGPORT" -U postgres -d "$db" -f "$line.sql" 2>&1)
    rc=$?
    # psql:123.sql:5: ERROR: ...  ->  README line 128: ERROR: ...
    while IFS= read -r l; do
        if [[ $l =~ ^psql:([0-9]+)\.sql:([0-9]+):\ (.*)$ ]]; then
            l="README line $((BASH_REMATCH[1] + BASH_REMATCH[2])): ${BASH_REMATCH[3]}"
        fi
        printf '%s\n' "$l"
    done <<<"$out" >"$WORK/$line.out"
    return "$rc"
}

for line in "${BLOCKS[@]}"; do
    first=$(grep -m 1 -vE '^[[:space:]]*(--.*)?$' "$WORK/$line.sql" | sed -E 's/^[[:space:]]+//' | cut -c1-60)
    db=$DB
    extra=
    if grep -qE '\bcron\.' "$WORK/$line.sql"; then
        db=${CRON_DB:-postgres}
        extra=" (in $db, pg_cron's database)"
    fi
    if ! run_block "$line" "$db"; then
        not_ok "README line $line$extra: $first"
        # the error and what follows it (the output of the statements before it is not shown)
        { awk '/^README line [0-9]+: / { p = 1 } p' "$WORK/$line.out" | grep . \
              || tail -n 10 "$WORK/$line.out"; } | sed 's/^/#   /'
        continue
    fi
    # A cron block: every job it scheduled must run once in the README's database.
    bad=
    if [[ $db != "$DB" ]]; then
        for j in "${JOBS[@]}"; do
            grep -q "'$j'" "$WORK/$line.sql" || continue
            cmd=$(sqld "$db" -c "SELECT command FROM cron.job WHERE jobname = '$j'")
            if [[ -z $cmd ]]; then
                bad+="job '$j' is not in cron.job; "
            elif ! printf '%s\n' "$cmd" >"$WORK/$line-$j.sql" || ! run_block "$line-$j" "$DB"; then
                bad+="job '$j' fails in $DB: $(grep -m 1 'ERROR' "$WORK/$line-$j.out"); "
            fi
        done
    fi
    if [[ -n $bad ]]; then
        not_ok "README line $line$extra: $first"
        echo "#   $bad"
    else
        ok "README line $line$extra: $first"
    fi
    if [[ -n ${AP_README_VERBOSE:-} ]]; then sed 's/^/#   /' "$WORK/$line.out"; fi
done

# --- no example failed quietly: a batch that failed items raises nothing --------------------------
got=$(sqld "$DB" -c "SELECT coalesce(string_agg(id || ' ' || status || ', ' || failed_count || ' failed: '
                                                 || coalesce(error, ''), '; '), 'none')
                     FROM approvals.batches WHERE status <> 'completed' OR failed_count > 0" 2>&1)
check "every batch the blocks created completed, with no failed item (others: none)" "none" "$got"

# --- the signatures excerpt ----------------------------------------------------------------------
# normalise: whitespace runs to one space, none inside parentheses' edges; one entry per ';'
norm() { tr '\n' ' ' | sed -E 's/[[:space:]]+/ /g; s/\( /(/g; s/ \)/)/g' | tr ';' '\n' \
             | sed -E 's/^ +//; s/ +$//' | grep . | LC_ALL=C sort; }
sigs=$(cd "$WORK" && grep -l -m 1 -x -- '-- every function and procedure of schema approvals.*' x*.sql 2>/dev/null | head -n 1)
if [[ -z $sigs ]]; then
    not_ok "the README has the signatures excerpt (-- every function and procedure of schema approvals)"
else
    grep -v '^--' "$WORK/$sigs" | norm >"$WORK/sigs.readme"
    sqld "$DB" -c "SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE '' END || 'approvals.' || p.proname
                          || '(' || replace(regexp_replace(pg_get_function_arguments(p.oid),
                                                          '::[a-z ]+(\[\])?', '', 'g'), 'IN ', '')
                          || ')' || coalesce(' RETURNS ' || pg_get_function_result(p.oid), '') || ';'
                   FROM pg_proc p WHERE p.pronamespace = 'approvals'::regnamespace" \
        | sed 's/timestamp with time zone/timestamptz/g' | norm >"$WORK/sigs.db"
    diff -u "$WORK/sigs.readme" "$WORK/sigs.db" >"$WORK/sigs.diff"
    if [[ -s $WORK/sigs.db && ! -s $WORK/sigs.diff ]]; then
        ok "README line ${sigs//[!0-9]/}: the signatures excerpt matches the installed functions ($(wc -l <"$WORK/sigs.db"))"
    else
        not_ok "README line ${sigs//[!0-9]/}: the signatures excerpt matches the installed functions (- README, + pg_proc)"
        tail -n +3 "$WORK/sigs.diff" | grep '^[-+]' | sed 's/^/#   /'
    fi
fi

cleanup
trap - EXIT
left=$(sql -c "SELECT (SELECT count(*) FROM pg_database WHERE datname = '$DB')
                    + (SELECT count(*) FROM pg_roles WHERE rolname = ANY ('{$(IFS=,; echo "${ROLES[*]}")}'::text[]))")
if [[ -n $CRON_DB && ${#JOBS[@]} -gt 0 ]] \
   && [[ $(sqld "$CRON_DB" -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'") != 0 ]]; then
    left=$((left + $(sqld "$CRON_DB" -c "SELECT count(*) FROM cron.job
                                           WHERE jobname = ANY ('{$(IFS=,; echo "${JOBS[*]}")}'::text[])")))
fi
check "cleaned up: database $DB, roles (${ROLES[*]}) and jobs (${JOBS[*]}) are gone" "0" "$left"
echo "# 80_readme: ${#BLOCKS[@]} blocks, $N tests, $FAILS failed, $((SECONDS - T0)) s"
[[ $FAILS -eq 0 ]]
