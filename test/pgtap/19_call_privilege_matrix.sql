-- 19_call_privilege_matrix: every function and procedure of schema approvals, called
-- as a member of each group role, as a role with no approvals role and as a role
-- that is a member of nothing (what PUBLIC gets), is allowed or refused with
-- 42501 exactly as the README's "Roles and tenants" table says.
--
-- * The expected matrix (pm_matrix) is written by hand from the README, not
--   computed from the grants. A role has what its row says plus what the roles
--   it is a member of have: requester, reviewer, coordinator and admin are
--   members of reader; platform is a member of requester, reviewer and
--   coordinator (and reader); "PUBLIC gets nothing".
-- * "allowed" = the call does not raise 42501 (it may raise something else);
--   "denied" = it raises 42501.
-- * Pass 1 calls through the real grants. Pass 2 then grants USAGE on the schema
--   and EXECUTE on every routine directly to every test role and calls again:
--   every cell the README denies must still be 42501, from the function's own
--   role check in C (the helpers, which the README lists without a role, are
--   not part of pass 2: they have no role check and rely on the grants alone).
-- * A catalog check fails when schema approvals has a function or procedure
--   that the matrix does not list (or an overload: the matrix keys on names).
--
-- Each call runs in its own subtransaction that is always rolled back, so the
-- calls do not affect each other; the whole file is rolled back at the end.
-- Calls pass no actor/coordinator: they act as the calling role's name.
--
-- Adding a function: one row in pm_matrix, one in pm_calls, and the plan grows
-- by 8 (pass 1) + the number of its "denied" cells if its basis is the role
-- table (pass 2).
BEGIN;
SELECT plan(648);

-- ---------------------------------------------------------------------------
-- Roles
-- ---------------------------------------------------------------------------
-- pm_public is a member of nothing: it stands for PUBLIC. The other test roles
-- are members of it, so that the fixture batches (created_by = pm_public) and
-- the tenant grant pm_t (to pm_public) reach every test role: a refusal then
-- comes from the role check, never from batch ownership or tenant isolation.
CREATE ROLE pm_public;
CREATE ROLE pm_unrelated;                                  -- a group that has nothing to do with approvals
CREATE ROLE pm_norole      IN ROLE pm_unrelated, pm_public; -- login-less, no approvals role
CREATE ROLE pm_reader      IN ROLE approvals_reader, pm_public;
CREATE ROLE pm_requester   IN ROLE approvals_requester, pm_public;
CREATE ROLE pm_reviewer    IN ROLE approvals_reviewer, pm_public;
CREATE ROLE pm_coordinator IN ROLE approvals_coordinator, pm_public;
CREATE ROLE pm_admin       IN ROLE approvals_admin, pm_public;
CREATE ROLE pm_platform    IN ROLE approvals_platform, pm_public;

-- The matrix's columns and the test role that stands for each.
CREATE TEMP TABLE pm_roles (pos int PRIMARY KEY, label text NOT NULL, test_role name NOT NULL);
INSERT INTO pm_roles VALUES
    (1, 'approvals_reader',      'pm_reader'),
    (2, 'approvals_requester',   'pm_requester'),
    (3, 'approvals_reviewer',    'pm_reviewer'),
    (4, 'approvals_coordinator', 'pm_coordinator'),
    (5, 'approvals_admin',       'pm_admin'),
    (6, 'approvals_platform',    'pm_platform'),
    (7, 'no approvals role',     'pm_norole'),
    (8, 'PUBLIC (member of nothing)', 'pm_public');

