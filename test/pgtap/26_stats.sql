-- 26_stats: claim_stats and approver_stats (API.md §12; README "Statistics"): counts per
-- status, overdue (pending past expires_at), p50/p90 of the time to decision (approved
-- and rejected claims only), the since window (default 30 days) and the tenant filter,
-- tenant visibility (a reader sees NULL-tenant claims and its granted tenants; asking
-- for another tenant is 42501), the roles; approver_stats' decisions by outcome, the
-- response from the claim's previous event, and assigned_pending/assigned_overdue from
-- the claims waiting for an actor by name now (route assignee, step approver who has not
-- acted; not a later approver of the route, not a delegate).
--
-- Time: inside the transaction now() is fixed, and submit refuses an expires_at that is
-- not in the future. So the test moves time instead: as a superuser it moves a claim's
-- timestamps back (claims.created_at/decided_at/expires_at, its inbox entries'
-- expires_key/created_at, and its events' `at`, with the events' append-only trigger
-- disabled for the setup), which is what the rows would be had the claim been submitted
-- and decided that long ago. Percentiles are checked over 11 values, where
-- percentile_cont and percentile_disc agree (p50 = the 6th, p90 = the 10th).
-- Everything is rolled back.
BEGIN;
SELECT plan(44);

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
-- Move every timestamp of a claim back by iv.
CREATE FUNCTION pg_temp.age(cid text, iv interval) RETURNS void LANGUAGE sql AS $f$
    UPDATE approvals.claims SET created_at = created_at - iv, updated_at = updated_at - iv,
                                decided_at = decided_at - iv, expires_at = expires_at - iv WHERE id = cid;
    UPDATE approvals.inbox_entries SET created_at = created_at - iv, expires_key = expires_key - iv WHERE claim_id = cid;
    UPDATE approvals.events SET at = at - iv WHERE claim_id = cid;
$f$;
-- A claim submitted `ago` before now: its first event then, every later one `after` later
-- (a decided claim: decided_at too).
CREATE FUNCTION pg_temp.timed(cid text, ago interval, after interval) RETURNS void LANGUAGE sql AS $f$
    UPDATE approvals.claims SET created_at = now() - ago, updated_at = now() - ago + after,
                                decided_at = CASE WHEN decided_at IS NOT NULL THEN now() - ago + after END
     WHERE id = cid;
    UPDATE approvals.events SET at = CASE WHEN action = 'submitted' THEN now() - ago ELSE now() - ago + after END
     WHERE claim_id = cid;
$f$;
-- Set the time of the event of a claim by actor (its decision).
CREATE FUNCTION pg_temp.event_at(cid text, who text, t timestamptz) RETURNS void LANGUAGE sql AS $f$
    UPDATE approvals.events SET at = t WHERE claim_id = cid AND actor = who AND action <> 'submitted';
$f$;
-- The rows of claim_stats / approver_stats that this file made, as row texts.
CREATE FUNCTION pg_temp.cs(since timestamptz, ten text DEFAULT NULL) RETURNS text[] LANGUAGE sql AS $f$
    SELECT ARRAY(SELECT row(s.*)::text FROM approvals.claim_stats(since, ten) s
                  WHERE s.resource_type LIKE 'rt26%' ORDER BY s.resource_type)
$f$;
CREATE FUNCTION pg_temp.aps(since timestamptz, ten text DEFAULT NULL) RETURNS text[] LANGUAGE sql AS $f$
    SELECT ARRAY(SELECT row(s.*)::text FROM approvals.approver_stats(since, ten) s
                  WHERE s.actor LIKE 'usr26%' ORDER BY s.actor)
$f$;

CREATE ROLE t26_rdr  IN ROLE approvals_reader;      -- tenant t26_ta
CREATE ROLE t26_rdr0 IN ROLE approvals_reader;      -- no tenant
CREATE ROLE t26_rev  IN ROLE approvals_reviewer;    -- tenant t26_ta
CREATE ROLE t26_adm  IN ROLE approvals_admin;
CREATE ROLE t26_plat IN ROLE approvals_platform;
CREATE ROLE t26_none;                               -- no approvals role
DO $$ BEGIN PERFORM approvals.grant_tenant('t26_ta', 't26_rdr'); PERFORM approvals.grant_tenant('t26_ta', 't26_rev'); END $$;

