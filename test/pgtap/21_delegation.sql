-- 21_delegation: approvals.delegate / approvals.revoke_delegation (API.md §9) and
-- decide through a delegation (on_behalf_of): defaults and the returned row,
-- every SQLSTATE, who may revoke, the active window and the scope (resource
-- type, tenant, max_amount), no cascade, nobody decides a claim they or their
-- delegator requested, the approval counts as the delegator's (quorum and
-- distinctness), events.on_behalf_of, tenant isolation of the delegate,
-- row-level security on approvals.delegations, and batches ignore delegation.
--
-- Most decisions are made by the superuser (who counts as platform) acting for
-- usr_* people through actor => ...; the role, actor-rule and tenant checks run
-- as t21_* roles with SET ROLE.
BEGIN;
SELECT plan(133);

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
-- The decisions of a claim: action:actor:on_behalf_of ('-' for NULL).
CREATE FUNCTION pg_temp.dev(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(action || ':' || actor || ':' || coalesce(on_behalf_of, '-'), ' ' ORDER BY id), '')
      FROM approvals.events WHERE claim_id = cid AND action <> 'submitted'
$f$;
-- status, approval_count and approved_by (sorted: its order is not part of the contract).
CREATE FUNCTION pg_temp.st(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT status || ' ' || approval_count || ' {'
           || array_to_string(ARRAY(SELECT x FROM unnest(approved_by) AS x ORDER BY x), ',') || '}'
      FROM approvals.claims WHERE id = cid
$f$;
-- Delegation ids by label.
CREATE TEMP TABLE td (label text PRIMARY KEY, id text NOT NULL);
GRANT ALL ON td TO PUBLIC;
CREATE FUNCTION pg_temp.d(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT id FROM pg_temp.td WHERE label = l
$f$;
-- Create a delegation as the superuser and remember its id under label l.
CREATE FUNCTION pg_temp.mk(l text, dfrom text, dto text, rt text DEFAULT NULL, ten text DEFAULT NULL,
                           maxa numeric DEFAULT NULL, vfrom timestamptz DEFAULT now(),
                           vuntil timestamptz DEFAULT NULL) RETURNS text LANGUAGE sql AS $f$
    INSERT INTO pg_temp.td
    SELECT l, (approvals.delegate(dto, valid_until => vuntil, valid_from => vfrom, resource_type => rt,
                                  tenant => ten, max_amount => maxa, comment => 't21 ' || l,
                                  delegator => dfrom)).id
    RETURNING id
$f$;
-- Submit a claim as the superuser for requester req.
CREATE FUNCTION pg_temp.sub(cid text, req text, route text[] DEFAULT NULL, rt text DEFAULT 't21_dec',
                            ten text DEFAULT NULL, amt numeric DEFAULT NULL, quorum int DEFAULT NULL)
RETURNS text LANGUAGE sql AS $f$
    SELECT (approvals.submit(rt, cid, 'h-' || cid, id => cid, tenant => ten, actor => req, amount => amt,
                             approvers => route, required_approvals => quorum)).id
$f$;

CREATE ROLE t21_req   IN ROLE approvals_requester;
CREATE ROLE t21_rev   IN ROLE approvals_reviewer;
CREATE ROLE t21_rev2  IN ROLE approvals_reviewer;
CREATE ROLE t21_dr    IN ROLE approvals_reviewer;     -- delegator, tenant t21_ta
CREATE ROLE t21_dg    IN ROLE approvals_reviewer;     -- its delegate, no tenant at first
CREATE ROLE t21_rdr   IN ROLE approvals_reader;       -- reader, tenant t21_ta
CREATE ROLE t21_coord IN ROLE approvals_coordinator;
CREATE ROLE t21_adm   IN ROLE approvals_admin;
CREATE ROLE t21_plat  IN ROLE approvals_platform;
CREATE ROLE t21_none;                                 -- no approvals role
DO $$ BEGIN PERFORM approvals.grant_tenant('t21_ta', 't21_dr'); PERFORM approvals.grant_tenant('t21_ta', 't21_rdr'); END $$;

-- ---------------------------------------------------------------------------
-- The contract's signatures
-- ---------------------------------------------------------------------------
SELECT is(
    ARRAY(SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') -> ' || p.prorettype::regtype::text
            FROM pg_proc p WHERE p.pronamespace = 'approvals'::regnamespace
             AND p.proname IN ('delegate', 'revoke_delegation', 'decide') ORDER BY 1),
    ARRAY['decide(claim_id text, outcome text, comment text, snapshot_hash text, actor text, on_behalf_of text) -> approvals.claims',
          'delegate(delegate text, valid_until timestamp with time zone, valid_from timestamp with time zone, resource_type text, tenant text, max_amount numeric, comment text, delegator text) -> approvals.delegations',
          'revoke_delegation(delegation_id text, comment text) -> approvals.delegations'],
    'delegate, revoke_delegation and the 6-argument decide have the contract''s arguments (one decide, no old overload)');

-- ---------------------------------------------------------------------------
-- delegate(): defaults and the returned row
-- ---------------------------------------------------------------------------
SET ROLE t21_rev;
SELECT is(pg_temp.q($$
    WITH d AS (SELECT * FROM approvals.delegate('t21_rev2')),
         i AS (INSERT INTO pg_temp.td SELECT 'def', id FROM d)
    SELECT row(id ~ '^dlg_[0-9a-f]{16}$', tenant, delegator, delegate, resource_type, max_amount,
               valid_from = now(), valid_until, revoked_at, comment, created_by, created_at = now())::text FROM d$$),
    '(t,,t21_rev,t21_rev2,,,t,,,,t21_rev,t)',
    'delegate(''t21_rev2'') by a reviewer: id dlg_ + 16 hex, delegator = the caller, valid from now(), open-ended, any scope, created_by = the caller');
SELECT is((SELECT row(delegator, delegate, revoked_by, revoke_comment)::text FROM approvals.delegations WHERE id = pg_temp.d('def')),
          '(t21_rev,t21_rev2,,)', 'the delegation is stored and readable by the reviewer');
SELECT is(pg_temp.q($$
    WITH d AS (SELECT * FROM approvals.delegate('t21_rev2', valid_until => now() + interval '7 days',
                                                valid_from => now() + interval '1 day', resource_type => 't21_dec',
                                                max_amount => 0, comment => repeat('c', 2000), delegator => 't21_rev')),
         i AS (INSERT INTO pg_temp.td SELECT 'full', id FROM d)
    SELECT row(delegator, valid_from = now() + interval '1 day', valid_until = now() + interval '7 days',
               resource_type, max_amount, length(comment), created_by)::text FROM d$$),
    '(t21_rev,t,t,t21_dec,0,2000,t21_rev)',
    'every argument given (naming oneself as delegator, max_amount 0, a 2000-character comment) is stored as given');
SELECT isnt(pg_temp.d('def'), pg_temp.d('full'), 'two delegations get different ids');
SELECT is(pg_temp.q($$SELECT valid_from = now() FROM approvals.delegate('t21_rev2', valid_from => NULL)$$), 'true',
          'valid_from NULL is taken as now()');
SELECT is(pg_temp.q($$SELECT length(delegate) FROM approvals.delegate(repeat('d', 128))$$), '128',
          'a delegate of 128 characters is accepted');
RESET ROLE;
SET ROLE t21_plat;
SELECT is(pg_temp.q($$SELECT row(delegator, delegate, created_by)::text
                        FROM approvals.delegate('usr_b0', delegator => 'usr_a0', comment => 'plat')$$),
          '(usr_a0,usr_b0,t21_plat)', 'platform may name another delegator; created_by is the calling role');
SET ROLE t21_dr;
SELECT is(pg_temp.q($$SELECT tenant FROM approvals.delegate('t21_dg', tenant => 't21_ta', comment => 'granted')$$), 't21_ta',
          'a reviewer may scope a delegation to a tenant granted to it');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- delegate(): errors (none stores anything)
-- ---------------------------------------------------------------------------
DO $$ BEGIN PERFORM set_config('t21.count', (SELECT count(*) FROM approvals.delegations)::text, true); END $$;
SET ROLE t21_rev;
SELECT throws_ok($$SELECT approvals.delegate(NULL)$$, '22004', NULL, 'delegate NULL is 22004');
SELECT throws_ok($$SELECT approvals.delegate('')$$, '22023', NULL, 'an empty delegate is 22023');
SELECT throws_ok($$SELECT approvals.delegate('t21_rev')$$, '22023', NULL, 'delegating to oneself (delegator defaults to the caller) is 22023');
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2', valid_from => now(), valid_until => now())$$, '22023', NULL,
                 'valid_until = valid_from is 22023');
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2', valid_from => now() + interval '2 days', valid_until => now() + interval '1 day')$$,
                 '22023', NULL, 'valid_until before valid_from is 22023');
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2', valid_until => now() - interval '1 hour')$$, '22023', NULL,
                 'valid_until in the past with the default valid_from (now) is 22023');
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2', max_amount => -0.01)$$, '22023', NULL, 'max_amount < 0 is 22023');
SELECT throws_ok($$SELECT approvals.delegate(repeat('d', 129))$$, '22001', NULL, 'a delegate of 129 characters is 22001');
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2', comment => repeat('c', 2001))$$, '22001',
                 'comment is 2001 characters; the limit is 2000', 'a comment of 2001 characters is 22001');
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2', resource_type => repeat('r', 101))$$, '22001', NULL,
                 'a resource_type of 101 characters is 22001');
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2', delegator => 't21_dr')$$, '42501', NULL,
                 'a reviewer naming another delegator is 42501 (actor rule)');
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2', tenant => 't21_tb')$$, '42501', NULL,
                 'a tenant not granted to the caller is 42501');
