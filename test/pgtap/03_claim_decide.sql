-- 03_claim_decide: approvals.decide and approvals.cancel_claim — outcomes, quorum,
-- routes, abstain and escalation, four-eyes, stale snapshots (AP001), every
-- error SQLSTATE, and that a refused call changes nothing.
BEGIN;
SELECT plan(76);

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
CREATE FUNCTION pg_temp.ev(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(action || '(' || coalesce(from_status, '') || '>'
                               || coalesce(to_status, '') || ')', ' ' ORDER BY id), '')
      FROM approvals.events WHERE claim_id = cid
$f$;
-- The state of a claim that decide changes.
CREATE FUNCTION pg_temp.st(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT row(status, approval_count, reviewer, assignee, decided_at IS NOT NULL)::text
      FROM approvals.claims WHERE id = cid
$f$;

CREATE ROLE t03_req    IN ROLE approvals_requester;
CREATE ROLE t03_req2   IN ROLE approvals_requester;
CREATE ROLE t03_both   IN ROLE approvals_requester, approvals_reviewer;
CREATE ROLE t03_rev1   IN ROLE approvals_reviewer;
CREATE ROLE t03_rev2   IN ROLE approvals_reviewer;
CREATE ROLE t03_rev3   IN ROLE approvals_reviewer;
CREATE ROLE t03_rev4   IN ROLE approvals_reviewer;
CREATE ROLE t03_reader IN ROLE approvals_reader;
CREATE ROLE t03_coord  IN ROLE approvals_coordinator;
CREATE ROLE t03_adm    IN ROLE approvals_admin;

-- Fixtures: claims requested by t03_req (superuser acting for it).
SELECT lives_ok($$
    SELECT approvals.submit('t03_dec', r.rid, 'h-' || r.rid, id => 'tap03_' || r.rid, actor => 't03_req',
                            approvers => r.approvers, required_approvals => r.req)
      FROM (VALUES ('app',   NULL::text[],                              NULL::int),
                   ('rej',   NULL,                                      NULL),
                   ('abs',   NULL,                                      NULL),
                   ('err',   NULL,                                      NULL),
                   ('quorum',NULL,                                      2),
                   ('route', ARRAY['t03_rev1','t03_rev2','t03_rev3'],   2),
                   ('absr',  ARRAY['t03_rev1','t03_rev2'],              1),
                   ('exh',   ARRAY['t03_rev1','t03_rev2'],              2),
                   ('rrej',  ARRAY['t03_rev1','t03_rev2'],              1),
                   ('c_own', NULL,                                      NULL)) AS r(rid, approvers, req)$$,
    'fixture: ten pending claims requested by t03_req');
SELECT lives_ok($$SELECT approvals.submit('t03_dec', 'c_other', 'h-c_other', id => 'tap03_c_other', actor => 't03_req2')$$,
                'fixture: a pending claim requested by t03_req2');
SET ROLE t03_both;
SELECT lives_ok($$SELECT approvals.submit('t03_dec', 'self', 'h-self', id => 'tap03_self')$$,
                'fixture: t03_both (requester and reviewer) submits its own claim');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Happy paths: approve, reject, abstain (no route)
-- ---------------------------------------------------------------------------
SET ROLE t03_rev1;
SELECT is(pg_temp.q($$SELECT row(status, approval_count, reviewer, approved_by, decided_at IS NOT NULL)::text
                        FROM approvals.decide('tap03_app', 'approved', 'looks right', snapshot_hash => 'h-app')$$),
          '(approved,1,t03_rev1,{t03_rev1},t)',
          'approve with the matching snapshot hash: approved, reviewer = caller, decided_at set');
SELECT is(pg_temp.q($$SELECT row(status, reviewer, decided_at IS NOT NULL)::text
                        FROM approvals.decide('tap03_rej', 'rejected', 'wrong amount')$$),
          '(rejected,t03_rev1,t)', 'reject: rejected, reviewer = caller, decided_at set');
SELECT is(pg_temp.q($$SELECT row(status, approval_count, decided_at IS NULL)::text
                        FROM approvals.decide('tap03_abs', 'abstained', repeat('c', 2000))$$),
          '(pending,0,t)', 'abstain with a 2000-character comment: still pending, not decided');
RESET ROLE;
SELECT is(
    (SELECT string_agg(row(action, from_status, to_status, actor, comment, snapshot_hash)::text, ' ' ORDER BY id)
       FROM approvals.events WHERE claim_id = 'tap03_app'),
    '(submitted,,pending,t03_req,,h-app) (approved,pending,approved,t03_rev1,"looks right",h-app)',
    'approve appends an approved event (pending -> approved) with actor, comment and snapshot hash');
SELECT is(
    (SELECT string_agg(row(action, from_status, to_status, actor, comment)::text, ' ' ORDER BY id)
       FROM approvals.events WHERE claim_id = 'tap03_rej' AND action <> 'submitted'),
    '(rejected,pending,rejected,t03_rev1,"wrong amount")',
    'reject appends a rejected event (pending -> rejected)');
SELECT is(
    (SELECT row(action, from_status, to_status, actor, length(comment))::text
       FROM approvals.events WHERE claim_id = 'tap03_abs' AND action = 'abstained'),
    '(abstained,pending,pending,t03_rev1,2000)',
    'abstain appends an abstained event (pending -> pending) with the full comment');

-- ---------------------------------------------------------------------------
-- Errors on a pending claim: each leaves it unchanged
-- ---------------------------------------------------------------------------
SET ROLE t03_rev1;
SELECT throws_ok($$SELECT approvals.decide(NULL, 'approved')$$, '22004', NULL, 'claim_id NULL is 22004');
SELECT throws_ok($$SELECT approvals.decide('tap03_err', NULL)$$, '22004', NULL, 'outcome NULL is 22004');
SELECT throws_ok($$SELECT approvals.decide('tap03_err', 'maybe')$$, '22023', NULL, 'outcome maybe is 22023');
SELECT throws_ok($$SELECT approvals.decide('tap03_err', 'approved', repeat('c', 2001))$$,
                 '22001', 'comment is 2001 characters; the limit is 2000', 'a comment of 2001 characters is 22001');
SELECT throws_ok($$SELECT approvals.decide('tap03_nope', 'approved')$$, 'P0002', NULL, 'an unknown claim is P0002');
SELECT throws_ok($$SELECT approvals.decide('tap03_err', 'approved', snapshot_hash => 'h-stale')$$,
                 'AP001', NULL, 'a different snapshot hash is AP001');
SELECT ok(pg_temp.q($$SELECT approvals.decide('tap03_err', 'rejected', snapshot_hash => 'h-stale')$$) ~* '^ERROR AP001: .*stale snapshot',
          'the AP001 message says stale snapshot (for a rejection too)');
SELECT throws_ok($$SELECT approvals.decide('tap03_err', 'approved', actor => 't03_rev2')$$,
                 '42501', NULL, 'a non-platform reviewer passing another actor is 42501');
RESET ROLE;
SELECT throws_ok($$SELECT approvals.decide('tap03_err', 'approved', actor => repeat('a', 129))$$,
                 '22001', 'actor is 129 characters; the limit is 128', 'an actor of 129 characters is 22001');
SET ROLE t03_reader;
SELECT throws_ok($$SELECT approvals.decide('tap03_err', 'approved')$$, '42501', NULL, 'a reader may not decide (42501)');
SET ROLE t03_coord;
SELECT throws_ok($$SELECT approvals.decide('tap03_err', 'approved')$$, '42501', NULL, 'a coordinator may not decide (42501)');
SET ROLE t03_req2;
SELECT throws_ok($$SELECT approvals.decide('tap03_err', 'approved')$$, '42501', NULL, 'a requester (not reviewer) may not decide (42501)');
RESET ROLE;
SELECT is(pg_temp.st('tap03_err'), '(pending,0,,,f)', 'after the refused calls the claim is unchanged');
SELECT is(pg_temp.ev('tap03_err'), 'submitted(>pending)', 'after the refused calls the claim has no new event');

-- Not pending: 55000
SET ROLE t03_rev2;
SELECT throws_ok($$SELECT approvals.decide('tap03_app', 'rejected')$$, '55000', NULL, 'deciding an approved claim is 55000');
SELECT throws_ok($$SELECT approvals.decide('tap03_rej', 'approved')$$, '55000', NULL, 'deciding a rejected claim is 55000');
SELECT throws_ok($$SELECT approvals.decide('tap03_rej', 'abstained')$$, '55000', NULL, 'abstaining on a rejected claim is 55000');
RESET ROLE;
SELECT is(pg_temp.st('tap03_app'), '(approved,1,t03_rev1,,t)', 'the approved claim is unchanged');
SELECT is(pg_temp.ev('tap03_rej'), 'submitted(>pending) rejected(pending>rejected)', 'the rejected claim has no new event');

-- ---------------------------------------------------------------------------
-- Four-eyes: the requester may not decide its own claim (any outcome)
-- ---------------------------------------------------------------------------
SET ROLE t03_both;
SELECT throws_ok($$SELECT approvals.decide('tap03_self', 'approved')$$, '42501', NULL, 'the requester approving its own claim is 42501');
SELECT throws_ok($$SELECT approvals.decide('tap03_self', 'rejected')$$, '42501', NULL, 'the requester rejecting its own claim is 42501');
SELECT throws_ok($$SELECT approvals.decide('tap03_self', 'abstained')$$, '42501', NULL, 'the requester abstaining on its own claim is 42501');
RESET ROLE;
SELECT throws_ok($$SELECT approvals.decide('tap03_self', 'approved', actor => 't03_both')$$, '42501', NULL,
                 'platform acting as the requester may not approve the requester''s claim either');
SELECT is(pg_temp.st('tap03_self') || ' ' || pg_temp.ev('tap03_self'), '(pending,0,,,f) submitted(>pending)',
          'the self-approval attempts changed nothing');
SET ROLE t03_rev2;
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap03_self', 'approved')$$), 'approved',
          'another reviewer may approve it');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Quorum without a route: any reviewers, distinct actors
