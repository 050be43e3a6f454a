-- 01_call_roles: the shape of the claims API (relations, functions, argument
-- names), the six group roles, what each of them (and a role with none) may do,
-- that PUBLIC gets nothing, and that approvals.events is append-only.
BEGIN;
SELECT plan(81);

-- ---------------------------------------------------------------------------
-- Helpers and fixtures (all rolled back at the end)
-- ---------------------------------------------------------------------------
-- pg_temp.q(sql): the first column of the first row of sql as text, or
-- 'ERROR <sqlstate>: <message>' (the statement's effects are then rolled back).
CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;

CREATE ROLE t01_nobody;
CREATE ROLE t01_reader IN ROLE approvals_reader;
CREATE ROLE t01_req    IN ROLE approvals_requester;
CREATE ROLE t01_rev    IN ROLE approvals_reviewer;
CREATE ROLE t01_coord  IN ROLE approvals_coordinator;
CREATE ROLE t01_adm    IN ROLE approvals_admin;
CREATE ROLE t01_plat   IN ROLE approvals_platform;

-- The public claim functions, by signature (to_regprocedure: NULL when missing).
CREATE TEMP TABLE t01_fns (name text, sig text);
INSERT INTO t01_fns VALUES
 ('api_respond',  'approvals.api_respond(text,jsonb,text)'),
 ('api_submit',   'approvals.api_submit(jsonb)'),
 ('cancel_claim', 'approvals.cancel_claim(text,text,text)'),
 ('decide',       'approvals.decide(text,text,text,text,text,text)'),
 ('delegate',     'approvals.delegate(text,timestamptz,timestamptz,text,text,numeric,text,text)'),
 ('drop_policy',  'approvals.drop_policy(text,text,text)'),
 ('expire_due',   'approvals.expire_due()'),
 ('grant_tenant', 'approvals.grant_tenant(text,regrole)'),
 ('inbox',        'approvals.inbox(text,integer,text)'),
 ('revoke_delegation', 'approvals.revoke_delegation(text,text)'),
 ('revoke_tenant','approvals.revoke_tenant(text,regrole)'),
 ('set_handler',  'approvals.set_handler(text,regprocedure)'),
 ('set_policy',   'approvals.set_policy(text,text,text,text[],integer,numeric,interval,text,boolean,jsonb)'),
 ('submit',       'approvals.submit(text,text,text,text,text,text,text,text,numeric,text,text,text,jsonb,text[],integer,text,timestamptz,text,jsonb)');
GRANT SELECT ON t01_fns TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Relations and columns
-- ---------------------------------------------------------------------------
SELECT has_schema('approvals', 'schema approvals exists');
SELECT has_table('approvals', 'claims', 'table approvals.claims exists');
SELECT has_table('approvals', 'events', 'table approvals.events exists');

SELECT is(
    ARRAY(SELECT c FROM unnest(ARRAY[
        'id','tenant','resource_type','resource_id','kind','snapshot_hash','status',
        'requester','reviewer','note','title','context','fields','amount','currency',
        'priority','approvers','required_approvals','approval_count','assignee','batch_id',
        'created_at','decided_at','expires_at',
        'route_position','approved_by','allow_self_approval','on_expiry','expires_in',
        'updated_at','idempotency_key','steps','current_step','step_approvals',
        'step_abstained','step_escalated','named_approvers','policy_id','policy_version']) c
          WHERE NOT EXISTS (SELECT 1 FROM information_schema.columns
                             WHERE table_schema = 'approvals' AND table_name = 'claims'
                               AND column_name = c)),
    ARRAY[]::text[],
    'approvals.claims has every documented column (none missing)');

SELECT is(
    ARRAY(SELECT c FROM unnest(ARRAY[
        'id','claim_id','batch_id','tenant','actor','action','from_status','to_status',
        'comment','snapshot_hash','at','on_behalf_of']) c
          WHERE NOT EXISTS (SELECT 1 FROM information_schema.columns
                             WHERE table_schema = 'approvals' AND table_name = 'events'
                               AND column_name = c)),
    ARRAY[]::text[],
    'approvals.events has every documented column (none missing)');

SELECT is(
    (SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attname)
       FROM pg_attribute
      WHERE attrelid = 'approvals.claims'::regclass
        AND attname IN ('approvers','approved_by','fields','amount','required_approvals',
                        'approval_count','route_position','allow_self_approval',
                        'expires_in','created_at','decided_at','expires_at','updated_at')),
    'allow_self_approval boolean, amount numeric, approval_count integer, approved_by text[], '
    'approvers text[], created_at timestamp with time zone, decided_at timestamp with time zone, '
    'expires_at timestamp with time zone, expires_in interval, fields jsonb, '
    'required_approvals integer, route_position integer, updated_at timestamp with time zone',
    'approvals.claims columns have the documented types');