-- ---------------------------------------------------------------------------
-- The contract's signatures
-- ---------------------------------------------------------------------------
SELECT is(
    ARRAY(SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || ') -> ' || pg_get_function_result(p.oid)
            FROM pg_proc p WHERE p.pronamespace = 'approvals'::regnamespace
             AND p.proname IN ('claim_stats', 'approver_stats') ORDER BY 1),
    ARRAY['approver_stats(since timestamp with time zone DEFAULT (now() - ''30 days''::interval), tenant text DEFAULT NULL::text) -> TABLE(actor text, decisions bigint, approved bigint, rejected bigint, abstained bigint, p50_response interval, p90_response interval, assigned_pending bigint, assigned_overdue bigint)',
          'claim_stats(since timestamp with time zone DEFAULT (now() - ''30 days''::interval), tenant text DEFAULT NULL::text) -> TABLE(resource_type text, submitted bigint, approved bigint, rejected bigint, cancelled bigint, expired bigint, pending bigint, overdue bigint, p50_time_to_decision interval, p90_time_to_decision interval)'],
    'claim_stats and approver_stats have the contract''s arguments and results');

-- ---------------------------------------------------------------------------
-- Fixture
-- ---------------------------------------------------------------------------
ALTER TABLE approvals.events DISABLE TRIGGER USER;   -- the setup moves events' timestamps
DO $$
DECLARE k int;
BEGIN
    -- rt26_a (no tenant): 8 approved and 3 rejected, decided 1h .. 11h after submission;
    -- 2 cancelled and 1 expired long after submission (not decision times); 3 pending:
    -- one expiring in an hour, one overdue, one without expiry.
    FOR k IN 1..11 LOOP
        PERFORM approvals.submit('rt26_a', 'a' || k, 'h', id => 'c26_a' || k, actor => 'usr26_req');
        PERFORM approvals.decide('c26_a' || k, CASE WHEN k <= 8 THEN 'approved' ELSE 'rejected' END, actor => 'usr26_x');
        PERFORM pg_temp.timed('c26_a' || k, interval '20 hours', k * interval '1 hour');
    END LOOP;
    FOR k IN 1..2 LOOP
        PERFORM approvals.submit('rt26_a', 'can' || k, 'h', id => 'c26_can' || k, actor => 'usr26_req');
        PERFORM approvals.cancel_claim('c26_can' || k, actor => 'usr26_req');
        PERFORM pg_temp.timed('c26_can' || k, interval '200 hours', interval '199 hours');
    END LOOP;
    PERFORM approvals.submit('rt26_a', 'exp', 'h', id => 'c26_exp', actor => 'usr26_req', expires_at => now() + interval '1 hour');
    PERFORM pg_temp.age('c26_exp', interval '300 hours');
    IF approvals.expire_due() <> 1 THEN RAISE 'expire_due did not expire c26_exp alone'; END IF;
    PERFORM approvals.submit('rt26_a', 'p1', 'h', id => 'c26_p1', actor => 'usr26_req', expires_at => now() + interval '1 hour');
    PERFORM approvals.submit('rt26_a', 'p2', 'h', id => 'c26_p2', actor => 'usr26_req', expires_at => now() + interval '1 hour');
    PERFORM pg_temp.age('c26_p2', interval '2 hours');
    PERFORM approvals.submit('rt26_a', 'p3', 'h', id => 'c26_p3', actor => 'usr26_req');
    -- rt26_b (tenant t26_ta): one approved 30 minutes after submission, one pending overdue
    PERFORM approvals.submit('rt26_b', 'b1', 'h', id => 'c26_b1', actor => 'usr26_req', tenant => 't26_ta');
    PERFORM approvals.decide('c26_b1', 'approved', actor => 'usr26_x');
    PERFORM pg_temp.timed('c26_b1', interval '3 hours', interval '30 minutes');
    PERFORM approvals.submit('rt26_b', 'b2', 'h', id => 'c26_b2', actor => 'usr26_req', tenant => 't26_ta',
                             expires_at => now() + interval '1 hour');
    PERFORM pg_temp.age('c26_b2', interval '2 hours');
    -- rt26_c (tenant t26_tb): one pending
    PERFORM approvals.submit('rt26_c', 'c1', 'h', id => 'c26_c1', actor => 'usr26_req', tenant => 't26_tb');
    -- rt26_old: approved 31 days ago (outside the default window), rejected 29 days ago
    PERFORM approvals.submit('rt26_old', 'o1', 'h', id => 'c26_o1', actor => 'usr26_req');
    PERFORM approvals.decide('c26_o1', 'approved', actor => 'usr26_x');
    PERFORM pg_temp.timed('c26_o1', interval '31 days', interval '1 hour');
    PERFORM approvals.submit('rt26_old', 'o2', 'h', id => 'c26_o2', actor => 'usr26_req');
    PERFORM approvals.decide('c26_o2', 'rejected', actor => 'usr26_x');
    PERFORM pg_temp.timed('c26_o2', interval '29 days', interval '2 hours');

    -- rt26_r (no tenant), for approver_stats. usr26_a decides 11 route-less claims
    -- (6 approved, 3 rejected, 2 abstained) 1 .. 11 minutes after their submission.
    FOR k IN 1..11 LOOP
        PERFORM approvals.submit('rt26_r', 'r' || k, 'h', id => 'c26_r' || k, actor => 'usr26_req');
        PERFORM approvals.decide('c26_r' || k, CASE WHEN k <= 6 THEN 'approved' WHEN k <= 9 THEN 'rejected' ELSE 'abstained' END,
                                 actor => 'usr26_a');
        PERFORM pg_temp.timed('c26_r' || k, interval '1 hour', k * interval '1 minute');
    END LOOP;
    -- ... and one 40 days ago (outside the default window)
    PERFORM approvals.submit('rt26_r', 'rold', 'h', id => 'c26_rold', actor => 'usr26_req');
    PERFORM approvals.decide('c26_rold', 'approved', actor => 'usr26_a');
    PERFORM pg_temp.timed('c26_rold', interval '40 days', interval '1 hour');
    -- route usr26_b then usr26_c, both must approve: submitted at -60 min, usr26_b at -50,
    -- usr26_c at -35: usr26_c's response is 15 minutes (from usr26_b's approval)
    PERFORM approvals.submit('rt26_r', 'q1', 'h', id => 'c26_q1', actor => 'usr26_req',
                             approvers => ARRAY['usr26_b', 'usr26_c'], required_approvals => 2);
    PERFORM approvals.decide('c26_q1', 'approved', actor => 'usr26_b');
    PERFORM approvals.decide('c26_q1', 'approved', actor => 'usr26_c');
    PERFORM pg_temp.timed('c26_q1', interval '60 minutes', interval '0');
    PERFORM pg_temp.event_at('c26_q1', 'usr26_b', now() - interval '50 minutes');
    PERFORM pg_temp.event_at('c26_q1', 'usr26_c', now() - interval '35 minutes');
    -- pending, route usr26_p then usr26_q: waits for usr26_p (not usr26_q, who comes later)
    PERFORM approvals.submit('rt26_r', 'q2', 'h', id => 'c26_q2', actor => 'usr26_req',
                             approvers => ARRAY['usr26_p', 'usr26_q'], required_approvals => 2);
    -- pending, one step of usr26_p and usr26_s (2 required): usr26_s approves 5 minutes
    -- after submission, so it waits for usr26_p only
    PERFORM approvals.submit('rt26_r', 'q3', 'h', id => 'c26_q3', actor => 'usr26_req',
                             steps => '[{"name": "both", "approvers": ["usr26_p", "usr26_s"], "required": 2}]');
    PERFORM approvals.decide('c26_q3', 'approved', actor => 'usr26_s');
    PERFORM pg_temp.timed('c26_q3', interval '10 minutes', interval '5 minutes');
    -- pending, route usr26_p alone, past its expires_at
    PERFORM approvals.submit('rt26_r', 'q4', 'h', id => 'c26_q4', actor => 'usr26_req', approvers => ARRAY['usr26_p'],
                             expires_at => now() + interval '1 hour');
    PERFORM pg_temp.age('c26_q4', interval '2 hours');
    -- pending, route usr26_dr, who delegated to usr26_dg: it waits for usr26_dr by name
    PERFORM approvals.delegate('usr26_dg', delegator => 'usr26_dr');
    PERFORM approvals.submit('rt26_r', 'q5', 'h', id => 'c26_q5', actor => 'usr26_req', approvers => ARRAY['usr26_dr']);
    -- tenant t26_tb: one decided by usr26_t, one pending for usr26_t
    PERFORM approvals.submit('rt26_r', 't1', 'h', id => 'c26_t1', actor => 'usr26_req', tenant => 't26_tb');
    PERFORM approvals.decide('c26_t1', 'rejected', actor => 'usr26_t');
    PERFORM pg_temp.timed('c26_t1', interval '1 hour', interval '20 minutes');
    PERFORM approvals.submit('rt26_r', 't2', 'h', id => 'c26_t2', actor => 'usr26_req', tenant => 't26_tb',
                             approvers => ARRAY['usr26_t']);