-- ---------------------------------------------------------------------------
SET ROLE t03_rev1;
SELECT is(pg_temp.q($$SELECT row(status, approval_count, approved_by, decided_at IS NULL)::text
                        FROM approvals.decide('tap03_quorum', 'approved')$$),
          '(pending,1,{t03_rev1},t)', 'quorum 2: the first approval leaves the claim pending with 1 approval');
SELECT throws_ok($$SELECT approvals.decide('tap03_quorum', 'approved')$$, '42501', NULL,
                 'quorum 2: the same reviewer approving again is 42501');
RESET ROLE;
SELECT is(pg_temp.st('tap03_quorum'), '(pending,1,t03_rev1,,f)', 'quorum 2: the repeated approval changed nothing');
SET ROLE t03_rev2;
SELECT is(pg_temp.q($$SELECT row(status, approval_count, approved_by, reviewer, decided_at IS NOT NULL)::text
                        FROM approvals.decide('tap03_quorum', 'approved')$$),
          '(approved,2,"{t03_rev1,t03_rev2}",t03_rev2,t)', 'quorum 2: a second reviewer''s approval approves the claim');
RESET ROLE;
SELECT is(pg_temp.ev('tap03_quorum'), 'submitted(>pending) approved(pending>pending) approved(pending>approved)',
          'quorum 2: events approved (pending -> pending) then approved (pending -> approved)');

