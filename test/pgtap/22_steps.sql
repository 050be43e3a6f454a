-- 22_steps: multi-step approvals (API.md §10, design11.md "Steps"): validation of
-- steps on submit and set_policy (22023 naming the step and the member),
-- sequential steps, parallel approvers within a step, required per step,
-- min_amount tiers, step_completed events, current_step, reject, abstain and
-- escalation, one approval per person across steps, a step that starts unable
-- to reach its quorum, handlers on step changes, expiry with on_expiry
-- 'escalate', and steps that come from a policy.
--
-- Decisions are made by the superuser acting for usr_* people (actor => ...).
BEGIN;
SELECT plan(144);

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
-- 'ok' when sql raises 22023 with a message matching every pattern (case-insensitive),
-- else what happened.
CREATE FUNCTION pg_temp.bad(sql text, pats text[] DEFAULT '{}') RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    st  text;
    msg text;
    p   text;
BEGIN
    BEGIN
        EXECUTE sql;
        RETURN 'no error';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    END;
    IF st <> '22023' THEN
        RETURN st || ': ' || msg;
    END IF;
    FOREACH p IN ARRAY pats LOOP
        IF msg !~* p THEN
            RETURN 'message does not match /' || p || '/: ' || msg;
        END IF;
    END LOOP;
    RETURN 'ok';
END $f$;
-- The submit call for a steps value (validation tests).
CREATE FUNCTION pg_temp.vs(steps text) RETURNS text LANGUAGE sql AS $f$
    SELECT format($$SELECT approvals.submit('t22_val', 'v', 'h', id => 'tap22_val', actor => 'usr_req', steps => %L)$$, steps)
$f$;
CREATE FUNCTION pg_temp.vp(steps text) RETURNS text LANGUAGE sql AS $f$
    SELECT format($$SELECT approvals.set_policy(resource_type => 't22_pval', steps => %L)$$, steps)