END $$;
ALTER TABLE approvals.events ENABLE TRIGGER USER;
SELECT is((SELECT string_agg(status || ':' || count, ' ' ORDER BY status)
             FROM (SELECT status, count(*) FROM approvals.claims WHERE resource_type = 'rt26_a' GROUP BY status) s),
          'approved:8 cancelled:2 expired:1 pending:3 rejected:3', 'fixture: the claims of rt26_a');
SELECT is((SELECT count(*) FROM approvals.claims WHERE status = 'pending' AND expires_at <= now() AND id LIKE 'c26%'),
          3::bigint, 'fixture: three pending claims are past expires_at (c26_p2, c26_b2, c26_q4)');

-- ---------------------------------------------------------------------------
-- claim_stats
-- ---------------------------------------------------------------------------
SELECT is(ARRAY(SELECT row(s.*)::text FROM approvals.claim_stats() s WHERE s.resource_type LIKE 'rt26%' ORDER BY 1),
          ARRAY['(rt26_a,17,8,3,2,1,3,1,06:00:00,10:00:00)',
                '(rt26_b,2,1,0,0,0,1,1,00:30:00,00:30:00)',
                '(rt26_c,1,0,0,0,0,1,0,,)',
                '(rt26_old,1,0,1,0,0,0,0,02:00:00,02:00:00)',
                '(rt26_r,18,7,4,0,0,7,1,00:05:00,00:09:00)'],
          'claim_stats(): one row per resource type of the last 30 days: submitted, each status, overdue, p50/p90 of decided_at - created_at of approved and rejected claims');
