-- 04_policy_handler: set_policy (defaults filled at submit, explicit
-- arguments win, auto-approve, expires_in, self-approval, upsert, most
-- specific match wins, errors) and set_handler (runs as its owner with every
-- state change in the same transaction; a raising handler undoes the change).
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
CREATE FUNCTION pg_temp.ev(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(action || '(' || coalesce(from_status, '') || '>'
                               || coalesce(to_status, '') || ')', ' ' ORDER BY id), '')
      FROM approvals.events WHERE claim_id = cid
$f$;

CREATE ROLE t04_adm   IN ROLE approvals_admin;
CREATE ROLE t04_rev   IN ROLE approvals_reviewer;
CREATE ROLE t04_rev2  IN ROLE approvals_reviewer;
CREATE ROLE t04_both  IN ROLE approvals_requester, approvals_reviewer;
CREATE ROLE t04_hown;                       -- owns the handler; no approvals role

-- ---------------------------------------------------------------------------
-- Policies fill in approvers, required_approvals, expires_at
-- ---------------------------------------------------------------------------
SET ROLE t04_adm;
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't04_po', approvers => ARRAY['t04_rev','t04_rev2'],
                                              required_approvals => 2, expires_in => '2 hours')$$,
                'admin sets a policy for resource type t04_po');
RESET ROLE;
SELECT is(pg_temp.q($$SELECT row(approvers, required_approvals, assignee, route_position,
                                 expires_at = now() + interval '2 hours', expires_in, on_expiry, status)::text
                        FROM approvals.submit('t04_po', 'po-1', 'h', id => 'tap04_po1', actor => 'usr_req')$$),
          '("{t04_rev,t04_rev2}",2,t04_rev,1,t,02:00:00,expire,pending)',
          'submit without approvers takes approvers, quorum and expires_at = now() + expires_in from the policy');
SELECT is(pg_temp.q($$SELECT row(approvers, required_approvals, assignee, expires_at = now() + interval '1 day')::text
                        FROM approvals.submit('t04_po', 'po-2', 'h', id => 'tap04_po2', actor => 'usr_req',
                                              approvers => ARRAY['usr_x'], required_approvals => 1,
                                              expires_at => now() + interval '1 day')$$),
          '({usr_x},1,usr_x,t)', 'explicit approvers, required_approvals and expires_at win over the policy');
SELECT is(pg_temp.q($$SELECT row(approvers, required_approvals)::text
                        FROM approvals.submit('t04_po', 'po-3', 'h', id => 'tap04_po3', actor => 'usr_req',
                                              required_approvals => 1)$$),
          '("{t04_rev,t04_rev2}",1)', 'an explicit required_approvals wins; approvers still come from the policy');
SELECT is(pg_temp.q($$SELECT row(approvers, required_approvals, expires_at)::text
                        FROM approvals.submit('t04_nopolicy', 'np-1', 'h', id => 'tap04_np1', actor => 'usr_req')$$),
          '(,1,)', 'a resource type without a policy gets no route, quorum 1, no expiry');

-- set_policy errors (each would have changed the t04_po policy)
SET ROLE t04_adm;
SELECT throws_ok($$SELECT approvals.set_policy(resource_type => 't04_po', required_approvals => 0)$$,
                 '22023', NULL, 'set_policy with required_approvals 0 is 22023');
SELECT throws_ok($$SELECT approvals.set_policy(resource_type => 't04_po', approvers => ARRAY['usr_a','usr_b'], required_approvals => 3)$$,
                 '22023', NULL, 'set_policy with required_approvals above the number of approvers is 22023');
SELECT throws_ok($$SELECT approvals.set_policy(resource_type => 't04_po', approvers => ARRAY['usr_a'], on_expiry => 'delete')$$,
                 '22023', NULL, 'set_policy with on_expiry delete is 22023');
SET ROLE t04_rev;
SELECT throws_ok($$SELECT approvals.set_policy(resource_type => 't04_po', approvers => ARRAY['usr_a'])$$,
                 '42501', NULL, 'set_policy by a reviewer is 42501');