-- ---------------------------------------------------------------------------
-- The expected matrix, from the README
-- ---------------------------------------------------------------------------
-- basis 'role table': the function is named in the README's role table.
-- basis 'helper': listed in the README's table of helpers ("callable") without
--   saying by whom; expected: the six group roles may call it (what is granted
--   today; sees_all_tenants/visible_tenants must be callable by every reader, as
--   the row-level security policies call them), PUBLIC and no role may not.
-- basis 'trigger': events_append_only, the trigger function of approvals.events;
--   nobody calls it directly (no EXECUTE for anyone today).
-- basis 'internal': claim_row_unlocked, called by the batch chunks as the
--   extension's owner; the README says no role may call it.
CREATE TEMP TABLE pm_matrix (
    ord         serial,
    fn          text PRIMARY KEY,
    basis       text NOT NULL CHECK (basis IN ('role table', 'helper', 'trigger', 'internal')),
    reader      text NOT NULL, requester text NOT NULL, reviewer text NOT NULL,
    coordinator text NOT NULL, admin     text NOT NULL, platform text NOT NULL,
    norole      text NOT NULL, public    text NOT NULL);
INSERT INTO pm_matrix (fn, basis, reader, requester, reviewer, coordinator, admin, platform, norole, public) VALUES
--                                    reader     requester  reviewer   coordinator admin     platform   no role   PUBLIC
    -- approvals_requester: submit, api_submit, cancel_claim (own claims); admin: cancel_claim (any)
    ('submit',             'role table', 'denied',  'allowed', 'denied',  'denied',  'denied',  'allowed', 'denied', 'denied'),
    ('api_submit',         'role table', 'denied',  'allowed', 'denied',  'denied',  'denied',  'allowed', 'denied', 'denied'),
    ('cancel_claim',       'role table', 'denied',  'allowed', 'denied',  'denied',  'allowed', 'allowed', 'denied', 'denied'),
    -- approvals_reviewer: decide, api_respond, delegate, revoke_delegation, inbox (inbox_key, inbox_after); admin: revoke_delegation (any)
    ('decide',             'role table', 'denied',  'denied',  'allowed', 'denied',  'denied',  'allowed', 'denied', 'denied'),
    ('api_respond',        'role table', 'denied',  'denied',  'allowed', 'denied',  'denied',  'allowed', 'denied', 'denied'),
    ('delegate',           'role table', 'denied',  'denied',  'allowed', 'denied',  'denied',  'allowed', 'denied', 'denied'),
    ('revoke_delegation',  'role table', 'denied',  'denied',  'allowed', 'denied',  'allowed', 'allowed', 'denied', 'denied'),
    ('inbox',              'role table', 'denied',  'denied',  'allowed', 'denied',  'denied',  'allowed', 'denied', 'denied'),
    ('inbox_key',          'role table', 'denied',  'denied',  'allowed', 'denied',  'denied',  'allowed', 'denied', 'denied'),
    ('inbox_after',        'role table', 'denied',  'denied',  'allowed', 'denied',  'denied',  'allowed', 'denied', 'denied'),
    -- approvals_coordinator: create/update/start/process/cancel/wait, run_queued (also admin), api_*_batch
    ('create_batch',       'role table', 'denied',  'denied',  'denied',  'allowed', 'denied',  'allowed', 'denied', 'denied'),
    ('update_batch',       'role table', 'denied',  'denied',  'denied',  'allowed', 'denied',  'allowed', 'denied', 'denied'),
    ('start_batch',        'role table', 'denied',  'denied',  'denied',  'allowed', 'denied',  'allowed', 'denied', 'denied'),
    ('process_batch',      'role table', 'denied',  'denied',  'denied',  'allowed', 'denied',  'allowed', 'denied', 'denied'),
    ('cancel_batch',       'role table', 'denied',  'denied',  'denied',  'allowed', 'denied',  'allowed', 'denied', 'denied'),
    ('wait_batch',         'role table', 'denied',  'denied',  'denied',  'allowed', 'denied',  'allowed', 'denied', 'denied'),
    ('run_queued',         'role table', 'denied',  'denied',  'denied',  'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('api_create_batch',   'role table', 'denied',  'denied',  'denied',  'allowed', 'denied',  'allowed', 'denied', 'denied'),
    ('api_update_batch',   'role table', 'denied',  'denied',  'denied',  'allowed', 'denied',  'allowed', 'denied', 'denied'),
    ('api_cancel_batch',   'role table', 'denied',  'denied',  'denied',  'allowed', 'denied',  'allowed', 'denied', 'denied'),
    ('api_approve_file',   'role table', 'denied',  'denied',  'denied',  'allowed', 'denied',  'allowed', 'denied', 'denied'),
    ('api_process_batch',  'role table', 'denied',  'denied',  'denied',  'allowed', 'denied',  'allowed', 'denied', 'denied'),
    -- approvals_reader (and so every group role): batch_results, get_batch, list_batches, api_get_batch, api_list_batches
    ('api_get_batch',      'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('api_list_batches',   'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('batch_results',      'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('get_batch',          'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('list_batches',       'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('api_batch_statistics', 'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    -- approvals_admin: set_policy, drop_policy, set_handler, grant_tenant, revoke_tenant, expire_due, purge_batches
    ('set_policy',         'role table', 'denied',  'denied',  'denied',  'denied',  'allowed', 'denied',  'denied', 'denied'),
    ('drop_policy',        'role table', 'denied',  'denied',  'denied',  'denied',  'allowed', 'denied',  'denied', 'denied'),
    ('set_handler',        'role table', 'denied',  'denied',  'denied',  'denied',  'allowed', 'denied',  'denied', 'denied'),
    ('grant_tenant',       'role table', 'denied',  'denied',  'denied',  'denied',  'allowed', 'denied',  'denied', 'denied'),
    ('revoke_tenant',      'role table', 'denied',  'denied',  'denied',  'denied',  'allowed', 'denied',  'denied', 'denied'),
    ('expire_due',         'role table', 'denied',  'denied',  'denied',  'denied',  'allowed', 'denied',  'denied', 'denied'),
    ('purge_batches',      'role table', 'denied',  'denied',  'denied',  'denied',  'allowed', 'denied',  'denied', 'denied'),
    -- audit seals and statistics (README "Audit seals", "Statistics"): seal_audit is the admin's;
    -- verify_audit, audit_head, claim_stats and approver_stats (and their _parts) every reader's
    ('seal_audit',         'role table', 'denied',  'denied',  'denied',  'denied',  'allowed', 'denied',  'denied', 'denied'),
    ('verify_audit',       'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('audit_head',         'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('claim_stats',        'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('approver_stats',     'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('claim_stats_parts',  'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('approver_stats_parts', 'role table', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    -- helpers of the JSON layer and of row-level security (README: "callable", roles unstated)
    ('sees_all_tenants',   'helper',     'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('visible_tenants',    'helper',     'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('json_ts',            'helper',     'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('json_required',      'helper',     'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('json_text_array',    'helper',     'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('json_string',        'helper',     'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('api_approval',       'helper',     'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('api_batch_summary',  'helper',     'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('api_payout_file',    'helper',     'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    ('batch_of_file',      'helper',     'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'allowed', 'denied', 'denied'),
    -- the trigger function of approvals.events
    ('events_append_only', 'trigger',    'denied',  'denied',  'denied',  'denied',  'denied',  'denied',  'denied', 'denied'),
    -- internal: the batch chunks' row-lock check
    ('claim_row_unlocked', 'internal',   'denied',  'denied',  'denied',  'denied',  'denied',  'denied',  'denied', 'denied');

-- One row per (function, role): the matrix in the shape (function, role, expected).
CREATE TEMP VIEW pm_expected AS
SELECT m.ord, m.fn, m.basis, r.pos, r.label AS role, r.test_role,
       (ARRAY[m.reader, m.requester, m.reviewer, m.coordinator, m.admin, m.platform, m.norole, m.public])[r.pos] AS expected
  FROM pm_matrix m CROSS JOIN pm_roles r;

-- ---------------------------------------------------------------------------
-- Fixtures: tenant-less claims and batches (everything is rolled back)
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE pm_fixture (label text PRIMARY KEY, id text NOT NULL);
DO $fixture$
BEGIN
    PERFORM approvals.grant_tenant('pm_t', 'pm_public');            -- for api_submit's merchantId
    -- pm_d1: for decide/api_respond (requested by someone else, no route: any reviewer may decide);
    -- pm_bc1..3: for the batches; pmc_<role>: one claim requested by each caller, for cancel_claim;
    -- dlg_<md5(role)>: one delegation whose delegator is each caller, for revoke_delegation (its
    -- id is made predictable so that the call needs no lookup the caller might not be allowed).
    PERFORM approvals.submit('pm_type', c.id, 'sha256:pm', id => c.id, actor => c.requester)
       FROM (VALUES ('pm_d1', 'usr_pm_req'), ('pm_bc1', 'usr_pm_req'), ('pm_bc2', 'usr_pm_req'),
                    ('pm_bc3', 'usr_pm_req')) AS c(id, requester);
    PERFORM approvals.submit('pm_type', 'pmc_' || r, 'sha256:pm', id => 'pmc_' || r, actor => r)
       FROM (SELECT test_role::text FROM pm_roles UNION SELECT current_user::text) AS t(r);
    PERFORM approvals.delegate('usr_pm_dlg', delegator => r, comment => 'pm')
       FROM (SELECT test_role::text FROM pm_roles UNION SELECT current_user::text) AS t(r);
    UPDATE approvals.delegations SET id = 'dlg_' || left(md5(delegator), 16) WHERE comment = 'pm';
    INSERT INTO pm_fixture
        SELECT 'pending', (approvals.create_batch(ARRAY['pm_bc1'], coordinator => 'usr_pm_coord', start => false)).id;
    INSERT INTO pm_fixture
        SELECT 'done', (approvals.create_batch(ARRAY['pm_bc3'], coordinator => 'usr_pm_coord', start => false)).id;
    PERFORM approvals.process_batch(id) FROM pm_fixture WHERE label = 'done';
    -- Every test role may change these batches as far as ownership goes (the README: the role
    -- that created a batch or a member of it), so only the role check can refuse.
    UPDATE approvals.batches SET created_by = 'pm_public'::regrole WHERE id IN (SELECT id FROM pm_fixture);
END
$fixture$;

-- ---------------------------------------------------------------------------
-- One call per function, with valid arguments and no actor ({pending} and {done}
-- stand for the fixture batches)
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE pm_calls (fn text PRIMARY KEY, sql text NOT NULL);
INSERT INTO pm_calls VALUES
    ('submit',             $$SELECT approvals.submit('pm_type', 'pm_res_submit', 'sha256:pm')$$),
    ('api_submit',         $$SELECT approvals.api_submit('{"merchantId": "pm_t", "resourceType": "invoice", "resourceId": "pm_res_api", "dataSnapshotHash": "sha256:pm"}')$$),
    ('cancel_claim',       $$SELECT approvals.cancel_claim('pmc_' || current_user)$$),
    ('decide',             $$SELECT approvals.decide('pm_d1', 'approved', on_behalf_of => NULL)$$),
    ('delegate',           $$SELECT approvals.delegate('usr_pm_dlg')$$),
    ('revoke_delegation',  $$SELECT approvals.revoke_delegation('dlg_' || left(md5(current_user), 16))$$),
    ('inbox',              $$SELECT count(*) FROM approvals.inbox()$$),
    ('inbox_key',          $$SELECT approvals.inbox_key('pm_d1')$$),
    ('inbox_after',        $$SELECT count(*) FROM approvals.inbox_after(NULL, 5, 2::int2, 'infinity', now(), 'pm_d1')$$),
    ('api_respond',        $$SELECT approvals.api_respond('pm_d1', '{"outcome": "approved"}')$$),
    ('create_batch',       $$SELECT approvals.create_batch(ARRAY['pm_bc2'])$$),
    ('update_batch',       $$SELECT approvals.update_batch({pending}, comment => 'pm')$$),
    ('start_batch',        $$SELECT approvals.start_batch({pending})$$),
    ('process_batch',      $$SELECT * FROM approvals.process_batch({pending})$$),
    ('cancel_batch',       $$SELECT * FROM approvals.cancel_batch({pending})$$),
    ('wait_batch',         $$SELECT approvals.wait_batch({done}, '1 second')$$),
    ('run_queued',         $$CALL approvals.run_queued()$$),
    ('api_create_batch',   $$SELECT approvals.api_create_batch('{"claim_ids": ["pm_bc2"]}')$$),
    ('api_update_batch',   $$SELECT approvals.api_update_batch({pending}, '{"comment": "pm"}')$$),
    ('api_cancel_batch',   $$SELECT approvals.api_cancel_batch({pending})$$),
    ('api_get_batch',      $$SELECT approvals.api_get_batch({pending})$$),
    ('api_list_batches',   $$SELECT approvals.api_list_batches()$$),
    ('batch_results',      $$SELECT * FROM approvals.batch_results({pending})$$),
    ('get_batch',          $$SELECT approvals.get_batch({pending})$$),
    ('list_batches',       $$SELECT * FROM approvals.list_batches()$$),
    ('set_policy',         $$SELECT approvals.set_policy(resource_type => 'pm_type', required_approvals => 1)$$),
    ('drop_policy',        $$SELECT approvals.drop_policy('pm_type')$$),
    ('set_handler',        $$SELECT approvals.set_handler('pm_type', NULL)$$),
    ('grant_tenant',       $$SELECT approvals.grant_tenant('pm_t2', 'pm_public')$$),
    ('revoke_tenant',      $$SELECT approvals.revoke_tenant('pm_t', 'pm_public')$$),
    ('expire_due',         $$SELECT approvals.expire_due()$$),
    ('purge_batches',      $$SELECT approvals.purge_batches('1 day')$$),
    ('seal_audit',         $$SELECT approvals.seal_audit()$$),
    ('verify_audit',       $$SELECT count(*) FROM approvals.verify_audit()$$),
    ('audit_head',         $$SELECT count(*) FROM approvals.audit_head()$$),
    ('claim_stats',        $$SELECT count(*) FROM approvals.claim_stats()$$),
    ('approver_stats',     $$SELECT count(*) FROM approvals.approver_stats()$$),
    ('claim_stats_parts',  $$SELECT count(*) FROM approvals.claim_stats_parts()$$),
    ('approver_stats_parts', $$SELECT count(*) FROM approvals.approver_stats_parts()$$),
    ('sees_all_tenants',   $$SELECT approvals.sees_all_tenants()$$),
    ('visible_tenants',    $$SELECT approvals.visible_tenants()$$),
    ('json_ts',            $$SELECT approvals.json_ts(now())$$),
    ('json_required',      $$SELECT approvals.json_required('{"k": "v"}', 'k')$$),
    ('json_text_array',    $$SELECT approvals.json_text_array('{"k": ["v"]}', 'k', true)$$),
    ('json_string',        $$SELECT approvals.json_string('{"k": "v"}', 'k', true, ARRAY['v'])$$),
    ('api_approval',       $$SELECT approvals.api_approval(NULL::approvals.claims)$$),
    ('api_batch_summary',  $$SELECT approvals.api_batch_summary(NULL::approvals.batches)$$),
    ('api_payout_file',    $$SELECT approvals.api_payout_file(NULL::approvals.batches)$$),
    ('batch_of_file',      $$SELECT approvals.batch_of_file({pending}, NULL)$$),
    ('api_approve_file',   $$SELECT approvals.api_approve_file(jsonb_build_object('file_id', {pending}, 'transactions',
                               to_jsonb(ARRAY(SELECT claim_id FROM approvals.batch_items WHERE batch_id = {pending}))))$$),
    ('api_process_batch',  $$SELECT approvals.api_process_batch({pending})$$),
    ('api_batch_statistics', $$SELECT approvals.api_batch_statistics({pending})$$),
    ('events_append_only', $$SELECT approvals.events_append_only()$$),
    ('claim_row_unlocked', $$SELECT approvals.claim_row_unlocked('(0,1)')$$);
UPDATE pm_calls c SET sql = replace(c.sql, '{' || f.label || '}', quote_literal(f.id))
  FROM pm_fixture f WHERE c.sql LIKE '%{' || f.label || '}%';

-- ---------------------------------------------------------------------------
-- The helper
-- ---------------------------------------------------------------------------
-- pg_temp.try_as(role, sql): run sql as role (NULL: as the caller) in a
-- subtransaction that is always rolled back; return 'ok' or the SQLSTATE raised.
-- The message goes to the setting pm.last_message (for diagnostics). It is
-- called by the superuser and switches role itself (SET LOCAL ROLE inside the
-- subtransaction, undone with it), so the test roles never need to reach the
-- temporary objects; the calls name nothing in pg_temp.
CREATE FUNCTION pg_temp.try_as(r name, q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    st  text;
    msg text;
BEGIN
    BEGIN
        IF r IS NOT NULL THEN
            EXECUTE format('SET LOCAL ROLE %I', r);
        END IF;
        EXECUTE q;
        RAISE EXCEPTION 'pm: the call succeeded; undo it' USING ERRCODE = 'PM000';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    END;
    PERFORM set_config('pm.last_message', CASE WHEN st = 'PM000' THEN '' ELSE msg END, true);
    RETURN CASE WHEN st = 'PM000' THEN 'ok' ELSE st END;
END
$f$;
-- The same, with the message after the SQLSTATE.
CREATE FUNCTION pg_temp.try_as_msg(r name, q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    st text := pg_temp.try_as(r, q);
BEGIN
    RETURN st || CASE WHEN st = 'ok' THEN '' ELSE ': ' || current_setting('pm.last_message') END;
END
$f$;

CREATE TEMP TABLE pm_result (pass int, ord int, pos int, fn text, role text, expected text,
                             state text, message text);
-- Run the matrix: pass 1 every cell, pass 2 the cells of role-table functions that
-- the README denies.
CREATE FUNCTION pg_temp.run_matrix(pass int) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    c  record;
    st text;
BEGIN
    FOR c IN SELECT e.*, k.sql FROM pm_expected e JOIN pm_calls k USING (fn)
              WHERE pass = 1 OR (e.basis = 'role table' AND e.expected = 'denied')
              ORDER BY e.ord, e.pos
    LOOP
        st := pg_temp.try_as(c.test_role, c.sql);
        INSERT INTO pm_result
            VALUES (pass, c.ord, c.pos, c.fn, c.role, c.expected, st, current_setting('pm.last_message'));
    END LOOP;
END
$f$;

-- ---------------------------------------------------------------------------
-- The matrix covers the schema; the helper and the calls work
-- ---------------------------------------------------------------------------
SELECT is(
    ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
           WHERE p.pronamespace = 'approvals'::regnamespace
             AND (p.proname NOT IN (SELECT fn FROM pm_matrix)
                  OR (SELECT count(*) FROM pg_proc q
                       WHERE q.pronamespace = p.pronamespace AND q.proname = p.proname) > 1)
           ORDER BY 1),
    ARRAY[]::text[],
    'every function and procedure of schema approvals is in the privilege matrix (add a new one, with its call)');

SELECT is(
    ARRAY(SELECT fn || ': not in schema approvals' FROM pm_matrix m
           WHERE NOT EXISTS (SELECT 1 FROM pg_proc p
                              WHERE p.pronamespace = 'approvals'::regnamespace AND p.proname = m.fn)
          UNION ALL
          SELECT fn || ': no call' FROM pm_matrix WHERE fn NOT IN (SELECT fn FROM pm_calls)
          UNION ALL
          SELECT fn || ': a call but no matrix row' FROM pm_calls WHERE fn NOT IN (SELECT fn FROM pm_matrix)
          ORDER BY 1),
    ARRAY[]::text[],
    'every function of the matrix exists and has exactly one call');

SELECT is(pg_temp.try_as('pm_reader', $q$DO $d$ BEGIN IF current_user <> 'pm_reader' THEN RAISE 'wrong role %', current_user; END IF; END $d$$q$),
          'ok', 'the helper runs a call as the given role');
SELECT is(pg_temp.try_as('pm_public', $$SELECT approvals.expire_due()$$) || ' ' || current_user,
          '42501 ' || session_user, 'the helper returns the SQLSTATE and switches back to the caller');

-- Every call works for the superuser (who counts as every role), so the arguments are
-- valid and an allowed role gets past the checks; the trigger function cannot be called.
SELECT is(
    ARRAY(SELECT fn || ': ' || st
            FROM (SELECT fn, pg_temp.try_as_msg(NULL, sql) AS st FROM pm_calls
                   WHERE fn <> 'events_append_only') s
           WHERE st <> 'ok' ORDER BY fn),
    ARRAY[]::text[],
    'as the superuser every call of the matrix succeeds');

-- PUBLIC gets nothing: no routine grants EXECUTE to PUBLIC, explicitly or by
-- default (a NULL proacl means PUBLIC may execute). pm_public is stopped by the
-- schema's USAGE before it reaches a function; this checks the routines too.
SELECT is(
    ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
           WHERE p.pronamespace = 'approvals'::regnamespace
             AND (p.proacl IS NULL
                  OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))
           ORDER BY 1),
    ARRAY[]::text[],
    'PUBLIC has EXECUTE on no routine of schema approvals');

-- ---------------------------------------------------------------------------
-- Pass 1: through the grants
-- ---------------------------------------------------------------------------
DO $$ BEGIN PERFORM pg_temp.run_matrix(1); END $$;

SELECT is(CASE WHEN state = '42501' THEN 'denied' ELSE 'allowed' END, expected,
          format('%s as %s: %s', fn, role, expected))
       || CASE WHEN (state = '42501') <> (expected = 'denied')
               THEN E'\n' || diag(format('    %s as %s: README says %s, got %s', fn, role, expected,
                                         concat_ws(': ', state, nullif(message, ''))))
               ELSE '' END
  FROM pm_result WHERE pass = 1 ORDER BY ord, pos;

-- ---------------------------------------------------------------------------
-- Pass 2: EXECUTE granted directly is not enough; the functions check the role
-- ---------------------------------------------------------------------------
-- The C functions check the group role themselves (ApRequireRole); the SQL
-- wrappers of the JSON layer are refused by the C function they call (or by a
-- table they read). Every cell the README denies must stay 42501.
GRANT USAGE ON SCHEMA approvals
   TO pm_reader, pm_requester, pm_reviewer, pm_coordinator, pm_admin, pm_platform, pm_norole, pm_public;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA approvals
   TO pm_reader, pm_requester, pm_reviewer, pm_coordinator, pm_admin, pm_platform, pm_norole, pm_public;

SELECT is(
    ARRAY(SELECT r.test_role || ': ' || p.oid::regprocedure::text
            FROM pg_proc p CROSS JOIN pm_roles r
           WHERE p.pronamespace = 'approvals'::regnamespace
             AND NOT (has_function_privilege(r.test_role, p.oid, 'EXECUTE')
                      AND has_schema_privilege(r.test_role, 'approvals', 'USAGE'))
           ORDER BY 1),
    ARRAY[]::text[],
    'pass 2: every test role now has USAGE on the schema and EXECUTE on every routine');

DO $$ BEGIN PERFORM pg_temp.run_matrix(2); END $$;

SELECT is(state, '42501',
          format('EXECUTE granted directly: %s as %s is still 42501', fn, role))
       || CASE WHEN state <> '42501'
               THEN E'\n' || diag(format('    %s as %s: README says denied, got %s (the function''s own role check lets it through)', fn, role,
                                         concat_ws(': ', state, nullif(message, ''))))
               ELSE '' END
  FROM pm_result WHERE pass = 2 ORDER BY ord, pos;

SELECT * FROM finish();
ROLLBACK;
