-- 23_policy_versions: policy versions (API.md §10, design11.md "Policy versions"):
-- set_policy on an existing key makes a new version with the same id and only
-- the latest active; claims record policy_id / policy_version; a claim keeps its
-- route, steps and settings whatever later happens to the policy (edit or
-- drop); drop_policy (admin only, returns 1 then 0, tenant keys); set_policy
-- after a drop continues the numbering; only active versions match at submit.
BEGIN;
SELECT plan(72);

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
-- The versions of a policy key: version:active:approvers (or step names).
CREATE FUNCTION pg_temp.vers(rt text, ten text DEFAULT NULL, k text DEFAULT NULL) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(version || ':' || active || ':'
                               || coalesce(array_to_string(approvers, ','),
                                           (SELECT string_agg(s->>'name', ',') FROM jsonb_array_elements(steps) AS s), '-'),
                               ' ' ORDER BY version), '')
      FROM approvals.policies
     WHERE resource_type = rt AND tenant IS NOT DISTINCT FROM ten AND kind IS NOT DISTINCT FROM k
$f$;
-- The policy id of a key (one id for all its versions).
CREATE FUNCTION pg_temp.pid(rt text, ten text DEFAULT NULL, k text DEFAULT NULL) RETURNS bigint LANGUAGE sql AS $f$
    SELECT min(id) FROM approvals.policies
     WHERE resource_type = rt AND tenant IS NOT DISTINCT FROM ten AND kind IS NOT DISTINCT FROM k
$f$;
-- What a claim got from its policy.
CREATE FUNCTION pg_temp.got(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT row(policy_version, approvers, required_approvals, assignee, expires_at - created_at, allow_self_approval)::text
      FROM approvals.claims WHERE id = cid
$f$;
CREATE FUNCTION pg_temp.dec(cid text, outcome text, who text) RETURNS text LANGUAGE sql AS $f$
    SELECT regexp_replace(pg_temp.q(format('SELECT row(status, approval_count, assignee)::text FROM approvals.decide(%L, %L, actor => %L)',
                                           cid, outcome, who)), '^(ERROR [0-9A-Z]{5}): .*$', '\1')
$f$;
CREATE FUNCTION pg_temp.sub(cid text, rt text, req text DEFAULT 'usr_req', ten text DEFAULT NULL, k text DEFAULT 'data_review')
RETURNS text LANGUAGE sql AS $f$
    SELECT (approvals.submit(rt, cid, 'h', id => cid, actor => req, tenant => ten, kind => k)).id
$f$;

CREATE ROLE t23_adm  IN ROLE approvals_admin;
CREATE ROLE t23_rev  IN ROLE approvals_reviewer;
CREATE ROLE t23_req  IN ROLE approvals_requester;
CREATE ROLE t23_plat IN ROLE approvals_platform;

SELECT col_is_pk('approvals', 'policies', ARRAY['id', 'version'], 'approvals.policies has the primary key (id, version)');
SELECT is(pg_get_function_identity_arguments('approvals.drop_policy'::regproc) || ' -> ' || format_type(prorettype, NULL),
          'resource_type text, kind text, tenant text -> integer', 'drop_policy(resource_type, kind, tenant) returns integer')
  FROM pg_proc WHERE oid = 'approvals.drop_policy'::regproc;

-- ---------------------------------------------------------------------------
-- Versions
-- ---------------------------------------------------------------------------
SET ROLE t23_adm;
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't23_v', approvers => ARRAY['usr_a', 'usr_b'], required_approvals => 2,
                                              expires_in => '1 hour', allow_self_approval => true)$$,
                'admin sets a policy for t23_v (route usr_a, usr_b; quorum 2; 1 hour; self-approval)');
RESET ROLE;
SELECT is(pg_temp.vers('t23_v'), '1:true:usr_a,usr_b', 'the first set_policy makes version 1, active');
SELECT lives_ok($$SELECT pg_temp.sub('tap23_c1', 't23_v', 'usr_a')$$, 'usr_a submits c1 under version 1');
SELECT is(pg_temp.got('tap23_c1'), '(1,"{usr_a,usr_b}",2,usr_a,01:00:00,t)', 'c1 got version 1''s route, quorum, deadline and self-approval');
SET ROLE t23_adm;
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't23_v', approvers => ARRAY['usr_c'])$$,
                'admin sets the t23_v policy again (route usr_c, defaults otherwise)');