SET ROLE t21_req;
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2')$$, '42501', NULL, 'a requester (not reviewer) may not delegate (42501)');
SET ROLE t21_rdr;
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2')$$, '42501', NULL, 'a reader may not delegate (42501)');
SET ROLE t21_coord;
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2')$$, '42501', NULL, 'a coordinator may not delegate (42501)');
SET ROLE t21_adm;
SELECT throws_ok($$SELECT approvals.delegate('t21_rev2')$$, '42501', NULL, 'an admin (not reviewer) may not delegate (42501)');
RESET ROLE;
SELECT throws_ok($$SELECT approvals.delegate('usr_x', delegator => 'usr_x')$$, '22023', NULL,
                 'platform naming the delegate as delegator is 22023');
SELECT throws_ok($$SELECT approvals.delegate('usr_x', delegator => repeat('a', 129))$$, '22001', NULL,
                 'a delegator of 129 characters is 22001');
SELECT throws_ok($$SELECT approvals.delegate('usr_x', delegator => 'usr_y', tenant => repeat('t', 129))$$, '22001', NULL,
                 'a tenant of 129 characters is 22001');
SELECT is((SELECT count(*) FROM approvals.delegations)::text, current_setting('t21.count'),
          'the refused delegate() calls stored nothing');

-- ---------------------------------------------------------------------------
-- revoke_delegation
-- ---------------------------------------------------------------------------
SET ROLE t21_rev;
SELECT lives_ok($$INSERT INTO pg_temp.td SELECT 'r_own', id FROM approvals.delegate('t21_rev2', comment => 'r_own')$$,
                'fixture: t21_rev delegates to t21_rev2');