SELECT is((SELECT row(submitted, approved, rejected, pending)::text FROM approvals.claim_stats(now() - interval '40 days') WHERE resource_type = 'rt26_old'),
          '(2,1,1,0)', 'since => 40 days ago: the claim of 31 days ago counts too');
SELECT is(pg_temp.cs(now() - interval '10 hours'),
          ARRAY['(rt26_a,3,0,0,0,0,3,1,,)',
                '(rt26_b,2,1,0,0,0,1,1,00:30:00,00:30:00)',
                '(rt26_c,1,0,0,0,0,1,0,,)',
                '(rt26_r,18,7,4,0,0,7,1,00:05:00,00:09:00)'],
          'since => 10 hours ago: the claims created since then only (what they were decided is not the window)');
SELECT is(pg_temp.cs(now() + interval '1 minute'), '{}'::text[], 'since in the future: no row');
SELECT is(pg_temp.cs(now() - interval '30 days', 't26_ta'), ARRAY['(rt26_b,2,1,0,0,0,1,1,00:30:00,00:30:00)'],
          'tenant => t26_ta: that tenant''s claims only (not the NULL-tenant ones)');
SELECT is(pg_temp.cs(now() - interval '30 days', 't26_nobody'), '{}'::text[], 'a tenant without claims: no row');
SELECT throws_ok($$SELECT * FROM approvals.claim_stats(tenant => repeat('t', 129))$$, '22001', NULL,
                 'a tenant of 129 characters is 22001');

