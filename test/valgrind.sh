#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions reached through traps
# Run part of the test suite with the PostgreSQL server under valgrind memcheck, and fail
# when a memcheck report involves approvals code.
#
#   bash test/valgrind.sh            # uses the installed approvals.so (make && make install first)
#   bash test/valgrind.sh --build    # builds and installs it first, as test/run.sh does
#   bash test/valgrind.sh --no-sweep # without the bad-input sweep (test/shell/60_bad_input.sh)
#   bash test/valgrind.sh --scan     # only re-scan the logs of the previous run
# Options combine (--build --no-sweep). Measured on 2 cores with test/run.sh running at the
# same time: about 13 minutes (the sweep alongside the rest), 8-9 minutes with --no-sweep.
#
# What it does
#   - a private scratch cluster ($AP_ROOT/.pgvalgrind, port 54344, unix socket only; created
#     afresh each run) whose postmaster is started by pg_ctl through a wrapper that execs
#       valgrind --tool=memcheck --trace-children=yes --track-origins=yes --read-var-info=yes
#                --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=none
#                --error-exitcode=1 --error-limit=no --num-callers=64 --gen-suppressions=all
#                --error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END --time-stamp=yes
#                --show-error-list=yes --vgdb=no --fullpath-after=
#                --suppressions=test/valgrind.supp --log-file=.pgvalgrind/valgrind/valgrind.%p.log
#     as PostgreSQL's wiki describes for its own valgrind runs; every backend, the approvals
#     launcher and batch workers (shared_preload_libraries = 'approvals') are forked from it
#     and so run under valgrind too, each writing valgrind.<pid>.log.
#   - runs: pg_regress (REGRESS in the Makefile), the isolation specs (ISOLATION), the pgTAP
#     files in test/pgtap except those matching AP_VALGRIND_PGTAP_SKIP (default *_large, i.e.
#     16_batch_chunk_large: 100,000 claims take far too long under valgrind), the shell tests
#     in AP_VALGRIND_SHELL (default: 10_worker_basic, which drives the launcher, a batch
#     worker, their restart and reload), and the bad-input sweep test/shell/60_bad_input.sh
#     when it exists (every function with hostile arguments as every role), which sets up
#     first and then runs in the background, on the second core, in its own database, while
#     the other layers run. Test failures are
#     listed, but under valgrind (much slower) timing checks can fail: the verdict is
#     memcheck's.
#   - stops the server (pg_ctl stop -m fast -t 600, then immediate), so every process writes
#     its leak report, and scans the logs: every report (invalid read/write/free,
#     uninitialised value, fatal signal, definitely lost block) with a frame from approvals
#     (in approvals.so, or at .../src/F:LINE for F one of src/*.c, src/*.h; --fullpath-after=
#     shows full source paths, so the server's spi.c, json.c ... never count) in any of its
#     stacks is printed with its
#     stacks, and fails the run; everything else is summarized, its generated suppressions
#     collected in .pgvalgrind/valgrind/other.supp (candidates for test/valgrind.supp).
#   - last line: "VERDICT: PASS|FAIL|INCOMPLETE ..."; exit status 0 only for PASS.
#
# What memcheck can and cannot see here
#   Debian's server is not built with USE_VALGRIND, so palloc'd chunks inside a memory
#   context block are not tracked one by one: memcheck sees only the malloc'd blocks. A read
#   past the end of a palloc'd chunk, a read of a pfree'd chunk, or of a chunk in a context
#   that was reset but keeps its block, goes unnoticed; reads of a context whose blocks were
#   free()d (MemoryContextDelete, except contexts parked on AllocSet's freelist), of
#   uninitialised malloc'd or palloc'd (not palloc0'd) memory, and malloc/free misuse are
#   caught. palloc "leaks" are never "definitely lost" (their contexts stay reachable);
#   definitely lost is about malloc/strdup'd memory. Memory growth is test/shell/50_memory's job.
#   --error-exitcode=1 (not 128 as PostgreSQL's buildfarm uses): a process with a report
#   exits 1, which the postmaster treats like a FATAL exit instead of restarting every
#   backend; forked children inherit the postmaster's error count, so 128 would turn a
#   single postmaster report into a crash-restart storm. The log scan is the verdict. (Any
#   non-zero value has one hard consequence: a report in the startup process makes the
#   postmaster give up starting; the run then ends INCOMPLETE, or FAIL, with the logs scanned.)
#
# Settings (environment): AP_VALGRIND_PGTAP (pgTAP basenames or globs to run; default all),
# AP_VALGRIND_PGTAP_SKIP (globs), AP_VALGRIND_SHELL, AP_VALGRIND_SWEEP (0: no sweep),
# AP_VALGRIND_LAYERS (default
# "regress isolation pgtap shell"), AP_VALGRIND_TIMEOUT (seconds per test tool, default 2400),
# AP_VALGRIND_STACK_LINES (lines printed per approvals report, default 60),
# AP_VALGRIND_OPTS (extra valgrind options). Needs root (re-runs itself through sudo).
set -euo pipefail

