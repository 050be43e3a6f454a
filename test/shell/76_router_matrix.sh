#!/usr/bin/env bash
# 76_router_matrix: the privilege matrix run through the router (API.md §8 and §14, issue 13
# item 3): every node authorizes the original caller exactly as a single server does.
#   - in the scratch cluster: a node database (CREATE EXTENSION approvals) and a router
#     database (plproxy, approvals_router, one partition: the node database); roles are
#     cluster-wide, so the same LOGIN roles exist on both: one per group role (reader,
#     requester, reviewer, coordinator, admin, platform), one with no approvals role, and a
#     requester+reviewer granted tenant acme only
#   - the matrix: every routed function of schema approvals (and SELECT from every router view),
#     in one or more variants (own/other tenant, actor override, bad argument, unknown id,
#     wrong status...), for each of the 8 roles, run with the same arguments directly on the node
#     and through the router, each in BEGIN; SET ROLE ...; ...; ROLLBACK. The outcome (SQLSTATE,
#     or success with its row count; for reads also a hash of the rows) must be the same. A
#     forwarded call commits on the node, so every cell that changes something has a target of
#     its own (claims, batches, delegations, policies, tenants made for it beforehand), and for
#     each variant the 8 direct calls run just before the 8 routed ones (nothing changes between)
#   - expectations per variant (from API.md) so that the matrix cannot pass by everything failing
#     alike; every routed function and view appears in the matrix (checked against the catalog)
#   - the comparison tells a different role apart (negative checks), tenant isolation seen
#     through the router, the actor rule (42501 / platform allowed), identity (events and claims
#     on the node name the calling role, not postgres; a direct call was rolled back and the
#     routed one committed exactly once), CALL run_queued through the router is 0A000
#   - set_handler takes the handler as text on the router (regprocedure on the node): the call
#     text used here resolves on both, so it is compared too; CALL run_queued is not a function
#     of the matrix (the router refuses it) and is checked apart
#   - a worker serving the node database would change it under the matrix: outside test/run.sh
#     (which restricts the worker to database postgres) the server is restarted with
#     approvals.database = 'postgres' and restored at exit
#
# Run by test/run.sh against its scratch cluster. Prints "ok N - ..." / "not ok N - ...".
set -uo pipefail
# shellcheck source=test/lib.sh
source "$AP_ROOT/test/lib.sh"
# shellcheck source=test/tap.bash
source "$AP_ROOT/test/tap.bash"
export PGCONNECT_TIMEOUT=5

T0=$SECONDS
RUN=rm$(date +%s)$$
NODE=rm_node_$RUN
ROUTER=rm_router_$RUN
TMP=$(mktemp -d)

# The matrix's roles, in column order; ${RUN}_<short> on the cluster.
SHORTS=(reader requester reviewer coordinator admin platform none tenant)
declare -A ROLE
for s in "${SHORTS[@]}"; do ROLE[$s]=${RUN}_$s; done
DUMMY=${RUN}_dummy          # a NOLOGIN role that grant_tenant/revoke_tenant cells name

RESTRICTED=
# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
    if [[ -n $RESTRICTED ]]; then ap_start >/dev/null 2>&1; fi   # back to the run's settings
    sql -c "DROP DATABASE IF EXISTS $ROUTER WITH (FORCE)" >/dev/null 2>&1
    sql -c "DROP DATABASE IF EXISTS $NODE WITH (FORCE)" >/dev/null 2>&1
    local s
    for s in "${SHORTS[@]}"; do sql -c "DROP ROLE IF EXISTS ${ROLE[$s]}" >/dev/null 2>&1; done
    sql -c "DROP ROLE IF EXISTS $DUMMY" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

ap_wait_ready 60 || { not_ok "server accepts connections"; exit 1; }

