#!/usr/bin/env bash
# shellcheck disable=SC2119  # ap_start/ap_stop take optional arguments
# 75_nodes: the approvals API through a PL/Proxy router in front of three nodes (API.md §14).
#   - three node clusters (own data directory, unix socket and port 54371..54373, each with
#     the approvals worker, naptime 1 s, chunk_size 50) and a router database in the scratch
#     cluster: CREATE EXTENSION plproxy, approvals_router; set_partitions with four
#     partitions (node1, node2, node3, node1); a tenant per partition
#   - placement: tenant_key is the first byte of sha256(tenant) (computed here with sha256sum),
#     partition_of = key & 3; a claim submitted through the router has an id clm_<key>..., lives
#     on the node of its partition and on no other; NULL tenant included
#   - decide through the router; node errors keep their SQLSTATE (P0002, 55000, AP001, 42501,
#     22023)
#   - identity: roles with the same names on the router and the nodes; the node sees the
#     original caller (requester, event actor), tenant isolation (42501, rows of other tenants
#     invisible in the router's views), the actor rule (42501)
#   - batches: one per tenant (so on every node), each node's worker processes its own;
#     wait_batch, batch_results, list_batches and api_list_batches merged newest first with
#     paging that neither overlaps nor skips
#   - a node down mid-batch (pg_ctl stop -m immediate): its tenants' calls fail naming the
#     node, the other tenants' calls work and their batches complete; restarted, its worker
#     resumes the batch and decides every claim exactly once
#   - the router's views hold every node's rows once (node1 has two partitions)
#   - inbox merged over nodes in inbox order, keyset paging with `after`
#
# Run by test/run.sh against its scratch cluster (the router database lives there). The node
# clusters are reused between runs (initdb only when missing) and stopped when this script
# exits. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
RUN=n$(date +%s)$$
RDB=router_$RUN
BATCH_CLAIMS=${AP_NODES_BATCH_CLAIMS:-600}   # claims per tenant in the batch tests
BIG_CLAIMS=${AP_NODES_BIG_CLAIMS:-2000}      # claims per tenant in the node-down test
SLOW_MS=${AP_NODES_SLOW_MS:-3}               # handler time per claim in the node-down test
COORD=coord_$RUN
TMP=$(mktemp -d)

# Roles created with the same names on the router's cluster and on every node.
R_REQ=ap75_req      # approvals_requester, granted tenants A and B
R_REV=ap75_rev      # approvals_reviewer, granted tenant A only
R_PLAT=ap75_plat    # approvals_platform
ROLES=("$R_REQ" "$R_REV" "$R_PLAT")

# --- node clusters -----------------------------------------------------------------------
NODE_PORT=([1]=54371 [2]=54372 [3]=54373)
NODE_HOST=()
for i in 1 2 3; do
    NODE_HOST[i]=$(ap_use_cluster "node$i" "${NODE_PORT[i]}" >/dev/null; echo "$AP_PGHOST")
done
PART_NODE=(1 2 3 1)      # partition -> node

# node_do I CMD...: run a test/lib.sh command (ap_start, ap_stop, ap_pg_ctl, ...) for node I
# in a subshell, so that the AP_* and PG* variables of the router's cluster stay as they are.
node_do() {
    local i=$1
    shift
    AP_FSYNC=off ap_in_cluster "node$i" "${NODE_PORT[i]}" "$@" 8>&-   # no node server inherits the node lock
}
node_start() { node_do "$1" ap_start "approvals.naptime = 1" "approvals.chunk_size = 50"; }
node_up() { node_do "$1" ap_postmaster_pid >/dev/null 2>&1; }
# nsql I ARGS...: psql -qAt on database postgres of node I as postgres.
nsql() {
    local i=$1
    shift
    timeout -k 5 "${SQL_TIMEOUT:-30}" "$AP_BIN/psql" -X -v ON_ERROR_STOP=1 \
        -h "${NODE_HOST[i]}" -p "${NODE_PORT[i]}" -U postgres -d postgres -qAt "$@"
}
# rsql ARGS... / rsql_as ROLE ARGS...: psql -qAt on the router database (as postgres / ROLE).
rsql() { sqld "$RDB" "$@"; }
rsql_as() {
    local role=$1
    shift
    timeout -k 5 "${SQL_TIMEOUT:-30}" "$AP_BIN/psql" -X -v ON_ERROR_STOP=1 -h "$AP_PGHOST" \
        -p "$AP_PGPORT" -U "$role" -d "$RDB" -qAt "$@"
}
# error_of ROLE SQL: run SQL on the router as ROLE; prints "ok" when it succeeds, else
# "SQLSTATE message" of its error (or the raw output when there is no ERROR line).
error_of() {
    local out st
    if out=$(rsql_as "$1" -v VERBOSITY=verbose -c "$2" 2>&1 >/dev/null); then
        echo ok
        return 0
    fi
    st=$(sed -nE 's/^ERROR:  ([0-9A-Z]{5}): (.*)$/\1 \2/p' <<<"$out" | head -n 1)
    if [[ -n $st ]]; then echo "$st"; else echo "?? $out"; fi
}
# check_error DESC SQLSTATE ROLE SQL: the call fails with SQLSTATE through the router.
check_error() {
    local got
    got=$(error_of "$3" "$4")
    if [[ ${got%% *} == "$2" ]]; then
        ok "$1 (${got:0:160})"
    else
        not_ok "$1"
        echo "#   expected SQLSTATE $2"
        diag "got: $got"
    fi
}
# node_counts QUERY: the query's single value on node 1, 2 and 3, as "v1 v2 v3".
node_counts() {
    local i vals=()
    for i in 1 2 3; do vals+=("$(nsql "$i" -c "$1" 2>&1)"); done
    echo "${vals[*]}"
}
# where_expected NODE: "1 0 0" style string with 1 at NODE.
where_expected() {
    local i vals=()
    for i in 1 2 3; do if ((i == $1)); then vals+=(1); else vals+=(0); fi; done
    echo "${vals[*]}"
}