RESET ROLE;
SELECT is(pg_temp.q($$SELECT row(approvers, required_approvals, expires_at = now() + interval '2 hours')::text
                        FROM approvals.submit('t04_po', 'po-4', 'h', id => 'tap04_po4', actor => 'usr_req')$$),
          '("{t04_rev,t04_rev2}",2,t)', 'the refused set_policy calls left the t04_po policy unchanged');

-- Upsert by (tenant, resource_type, kind)
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't04_up', approvers => ARRAY['usr_a'])$$,
                'upsert: first policy for t04_up');
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't04_up', approvers => ARRAY['usr_b','usr_c'], required_approvals => 2)$$,
                'upsert: second policy for the same key');
SELECT is(pg_temp.q($$SELECT row(approvers, required_approvals)::text FROM approvals.submit('t04_up', 'u-1', 'h', id => 'tap04_up1', actor => 'usr_req')$$),
          '("{usr_b,usr_c}",2)', 'upsert: the second set_policy replaced the first');
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't04_up', approvers => ARRAY['usr_d'])$$,
                'upsert: third policy for the same key, with the default quorum');
SELECT is(pg_temp.q($$SELECT row(approvers, required_approvals)::text FROM approvals.submit('t04_up', 'u-2', 'h', id => 'tap04_up2', actor => 'usr_req')$$),
          '({usr_d},1)', 'upsert: a replaced policy keeps nothing of the old one');

-- ---------------------------------------------------------------------------
-- auto_approve_below
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't04_auto', auto_approve_below => 1000)$$,
                'policy: auto-approve t04_auto below 1000');
SELECT is(pg_temp.q($$SELECT row(status, reviewer, decided_at IS NOT NULL)::text
                        FROM approvals.submit('t04_auto', 'a-1', 'h-a1', id => 'tap04_auto1', actor => 'usr_req', amount => 999.99)$$),
          '(approved,system,t)', 'amount 999.99 below 1000: the claim is approved at once by system');
SELECT is(
    (SELECT string_agg(row(action, from_status, to_status, actor)::text, ' ' ORDER BY id)
       FROM approvals.events WHERE claim_id = 'tap04_auto1'),
    '(submitted,,pending,usr_req) (auto_approved,pending,approved,system)',
    'auto-approval: events submitted then auto_approved (pending -> approved) by system');
SELECT is(pg_temp.q($$SELECT row(status, reviewer)::text
                        FROM approvals.submit('t04_auto', 'a-2', 'h', id => 'tap04_auto2', actor => 'usr_req', amount => 1000)$$),
          '(pending,)', 'amount 1000, not below 1000: pending');
SELECT is(pg_temp.q($$SELECT status FROM approvals.submit('t04_auto', 'a-3', 'h', id => 'tap04_auto3', actor => 'usr_req')$$),
          'pending', 'no amount: pending');
SELECT is(pg_temp.ev('tap04_auto2'), 'submitted(>pending)', 'no auto_approved event when not auto-approved');

-- ---------------------------------------------------------------------------
-- allow_self_approval
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't04_self', allow_self_approval => true)$$,
                'policy: t04_self allows self-approval');
SET ROLE t04_both;
SELECT lives_ok($$SELECT approvals.submit('t04_self', 's-1', 'h', id => 'tap04_self1')$$, 't04_both submits a t04_self claim');
SELECT lives_ok($$SELECT approvals.submit('t04_noself', 's-2', 'h', id => 'tap04_self2')$$, 't04_both submits a t04_noself claim');
SELECT is(pg_temp.q($$SELECT row(status, requester, reviewer)::text FROM approvals.decide('tap04_self1', 'approved')$$),
          '(approved,t04_both,t04_both)', 'with allow_self_approval the requester may approve its own claim');
SELECT throws_ok($$SELECT approvals.decide('tap04_self2', 'approved')$$, '42501', NULL,
                 'without the policy the same requester may not (42501)');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Handlers
-- ---------------------------------------------------------------------------
CREATE TABLE public.t04_hlog (n serial PRIMARY KEY, claim_id text, action text,
                              claim_status text, event_to text, who text);
GRANT INSERT, SELECT ON public.t04_hlog TO t04_hown;
GRANT USAGE ON SEQUENCE public.t04_hlog_n_seq TO t04_hown;