SET ROLE t26_rdr;
SELECT is(ARRAY(SELECT resource_type || ':' || submitted FROM approvals.claim_stats() WHERE resource_type LIKE 'rt26%' ORDER BY 1),
          ARRAY['rt26_a:17', 'rt26_b:2', 'rt26_old:1', 'rt26_r:16'],
          'a reader granted t26_ta: the NULL-tenant claims and t26_ta''s, not t26_tb''s');
SELECT is((SELECT row(s.*)::text FROM approvals.claim_stats(tenant => 't26_ta') s WHERE resource_type LIKE 'rt26%'),
          '(rt26_b,2,1,0,0,0,1,1,00:30:00,00:30:00)', 'the reader, tenant => t26_ta: that tenant');
SELECT throws_ok($$SELECT * FROM approvals.claim_stats(tenant => 't26_tb')$$, '42501', NULL,
                 'the reader, tenant => t26_tb (not granted): 42501');
SELECT throws_ok($$SELECT * FROM approvals.claim_stats(tenant => 't26_nobody')$$, '42501', NULL,
                 'the reader, tenant => a tenant not granted and without claims: 42501');
RESET ROLE;
SET ROLE t26_rdr0;
SELECT is(ARRAY(SELECT resource_type || ':' || submitted FROM approvals.claim_stats() WHERE resource_type LIKE 'rt26%' ORDER BY 1),
          ARRAY['rt26_a:17', 'rt26_old:1', 'rt26_r:16'], 'a reader with no tenant: the NULL-tenant claims only');
RESET ROLE;
SET ROLE t26_rev;
SELECT is(ARRAY(SELECT resource_type || ':' || submitted FROM approvals.claim_stats() WHERE resource_type LIKE 'rt26%' ORDER BY 1),
          ARRAY['rt26_a:17', 'rt26_b:2', 'rt26_old:1', 'rt26_r:16'], 'a reviewer (a reader) granted t26_ta: the same');
RESET ROLE;
SET ROLE t26_adm;
SELECT is(ARRAY(SELECT row(s.*)::text FROM approvals.claim_stats(tenant => 't26_tb') s WHERE resource_type LIKE 'rt26%' ORDER BY 1),
          ARRAY['(rt26_c,1,0,0,0,0,1,0,,)', '(rt26_r,2,0,1,0,0,1,0,00:20:00,00:20:00)'],
          'an admin sees every tenant: tenant => t26_tb');
RESET ROLE;
SET ROLE t26_plat;
SELECT is(ARRAY(SELECT resource_type FROM approvals.claim_stats() WHERE resource_type LIKE 'rt26%' ORDER BY 1),
          ARRAY['rt26_a', 'rt26_b', 'rt26_c', 'rt26_old', 'rt26_r'], 'platform sees every tenant');
RESET ROLE;
SET ROLE t26_none;
SELECT throws_ok($$SELECT * FROM approvals.claim_stats()$$, '42501', NULL, 'claim_stats by a role with no approvals role is 42501');
SELECT throws_ok($$SELECT * FROM approvals.approver_stats()$$, '42501', NULL, 'approver_stats by a role with no approvals role is 42501');
RESET ROLE;
GRANT USAGE ON SCHEMA approvals TO t26_none;
GRANT EXECUTE ON FUNCTION approvals.claim_stats(timestamptz, text), approvals.approver_stats(timestamptz, text) TO t26_none;
SET ROLE t26_none;
SELECT throws_ok($$SELECT * FROM approvals.claim_stats()$$, '42501', NULL,
                 'EXECUTE granted directly: claim_stats by a role with no approvals role is still 42501');