-- ---------------------------------------------------------------------------
-- Functions: existence, argument names, return types
-- ---------------------------------------------------------------------------
SELECT is(ARRAY(SELECT name FROM t01_fns WHERE to_regprocedure(sig) IS NULL ORDER BY name),
          ARRAY[]::text[], 'every claim function exists with the documented argument types');

SELECT is((SELECT proargnames FROM pg_proc WHERE oid = to_regprocedure(
              (SELECT sig FROM t01_fns WHERE name = 'submit'))),
          ARRAY['resource_type','resource_id','snapshot_hash','tenant','kind','note','actor','id',
                'amount','currency','title','context','fields','approvers','required_approvals',
                'priority','expires_at','idempotency_key','steps'],
          'submit has the documented argument names, in order');
SELECT is((SELECT pronargdefaults::int FROM pg_proc WHERE oid = to_regprocedure(
              (SELECT sig FROM t01_fns WHERE name = 'submit'))),
          16, 'submit: every argument after snapshot_hash has a default');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = to_regprocedure(
              (SELECT sig FROM t01_fns WHERE name = 'decide'))),
          ARRAY['claim_id','outcome','comment','snapshot_hash','actor','on_behalf_of'],
          'decide has the documented argument names');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = to_regprocedure(
              (SELECT sig FROM t01_fns WHERE name = 'cancel_claim'))),
          ARRAY['claim_id','comment','actor'],
          'cancel_claim has the documented argument names');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = to_regprocedure(
              (SELECT sig FROM t01_fns WHERE name = 'set_policy'))),
          ARRAY['resource_type','kind','tenant','approvers','required_approvals',
                'auto_approve_below','expires_in','on_expiry','allow_self_approval','steps'],
          'set_policy has the documented argument names');
SELECT is((SELECT pronargdefaults::int FROM pg_proc WHERE oid = to_regprocedure(
              (SELECT sig FROM t01_fns WHERE name = 'set_policy'))),
          10, 'set_policy: every argument has a default');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = to_regprocedure(
              (SELECT sig FROM t01_fns WHERE name = 'set_handler'))),
          ARRAY['resource_type','handler'], 'set_handler has the documented argument names');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = to_regprocedure(
              (SELECT sig FROM t01_fns WHERE name = 'grant_tenant'))),
          ARRAY['tenant','member'], 'grant_tenant has the documented argument names');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = to_regprocedure(
              (SELECT sig FROM t01_fns WHERE name = 'revoke_tenant'))),
          ARRAY['tenant','member'], 'revoke_tenant has the documented argument names');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = to_regprocedure(
              (SELECT sig FROM t01_fns WHERE name = 'api_submit'))),
          ARRAY['body'], 'api_submit has the documented argument name');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = to_regprocedure(
              (SELECT sig FROM t01_fns WHERE name = 'api_respond'))),
          ARRAY['claim_id','body','actor'], 'api_respond has the documented argument names');