$f$;
-- The actions of a claim's events.
CREATE FUNCTION pg_temp.ev(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(action, ' ' ORDER BY id), '') FROM approvals.events WHERE claim_id = cid
$f$;
-- (status, current_step, approval_count, required_approvals); current_step is left out
-- (NULL) once the claim is approved: that it is NULL after the last step is asserted on
-- its own (after tap22_seq and for every approved claim at the end).
CREATE FUNCTION pg_temp.cs(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT row(status, CASE WHEN status <> 'approved' THEN current_step END, approval_count, required_approvals)::text
      FROM approvals.claims WHERE id = cid
$f$;
-- Decide as who; the claim's cs() afterwards, or the error.
CREATE FUNCTION pg_temp.dec(cid text, outcome text, who text) RETURNS text LANGUAGE sql AS $f$
    SELECT pg_temp.q(format('SELECT pg_temp.cs(id) FROM approvals.decide(%L, %L, actor => %L)', cid, outcome, who))
$f$;
-- The same, reduced to 'ERROR <SQLSTATE>' when it fails.
CREATE FUNCTION pg_temp.dc(cid text, outcome text, who text) RETURNS text LANGUAGE sql AS $f$
    SELECT regexp_replace(pg_temp.dec(cid, outcome, who), '^(ERROR [0-9A-Z]{5}): .*$', '\1')
$f$;
-- Submit a claim with steps for usr_req.
CREATE FUNCTION pg_temp.sub(cid text, steps text, amt numeric DEFAULT NULL, rt text DEFAULT 't22_st') RETURNS text
LANGUAGE sql AS $f$
    SELECT (approvals.submit(rt, cid, 'h-' || cid, id => cid, actor => 'usr_req', amount => amt, steps => steps::jsonb)).id
$f$;
CREATE FUNCTION pg_temp.sorted(a text[]) RETURNS text LANGUAGE sql AS $f$
    SELECT '{' || array_to_string(ARRAY(SELECT x FROM unnest(a) AS x ORDER BY x), ',') || '}'
$f$;

CREATE ROLE t22_adm  IN ROLE approvals_admin;
CREATE ROLE t22_rev  IN ROLE approvals_reviewer;
CREATE ROLE t22_hown;                               -- owns the handler

-- ---------------------------------------------------------------------------
-- Validation on submit: 22023 naming the step (1-based, and its name) and the member
-- ---------------------------------------------------------------------------
-- S1 is a valid first step; the broken one is step 2, named "legal" where it has a name.
CREATE TEMP TABLE val (n serial, descr text, steps text, pats text[]);
INSERT INTO val (descr, steps, pats) VALUES
    ('steps not an array',             '{"name": "team", "approvers": ["usr_a"], "required": 1}', '{steps}'),
    ('steps an empty array',           '[]', '{steps}'),
    ('11 steps',                       (SELECT jsonb_agg(jsonb_build_object('name', 's' || i, 'approvers', jsonb_build_array('usr_' || i), 'required', 1))
                                          FROM generate_series(1, 11) AS i)::text, '{steps,10}'),
    ('a step that is not an object',   '[S1, 5]', '{"\\mstep\\D{0,3}2\\M"}'),
    ('an unknown member',              '[S1, {"name": "legal", "approvers": ["usr_b"], "required": 1, "quorum": 2}]', '{"\\mstep\\D{0,3}2\\M",legal,quorum}'),
    ('name missing',                   '[S1, {"approvers": ["usr_b"], "required": 1}]', '{"\\mstep\\D{0,3}2\\M",name}'),
    ('name not a string',              '[S1, {"name": 7, "approvers": ["usr_b"], "required": 1}]', '{"\\mstep\\D{0,3}2\\M",name}'),
    ('name empty',                     '[S1, {"name": "", "approvers": ["usr_b"], "required": 1}]', '{"\\mstep\\D{0,3}2\\M",name}'),
    ('name of 101 characters',         '[S1, {"name": "' || repeat('n', 101) || '", "approvers": ["usr_b"], "required": 1}]', '{"\\mstep\\D{0,3}2\\M",name}'),
    ('approvers missing',              '[S1, {"name": "legal", "required": 1}]', '{"\\mstep\\D{0,3}2\\M",legal,approvers}'),
    ('approvers not an array',         '[S1, {"name": "legal", "approvers": "usr_b", "required": 1}]', '{"\\mstep\\D{0,3}2\\M",legal,approvers}'),
    ('approvers empty',                '[S1, {"name": "legal", "approvers": [], "required": 1}]', '{"\\mstep\\D{0,3}2\\M",legal,approvers}'),
    ('51 approvers',                   '[S1, {"name": "legal", "approvers": '
                                        || (SELECT jsonb_agg('usr_' || i) FROM generate_series(1, 51) AS i)::text
                                        || ', "required": 1}]', '{"\\mstep\\D{0,3}2\\M",legal,approvers}'),
    ('an approver not a string',       '[S1, {"name": "legal", "approvers": [1], "required": 1}]', '{"\\mstep\\D{0,3}2\\M",legal,approvers}'),
    ('an empty approver',              '[S1, {"name": "legal", "approvers": [""], "required": 1}]', '{"\\mstep\\D{0,3}2\\M",legal,approvers}'),
    ('a duplicate approver',           '[S1, {"name": "legal", "approvers": ["usr_b", "usr_b"], "required": 1}]', '{"\\mstep\\D{0,3}2\\M",legal,approvers}'),
    ('an approver of 129 characters',  '[S1, {"name": "legal", "approvers": ["' || repeat('a', 129) || '"], "required": 1}]', '{"\\mstep\\D{0,3}2\\M",legal,approvers}'),
    ('required missing',               '[S1, {"name": "legal", "approvers": ["usr_b"]}]', '{"\\mstep\\D{0,3}2\\M",legal,required}'),
    ('required not an integer (1.5)',  '[S1, {"name": "legal", "approvers": ["usr_b", "usr_c"], "required": 1.5}]', '{"\\mstep\\D{0,3}2\\M",legal,required}'),
    ('required a string',              '[S1, {"name": "legal", "approvers": ["usr_b"], "required": "1"}]', '{"\\mstep\\D{0,3}2\\M",legal,required}'),
    ('required 0',                     '[S1, {"name": "legal", "approvers": ["usr_b"], "required": 0}]', '{"\\mstep\\D{0,3}2\\M",legal,required}'),
    ('required above the approvers',   '[S1, {"name": "legal", "approvers": ["usr_b", "usr_c"], "required": 3}]', '{"\\mstep\\D{0,3}2\\M",legal,required}'),
    ('min_amount a string',            '[S1, {"name": "legal", "approvers": ["usr_b"], "required": 1, "min_amount": "100"}]', '{"\\mstep\\D{0,3}2\\M",legal,min_amount}'),
    ('min_amount negative',            '[S1, {"name": "legal", "approvers": ["usr_b"], "required": 1, "min_amount": -1}]', '{"\\mstep\\D{0,3}2\\M",legal,min_amount}'),
    ('a bad first step',               '[{"name": "team", "approvers": ["usr_a"], "required": 2}, {"name": "legal", "approvers": ["usr_b"], "required": 1}]',
                                        '{"\\mstep\\D{0,3}1\\M",team,required}');
UPDATE val SET steps = replace(steps, 'S1', '{"name": "team", "approvers": ["usr_a"], "required": 1}');

SELECT is(pg_temp.bad(pg_temp.vs(steps), pats), 'ok', 'submit: ' || descr || ' is 22023 naming ' || array_to_string(pats, ', '))
  FROM val ORDER BY n;
SELECT is(pg_temp.bad($$SELECT approvals.submit('t22_val', 'v', 'h', id => 'tap22_val', actor => 'usr_req', approvers => ARRAY['usr_a'],
                                                steps => '[{"name": "team", "approvers": ["usr_a"], "required": 1}]')$$),
          'ok', 'submit with both steps and approvers is 22023');
SELECT is(pg_temp.bad($$SELECT approvals.submit('t22_val', 'v', 'h', id => 'tap22_val', actor => 'usr_req', required_approvals => 1,
                                                steps => '[{"name": "team", "approvers": ["usr_a"], "required": 1}]')$$),
          'ok', 'submit with steps and an explicit required_approvals is 22023');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE resource_type = 't22_val'), 0, 'the refused submits stored nothing');

