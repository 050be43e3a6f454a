-- 07_expire: expires_at, decide on an overdue claim, and expire_due() with
-- on_expiry 'expire' and 'escalate' (next approver, restarted clock, end of
-- route), handlers on expiry, and the count it returns.
--
-- Time: inside one transaction now() does not move, so a claim cannot become
-- overdue by waiting.  The test therefore moves expires_at of chosen claims
-- into the past with a direct UPDATE as the superuser ("the clock has passed
-- expires_at"); everything else goes through the API.
BEGIN;
SELECT plan(45);

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

CREATE ROLE t07_adm  IN ROLE approvals_admin;
CREATE ROLE t07_req  IN ROLE approvals_requester;
CREATE ROLE t07_rev1 IN ROLE approvals_reviewer;
CREATE ROLE t07_rev2 IN ROLE approvals_reviewer;
CREATE ROLE t07_rev3 IN ROLE approvals_reviewer;
CREATE ROLE t07_hown;

CREATE TABLE public.t07_xlog (n serial PRIMARY KEY, claim_id text, action text, claim_status text);
GRANT INSERT, SELECT ON public.t07_xlog TO t07_hown;
GRANT USAGE ON SEQUENCE public.t07_xlog_n_seq TO t07_hown;
CREATE FUNCTION public.t07_x_log(c approvals.claims, e approvals.events) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO public.t07_xlog (claim_id, action, claim_status) VALUES (c.id, e.action, c.status);
END $f$;
CREATE FUNCTION public.t07_x_fail(c approvals.claims, e approvals.events) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
    IF e.action = 'expired' THEN
        RAISE EXCEPTION 'cannot expire %', c.id USING ERRCODE = 'HX002';
    END IF;
END $f$;
ALTER FUNCTION public.t07_x_log(approvals.claims, approvals.events) OWNER TO t07_hown;
ALTER FUNCTION public.t07_x_fail(approvals.claims, approvals.events) OWNER TO t07_hown;

-- ---------------------------------------------------------------------------
-- Policies and claims
-- ---------------------------------------------------------------------------
SET ROLE t07_adm;
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't07_x', expires_in => '1 hour')$$,
                'policy: t07_x expires after an hour');
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't07_esc', approvers => ARRAY['t07_rev1','t07_rev2','t07_rev3'],
                                              expires_in => '1 hour', on_expiry => 'escalate')$$,
                'policy: t07_esc escalates along three approvers every hour');
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't07_last', approvers => ARRAY['t07_rev1'],
                                              expires_in => '30 minutes', on_expiry => 'escalate')$$,
                'policy: t07_last escalates with a single approver');
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't07_fail', expires_in => '1 hour')$$,
                'policy: t07_fail expires after an hour');
RESET ROLE;
SELECT lives_ok($$SELECT approvals.set_handler('t07_x', 'public.t07_x_log(approvals.claims, approvals.events)'),
                         approvals.set_handler('t07_fail', 'public.t07_x_fail(approvals.claims, approvals.events)')$$,
                'handlers for t07_x (logs) and t07_fail (raises on expiry)');

SELECT lives_ok($$
    SELECT approvals.submit(c.rt, c.id, 'h', id => c.id, actor => 't07_req', expires_at => c.exp)
      FROM (VALUES ('t07_x',    'tap07_x1', NULL::timestamptz),
                   ('t07_esc',  'tap07_e1', NULL),
                   ('t07_last', 'tap07_l1', NULL),
                   ('t07_fail', 'tap07_f1', NULL),
                   ('t07_n',    'tap07_d1', now() + interval '5 minutes'),
                   ('t07_n',    'tap07_n1', now() + interval '1 day'),
                   ('t07_n',    'tap07_n2', NULL)) AS c(rt, id, exp)$$,
    'fixture: seven claims');
SELECT is((SELECT string_agg(id || ':' || coalesce((expires_at - now())::text, '-') || ':' || on_expiry, ' ' ORDER BY id)
             FROM approvals.claims WHERE id LIKE 'tap07%'),
          'tap07_d1:00:05:00:expire tap07_e1:01:00:00:escalate tap07_f1:01:00:00:expire '
          'tap07_l1:00:30:00:escalate tap07_n1:1 day:expire tap07_n2:-:expire tap07_x1:01:00:00:expire',
          'expires_at = now() + the policy''s expires_in, or the explicit value; on_expiry from the policy');

