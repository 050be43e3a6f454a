#!/usr/bin/env bash
# 60_bad_input: a catalog-driven bad-input sweep of every function and procedure of schema
# approvals (read from pg_proc, so a function added later is swept without editing this).
#   - each is called with sane arguments, then with each argument in turn replaced by every
#     hostile value of its type, then with every argument NULL (test/sweep/sweep.sql makes
#     the calls; an argument type it has no hostile values for is a failure)
#   - as a role with no approvals role, as a member of each approvals_* role and as a
#     superuser, one session per role, each call its own top-level statement
#   - a call fails the test when the server crashes (connection lost, or a backend
#     "terminated by signal" in the server log), when it raises SQLSTATE XX000, XX001 or
#     XX002, or when it raises and leaves rows behind (rows of any table of schema approvals
#     written by a transaction that committed while it ran); ordinary errors (22004, 22023,
#     42501, P0002, 55000, 54001, 57014 ...) are expected
#   - a session that a call ended (crash) is replaced and the sweep goes on after that call;
#     only the call runs under a statement timeout (SWEEP_STATEMENT_TIMEOUT, 5s; procedures,
#     which commit as they go, 60s)
#   - at the end, CALL approvals.run_queued() processes whatever batches the sweep queued
# One line per (function, role): ok, or one "not ok" per failing call naming the argument,
# the value and the role, with the call's SQL. Runs in its own database approvals_sweep with
# roles sweep_<run>_*, both dropped at the end. SWEEP_KEEP=1 keeps the generated psql scripts
# and their output (in a directory it names).
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
DB=approvals_sweep
RUN=$(printf '%x%x' "$$" "$(date +%s)")
STATEMENT_TIMEOUT=${SWEEP_STATEMENT_TIMEOUT:-5s}
PSQL_TIMEOUT=${SWEEP_PSQL_TIMEOUT:-600}
WORK=$(mktemp -d)
CRASH_RE='terminated by signal|server process .* was terminated|was terminated by exception'

# Roles swept, in order (by suffix): login role (sweep_<run>_<suffix> is granted approvals_<suffix>,
# except for none), and how reports name it.
ROLE_SUFFIXES=(none reader requester reviewer coordinator admin platform super)
declare -A ROLE_LOGIN ROLE_LABEL
for s in "${ROLE_SUFFIXES[@]}"; do
    case $s in
        none) ROLE_LOGIN[$s]=sweep_${RUN}_$s; ROLE_LABEL[$s]="no approvals role" ;;
        super) ROLE_LOGIN[$s]=postgres; ROLE_LABEL[$s]="superuser" ;;
        *) ROLE_LOGIN[$s]=sweep_${RUN}_$s; ROLE_LABEL[$s]=approvals_$s ;;
    esac
done

cleanup() {
    local s logins=()
    ap_wait_ready 60 >/dev/null 2>&1
    for s in "${ROLE_SUFFIXES[@]}"; do
        [[ ${ROLE_LOGIN[$s]} == sweep_* ]] && logins+=("${ROLE_LOGIN[$s]}")
    done
    local IFS=,
    # The roles are created together, so they all exist or none does.
    sqld "$DB" -c "DROP OWNED BY ${logins[*]}" >/dev/null 2>&1
    PGOPTIONS='-c client_min_messages=warning' sql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
        >/dev/null 2>&1
    for s in "${logins[@]}"; do sql -c "DROP ROLE IF EXISTS $s" >/dev/null 2>&1; done
    if [[ -n ${SWEEP_KEEP:-} ]]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }
LOG_START=$(stat -c %s "$AP_LOG" 2>/dev/null || echo 0)