RESET ROLE;
SELECT is(pg_temp.vers('t23_v'), '1:false:usr_a,usr_b 2:true:usr_c', 'version 2 is active, version 1 is kept inactive');
SELECT is((SELECT count(DISTINCT id)::int FROM approvals.policies WHERE resource_type = 't23_v'), 1, 'both versions have the same id');
SELECT is((SELECT count(*)::int FROM approvals.policies WHERE resource_type = 't23_v' AND active), 1, 'exactly one version is active');
SELECT lives_ok($$SELECT pg_temp.sub('tap23_c2', 't23_v', 'usr_a')$$, 'usr_a submits c2 under version 2');
SELECT is(pg_temp.got('tap23_c2'), '(2,{usr_c},1,usr_c,,f)', 'c2 got version 2 (no deadline, no self-approval)');
SELECT is((SELECT string_agg(id || ':' || (policy_id = pg_temp.pid('t23_v')), ' ' ORDER BY id) FROM approvals.claims WHERE id IN ('tap23_c1', 'tap23_c2')),
          'tap23_c1:true tap23_c2:true', 'both claims record the policy''s id');
SELECT lives_ok($$SELECT pg_temp.sub('tap23_none', 't23_nopolicy')$$, 'a claim of a resource type without policy');
SELECT is((SELECT row(policy_id, policy_version)::text FROM approvals.claims WHERE id = 'tap23_none'), '(,)',
          'a claim under no policy has policy_id and policy_version NULL');

-- c1 keeps version 1's route and settings
SELECT is(pg_temp.got('tap23_c1'), '(1,"{usr_a,usr_b}",2,usr_a,01:00:00,t)', 'the policy edit left c1 as it was');
SELECT is(pg_temp.dec('tap23_c1', 'approved', 'usr_c'), 'ERROR 42501', 'version 2''s approver usr_c may not decide c1 (42501)');
SELECT is(pg_temp.dec('tap23_c1', 'approved', 'usr_a'), '(pending,1,usr_b)', 'c1''s requester usr_a approves it (version 1 allowed self-approval)');
SELECT is(pg_temp.dec('tap23_c1', 'approved', 'usr_b'), '(approved,2,)', 'usr_b completes c1''s quorum of 2');
SELECT is(pg_temp.dec('tap23_c2', 'approved', 'usr_a'), 'ERROR 42501', 'c2 (version 2, no self-approval): its requester may not approve it');
SELECT is(pg_temp.dec('tap23_c2', 'approved', 'usr_c'), '(approved,1,)', 'usr_c approves c2');

-- ---------------------------------------------------------------------------
-- In-flight claims with steps keep them
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't23_s',
                    steps => '[{"name": "one", "approvers": ["usr_a"], "required": 1}, {"name": "two", "approvers": ["usr_b"], "required": 1}]')$$,
                'a policy with steps one (usr_a) and two (usr_b) for t23_s');
SELECT lives_ok($$SELECT pg_temp.sub('tap23_s1', 't23_s')$$, 's1 submitted under it');
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't23_s',
                    steps => '[{"name": "only", "approvers": ["usr_c"], "required": 1}]')$$,
                'the t23_s policy changes to one step only (usr_c)');
SELECT is(pg_temp.vers('t23_s'), '1:false:one,two 2:true:only', 't23_s has versions 1 (steps one, two) and 2 (step only)');
SELECT is((SELECT row(policy_version, (SELECT string_agg(s->>'name', ',') FROM jsonb_array_elements(steps) AS s), current_step, required_approvals)::text
             FROM approvals.claims WHERE id = 'tap23_s1'),
          '(1,"one,two",1,2)', 's1 keeps version 1''s steps');
SELECT is(pg_temp.dec('tap23_s1', 'approved', 'usr_c'), 'ERROR 42501', 'version 2''s approver may not decide s1 (42501)');
SELECT is(pg_temp.q($$SELECT row(status, approval_count, current_step)::text FROM approvals.decide('tap23_s1', 'approved', actor => 'usr_a')$$),
          '(pending,1,2)', 's1: usr_a approves step one; s1 moves to step two');
SELECT is(pg_temp.q($$SELECT approvals.drop_policy('t23_s')$$), '1', 'drop_policy(''t23_s'') deactivates the policy: 1');
SELECT is(pg_temp.q($$SELECT row(status, approval_count)::text FROM approvals.decide('tap23_s1', 'approved', actor => 'usr_b')$$),
          '(approved,2)', 'after the drop, s1 still completes with its own step two');