SELECT is(
    (SELECT string_agg(f.name || ' ' || p.prorettype::regtype::text, ', ' ORDER BY f.name)
       FROM t01_fns f JOIN pg_proc p ON p.oid = to_regprocedure(f.sig)),
    'api_respond jsonb, api_submit jsonb, cancel_claim approvals.claims, '
    'decide approvals.claims, delegate approvals.delegations, drop_policy integer, '
    'expire_due integer, grant_tenant void, inbox approvals.claims, '
    'revoke_delegation approvals.delegations, revoke_tenant void, '
    'set_handler void, set_policy void, submit approvals.claims',
    'claim functions have the documented return types');

-- ---------------------------------------------------------------------------
-- Group roles and memberships
-- ---------------------------------------------------------------------------
SELECT is(
    ARRAY(SELECT rolname::text FROM pg_roles
           WHERE rolname IN ('approvals_reader','approvals_requester','approvals_reviewer',
                             'approvals_coordinator','approvals_admin','approvals_platform')
             AND NOT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls
           ORDER BY 1),
    ARRAY['approvals_admin','approvals_coordinator','approvals_platform','approvals_reader',
          'approvals_requester','approvals_reviewer'],
    'the six group roles exist, NOLOGIN, not superuser, not BYPASSRLS');

SELECT is(
    ARRAY(SELECT r FROM unnest(ARRAY['approvals_requester','approvals_reviewer',
                                     'approvals_coordinator','approvals_admin']) r
           WHERE pg_has_role(r, 'approvals_reader', 'USAGE') ORDER BY 1),
    ARRAY['approvals_admin','approvals_coordinator','approvals_requester','approvals_reviewer'],
    'requester, reviewer, coordinator and admin inherit approvals_reader');
SELECT is(
    ARRAY(SELECT r FROM unnest(ARRAY['approvals_reader','approvals_requester','approvals_reviewer',
                                     'approvals_coordinator','approvals_admin']) r
           WHERE pg_has_role('approvals_platform', r, 'USAGE') ORDER BY 1),
    ARRAY['approvals_coordinator','approvals_reader','approvals_requester','approvals_reviewer'],
    'approvals_platform inherits requester, reviewer, coordinator and reader, not admin');
SELECT is(
    ARRAY(SELECT a || '>' || b
            FROM unnest(ARRAY['approvals_requester','approvals_reviewer',
                              'approvals_coordinator','approvals_admin']) a,
                 unnest(ARRAY['approvals_requester','approvals_reviewer',
                              'approvals_coordinator','approvals_admin']) b
           WHERE a <> b AND pg_has_role(a, b, 'MEMBER') ORDER BY 1),
    ARRAY[]::text[],
    'requester, reviewer, coordinator and admin are not members of one another');

-- ---------------------------------------------------------------------------
-- Privileges: PUBLIC gets nothing, nobody writes tables, EXECUTE matrix
-- ---------------------------------------------------------------------------
SELECT is(
    (SELECT count(*)::int FROM pg_namespace n,
            aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
      WHERE n.nspname = 'approvals' AND a.grantee = 0),
    0, 'PUBLIC has no privilege on schema approvals');
SELECT is(
    ARRAY(SELECT DISTINCT p.oid::regprocedure::text FROM pg_proc p,
                 aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
           WHERE p.pronamespace = 'approvals'::regnamespace AND a.grantee = 0 ORDER BY 1),
    ARRAY[]::text[], 'PUBLIC may execute no function in schema approvals');