# shellcheck source=test/lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
ap_need_root "$@"
cd "$AP_ROOT"

PORT=54344
T0=$SECONDS
MODE=run
AP_VALGRIND_SWEEP=${AP_VALGRIND_SWEEP:-1}
for arg in "$@"; do
    case $arg in
        --build) [[ $MODE == scan ]] || MODE=build ;;
        --scan) MODE=scan ;;
        --no-sweep) AP_VALGRIND_SWEEP=0 ;;
        -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) ap_die "unknown argument: $arg (see --help)" ;;
    esac
done

: "${AP_VALGRIND_LAYERS:=regress isolation pgtap shell}"
: "${AP_VALGRIND_PGTAP:=}"
: "${AP_VALGRIND_PGTAP_SKIP:=*_large}"
: "${AP_VALGRIND_SHELL:=10_worker_basic}"
: "${AP_VALGRIND_TIMEOUT:=2400}"
: "${AP_VALGRIND_STACK_LINES:=60}"
: "${AP_VALGRIND_OPTS:=}"

PASSED=0
FAILED=0
LAYER_TIMES=()
LOST=()    # what did not run at all (setup failed, no result): the run covered less
pass() { PASSED=$((PASSED + $1)); }
lost() { LOST+=("$*"); }
fail() { FAILED=$((FAILED + $1)); }
header() { printf '\n== %s ==\n' "$*"; }
elapsed() { local s=$(($1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

ap_use_cluster valgrind "$PORT"
VG_DIR=$AP_CLUSTER/valgrind
WRAPPER=$AP_CLUSTER/postgres-valgrind
SUPP=$AP_CLUSTER/valgrind.supp

# --- server under valgrind -------------------------------------------------------------

# pg_ctl with a long wait (startup and shutdown under valgrind are slow).
vg_pg_ctl() {
    ap_as_pg "$AP_BIN/pg_ctl" -D "$AP_PGDATA" -l "$AP_LOG" -w -t 600 -s "$@" 9>&-
}

# Write the wrapper pg_ctl starts instead of postgres (pg_ctl -p). It execs valgrind, so the
# postmaster keeps the PID pg_ctl started and wrote into postmaster.pid.
write_wrapper() {
    # shellcheck disable=SC2054  # the commas belong to valgrind's option values
    local opts=(
        --tool=memcheck
        --trace-children=yes
        --track-origins=yes
        --read-var-info=yes
        --num-callers=64
        --leak-check=full
        --show-leak-kinds=definite
        --errors-for-leak-kinds=none
        --error-limit=no
        --error-exitcode=1
        --error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END
        --gen-suppressions=all
        --time-stamp=yes
        --vgdb=no
        --show-error-list=yes
        --fullpath-after=
        "--suppressions=$SUPP"
        "--log-file=$VG_DIR/valgrind.%p.log"
    )
    local extra=()
    read -r -a extra <<<"$AP_VALGRIND_OPTS"
    {
        echo '#!/bin/sh'
        echo '# Written by test/valgrind.sh: the postmaster under valgrind memcheck.'
        printf 'exec valgrind'
        printf ' %q' "${opts[@]}" "${extra[@]}" "$AP_BIN/postgres"
        printf ' "$@"\n'
    } >"$WRAPPER"
    chmod 755 "$WRAPPER"
}

vg_start() {
    # -p: the "postgres" pg_ctl runs; -o nothing else, settings are in approvals_scratch.conf.
    if ! vg_pg_ctl start -p "$WRAPPER"; then
        ap_note "the server did not start under valgrind; end of $AP_LOG:"
        tail -n 30 "$AP_LOG"
        return 1
    fi
    # test/lib.sh's ap_start (which some shell tests call) restarts the server without
    # valgrind when this signature differs; record the running one so it leaves it alone.
    ap_signature >"$AP_CLUSTER/started.sig"
}

# Stop: fast, then immediate; then wait until every valgrinded process has exited (each
# writes its leak report on exit).
vg_stop() {
    local i
    if ap_postmaster_pid >/dev/null; then
        vg_pg_ctl stop -m fast || vg_pg_ctl stop -m immediate || true
    fi
    for ((i = 0; i < 300; i++)); do
        [[ -z $(ap_datadir_procs) ]] && return 0
        sleep 1
    done
    ap_note "processes still use $AP_PGDATA: $(ap_datadir_procs | tr '\n' ' ')"
    return 1
}

# --- test layers (run_logged, run_regress and the pgTAP counting follow test/run.sh) -----

AP_RUN_TIMEOUT=$AP_VALGRIND_TIMEOUT    # run_logged and fresh_db come from test/lib.sh

# The server must still run after a layer (a crash restart is fine; a dead postmaster is not).
ensure_server() {
    if ap_postmaster_pid >/dev/null; then
        ap_wait_ready 600 && return 0
    fi
    ap_note "the server is down after $1; starting it again under valgrind"
    vg_start && ap_wait_ready 600 && return 0
    lost "everything after $1 (the server did not come back)"
    return 1
}

run_regress() {
    local title=$1 tool=$2 var=$3 inputdir=$4 db=$5
    local outdir=$AP_CLUSTER/$db tests t status t0=$SECONDS
    read -r -a tests <<<"$(ap_make_var "$var")"
    header "$title"
    if [[ ${#tests[@]} -eq 0 ]]; then
        echo "skipped: no $var tests in the Makefile"
        return 0
    fi
    mkdir -p "$outdir"
    run_logged "$outdir/stdout.txt" '^(SET|DROP DATABASE|CREATE DATABASE|ALTER DATABASE)$' \
        "$tool" --bindir="$AP_BIN" \
        --host="$AP_PGHOST" --port="$AP_PGPORT" --user=postgres \
        --inputdir="$inputdir" --outputdir="$outdir" \
        --load-extension=approvals --dbname="$db" "${tests[@]}"
    local bad=0
    for t in "${tests[@]}"; do
        status=$(sed -nE "s/^(test)? +$t +\.\.\. +(ok|FAILED|failed \(ignored\)).*/\2/p" \
                 "$outdir/stdout.txt" | head -n 1) || true
        case $status in
            ok | "failed (ignored)") pass 1 ;;
            FAILED) fail 1; bad=1 ;;
            *) echo "not ok - $t: no result (exit status $RC)"; fail 1; bad=1
               lost "$title $t" ;;
        esac
    done
    if [[ $bad -eq 1 || $RC -ne 0 ]] && [[ -s $outdir/regression.diffs ]]; then
        echo "--- $outdir/regression.diffs (first 80 lines)"
        head -n 80 "$outdir/regression.diffs"
    fi
    LAYER_TIMES+=("$title $(elapsed $((SECONDS - t0)))")
    ensure_server "$title"
}

# name_matches NAME "GLOB...": NAME matches one of the space-separated shell patterns.
name_matches() {
    local pat pats=()
    read -r -a pats <<<"$2"    # split without expanding the globs against files
    for pat in "${pats[@]}"; do
        # shellcheck disable=SC2053  # a pattern on purpose
        [[ $1 == $pat ]] && return 0
    done
    return 1
}

# pgTAP: one pg_prove per file (PGAPPNAME names the file in the server log, so a valgrind
# report can be traced to it), all in database approvals_tap, in the order test/run.sh uses.
run_pgtap() {
    local files=() f name out total failed_asserts failed t0=$SECONDS t1
    header "pgTAP"
    mapfile -t files < <(find test/pgtap -maxdepth 1 -name '*.sql' 2>/dev/null | LC_ALL=C sort)
    if [[ ${#files[@]} -eq 0 ]]; then
        echo "skipped: no test/pgtap/*.sql"
        return 0
    fi
    if ! fresh_db approvals_tap \
         || ! ap_psql -q -d approvals_tap -c "CREATE EXTENSION pgtap" \
                      -c "CREATE EXTENSION approvals"; then
        echo "not ok - create database approvals_tap with pgtap and approvals"
        fail 1
        lost "pgTAP (database setup)"
        return 0
    fi
    mkdir -p "$AP_CLUSTER/pgtap"
    for f in "${files[@]}"; do
        name=$(basename "$f" .sql)
        if [[ -n $AP_VALGRIND_PGTAP ]] && ! name_matches "$name" "$AP_VALGRIND_PGTAP"; then
            continue
        fi
        if name_matches "$name" "$AP_VALGRIND_PGTAP_SKIP"; then
            echo "skipped: $f (AP_VALGRIND_PGTAP_SKIP='$AP_VALGRIND_PGTAP_SKIP')"
            continue
        fi
        out=$AP_CLUSTER/pgtap/$name.txt
        t1=$SECONDS
        PGAPPNAME=pgtap/$name run_logged "$out" '' pg_prove --norc --nocolor \
            --psql-bin "$AP_BIN/psql" --host "$AP_PGHOST" --port "$AP_PGPORT" \
            --username postgres --dbname approvals_tap "$f"
        total=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$out" | tail -n 1)
        failed_asserts=$(awk '/^Test Summary Report/ { r = 1 } r && match($0, /Failed: [0-9]+\)$/) {
            s += substr($0, RSTART + 8, RLENGTH - 9) } END { print s + 0 }' "$out")
        failed=$failed_asserts
        if [[ -z $total || $total -eq 0 ]]; then
            total=0
            failed=1
            lost "pgTAP $name"
        elif [[ $RC -ne 0 && $failed -eq 0 ]]; then
            failed=1
        fi
        pass $((total - failed_asserts))
        fail "$failed"
        echo "# $name: $((total - failed_asserts)) passed, $failed failed, $(elapsed $((SECONDS - t1)))"
        ensure_server "pgTAP $name" || return 0
    done
    LAYER_TIMES+=("pgTAP $(elapsed $((SECONDS - t0)))")
}

run_shell_tests() {
    local name f log n_ok n_not t0=$SECONDS t1
    header "shell tests"
    mkdir -p "$AP_CLUSTER/shell"
    for name in $AP_VALGRIND_SHELL; do
        f=test/shell/$name.sh
        if [[ ! -f $f ]]; then
            echo "skipped: $f (not there)"
            continue
        fi
        log=$AP_CLUSTER/shell/$name.txt
        t1=$SECONDS
        echo "--- $f"
        run_logged "$log" '' bash "$AP_ROOT/$f" 9>&-
        n_ok=$(grep -cE '^ok [0-9]+' "$log" || true)
        n_not=$(grep -cE '^not ok [0-9]+' "$log" || true)
        pass "$n_ok"
        fail "$n_not"
        if [[ $RC -ne 0 && $n_not -eq 0 ]]; then
            echo "not ok - $f exited with status $RC"
            fail 1
        fi
        [[ $n_ok -gt 0 ]] || lost "$name"
        echo "# $name: $n_ok passed, $n_not failed, $(elapsed $((SECONDS - t1)))"
        ensure_server "$f" || return 0
    done
    LAYER_TIMES+=("shell $(elapsed $((SECONDS - t0)))")
}

# The bad-input sweep in the background (its own database; the other layers use one core).
SWEEP_PID=
SWEEP_LOG=$AP_CLUSTER/shell/60_bad_input.txt
start_sweep() {
    local f=test/shell/60_bad_input.sh
    if [[ ! -f $f ]]; then
        ap_note "--sweep: $f is not there; skipped"
        return 0
    fi
    mkdir -p "$AP_CLUSTER/shell"
    # The subshell notes how long the sweep itself took (the others may still be running).
    # timeout's PID goes to a file: on an interrupt, on_exit ends the sweep through it.
    (
        t=$SECONDS
        rc=0
        timeout -k 30 "$AP_VALGRIND_TIMEOUT" bash "$AP_ROOT/$f" >"$SWEEP_LOG" 2>&1 9>&- &
        echo "$!" >"$SWEEP_LOG.pid"
        wait "$!" || rc=$?
        echo "$((SECONDS - t))" >"$SWEEP_LOG.time"
        exit "$rc"
    ) &
    SWEEP_PID=$!
    # Its set-up (generating the calls) has a fixed time limit of its own: give it the machine,
    # and start the other layers once it reports "... setup N s" (or has ended).
    echo "bad-input sweep $f: setting up (log: $SWEEP_LOG) ..."
    local i
    for ((i = 0; i < 900; i++)); do
        grep -qE '^# .*setup [0-9]+ s' "$SWEEP_LOG" 2>/dev/null && break
        kill -0 "$SWEEP_PID" 2>/dev/null || break
        sleep 1
    done
    grep -E '^# .*setup [0-9]+ s|^not ok' "$SWEEP_LOG" | head -n 5 || true
    echo "bad-input sweep running in the background; the other layers start now"
}
finish_sweep() {
    [[ -n $SWEEP_PID ]] || return 0
    local rc=0 n_ok n_not took
    header "bad-input sweep (test/shell/60_bad_input.sh)"
    ensure_server "the other layers" || true
    echo "waiting for it ..."
    wait "$SWEEP_PID" || rc=$?
    SWEEP_PID=
    n_ok=$(grep -cE '^ok [0-9]+' "$SWEEP_LOG" || true)
    n_not=$(grep -cE '^not ok [0-9]+' "$SWEEP_LOG" || true)
    grep -E '^not ok|^# ' "$SWEEP_LOG" | head -n 60 || true
    [[ $rc -eq 124 ]] && echo "(timed out after ${AP_VALGRIND_TIMEOUT}s)"
    pass "$n_ok"
    fail "$n_not"
    if [[ $rc -ne 0 && $n_not -eq 0 ]]; then
        echo "not ok - test/shell/60_bad_input.sh exited with status $rc (log: $SWEEP_LOG)"
        fail 1
    fi
    [[ $n_ok -gt 0 ]] || lost "60_bad_input"
    took=$(cat "$SWEEP_LOG.time" 2>/dev/null || echo 0)
    echo "# 60_bad_input: $n_ok passed, $n_not failed, $(elapsed "$took")"
    LAYER_TIMES+=("bad-input sweep $(elapsed "$took") (alongside the others)")
}

# --- log scan --------------------------------------------------------------------------

# scan_logs: print the report and return 0 (no approvals report), 1 (approvals reports)
# or 2 (no valgrind log at all).
scan_logs() {
    local frames=() f
    for f in src/*.c src/*.h; do
        [[ -e $f ]] && frames+=("$(basename "$f")")
    done
    perl - "$VG_DIR" "$AP_LOG" "$AP_VALGRIND_STACK_LINES" "${frames[@]}" <<'PERL'
use strict;
use warnings;

my ($dir, $serverlog, $maxlines, @srcfiles) = @ARGV;
my $files_re = join('|', map { quotemeta } @srcfiles);
# A frame of approvals code: one of its source files, shown with its full path (valgrind
# --fullpath-after=) as ".../src/FILE:LINE", or the shared object itself. The server's own
# files of the same name (with debug symbols installed) sit deeper, in src/backend/...
my $ours = qr{(?:\((?:[^()]*/)?src/(?:$files_re):\d+\)|/approvals\.so\))};

opendir(my $dh, $dir) or do { print "no valgrind log directory $dir\n"; exit 2 };
my @logs = sort grep { /^valgrind\.\d+\.log$/ } readdir($dh);
closedir($dh);
if (!@logs) { print "no valgrind logs in $dir\n"; exit 2 }

# Server log: what each PID was (connection line, background worker name), for the report.
my %who;
if (open(my $sl, '<', $serverlog)) {
    while (<$sl>) {
        next unless /\[(\d+)\] (?:\S+ )?LOG:\s+(.*)$/;
        my ($pid, $msg) = ($1, $2);
        if ($msg =~ /^connection authorized: (.*)/) { $who{$pid} = $1 }
        elsif ($msg =~ /^approvals launcher started/ && !$who{$pid}) { $who{$pid} = 'approvals launcher' }
        elsif ($msg =~ /^background worker "([^"]+)" \(PID (\d+)\)/) { $who{$2} ||= "background worker \"$1\"" }
    }
    close($sl);
}