-- Boundaries that are valid: 10 steps, 50 approvers, a 100-character name, required = approvers, min_amount 0
SELECT is(pg_temp.q($$SELECT row(status, current_step, required_approvals, jsonb_array_length(steps))::text
                        FROM approvals.submit('t22_val', 'ten', 'h', id => 'tap22_ten', actor => 'usr_req', steps =>
                          (SELECT jsonb_agg(jsonb_build_object('name', 's' || i, 'approvers', jsonb_build_array('usr_' || i), 'required', 1))
                             FROM generate_series(1, 10) AS i))$$),
          '(pending,1,10,10)', 'ten steps are accepted; required_approvals is the sum of required (10)');
SELECT is(pg_temp.q($$SELECT row(current_step, required_approvals)::text
                        FROM approvals.submit('t22_val', 'fifty', 'h', id => 'tap22_fifty', actor => 'usr_req', amount => 5, steps =>
                          jsonb_build_array(jsonb_build_object('name', repeat('n', 100),
                                                               'approvers', (SELECT jsonb_agg('usr_' || i) FROM generate_series(1, 50) AS i),
                                                               'required', 50, 'min_amount', 0)))$$),
          '(1,50)', 'a step with 50 approvers, required 50, a 100-character name and min_amount 0 is accepted');

-- The same validation on set_policy
SELECT is(pg_temp.bad(pg_temp.vp('"team"'), '{steps}'), 'ok', 'set_policy: steps not an array is 22023');
SELECT is(pg_temp.bad(pg_temp.vp((SELECT jsonb_agg(jsonb_build_object('name', 's' || i, 'approvers', jsonb_build_array('usr_' || i), 'required', 1))
                                    FROM generate_series(1, 11) AS i)::text), '{steps,10}'),
          'ok', 'set_policy: 11 steps is 22023');
SELECT is(pg_temp.bad(pg_temp.vp('[{"name": "team", "approvers": ["usr_a"], "required": 1}, {"name": "legal", "approvers": ["usr_b"], "required": 0}]'),
                      ARRAY['\mstep\D{0,3}2\M', 'legal', 'required']),
          'ok', 'set_policy: required 0 in step 2 is 22023 naming step 2 and required');
SELECT is(pg_temp.bad(pg_temp.vp('[{"name": "team", "approvers": ["usr_a"], "required": 1}, {"name": "legal", "approvers": ["usr_b", "usr_b"], "required": 1}]'),
                      ARRAY['\mstep\D{0,3}2\M', 'legal', 'approvers']),
          'ok', 'set_policy: a duplicate approver in step 2 is 22023 naming step 2 and approvers');
SELECT is(pg_temp.bad(pg_temp.vp('[{"name": "team", "approvers": ["usr_a"], "required": 1, "when": "always"}]'),
                      ARRAY['\mstep\D{0,3}1\M', 'team', 'when']),
          'ok', 'set_policy: an unknown member is 22023 naming step 1 and the member');
SELECT is(pg_temp.bad($$SELECT approvals.set_policy(resource_type => 't22_pval', approvers => ARRAY['usr_a'],
                                                    steps => '[{"name": "team", "approvers": ["usr_a"], "required": 1}]')$$),
          'ok', 'set_policy with both steps and approvers is 22023');
SET ROLE t22_rev;
SELECT throws_ok($$SELECT approvals.set_policy(resource_type => 't22_pval', steps => '[{"name": "team", "approvers": ["usr_a"], "required": 1}]')$$,
                 '42501', NULL, 'set_policy with steps by a reviewer is 42501');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM approvals.policies WHERE resource_type = 't22_pval'), 0, 'the refused set_policy calls stored nothing');

-- ---------------------------------------------------------------------------
-- Sequential steps, required per step, step_completed, current_step
-- ---------------------------------------------------------------------------
SELECT lives_ok($$
    SELECT pg_temp.sub(cid, '[{"name": "team", "approvers": ["usr_a", "usr_b"], "required": 1},
                              {"name": "finance", "approvers": ["usr_c", "usr_d"], "required": 2}]')
      FROM unnest(ARRAY['tap22_seq', 'tap22_rej', 'tap22_rej1']) AS cid$$,
    'fixture: three claims with steps team (usr_a, usr_b; 1) then finance (usr_c, usr_d; 2)');