# A worker serving the node database would change it between a variant's node and router calls
# (sealing every naptime, processing the batches queued by the matrix): test/run.sh restricts it
# to database postgres; anywhere else, restart with that restriction (and restore at exit).
if [[ $(sql -c "SELECT current_setting('shared_preload_libraries') ~ 'approvals'
                       AND coalesce(current_setting('approvals.database', true), '') = ''") == t ]]; then
    RESTRICTED=1
    if ap_start "approvals.database = 'postgres'" >/dev/null && ap_wait_ready 60; then
        ok "restarted with approvals.database = 'postgres' (no worker in the node database)"
    else
        not_ok "restarted with approvals.database = 'postgres' (no worker in the node database)"
        exit 1
    fi
fi

# --- databases, roles ----------------------------------------------------------------------
# rm_try(query, mode): the outcome of a query as the current role: its SQLSTATE, or 'ok' and
# its row count (mode 'rows': and the first 8 hex digits of the md5 of its rows, sorted).
TRY_FN="CREATE FUNCTION public.rm_try(q text, mode text) RETURNS text LANGUAGE plpgsql AS \$f\$
DECLARE
    n bigint;
    h text;
BEGIN
    EXECUTE format('SELECT count(*), md5(coalesce(string_agg(s::text, %L ORDER BY s::text), %L)) FROM (%s) s',
                   E'\n', '', q) INTO n, h;
    RETURN 'ok' || n || CASE WHEN mode = 'rows' THEN ':' || left(h, 8) ELSE '' END;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
\$f\$"

setup_err=$TMP/setup.txt
if sql -c "CREATE DATABASE $NODE" -c "CREATE DATABASE $ROUTER" >"$setup_err" 2>&1 \
   && sqld "$NODE" -c "SET client_min_messages = warning" -c "CREATE EXTENSION approvals" \
          -c "$TRY_FN" >>"$setup_err" 2>&1 \
   && sqld "$ROUTER" -c "SET client_min_messages = warning" -c "CREATE EXTENSION plproxy" \
          -c "CREATE EXTENSION approvals_router" \
          -c "SELECT approvals_router.set_partitions(ARRAY['host=$AP_PGHOST port=$AP_PGPORT dbname=$NODE'])" \
          -c "$TRY_FN" >>"$setup_err" 2>&1; then
    ok "node database $NODE (approvals) and router database $ROUTER (plproxy, approvals_router, 1 partition)"
else
    not_ok "node database $NODE (approvals) and router database $ROUTER (plproxy, approvals_router, 1 partition)"
    sed 's/^/#   /' "$setup_err"
    exit 1
fi

roles_sql=$TMP/roles.sql
{
    echo "CREATE ROLE ${ROLE[reader]} LOGIN IN ROLE approvals_reader;"
    echo "CREATE ROLE ${ROLE[requester]} LOGIN IN ROLE approvals_requester;"
    echo "CREATE ROLE ${ROLE[reviewer]} LOGIN IN ROLE approvals_reviewer;"
    echo "CREATE ROLE ${ROLE[coordinator]} LOGIN IN ROLE approvals_coordinator;"
    echo "CREATE ROLE ${ROLE[admin]} LOGIN IN ROLE approvals_admin;"
    echo "CREATE ROLE ${ROLE[platform]} LOGIN IN ROLE approvals_platform;"
    echo "CREATE ROLE ${ROLE[none]} LOGIN;"
    echo "CREATE ROLE ${ROLE[tenant]} LOGIN IN ROLE approvals_requester, approvals_reviewer;"
    echo "CREATE ROLE $DUMMY NOLOGIN;"
} >"$roles_sql"
if sql -f "$roles_sql" >"$setup_err" 2>&1; then
    ok "LOGIN roles: one per group role, one with no approvals role, a requester+reviewer for tenant acme"
else
    not_ok "LOGIN roles: one per group role, one with no approvals role, a requester+reviewer for tenant acme"
    sed 's/^/#   /' "$setup_err"
    exit 1
fi

# --- the matrix's variants -----------------------------------------------------------------
# V NAME MODE SETUP QUERY EXPECT
#   MODE   count (success and row count) or rows (also the hash of the rows: reads)
#   SETUP  SQL run on the node as postgres for each role before the matrix (its own targets)
#   QUERY  the call, the same text on node and router
#   EXPECT space-separated short=outcome (outcome: SQLSTATE, okN, ok* = any success), checked
#          on the router's outcome (the node's equals it, or the variant fails anyway)
# Placeholders: %K% the cell's key (unique per variant and role), %R% the role's name, %B% the id
# of the batch whose reference is %K%, %D% the id of the delegation whose comment is %K%,
# %SB% / %SBB% the shared completed batch of the NULL tenant / of tenant bolt, %QA% the shared
# queued batch of acme, %IB% the first inbox claim of the role.
V_NAMES=()
declare -A V_MODE V_SETUP V_QUERY V_EXPECT
V() {
    V_NAMES+=("$1")
    V_MODE[$1]=$2
    V_SETUP[$1]=$3
    V_QUERY[$1]=$4
    V_EXPECT[$1]=$5
}
# setup snippets: a pending claim clm_00%K% of the NULL tenant / acme / bolt (requester
# rm_someone, or the role itself); a pending batch (reference %K%) of such a claim created by
# the coordinator role (only the batch's creator, platform and admin may change a batch);
# one of tenant bolt created by postgres
# shellcheck disable=SC2016  # '$1' is inside double quotes: it expands
claim() { echo "SELECT approvals.submit('rm_doc', '%K%', 'h', actor => '${2:-rm_someone}', id => 'clm_00%K%'${1:+, tenant => '$1'});"; }
batch() {
    claim
    echo "SET ROLE ${ROLE[coordinator]};"
    echo "SELECT approvals.create_batch(ARRAY['clm_00%K%'], start => false, reference => '%K%');"
    echo "RESET ROLE;"
}
batch_bolt() {
    claim bolt
    echo "SELECT approvals.create_batch(ARRAY['clm_00%K%'], coordinator => 'rm_coord', start => false, reference => '%K%', tenant => 'bolt');"
}
NOBODY="reader=42501 none=42501"

# claims
V submit count "" "SELECT * FROM approvals.submit('rm_doc', '%K%_new', 'h')" \
    "requester=ok1 tenant=ok1 platform=ok1 reviewer=42501 admin=42501 $NOBODY"
V submit_tenant_b count "" "SELECT * FROM approvals.submit('rm_doc', '%K%_new', 'h', tenant => 'bolt')" \
    "requester=42501 tenant=42501 platform=ok1"
V submit_tenant_a count "" "SELECT * FROM approvals.submit('rm_doc', '%K%_new', 'h', tenant => 'acme')" \
    "requester=42501 tenant=ok1 platform=ok1"
V submit_actor count "" "SELECT * FROM approvals.submit('rm_doc', '%K%_new', 'h', actor => 'someone_else')" \
    "requester=42501 tenant=42501 platform=ok1"
V submit_bad count "" "SELECT * FROM approvals.submit('rm_doc', '%K%_new', 'h', priority => 'bogus')" \
    "requester=22023 platform=22023 reviewer=42501"
V submit_long count "" "SELECT * FROM approvals.submit('rm_doc', '%K%_new', 'h', note => repeat('x', 2001))" \
    "requester=22001 reviewer=42501"
V decide count "$(claim)" "SELECT * FROM approvals.decide('clm_00%K%', 'approved')" \
    "reviewer=ok1 tenant=ok1 platform=ok1 admin=42501 requester=42501 coordinator=42501 $NOBODY"
V decide_tenant_a count "$(claim acme)" "SELECT * FROM approvals.decide('clm_00%K%', 'approved')" \
    "tenant=ok1 reviewer=42501 platform=ok1"
V decide_tenant_b count "$(claim bolt)" "SELECT * FROM approvals.decide('clm_00%K%', 'rejected')" \
    "tenant=42501 reviewer=42501 platform=ok1"
V decide_actor count "$(claim)" "SELECT * FROM approvals.decide('clm_00%K%', 'approved', actor => 'someone_else')" \
    "reviewer=42501 tenant=42501 platform=ok1"
V decide_stale count "$(claim)" "SELECT * FROM approvals.decide('clm_00%K%', 'approved', snapshot_hash => 'other')" \
    "reviewer=AP001 platform=AP001"
V decide_null count "" "SELECT * FROM approvals.decide(NULL, 'approved')" "reviewer=22004 platform=22004"
V decide_missing count "" "SELECT * FROM approvals.decide('clm_00%K%', 'approved')" \
    "reviewer=P0002 platform=P0002"
V decide_decided count "$(claim)
SELECT approvals.decide('clm_00%K%', 'approved', actor => 'rm_boss');" \
    "SELECT * FROM approvals.decide('clm_00%K%', 'rejected')" "reviewer=55000 platform=55000"
# through a delegation: the claim's route names rm_boss_<cell>, who delegated to the role
V decide_delegated count "SELECT approvals.submit('rm_doc', '%K%', 'h', actor => 'rm_someone', id => 'clm_00%K%',
    approvers => ARRAY['rm_boss_%K%']);
SELECT approvals.delegate('%R%', delegator => 'rm_boss_%K%');" \
    "SELECT * FROM approvals.decide('clm_00%K%', 'approved')" \
    "reviewer=ok1 tenant=ok1 platform=ok1 admin=42501 $NOBODY"
V decide_delegated_tenant_b count "SELECT approvals.submit('rm_doc', '%K%', 'h', actor => 'rm_someone', id => 'clm_00%K%',
    approvers => ARRAY['rm_boss_%K%'], tenant => 'bolt');
SELECT approvals.delegate('%R%', delegator => 'rm_boss_%K%', tenant => 'bolt');" \
    "SELECT * FROM approvals.decide('clm_00%K%', 'approved')" \
    "reviewer=42501 tenant=42501 platform=ok1"
V decide_own count "$(claim '' '%R%')" "SELECT * FROM approvals.decide('clm_00%K%', 'approved')" \
    "reviewer=42501 tenant=42501 platform=42501"
V cancel_claim count "$(claim '' '%R%')" "SELECT * FROM approvals.cancel_claim('clm_00%K%')" \
    "requester=ok1 tenant=ok1 admin=ok1 platform=ok1 reviewer=42501 $NOBODY"
V cancel_claim_other count "$(claim)" "SELECT * FROM approvals.cancel_claim('clm_00%K%')" \
    "requester=42501 admin=ok1"
V cancel_claim_tenant_b count "$(claim bolt '%R%')" "SELECT * FROM approvals.cancel_claim('clm_00%K%')" \
    "requester=42501 tenant=42501 admin=ok1"
V expire_due count "" "SELECT * FROM approvals.expire_due()" \
    "admin=ok1 platform=42501 reviewer=42501 $NOBODY"
# (merchantId is required: 22004 without it)
V api_submit count "" \
    "SELECT * FROM approvals.api_submit('{\"merchantId\": \"acme\", \"resourceType\": \"invoice\", \"resourceId\": \"%K%_new\", \"dataSnapshotHash\": \"h\"}')" \
    "tenant=ok1 platform=ok1 requester=42501 reviewer=42501 $NOBODY"
V api_submit_no_merchant count "" \
    "SELECT * FROM approvals.api_submit('{\"resourceType\": \"invoice\", \"resourceId\": \"%K%_new\", \"dataSnapshotHash\": \"h\"}')" \
    "requester=22004 platform=22004 reviewer=42501"
V api_submit_tenant_b count "" \
    "SELECT * FROM approvals.api_submit('{\"merchantId\": \"bolt\", \"resourceType\": \"invoice\", \"resourceId\": \"%K%_new\", \"dataSnapshotHash\": \"h\"}')" \
    "requester=42501 tenant=42501 platform=ok1"
V api_respond count "$(claim)" "SELECT * FROM approvals.api_respond('clm_00%K%', '{\"outcome\": \"approved\"}')" \
    "reviewer=ok1 tenant=ok1 platform=ok1 admin=42501 $NOBODY"
V api_respond_actor count "$(claim)" \
    "SELECT * FROM approvals.api_respond('clm_00%K%', '{\"outcome\": \"approved\"}', actor => 'someone_else')" \
    "reviewer=42501 platform=ok1"

# batches
V create_batch count "$(claim)" \
    "SELECT * FROM approvals.create_batch(ARRAY['clm_00%K%'], start => false, reference => '%K%_new')" \
    "coordinator=ok1 platform=ok1 reviewer=42501 admin=42501 $NOBODY"
V create_batch_tenant_b count "$(claim bolt)" \
    "SELECT * FROM approvals.create_batch(ARRAY['clm_00%K%'], start => false, tenant => 'bolt')" \
    "coordinator=42501 platform=ok1"
V create_batch_actor count "$(claim)" \
    "SELECT * FROM approvals.create_batch(ARRAY['clm_00%K%'], coordinator => 'someone_else', start => false)" \
    "coordinator=42501 platform=ok1"
V create_batch_dup count "" "SELECT * FROM approvals.create_batch(ARRAY['clm_00%K%', 'clm_00%K%'], start => false)" \
    "coordinator=22023 platform=22023"
V update_batch count "$(batch)" "SELECT * FROM approvals.update_batch('%B%', comment => 'changed')" \
    "coordinator=ok1 platform=ok1 reviewer=42501 $NOBODY"
V update_batch_other count "$(claim)
SELECT approvals.create_batch(ARRAY['clm_00%K%'], coordinator => 'rm_coord', start => false, reference => '%K%');" \
    "SELECT * FROM approvals.update_batch('%B%', comment => 'changed')" "coordinator=42501 platform=ok1"
V update_batch_tenant_b count "$(batch_bolt)" "SELECT * FROM approvals.update_batch('%B%', comment => 'changed')" \
    "coordinator=42501 platform=ok1"
V start_batch count "$(batch)" "SELECT * FROM approvals.start_batch('%B%')" \
    "coordinator=ok1 platform=ok1 admin=42501 $NOBODY"
V start_batch_confirm_bad count "$(batch)" "SELECT * FROM approvals.start_batch('%B%', confirm_claim_ids => ARRAY['nope'])" \
    "coordinator=AP002 platform=AP002"
V process_batch count "$(batch)" "SELECT * FROM approvals.process_batch('%B%')" \
    "coordinator=ok1 platform=ok1 reviewer=42501 $NOBODY"
V cancel_batch count "$(batch)" "SELECT * FROM approvals.cancel_batch('%B%')" \
    "coordinator=ok1 platform=ok1 admin=42501 $NOBODY"
V cancel_batch_done rows "" "SELECT * FROM approvals.cancel_batch('%SB%')" \
    "coordinator=42501 platform=55000"
V batch_results rows "" "SELECT * FROM approvals.batch_results('%SB%')" \
    "reader=ok2 coordinator=ok2 tenant=ok2 none=42501"
V batch_results_tenant_b rows "" "SELECT * FROM approvals.batch_results('%SBB%')" \
    "platform=ok2 admin=ok2 tenant=42501 reader=42501"
V list_batches rows "" "SELECT * FROM approvals.list_batches(page_limit => 1000)" \
    "reader=ok* platform=ok* none=42501"
V list_batches_page_2 rows "" "SELECT * FROM approvals.list_batches(page => 2, page_limit => 7)" \
    "reader=ok7 platform=ok7 none=42501"
V list_batches_null_limit rows "" "SELECT * FROM approvals.list_batches(page => NULL, page_limit => NULL)" \
    "reader=ok* none=42501"
V list_batches_coordinator rows "" "SELECT * FROM approvals.list_batches(coordinator => 'rm_coord')" \
    "reader=ok* platform=ok* none=42501"
V list_batches_bad rows "" "SELECT * FROM approvals.list_batches(page => 0)" "reader=22023"
V list_batches_limit_0 rows "" "SELECT * FROM approvals.list_batches(page_limit => 0)" "reader=22023"
V get_batch rows "" "SELECT * FROM approvals.get_batch('%SB%')" "reader=ok1 tenant=ok1 none=42501"
V get_batch_tenant_b rows "" "SELECT * FROM approvals.get_batch('%SBB%')" "platform=ok1 tenant=42501"
V get_batch_tenant_a rows "" "SELECT * FROM approvals.get_batch('%QA%')" "tenant=ok1 platform=ok1 reader=42501"
V get_batch_missing rows "" "SELECT * FROM approvals.get_batch('bat_00nope')" "reader=P0002"
V get_batch_null rows "" "SELECT * FROM approvals.get_batch(NULL)" "reader=22004"
V wait_batch rows "" "SELECT * FROM approvals.wait_batch('%SB%', '0.2 s')" \
    "coordinator=ok1 platform=ok1 reader=42501 none=42501"
V wait_batch_tenant_b rows "" "SELECT * FROM approvals.wait_batch('%SBB%', '0.2 s')" \
    "platform=ok1 coordinator=42501"
V purge_batches rows "" "SELECT * FROM approvals.purge_batches('100 years')" \
    "admin=ok1 coordinator=42501 $NOBODY"
V purge_batches_null rows "" "SELECT * FROM approvals.purge_batches(NULL)" "admin=22004 coordinator=42501"

# policies, handlers, tenants
V set_policy count "" "SELECT * FROM approvals.set_policy(resource_type => '%K%', required_approvals => 2)" \
    "admin=ok1 platform=42501 $NOBODY"
V set_policy_bad count "" "SELECT * FROM approvals.set_policy(resource_type => '%K%', on_expiry => 'bogus')" \
    "admin=22023 platform=42501"
V drop_policy count "SELECT approvals.set_policy(resource_type => '%K%');" \
    "SELECT * FROM approvals.drop_policy(resource_type => '%K%')" "admin=ok1 platform=42501 $NOBODY"
V set_handler count "" \
    "SELECT * FROM approvals.set_handler('%K%', 'public.rm_handler(approvals.claims, approvals.events)')" \
    "admin=ok1 platform=42501 $NOBODY"
V grant_tenant count "" "SELECT * FROM approvals.grant_tenant('%K%', '$DUMMY')" \
    "admin=ok1 platform=42501 $NOBODY"
V revoke_tenant count "SELECT approvals.grant_tenant('%K%', '$DUMMY');" \
    "SELECT * FROM approvals.revoke_tenant('%K%', '$DUMMY')" "admin=ok1 platform=42501 $NOBODY"

# delegation, inbox
V delegate count "" "SELECT * FROM approvals.delegate('%K%_deputy')" \
    "reviewer=ok1 tenant=ok1 platform=ok1 requester=42501 admin=42501 $NOBODY"
V delegate_actor count "" "SELECT * FROM approvals.delegate('%K%_deputy', delegator => 'someone_else')" \
    "reviewer=42501 tenant=42501 platform=ok1"
V delegate_tenant_b count "" "SELECT * FROM approvals.delegate('%K%_deputy', tenant => 'bolt')" \
    "reviewer=42501 tenant=42501 platform=ok1"
V delegate_bad count "" "SELECT * FROM approvals.delegate('%K%_deputy', valid_until => now() - interval '1 day')" \
    "reviewer=22023 platform=22023"
V revoke_delegation count "SELECT approvals.delegate('%K%_deputy', delegator => '%R%', comment => '%K%');" \
    "SELECT * FROM approvals.revoke_delegation('%D%')" \
    "reviewer=ok1 tenant=ok1 admin=ok1 platform=ok1 requester=42501 $NOBODY"
V revoke_delegation_other count "SELECT approvals.delegate('%K%_deputy', delegator => 'rm_boss', comment => '%K%');" \
    "SELECT * FROM approvals.revoke_delegation('%D%')" "reviewer=42501 admin=ok1"
V inbox rows "" "SELECT * FROM approvals.inbox()" \
    "reviewer=ok2 tenant=ok3 platform=ok4 admin=42501 $NOBODY"
V inbox_actor rows "" "SELECT * FROM approvals.inbox(actor => '${ROLE[tenant]}')" \
    "reviewer=42501 tenant=ok3 platform=ok*"
V inbox_after rows "" "SELECT * FROM approvals.inbox(after => '%IB%')" \
    "reviewer=ok0 tenant=ok1 platform=ok2"
# page_limit out of 1..1000 (22023 on a node); NULL (22004 on a node)
V inbox_limit_1 rows "" "SELECT * FROM approvals.inbox(page_limit => 1)" "reviewer=ok1 tenant=ok1 platform=ok1"
V inbox_limit_null rows "" "SELECT * FROM approvals.inbox(page_limit => NULL)" "reviewer=22004 admin=42501"
V inbox_limit_0 rows "" "SELECT * FROM approvals.inbox(page_limit => 0)" "reviewer=22023"
V inbox_limit_negative rows "" "SELECT * FROM approvals.inbox(page_limit => -1)" "reviewer=22023"
V inbox_limit_1001 rows "" "SELECT * FROM approvals.inbox(page_limit => 1001)" "reviewer=22023"

# audit, statistics
V seal_audit count "" "SELECT * FROM approvals.seal_audit()" "admin=ok1 platform=42501 $NOBODY"
V verify_audit rows "" "SELECT * FROM approvals.verify_audit()" "reader=ok* admin=ok* none=42501"
V verify_audit_range rows "" "SELECT * FROM approvals.verify_audit(1, 1)" "reader=ok1 none=42501"
V audit_head rows "" "SELECT * FROM approvals.audit_head()" "reader=ok1 none=42501"
V claim_stats rows "" "SELECT * FROM approvals.claim_stats()" "reader=ok* platform=ok* none=42501"
V claim_stats_null rows "" "SELECT * FROM approvals.claim_stats(since => NULL)" "reader=ok* none=42501"
V claim_stats_tenant_b rows "" "SELECT * FROM approvals.claim_stats(tenant => 'bolt')" "platform=ok*"
V approver_stats rows "" "SELECT * FROM approvals.approver_stats()" "reader=ok* platform=ok* none=42501"
V approver_stats_tenant_b rows "" "SELECT * FROM approvals.approver_stats(tenant => 'bolt')" "platform=ok*"

# the JSON layer
V api_list_batches rows "" "SELECT * FROM approvals.api_list_batches(1, 1000)" "reader=ok1 none=42501"
V api_list_batches_page_2 rows "" "SELECT * FROM approvals.api_list_batches(2, 7)" "reader=ok1 none=42501"
V api_list_batches_null rows "" "SELECT * FROM approvals.api_list_batches(NULL, NULL)" "reader=ok1 none=42501"
V api_list_batches_bad rows "" "SELECT * FROM approvals.api_list_batches(1, 0)" "reader=22023 none=42501"
V api_get_batch rows "" "SELECT * FROM approvals.api_get_batch('%SB%')" "reader=ok1 none=42501"
V api_get_batch_tenant_b rows "" "SELECT * FROM approvals.api_get_batch('%SBB%')" "platform=ok1 tenant=42501"
V api_batch_statistics rows "" "SELECT * FROM approvals.api_batch_statistics('%SB%')" "reader=ok1 none=42501"
V api_create_batch count "$(claim)" \
    "SELECT * FROM approvals.api_create_batch(jsonb_build_object('claim_ids', jsonb_build_array('clm_00%K%'), 'comment', 'c'))" \
    "coordinator=ok1 platform=ok1 reviewer=42501 $NOBODY"
V api_create_batch_actor count "$(claim)" \
    "SELECT * FROM approvals.api_create_batch(jsonb_build_object('claim_ids', jsonb_build_array('clm_00%K%'), 'coordinator_id', 'someone_else'))" \
    "coordinator=42501 platform=ok1"
V api_update_batch count "$(batch)" "SELECT * FROM approvals.api_update_batch('%B%', '{\"comment\": \"changed\"}')" \
    "coordinator=ok1 platform=ok1 $NOBODY"
V api_cancel_batch count "$(batch)" "SELECT * FROM approvals.api_cancel_batch('%B%')" \
    "coordinator=ok1 platform=ok1 $NOBODY"
V api_approve_file count "$(batch)" \
    "SELECT * FROM approvals.api_approve_file(jsonb_build_object('file_id', '%B%', 'transactions', jsonb_build_array('clm_00%K%')))" \
    "coordinator=ok1 platform=ok1 $NOBODY"
V api_approve_file_bad count "$(batch)" \
    "SELECT * FROM approvals.api_approve_file(jsonb_build_object('file_id', '%B%', 'transactions', jsonb_build_array('nope')))" \
    "coordinator=AP002"
V api_process_batch count "$(batch)" "SELECT * FROM approvals.api_process_batch('%B%')" \
    "coordinator=ok1 platform=ok1 $NOBODY"

# the router's views
for v in claims events batches batch_items delegations policies; do
    V "view_$v" rows "" "SELECT * FROM approvals.$v" "reader=ok* platform=ok* none=42501"
done
# audit_seals: the columns of API.md (the router's view has no column digests)
V view_audit_seals rows "" \
    "SELECT id, first_event, last_event, event_count, prev_hash, hash, sealed_at FROM approvals.audit_seals" \
    "reader=ok* platform=ok* none=42501"
# batch_progress: without the columns computed from now()
V view_batch_progress rows "" \
    "SELECT batch_id, status, processed_count, total_claims, worker_pid, attempts FROM approvals.batch_progress" \
    "reader=ok* platform=ok* none=42501"

# --- data on the node (as postgres) --------------------------------------------------------
data_sql=$TMP/data.sql
{
    echo "SET client_min_messages = warning;"
    # a handler's owner is the one who may set it: the admin role
    echo "CREATE FUNCTION public.rm_handler(c approvals.claims, e approvals.events) RETURNS void
          LANGUAGE sql AS 'SELECT NULL';"
    echo "ALTER FUNCTION public.rm_handler(approvals.claims, approvals.events) OWNER TO ${ROLE[admin]};"
    echo "SELECT approvals.grant_tenant('acme', '${ROLE[tenant]}');"
    # claims of each tenant, some decided (statistics, events)
    for t in NULL "'acme'" "'bolt'"; do
        tag=${t//\'/}
        echo "SELECT count(*) FROM (SELECT approvals.submit('rm_misc', '${RUN}_${tag}_' || g, 'h', tenant => $t,
              actor => 'rm_someone', id => 'clm_00${RUN}_${tag}_' || g) FROM generate_series(1, 6) g) s;"
        echo "SELECT count(*) FROM (SELECT approvals.decide('clm_00${RUN}_${tag}_' || g,
              CASE WHEN g % 2 = 0 THEN 'approved' ELSE 'rejected' END, actor => 'rm_boss')
              FROM generate_series(1, 3) g) s;"
    done
    # inbox: for each role, 2 claims of the NULL tenant (normal, high), 1 of acme, 1 of bolt
    i=0
    for s in "${SHORTS[@]}"; do
        for n in 1 2 3 4; do
            case $n in 1|2) t=NULL ;; 3) t="'acme'" ;; 4) t="'bolt'" ;; esac
            pri=normal; [[ $n == 2 ]] && pri=high
            echo "SELECT approvals.submit('rm_inbox', '${RUN}_ib_${i}_$n', 'h', tenant => $t, actor => 'rm_someone',
                  approvers => ARRAY['${ROLE[$s]}'], priority => '$pri', id => 'clm_00${RUN}_ib_${i}_$n');"
        done
        i=$((i + 1))
    done
    # shared batches: completed, of the NULL tenant and of bolt (two claims each)
    for t in NULL "'bolt'"; do
        tag=${t//\'/}
        echo "SELECT approvals.submit('rm_doc', '${RUN}_sb_${tag}_' || g, 'h', tenant => $t, actor => 'rm_someone',
              id => 'clm_00${RUN}_sb_${tag}_' || g) FROM generate_series(1, 2) g;"
        echo "SELECT approvals.create_batch(ARRAY['clm_00${RUN}_sb_${tag}_1', 'clm_00${RUN}_sb_${tag}_2'],
              coordinator => 'rm_coord', start => false, tenant => $t, reference => '${RUN}_shared_$tag');"
        echo "SELECT count(*) FROM approvals.process_batch((SELECT id FROM approvals.batches
              WHERE reference = '${RUN}_shared_$tag'));"
    done
    # a queued batch of each tenant (batch_progress, list_batches; no worker serves this database)
    for t in NULL "'acme'" "'bolt'"; do
        tag=${t//\'/}
        echo "SELECT approvals.submit('rm_doc', '${RUN}_qb_$tag', 'h', tenant => $t, actor => 'rm_someone',
              id => 'clm_00${RUN}_qb_$tag');"
        echo "SELECT approvals.create_batch(ARRAY['clm_00${RUN}_qb_$tag'], coordinator => 'rm_coord',
              tenant => $t, reference => '${RUN}_queued_$tag');"
    done
    # delegations and a policy
    echo "SELECT approvals.delegate('rm_deputy', delegator => 'rm_boss');"
    echo "SELECT approvals.delegate('rm_deputy', delegator => 'rm_boss', tenant => 'bolt');"
    echo "SELECT approvals.set_policy(resource_type => '${RUN}_pol', required_approvals => 2);"
    echo "SELECT approvals.seal_audit();"
    # every variant's own targets, one per role
    for v in "${V_NAMES[@]}"; do
        [[ -z ${V_SETUP[$v]} ]] && continue
        for s in "${SHORTS[@]}"; do
            k=${RUN}_${v}_$s
            r=${ROLE[$s]}
            printf '%s\n' "${V_SETUP[$v]}" | sed -e "s/%K%/$k/g" -e "s/%R%/$r/g"
        done
    done
} >"$data_sql"
if sqld "$NODE" -f "$data_sql" >"$setup_err" 2>&1; then
    ok "data on the node: claims of the NULL tenant, acme and bolt, batches, delegations, every cell's own targets"