# --- the sweep's database, roles and generated calls ---------------------------------------
setup() {
    # Its thousands of expected errors stay out of the server log (crashes are the
    # postmaster's to log, and still are).
    PGOPTIONS='-c client_min_messages=warning' sql -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
        -c "CREATE DATABASE $DB" -c "ALTER DATABASE $DB SET log_min_messages = fatal" \
        -c "ALTER DATABASE $DB SET log_min_error_statement = panic" >/dev/null || return 1
    # CREATE EXTENSION creates the approvals_* roles when missing; racing another database's
    # CREATE EXTENSION on a fresh cluster (test/valgrind.sh --sweep runs this test alongside
    # the others) it can fail on them: say so, and try again.
    local out try
    for try in 1 2 3; do
        out=$(PGOPTIONS='-c client_min_messages=warning' sqld "$DB" \
                  -c "CREATE EXTENSION IF NOT EXISTS approvals" 2>&1) && break
        echo "# CREATE EXTENSION approvals failed (attempt $try): $(echo "$out" | head -n 2 | tr '\n' ' ')"
        ((try == 3)) && return 1
        sleep 1
    done
    local s roles_sql="" values=() i=0
    for s in "${ROLE_SUFFIXES[@]}"; do
        i=$((i + 1))
        values+=("($i, '$s', '${ROLE_LOGIN[$s]}', '${ROLE_LABEL[$s]}')")
        [[ $s == super ]] && continue
        roles_sql+="CREATE ROLE ${ROLE_LOGIN[$s]} LOGIN;"
        [[ $s == none ]] || roles_sql+="GRANT approvals_$s TO ${ROLE_LOGIN[$s]};"
    done
    sql -c "$roles_sql" >/dev/null || return 1
    PGOPTIONS='-c client_min_messages=warning' sqld "$DB" -f "$AP_ROOT/test/sweep/sweep.sql" \
        >/dev/null || return 1
    local IFS=,
    SQL_TIMEOUT=120 sqld "$DB" -c "INSERT INTO sweep.roles VALUES ${values[*]}" \
        -c "SELECT sweep.setup()" \
        -c "SELECT sweep.generate(suffix) FROM sweep.roles ORDER BY ord" >/dev/null
}
if ! setup; then
    not_ok "sweep set up (database $DB, roles, test/sweep/sweep.sql)"
    exit 1
fi

# An argument type the generator has no hostile values for: fail loudly.
while IFS=$'\t' read -r fn msg; do
    not_ok "$fn: $msg (extend test/sweep/sweep.sql)"
done < <(sqld "$DB" -F $'\t' -c "SELECT fn, msg FROM sweep.problems ORDER BY fn")
NFUNCS=$(sqld "$DB" -c "SELECT count(DISTINCT fn) FROM sweep.calls")
echo "# $NFUNCS functions and procedures of schema approvals, setup $((SECONDS - T0)) s"