my (%reports, @order, %used_supp);
my ($n_logs, $n_blocks, $n_fatal) = (0, 0, 0);

for my $log (@logs) {
    my ($pid) = $log =~ /(\d+)/;
    open(my $fh, '<', "$dir/$log") or next;
    $n_logs++;
    my (@block, $inblock, $fatal, $supp, @supp);
    my $last;       # last report key, to attach the generated suppression
    my $atexit;     # past the first ERROR SUMMARY: -s repeats every report; not counted again
    while (my $line = <$fh>) {
        chomp $line;
        if ($line =~ /^\{/ && !$inblock) { $supp = 1; @supp = ($line); next }
        if ($supp) {
            push @supp, $line;
            if ($line =~ /^\}/) {
                $supp = 0;
                $reports{$last}{supp} ||= join("\n", @supp) if defined $last;
            }
            next;
        }
        my $text = $line;
        $text =~ s/^==[^=]*== ?//;    # "==00:00:01:02.345 1234== " prefix
        if ($text =~ /^VALGRINDERROR-BEGIN/) { $inblock = 1; @block = (); next }
        if ($text =~ /^VALGRINDERROR-END/) {
            $inblock = 0;
            $last = $atexit ? undef : add_report($pid, $log, @block);
            next;
        }
        if ($line =~ /used_suppression:\s+(\d+) (\S+)/) {
            $used_supp{$2}{procs}++;
            $used_supp{$2}{max} = $1 if $1 > ($used_supp{$2}{max} // 0);
            next;
        }
        if ($text =~ /^ERROR SUMMARY:/) { $atexit = 1; next }
        if ($inblock) { push @block, $text; next }
        # A process killed by a signal: valgrind prints its stack outside the markers.
        if ($text =~ /^Process terminating with default action of signal/) {
            $fatal = [$text];
            next;
        }
        if ($fatal) {
            # its stack and notes run up to the next empty line
            if ($text =~ /\S/ && @$fatal < 200) { push @$fatal, $text; next }
            $n_fatal++;
            $last = add_report($pid, $log, @$fatal);
            $fatal = undef;
        }
    }
    if ($fatal) { $n_fatal++; add_report($pid, $log, @$fatal) }
    close($fh);
}

sub add_report {
    my ($pid, $log, @lines) = @_;
    $n_blocks++;
    pop @lines while @lines && $lines[-1] =~ /^\s*$/;
    return undef unless @lines;
    my $kind = $lines[0];
    my $leak = $kind =~ /are definitely lost/;
    my ($bytes) = $kind =~ /^([\d,]+) (?:\([^)]*\) )?bytes/;
    (my $k = $kind) =~ s/^[\d,]+ (\(([\d,]+) direct, ([\d,]+) indirect\) )?bytes in [\d,]+ blocks/N bytes in M blocks/;
    $k =~ s/ in loss record [\d,]+ of [\d,]+//;
    # Signature: the kind plus every frame (without addresses) of every stack.
    my @frames;
    my ($primary_ours, $aux_ours, $section) = (0, 0, 'primary');
    my $fatal = $kind =~ /^Process terminating/;    # its notes precede its one stack
    for my $l (@lines[1 .. $#lines]) {
        if ($l =~ /^\s+(?:at|by) 0x[0-9A-Fa-f]+: (.*)/) {
            push @frames, $1;
            if ($l =~ $ours) { $section eq 'primary' ? $primary_ours++ : $aux_ours++ }
        } elsif ($l =~ /\S/) {
            $section = 'aux' unless $fatal;
            push @frames, "| $l" =~ s/0x[0-9A-Fa-f]+/0x/gr =~ s/\d+ bytes/N bytes/gr;
        }
    }
    my $key = join("\n", $k, @frames);
    my $r = $reports{$key};
    if (!$r) {
        $r = $reports{$key} = { kind => $k, lines => \@lines, pids => {}, n => 0,
                                ours => $primary_ours + $aux_ours, primary_ours => $primary_ours,
                                leak => $leak, bytes => 0, log => $log, pid => $pid };
        push @order, $key;
    }
    $r->{n}++;
    $r->{pids}{$pid} = 1;
    if ($bytes) { $bytes =~ s/,//g; $r->{bytes} += $bytes }
    return $key;
}

my @ours = grep { $reports{$_}{ours} } @order;
my @other = grep { !$reports{$_}{ours} } @order;
my $ours_n = 0;
$ours_n += $reports{$_}{n} for @ours;

printf "scanned %d valgrind logs (one per process) in %s\n", $n_logs, $dir;
printf "%d reports in all: %d distinct without approvals frames, %d distinct with (%d occurrences)\n",
    $n_blocks, scalar(@other), scalar(@ours), $ours_n;

if (%used_supp) {
    print "\n-- suppressions that matched (test/valgrind.supp; children inherit the postmaster's counts)\n";
    printf "%5d process%s (at most %d x in one): %s\n", $used_supp{$_}{procs},
        ($used_supp{$_}{procs} == 1 ? ' ' : 'es'), $used_supp{$_}{max}, $_
        for sort { $used_supp{$b}{procs} <=> $used_supp{$a}{procs} || $a cmp $b } keys %used_supp;
}

if (@other) {
    print "\n-- reports without approvals frames (server/libc; summarized: count, processes, kind, top frames)\n";
    open(my $os, '>', "$dir/other.supp");
    my $i = 0;
    for my $key (@other) {
        my $r = $reports{$key};
        my @top = grep { /^\s+(?:at|by) / } @{$r->{lines}};
        @top = map { s/^\s+(?:at|by) 0x[0-9A-Fa-f]+: //r } @top[0 .. ($#top < 3 ? $#top : 3)];
        my $kind = $r->{kind};
        $kind .= " ($r->{bytes} bytes)" if $r->{leak};
        printf "%4d x %3d proc  %s\n            %s\n", $r->{n}, scalar(keys %{$r->{pids}}), $kind,
            join("\n            ", @top);
        if ($r->{supp}) {
            $i++;
            (my $s = $r->{supp}) =~ s/<insert_a_suppression_name_here>/other_$i/;
            print $os "# $r->{n} x, e.g. $r->{log}\n$s\n";
        }
    }
    close($os);
    print "(their generated suppressions: $dir/other.supp)\n";
}

if (@ours) {
    print "\n-- reports with an approvals frame (each one is a bug to fix)\n";
    my $i = 0;
    for my $key (@ours) {
        my $r = $reports{$key};
        $i++;
        my @pids = sort { $a <=> $b } keys %{$r->{pids}};
        my $where = $r->{primary_ours} ? 'in the stack of the report'
                                       : 'only in an allocation/free/origin stack';
        my $kind = $r->{leak} ? "$r->{kind} ($r->{bytes} bytes in all)" : $r->{kind};
        printf "\n[%d] %s  (%d x in %d process%s: %s; approvals frame %s)\n", $i, $kind,
            $r->{n}, scalar(@pids), (@pids == 1 ? '' : 'es'),
            join(' ', @pids[0 .. ($#pids < 7 ? $#pids : 7)]) . (@pids > 8 ? ' ...' : ''), $where;
        printf "    first seen in %s%s\n", $r->{log},
            $who{$r->{pid}} ? " (pid $r->{pid}: $who{$r->{pid}})" : '';
        my @l = @{$r->{lines}};
        my $n = @l > $maxlines ? $maxlines : scalar(@l);
        print "    $_\n" for @l[0 .. $n - 1];
        print "    ... (" . (@l - $n) . " more lines in the log)\n" if @l > $n;
    }
    exit 1;
}
exit 0;
PERL
}

# --- main ------------------------------------------------------------------------------

if [[ $MODE == scan ]]; then
    header "valgrind log scan (previous run)"
    rc=0
    scan_logs || rc=$?
    case $rc in
        0) echo "VERDICT: PASS - no memcheck report with an approvals frame" ;;
        1) echo "VERDICT: FAIL - memcheck reports with approvals frames (above)" ;;
        *) echo "VERDICT: INCOMPLETE - no valgrind logs to scan" ;;
    esac
    exit "$rc"
fi

AP_PACKAGES+=(valgrind)
ap_install_deps || ap_die "could not install the required packages"
command -v valgrind >/dev/null || ap_die "valgrind is not installed"
ap_lock

DONE=
on_exit() {
    local rc=$?
    trap - EXIT
    if [[ -n ${CMD_PID:-} ]]; then kill -TERM "$CMD_PID" 2>/dev/null || true; fi
    if [[ -n ${SHOW_PID:-} ]]; then kill -TERM "$SHOW_PID" 2>/dev/null || true; fi
    if [[ -n ${SWEEP_PID:-} && -s ${SWEEP_LOG:-}.pid ]]; then
        kill -TERM "$(cat "$SWEEP_LOG.pid")" 2>/dev/null || true
        wait "$SWEEP_PID" 2>/dev/null || true
    fi
    if [[ -z $DONE ]]; then
        vg_stop >/dev/null 2>&1 || true
        echo "VERDICT: INCOMPLETE - valgrind.sh stopped early (exit status $rc) after $(elapsed $((SECONDS - T0)))"
        exit 2
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

LIB=$("$AP_PG_CONFIG" --pkglibdir)/approvals.so
if [[ $MODE == build ]]; then
    header "build"
    mkdir -p "$AP_CLUSTER"
    ap_build "$AP_CLUSTER/build.log" || { tail -n 40 "$AP_CLUSTER/build.log"; ap_die "build failed"; }
fi
[[ -f $LIB ]] || ap_die "$LIB is not installed: run make && make install (or --build)"
for f in src/*.c src/*.h; do
    if [[ $f -nt $LIB ]]; then
        ap_note "$f is newer than the installed $LIB (run with --build to test the current source)"
        break
    fi
done
readelf -S "$LIB" 2>/dev/null | grep -q '\.debug_line' \
    || ap_note "$LIB has no debug information: stacks will show no file:line for approvals"

# A fresh cluster each run.
vg_stop >/dev/null 2>&1 || true
case $AP_CLUSTER in
    */.pgvalgrind | /var/tmp/approvals-valgrind-*) rm -rf "$AP_CLUSTER" ;;
    *) ap_die "refusing to delete unexpected cluster directory $AP_CLUSTER" ;;
esac
header "scratch cluster under valgrind"
ap_initdb || ap_die "initdb failed"
mkdir -p "$VG_DIR"
chown postgres:postgres "$VG_DIR"
cp test/valgrind.supp "$SUPP"
chmod 644 "$SUPP"
write_wrapper
export AP_FSYNC=off
# Only approvals preloaded (no pg_cron: not under test here). No JIT (LLVM under memcheck is
# slow and noisy) and no autovacuum (CPU for nothing; the tests do not need it).
# log_connections maps a valgrind log's PID to its database and application_name.
# The worker serves database postgres only (as in test/run.sh), so that the batches the test
# databases queue stay as their tests leave them.
ap_configure "shared_preload_libraries = 'approvals'" "jit = off" "autovacuum = off" \
    "log_connections = on" "shared_buffers = 32MB" "approvals.database = 'postgres'" \
    || ap_die "could not write the settings"
echo "valgrind $(valgrind --version | sed 's/^valgrind-//'), $("$AP_BIN/postgres" --version), library $LIB"
echo "starting the postmaster under valgrind (slow: a minute or more) ..."
t_start=$SECONDS
LIB_SUM=$(sha256sum <"$LIB")
if vg_start && ap_wait_ready 600; then
    echo "running: data $AP_PGDATA, socket $AP_PGHOST, port $AP_PGPORT, log $AP_LOG, valgrind logs $VG_DIR ($(elapsed $((SECONDS - t_start))) to start)"
    STARTED=1
else
    STARTED=
fi

if [[ -n $STARTED ]]; then
    # The extension in database postgres first: the background workers have a database to
    # serve (and claims to expire) from the start, and the cluster-wide roles exist before the
    # layers create the extension in their databases, some of them at the same time.
    PGOPTIONS='-c client_min_messages=warning' ap_psql -q -d postgres \
        -c "CREATE EXTENSION IF NOT EXISTS approvals" \
        || ap_note "CREATE EXTENSION approvals in database postgres failed"
    [[ $AP_VALGRIND_SWEEP == 0 ]] || start_sweep
    PGXS_DIR=$(dirname "$("$AP_PG_CONFIG" --pgxs)")/..
    for layer in $AP_VALGRIND_LAYERS; do
        case $layer in
            regress)
                run_regress "pg_regress" "$PGXS_DIR/test/regress/pg_regress" REGRESS \
                    "$AP_ROOT" approvals_regress ;;
            isolation)
                run_regress "isolation" "$PGXS_DIR/test/isolation/pg_isolation_regress" ISOLATION \
                    "$AP_ROOT/test/isolation" approvals_isolation ;;
            pgtap) run_pgtap ;;
            shell) run_shell_tests ;;
            *) ap_note "unknown layer $layer (regress, isolation, pgtap, shell)" ;;
        esac
    done
    finish_sweep