SELECT throws_ok($$SELECT * FROM approvals.approver_stats()$$, '42501', NULL,
                 'EXECUTE granted directly: approver_stats by a role with no approvals role is still 42501');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- approver_stats
-- ---------------------------------------------------------------------------
SELECT is(ARRAY(SELECT row(s.*)::text FROM approvals.approver_stats() s WHERE s.actor LIKE 'usr26%' AND s.actor <> 'usr26_x' ORDER BY 1),
          ARRAY['(usr26_a,11,6,3,2,00:06:00,00:10:00,0,0)',
                '(usr26_b,1,1,0,0,00:10:00,00:10:00,0,0)',
                '(usr26_c,1,1,0,0,00:15:00,00:15:00,0,0)',
                '(usr26_dr,0,0,0,0,,,1,0)',
                '(usr26_p,0,0,0,0,,,3,1)',
                '(usr26_s,1,1,0,0,00:05:00,00:05:00,0,0)',
                '(usr26_t,1,0,1,0,00:20:00,00:20:00,1,0)'],
          'approver_stats(): per actor decisions by outcome, p50/p90 response, claims waiting for them by name now and those overdue');
SELECT is((SELECT row(decisions, approved, rejected, abstained)::text FROM approvals.approver_stats() WHERE actor = 'usr26_x'),
          '(13,9,4,0)', 'the decider of the claim_stats fixture: 13 decisions in the window (not the one of 31 days ago)');
SELECT is((SELECT row(p50_response, p90_response)::text FROM approvals.approver_stats() WHERE actor = 'usr26_c'),
          '(00:15:00,00:15:00)', 'response: from the claim''s previous event (usr26_b''s approval), not from its submission');
SELECT is(ARRAY(SELECT actor FROM approvals.approver_stats() WHERE actor IN ('usr26_q', 'usr26_dg', 'usr26_req')),
          '{}'::text[], 'not listed: the later approver of a route (usr26_q), a delegate (usr26_dg), the requester');
SELECT is((SELECT row(decisions, approved)::text FROM approvals.approver_stats(now() - interval '50 days') WHERE actor = 'usr26_a'),
          '(12,7)', 'since => 50 days ago: the claim of 40 days ago counts too');
SELECT is(pg_temp.aps(now() - interval '30 minutes'),
          ARRAY['(usr26_dr,0,0,0,0,,,1,0)',
                '(usr26_p,0,0,0,0,,,2,0)',
                '(usr26_s,1,1,0,0,00:05:00,00:05:00,0,0)',
                '(usr26_t,0,0,0,0,,,1,0)'],
          'since => 30 minutes ago: only the claims created since then (decisions and waiting claims)');
SELECT is(pg_temp.aps(now() + interval '1 minute'), '{}'::text[], 'since in the future: no row');
SELECT is(pg_temp.aps(now() - interval '30 days', 't26_tb'), ARRAY['(usr26_t,1,0,1,0,00:20:00,00:20:00,1,0)'],
          'tenant => t26_tb: that tenant''s claims only');
SELECT throws_ok($$SELECT * FROM approvals.approver_stats(tenant => repeat('t', 129))$$, '22001', NULL,
                 'a tenant of 129 characters is 22001');
SET ROLE t26_rdr;
SELECT is(ARRAY(SELECT actor FROM approvals.approver_stats() WHERE actor LIKE 'usr26%' ORDER BY 1),
          ARRAY['usr26_a', 'usr26_b', 'usr26_c', 'usr26_dr', 'usr26_p', 'usr26_s', 'usr26_x'],
          'a reader granted t26_ta does not see the actor of t26_tb''s claims (usr26_t)');
SELECT is((SELECT row(decisions, approved)::text FROM approvals.approver_stats(tenant => 't26_ta') WHERE actor = 'usr26_x'),
          '(1,1)', 'the reader, tenant => t26_ta: the decisions on that tenant''s claims only');