SELECT lives_ok($$SELECT approvals.submit('t22_st', 'plain', 'h', id => 'tap22_plain', actor => 'usr_req')$$,
                'fixture: a claim without steps');
SELECT is(pg_temp.cs('tap22_seq'), '(pending,1,0,3)', 'submit: current_step 1, required_approvals 3 (1 + 2)');
SELECT is((SELECT row((SELECT string_agg(s->>'name', ',' ORDER BY o) FROM jsonb_array_elements(steps) WITH ORDINALITY AS e(s, o)),
                      steps->1->'approvers', steps->1->'required')::text
             FROM approvals.claims WHERE id = 'tap22_seq'),
          '("team,finance","[""usr_c"", ""usr_d""]",2)', 'the claim carries its steps');
SELECT is((SELECT row(steps, current_step)::text FROM approvals.claims WHERE id = 'tap22_plain'), '(,)',
          'a claim without steps has steps and current_step NULL');
SELECT is(pg_temp.dc('tap22_seq', 'approved', 'usr_c'), 'ERROR 42501', 'an approver of a later step may not decide yet (42501)');
SELECT is(pg_temp.dc('tap22_seq', 'approved', 'usr_x'), 'ERROR 42501', 'a reviewer who is no approver of the step may not decide (42501)');
SELECT is(pg_temp.dc('tap22_seq', 'rejected', 'usr_x'), 'ERROR 42501', 'nor reject (42501)');
SELECT is(pg_temp.dc('tap22_seq', 'approved', 'usr_req'), 'ERROR 42501', 'the requester may not decide (42501)');
SELECT is(pg_temp.cs('tap22_seq') || ' ' || pg_temp.ev('tap22_seq'), '(pending,1,0,3) submitted', 'the refused decisions changed nothing');
SELECT is(pg_temp.dec('tap22_seq', 'approved', 'usr_a'), '(pending,2,1,3)', 'usr_a approves: step team is done (1 of 1), current_step 2');
SELECT is(pg_temp.ev('tap22_seq'), 'submitted approved step_completed', 'events: approved, then step_completed');
SELECT is((SELECT string_agg(row(action, from_status, to_status, actor)::text, ' ' ORDER BY id)
             FROM approvals.events WHERE claim_id = 'tap22_seq' AND action = 'approved'),
          '(approved,pending,pending,usr_a)', 'the approved event goes pending -> pending, by usr_a');
SELECT is((SELECT comment ~ 'team' FROM approvals.events WHERE claim_id = 'tap22_seq' AND action = 'step_completed'), true,
          'the step_completed event''s comment names the step');
SELECT is(pg_temp.dc('tap22_seq', 'approved', 'usr_b'), 'ERROR 42501', 'the other approver of the finished step may not decide now (42501)');
SELECT is(pg_temp.dec('tap22_seq', 'approved', 'usr_c'), '(pending,2,2,3)', 'usr_c approves: finance has 1 of 2, still step 2');
SELECT is(pg_temp.ev('tap22_seq'), 'submitted approved step_completed approved', 'no step_completed yet');
SELECT is(pg_temp.dc('tap22_seq', 'approved', 'usr_c'), 'ERROR 42501', 'usr_c may not approve twice (42501)');
SELECT is(pg_temp.dec('tap22_seq', 'approved', 'usr_d'), '(approved,,3,3)', 'usr_d approves: the last step is done, the claim is approved');
SELECT is((SELECT current_step FROM approvals.claims WHERE id = 'tap22_seq'), NULL,
          'after the last step current_step is NULL (design11: NULL without steps, when no step applies, after the last)');
SELECT is((SELECT string_agg(action || CASE WHEN action = 'approved' THEN ':' || to_status ELSE '' END, ' ' ORDER BY id)
             FROM approvals.events WHERE claim_id = 'tap22_seq'),
          'submitted approved:pending step_completed approved:pending approved:approved step_completed',
          'events: the last approval goes pending -> approved and is followed by step_completed');
SELECT is((SELECT row(pg_temp.sorted(approved_by), reviewer, decided_at IS NOT NULL)::text FROM approvals.claims WHERE id = 'tap22_seq'),
          '("{usr_a,usr_c,usr_d}",usr_d,t)', 'approved_by has the three approvers; reviewer and decided_at are set');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id = 'tap22_seq' AND action = 'step_completed'), 2,
          'two step_completed events, one per step');

-- Parallel approvers within a step, any order
SELECT lives_ok($$SELECT pg_temp.sub('tap22_par', '[{"name": "board", "approvers": ["usr_a", "usr_b", "usr_c"], "required": 2}]')$$,
                'fixture: one step board (usr_a, usr_b, usr_c; 2)');