fi

header "stop"
t_stop=$SECONDS
vg_stop || true
echo "stopped ($(elapsed $((SECONDS - t_stop))))"
CRASHES=$(grep -cE 'terminated by signal|was terminated by|exited with exit code [^01]' "$AP_LOG" || true)

header "valgrind log scan"
SCAN=0
scan_logs || SCAN=$?

header "summary"
for l in "${LAYER_TIMES[@]}"; do echo "time: $l"; done
echo "tests under valgrind: $PASSED passed, $FAILED failed (informational: timing checks may fail under valgrind)"
if [[ $CRASHES -gt 0 ]]; then
    echo "server log: $CRASHES lines about crashed server processes:"
    grep -E 'terminated by signal|was terminated by|exited with exit code [^01]' "$AP_LOG" | head -n 10
fi
if [[ $(sha256sum <"$LIB") != "$LIB_SUM" ]]; then
    echo "note: $LIB was replaced during the run (make install?); the server kept the library it"
    echo "      started with, while new CREATE EXTENSIONs read the new SQL script: expect odd failures"
fi
for l in "${LOST[@]}"; do echo "did not run: $l"; done
TOTAL=$(elapsed $((SECONDS - T0)))
echo "total run time: $TOTAL"
DONE=1
if [[ $SCAN -eq 1 ]]; then
    echo "VERDICT: FAIL - memcheck reports with approvals frames, listed above ($TOTAL)"
    exit 1
elif [[ -z $STARTED ]]; then
    echo "VERDICT: INCOMPLETE - the server did not start under valgrind ($TOTAL)"
    exit 2
elif [[ $SCAN -ne 0 ]]; then
    echo "VERDICT: INCOMPLETE - no valgrind logs to scan ($TOTAL)"
    exit 2
elif [[ ${#LOST[@]} -gt 0 ]]; then
    echo "VERDICT: INCOMPLETE - no memcheck report with an approvals frame, but ${#LOST[@]} part(s) did not run (above) ($TOTAL)"
    exit 2
fi
echo "VERDICT: PASS - no memcheck error or definitely lost block with an approvals frame ($TOTAL)"
exit 0