SELECT throws_ok($$SELECT * FROM approvals.approver_stats(tenant => 't26_tb')$$, '42501', NULL,
                 'the reader, tenant => t26_tb (not granted): 42501');
RESET ROLE;
SET ROLE t26_rdr0;
SELECT is((SELECT row(decisions, approved)::text FROM approvals.approver_stats() WHERE actor = 'usr26_x'),
          '(12,8)', 'a reader with no tenant: the decisions on NULL-tenant claims only');
SELECT throws_ok($$SELECT * FROM approvals.approver_stats(tenant => 't26_ta')$$, '42501', NULL,
                 'a reader with no tenant, tenant => t26_ta: 42501');
RESET ROLE;
SET ROLE t26_adm;
SELECT is(ARRAY(SELECT actor FROM approvals.approver_stats(tenant => 't26_tb') ORDER BY 1), ARRAY['usr26_t'],
          'an admin sees every tenant: tenant => t26_tb');
RESET ROLE;

-- a decision now changes the figures at once: usr26_p approves c26_q2, the route moves to usr26_q
DO $$ BEGIN PERFORM approvals.decide('c26_q2', 'approved', actor => 'usr26_p'); END $$;
SELECT is(pg_temp.aps(now() - interval '30 days') @> ARRAY['(usr26_p,1,1,0,0,00:00:00,00:00:00,2,1)', '(usr26_q,0,0,0,0,,,1,0)'],
          true, 'after usr26_p approves c26_q2: usr26_p has a decision and waits on 2, usr26_q is waited for');
SELECT is((SELECT row(s.*)::text FROM approvals.claim_stats() s WHERE resource_type = 'rt26_r'),
          '(rt26_r,18,7,4,0,0,7,1,00:05:00,00:09:00)', 'claim_stats: c26_q2 is still pending (quorum 2)');

-- the *_parts forms: the same groups with every time, from which a router merges nodes exactly
SELECT is(ARRAY(SELECT row(s.resource_type, s.submitted, s.approved, s.rejected, s.cancelled, s.expired, s.pending, s.overdue,
                           (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(s.decision_times) x),
                           (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY x) FROM unnest(s.decision_times) x))::text
                FROM approvals.claim_stats_parts() s WHERE s.resource_type LIKE 'rt26%' ORDER BY 1),
          ARRAY(SELECT row(s.*)::text FROM approvals.claim_stats() s WHERE s.resource_type LIKE 'rt26%' ORDER BY 1),
          'claim_stats_parts: the counts of claim_stats, and its percentiles over decision_times');
SELECT is((SELECT cardinality(decision_times) FROM approvals.claim_stats_parts() WHERE resource_type = 'rt26_r'),
          (SELECT (approved + rejected)::int FROM approvals.claim_stats() WHERE resource_type = 'rt26_r'),
          'claim_stats_parts: one decision time per approved or rejected claim');
SELECT is(ARRAY(SELECT row(s.actor, s.decisions, s.approved, s.rejected, s.abstained,
                           (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(s.response_times) x),
                           (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY x) FROM unnest(s.response_times) x),
                           s.assigned_pending, s.assigned_overdue)::text
                FROM approvals.approver_stats_parts() s ORDER BY 1),
          ARRAY(SELECT row(s.*)::text FROM approvals.approver_stats() s ORDER BY 1),
          'approver_stats_parts: the counts of approver_stats, and its percentiles over response_times');
SET ROLE t26_adm;
SELECT is(ARRAY(SELECT actor FROM approvals.approver_stats_parts(tenant => 't26_tb') ORDER BY 1), ARRAY['usr26_t'],
          'approver_stats_parts takes the tenant as approver_stats does');
RESET ROLE;
SELECT throws_ok($$SELECT * FROM approvals.claim_stats_parts(tenant => repeat('t', 129))$$, '22001', NULL,
                 'claim_stats_parts: a tenant of 129 characters is 22001');

SELECT * FROM finish();
ROLLBACK;