SELECT is(
    ARRAY(SELECT DISTINCT c.oid::regclass::text FROM pg_class c,
                 aclexplode(coalesce(c.relacl, acldefault(
                     CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
           WHERE c.relnamespace = 'approvals'::regnamespace AND a.grantee = 0 ORDER BY 1),
    ARRAY[]::text[], 'PUBLIC has no privilege on any relation in schema approvals');
SELECT ok(NOT has_schema_privilege('t01_nobody', 'approvals', 'USAGE'),
          'a role with no approvals role has no USAGE on schema approvals');

SELECT is(
    ARRAY(SELECT r || ' ' || priv || ' ' || c.oid::regclass::text
            FROM pg_class c,
                 unnest(ARRAY['approvals_reader','approvals_requester','approvals_reviewer',
                              'approvals_coordinator','approvals_admin','approvals_platform',
                              't01_nobody']) r,
                 unnest(ARRAY['INSERT','UPDATE','DELETE','TRUNCATE']) priv
           WHERE c.relnamespace = 'approvals'::regnamespace AND c.relkind IN ('r','p','v','f')
             AND has_table_privilege(r, c.oid, priv)
           ORDER BY 1),
    ARRAY[]::text[],
    'no approvals role may INSERT, UPDATE, DELETE or TRUNCATE any approvals relation');
SELECT ok(has_table_privilege('approvals_reader', 'approvals.claims', 'SELECT')
          AND has_table_privilege('approvals_reader', 'approvals.events', 'SELECT'),
          'approvals_reader may SELECT approvals.claims and approvals.events');
SELECT ok(NOT has_table_privilege('t01_nobody', 'approvals.claims', 'SELECT')
          AND NOT has_table_privilege('t01_nobody', 'approvals.events', 'SELECT'),
          'a role with no approvals role may not SELECT claims or events');

SELECT is(ARRAY(SELECT name FROM t01_fns
                 WHERE has_function_privilege('t01_nobody', to_regprocedure(sig), 'EXECUTE')
                 ORDER BY name),
          ARRAY[]::text[], 'EXECUTE matrix: a role with no approvals role executes nothing');
SELECT is(ARRAY(SELECT name FROM t01_fns
                 WHERE has_function_privilege('approvals_reader', to_regprocedure(sig), 'EXECUTE')
                 ORDER BY name),
          ARRAY[]::text[], 'EXECUTE matrix: reader executes none of the claim functions');
SELECT is(ARRAY(SELECT name FROM t01_fns
                 WHERE has_function_privilege('approvals_requester', to_regprocedure(sig), 'EXECUTE')
                 ORDER BY name),
          ARRAY['api_submit','cancel_claim','submit'],
          'EXECUTE matrix: requester executes submit, api_submit, cancel_claim');
SELECT is(ARRAY(SELECT name FROM t01_fns
                 WHERE has_function_privilege('approvals_reviewer', to_regprocedure(sig), 'EXECUTE')
                 ORDER BY name),
          ARRAY['api_respond','decide','delegate','inbox','revoke_delegation'],
          'EXECUTE matrix: reviewer executes decide, api_respond, delegate, inbox, revoke_delegation');
SELECT is(ARRAY(SELECT name FROM t01_fns
                 WHERE has_function_privilege('approvals_coordinator', to_regprocedure(sig), 'EXECUTE')
                 ORDER BY name),
          ARRAY[]::text[], 'EXECUTE matrix: coordinator executes none of the claim functions');
SELECT is(ARRAY(SELECT name FROM t01_fns
                 WHERE has_function_privilege('approvals_admin', to_regprocedure(sig), 'EXECUTE')
                 ORDER BY name),
          ARRAY['cancel_claim','drop_policy','expire_due','grant_tenant','revoke_delegation',
                'revoke_tenant','set_handler','set_policy'],
          'EXECUTE matrix: admin executes cancel_claim, expire_due, set/drop_policy, set_handler, grant/revoke_tenant, revoke_delegation');
SELECT is(ARRAY(SELECT name FROM t01_fns
                 WHERE has_function_privilege('approvals_platform', to_regprocedure(sig), 'EXECUTE')
                 ORDER BY name),
          ARRAY['api_respond','api_submit','cancel_claim','decide','delegate','inbox',
                'revoke_delegation','submit'],
          'EXECUTE matrix: platform executes the requester and reviewer functions, no admin ones');

-- ---------------------------------------------------------------------------
-- Behaviour of each role (and of a role with none)
-- ---------------------------------------------------------------------------
-- Fixtures, as superuser (counts as platform): two pending claims without tenant.
SELECT lives_ok($$SELECT approvals.submit('tap01', 'a', 'h-a', id => 'tap01_a', actor => 't01_someone')$$,
                'fixture: superuser submits tap01_a on behalf of t01_someone');
SELECT lives_ok($$SELECT approvals.submit('tap01', 'b', 'h-b', id => 'tap01_b', actor => 't01_someone')$$,
                'fixture: superuser submits tap01_b on behalf of t01_someone');
SELECT is((SELECT requester FROM approvals.claims WHERE id = 'tap01_a'), 't01_someone',
          'superuser counts as platform: actor override sets the requester');

-- a role with none
SET ROLE t01_nobody;
SELECT throws_ok($$SELECT count(*) FROM approvals.claims$$, '42501', NULL,
                 'no role: SELECT on approvals.claims is 42501');
SELECT throws_ok($$SELECT approvals.submit('tap01', 'n', 'h')$$, '42501', NULL,
                 'no role: submit is 42501');
SELECT throws_ok($$SELECT approvals.api_submit('{"merchantId":"m","resourceType":"tap01","resourceId":"n","dataSnapshotHash":"h"}')$$,
                 '42501', NULL, 'no role: api_submit is 42501');
RESET ROLE;

-- reader
SET ROLE t01_reader;
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id IN ('tap01_a', 'tap01_b')), 2,
          'reader: sees the tenant-less claims');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id = 'tap01_a'), 1,
          'reader: sees the events of a tenant-less claim');