SELECT lives_ok($$SELECT pg_temp.sub('tap23_s2', 't23_s')$$, 's2 submitted after the drop');
SELECT is((SELECT row(policy_id, policy_version, steps, current_step, approvers)::text FROM approvals.claims WHERE id = 'tap23_s2'),
          '(,,,,)', 'a dropped policy no longer applies: no steps, no route, no policy recorded');

-- ---------------------------------------------------------------------------
-- drop_policy
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT pg_temp.sub('tap23_c3', 't23_v')$$, 'c3 submitted under t23_v version 2 (route usr_c)');
SET ROLE t23_rev;
SELECT throws_ok($$SELECT approvals.drop_policy('t23_v')$$, '42501', NULL, 'drop_policy by a reviewer is 42501');
SET ROLE t23_req;
SELECT throws_ok($$SELECT approvals.drop_policy('t23_v')$$, '42501', NULL, 'drop_policy by a requester is 42501');
SET ROLE t23_plat;
SELECT throws_ok($$SELECT approvals.drop_policy('t23_v')$$, '42501', NULL, 'drop_policy by platform is 42501 (admin only)');
RESET ROLE;
SELECT is(pg_temp.vers('t23_v'), '1:false:usr_a,usr_b 2:true:usr_c', 'the refused drops changed nothing');
SET ROLE t23_adm;
SELECT is(pg_temp.q($$SELECT approvals.drop_policy('t23_v')$$), '1', 'the admin drops t23_v: 1');
SELECT is(pg_temp.q($$SELECT approvals.drop_policy('t23_v')$$), '0', 'dropping it again: 0');
SELECT is(pg_temp.q($$SELECT approvals.drop_policy('t23_never')$$), '0', 'dropping a key that never had a policy: 0');
RESET ROLE;
SELECT is(pg_temp.vers('t23_v'), '1:false:usr_a,usr_b 2:false:usr_c', 'every version is kept, none active');
SELECT is(pg_temp.got('tap23_c3'), '(2,{usr_c},1,usr_c,,f)', 'c3 keeps its route after the drop');
SELECT is(pg_temp.dec('tap23_c3', 'approved', 'usr_x'), 'ERROR 42501', 'c3 is still routed to usr_c only (42501 for usr_x)');
SELECT is(pg_temp.dec('tap23_c3', 'approved', 'usr_c'), '(approved,1,)', 'usr_c approves c3');
SELECT lives_ok($$SELECT pg_temp.sub('tap23_c4', 't23_v')$$, 'c4 submitted after the drop');
SELECT is(pg_temp.got('tap23_c4'), '(,,1,,,f)', 'c4 gets no policy: no route, quorum 1');

-- set_policy after a drop continues the numbering
SET ROLE t23_adm;
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't23_v', approvers => ARRAY['usr_d'])$$, 'the admin sets t23_v again');
RESET ROLE;
SELECT is(pg_temp.vers('t23_v'), '1:false:usr_a,usr_b 2:false:usr_c 3:true:usr_d', 'version 3, active');
SELECT is((SELECT count(DISTINCT id)::int FROM approvals.policies WHERE resource_type = 't23_v'), 1, 'still one id');
SELECT lives_ok($$SELECT pg_temp.sub('tap23_c5', 't23_v')$$, 'c5 submitted');
SELECT is((SELECT row(policy_id = pg_temp.pid('t23_v'), policy_version, approvers)::text FROM approvals.claims WHERE id = 'tap23_c5'),
          '(t,3,{usr_d})', 'c5 records the same policy id and version 3');

-- ---------------------------------------------------------------------------
-- Tenant keys
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't23_t', tenant => 't23_ta', approvers => ARRAY['usr_d']),
                         approvals.set_policy(resource_type => 't23_t', approvers => ARRAY['usr_e']),
                         approvals.set_policy(resource_type => 't23_t', tenant => 't23_ta', approvers => ARRAY['usr_f'])$$,
                'policies for t23_t in tenant t23_ta (twice) and in no tenant');
SELECT is(pg_temp.vers('t23_t', 't23_ta') || ' / ' || pg_temp.vers('t23_t'), '1:false:usr_d 2:true:usr_f / 1:true:usr_e',
          'each key has its own versions');