-- Logs every call; raises for note 'boom' and for approvals of resources 'fail-*'.
CREATE FUNCTION public.t04_h_log(c approvals.claims, e approvals.events) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO public.t04_hlog (claim_id, action, claim_status, event_to, who)
    VALUES (c.id, e.action, c.status, e.to_status, current_user);
    IF c.note = 'boom' OR (e.action = 'approved' AND c.resource_id LIKE 'fail-%') THEN
        RAISE EXCEPTION 'payment scheduling failed for %', c.id USING ERRCODE = 'HX001';
    END IF;
END $f$;
ALTER FUNCTION public.t04_h_log(approvals.claims, approvals.events) OWNER TO t04_hown;

CREATE FUNCTION public.t04_h_adm(c approvals.claims, e approvals.events) RETURNS void
LANGUAGE plpgsql AS $f$ BEGIN NULL; END $f$;
ALTER FUNCTION public.t04_h_adm(approvals.claims, approvals.events) OWNER TO t04_adm;
CREATE FUNCTION public.t04_h_onearg(c approvals.claims) RETURNS void
LANGUAGE plpgsql AS $f$ BEGIN NULL; END $f$;
CREATE FUNCTION public.t04_h_int(c approvals.claims, e approvals.events) RETURNS integer
LANGUAGE plpgsql AS $f$ BEGIN RETURN 1; END $f$;
CREATE FUNCTION public.t04_h_text(a text, b text) RETURNS void
LANGUAGE plpgsql AS $f$ BEGIN NULL; END $f$;

SELECT throws_ok($$SELECT approvals.set_handler('t04_h', 'public.t04_h_onearg(approvals.claims)')$$,
                 '22023', NULL, 'set_handler with a one-argument function is 22023');
SELECT throws_ok($$SELECT approvals.set_handler('t04_h', 'public.t04_h_int(approvals.claims, approvals.events)')$$,
                 '22023', NULL, 'set_handler with a function returning integer is 22023');
SELECT throws_ok($$SELECT approvals.set_handler('t04_h', 'public.t04_h_text(text, text)')$$,
                 '22023', NULL, 'set_handler with a (text, text) function is 22023');
SET ROLE t04_adm;
SELECT throws_ok($$SELECT approvals.set_handler('t04_h', 'public.t04_h_log(approvals.claims, approvals.events)')$$,
                 '42501', NULL, 'an admin setting a handler it does not own is 42501');
SELECT lives_ok($$SELECT approvals.set_handler('t04_h_other', 'public.t04_h_adm(approvals.claims, approvals.events)')$$,
                'an admin may set a handler it owns');
SET ROLE t04_rev;
SELECT throws_ok($$SELECT approvals.set_handler('t04_h', NULL)$$, '42501', NULL, 'set_handler by a reviewer is 42501');
RESET ROLE;
SELECT lives_ok($$SELECT approvals.submit('t04_h', 'h-0', 'h', id => 'tap04_h0', actor => 'usr_req')$$,
                'a t04_h claim submitted before any handler is set');
SELECT is((SELECT count(*)::int FROM public.t04_hlog), 0, 'the refused set_handler calls installed nothing');

SELECT lives_ok($$SELECT approvals.set_handler('t04_h', 'public.t04_h_log(approvals.claims, approvals.events)')$$,
                'the superuser sets t04_h_log (owned by t04_hown) as handler for t04_h');

-- submit and decide
SELECT lives_ok($$SELECT approvals.submit('t04_h', 'h-1', 'h', id => 'tap04_h1', actor => 'usr_req')$$, 'handler: submit h-1');
SET ROLE t04_rev;
SELECT throws_ok($$INSERT INTO public.t04_hlog (claim_id) VALUES ('x')$$, '42501', NULL,
                 'the reviewer itself may not write the handler''s table');
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap04_h1', 'approved', 'pay it')$$), 'approved',
          'handler: decide succeeds');
RESET ROLE;
SELECT is(
    (SELECT string_agg(row(claim_id, action, claim_status, event_to, who)::text, ' ' ORDER BY n)
       FROM public.t04_hlog WHERE claim_id = 'tap04_h1'),
    '(tap04_h1,submitted,pending,pending,t04_hown) (tap04_h1,approved,approved,approved,t04_hown)',
    'handler: ran for submitted and approved, saw the new state, ran as its owner');