SELECT throws_ok($$SELECT approvals.submit('tap01', 'r', 'h')$$, '42501', NULL,
                 'reader: submit is 42501');
SELECT throws_ok($$SELECT approvals.decide('tap01_a', 'approved')$$, '42501', NULL,
                 'reader: decide is 42501');
SELECT throws_ok($$SELECT approvals.cancel_claim('tap01_a')$$, '42501', NULL,
                 'reader: cancel_claim is 42501');
RESET ROLE;

-- requester
SET ROLE t01_req;
SELECT is(pg_temp.q($$SELECT row(status, requester)::text
                        FROM approvals.submit('tap01', 'r', 'h-r', id => 'tap01_r')$$),
          '(pending,t01_req)', 'requester: submit works and the actor defaults to the role name');
SELECT throws_ok($$SELECT approvals.submit('tap01', 'r2', 'h', id => 'tap01_r2', actor => 't01_other')$$,
                 '42501', NULL, 'requester: passing another actor is 42501');
SELECT throws_ok($$SELECT approvals.decide('tap01_a', 'approved')$$, '42501', NULL,
                 'requester: decide is 42501');
SELECT throws_ok($$SELECT approvals.expire_due()$$, '42501', NULL,
                 'requester: expire_due is 42501');
SELECT throws_ok($$SELECT approvals.set_policy(resource_type => 'tap01')$$, '42501', NULL,
                 'requester: set_policy is 42501');
SELECT throws_ok($$INSERT INTO approvals.claims (id, resource_type, resource_id, kind, snapshot_hash, status, requester)
                   VALUES ('tap01_x', 'tap01', 'x', 'data_review', 'h', 'approved', 't01_req')$$,
                 '42501', NULL, 'requester: INSERT into approvals.claims is 42501');
SELECT throws_ok($$UPDATE approvals.claims SET status = 'approved' WHERE id = 'tap01_r'$$,
                 '42501', NULL, 'requester: UPDATE of approvals.claims is 42501');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id IN ('tap01_r2', 'tap01_x')), 0,
          'nothing was stored by the refused requester calls');

-- reviewer
SET ROLE t01_rev;
SELECT is(pg_temp.q($$SELECT row(status, reviewer)::text FROM approvals.decide('tap01_a', 'approved')$$),
          '(approved,t01_rev)', 'reviewer: decide works and the actor defaults to the role name');
SELECT throws_ok($$SELECT approvals.submit('tap01', 'v', 'h')$$, '42501', NULL,
                 'reviewer: submit is 42501');
SELECT throws_ok($$SELECT approvals.cancel_claim('tap01_b')$$, '42501', NULL,
                 'reviewer: cancel_claim is 42501');
SELECT throws_ok($$SELECT approvals.set_policy(resource_type => 'tap01')$$, '42501', NULL,
                 'reviewer: set_policy is 42501');