SET ROLE t21_plat;
SELECT lives_ok($$INSERT INTO pg_temp.td SELECT 'r_plat', id FROM approvals.delegate('usr_b0', delegator => 'usr_a0', comment => 'r_plat')$$,
                'fixture: platform creates a delegation usr_a0 -> usr_b0');
RESET ROLE;
SELECT lives_ok($$SELECT pg_temp.mk('r_adm', 'usr_a0', 'usr_b0')$$, 'fixture: a delegation usr_a0 -> usr_b0 for the admin to revoke');

SET ROLE t21_rev2;
SELECT throws_ok($$SELECT approvals.revoke_delegation(pg_temp.d('r_own'))$$, '42501', NULL,
                 'the delegate may not revoke the delegation (42501)');
SET ROLE t21_dr;
SELECT throws_ok($$SELECT approvals.revoke_delegation(pg_temp.d('r_own'))$$, '42501', NULL,
                 'an unrelated reviewer may not revoke it (42501)');
SET ROLE t21_rev;
SELECT throws_ok($$SELECT approvals.revoke_delegation(pg_temp.d('r_own'), repeat('c', 2001))$$, '22001', NULL,
                 'a revoke comment of 2001 characters is 22001');
RESET ROLE;
SELECT is((SELECT row(revoked_at, revoked_by, revoke_comment)::text FROM approvals.delegations WHERE id = pg_temp.d('r_own')),
          '(,,)', 'the refused revokes left the delegation active');
SET ROLE t21_rev;
SELECT is(pg_temp.q($$SELECT row(id = pg_temp.d('r_own'), revoked_at = now(), revoked_by, revoke_comment, delegate)::text
                        FROM approvals.revoke_delegation(pg_temp.d('r_own'), 'back from leave')$$),
          '(t,t,t21_rev,"back from leave",t21_rev2)',
          'the delegator revokes: the returned row has revoked_at = now(), revoked_by and the comment');
SELECT is((SELECT row(revoked_at = now(), revoked_by, revoke_comment)::text FROM approvals.delegations WHERE id = pg_temp.d('r_own')),
          '(t,t21_rev,"back from leave")', 'the revocation is stored');
SELECT throws_ok($$SELECT approvals.revoke_delegation(pg_temp.d('r_own'))$$, '55000', NULL, 'revoking it a second time is 55000');
SELECT throws_ok($$SELECT approvals.revoke_delegation('dlg_0000000000000000')$$, 'P0002', NULL, 'an unknown delegation is P0002');
SELECT throws_ok($$SELECT approvals.revoke_delegation(NULL)$$, '22004', NULL, 'revoke_delegation(NULL) is 22004');
SELECT is((SELECT revoke_comment FROM approvals.delegations WHERE id = pg_temp.d('r_own')), 'back from leave',
          'the second revoke changed nothing');
SET ROLE t21_plat;
SELECT is(pg_temp.q($$SELECT row(delegator, revoked_by)::text FROM approvals.revoke_delegation(pg_temp.d('r_plat'))$$),
          '(usr_a0,t21_plat)', 'the creator (not the delegator) may revoke');
SET ROLE t21_adm;
SELECT is(pg_temp.q($$SELECT row(delegator, revoked_by)::text FROM approvals.revoke_delegation(pg_temp.d('r_adm'))$$),
          '(usr_a0,t21_adm)', 'an admin may revoke anyone''s delegation');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Deciding through a delegation