# diag TEXT: TEXT as TAP comment lines.
diag() {
    local line
    while IFS= read -r line; do echo "#   $line"; done <<<"$1"
}

# One run at a time uses the node ports, whatever its checkout: wait for a run in progress.
# (Taken before the EXIT trap is set, so that a run that gives up stops nobody's nodes.)
exec 8>"/var/tmp/approvals-nodes-${NODE_PORT[1]}.lock"
if ! flock -n 8; then
    echo "# another run uses the node ports ${NODE_PORT[*]}; waiting for it"
    if ! flock -w 600 8; then
        not_ok "the node ports ${NODE_PORT[*]} are free within 600 s"
        exit 1
    fi
fi

cleanup() {
    local i r
    for i in 1 2 3; do node_do "$i" ap_stop fast >/dev/null 2>&1; done
    sql -c "DROP DATABASE IF EXISTS $RDB WITH (FORCE)" >/dev/null 2>&1
    for r in "${ROLES[@]}"; do sql -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

ap_wait_ready 60 || { not_ok "router cluster accepts connections"; exit 1; }

# --- 1. set-up ---------------------------------------------------------------------------
started=1
for i in 1 2 3; do
    if ! node_start "$i" >"$TMP/start$i.txt" 2>&1; then
        started=0
        sed 's/^/#   /' "$TMP/start$i.txt"
    fi
done
if ((started)); then
    ok "three node clusters run (sockets ${NODE_HOST[1]}, ${NODE_HOST[2]}, ${NODE_HOST[3]}; ports ${NODE_PORT[*]})"
else
    not_ok "three node clusters run"
    exit 1
fi

# A fresh approvals in database postgres of each node (served by that node's worker), the
# roles, and a slow decision handler for the node-down test.
setup_node() {
    local r
    PGOPTIONS='-c client_min_messages=warning' nsql "$1" \
        -c "DROP EXTENSION IF EXISTS approvals CASCADE" -c "CREATE EXTENSION approvals" \
        -c "CREATE FUNCTION public.ap75_slow(c approvals.claims, e approvals.events)
                RETURNS void LANGUAGE sql AS 'SELECT pg_sleep($SLOW_MS / 1000.0)'" \
        >/dev/null || return 1
    for r in "${ROLES[@]}"; do
        nsql "$1" -c "DO \$\$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$r') THEN CREATE ROLE $r LOGIN; END IF;
              END \$\$" || return 1
    done
    nsql "$1" -c "GRANT approvals_requester TO $R_REQ" -c "GRANT approvals_reviewer TO $R_REV" \
        -c "GRANT approvals_platform TO $R_PLAT" >/dev/null 2>&1
}
setup=1
for i in 1 2 3; do
    if ! out=$(setup_node "$i" 2>&1); then
        setup=0
        echo "# node$i: $out"
    fi
done
if ((setup)); then
    ok "CREATE EXTENSION approvals (fresh) in database postgres of each node; roles and the handler function"
else
    not_ok "CREATE EXTENSION approvals (fresh) in database postgres of each node; roles and the handler function"
    exit 1
fi
# nwait_true I SECONDS QUERY: poll a boolean QUERY on node I until it is t.
nwait_true() {
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        [[ $(nsql "$1" -c "$3" 2>/dev/null) == t ]] && return 0
        sleep 0.1
    done
    [[ $(nsql "$1" -c "$3" 2>/dev/null) == t ]]
}
sched=
for i in 1 2 3; do
    nwait_true "$i" 15 "SELECT count(*) > 0 FROM pg_stat_activity
                        WHERE backend_type = 'approvals scheduler' AND datname = 'postgres'" \
        && sched+="node$i "
done
check "each node's worker serves its database postgres (an approvals scheduler on each node)" \
    "node1 node2 node3 " "$sched"

for r in "${ROLES[@]}"; do
    sql -c "DO \$\$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$r') THEN CREATE ROLE $r LOGIN; END IF;
            END \$\$" >/dev/null
done

CONN=()
for i in 1 2 3; do CONN[i]="host=${NODE_HOST[i]} port=${NODE_PORT[i]} dbname=postgres"; done
# The router is set up by the README's block ("Several nodes", the ```sh block that starts with
# "# set up a router"), run as written.
awk '/^```sh$/ { inb = 1; n = 0; next } inb && /^```$/ { inb = 0; if (found) exit; next }
     inb { if (n++ == 0 && $0 ~ /^# set up a router/) found = 1; if (found) print }' \
    "$AP_ROOT/README.md" >"$TMP/setup.sh"
if [[ ! -s $TMP/setup.sh ]]; then
    not_ok "the README has the router set-up block (a \`\`\`sh block starting with '# set up a router')"
    exit 1
fi
if out=$(sql -c "CREATE DATABASE $RDB" 2>&1 \
         && env PATH="$AP_BIN:$PATH" ROUTER="host=$AP_PGHOST port=$AP_PGPORT dbname=$RDB user=postgres" \
                NODE1="${CONN[1]}" NODE2="${CONN[2]}" NODE3="${CONN[3]}" \
                timeout 120 bash "$TMP/setup.sh" 2>&1); then
    ok "the README's set-up block runs: plproxy, approvals_router, partitions [node1, node2, node3, node1]"
else
    not_ok "the README's set-up block runs"
    diag "$out"
    exit 1
fi
check "set_partitions made four partitions on the three nodes" \
    "0 ${CONN[1]}|1 ${CONN[2]}|2 ${CONN[3]}|3 ${CONN[1]}" \
    "$(rsql -c "SELECT string_agg(partition || ' ' || conninfo, '|' ORDER BY partition) FROM approvals_router.partitions")"
# the slow handler of the node-down test, set on every node through the router
check "set_handler through the router sets the handler on every node" "ok|t t t" \
    "$(error_of postgres "SELECT approvals.set_handler('ap75_slow', 'public.ap75_slow(approvals.claims, approvals.events)')")|$(node_counts "SELECT count(*) = 1 FROM approvals.handlers WHERE resource_type = 'ap75_slow'" 2>&1)"
check_error "set_partitions with 3 entries (not a power of two) is 22023" 22023 postgres \
    "SELECT approvals_router.set_partitions(ARRAY['${CONN[1]}', '${CONN[2]}', '${CONN[3]}'])"
# the roles on the router: the group roles exist on the router's cluster too (same names)
if out=$(sql -c "GRANT approvals_requester TO $R_REQ" -c "GRANT approvals_reviewer TO $R_REV" \
             -c "GRANT approvals_platform TO $R_PLAT" 2>&1); then
    ok "roles $R_REQ, $R_REV, $R_PLAT on the router's cluster with the approvals group roles"
else
    not_ok "roles $R_REQ, $R_REV, $R_PLAT on the router's cluster with the approvals group roles"
    diag "$out"
fi

# A tenant per partition: the first of t1, t2, ... that lands on it.
TEN=()
while IFS='|' read -r p t; do TEN[p]=$t; done < <(rsql -c "
    SELECT DISTINCT ON (approvals_router.partition_of('t' || g)) approvals_router.partition_of('t' || g), 't' || g
      FROM generate_series(1, 200) g ORDER BY 1, g")
if [[ ${#TEN[@]} -eq 4 && -n ${TEN[0]:-} && -n ${TEN[1]:-} && -n ${TEN[2]:-} && -n ${TEN[3]:-} ]]; then
    ok "a tenant for each of the 4 partitions: ${TEN[*]}"
else
    not_ok "a tenant for each of the 4 partitions (got: ${TEN[*]})"
    exit 1
fi
# key KEY_HEX for tenant TEXT, computed here: the first byte of sha256 of its UTF-8 bytes
key_of() { printf '%s' "$1" | sha256sum | cut -c1-2; }
want=
got=
for p in 0 1 2 3; do
    k=$(key_of "${TEN[p]}")
    want+="${TEN[p]}:$((16#$k)):$((16#$k & 3)) "
    got+="$(rsql -c "SELECT '${TEN[p]}:' || approvals_router.tenant_key('${TEN[p]}') || ':'
                            || approvals_router.partition_of('${TEN[p]}')") "
done
k=$(key_of "")
want+="NULL:$((16#$k)):$((16#$k & 3))"
got+=$(rsql -c "SELECT 'NULL:' || approvals_router.tenant_key(NULL) || ':' || approvals_router.partition_of(NULL)")
check "tenant_key = first byte of sha256(tenant), NULL as ''; partition_of = key & 3" "$want" "$got"

# --- 2. claims through the router --------------------------------------------------------
declare -A CLAIM    # partition -> a claim id (approved below)
for p in 0 1 2 3 null; do
    if [[ $p == null ]]; then
        t=NULL; tq=NULL; k=$(key_of ""); node=${PART_NODE[$((16#$k & 3))]}
    else
        t=${TEN[p]}; tq="'$t'"; k=$(key_of "$t"); node=${PART_NODE[p]}
    fi
    id=$(rsql -c "SELECT id FROM approvals.submit('doc', '$RUN-c-$p', 'h1', tenant => $tq,
                    actor => 'alice')" 2>&1)
    CLAIM[$p]=$id
    if [[ $id =~ ^clm_${k}[0-9a-f]{14}$ ]]; then
        ok "submit through the router, tenant $t: id $id is clm_ + its tenant key $k + 14 hex"
    else
        not_ok "submit through the router, tenant $t: id is clm_ + tenant key $k + 14 hex (got: $id)"
    fi
    check "claim of tenant $t is on node$node (its partition) and on no other node" \
        "$(where_expected "$node")" "$(node_counts "SELECT count(*) FROM approvals.claims WHERE id = '$id'")"
    got=$(rsql -c "SELECT status || ' ' || reviewer FROM approvals.decide('$id', 'approved', actor => 'bob')" 2>&1)
    check "decide through the router approves the claim of tenant $t (node$node)" \
        "approved bob|approved bob|1" \
        "$got|$(nsql "$node" -c "SELECT status || ' ' || reviewer FROM approvals.claims WHERE id = '$id'")|$(nsql "$node" -c "SELECT count(*) FROM approvals.events WHERE claim_id = '$id' AND action = 'approved' AND actor = 'bob'")"
done

# Errors through the router keep the node's SQLSTATE (tenant of partition 2, node3).
t=${TEN[2]}
k=$(key_of "$t")
pend=$(rsql -c "SELECT id FROM approvals.submit('doc', '$RUN-e-1', 'h1', tenant => '$t', actor => 'alice')")
check_error "through the router: decide an unknown claim id (clm_${k}ffffffffffffff) is P0002" P0002 postgres \
    "SELECT approvals.decide('clm_${k}ffffffffffffff', 'approved', actor => 'bob')"
check_error "through the router: decide an id that names no partition ('nope') is P0002" P0002 postgres \
    "SELECT approvals.decide('nope', 'approved', actor => 'bob')"
check_error "through the router: deciding an already decided claim is 55000" 55000 postgres \
    "SELECT approvals.decide('${CLAIM[2]}', 'rejected', actor => 'carol')"
check_error "through the router: a stale snapshot_hash is AP001" AP001 postgres \
    "SELECT approvals.decide('$pend', 'approved', snapshot_hash => 'h0', actor => 'bob')"
check_error "through the router: the requester approving their own claim is 42501" 42501 postgres \
    "SELECT approvals.decide('$pend', 'approved', actor => 'alice')"
check_error "through the router: outcome 'maybe' is 22023" 22023 postgres \
    "SELECT approvals.decide('$pend', 'maybe', actor => 'bob')"
check "the failed calls changed nothing: the claim is pending with no decision event" "pending|0" \
    "$(nsql "${PART_NODE[2]}" -c "SELECT status || '|' || (SELECT count(*) FROM approvals.events e
        WHERE e.claim_id = c.id AND e.action <> 'submitted') FROM approvals.claims c WHERE id = '$pend'")"

# --- 3. identity: the node authorizes the original caller ----------------------------------
TA=${TEN[2]}; NA=${PART_NODE[2]}    # tenant A (node3)
TB=${TEN[1]}; NB=${PART_NODE[1]}    # tenant B (node2)
if out=$(rsql -c "SELECT approvals.grant_tenant('$TA', '$R_REQ')" -c "SELECT approvals.grant_tenant('$TB', '$R_REQ')" \
              -c "SELECT approvals.grant_tenant('$TA', '$R_REV')" 2>&1); then
    ok "grant_tenant through the router: $R_REQ gets $TA and $TB, $R_REV gets $TA"
else
    not_ok "grant_tenant through the router"
    diag "$out"
fi
got=
for i in 1 2 3; do
    got+="$(nsql "$i" -c "SET ROLE $R_REV" -c "SELECT '$TA' = ANY (approvals.visible_tenants())
                            AND NOT '$TB' = ANY (approvals.visible_tenants())" 2>&1) "
done
check "grant_tenant through the router reached every node ($R_REV sees $TA, not $TB, on each)" "t t t " "$got"
ca=$(rsql_as "$R_REQ" -c "SELECT id FROM approvals.submit('doc', '$RUN-i-a', 'h1', tenant => '$TA')" 2>&1)
cb=$(rsql_as "$R_REQ" -c "SELECT id FROM approvals.submit('doc', '$RUN-i-b', 'h1', tenant => '$TB')" 2>&1)
ca2=$(rsql_as "$R_REQ" -c "SELECT id FROM approvals.submit('doc', '$RUN-i-a2', 'h1', tenant => '$TA')" 2>&1)
check "as $R_REQ through the router: submit without actor; the nodes record requester $R_REQ" \
    "$R_REQ $R_REQ $R_REQ" \
    "$(nsql "$NA" -c "SELECT requester FROM approvals.claims WHERE id = '$ca'") $(nsql "$NB" -c "SELECT requester FROM approvals.claims WHERE id = '$cb'") $(nsql "$NA" -c "SELECT requester FROM approvals.claims WHERE id = '$ca2'")"
check_error "as $R_REQ (requester, not reviewer) through the router: decide is 42501" 42501 "$R_REQ" \
    "SELECT approvals.decide('$ca', 'approved')"
check_error "as $R_REV (granted $TA only) through the router: deciding a claim of $TB is 42501" 42501 "$R_REV" \
    "SELECT approvals.decide('$cb', 'approved')"
check_error "as $R_REV (not platform) through the router: decide with actor => 'someone' is 42501" 42501 "$R_REV" \
    "SELECT approvals.decide('$ca2', 'approved', actor => 'someone')"
got=$(rsql_as "$R_REV" -c "SELECT status || ' ' || reviewer FROM approvals.decide('$ca', 'approved')" 2>&1)
check "as $R_REV through the router: decide a claim of $TA approves it, reviewer $R_REV" \
    "approved $R_REV" "$got"
check "on node$NA the event's actor is $R_REV (the node saw the original caller, not postgres)" "$R_REV" \
    "$(nsql "$NA" -c "SELECT string_agg(actor, ',') FROM approvals.events WHERE claim_id = '$ca' AND action = 'approved'")"
check "as $R_REV through the router's views: claims of $TA visible, of $TB none (isolation on the node)" \
    "t|0" \
    "$(rsql_as "$R_REV" -c "SELECT count(*) FILTER (WHERE tenant = '$TA') > 0, count(*) FILTER (WHERE tenant = '$TB') FROM approvals.claims" 2>&1)"
check "$cb (tenant $TB) and $ca2 are still pending" "pending pending" \
    "$(nsql "$NB" -c "SELECT status FROM approvals.claims WHERE id = '$cb'") $(nsql "$NA" -c "SELECT status FROM approvals.claims WHERE id = '$ca2'")"

# --- 4. a batch per tenant -----------------------------------------------------------------
# submit_batch P N TYPE START: N claims of tenant TEN[P] through the router and a batch of them
# (coordinator COORD); prints "batch_id status" and writes the claim ids to $TMP/ids_<tag>.
submit_batch() {
    local p=$1 n=$2 type=$3 start=$4 tag=$3_$1
    rsql -c "SELECT id FROM generate_series(1, $n) g,
                 LATERAL approvals.submit('$type', '$RUN-$tag-' || g, 'h', tenant => '${TEN[p]}',
                                          actor => 'alice') s ORDER BY g" >"$TMP/ids_$tag" || return 1
    rsql -c "SELECT id || ' ' || status FROM approvals.create_batch(
                 string_to_array('$(paste -sd, "$TMP/ids_$tag")', ','),
                 coordinator => '$COORD', tenant => '${TEN[p]}', start => $start)"
}
declare -A BAT
pids=()
for p in 0 1 2 3; do
    submit_batch "$p" "$BATCH_CLAIMS" bulk true >"$TMP/bat_$p" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for p in 0 1 2 3; do
    t=${TEN[p]}; k=$(key_of "$t"); node=${PART_NODE[p]}
    read -r b st <"$TMP/bat_$p"
    BAT[$p]=$b
    if [[ $b =~ ^bat_${k}[0-9a-f]{14}$ && $st == queued && $(wc -l <"$TMP/ids_bulk_$p") -eq $BATCH_CLAIMS ]]; then
        ok "tenant $t: $BATCH_CLAIMS claims and create_batch through the router: $b queued (bat_ + key $k)"
    else
        not_ok "tenant $t: $BATCH_CLAIMS claims and create_batch through the router: queued bat_$k... (got: $(head -c 300 "$TMP/bat_$p"))"
    fi
    check "batch $b is on node$node only" "$(where_expected "$node")" \
        "$(node_counts "SELECT count(*) FROM approvals.batches WHERE id = '$b'")"
done
for p in 0 1 2 3; do
    b=${BAT[$p]}; node=${PART_NODE[p]}
    got=$(SQL_TIMEOUT=90 rsql -c "SELECT status || ' ' || approved_count FROM approvals.wait_batch('$b', '60 seconds')" 2>&1)
    check "wait_batch through the router: $b (tenant ${TEN[p]}) completed, $BATCH_CLAIMS approved" \
        "completed $BATCH_CLAIMS" "$got"
    check "on node$node the node's worker processed $b (completed, started_at set, attempts 1, $BATCH_CLAIMS approved claims)" \
        "completed|t|1|$BATCH_CLAIMS" \
        "$(nsql "$node" -c "SELECT b.status, b.started_at IS NOT NULL, b.attempts,
                (SELECT count(*) FROM approvals.claims c WHERE c.batch_id = b.id AND c.status = 'approved')
              FROM approvals.batches b WHERE id = '$b'")"
    check "batch_results through the router: $BATCH_CLAIMS rows, all approved, the batch's claims in order" \
        "$BATCH_CLAIMS|$BATCH_CLAIMS|$(md5sum <"$TMP/ids_bulk_$p" | cut -c1-32)" \
        "$(rsql -c "SELECT count(*), count(*) FILTER (WHERE decision = 'approved'),
                           md5(string_agg(claim_id, E'\\n' ORDER BY ord) || E'\\n')
                      FROM approvals.batch_results('$b') WITH ORDINALITY r(claim_id, decision, error, processed_at, ord)" 2>&1)"
done
# A fifth batch (tenant of partition 2, a few claims) so that the list has an odd length.
submit_batch 2 5 bulk5 true >"$TMP/bat_5" 2>&1
read -r b5 _ <"$TMP/bat_5"
SQL_TIMEOUT=90 rsql -c "SELECT status FROM approvals.wait_batch('$b5', '60 seconds')" >/dev/null 2>&1

# list_batches: the expected order from the nodes themselves (newest first, then id desc)
expected_batches() {
    local i
    for i in 1 2 3; do
        nsql "$i" -c "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') || '|' || id
                      FROM approvals.batches WHERE coordinator = '$COORD' $1"
    done | LC_ALL=C sort -r | cut -d'|' -f2 | paste -sd' '
}
want=$(expected_batches "")
p1=$(rsql -c "SELECT id FROM approvals.list_batches(coordinator => '$COORD', page => 1, page_limit => 2)" 2>&1 | paste -sd' ')
p2=$(rsql -c "SELECT id FROM approvals.list_batches(coordinator => '$COORD', page => 2, page_limit => 2)" 2>&1 | paste -sd' ')
p3=$(rsql -c "SELECT id FROM approvals.list_batches(coordinator => '$COORD', page => 3, page_limit => 2)" 2>&1 | paste -sd' ')
p4=$(rsql -c "SELECT id FROM approvals.list_batches(coordinator => '$COORD', page => 4, page_limit => 2)" 2>&1 | paste -sd' ')
check "list_batches through the router, page_limit 2: pages 1, 2, 3 are the 5 batches of all nodes newest first, page 4 empty" \
    "$want|" "$(echo "$p1 $p2 $p3" | xargs)|$p4"
nodes_in=$(for b in $want; do for i in 1 2 3; do
    [[ $(nsql "$i" -c "SELECT count(*) FROM approvals.batches WHERE id = '$b'") == 1 ]] && echo "$i"; done; done | sort -u | paste -sd' ')
check "the listed batches come from all three nodes" "1 2 3" "$nodes_in"
check "list_batches(status => 'completed') through the router: the same 5, newest first" \
    "$(expected_batches "AND status = 'completed'")" \
    "$(rsql -c "SELECT id FROM approvals.list_batches(status => 'completed', coordinator => '$COORD', page_limit => 50)" 2>&1 | paste -sd' ')"
total=$(( $(node_counts "SELECT count(*) FROM approvals.batches" | tr ' ' '+') ))
all=$(for i in 1 2 3; do nsql "$i" -c "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS') || '|' || id FROM approvals.batches"; done \
      | LC_ALL=C sort -r | cut -d'|' -f2 | sed -n '3,4p' | paste -sd' ')
check "api_list_batches(2, 2) through the router: total over all nodes, data = the 3rd and 4th newest batches" \
    "$total|$all" \
    "$(rsql -c "SELECT (j->'pagination'->>'total') || '|' || (SELECT string_agg(d->>'batch_id', ' ' ORDER BY o)
                 FROM jsonb_array_elements(j->'data') WITH ORDINALITY x(d, o))
               FROM approvals.api_list_batches(2, 2) j" 2>&1)"

# --- 5. a node down mid-batch ------------------------------------------------------------
# Four batches (one per tenant, node1 has two) of BIG_CLAIMS claims whose handler takes
# SLOW_MS ms each, created pending in parallel and started together.
declare -A BIG
pids=()
for p in 0 1 2 3; do
    submit_batch "$p" "$BIG_CLAIMS" ap75_slow false >"$TMP/big_$p" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
big_ok=1
for p in 0 1 2 3; do
    read -r b st <"$TMP/big_$p"
    BIG[$p]=$b
    [[ $b =~ ^bat_ && $st == pending ]] || { big_ok=0; echo "# tenant ${TEN[p]}: $(head -c 300 "$TMP/big_$p")"; }
done
start_sql=()
for p in 0 1 2 3; do start_sql+=(-c "SELECT status FROM approvals.start_batch('${BIG[$p]}')"); done
if ((big_ok)) && [[ $(rsql "${start_sql[@]}" 2>&1 | paste -sd' ') == "queued queued queued queued" ]]; then
    ok "node-down test: 4 batches of $BIG_CLAIMS claims (handler ${SLOW_MS} ms a claim) created and started through the router"
else
    not_ok "node-down test: 4 batches of $BIG_CLAIMS claims created and started through the router"
    big_ok=0
fi
N2=2    # node2 serves partition 1 only
P2=1
B2=${BIG[$P2]}
if ((big_ok)); then
    got=$(SQL_TIMEOUT=40 nsql "$N2" -c "DO \$\$
        DECLARE st text; n integer; t0 timestamptz := clock_timestamp();
        BEGIN
            LOOP
                SELECT status, processed_count INTO st, n FROM approvals.batches WHERE id = '$B2';
                EXIT WHEN st = 'processing' AND n > 0 OR st IN ('completed', 'failed', 'cancelled')
                          OR clock_timestamp() - t0 > interval '30 seconds';
                PERFORM pg_sleep(0.005);
            END LOOP;
            PERFORM set_config('ap.st', st || ' ' || n, false);
        END \$\$" -c "SELECT current_setting('ap.st')" 2>&1)
    STOP_EPOCH=$(date +%s.%N)
    node_do "$N2" ap_pg_ctl stop -m immediate
    read -r st n <<<"$got"
    if [[ $st == processing ]] && ((n > 0 && n < BIG_CLAIMS)) && ! node_up "$N2"; then
        ok "node2 stopped (immediate) while $B2 was processing ($n of $BIG_CLAIMS claims processed)"
    else
        not_ok "node2 stopped (immediate) while $B2 was processing (got: $got; node2 up: $(node_up "$N2" && echo yes || echo no))"
    fi

    # node2's tenant: every call fails, naming node2
    t=${TEN[P2]}
    for call in "SELECT approvals.submit('doc', '$RUN-d-1', 'h1', tenant => '$t', actor => 'alice')" \
                "SELECT approvals.decide('$cb', 'approved', actor => 'bob')" \
                "SELECT approvals.api_get_batch('$B2')" \
                "SELECT * FROM approvals.batch_results('$B2')"; do
        got=$(error_of postgres "$call")
        if [[ $got != ok && ( $got == *".s.PGSQL.${NODE_PORT[N2]}"* || $got == *"port=${NODE_PORT[N2]}"* || $got == *"${NODE_HOST[N2]}"* ) ]]; then
            ok "node2 down: ${call:7:30}... for tenant $t fails naming node2 (${got:0:200})"
        else
            not_ok "node2 down: ${call:7:30}... for tenant $t fails naming node2 (port ${NODE_PORT[N2]} or ${NODE_HOST[N2]})"
            diag "got: $got"
        fi
    done
    # the other tenants: submit, decide, api_get_batch work, their batches complete
    for p in 0 2 3; do
        t=${TEN[p]}
        got=$(rsql -c "SELECT status FROM approvals.decide(
                         (SELECT id FROM approvals.submit('doc', '$RUN-d-$p', 'h1', tenant => '$t', actor => 'alice')),
                         'approved', actor => 'bob')" \
                   -c "SELECT approvals.api_get_batch('${BIG[$p]}')->>'batch_id'" 2>&1 | paste -sd' ')
        check "node2 down: tenant $t (node${PART_NODE[p]}): submit, decide, api_get_batch through the router work" \
            "approved ${BIG[$p]}" "$got"
    done
    for p in 0 2 3; do
        b=${BIG[$p]}; node=${PART_NODE[p]}
        got=$(SQL_TIMEOUT=150 rsql -c "SELECT status || ' ' || approved_count FROM approvals.wait_batch('$b', '120 seconds')" 2>&1)
        late=$(nsql "$node" -c "SELECT extract(epoch FROM completed_at) > $STOP_EPOCH FROM approvals.batches WHERE id = '$b'" 2>&1)
        if [[ $got == "completed $BIG_CLAIMS" && $late == t ]] && ! node_up "$N2"; then
            ok "node2 down: $b (tenant ${TEN[p]}, node$node) completes through the outage, $BIG_CLAIMS approved"
        else
            not_ok "node2 down: $b (tenant ${TEN[p]}, node$node) completes after node2 went down (got: $got; completed after the stop: $late)"
        fi
    done

    # node2 back: its worker resumes the batch; every claim decided exactly once
    if node_start "$N2" >"$TMP/restart.txt" 2>&1 && node_do "$N2" ap_wait_ready 60; then
        ok "node2 restarts"
    else
        not_ok "node2 restarts"
        sed 's/^/#   /' "$TMP/restart.txt"
    fi
    got=$(SQL_TIMEOUT=150 rsql -c "SELECT status || ' ' || approved_count FROM approvals.wait_batch('$B2', '120 seconds')" 2>&1)
    check "node2 back: wait_batch through the router: $B2 completed, $BIG_CLAIMS approved" "completed $BIG_CLAIMS" "$got"
    check "on node2: $B2 resumed (attempts 2) and every claim decided exactly once" \
        "completed|2|$BIG_CLAIMS|$BIG_CLAIMS|$BIG_CLAIMS|$BIG_CLAIMS|0|$BIG_CLAIMS|$BIG_CLAIMS" \
        "$(nsql "$N2" -c "SELECT b.status, b.attempts, b.total_claims, b.processed_count, b.approved_count,
              (SELECT count(*) FROM approvals.batch_items i WHERE i.batch_id = b.id AND i.decision = 'approved'),
              (SELECT count(*) FROM approvals.batch_items i WHERE i.batch_id = b.id AND
                  (SELECT count(*) FROM approvals.events e WHERE e.claim_id = i.claim_id AND e.action = 'approved') <> 1),
              (SELECT count(*) FROM approvals.events e WHERE e.batch_id = b.id AND e.action = 'approved'),
              (SELECT count(*) FROM approvals.claims c WHERE c.batch_id = b.id AND c.status = 'approved')
            FROM approvals.batches b WHERE b.id = '$B2'" 2>&1)"
    check "node2 back: tenant ${TEN[P2]} works again through the router (decide $cb)" \
        "approved" "$(rsql -c "SELECT status FROM approvals.decide('$cb', 'approved', actor => 'bob')" 2>&1)"
fi

# --- 6. the router's views hold every node's rows once ---------------------------------------
if ! node_up "$N2"; then node_start "$N2" >/dev/null 2>&1; fi
for rel in claims events batches batch_items; do
    sum=$(( $(node_counts "SELECT count(*) FROM approvals.$rel" | tr ' ' '+') ))
    check "router view approvals.$rel: count(*) = the sum over the three nodes ($sum)" "$sum" \
        "$(rsql -c "SELECT count(*) FROM approvals.$rel" 2>&1)"
done
check "router view approvals.claims: each id once" "0" \
    "$(rsql -c "SELECT count(*) FROM (SELECT id FROM approvals.claims GROUP BY id HAVING count(*) > 1) x" 2>&1)"

# a statistics call (no tenant: every node) merges every node's groups once
want=$(( $(node_counts "SELECT count(*) FROM approvals.claims WHERE resource_type = 'ap75_slow' AND status = 'approved'" | tr ' ' '+') ))
check "claim_stats() through the router: resource type ap75_slow summed over the nodes (submitted = approved = $want)" \
    "$want|$want" \
    "$(rsql -c "SELECT submitted || '|' || approved FROM approvals.claim_stats() WHERE resource_type = 'ap75_slow'" 2>&1)"

# --- 7. inbox merged over the nodes ----------------------------------------------------------
# name|partition|priority|expires_at, in the order they are submitted; the inbox order is
# A B C D E F G (priority, then expires_at nulls last, then created_at: E before F).
INBOX_SPEC=(
    "G|2|low|now() + interval '1 hour'"
    "D|2|high|now() + interval '2 hours'"
    "E|3|normal|NULL"
    "B|0|urgent|NULL"
    "F|1|normal|NULL"
    "C|1|high|now() + interval '1 hour'"
    "A|2|urgent|now() + interval '1 day'"
)
declare -A IBX
ib_ok=1
for spec in "${INBOX_SPEC[@]}"; do
    IFS='|' read -r name p prio exp <<<"$spec"
    id=$(rsql -c "SELECT id FROM approvals.submit('doc', '$RUN-ib-$name', 'h1', tenant => '${TEN[p]}',
                    actor => 'req1', approvers => ARRAY['rev1'], priority => '$prio', expires_at => $exp)" 2>&1)
    [[ $id =~ ^clm_ ]] || { ib_ok=0; echo "# inbox claim $name: $id"; }
    IBX[$name]=$id
done
want="${IBX[A]} ${IBX[B]} ${IBX[C]} ${IBX[D]} ${IBX[E]} ${IBX[F]} ${IBX[G]}"
if ((ib_ok)); then
    pages=()
    after=NULL
    for _ in 1 2 3 4 5 6; do
        out=$(rsql_as "$R_PLAT" -c "SELECT id FROM approvals.inbox(actor => 'rev1', page_limit => 2, after => $after)" 2>&1)
        pages+=("$(paste -sd' ' <<<"$out")")
        [[ -z $out ]] && break
        after="'$(tail -n 1 <<<"$out")'"
    done
    check "inbox(actor => 'rev1', page_limit => 2) as $R_PLAT, next pages with after: 7 claims of 3 nodes once each, in inbox order, then an empty page" \
        "${IBX[A]} ${IBX[B]}|${IBX[C]} ${IBX[D]}|${IBX[E]} ${IBX[F]}|${IBX[G]}|" \
        "$(IFS='|'; echo "${pages[*]}")"
    check "inbox(actor => 'rev1', page_limit => 50) in one page" "$want" \
        "$(rsql_as "$R_PLAT" -c "SELECT id FROM approvals.inbox(actor => 'rev1', page_limit => 50)" 2>&1 | paste -sd' ')"
    check_error "inbox(actor => 'rev1') as $R_REV (not platform) is 42501" 42501 "$R_REV" \
        "SELECT * FROM approvals.inbox(actor => 'rev1')"
else
    not_ok "inbox claims submitted through the router"
fi

echo "# 75_nodes: $N tests, $FAILS failed, $((SECONDS - T0)) s"
[[ $FAILS -eq 0 ]]