-- ---------------------------------------------------------------------------
-- Route: only the current assignee decides; approvals move along the route
-- ---------------------------------------------------------------------------
SELECT is((SELECT row(assignee, route_position)::text FROM approvals.claims WHERE id = 'tap03_route'),
          '(t03_rev1,1)', 'route: the first approver is the assignee');
SET ROLE t03_rev2;
SELECT throws_ok($$SELECT approvals.decide('tap03_route', 'approved')$$, '42501', NULL,
                 'route: the second approver deciding before its turn is 42501');
SET ROLE t03_rev4;
SELECT throws_ok($$SELECT approvals.decide('tap03_route', 'rejected')$$, '42501', NULL,
                 'route: a reviewer outside the route is 42501');
SET ROLE t03_rev1;
SELECT is(pg_temp.q($$SELECT row(status, approval_count, assignee, route_position)::text
                        FROM approvals.decide('tap03_route', 'approved')$$),
          '(pending,1,t03_rev2,2)', 'route: the first approval moves the claim to the second approver');
SELECT throws_ok($$SELECT approvals.decide('tap03_route', 'approved')$$, '42501', NULL,
                 'route: the first approver may not decide again');
SET ROLE t03_rev2;
SELECT is(pg_temp.q($$SELECT row(status, approval_count, approved_by, reviewer, decided_at IS NOT NULL)::text
                        FROM approvals.decide('tap03_route', 'approved')$$),
          '(approved,2,"{t03_rev1,t03_rev2}",t03_rev2,t)', 'route: the second approval reaches the quorum of 2');