-- ---------------------------------------------------------------------------
SELECT lives_ok($$
    SELECT pg_temp.mk(l, f, t, rt, ten, maxa, vfrom, vuntil)
      FROM (VALUES ('a1',  'usr_a1',  'usr_b1',  NULL::text, NULL::text, NULL::numeric, now(), NULL::timestamptz),
                   ('a4',  'usr_a4',  'usr_b4',  NULL, NULL, NULL, now(), NULL),
                   ('c4',  'usr_c4',  'usr_b4',  NULL, NULL, NULL, now(), NULL),
                   ('a5',  'usr_a5',  'usr_b5',  't21_scope', 't21_ta', 100, now(), NULL),
                   ('a6',  'usr_a6',  'usr_b6',  NULL, NULL, NULL, now(), NULL),
                   ('a7',  'usr_a7',  'usr_b7',  NULL, NULL, NULL, now() + interval '1 day', NULL),
                   ('a8',  'usr_a8',  'usr_b8',  NULL, NULL, NULL, now() - interval '2 days', now() - interval '1 day'),
                   ('a9',  'usr_a9',  'usr_b9',  NULL, NULL, NULL, now() - interval '1 day', now()),
                   ('a10', 'usr_a10', 'usr_b10', NULL, NULL, NULL, now(), now() + interval '1 hour'),
                   ('a11', 'usr_a11', 'usr_b11', NULL, NULL, NULL, now(), NULL),
                   ('a12', 'usr_a12', 'usr_b12', NULL, NULL, NULL, now(), NULL),
                   ('b12', 'usr_b12', 'usr_c12', NULL, NULL, NULL, now(), NULL),
                   ('a13', 'usr_a13', 'usr_b13', NULL, NULL, NULL, now(), NULL),
                   ('a14', 'usr_a14', 'usr_b14', NULL, NULL, NULL, now(), NULL),
                   ('a15', 'usr_a15', 'usr_b15', NULL, NULL, NULL, now(), NULL))
           AS v(l, f, t, rt, ten, maxa, vfrom, vuntil)$$,
    'fixture: fifteen delegations (usr_aN -> usr_bN, two to usr_b4, and the chain usr_a12 -> usr_b12 -> usr_c12)');
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't21_self', allow_self_approval => true)$$,
                'fixture: resource type t21_self allows self-approval');
SELECT lives_ok($$
    SELECT pg_temp.sub(cid, req, route, rt, ten, amt, quorum)
      FROM (VALUES ('tap21_a1',  'usr_req', ARRAY['usr_a1'],            't21_dec',   NULL::text, NULL::numeric, NULL::int),
                   ('tap21_a2',  'usr_req', ARRAY['usr_a1'],            't21_dec',   NULL, NULL, NULL),
                   ('tap21_a3',  'usr_req', ARRAY['usr_a1', 'usr_c1'],  't21_dec',   NULL, NULL, NULL),
                   ('tap21_b1',  'usr_req', NULL,                       't21_dec',   NULL, NULL, NULL),
                   ('tap21_b2',  'usr_req', NULL,                       't21_dec',   NULL, NULL, NULL),
                   ('tap21_b3',  'usr_req', NULL,                       't21_dec',   NULL, NULL, NULL),
                   ('tap21_c1',  'usr_req', ARRAY['usr_d1'],            't21_dec',   NULL, NULL, NULL),
                   ('tap21_c2',  'usr_req', ARRAY['usr_b1'],            't21_dec',   NULL, NULL, NULL),
                   ('tap21_e1',  'usr_req', ARRAY['usr_a5'],            't21_scope', 't21_ta', 100, NULL),
                   ('tap21_e2',  'usr_req', ARRAY['usr_a5'],            't21_dec',   't21_ta', 50, NULL),
                   ('tap21_e3',  'usr_req', ARRAY['usr_a5'],            't21_scope', 't21_tb', 50, NULL),
                   ('tap21_e4',  'usr_req', ARRAY['usr_a5'],            't21_scope', NULL, 50, NULL),
                   ('tap21_e5',  'usr_req', ARRAY['usr_a5'],            't21_scope', 't21_ta', 100.01, NULL),
                   ('tap21_e6',  'usr_req', ARRAY['usr_a5'],            't21_scope', 't21_ta', NULL, NULL),
                   ('tap21_e8',  'usr_req', ARRAY['usr_a6'],            't21_scope', 't21_tb', 1e9, NULL),
                   ('tap21_f1',  'usr_req', ARRAY['usr_a7'],            't21_dec',   NULL, NULL, NULL),
                   ('tap21_f2',  'usr_req', ARRAY['usr_a8'],            't21_dec',   NULL, NULL, NULL),
                   ('tap21_f3',  'usr_req', ARRAY['usr_a9'],            't21_dec',   NULL, NULL, NULL),
                   ('tap21_f4',  'usr_req', ARRAY['usr_a10'],           't21_dec',   NULL, NULL, NULL),
                   ('tap21_f5',  'usr_req', ARRAY['usr_a11'],           't21_dec',   NULL, NULL, NULL),
                   ('tap21_f6',  'usr_req', ARRAY['usr_a11'],           't21_dec',   NULL, NULL, NULL),
                   ('tap21_g1',  'usr_req', ARRAY['usr_a12'],           't21_dec',   NULL, NULL, NULL),
                   ('tap21_g2',  'usr_req', ARRAY['usr_b12'],           't21_dec',   NULL, NULL, NULL),
                   ('tap21_h1',  'usr_b13', ARRAY['usr_a13'],           't21_dec',   NULL, NULL, NULL),
                   ('tap21_h2',  'usr_a13', ARRAY['usr_a13'],           't21_dec',   NULL, NULL, NULL),
                   ('tap21_h3a', 'usr_b13', ARRAY['usr_a13'],           't21_self',  NULL, NULL, NULL),
                   ('tap21_h3b', 'usr_a13', NULL,                       't21_self',  NULL, NULL, NULL),
                   ('tap21_h3c', 'usr_a13', NULL,                       't21_self',  NULL, NULL, NULL),
                   ('tap21_i1',  'usr_req', NULL,                       't21_dec',   NULL, NULL, 2),
                   ('tap21_i2',  'usr_req', NULL,                       't21_dec',   NULL, NULL, 2),
                   ('tap21_m1',  'usr_a15', NULL,                       't21_dec',   NULL, NULL, NULL),
                   ('tap21_m2',  'usr_b15', NULL,                       't21_dec',   NULL, NULL, NULL))
           AS v(cid, req, route, rt, ten, amt, quorum)$$,
    'fixture: the claims decided below');