# --- run one role's calls ----------------------------------------------------------------
# run_role SUFFIX: run the role's calls in sessions of its login role, resuming after a call
# that ended its session. Collects $WORK/SUFFIX.out (the @@ lines the blocks echo) and
# $WORK/SUFFIX.lost (seq<TAB>why<TAB>detail for each call that ended its session; seq 0 for
# a crash no call of ours was lost to, -1 when the role's calls could not be run at all).
run_role() {
    local suffix=$1 login=${ROLE_LOGIN[$1]} start=0 rc last pos why detail tries=0 after
    local out=$WORK/$suffix.out lost=$WORK/$suffix.lost seg=$WORK/$suffix.seg
    : >"$out"
    : >"$lost"
    if ! ap_wait_ready 60; then
        printf -- '-1\t%s\t\n' "the server does not accept connections" >>"$lost"
        return 1
    fi
    while :; do
        {
            printf '%s\n' '\set VERBOSITY terse' '\set SHOW_CONTEXT never' \
                'SET client_min_messages = error;' \
                "\\set sweep_timeout '$STATEMENT_TIMEOUT'" '\o /dev/null' \
                'SELECT * FROM sweep.fresh() \gset'
            sqld "$DB" -c "SELECT string_agg(block, E'\n' ORDER BY seq) FROM sweep.calls
                           WHERE suffix = '$suffix' AND seq > $start"
            printf '%s\n' '\echo @@DONE'
        } >"$WORK/$suffix.sql"
        pos=$(stat -c %s "$AP_LOG" 2>/dev/null || echo 0)
        timeout -k 5 "$PSQL_TIMEOUT" "$AP_BIN/psql" -X -q -v ON_ERROR_STOP=0 -h "$AP_PGHOST" \
            -p "$AP_PGPORT" -U "$login" -d "$DB" -f "$WORK/$suffix.sql" \
            >"$seg" 2>>"$WORK/$suffix.err"
        rc=$?
        grep '^@@' "$seg" >>"$out"
        if [[ $rc -eq 0 ]] && grep -q '^@@DONE' "$seg"; then
            tail -c +"$((pos + 1))" "$AP_LOG" 2>/dev/null >"$WORK/log.part"
            if grep -qE "$CRASH_RE" "$WORK/log.part"; then
                printf '0\t%s\t%s\n' "the server log reports a crash that no call of this role lost its session to" \
                    "$(grep -m1 -E "$CRASH_RE" "$WORK/log.part" | sed -E 's/^.*LOG: +//')" >>"$lost"
            fi
            return 0
        fi
        # The session ended early. Once the server is back (after a crash, its log says why),
        # the last call begun and not reported is the culprit; the next session starts after it.
        ap_wait_ready 60
        tail -c +"$((pos + 1))" "$AP_LOG" 2>/dev/null >"$WORK/log.part"
        last=$(awk '/^@@B / { b = $2 } /^@@[OE] / { if ($2 == b) b = "" } END { print b }' "$seg")
        after=
        if [[ -z $last ]]; then
            last=$(awk '/^@@B / { b = $2 } END { print b }' "$seg")
            after=" after the call had returned"
        fi
        if [[ -z $last ]]; then
            # Not even the first call began: the session did not start.
            tries=$((tries + 1))
            if ((tries > 3)); then
                printf -- '-1\t%s\t%s\n' "could not run its calls (psql exit status $rc)" \
                    "$(tail -n 3 "$WORK/$suffix.err" | tr '\n' ' ' | cut -c1-300)" >>"$lost"
                return 1
            fi
            continue
        fi
        tries=0
        if grep -qE "$CRASH_RE" "$WORK/log.part"; then
            why="server crashed$after"
            detail="server log: $(grep -m1 -E "$CRASH_RE" "$WORK/log.part" | sed -E 's/^.*LOG: +//')"
            detail+="; $(grep -m1 'Failed process was running' "$WORK/log.part" | sed -E 's/^.*DETAIL: +//' | cut -c1-200)"
        elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
            why="psql did not finish within ${PSQL_TIMEOUT}s$after"
            detail=
        else
            why="connection lost$after (psql exit status $rc)"
            detail="psql: $(tail -n 2 "$WORK/$suffix.err" | tr '\n' ' ' | cut -c1-300)"
        fi
        printf '%s\t%s\t%s\n' "$last" "$why" "$detail" >>"$lost"
        start=$last
        if ! ap_is_ready; then
            printf -- '-1\t%s\t\n' "the server did not come back after call $last" >>"$lost"
            return 1
        fi
    done
}