SELECT is((SELECT count(*)::int FROM public.t04_hlog WHERE claim_id = 'tap04_h0'), 0,
          'handler: not run for changes before it was set');

-- a raising handler undoes the decision
SELECT lives_ok($$SELECT approvals.submit('t04_h', 'fail-1', 'h', id => 'tap04_h2', actor => 'usr_req')$$, 'handler: submit fail-1');
SET ROLE t04_rev;
SELECT throws_ok($$SELECT approvals.decide('tap04_h2', 'approved')$$, 'HX001', 'payment scheduling failed for tap04_h2',
                 'handler raises: decide raises the handler''s error (SQLSTATE and message)');
RESET ROLE;
SELECT is((SELECT row(status, approval_count, reviewer, decided_at)::text FROM approvals.claims WHERE id = 'tap04_h2'),
          '(pending,0,,)', 'handler raises: the claim is unchanged');
SELECT is(pg_temp.ev('tap04_h2'), 'submitted(>pending)', 'handler raises: no event was appended');
SELECT is((SELECT string_agg(action, ',' ORDER BY n) FROM public.t04_hlog WHERE claim_id = 'tap04_h2'),
          'submitted', 'handler raises: its own write for the failed decision is gone too');
SET ROLE t04_rev;
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap04_h2', 'rejected')$$), 'rejected',
          'handler raises only for approvals: the claim can still be rejected');
RESET ROLE;

-- a raising handler undoes a submit, including the supersede
SELECT lives_ok($$SELECT approvals.submit('t04_h', 'h-3', 'h1', id => 'tap04_h3a', actor => 'usr_req')$$, 'handler: submit h-3');
SELECT throws_ok($$SELECT approvals.submit('t04_h', 'h-3', 'h2', id => 'tap04_h3b', actor => 'usr_req', note => 'boom')$$,
                 'HX001', 'payment scheduling failed for tap04_h3b', 'handler raises on submit: submit raises the handler''s error');
SELECT is((SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM approvals.claims WHERE resource_id = 'h-3'),
          'tap04_h3a:pending', 'handler raises on submit: no new claim, the old one is not superseded');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id IN ('tap04_h3a', 'tap04_h3b')), 1,
          'handler raises on submit: no superseded or submitted event was appended');
SELECT is((SELECT count(*)::int FROM public.t04_hlog WHERE claim_id = 'tap04_h3b' OR action = 'superseded'), 0,
          'handler raises on submit: the handler''s writes are gone');

-- superseded, cancelled, auto_approved
SELECT lives_ok($$SELECT approvals.submit('t04_h', 'h-3', 'h3', id => 'tap04_h3c', actor => 'usr_req')$$, 'handler: resubmit h-3');
SELECT lives_ok($$SELECT approvals.cancel_claim('tap04_h3c', 'withdrawn')$$, 'handler: cancel the new h-3 claim');
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't04_h', auto_approve_below => 10)$$,
                'policy: auto-approve t04_h below 10');
SELECT lives_ok($$SELECT approvals.submit('t04_h', 'h-4', 'h', id => 'tap04_h4', actor => 'usr_req', amount => 5)$$,
                'handler: auto-approved submit');
SELECT is(
    (SELECT string_agg(claim_id || ':' || action || ':' || claim_status, ' ' ORDER BY n)
       FROM public.t04_hlog WHERE claim_id IN ('tap04_h3a', 'tap04_h3c', 'tap04_h4') AND action <> 'submitted'),
    'tap04_h3a:superseded:cancelled tap04_h3c:cancelled:cancelled tap04_h4:auto_approved:approved',
    'handler: ran for superseded, cancelled and auto_approved');

-- an auto-approval whose handler raises: nothing is stored
SELECT throws_ok($$SELECT approvals.submit('t04_h', 'fail-2', 'h', id => 'tap04_h5', actor => 'usr_req', amount => 5, note => 'boom')$$,
                 'HX001', NULL, 'handler raises on an auto-approving submit: submit raises');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id = 'tap04_h5'), 0,
          'handler raises on an auto-approving submit: no claim stored');