SELECT lives_ok($$SELECT approvals.submit('t21_dec', 'tap21_d1', 'h', id => 'tap21_d1', actor => 'usr_req',
                                          steps => '[{"name": "pair", "approvers": ["usr_a4", "usr_c4"], "required": 1}]')$$,
                'fixture: a claim whose step names usr_a4 and usr_c4 (both delegated to usr_b4)');

-- One delegation applies and the delegate has no right of its own: on_behalf_of may be left NULL
SELECT is(pg_temp.q($$SELECT pg_temp.st(id) FROM approvals.decide('tap21_a1', 'approved', actor => 'usr_b1')$$),
          'approved 1 {usr_a1,usr_b1}',
          'the delegate of the assignee approves with on_behalf_of NULL: approved, approved_by has delegator and delegate');
SELECT is(pg_temp.dev('tap21_a1'), 'approved:usr_b1:usr_a1', 'the event records actor = the delegate, on_behalf_of = the delegator');
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap21_a2', 'rejected', 'no', actor => 'usr_b1', on_behalf_of => 'usr_a1')$$),
          'rejected', 'the delegate rejects naming the delegator');
SELECT is(pg_temp.dev('tap21_a2'), 'rejected:usr_b1:usr_a1', 'the rejected event has on_behalf_of');
SELECT is(pg_temp.q($$SELECT row(status, assignee)::text FROM approvals.decide('tap21_a3', 'abstained', actor => 'usr_b1')$$),
          '(pending,usr_c1)', 'the delegate abstains for the assignee: the route moves on to usr_c1');
SELECT is(pg_temp.dev('tap21_a3'), 'abstained:usr_b1:usr_a1', 'the abstained event has on_behalf_of');
SELECT throws_ok($$SELECT approvals.decide('tap21_a3', 'approved', actor => 'usr_b1')$$, '42501', NULL,
                 'once the route has moved past the delegator, the delegate has nothing to decide (42501)');

-- The delegate's own right wins when on_behalf_of is NULL
SELECT is(pg_temp.q($$SELECT pg_temp.st(id) FROM approvals.decide('tap21_b1', 'approved', actor => 'usr_b1')$$),
          'approved 1 {usr_b1}', 'a claim anyone may decide: the delegate approves in its own right (on_behalf_of NULL)');
SELECT is(pg_temp.dev('tap21_b1'), 'approved:usr_b1:-', 'the event has no on_behalf_of');
SELECT is(pg_temp.q($$SELECT pg_temp.st(id) FROM approvals.decide('tap21_b2', 'approved', actor => 'usr_b1', on_behalf_of => 'usr_a1')$$),
          'approved 1 {usr_a1,usr_b1}', 'naming on_behalf_of on the same kind of claim acts for the delegator');
SELECT is(pg_temp.dev('tap21_b2'), 'approved:usr_b1:usr_a1', 'and the event records it');
SELECT throws_ok($$SELECT approvals.decide('tap21_b3', 'approved', actor => 'usr_b1', on_behalf_of => 'usr_zz')$$, '42501', NULL,
                 'on_behalf_of someone who never delegated to the actor is 42501');
SELECT throws_ok($$SELECT approvals.decide('tap21_c1', 'approved', actor => 'usr_b1', on_behalf_of => 'usr_a1')$$, '42501', NULL,
                 'on_behalf_of a delegator who has no right on the claim (not the assignee) is 42501');
SELECT throws_ok($$SELECT approvals.decide('tap21_c1', 'approved', actor => 'usr_b1')$$, '42501', NULL,
                 'with on_behalf_of NULL, no delegation applies and no own right: 42501');
SELECT throws_ok($$SELECT approvals.decide('tap21_c2', 'approved', actor => 'usr_a1', on_behalf_of => 'usr_b1')$$, '42501', NULL,
                 'a delegation works one way only: the delegator may not act for its delegate (42501)');
SELECT is(pg_temp.st('tap21_b3') || ' ' || pg_temp.st('tap21_c1') || ' ' || pg_temp.st('tap21_c2'),
          'pending 0 {} pending 0 {} pending 0 {}', 'the refused decisions changed nothing');

-- Several delegations apply: 22023 naming them; naming one works
SELECT is(pg_temp.q($$SELECT approvals.decide('tap21_d1', 'approved', actor => 'usr_b4')$$) ~ '^ERROR 22023: .*usr_a4'
          AND pg_temp.q($$SELECT approvals.decide('tap21_d1', 'approved', actor => 'usr_b4')$$) ~ '^ERROR 22023: .*usr_c4',
          true, 'two delegations apply and on_behalf_of is NULL: 22023 naming both delegators');
SELECT is(pg_temp.st('tap21_d1'), 'pending 0 {}', 'the ambiguous decision changed nothing');
SELECT is(pg_temp.q($$SELECT pg_temp.st(id) FROM approvals.decide('tap21_d1', 'approved', actor => 'usr_b4', on_behalf_of => 'usr_c4')$$),
          'approved 1 {usr_b4,usr_c4}', 'naming one of them (usr_c4) decides');