SELECT is(pg_temp.dec('tap22_par', 'approved', 'usr_c'), '(pending,1,1,2)', 'usr_c (third in the list) approves first');
SELECT is(pg_temp.dec('tap22_par', 'approved', 'usr_a'), '(approved,,2,2)', 'usr_a approves second: the step and the claim are done');
SELECT is(pg_temp.ev('tap22_par'), 'submitted approved approved step_completed', 'events of the parallel step');

-- Reject ends it
SELECT is(pg_temp.dec('tap22_rej1', 'rejected', 'usr_b'), '(rejected,1,0,3)', 'an approver of step 1 rejects: rejected, current_step stays 1');
SELECT is(pg_temp.dec('tap22_rej', 'approved', 'usr_a'), '(pending,2,1,3)', 'rej: step 1 approved');
SELECT is(pg_temp.dec('tap22_rej', 'rejected', 'usr_d'), '(rejected,2,1,3)', 'an approver of step 2 rejects: rejected, current_step stays 2');
SELECT is((SELECT decided_at IS NOT NULL FROM approvals.claims WHERE id = 'tap22_rej'), true, 'the rejection is final (decided_at set)');
SELECT is(pg_temp.dc('tap22_rej', 'approved', 'usr_c'), 'ERROR 55000', 'deciding the rejected claim is 55000');
SELECT is(pg_temp.ev('tap22_rej'), 'submitted approved step_completed rejected', 'events of the rejected claim');

-- ---------------------------------------------------------------------------
-- min_amount tiers
-- ---------------------------------------------------------------------------
SELECT lives_ok($$
    SELECT pg_temp.sub(c.cid, '[{"name": "team", "approvers": ["usr_a"], "required": 1},
                                {"name": "finance", "approvers": ["usr_c"], "required": 1, "min_amount": 1000},
                                {"name": "cfo", "approvers": ["usr_e"], "required": 1, "min_amount": 10000}]', c.amt)
      FROM (VALUES ('tap22_t500', 500::numeric), ('tap22_t1000', 1000), ('tap22_t5000', 5000),
                   ('tap22_t20000', 20000), ('tap22_tnull', NULL)) AS c(cid, amt)$$,
    'fixture: tiered steps team (always), finance (from 1000), cfo (from 10000) for five amounts');
SELECT is((SELECT string_agg(id || ':' || current_step || ':' || required_approvals, ' ' ORDER BY id)
             FROM approvals.claims WHERE id IN ('tap22_t500', 'tap22_t1000', 'tap22_t5000', 'tap22_t20000', 'tap22_tnull')),
          'tap22_t1000:1:2 tap22_t20000:1:3 tap22_t500:1:1 tap22_t5000:1:2 tap22_tnull:1:3',
          'required_approvals counts only the steps that apply (a claim without amount skips none)');
SELECT is(pg_temp.dec('tap22_t500', 'approved', 'usr_a'), '(approved,,1,1)', 'amount 500: team alone approves it');
SELECT is(pg_temp.ev('tap22_t500'), 'submitted approved step_completed', 'amount 500: one step_completed');
SELECT is(pg_temp.dec('tap22_t1000', 'approved', 'usr_a'), '(pending,2,1,2)', 'amount 1000 = min_amount: finance applies');
SELECT is(pg_temp.dec('tap22_t5000', 'approved', 'usr_a'), '(pending,2,1,2)', 'amount 5000: team done, finance is next');
SELECT is(pg_temp.dc('tap22_t5000', 'approved', 'usr_e'), 'ERROR 42501', 'amount 5000: the cfo step is skipped, usr_e may not decide (42501)');
SELECT is(pg_temp.dec('tap22_t5000', 'approved', 'usr_c'), '(approved,,2,2)', 'amount 5000: finance approves it; cfo skipped');
SELECT is(pg_temp.dec('tap22_t20000', 'approved', 'usr_a') || ' ' || pg_temp.dec('tap22_t20000', 'approved', 'usr_c'),
          '(pending,2,1,3) (pending,3,2,3)', 'amount 20000: team, then finance, then cfo');
SELECT is(pg_temp.dec('tap22_t20000', 'approved', 'usr_e'), '(approved,,3,3)', 'amount 20000: cfo approves it');
SELECT is(pg_temp.dec('tap22_tnull', 'approved', 'usr_a') || ' ' || pg_temp.dec('tap22_tnull', 'approved', 'usr_c'),
          '(pending,2,1,3) (pending,3,2,3)', 'no amount: every step applies');
SELECT is(pg_temp.dec('tap22_tnull', 'approved', 'usr_e'), '(approved,,3,3)', 'no amount: approved after cfo');
SELECT is(pg_temp.ev('tap22_t20000'), 'submitted approved step_completed approved step_completed approved step_completed',
          'three steps, three step_completed events');