-- Claims already due that other suites may have committed are expired first
-- (inside this transaction only), so that the counts below are this file's.
SELECT lives_ok($$SELECT approvals.expire_due()$$, 'fixture: flush claims that were already due');
SET ROLE t07_adm;
SELECT is(pg_temp.q($$SELECT approvals.expire_due()$$), '0', 'expire_due before any deadline passed: 0');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id LIKE 'tap07%' AND status = 'pending'), 7,
          'nothing was expired early');

-- ---------------------------------------------------------------------------
-- The deadlines of x1, e1, l1, f1, d1 pass
-- ---------------------------------------------------------------------------
-- Simulate the passage of time: these deadlines are now behind us.
UPDATE approvals.claims SET expires_at = now() - interval '1 second'
 WHERE id IN ('tap07_x1', 'tap07_e1', 'tap07_l1', 'tap07_f1', 'tap07_d1');

SET ROLE t07_rev1;
SELECT throws_ok($$SELECT approvals.decide('tap07_x1', 'approved')$$, '55000', NULL,
                 'deciding a pending claim whose expires_at has passed is 55000');
SELECT throws_ok($$SELECT approvals.decide('tap07_d1', 'rejected')$$, '55000', NULL,
                 'rejecting a pending claim whose expires_at has passed is 55000');
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap07_n1', 'approved')$$), 'approved',
          'a claim whose expires_at is still ahead can be decided');
SET ROLE t07_rev2;
SELECT throws_ok($$SELECT approvals.expire_due()$$, '42501', NULL, 'expire_due by a reviewer is 42501');
SET ROLE t07_req;
SELECT throws_ok($$SELECT approvals.expire_due()$$, '42501', NULL, 'expire_due by a requester is 42501');
RESET ROLE;
SELECT is((SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM approvals.claims WHERE id IN ('tap07_x1', 'tap07_d1')),
          'tap07_d1:pending tap07_x1:pending', 'the refused decisions left the overdue claims pending');
SELECT is(pg_temp.ev('tap07_x1'), 'submitted(>pending)', 'the refused decision appended no event');

SET ROLE t07_adm;
SELECT is(pg_temp.q($$SELECT approvals.expire_due()$$), '4',
          'expire_due: 4 (x1 and d1 expired, e1 and l1 escalated; f1''s handler raised, so it is skipped)');
RESET ROLE;

-- expired
SELECT is((SELECT status FROM approvals.claims WHERE id = 'tap07_x1'), 'expired', 'on_expiry expire: the claim is expired');
SELECT is((SELECT string_agg(row(action, from_status, to_status, actor)::text, ' ' ORDER BY id)
             FROM approvals.events WHERE claim_id = 'tap07_x1'),
          '(submitted,,pending,t07_req) (expired,pending,expired,system)',
          'on_expiry expire: an expired event (pending -> expired) by system');
SELECT is((SELECT string_agg(action || ':' || claim_status, ' ' ORDER BY n) FROM public.t07_xlog WHERE claim_id = 'tap07_x1'),
          'submitted:pending expired:expired', 'the handler ran for the expiry and saw the expired claim');
SELECT is((SELECT status FROM approvals.claims WHERE id = 'tap07_d1'), 'expired',
          'an explicit expires_at without policy expires (default on_expiry expire)');

-- escalated to the next approver with a fresh deadline
SELECT is((SELECT row(status, assignee, route_position, expires_at = now() + interval '1 hour')::text
             FROM approvals.claims WHERE id = 'tap07_e1'),
          '(pending,t07_rev2,2,t)', 'on_expiry escalate: next approver, expires_at restarted at now() + expires_in');
SELECT is((SELECT string_agg(row(action, from_status, to_status, actor)::text, ' ' ORDER BY id)
             FROM approvals.events WHERE claim_id = 'tap07_e1'),
          '(submitted,,pending,t07_req) (escalated,pending,pending,system)',
          'on_expiry escalate: an escalated event (pending -> pending) by system');

-- escalated past the end of the route
SELECT is((SELECT row(status, assignee, expires_at)::text FROM approvals.claims WHERE id = 'tap07_l1'),
          '(pending,,)', 'escalation past the end of the route: pending, no assignee, no deadline');