SELECT is((SELECT string_agg(action || ':' || actor || ':' || coalesce(on_behalf_of, '-'), ' ' ORDER BY id)
             FROM approvals.events WHERE claim_id = 'tap21_d1' AND action = 'approved'),
          'approved:usr_b4:usr_c4', 'the approved event names usr_c4');
SELECT lives_ok($$SELECT approvals.submit('t21_dec', 'tap21_d2', 'h', id => 'tap21_d2', actor => 'usr_req',
                                          steps => '[{"name": "trio", "approvers": ["usr_a4", "usr_x4", "usr_y4"], "required": 2}]')$$,
                'fixture: a step naming usr_a4 (delegated to usr_b4) but not usr_c4');
SELECT is(pg_temp.q($$SELECT row(status, step_abstained)::text FROM approvals.decide('tap21_d2', 'abstained', actor => 'usr_b4')$$),
          '(pending,{usr_a4})', 'only one delegation applies here: the delegate abstains for usr_a4, who leaves the step');
SELECT is(pg_temp.dev('tap21_d2') || ' ' || regexp_replace(pg_temp.q($$SELECT approvals.decide('tap21_d2', 'approved', actor => 'usr_a4')$$), ':.*', ''),
          'abstained:usr_b4:usr_a4 ERROR 42501', 'the event names usr_a4, and usr_a4 may no longer approve in the step (42501)');

-- Scope: resource type, tenant, max_amount
SELECT is(pg_temp.q($$SELECT pg_temp.st(id) FROM approvals.decide('tap21_e1', 'approved', actor => 'usr_b5')$$),
          'approved 1 {usr_a5,usr_b5}', 'in scope (resource type, tenant, amount = max_amount): the delegate decides');
SELECT throws_ok($$SELECT approvals.decide('tap21_e2', 'approved', actor => 'usr_b5')$$, '42501', NULL,
                 'another resource type is out of scope (42501)');
SELECT throws_ok($$SELECT approvals.decide('tap21_e3', 'approved', actor => 'usr_b5')$$, '42501', NULL,
                 'another tenant is out of scope (42501)');
SELECT throws_ok($$SELECT approvals.decide('tap21_e4', 'approved', actor => 'usr_b5')$$, '42501', NULL,
                 'a claim without tenant is out of the scope of a tenant''s delegation (42501)');
SELECT throws_ok($$SELECT approvals.decide('tap21_e5', 'approved', actor => 'usr_b5')$$, '42501', NULL,
                 'an amount above max_amount is out of scope (42501)');
SELECT throws_ok($$SELECT approvals.decide('tap21_e5', 'approved', actor => 'usr_b5', on_behalf_of => 'usr_a5')$$, '42501', NULL,
                 'naming the delegator does not help when out of scope (42501)');
SELECT throws_ok($$SELECT approvals.decide('tap21_e6', 'approved', actor => 'usr_b5')$$, '42501', NULL,
                 'a claim without amount is out of the scope of a delegation with max_amount (42501)');
SELECT is(pg_temp.q($$SELECT pg_temp.st(id) FROM approvals.decide('tap21_e8', 'approved', actor => 'usr_b6')$$),
          'approved 1 {usr_a6,usr_b6}', 'a delegation with no scope covers any resource type, tenant and amount');
SELECT is((SELECT string_agg(status, ',' ORDER BY id) FROM approvals.claims WHERE id IN ('tap21_e2', 'tap21_e3', 'tap21_e4', 'tap21_e5', 'tap21_e6')),
          'pending,pending,pending,pending,pending', 'the out-of-scope claims are still pending');

-- The active window and revocation
SELECT throws_ok($$SELECT approvals.decide('tap21_f1', 'approved', actor => 'usr_b7')$$, '42501', NULL,
                 'a delegation not yet valid (valid_from tomorrow) gives nothing (42501)');
SELECT throws_ok($$SELECT approvals.decide('tap21_f2', 'approved', actor => 'usr_b8')$$, '42501', NULL,
                 'an expired delegation (valid_until yesterday) gives nothing (42501)');
SELECT throws_ok($$SELECT approvals.decide('tap21_f3', 'approved', actor => 'usr_b9')$$, '42501', NULL,
                 'a delegation whose valid_until is now() has ended (42501)');
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap21_f4', 'approved', actor => 'usr_b10')$$), 'approved',
          'a delegation valid from now() until in an hour is active');
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap21_f6', 'approved', actor => 'usr_b11')$$), 'approved',
          'before the revocation the delegate decides f6');
SELECT lives_ok($$SELECT approvals.revoke_delegation(pg_temp.d('a11'))$$, 'the delegation usr_a11 -> usr_b11 is revoked');
SELECT throws_ok($$SELECT approvals.decide('tap21_f5', 'approved', actor => 'usr_b11')$$, '42501', NULL,
                 'a revoked delegation gives nothing (42501)');
SELECT throws_ok($$SELECT approvals.decide('tap21_f5', 'approved', actor => 'usr_b11', on_behalf_of => 'usr_a11')$$, '42501', NULL,
                 'naming the delegator of a revoked delegation is 42501');
SELECT is(pg_temp.st('tap21_f6') || ' ' || pg_temp.dev('tap21_f6'), 'approved 1 {usr_a11,usr_b11} approved:usr_b11:usr_a11',
          'the decision made before the revocation stays');