SELECT lives_ok($$SELECT pg_temp.sub('tap22_skip1', '[{"name": "big", "approvers": ["usr_e"], "required": 1, "min_amount": 10000},
                                                      {"name": "small", "approvers": ["usr_a"], "required": 1}]', 50),
                         pg_temp.sub('tap22_none', '[{"name": "big", "approvers": ["usr_e"], "required": 1, "min_amount": 10000}]', 50)$$,
                'fixture: a claim whose first step does not apply, and one where no step applies');
SELECT is(pg_temp.cs('tap22_skip1'), '(pending,2,0,1)', 'the first step is skipped: current_step 2 at submit');
SELECT is(pg_temp.dc('tap22_skip1', 'approved', 'usr_e'), 'ERROR 42501', 'the skipped step''s approver may not decide (42501)');
SELECT is(pg_temp.dec('tap22_skip1', 'approved', 'usr_a'), '(approved,,1,1)', 'the second step''s approver approves it');
SELECT is(pg_temp.cs('tap22_none'), '(pending,,0,1)', 'no step applies: current_step NULL, one approval needed');
SELECT is(pg_temp.dc('tap22_none', 'approved', 'usr_req'), 'ERROR 42501', 'no step applies: still not the requester (42501)');
SELECT is(pg_temp.dec('tap22_none', 'approved', 'usr_x'), '(approved,,1,1)', 'no step applies: any reviewer approves it');
SELECT is(pg_temp.ev('tap22_none'), 'submitted approved', 'no step_completed when no step applied');

-- ---------------------------------------------------------------------------
-- Abstain and escalation
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT pg_temp.sub('tap22_abs1', '[{"name": "board", "approvers": ["usr_a", "usr_b", "usr_c"], "required": 2}]'),
                         pg_temp.sub('tap22_abs2', '[{"name": "pair", "approvers": ["usr_a", "usr_b"], "required": 2},
                                                     {"name": "final", "approvers": ["usr_c"], "required": 1}]'),
                         pg_temp.sub('tap22_abs3', '[{"name": "board", "approvers": ["usr_a", "usr_b", "usr_c"], "required": 2}]')$$,
                'fixture: three claims for abstaining');
SELECT is(pg_temp.dec('tap22_abs1', 'abstained', 'usr_a'), '(pending,1,0,2)', 'usr_a abstains; usr_b and usr_c can still reach 2');
SELECT is(pg_temp.ev('tap22_abs1'), 'submitted abstained', 'no escalation while the quorum is reachable');
SELECT is(pg_temp.dc('tap22_abs1', 'approved', 'usr_a'), 'ERROR 42501', 'the approver who abstained is out of the step (42501)');
SELECT is(pg_temp.dc('tap22_abs1', 'approved', 'usr_x'), 'ERROR 42501', 'the step is not escalated: other reviewers may not decide (42501)');
SELECT is(pg_temp.dec('tap22_abs1', 'approved', 'usr_b') || ' ' || pg_temp.dec('tap22_abs1', 'approved', 'usr_c'),
          '(pending,1,1,2) (approved,,2,2)', 'the two remaining approvers approve it');

SELECT is(pg_temp.dec('tap22_abs2', 'abstained', 'usr_a'), '(pending,1,0,3)', 'usr_a abstains; usr_b alone cannot reach 2');
SELECT is(pg_temp.ev('tap22_abs2'), 'submitted abstained escalated', 'the step is escalated (event escalated)');
SELECT is(pg_temp.dec('tap22_abs2', 'approved', 'usr_x'), '(pending,1,1,3)', 'escalated: any reviewer (usr_x) may give a missing approval');
SELECT is(pg_temp.dec('tap22_abs2', 'approved', 'usr_b'), '(pending,2,2,3)', 'usr_b gives the second: the step is done, the next one starts');
SELECT is(pg_temp.dc('tap22_abs2', 'approved', 'usr_y'), 'ERROR 42501', 'the next step is not escalated: usr_y may not decide (42501)');
SELECT is(pg_temp.dec('tap22_abs2', 'approved', 'usr_c'), '(approved,,3,3)', 'the final step''s approver approves it');
SELECT is(pg_temp.ev('tap22_abs2'), 'submitted abstained escalated approved approved step_completed approved step_completed',
          'events of the escalated claim');

SELECT is(pg_temp.dec('tap22_abs3', 'approved', 'usr_a') || ' ' || pg_temp.dec('tap22_abs3', 'abstained', 'usr_b'),
          '(pending,1,1,2) (pending,1,1,2)', 'usr_a approves, usr_b abstains: 1 + usr_c can still reach 2');
SELECT is(pg_temp.ev('tap22_abs3'), 'submitted approved abstained', 'no escalation');