SELECT is(pg_temp.ev('tap07_l1'), 'submitted(>pending) escalated(pending>pending)',
          'escalation past the end of the route: an escalated event');

-- skipped because the handler raised
SELECT is((SELECT status FROM approvals.claims WHERE id = 'tap07_f1'), 'pending',
          'a claim whose handler raises on expiry stays pending');
SELECT is(pg_temp.ev('tap07_f1'), 'submitted(>pending)', 'and gets no expired event');

-- untouched
SELECT is((SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM approvals.claims WHERE id IN ('tap07_n1', 'tap07_n2')),
          'tap07_n1:approved tap07_n2:pending', 'claims without a passed deadline are untouched');

SET ROLE t07_adm;
SELECT is(pg_temp.q($$SELECT approvals.expire_due()$$), '0',
          'a second expire_due: 0 (nothing newly due; f1 is skipped again and not counted)');
RESET ROLE;
SELECT is(pg_temp.ev('tap07_e1'), 'submitted(>pending) escalated(pending>pending)',
          'the second run did not escalate e1 again (its new deadline is ahead)');

-- ---------------------------------------------------------------------------
-- After expiry / escalation
-- ---------------------------------------------------------------------------
SET ROLE t07_rev1;
SELECT throws_ok($$SELECT approvals.decide('tap07_x1', 'approved')$$, '55000', NULL, 'deciding an expired claim is 55000');
SELECT throws_ok($$SELECT approvals.decide('tap07_e1', 'approved')$$, '42501', NULL,
                 'after escalation the previous assignee may not decide (42501)');
SET ROLE t07_req;
SELECT throws_ok($$SELECT approvals.cancel_claim('tap07_x1')$$, '55000', NULL, 'cancelling an expired claim is 55000');
RESET ROLE;

-- e1 escalates again (to the third approver), then past the end
UPDATE approvals.claims SET expires_at = now() - interval '1 second' WHERE id = 'tap07_e1';
SET ROLE t07_adm;
SELECT is(pg_temp.q($$SELECT approvals.expire_due()$$), '1', 'expire_due escalates e1 once more: 1');
RESET ROLE;
SELECT is((SELECT row(assignee, route_position, expires_at = now() + interval '1 hour')::text FROM approvals.claims WHERE id = 'tap07_e1'),
          '(t07_rev3,3,t)', 'second escalation: the third approver, a fresh deadline');
SET ROLE t07_rev2;
SELECT throws_ok($$SELECT approvals.decide('tap07_e1', 'approved')$$, '42501', NULL,
                 'the second approver''s turn is over (42501)');
RESET ROLE;
UPDATE approvals.claims SET expires_at = now() - interval '1 second' WHERE id = 'tap07_e1';
SET ROLE t07_adm;
SELECT is(pg_temp.q($$SELECT approvals.expire_due()$$), '1', 'expire_due escalates e1 past the end of its route: 1');
RESET ROLE;
SELECT is((SELECT row(status, assignee, expires_at)::text FROM approvals.claims WHERE id = 'tap07_e1'),
          '(pending,,)', 'past the end of the route: no assignee, no deadline');
SELECT is(pg_temp.ev('tap07_e1'),
          'submitted(>pending) escalated(pending>pending) escalated(pending>pending) escalated(pending>pending)',
          'three escalated events');
SET ROLE t07_adm;
SELECT is(pg_temp.q($$SELECT approvals.expire_due()$$), '0', 'a claim without deadline is never due again');
SET ROLE t07_rev2;
SELECT is(pg_temp.q($$SELECT row(status, reviewer)::text FROM approvals.decide('tap07_e1', 'approved')$$),
          '(approved,t07_rev2)', 'after the route is exhausted any reviewer may decide');
SET ROLE t07_rev3;
SELECT is(pg_temp.q($$SELECT row(status, reviewer)::text FROM approvals.decide('tap07_l1', 'rejected')$$),
          '(rejected,t07_rev3)', 'the escalated single-approver claim can be decided by anyone');
RESET ROLE;

-- a claim whose handler raises is decided normally once it is no longer overdue
SELECT lives_ok($$UPDATE approvals.claims SET expires_at = now() + interval '1 minute' WHERE id = 'tap07_f1'$$,
                'fixture: f1''s deadline moved back into the future');
SET ROLE t07_rev1;
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap07_f1', 'approved')$$), 'approved',
          'the skipped claim is still decidable');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