SELECT is(pg_temp.st('tap21_f1') || ' ' || pg_temp.st('tap21_f2') || ' ' || pg_temp.st('tap21_f3') || ' ' || pg_temp.st('tap21_f5'),
          'pending 0 {} pending 0 {} pending 0 {} pending 0 {}', 'the refused claims are unchanged');

-- No cascade
SELECT throws_ok($$SELECT approvals.decide('tap21_g1', 'approved', actor => 'usr_c12')$$, '42501', NULL,
                 'no cascade: the delegate''s delegate gets nothing from the first delegator (on_behalf_of NULL)');
SELECT throws_ok($$SELECT approvals.decide('tap21_g1', 'approved', actor => 'usr_c12', on_behalf_of => 'usr_a12')$$, '42501', NULL,
                 'no cascade: naming the first delegator is 42501');
SELECT throws_ok($$SELECT approvals.decide('tap21_g1', 'approved', actor => 'usr_c12', on_behalf_of => 'usr_b12')$$, '42501', NULL,
                 'no cascade: naming the middle delegator (who has no own right on the claim) is 42501');
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap21_g2', 'approved', actor => 'usr_c12')$$), 'approved',
          'usr_c12 does decide the claims of its own delegator usr_b12');
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap21_g1', 'approved', actor => 'usr_b12')$$), 'approved',
          'and usr_b12 decides usr_a12''s claim');

-- Nobody decides a claim they (or the delegator they act for) requested
SELECT throws_ok($$SELECT approvals.decide('tap21_h1', 'approved', actor => 'usr_b13')$$, '42501', NULL,
                 'the delegate may not decide its own request through the delegation (on_behalf_of NULL)');
SELECT throws_ok($$SELECT approvals.decide('tap21_h1', 'approved', actor => 'usr_b13', on_behalf_of => 'usr_a13')$$, '42501', NULL,
                 'nor naming the delegator');
SELECT throws_ok($$SELECT approvals.decide('tap21_h2', 'approved', actor => 'usr_b13')$$, '42501', NULL,
                 'the delegate may not decide the delegator''s own request (on_behalf_of NULL)');
SELECT throws_ok($$SELECT approvals.decide('tap21_h2', 'approved', actor => 'usr_b13', on_behalf_of => 'usr_a13')$$, '42501', NULL,
                 'nor naming the delegator');
SELECT throws_ok($$SELECT approvals.decide('tap21_h3a', 'approved', actor => 'usr_b13', on_behalf_of => 'usr_a13')$$, '42501', NULL,
                 'with self-approval allowed, the delegate still may not decide its own request through the delegation');
SELECT throws_ok($$SELECT approvals.decide('tap21_h3b', 'approved', actor => 'usr_b13', on_behalf_of => 'usr_a13')$$, '42501', NULL,
                 'with self-approval allowed, the delegate still may not decide the delegator''s request for the delegator');
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap21_h3c', 'approved', actor => 'usr_a13')$$), 'approved',
          'control: under t21_self the requester usr_a13 may approve its own claim itself');
SELECT is(pg_temp.st('tap21_h1') || ' ' || pg_temp.st('tap21_h2') || ' ' || pg_temp.st('tap21_h3a') || ' ' || pg_temp.st('tap21_h3b'),
          'pending 0 {} pending 0 {} pending 0 {} pending 0 {}', 'the refused claims are unchanged');

-- The approval counts as the delegator's
SELECT is(pg_temp.q($$SELECT pg_temp.st(id) FROM approvals.decide('tap21_i1', 'approved', actor => 'usr_b14', on_behalf_of => 'usr_a14')$$),
          'pending 1 {usr_a14,usr_b14}', 'quorum 2: the delegate approves for usr_a14; one approval');
SELECT throws_ok($$SELECT approvals.decide('tap21_i1', 'approved', actor => 'usr_a14')$$, '42501', NULL,
                 'the delegator may not approve as well (42501)');
SELECT throws_ok($$SELECT approvals.decide('tap21_i1', 'approved', actor => 'usr_b14')$$, '42501', NULL,
                 'nor may the delegate approve again in its own right (42501)');
SELECT is(pg_temp.q($$SELECT pg_temp.st(id) FROM approvals.decide('tap21_i1', 'approved', actor => 'usr_x14')$$),
          'approved 2 {usr_a14,usr_b14,usr_x14}', 'a third person completes the quorum');
SELECT is(pg_temp.q($$SELECT pg_temp.st(id) FROM approvals.decide('tap21_i2', 'approved', actor => 'usr_a14')$$),
          'pending 1 {usr_a14}', 'quorum 2: the delegator approves first');
SELECT throws_ok($$SELECT approvals.decide('tap21_i2', 'approved', actor => 'usr_b14', on_behalf_of => 'usr_a14')$$, '42501', NULL,
                 'then its delegate may not approve for it (42501)');
SELECT is(pg_temp.st('tap21_i2') || ' ' || pg_temp.dev('tap21_i2'), 'pending 1 {usr_a14} approved:usr_a14:-',
          'the refused approval changed nothing');

-- ---------------------------------------------------------------------------
-- Tenant isolation applies to the delegate
-- ---------------------------------------------------------------------------
SET ROLE t21_dr;
SELECT lives_ok($$INSERT INTO pg_temp.td SELECT 'k', id FROM approvals.delegate('t21_dg', comment => 'k')$$,
                't21_dr (tenant t21_ta) delegates everything to t21_dg (no tenant)');