-- A person approves once per claim, across steps; a step that starts unable to reach its quorum
SELECT lives_ok($$SELECT pg_temp.sub('tap22_once', '[{"name": "first", "approvers": ["usr_a", "usr_b"], "required": 1},
                                                     {"name": "second", "approvers": ["usr_a", "usr_c"], "required": 1}]'),
                         pg_temp.sub('tap22_esc', '[{"name": "first", "approvers": ["usr_a"], "required": 1},
                                                    {"name": "second", "approvers": ["usr_a", "usr_c"], "required": 2}]')$$,
                'fixture: usr_a is an approver of both steps');
SELECT is(pg_temp.dec('tap22_once', 'approved', 'usr_a'), '(pending,2,1,2)', 'usr_a approves step first');
SELECT is(pg_temp.ev('tap22_once'), 'submitted approved step_completed', 'step second can still be reached by usr_c: not escalated');
SELECT is(pg_temp.dc('tap22_once', 'approved', 'usr_a'), 'ERROR 42501', 'usr_a may not approve again in step second (42501)');
SELECT is(pg_temp.dec('tap22_once', 'approved', 'usr_c'), '(approved,,2,2)', 'usr_c approves it');
SELECT is(pg_temp.dec('tap22_esc', 'approved', 'usr_a'), '(pending,2,1,3)', 'usr_a approves step first');
SELECT is(pg_temp.ev('tap22_esc'), 'submitted approved step_completed escalated',
          'step second needs 2 but only usr_c can still approve: it is escalated at once');
SELECT is(pg_temp.dc('tap22_esc', 'approved', 'usr_a'), 'ERROR 42501', 'usr_a still may not approve twice (42501)');
SELECT is(pg_temp.dec('tap22_esc', 'approved', 'usr_x') || ' ' || pg_temp.dec('tap22_esc', 'approved', 'usr_c'),
          '(pending,2,2,3) (approved,,3,3)', 'any reviewer and usr_c complete it');

-- ---------------------------------------------------------------------------
-- Handlers run on step changes
-- ---------------------------------------------------------------------------
CREATE TABLE public.t22_hlog (n serial PRIMARY KEY, claim_id text, action text, status text, comment text);
GRANT INSERT, SELECT ON public.t22_hlog TO t22_hown;
GRANT USAGE ON SEQUENCE public.t22_hlog_n_seq TO t22_hown;
CREATE FUNCTION public.t22_h(c approvals.claims, e approvals.events) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO public.t22_hlog (claim_id, action, status, comment) VALUES (c.id, e.action, c.status, e.comment);
    IF (c.resource_id = 'boom' AND e.action = 'step_completed') OR (c.resource_id = 'boom4' AND e.action = 'escalated') THEN
        RAISE EXCEPTION 'cannot % %', e.action, c.id USING ERRCODE = 'HX022';
    END IF;
END $f$;
ALTER FUNCTION public.t22_h(approvals.claims, approvals.events) OWNER TO t22_hown;
SELECT lives_ok($$SELECT approvals.set_handler('t22_h', 'public.t22_h(approvals.claims, approvals.events)')$$, 'handler for t22_h');
CREATE FUNCTION pg_temp.hlog(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(action, ' ' ORDER BY n), '') FROM public.t22_hlog WHERE claim_id = cid
$f$;
SELECT lives_ok($$
    SELECT approvals.submit('t22_h', c.rid, 'h', id => c.cid, actor => 'usr_req', steps => c.steps::jsonb)
      FROM (VALUES ('tap22_h1', 'ok',    '[{"name": "one", "approvers": ["usr_a"], "required": 1}, {"name": "two", "approvers": ["usr_b"], "required": 1}]'),
                   ('tap22_h2', 'boom',  '[{"name": "one", "approvers": ["usr_a"], "required": 1}, {"name": "two", "approvers": ["usr_b"], "required": 1}]'),
                   ('tap22_h3', 'ok3',   '[{"name": "pair", "approvers": ["usr_a", "usr_b"], "required": 2}]'),
                   ('tap22_h4', 'boom4', '[{"name": "pair", "approvers": ["usr_a", "usr_b"], "required": 2}]')) AS c(cid, rid, steps)$$,
    'fixture: four t22_h claims');
SELECT is(pg_temp.dec('tap22_h1', 'approved', 'usr_a'), '(pending,2,1,2)', 'handler: step one approved');
SELECT is(pg_temp.hlog('tap22_h1'), 'submitted approved step_completed', 'the handler ran for approved and step_completed');
SELECT is(pg_temp.dec('tap22_h1', 'approved', 'usr_b'), '(approved,,2,2)', 'handler: step two approved');
SELECT is(pg_temp.hlog('tap22_h1'), 'submitted approved step_completed approved step_completed', 'and again for the last step');
SELECT is((SELECT string_agg(CASE WHEN comment ~ 'one' THEN 'one' WHEN comment ~ 'two' THEN 'two' ELSE '?' END, ' ' ORDER BY n)
             FROM public.t22_hlog WHERE claim_id = 'tap22_h1' AND action = 'step_completed'),
          'one two', 'the handler saw each step_completed event with its step named');