RESET ROLE;

-- coordinator (batches only)
SET ROLE t01_coord;
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id IN ('tap01_a', 'tap01_b')), 2,
          'coordinator: may read claims');
SELECT throws_ok($$SELECT approvals.submit('tap01', 'c', 'h')$$, '42501', NULL,
                 'coordinator: submit is 42501');
SELECT throws_ok($$SELECT approvals.decide('tap01_b', 'approved')$$, '42501', NULL,
                 'coordinator: decide is 42501');
SELECT throws_ok($$SELECT approvals.cancel_claim('tap01_b')$$, '42501', NULL,
                 'coordinator: cancel_claim is 42501');
RESET ROLE;

-- admin
SET ROLE t01_adm;
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 'tap01_unused')$$,
                'admin: set_policy works');
SELECT lives_ok($$SELECT approvals.expire_due()$$, 'admin: expire_due works');
SELECT is(pg_temp.q($$SELECT status FROM approvals.cancel_claim('tap01_b', 'admin says no')$$),
          'cancelled', 'admin: may cancel a claim requested by someone else');
SELECT throws_ok($$SELECT approvals.submit('tap01', 'd', 'h')$$, '42501', NULL,
                 'admin: submit is 42501');
SELECT throws_ok($$SELECT approvals.decide('tap01_r', 'approved')$$, '42501', NULL,
                 'admin: decide is 42501');
SELECT throws_ok($$UPDATE approvals.events SET comment = 'x' WHERE claim_id = 'tap01_a'$$,
                 '42501', NULL, 'admin: UPDATE approvals.events is 42501');
SELECT throws_ok($$DELETE FROM approvals.events WHERE claim_id = 'tap01_a'$$,
                 '42501', NULL, 'admin: DELETE FROM approvals.events is 42501');
SELECT throws_ok($$TRUNCATE approvals.events$$, '42501', NULL,
                 'admin: TRUNCATE approvals.events is 42501');
RESET ROLE;

-- platform
SET ROLE t01_plat;
SELECT is(pg_temp.q($$SELECT requester FROM approvals.submit('tap01', 'p', 'h-p', id => 'tap01_p', actor => 'usr_alice')$$),
          'usr_alice', 'platform: submit with actor override records that actor as requester');
SELECT is(pg_temp.q($$SELECT reviewer FROM approvals.decide('tap01_p', 'rejected', actor => 'usr_bob')$$),
          'usr_bob', 'platform: decide with actor override records that actor as reviewer');
SELECT is(pg_temp.q($$SELECT status FROM approvals.cancel_claim('tap01_r')$$),
          'cancelled', 'platform: may cancel a claim requested by someone else');
SELECT throws_ok($$SELECT approvals.set_policy(resource_type => 'tap01')$$, '42501', NULL,
                 'platform: set_policy is 42501');
SELECT throws_ok($$SELECT approvals.expire_due()$$, '42501', NULL,
                 'platform: expire_due is 42501');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- approvals.events is append-only, even for the superuser that owns it
-- ---------------------------------------------------------------------------
SELECT throws_ok($$UPDATE approvals.events SET comment = 'rewritten' WHERE claim_id = 'tap01_a'$$,
                 '42501', NULL, 'superuser: UPDATE of approvals.events is 42501 (the append-only trigger)');
SELECT throws_ok($$DELETE FROM approvals.events WHERE claim_id = 'tap01_a'$$,
                 '42501', NULL, 'superuser: DELETE FROM approvals.events is 42501 (the append-only trigger)');
SELECT throws_ok($$TRUNCATE approvals.events$$,
                 '42501', NULL, 'superuser: TRUNCATE approvals.events is 42501 (the append-only trigger)');
SELECT is(
    (SELECT string_agg(action || ':' || coalesce(comment, '-'), ' ' ORDER BY id)
       FROM approvals.events WHERE claim_id = 'tap01_a'),
    'submitted:- approved:-',
    'the events of tap01_a are intact after the refused writes');

SELECT * FROM finish();
ROLLBACK;