RESET ROLE;
SELECT is(pg_temp.ev('tap03_route'), 'submitted(>pending) approved(pending>pending) approved(pending>approved)',
          'route: events for the two approvals');

-- Route: rejection by the assignee is final
SET ROLE t03_rev1;
SELECT is(pg_temp.q($$SELECT row(status, reviewer)::text FROM approvals.decide('tap03_rrej', 'rejected')$$),
          '(rejected,t03_rev1)', 'route: the assignee''s rejection is final');
SET ROLE t03_rev2;
SELECT throws_ok($$SELECT approvals.decide('tap03_rrej', 'approved')$$, '55000', NULL,
                 'route: after a rejection the next approver gets 55000');
RESET ROLE;

-- Route: abstain passes the claim on; past the end it escalates to anyone
SET ROLE t03_rev1;
SELECT is(pg_temp.q($$SELECT row(status, assignee, route_position)::text FROM approvals.decide('tap03_absr', 'abstained', 'not my area')$$),
          '(pending,t03_rev2,2)', 'abstain: moves the claim to the next approver');
SET ROLE t03_rev2;
SELECT is(pg_temp.q($$SELECT row(status, assignee)::text FROM approvals.decide('tap03_absr', 'abstained')$$),
          '(pending,)', 'abstain by the last approver: pending with no assignee');
RESET ROLE;
SELECT is(pg_temp.ev('tap03_absr'),
          'submitted(>pending) abstained(pending>pending) abstained(pending>pending) escalated(pending>pending)',
          'abstain past the end of the route appends an escalated event');
SELECT is((SELECT actor FROM approvals.events WHERE claim_id = 'tap03_absr' AND action = 'escalated'),
          't03_rev2', 'the escalated event''s actor is the caller whose decision exhausted the route');
SET ROLE t03_rev3;
SELECT is(pg_temp.q($$SELECT row(status, reviewer)::text FROM approvals.decide('tap03_absr', 'approved')$$),
          '(approved,t03_rev3)', 'after escalation any reviewer may decide');
RESET ROLE;

-- Route exhausted by an approval short of the quorum
SET ROLE t03_rev1;
SELECT is(pg_temp.q($$SELECT assignee FROM approvals.decide('tap03_exh', 'abstained')$$), 't03_rev2',
          'exhausted route: first approver abstains');
SET ROLE t03_rev2;
SELECT is(pg_temp.q($$SELECT row(status, approval_count, assignee)::text FROM approvals.decide('tap03_exh', 'approved')$$),
          '(pending,1,)', 'exhausted route: the last approver approves, 1 of 2, no assignee left');
SET ROLE t03_rev3;
SELECT is(pg_temp.q($$SELECT row(status, approval_count, approved_by)::text FROM approvals.decide('tap03_exh', 'approved')$$),
          '(approved,2,"{t03_rev2,t03_rev3}")', 'exhausted route: any other reviewer completes the quorum');
RESET ROLE;
SELECT is(pg_temp.ev('tap03_exh'),
          'submitted(>pending) abstained(pending>pending) approved(pending>pending) escalated(pending>pending) approved(pending>approved)',
          'exhausted route: escalated is appended after the approval that exhausted the route');

-- ---------------------------------------------------------------------------
-- Platform acting for a reviewer
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.submit('t03_dec', 'plat', 'h-plat', id => 'tap03_plat', actor => 't03_req')$$,
                'fixture: a claim for the platform decision');
SELECT is(pg_temp.q($$SELECT row(status, reviewer)::text FROM approvals.decide('tap03_plat', 'approved', actor => 'usr_jane')$$),
          '(approved,usr_jane)', 'platform: the actor override is recorded as reviewer');