# --- report one role -----------------------------------------------------------------------
# report_role SUFFIX SECONDS: one "ok" per function all of whose calls were fine, else one
# "not ok" per failing call (calls left without a result are counted per function).
report_role() {
    local suffix=$1 label=${ROLE_LABEL[$1]} kind f a b c d reported=
    touch "$WORK/$suffix.out" "$WORK/$suffix.lost"
    sqld "$DB" -F $'\t' -c "SELECT seq, fn, coalesce(arg, ''), vlabel, kind,
                                   left(regexp_replace(sql, '\s+', ' ', 'g'), 400)
                              FROM sweep.calls WHERE suffix = '$suffix' ORDER BY seq" \
        >"$WORK/$suffix.idx"
    while IFS=$'\037' read -r kind f a b c d; do
        case $kind in
            PASS) ok "$f as $label: $a calls, no crash, XX00x or leftover rows (sane call: $b)" ;;
            FAIL)
                [[ $b == "server crashed"* || $b == "the server log reports a crash"* ]] \
                    && CRASHES=$((CRASHES + 1))
                not_ok "$f$a as $label: $b"
                [[ -n $c ]] && echo "#   $c"
                [[ -n $d ]] && echo "#   $d"
                ;;
            CALLS)
                reported=1
                CALLS=$((CALLS + f))
                echo "# as $label: $f calls, $a raised an (expected) error, $2 s"
                ;;
        esac
    done < <(awk -F'\t' -v OFS='\037' '
        # Texts come cut to length (in characters) from SQL, so awk (bytes) need not cut them.
        function what(i) {
            if (kind[i] == "sane") return "(sane arguments)"
            if (kind[i] == "allnull") return "(all arguments NULL)"
            return "(" arg[i] " => " val[i] ")"
        }
        FILENAME == ARGV[1] { n++; order[n] = $1; fn[$1] = $2; arg[$1] = $3; val[$1] = $4
                              kind[$1] = $5; sqltext[$1] = $6; next }
        FILENAME == ARGV[2] { lostwhy[$1] = $2; lostdetail[$1] = $3; next }
        { split($0, w, " ") }
        w[1] == "@@O" { done[w[2]] = 1; next }
        w[1] == "@@E" { s = w[2]; done[s] = 1; errs++; state[s] = w[3]
                        msg = $0; for (k = 1; k <= 4; k++) sub(/^[^ ]* ?/, "", msg)
                        if (w[3] ~ /^XX00[012]$/) bad[s] = "raised " w[3] ": " msg
                        else if (w[4] == "?") bad[s] = "raised " w[3] "; " msg
                        else if (w[4] != "-")
                            bad[s] = "raised " w[3] " and left rows behind (" w[4] "): " msg
                        next }
        w[1] == "@@S" { setup[w[2]] = setup[w[2]] (setup[w[2]] ? ", " : "") w[3] " " w[4]; nsetup++; next }
        END {
            for (s in lostwhy) if (s + 0 <= 0) print "FAIL", "the sweep", "", lostwhy[s], lostdetail[s], ""
            for (i = 1; i <= n; i++) {
                s = order[i]; f = fn[s]; calls[f]++
                if (!(f in seen)) { seen[f] = 1; fns[++nf] = f }
                if (kind[s] == "sane") sane[f] = (s in state) ? "raised " state[s] : ((s in done) ? "ok" : "no result")
                if (s in done) ran++
                if (s in lostwhy) { why = lostwhy[s]; detail = lostdetail[s] }
                else if (s in bad) { why = bad[s]; detail = "" }
                else { if (!(s in done)) { noresult[f]++; failed[f] = 1 }; continue }
                failed[f] = 1
                if (s in setup) detail = detail (detail ? "; " : "") "fixtures failed: " setup[s]
                print "FAIL", f, what(s), why, "call: " sqltext[s], detail
            }
            for (k = 1; k <= nf; k++) {
                f = fns[k]
                if (f in noresult) print "FAIL", f, "", noresult[f] " of its " calls[f] " calls got no result (the session ended before them)", "", ""
                else if (!(f in failed)) print "PASS", f, calls[f], sane[f], "", ""
            }
            if (nsetup) {
                sl = ""; for (s in setup) sl = sl (sl ? "; " : "") "call " s ": " setup[s]
                print "FAIL", "fixtures", "", nsetup " fixture steps failed (the test needs fixing)", substr(sl, 1, 300), ""
            }
            print "CALLS", ran + 0, errs + 0, "", "", ""
        }' "$WORK/$suffix.idx" "$WORK/$suffix.lost" "$WORK/$suffix.out")
    [[ -n $reported ]] || not_ok "the sweep as $label: its results could not be read"
}

CALLS=0
CRASHES=0
for s in "${ROLE_SUFFIXES[@]}"; do
    t=$SECONDS
    run_role "$s"
    report_role "$s" "$((SECONDS - t))"
done

# The batches the sweep queued (with whatever claim lists create_batch accepted) are processed.
drain=$(SQL_TIMEOUT=300 sqld "$DB" -v VERBOSITY=verbose -c "CALL approvals.run_queued()" \
        -c "SELECT count(*) FROM approvals.batches WHERE status IN ('queued', 'processing')" 2>&1)
rc=$?
if [[ $rc -eq 0 && $drain == 0 ]]; then
    ok "CALL approvals.run_queued() as superuser processes every batch the sweep queued"
else
    [[ $rc -eq 2 ]] && CRASHES=$((CRASHES + 1))
    not_ok "CALL approvals.run_queued() as superuser processes every batch the sweep queued"
    printf '%s\n' "$drain" | cut -c1-300 | head -n 5 | sed 's/^/#   /'
fi

# Every crash in the server log since the sweep started must have been reported above.
n=$(tail -c +"$((LOG_START + 1))" "$AP_LOG" 2>/dev/null | grep -cE "$CRASH_RE")
if ((n > CRASHES)); then
    not_ok "the server log reports $n crash(es) since the sweep started, $CRASHES reported above"
    tail -c +"$((LOG_START + 1))" "$AP_LOG" | grep -E -A1 "$CRASH_RE" | sed 's/^/#   /' | head -n 20
fi
echo "# 60_bad_input: $CALLS calls as ${#ROLE_SUFFIXES[@]} roles, $FAILS failed, $((SECONDS - T0)) s"