SELECT isnt(pg_temp.pid('t23_t', 't23_ta'), pg_temp.pid('t23_t'), 'and its own id');
SELECT lives_ok($$SELECT pg_temp.sub('tap23_ta1', 't23_t', ten => 't23_ta'), pg_temp.sub('tap23_n1', 't23_t')$$,
                'claims of t23_t in tenant t23_ta and in no tenant');
SELECT is((SELECT string_agg(id || ':' || array_to_string(approvers, ',') || ':' || policy_version, ' ' ORDER BY id)
             FROM approvals.claims WHERE id IN ('tap23_ta1', 'tap23_n1')),
          'tap23_n1:usr_e:1 tap23_ta1:usr_f:2', 'each claim got its tenant''s active version');
SET ROLE t23_rev;
SELECT is((SELECT string_agg(coalesce(tenant, '-') || ':' || version, ' ' ORDER BY tenant NULLS FIRST, version)
             FROM approvals.policies WHERE resource_type = 't23_t'),
          '-:1', 'a reviewer without the tenant sees only the tenant-less versions');
SET ROLE t23_adm;
SELECT is(pg_temp.q($$SELECT approvals.drop_policy('t23_t')$$), '1', 'drop_policy(''t23_t'') drops the tenant-less key only: 1');
SELECT is(pg_temp.q($$SELECT approvals.drop_policy('t23_t', tenant => 't23_tb')$$), '0', 'another tenant''s key: 0');
RESET ROLE;
SELECT is(pg_temp.vers('t23_t', 't23_ta') || ' / ' || pg_temp.vers('t23_t'), '1:false:usr_d 2:true:usr_f / 1:false:usr_e',
          'the tenant''s policy is untouched');
SELECT lives_ok($$SELECT pg_temp.sub('tap23_ta2', 't23_t', ten => 't23_ta'), pg_temp.sub('tap23_n2', 't23_t')$$, 'two more claims');
SELECT is((SELECT string_agg(id || ':' || coalesce(array_to_string(approvers, ','), '-'), ' ' ORDER BY id)
             FROM approvals.claims WHERE id IN ('tap23_ta2', 'tap23_n2')),
          'tap23_n2:- tap23_ta2:usr_f', 'the tenant claim still gets its policy; the other none');
SET ROLE t23_adm;
SELECT is(pg_temp.q($$SELECT approvals.drop_policy('t23_t', tenant => 't23_ta')$$), '1', 'drop_policy for tenant t23_ta: 1');
SELECT is(pg_temp.q($$SELECT approvals.drop_policy(resource_type => 't23_t', tenant => 't23_ta')$$), '0', 'again: 0');
RESET ROLE;
SELECT is(pg_temp.vers('t23_t', 't23_ta'), '1:false:usr_d 2:false:usr_f', 'no tenant version is active');

-- ---------------------------------------------------------------------------
-- Only active versions match: dropping the specific policy falls back to the general one
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't23_m', approvers => ARRAY['usr_g']),
                         approvals.set_policy(resource_type => 't23_m', kind => 't23_k', approvers => ARRAY['usr_h'])$$,
                'a general policy for t23_m and a specific one for kind t23_k');
SELECT lives_ok($$SELECT pg_temp.sub('tap23_m1', 't23_m', k => 't23_k')$$, 'm1 of kind t23_k');
SELECT is((SELECT row(approvers, policy_id = pg_temp.pid('t23_m', k => 't23_k'))::text FROM approvals.claims WHERE id = 'tap23_m1'),
          '({usr_h},t)', 'm1 gets the specific policy');
SELECT is(pg_temp.q($$SELECT approvals.drop_policy('t23_m', 't23_k')$$), '1', 'the specific policy is dropped');
SELECT lives_ok($$SELECT pg_temp.sub('tap23_m2', 't23_m', k => 't23_k')$$, 'm2 of kind t23_k');
SELECT is((SELECT row(approvers, policy_id = pg_temp.pid('t23_m'), policy_version)::text FROM approvals.claims WHERE id = 'tap23_m2'),
          '({usr_g},t,1)', 'm2 gets the general policy: the inactive specific one no longer matches');
SELECT is((SELECT approvers FROM approvals.claims WHERE id = 'tap23_m1'), '{usr_h}'::text[], 'm1 keeps the specific route');

SELECT * FROM finish();
ROLLBACK;