-- other resource types are not affected; NULL removes the handler
SELECT lives_ok($$SELECT approvals.submit('t04_noh', 'n-1', 'h', id => 'tap04_noh', actor => 'usr_req')$$,
                'submit of another resource type');
SELECT is((SELECT count(*)::int FROM public.t04_hlog WHERE claim_id = 'tap04_noh'), 0,
          'the handler does not run for other resource types');
SELECT lives_ok($$SELECT approvals.set_handler('t04_h', NULL)$$, 'set_handler with NULL removes the handler');
SELECT lives_ok($$SELECT approvals.submit('t04_h', 'h-6', 'h', id => 'tap04_h6', actor => 'usr_req', note => 'boom')$$,
                'after removal a t04_h submit with note boom succeeds');
SELECT is((SELECT count(*)::int FROM public.t04_hlog WHERE claim_id = 'tap04_h6'), 0,
          'after removal the handler no longer runs');

-- ---------------------------------------------------------------------------
-- The most specific policy wins: tenant, then resource_type, then kind
-- ---------------------------------------------------------------------------
SELECT lives_ok($$
    SELECT approvals.set_policy(resource_type => p.rt, kind => p.k, tenant => p.t, approvers => ARRAY[p.who])
      FROM (VALUES (NULL::text, NULL::text, NULL::text, 'usr_any'),
                   (NULL,        'financial_review', NULL,  'usr_kind'),
                   ('t04_spec',  NULL,               NULL,  'usr_type'),
                   ('t04_spec',  'financial_review', NULL,  'usr_type_kind'),
                   ('t04_spec2', NULL,               NULL,  'usr_type2'),
                   (NULL,        NULL,               't04_t', 'usr_tenant'),
                   ('t04_spec',  NULL,               't04_t', 'usr_tenant_type')) AS p(rt, k, t, who)$$,
    'specificity: seven overlapping policies');
SELECT is(pg_temp.q($$SELECT approvers[1] FROM approvals.submit('t04_other', 'sp-1', 'h', id => 'tap04_sp1', actor => 'usr_req')$$),
          'usr_any', 'specificity: only the wildcard policy matches');
SELECT is(pg_temp.q($$SELECT approvers[1] FROM approvals.submit('t04_other', 'sp-2', 'h', id => 'tap04_sp2', actor => 'usr_req', kind => 'financial_review')$$),
          'usr_kind', 'specificity: kind beats the wildcard');
SELECT is(pg_temp.q($$SELECT approvers[1] FROM approvals.submit('t04_spec', 'sp-3', 'h', id => 'tap04_sp3', actor => 'usr_req')$$),
          'usr_type', 'specificity: resource_type beats the wildcard');
SELECT is(pg_temp.q($$SELECT approvers[1] FROM approvals.submit('t04_spec2', 'sp-4', 'h', id => 'tap04_sp4', actor => 'usr_req', kind => 'financial_review')$$),
          'usr_type2', 'specificity: resource_type beats kind');
SELECT is(pg_temp.q($$SELECT approvers[1] FROM approvals.submit('t04_spec', 'sp-5', 'h', id => 'tap04_sp5', actor => 'usr_req', kind => 'financial_review')$$),
          'usr_type_kind', 'specificity: resource_type and kind beat resource_type alone');
SELECT is(pg_temp.q($$SELECT approvers[1] FROM approvals.submit('t04_other', 'sp-6', 'h', id => 'tap04_sp6', actor => 'usr_req', kind => 'financial_review', tenant => 't04_t')$$),
          'usr_tenant', 'specificity: tenant beats kind');
SELECT is(pg_temp.q($$SELECT approvers[1] FROM approvals.submit('t04_spec', 'sp-7', 'h', id => 'tap04_sp7', actor => 'usr_req', kind => 'financial_review', tenant => 't04_t')$$),
          'usr_tenant_type', 'specificity: tenant and resource_type beat tenant alone and resource_type and kind');
SELECT is(pg_temp.q($$SELECT approvers[1] FROM approvals.submit('t04_spec', 'sp-8', 'h', id => 'tap04_sp8', actor => 'usr_req', tenant => 't04_u')$$),
          'usr_type', 'specificity: a policy of another tenant does not match');

SELECT * FROM finish();
ROLLBACK;