SELECT is((SELECT actor FROM approvals.events WHERE claim_id = 'tap03_plat' AND action = 'approved'),
          'usr_jane', 'platform: and as the event actor');

-- ---------------------------------------------------------------------------
-- cancel_claim
-- ---------------------------------------------------------------------------
SET ROLE t03_req;
SELECT throws_ok($$SELECT approvals.cancel_claim('tap03_c_other')$$, '42501', NULL,
                 'a requester cancelling another requester''s claim is 42501');
SELECT throws_ok($$SELECT approvals.cancel_claim('tap03_c_own', actor => 't03_req2')$$, '42501', NULL,
                 'a requester passing another actor to cancel_claim is 42501');
SELECT throws_ok($$SELECT approvals.cancel_claim(NULL)$$, '22004', NULL, 'cancel_claim with claim_id NULL is 22004');
SELECT throws_ok($$SELECT approvals.cancel_claim('tap03_nope')$$, 'P0002', NULL, 'cancelling an unknown claim is P0002');
SELECT throws_ok($$SELECT approvals.cancel_claim('tap03_c_own', repeat('c', 2001))$$, '22001', NULL,
                 'a cancel comment of 2001 characters is 22001');
SELECT is(pg_temp.q($$SELECT row(status, requester)::text FROM approvals.cancel_claim('tap03_c_own', 'no longer needed')$$),
          '(cancelled,t03_req)', 'the requester cancels its own claim');
SELECT throws_ok($$SELECT approvals.cancel_claim('tap03_c_own')$$, '55000', NULL, 'cancelling a cancelled claim is 55000');
SELECT throws_ok($$SELECT approvals.cancel_claim('tap03_app')$$, '55000', NULL, 'cancelling an approved claim is 55000');
RESET ROLE;
SELECT is(
    (SELECT string_agg(row(action, from_status, to_status, actor, comment)::text, ' ' ORDER BY id)
       FROM approvals.events WHERE claim_id = 'tap03_c_own'),
    '(submitted,,pending,t03_req,) (cancelled,pending,cancelled,t03_req,"no longer needed")',
    'cancel appends a cancelled event (pending -> cancelled) with the comment');
SELECT is(pg_temp.st('tap03_c_other') || ' ' || pg_temp.ev('tap03_c_other'), '(pending,0,,,f) submitted(>pending)',
          'the refused cancel changed nothing');
SET ROLE t03_rev1;
SELECT throws_ok($$SELECT approvals.cancel_claim('tap03_c_other')$$, '42501', NULL, 'a reviewer may not cancel (42501)');
SELECT throws_ok($$SELECT approvals.decide('tap03_c_own', 'approved')$$, '55000', NULL, 'deciding a cancelled claim is 55000');
SET ROLE t03_adm;
SELECT is(pg_temp.q($$SELECT status FROM approvals.cancel_claim('tap03_c_other', 'admin cleanup')$$),
          'cancelled', 'an admin cancels another requester''s claim');
RESET ROLE;
SELECT is((SELECT actor FROM approvals.events WHERE claim_id = 'tap03_c_other' AND action = 'cancelled'),
          't03_adm', 'the admin is the cancelled event''s actor');

-- ---------------------------------------------------------------------------
-- The events log and the claims stay consistent
-- ---------------------------------------------------------------------------
SELECT is(
    (SELECT count(*)::int FROM approvals.claims c
      WHERE c.id LIKE 'tap03_%'
        AND c.status IS DISTINCT FROM (SELECT e.to_status FROM approvals.events e
                                        WHERE e.claim_id = c.id ORDER BY e.id DESC LIMIT 1)),
    0, 'every claim''s status equals the to_status of its last event');
SELECT is(
    (SELECT count(*)::int FROM approvals.events e JOIN approvals.claims c ON c.id = e.claim_id
      WHERE c.id LIKE 'tap03_%' AND (e.tenant IS DISTINCT FROM c.tenant OR e.at IS NULL)),
    0, 'every event carries its claim''s tenant and a timestamp');

SELECT * FROM finish();
ROLLBACK;