SELECT is((SELECT status FROM public.t22_hlog WHERE claim_id = 'tap22_h1' ORDER BY n DESC LIMIT 1), 'approved',
          'at the last step_completed the handler saw the approved claim');
SELECT throws_ok($$SELECT approvals.decide('tap22_h2', 'approved', actor => 'usr_a')$$, 'HX022', 'cannot step_completed tap22_h2',
                 'a handler raising on step_completed: decide raises its error');
SELECT is((SELECT row(status, current_step, approval_count, approved_by)::text FROM approvals.claims WHERE id = 'tap22_h2'),
          '(pending,1,0,{})', 'the claim is unchanged (no approval, still step 1)');
SELECT is(pg_temp.ev('tap22_h2') || ' / ' || pg_temp.hlog('tap22_h2'), 'submitted / submitted',
          'no event was appended and the handler''s own writes are gone');
SELECT is(pg_temp.dec('tap22_h3', 'abstained', 'usr_a'), '(pending,1,0,2)', 'handler: abstain escalates the step');
SELECT is(pg_temp.hlog('tap22_h3'), 'submitted abstained escalated', 'the handler ran for abstained and escalated');
SELECT throws_ok($$SELECT approvals.decide('tap22_h4', 'abstained', actor => 'usr_a')$$, 'HX022', 'cannot escalated tap22_h4',
                 'a handler raising on escalated: the abstention raises');
SELECT is(pg_temp.ev('tap22_h4') || ' / ' || pg_temp.hlog('tap22_h4'), 'submitted / submitted', 'nothing was recorded');
SELECT is(pg_temp.dec('tap22_h4', 'approved', 'usr_a'), '(pending,1,1,2)',
          'the failed abstention left usr_a in the step: it may approve');

-- ---------------------------------------------------------------------------
-- Steps from a policy; expiry with on_expiry 'escalate'
-- ---------------------------------------------------------------------------
SET ROLE t22_adm;
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't22_exp', expires_in => '1 hour', on_expiry => 'escalate',
                                              steps => '[{"name": "one", "approvers": ["usr_a"], "required": 1},
                                                         {"name": "two", "approvers": ["usr_b"], "required": 1}]')$$,
                'admin sets a policy with two steps, expires_in 1 hour, on_expiry escalate');
RESET ROLE;
SELECT is((SELECT jsonb_array_length(steps) FROM approvals.policies WHERE resource_type = 't22_exp' AND active), 2,
          'the policy stores its steps');
SELECT is(pg_temp.q($$SELECT row(status, current_step, required_approvals, approvers, expires_at = now() + interval '1 hour', on_expiry,
                                 (SELECT string_agg(s->>'name', ',') FROM jsonb_array_elements(steps) AS s))::text
                        FROM approvals.submit('t22_exp', 'x1', 'h', id => 'tap22_x1', actor => 'usr_req')$$),
          '(pending,1,2,,t,escalate,"one,two")', 'a claim submitted under the policy gets its steps, deadline and on_expiry');
SELECT lives_ok($$SELECT approvals.expire_due()$$, 'fixture: flush claims that were already due');
UPDATE approvals.claims SET expires_at = now() - interval '1 second' WHERE id = 'tap22_x1';
SELECT is(pg_temp.q($$SELECT approvals.expire_due()$$), '1', 'expire_due escalates the overdue claim: 1');
SELECT is((SELECT row(status, current_step, expires_at)::text FROM approvals.claims WHERE id = 'tap22_x1'), '(pending,1,)',
          'the claim stays pending at step 1, without a deadline');
SELECT is((SELECT string_agg(row(action, from_status, to_status, actor)::text, ' ' ORDER BY id) FROM approvals.events WHERE claim_id = 'tap22_x1'),
          '(submitted,,pending,usr_req) (escalated,pending,pending,system)', 'an escalated event by system');
SELECT is(pg_temp.dec('tap22_x1', 'approved', 'usr_x'), '(pending,2,1,2)', 'the escalated step: any reviewer approves it');
SELECT is(pg_temp.dc('tap22_x1', 'approved', 'usr_y'), 'ERROR 42501', 'step two is not escalated (42501 for usr_y)');
SELECT is(pg_temp.dec('tap22_x1', 'approved', 'usr_b'), '(approved,,2,2)', 'step two''s approver approves it');
SELECT is(pg_temp.q($$SELECT approvals.expire_due()$$), '0', 'nothing is due any more');

SELECT is(ARRAY(SELECT id || ':' || current_step FROM approvals.claims
                 WHERE steps IS NOT NULL AND status = 'approved' AND current_step IS NOT NULL ORDER BY id),
          '{}'::text[], 'every approved claim with steps has current_step NULL (after the last step)');

SELECT * FROM finish();
ROLLBACK;