RESET ROLE;
SELECT lives_ok($$SELECT pg_temp.sub('tap21_k1', 'usr_req', ARRAY['t21_dr'], 't21_dec', 't21_ta'),
                         pg_temp.sub('tap21_k2', 'usr_req', ARRAY['t21_dr'], 't21_dec', NULL)$$,
                'fixture: claims routed to t21_dr in tenant t21_ta and in no tenant');
SET ROLE t21_dg;
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id IN ('tap21_k1', 'tap21_k2')), 1,
          't21_dg sees only the tenant-less claim');
SELECT throws_ok($$SELECT approvals.decide('tap21_k1', 'approved')$$, '42501', NULL,
                 'the delegate without the tenant grant may not decide the delegator''s tenant claim (42501)');
SELECT throws_ok($$SELECT approvals.decide('tap21_k1', 'approved', on_behalf_of => 't21_dr')$$, '42501', NULL,
                 'nor naming the delegator (42501)');
SELECT is(pg_temp.q($$SELECT row(status, approval_count)::text FROM approvals.decide('tap21_k2', 'approved')$$), '(approved,1)',
          'the delegate decides the delegator''s tenant-less claim');
RESET ROLE;
SELECT is(pg_temp.st('tap21_k1') || ' ' || pg_temp.dev('tap21_k2'), 'pending 0 {} approved:t21_dg:t21_dr',
          'the tenant claim is unchanged; the other decision is recorded for t21_dr');
SELECT lives_ok($$SELECT approvals.grant_tenant('t21_ta', 't21_dg')$$, 'the admin grants t21_ta to t21_dg');
SET ROLE t21_dg;
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap21_k1', 'approved')$$), 'approved',
          'with the grant the delegate decides the tenant claim');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- approvals.delegations: row-level security and no direct writes
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT pg_temp.mk('l_null', 'usr_l', 'usr_m'), pg_temp.mk('l_ta', 'usr_l', 'usr_m', ten => 't21_ta'),
                         pg_temp.mk('l_tb', 'usr_l', 'usr_m', ten => 't21_tb')$$,
                'fixture: delegations in no tenant, t21_ta and t21_tb');
CREATE FUNCTION pg_temp.seen_dlg() RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(t.label, ' ' ORDER BY t.label), '')
      FROM approvals.delegations d JOIN pg_temp.td t ON t.id = d.id WHERE t.label LIKE 'l\_%'
$f$;
SET ROLE t21_rdr;
SELECT is(pg_temp.seen_dlg(), 'l_null l_ta', 'a reader granted t21_ta sees the tenant-less and t21_ta delegations');
SET ROLE t21_rev;
SELECT is(pg_temp.seen_dlg(), 'l_null', 'a reviewer without tenants sees only the tenant-less one');
SET ROLE t21_plat;
SELECT is(pg_temp.seen_dlg(), 'l_null l_ta l_tb', 'platform sees every tenant''s delegations');
SET ROLE t21_adm;
SELECT is(pg_temp.seen_dlg(), 'l_null l_ta l_tb', 'admin sees every tenant''s delegations');
SET ROLE t21_none;
SELECT throws_ok($$SELECT count(*) FROM approvals.delegations$$, '42501', NULL, 'a role with no approvals role may not read delegations');
SET ROLE t21_rev;
SELECT throws_ok($$UPDATE approvals.delegations SET revoked_at = now() WHERE id = pg_temp.d('l_null')$$, '42501', NULL,
                 'a reviewer may not update delegations directly');
SELECT throws_ok($$DELETE FROM approvals.delegations$$, '42501', NULL, 'nor delete them');
SELECT throws_ok($$INSERT INTO approvals.delegations (id, delegator, delegate) VALUES ('dlg_1111111111111111', 't21_rev', 'usr_x')$$,
                 '42501', NULL, 'nor insert them');
SET ROLE t21_adm;
SELECT throws_ok($$UPDATE approvals.delegations SET revoked_at = now() WHERE id = pg_temp.d('l_null')$$, '42501', NULL,
                 'an admin may not update delegations directly either');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Batches ignore delegation
-- ---------------------------------------------------------------------------
SELECT is((SELECT string_agg(claim_id || ':' || decision || coalesce(':' || error, ''), ' ' ORDER BY claim_id)
             FROM approvals.process_batch((approvals.create_batch(ARRAY['tap21_m1', 'tap21_m2'], coordinator => 'usr_b15')).id)),
          'tap21_m1:approved tap21_m2:failed:Requester cannot decide own claim',
          'a batch by usr_b15 approves the claim its delegator requested and fails only on its own request');
SELECT is(pg_temp.dev('tap21_m1'), 'approved:usr_b15:-', 'the batch''s event has no on_behalf_of');
SELECT is((SELECT 'usr_a15' = ANY (approved_by) FROM approvals.claims WHERE id = 'tap21_m1'), false,
          'the batch approval is not counted as the delegator''s');

-- Events carry on_behalf_of as a column readable by a reader
SET ROLE t21_rdr;
SELECT is((SELECT on_behalf_of FROM approvals.events WHERE claim_id = 'tap21_a1' AND action = 'approved'), 'usr_a1',
          'a reader sees events.on_behalf_of');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