else
    not_ok "data on the node: claims of the NULL tenant, acme and bolt, batches, delegations, every cell's own targets"
    sed 's/^/#   /' "$setup_err" | head -n 20
    exit 1
fi
declare -A BID DID
while IFS='|' read -r ref id; do BID[$ref]=$id; done \
    < <(sqld "$NODE" -c "SELECT reference, id FROM approvals.batches WHERE reference IS NOT NULL")
while IFS='|' read -r ref id; do DID[$ref]=$id; done \
    < <(sqld "$NODE" -c "SELECT comment, id FROM approvals.delegations WHERE comment IS NOT NULL")

# --- the matrix ----------------------------------------------------------------------------
# cell_query VARIANT SHORT: the variant's query for that role, placeholders filled in
cell_query() {
    local v=$1 s=$2 i k q
    k=${RUN}_${v}_$s
    for i in "${!SHORTS[@]}"; do [[ ${SHORTS[i]} == "$s" ]] && break; done
    q=${V_QUERY[$v]}
    q=${q//%K%/$k}
    q=${q//%R%/${ROLE[$s]}}
    q=${q//%B%/${BID[$k]:-bat_00missing}}
    q=${q//%D%/${DID[$k]:-dlg_00missing}}
    q=${q//%SBB%/${BID[${RUN}_shared_bolt]}}
    q=${q//%SB%/${BID[${RUN}_shared_NULL]}}
    q=${q//%QA%/${BID[${RUN}_queued_acme]}}
    q=${q//%IB%/clm_00${RUN}_ib_${i}_1}
    printf '%s' "$q"
}
# run_cells DB VARIANT OUT: the variant's 8 cells on DB, each in BEGIN; SET ROLE; ...; ROLLBACK;
# OUT gets "short|outcome" lines
run_cells() {
    local db=$1 v=$2 out=$3 s script
    script=$TMP/cells.sql
    {
        echo "SET client_min_messages = error;"
        for s in "${SHORTS[@]}"; do
            printf "BEGIN;\nSET LOCAL ROLE %s;\nSELECT '%s', public.rm_try(\$rm_q\$%s\$rm_q\$, '%s');\nROLLBACK;\n" \
                "${ROLE[$s]}" "$s" "$(cell_query "$v" "$s")" "${V_MODE[$v]}"
        done
    } >"$script"
    sqld "$db" -f "$script" >"$out" 2>>"$TMP/cells_err.txt"
}

declare -A ON_NODE ON_ROUTER
TM=$SECONDS
for v in "${V_NAMES[@]}"; do
    # the node's outcomes first (rolled back), then the router's (committed on the node)
    run_cells "$NODE" "$v" "$TMP/node.txt"
    run_cells "$ROUTER" "$v" "$TMP/router.txt"
    while IFS='|' read -r s o; do ON_NODE[$v:$s]=$o; done <"$TMP/node.txt"
    while IFS='|' read -r s o; do ON_ROUTER[$v:$s]=$o; done <"$TMP/router.txt"
done
MATRIX_S=$((SECONDS - TM))

# same A B: two outcomes are the same (SQLSTATE, or success, row count and hash of the rows)
same() { [[ -n $1 && $1 == "$2" ]]; }
# matches OUTCOME PATTERN: okN matches okN and okN:hash; ok* any success
matches() { [[ $1 == "$2" || $1 == "$2":* || ($2 == 'ok*' && $1 == ok*) ]]; }

printf '# %-26s' "variant (node/router)"
printf ' %-11s' "${SHORTS[@]}"
echo
for v in "${V_NAMES[@]}"; do
    bad=()
    shown=
    line=$(printf '%-26s' "$v")
    for s in "${SHORTS[@]}"; do
        n=${ON_NODE[$v:$s]:-missing}
        r=${ON_ROUTER[$v:$s]:-missing}
        if same "$n" "$r"; then
            line+=$(printf ' %-11s' "${r%%:*}")
        else
            line+=$(printf ' %-11s' "${n%%:*}/${r%%:*}!")
            bad+=("$s: node $n, router $r")
            if [[ $n == ok* && $r == ok* && ${V_MODE[$v]} == rows && -z ${shown:-} ]]; then
                # the same rows, different contents: show how (a read, so running it again is harmless)
                q=$(cell_query "$v" "$s")
                diff <(sqld "$NODE" -c "SET ROLE ${ROLE[$s]}" -c "$q" 2>&1 | sort | sed 's/, /,\n/g') \
                     <(sqld "$ROUTER" -c "SET client_min_messages = error" -c "SET ROLE ${ROLE[$s]}" -c "$q" 2>&1 \
                       | sort | sed 's/, /,\n/g') \
                    | head -n 6 | cut -c1-300 >"$TMP/diff.txt"
                while IFS= read -r d; do bad+=("  $d"); done <"$TMP/diff.txt"
                shown=1
            fi
        fi
    done
    for e in ${V_EXPECT[$v]}; do
        s=${e%%=*}
        matches "${ON_ROUTER[$v:$s]:-missing}" "${e#*=}" \
            || bad+=("$s: expected ${e#*=}, router ${ON_ROUTER[$v:$s]:-missing}")
    done
    echo "# $line"
    if [[ ${#bad[@]} -eq 0 ]]; then
        ok "$v: node and router agree for all ${#SHORTS[@]} roles (${V_EXPECT[$v]})"
    else
        not_ok "$v: node and router agree for all ${#SHORTS[@]} roles (${V_EXPECT[$v]})"
        printf '#   %s\n' "${bad[@]}"
        printf '#   query: %s\n' "$(cell_query "$v" "${SHORTS[0]}")"
    fi
done
if [[ -s $TMP/cells_err.txt ]]; then
    not_ok "every cell ran (psql errors outside the calls)"
    sed 's/^/#   /' "$TMP/cells_err.txt" | head -n 10
fi

# --- the matrix covers the router's API ----------------------------------------------------
all_queries=$(printf '%s\n' "${V_QUERY[@]}")
missing=()
while read -r f; do
    grep -q "approvals\.$f\b" <<<"$all_queries" || missing+=("$f")
done < <(sqld "$ROUTER" -c "SELECT DISTINCT p.proname FROM pg_proc p
                            WHERE p.pronamespace = 'approvals'::regnamespace AND p.prokind = 'f'
                            UNION ALL
                            SELECT c.relname FROM pg_class c
                            WHERE c.relnamespace = 'approvals'::regnamespace AND c.relkind = 'v'")
n_api=$(sqld "$ROUTER" -c "SELECT (SELECT count(DISTINCT proname) FROM pg_proc
                                   WHERE pronamespace = 'approvals'::regnamespace AND prokind = 'f')
                                  + (SELECT count(*) FROM pg_class
                                     WHERE relnamespace = 'approvals'::regnamespace AND relkind = 'v')")
if [[ ${#missing[@]} -eq 0 && ${n_api:-0} -ge 40 ]]; then   # 45 in 0.2.0
    ok "the matrix calls every function and view of schema approvals on the router ($n_api, in ${#V_NAMES[@]} variants)"
else
    not_ok "the matrix calls every function and view of schema approvals on the router ($n_api; missing: ${missing[*]})"
fi

# --- the comparison tells roles apart (negative checks) -------------------------------------
if ! same "${ON_NODE[decide:reviewer]:-}" "${ON_ROUTER[decide:admin]:-}" \
   && same "${ON_NODE[decide:admin]:-}" "${ON_ROUTER[decide:admin]:-}"; then
    ok "negative: decide as reviewer on the node (${ON_NODE[decide:reviewer]:-}) differs from decide as admin through the router (${ON_ROUTER[decide:admin]:-})"
else
    not_ok "negative: decide as reviewer on the node (${ON_NODE[decide:reviewer]:-}) differs from decide as admin through the router (${ON_ROUTER[decide:admin]:-})"
fi
if ! same "${ON_NODE[view_claims:reader]:-}" "${ON_ROUTER[view_claims:tenant]:-}" \
   && ! same "${ON_ROUTER[view_claims:tenant]:-}" "${ON_ROUTER[view_claims:platform]:-}"; then
    ok "negative: the claims a reader sees on the node differ from the tenant role's through the router, and the tenant role's from the platform's (${ON_NODE[view_claims:reader]:-}, ${ON_ROUTER[view_claims:tenant]:-}, ${ON_ROUTER[view_claims:platform]:-})"
else
    not_ok "negative: the claims a reader sees on the node differ from the tenant role's through the router, and the tenant role's from the platform's (${ON_NODE[view_claims:reader]:-}, ${ON_ROUTER[view_claims:tenant]:-}, ${ON_ROUTER[view_claims:platform]:-})"
fi

# --- tenant isolation through the router -----------------------------------------------------
# as_role DB SHORT SQL: run SQL as that role
as_role() { sqld "$1" -c "SET client_min_messages = error" -c "SET ROLE ${ROLE[$2]}" -c "$3" 2>&1; }
count_by_tenant="SELECT count(*) FILTER (WHERE tenant IS NULL) || ' ' || count(*) FILTER (WHERE tenant = 'acme')
                        || ' ' || count(*) FILTER (WHERE tenant = 'bolt') FROM approvals.claims"
all_counts=$(sqld "$NODE" -c "$count_by_tenant")
read -r c_null c_acme c_bolt <<<"$all_counts"
check "through the router the tenant role sees the NULL tenant's and acme's claims, none of bolt's" \
    "$c_null $c_acme 0" "$(as_role "$ROUTER" tenant "$count_by_tenant")"
check "through the router a reader sees the NULL tenant's claims only" \
    "$c_null 0 0" "$(as_role "$ROUTER" reader "$count_by_tenant")"
check "through the router the platform role sees every tenant's claims" \
    "$c_null $c_acme $c_bolt" "$(as_role "$ROUTER" platform "$count_by_tenant")"
check "the tenant role may not read bolt's batch: 42501 on the node and through the router" \
    "42501 42501" \
    "${ON_NODE[get_batch_tenant_b:tenant]:-} ${ON_ROUTER[get_batch_tenant_b:tenant]:-}"

# --- the actor rule through the router --------------------------------------------------------
actor_cells=()
for v in submit_actor decide_actor api_respond_actor create_batch_actor api_create_batch_actor delegate_actor; do
    actor_cells+=("$v: reviewer/requester/coordinator ${ON_ROUTER[$v:reviewer]:-}/${ON_ROUTER[$v:requester]:-}/${ON_ROUTER[$v:coordinator]:-}, tenant ${ON_ROUTER[$v:tenant]:-}, platform ${ON_ROUTER[$v:platform]:-}")
done
actor_ok=1
for v in submit_actor decide_actor api_respond_actor create_batch_actor api_create_batch_actor delegate_actor; do
    for s in reader requester reviewer coordinator admin none tenant; do
        [[ ${ON_ROUTER[$v:$s]:-} == 42501 ]] || actor_ok=
    done
    [[ ${ON_ROUTER[$v:platform]:-} == ok1* ]] || actor_ok=
done
if [[ -n $actor_ok ]]; then
    ok "actor rule through the router: actor => 'someone_else' is 42501 for every role but platform, which may"
else
    not_ok "actor rule through the router: actor => 'someone_else' is 42501 for every role but platform, which may"
    printf '#   %s\n' "${actor_cells[@]}"
fi

# --- identity: the node records the calling role ----------------------------------------------
ev() { sqld "$NODE" -c "SELECT string_agg(actor || coalesce('/' || on_behalf_of, ''), ',' ORDER BY id)
                        FROM approvals.events WHERE claim_id = 'clm_00${RUN}_$1' AND action = '$2'"; }
check "a decision through the router as the reviewer role records actor = that role, once (the direct call was rolled back)" \
    "${ROLE[reviewer]}" "$(ev decide_reviewer approved)"
check "a decision through the router as the tenant role records actor = that role, once" \
    "${ROLE[tenant]}" "$(ev decide_tenant_a_tenant approved)"
check "a decision through the router as platform with actor => 'someone_else' records someone_else" \
    "someone_else" "$(ev decide_actor_platform approved)"
check "a decision through the router through a delegation records actor = the delegate role, on behalf of the delegator" \
    "${ROLE[reviewer]}/rm_boss_${RUN}_decide_delegated_reviewer" "$(ev decide_delegated_reviewer approved)"
check "api_respond through the router as the reviewer role records actor = that role" \
    "${ROLE[reviewer]}" "$(ev api_respond_reviewer approved)"
check "cancel_claim through the router as admin records actor = the admin role" \
    "${ROLE[admin]}" "$(ev cancel_claim_other_admin cancelled)"
check "a claim submitted through the router as the requester role has requester = that role (one claim)" \
    "${ROLE[requester]}|pending" \
    "$(sqld "$NODE" -c "SELECT string_agg(requester || '|' || status, ',') FROM approvals.claims
                        WHERE resource_id = '${RUN}_submit_requester_new'")"
check "a batch created through the router as the coordinator role has coordinator = that role" \
    "${ROLE[coordinator]}" \
    "$(sqld "$NODE" -c "SELECT string_agg(coordinator, ',') FROM approvals.batches
                        WHERE reference = '${RUN}_create_batch_coordinator_new'")"
check "a delegation made through the router as the reviewer role has delegator and creator = that role" \
    "${ROLE[reviewer]}|${ROLE[reviewer]}" \
    "$(sqld "$NODE" -c "SELECT string_agg(delegator || '|' || created_by, ',') FROM approvals.delegations
                        WHERE delegate = '${RUN}_delegate_reviewer_deputy'")"
check "no event of this run's cells was recorded as postgres" "0" \
    "$(sqld "$NODE" -c "SELECT count(*) FROM approvals.events WHERE actor = 'postgres'")"

# --- run_queued through the router ----------------------------------------------------------
rq() {
    sqld "$ROUTER" -v VERBOSITY=sqlstate -c "SET client_min_messages = error" \
        -c "SET ROLE ${ROLE[$1]}" -c "CALL approvals.run_queued()" 2>&1 | grep -oE '[0-9A-Z]{5}' | tail -n 1
}
check "CALL approvals.run_queued() through the router is 0A000 (coordinator, admin, platform); 42501 without a role" \
    "0A000 0A000 0A000 42501" "$(rq coordinator) $(rq admin) $(rq platform) $(rq none)"

echo "# 76_router_matrix: ${#V_NAMES[@]} variants x ${#SHORTS[@]} roles x (node, router) in $MATRIX_S s; $N tests, $FAILS failed, $((SECONDS - T0)) s"
echo "1..$N"
exit $((FAILS > 0))
