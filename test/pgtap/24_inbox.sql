-- 24_inbox: approvals.inbox (API.md §10, design11.md "Inbox"): who a pending claim
-- waits for by name (route assignee; step approvers who have not acted),
-- escalated and unrouted claims in no inbox, never one's own requests,
-- delegation (scope, active window, revocation, once per claim), the order
-- (priority, expires_at NULLS LAST, created_at, id), keyset paging with
-- after, argument errors, the actor rule, tenant isolation, and claims
-- leaving and re-entering inboxes (decisions, supersede, expiry, batches and
-- a cancelled batch's revert).
--
-- pg_temp.holders(claim) asks the inbox of every person of this file (as the
-- superuser, actor => ...) and lists those whose inbox holds the claim.
BEGIN;
SELECT plan(113);

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
CREATE FUNCTION pg_temp.code(sql text) RETURNS text LANGUAGE sql AS $f$
    SELECT regexp_replace(pg_temp.q(sql), '^(ERROR [0-9A-Z]{5}): .*$', '\1')
$f$;
-- The claim ids of an actor's inbox, in order.
CREATE FUNCTION pg_temp.inb(a text) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(i.id, ' ' ORDER BY i.ordinality), '')
      FROM approvals.inbox(actor => a, page_limit => 1000) WITH ORDINALITY AS i
$f$;
-- Everyone this file names.
CREATE FUNCTION pg_temp.persons() RETURNS text[] LANGUAGE sql AS $f$
    SELECT ARRAY['t24_rev', 'usr_ba', 'usr_da', 'usr_db', 'usr_dc', 'usr_dd', 'usr_de', 'usr_df', 'usr_dg', 'usr_dh', 'usr_ea', 'usr_eb',
                 'usr_o', 'usr_p', 'usr_ra', 'usr_rb', 'usr_req', 'usr_sa', 'usr_sb', 'usr_sc', 'usr_sd', 'usr_se',
                 'usr_sf', 'usr_sg', 'usr_sh', 'usr_si', 'usr_sj', 'usr_sk', 'usr_sl', 'usr_x']
$f$;
-- The persons whose inbox holds claim cid (and how often, when more than once).
CREATE FUNCTION pg_temp.holders(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(p || CASE WHEN n > 1 THEN '*' || n ELSE '' END, ' ' ORDER BY p), '')
      FROM (SELECT p, (SELECT count(*) FROM approvals.inbox(actor => p, page_limit => 1000) AS i WHERE i.id = cid) AS n
              FROM unnest(pg_temp.persons()) AS p) s
     WHERE n > 0
$f$;
-- Walk an actor's inbox page by page (page_limit lim, after = last id of the page before).
CREATE FUNCTION pg_temp.pages(a text, lim int) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    aft   text;
    ids   text[];
    out   text[] := '{}';
BEGIN
    FOR guard IN 1..200 LOOP
        ids := ARRAY(SELECT i.id FROM approvals.inbox(actor => a, page_limit => lim, after => aft) WITH ORDINALITY AS i
                      ORDER BY i.ordinality);
        IF cardinality(ids) = 0 THEN
            RETURN array_to_string(out, ' | ');
        END IF;
        out := out || array_to_string(ids, ' ');
        aft := ids[cardinality(ids)];
    END LOOP;
    RETURN 'more than 200 pages';
END $f$;
CREATE FUNCTION pg_temp.sub(cid text, route text[] DEFAULT NULL, req text DEFAULT 'usr_req', steps text DEFAULT NULL,
                            amt numeric DEFAULT NULL, rt text DEFAULT 't24_inb', ten text DEFAULT NULL,
                            prio text DEFAULT 'normal', exp timestamptz DEFAULT NULL, quorum int DEFAULT NULL,
                            rid text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $f$
    SELECT (approvals.submit(rt, coalesce(rid, cid), 'h', id => cid, actor => req, approvers => route, steps => steps::jsonb,
                             amount => amt, tenant => ten, priority => prio, expires_at => exp,
                             required_approvals => quorum)).id
$f$;
CREATE FUNCTION pg_temp.dec(cid text, outcome text, who text, obo text DEFAULT NULL) RETURNS text LANGUAGE sql AS $f$
    SELECT pg_temp.code(format('SELECT status FROM approvals.decide(%L, %L, actor => %L, on_behalf_of => %L)', cid, outcome, who, obo))
$f$;
-- Batches by label (for the cancel simulation, as in 12_batch_revert_cancel).
CREATE TEMP TABLE tb (label text PRIMARY KEY, id text NOT NULL);
CREATE FUNCTION pg_temp.b(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT id FROM pg_temp.tb WHERE label = l
$f$;

CREATE ROLE t24_rev   IN ROLE approvals_reviewer;     -- tenant t24_ta
CREATE ROLE t24_req   IN ROLE approvals_requester;
CREATE ROLE t24_rdr   IN ROLE approvals_reader;
CREATE ROLE t24_coord IN ROLE approvals_coordinator;
CREATE ROLE t24_adm   IN ROLE approvals_admin;
CREATE ROLE t24_plat  IN ROLE approvals_platform;
CREATE ROLE t24_dg    IN ROLE approvals_reviewer;     -- t24_rev's delegate, no tenant
DO $$ BEGIN PERFORM approvals.grant_tenant('t24_ta', 't24_rev'); END $$;

SELECT is(pg_get_function_identity_arguments('approvals.inbox'::regproc) || ' -> ' || pg_get_function_result('approvals.inbox'::regproc),
          'actor text, page_limit integer, after text -> SETOF approvals.claims',
          'inbox(actor, page_limit, after) returns SETOF approvals.claims');

-- ---------------------------------------------------------------------------
-- Routes
-- ---------------------------------------------------------------------------
SELECT lives_ok($$
    SELECT pg_temp.sub('tap24_r1', ARRAY['usr_ra', 'usr_rb'], quorum => 2),
           pg_temp.sub('tap24_r2', ARRAY['usr_ra']),
           pg_temp.sub('tap24_r3', ARRAY['usr_ra', 'usr_rb'], quorum => 1),
           pg_temp.sub('tap24_r4', ARRAY['usr_ra']),
           pg_temp.sub('tap24_r5', ARRAY['usr_ra']),
           pg_temp.sub('tap24_r6', ARRAY['usr_ra'], rid => 'res6'),
           pg_temp.sub('tap24_r7', ARRAY['usr_ra'], exp => now() + interval '1 day'),
           pg_temp.sub('tap24_u1'),
           pg_temp.sub('tap24_own', ARRAY['usr_ra'], req => 'usr_ra')$$,
    'fixture: routed claims, an unrouted claim, and usr_ra''s own request routed to itself');
SELECT is(pg_temp.inb('usr_ra'), 'tap24_r7 tap24_r1 tap24_r2 tap24_r3 tap24_r4 tap24_r5 tap24_r6',
          'usr_ra''s inbox: the claims it is the assignee of (the one with a deadline first), not its own request');
SELECT is(pg_temp.holders('tap24_r1'), 'usr_ra', 'r1 (route usr_ra, usr_rb) is in the assignee''s inbox only');
SELECT is(pg_temp.holders('tap24_u1'), '', 'an unrouted claim (anyone may decide) is in no inbox');
SELECT is(pg_temp.holders('tap24_own'), '', 'a claim is never in its requester''s inbox, even when routed to it');
SELECT is(pg_temp.dec('tap24_r1', 'approved', 'usr_ra'), 'pending', 'usr_ra approves r1 (1 of 2)');
SELECT is(pg_temp.holders('tap24_r1'), 'usr_rb', 'r1 moved to the next approver''s inbox');
SELECT is(pg_temp.dec('tap24_r1', 'approved', 'usr_rb'), 'approved', 'usr_rb approves r1');
SELECT is(pg_temp.holders('tap24_r1'), '', 'an approved claim is in no inbox');
SELECT is(pg_temp.dec('tap24_r2', 'abstained', 'usr_ra'), 'pending', 'usr_ra abstains on r2, the end of its route');
SELECT is(pg_temp.holders('tap24_r2'), '', 'the escalated claim (anyone may decide) is in no inbox');
SELECT is(pg_temp.dec('tap24_r3', 'abstained', 'usr_ra'), 'pending', 'usr_ra abstains on r3');
SELECT is(pg_temp.holders('tap24_r3'), 'usr_rb', 'r3 moved on to usr_rb');
SELECT is(pg_temp.dec('tap24_r4', 'rejected', 'usr_ra'), 'rejected', 'usr_ra rejects r4');
SELECT is(pg_temp.code($$SELECT status FROM approvals.cancel_claim('tap24_r5', actor => 'usr_req')$$), 'cancelled', 'the requester cancels r5');
SELECT is(pg_temp.holders('tap24_r4') || '/' || pg_temp.holders('tap24_r5'), '/', 'rejected and cancelled claims are in no inbox');
SELECT lives_ok($$SELECT pg_temp.sub('tap24_r6b', ARRAY['usr_rb'], rid => 'res6')$$, 'res6 is submitted again (r6b, route usr_rb)');
SELECT is(pg_temp.holders('tap24_r6') || '/' || pg_temp.holders('tap24_r6b'), '/usr_rb', 'the superseded claim left; the new one is in usr_rb''s inbox');
SELECT lives_ok($$SELECT approvals.set_policy(resource_type => 't24_esc', expires_in => '1 hour', on_expiry => 'escalate'),
                         pg_temp.sub('tap24_e1', ARRAY['usr_ea', 'usr_eb'], rt => 't24_esc'),
                         pg_temp.sub('tap24_e2', rt => 't24_esc', steps => '[{"name": "one", "approvers": ["usr_ea", "usr_eb"], "required": 1}]')$$,
                'fixture: a policy that escalates on expiry, a routed claim and a claim with steps under it');
SELECT is(pg_temp.holders('tap24_e1') || '/' || pg_temp.holders('tap24_e2'), 'usr_ea/usr_ea usr_eb', 'before expiry');
SELECT lives_ok($$SELECT approvals.expire_due()$$, 'fixture: flush claims that were already due');
UPDATE approvals.claims SET expires_at = now() - interval '1 second' WHERE id IN ('tap24_r7', 'tap24_e1', 'tap24_e2');
SELECT is(pg_temp.q($$SELECT approvals.expire_due()$$), '3', 'the deadlines pass: expire_due expires r7 and escalates e1 and e2');
SELECT is(pg_temp.holders('tap24_r7'), '', 'the expired claim is in no inbox');
SELECT is(pg_temp.holders('tap24_e1'), 'usr_eb', 'expiry escalation moves a routed claim to the next approver''s inbox');
SELECT is(pg_temp.holders('tap24_e2'), '', 'expiry escalation of a step (any reviewer may decide) takes it out of every inbox');
SELECT is(pg_temp.inb('usr_ra'), '', 'usr_ra''s inbox is empty now');

-- ---------------------------------------------------------------------------
-- Steps
-- ---------------------------------------------------------------------------
SELECT lives_ok($$
    SELECT pg_temp.sub('tap24_s1', steps => '[{"name": "one", "approvers": ["usr_sa", "usr_sc"], "required": 2}, {"name": "two", "approvers": ["usr_sb"], "required": 1}]'),
           pg_temp.sub('tap24_s2', steps => '[{"name": "one", "approvers": ["usr_sd", "usr_se", "usr_sf"], "required": 1}]'),
           pg_temp.sub('tap24_s3', steps => '[{"name": "one", "approvers": ["usr_sg", "usr_sh"], "required": 2}]'),
           pg_temp.sub('tap24_s4', steps => '[{"name": "one", "approvers": ["usr_si"], "required": 1}, {"name": "two", "approvers": ["usr_si", "usr_sj"], "required": 2}]'),
           pg_temp.sub('tap24_s5', steps => '[{"name": "one", "approvers": ["usr_sk"], "required": 1}, {"name": "two", "approvers": ["usr_sk", "usr_sl"], "required": 1}]'),
           pg_temp.sub('tap24_s6', steps => '[{"name": "big", "approvers": ["usr_sk"], "required": 1, "min_amount": 1000}]', amt => 5),
           pg_temp.sub('tap24_s7', steps => '[{"name": "one", "approvers": ["usr_sa", "usr_sc"], "required": 1}]', req => 'usr_sa')$$,
    'fixture: seven claims with steps');
SELECT is(pg_temp.holders('tap24_s1'), 'usr_sa usr_sc', 's1: both approvers of step one, not step two''s');
SELECT is(pg_temp.dec('tap24_s1', 'approved', 'usr_sa'), 'pending', 'usr_sa approves s1');
SELECT is(pg_temp.holders('tap24_s1'), 'usr_sc', 'an approver who approved no longer sees it; the other still does');
SELECT is(pg_temp.dec('tap24_s1', 'approved', 'usr_sc'), 'pending', 'usr_sc approves: step two starts');
SELECT is(pg_temp.holders('tap24_s1'), 'usr_sb', 's1 is now in step two''s approver''s inbox only');
SELECT is(pg_temp.dec('tap24_s1', 'approved', 'usr_sb'), 'approved', 'usr_sb approves s1');
SELECT is(pg_temp.holders('tap24_s1'), '', 'the approved claim is in no inbox');
SELECT is(pg_temp.dec('tap24_s2', 'abstained', 'usr_sf'), 'pending', 'usr_sf abstains on s2');
SELECT is(pg_temp.holders('tap24_s2'), 'usr_sd usr_se', 'an approver who abstained no longer sees it');
SELECT is(pg_temp.holders('tap24_s3'), 'usr_sg usr_sh', 's3: both approvers');
SELECT is(pg_temp.dec('tap24_s3', 'abstained', 'usr_sh'), 'pending', 'usr_sh abstains: s3''s step can no longer reach 2');
SELECT is(pg_temp.holders('tap24_s3'), '', 'the escalated step (any reviewer may decide) is in no inbox');
SELECT is(pg_temp.dec('tap24_s4', 'approved', 'usr_si'), 'pending', 'usr_si approves s4''s step one: step two starts escalated');
SELECT is(pg_temp.holders('tap24_s4'), '', 'a step escalated at its start is in no inbox');
SELECT is(pg_temp.dec('tap24_s5', 'approved', 'usr_sk'), 'pending', 'usr_sk approves s5''s step one');
SELECT is(pg_temp.holders('tap24_s5'), 'usr_sl', 'step two: only usr_sl (usr_sk approved already)');
SELECT is(pg_temp.holders('tap24_s6'), '', 'a claim where no step applies (anyone may decide) is in no inbox');
SELECT is(pg_temp.holders('tap24_s7'), 'usr_sc', 'a step approver''s own request is not in its inbox');

-- ---------------------------------------------------------------------------
-- Delegation
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE td (label text PRIMARY KEY, id text NOT NULL);
SELECT lives_ok($$
    INSERT INTO pg_temp.td
    SELECT l, (approvals.delegate(t, valid_until => vu, valid_from => vf, resource_type => rt, tenant => ten,
                                  max_amount => ma, delegator => f)).id
      FROM (VALUES ('ab', 'usr_da', 'usr_db', 't24_inb', NULL::text, 100::numeric, now(), NULL::timestamptz),
                   ('cd', 'usr_dc', 'usr_dd', NULL, NULL, NULL, now() + interval '1 day', NULL),
                   ('ef', 'usr_de', 'usr_df', NULL, NULL, NULL, now() - interval '2 days', now() - interval '1 day'),
                   ('gh', 'usr_dg', 'usr_dh', NULL, 't24_ta', NULL, now(), NULL)) AS v(l, f, t, rt, ten, ma, vf, vu)$$,
    'fixture: usr_da -> usr_db (t24_inb up to 100), a future, an expired, and a tenant t24_ta delegation');
SELECT lives_ok($$
    SELECT pg_temp.sub('tap24_d1', ARRAY['usr_da'], amt => 50),
           pg_temp.sub('tap24_d2', ARRAY['usr_da'], amt => 500),
           pg_temp.sub('tap24_d3', ARRAY['usr_da']),
           pg_temp.sub('tap24_d4', ARRAY['usr_da'], amt => 50, rt => 't24_other'),
           pg_temp.sub('tap24_d5', ARRAY['usr_da'], amt => 50, req => 'usr_db'),
           pg_temp.sub('tap24_d6', steps => '[{"name": "pair", "approvers": ["usr_da", "usr_db"], "required": 2}]', amt => 50),
           pg_temp.sub('tap24_d7', ARRAY['usr_dc'], amt => 5),
           pg_temp.sub('tap24_d8', ARRAY['usr_de'], amt => 5),
           pg_temp.sub('tap24_d9', ARRAY['usr_dg'], ten => 't24_ta'),
           pg_temp.sub('tap24_d10', ARRAY['usr_dg'], ten => 't24_tb'),
           pg_temp.sub('tap24_d11', ARRAY['usr_da'], amt => 10),
           pg_temp.sub('tap24_d12', ARRAY['usr_da'], amt => 100)$$,
    'fixture: claims naming the delegators');
SELECT is(pg_temp.holders('tap24_d1'), 'usr_da usr_db', 'in scope: the claim is in the delegator''s and the delegate''s inbox');
SELECT is(pg_temp.holders('tap24_d12'), 'usr_da usr_db', 'amount = max_amount is in scope');
SELECT is(pg_temp.holders('tap24_d2'), 'usr_da', 'amount above max_amount: not in the delegate''s inbox');
SELECT is(pg_temp.holders('tap24_d3'), 'usr_da', 'no amount, with a max_amount: not in the delegate''s inbox');
SELECT is(pg_temp.holders('tap24_d4'), 'usr_da', 'another resource type: not in the delegate''s inbox');
SELECT is(pg_temp.holders('tap24_d5'), 'usr_da', 'the delegate''s own request: not in its inbox');
SELECT is(pg_temp.holders('tap24_d6'), 'usr_da usr_db', 'named directly and through the delegation: the delegate sees it once');
SELECT is(pg_temp.holders('tap24_d7'), 'usr_dc', 'a delegation not yet valid adds nothing');
SELECT is(pg_temp.holders('tap24_d8'), 'usr_de', 'an expired delegation adds nothing');
SELECT is(pg_temp.holders('tap24_d9') || '/' || pg_temp.holders('tap24_d10'), 'usr_dg usr_dh/usr_dg',
          'a tenant delegation adds that tenant''s claims only');
SELECT is(pg_temp.inb('usr_db'), 'tap24_d1 tap24_d11 tap24_d12 tap24_d6', 'usr_db''s inbox, in order');
SELECT is(pg_temp.dec('tap24_d11', 'approved', 'usr_db'), 'approved', 'usr_db approves d11 through the delegation');
SELECT is(pg_temp.holders('tap24_d11'), '', 'd11 left both inboxes');
SELECT lives_ok($$SELECT approvals.revoke_delegation(id) FROM pg_temp.td WHERE label = 'ab'$$,
                'the delegation usr_da -> usr_db is revoked');
SELECT is(pg_temp.holders('tap24_d1'), 'usr_da', 'after the revocation the delegate no longer sees the delegator''s claim');
SELECT is(pg_temp.holders('tap24_d6'), 'usr_da usr_db', 'a claim naming the delegate directly stays in its inbox');
SELECT is(pg_temp.inb('usr_db'), 'tap24_d6', 'usr_db''s inbox after the revocation');

-- ---------------------------------------------------------------------------
-- Order and paging
-- ---------------------------------------------------------------------------
SELECT lives_ok($$
    SELECT pg_temp.sub(c.cid, ARRAY['usr_o'], prio => c.prio, exp => now() + c.exp)
      FROM (VALUES ('tap24_o1',  'low',    NULL::interval),
                   ('tap24_o2',  'normal', interval '2 hours'),
                   ('tap24_o3',  'normal', interval '1 hour'),
                   ('tap24_o4b', 'normal', NULL),
                   ('tap24_o4a', 'normal', NULL),
                   ('tap24_o5',  'normal', NULL),
                   ('tap24_o6',  'high',   interval '5 hours'),
                   ('tap24_o7',  'urgent', NULL),
                   ('tap24_o8',  'urgent', interval '10 hours'),
                   ('tap24_o9',  'high',   interval '1 hour')) AS c(cid, prio, exp)$$,
    'fixture: ten claims routed to usr_o with every priority, deadlines and none');
-- Inside one transaction every claim has the same created_at; o5 is made older, as if
-- submitted an hour ago (in the claim and in the inbox's copy of the ordering key).
UPDATE approvals.claims SET created_at = now() - interval '1 hour' WHERE id = 'tap24_o5';
UPDATE approvals.inbox_entries SET created_at = now() - interval '1 hour' WHERE claim_id = 'tap24_o5';
SELECT is(pg_temp.inb('usr_o'), 'tap24_o8 tap24_o7 tap24_o9 tap24_o6 tap24_o3 tap24_o2 tap24_o5 tap24_o4a tap24_o4b tap24_o1',
          'order: urgent, high, normal, low; then expires_at (NULLs last); then created_at; then id');
SELECT is(pg_temp.pages('usr_o', 3), 'tap24_o8 tap24_o7 tap24_o9 | tap24_o6 tap24_o3 tap24_o2 | tap24_o5 tap24_o4a tap24_o4b | tap24_o1',
          'pages of 3, each after the last id of the one before');
SELECT is(ARRAY(SELECT k || ':' || replace(pg_temp.pages('usr_o', k), ' | ', ' ') FROM generate_series(1, 11) AS k
                 WHERE replace(pg_temp.pages('usr_o', k), ' | ', ' ') <> pg_temp.inb('usr_o')),
          '{}'::text[], 'for every page size 1..11 the pages concatenate to the whole inbox, with no duplicates and nothing missing');
SELECT is(array_length(string_to_array(pg_temp.pages('usr_o', 1), ' | '), 1), 10, 'page_limit 1: ten pages');
SELECT is(pg_temp.pages('usr_o', 1000), pg_temp.inb('usr_o'), 'page_limit 1000: one page');
SELECT is((SELECT string_agg(id, ' ') FROM approvals.inbox(actor => 'usr_o', page_limit => 2, after => 'tap24_o1')), NULL,
          'after the last claim: an empty page');
SELECT is((SELECT string_agg(id, ' ') FROM approvals.inbox(actor => 'usr_o', page_limit => 2, after => NULL)), 'tap24_o8 tap24_o7',
          'after NULL: the first page');
SELECT lives_ok($$SELECT pg_temp.sub('tap24_p' || lpad(i::text, 2, '0'), ARRAY['usr_p']) FROM generate_series(1, 51) AS i$$,
                'fixture: 51 claims routed to usr_p');
SELECT is((SELECT count(*)::int FROM approvals.inbox(actor => 'usr_p')), 50, 'page_limit defaults to 50');
SELECT is((SELECT string_agg(id, ' ') FROM approvals.inbox(actor => 'usr_p', after => 'tap24_p50')), 'tap24_p51',
          'the rest after tap24_p50');

-- Arguments
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox(actor => 'usr_o', page_limit => 0)$$), 'ERROR 22023', 'page_limit 0 is 22023');
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox(actor => 'usr_o', page_limit => -1)$$), 'ERROR 22023', 'page_limit -1 is 22023');
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox(actor => 'usr_o', page_limit => 1001)$$), 'ERROR 22023', 'page_limit 1001 is 22023');
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox(actor => 'usr_o', page_limit => NULL)$$), 'ERROR 22004', 'page_limit NULL is 22004');
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox(actor => 'usr_o', after => 'tap24_nope')$$), 'ERROR P0002',
          'an unknown after id is P0002');
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox(actor => repeat('a', 129))$$), 'ERROR 22001', 'an actor of 129 characters is 22001');

-- inbox_key / inbox_after: the same pages from an order key given whole (a router's way)
SELECT is((SELECT format('%s %s %s', k.rank, k.expires_key = 'infinity', k.created_at = c.created_at)
             FROM approvals.inbox_key('tap24_o6') k, approvals.claims c WHERE c.id = 'tap24_o6'),
          '1 f t', 'inbox_key: rank 1 (high), its deadline, its created_at');
SELECT is((SELECT format('%s %s', k.rank, k.expires_key) FROM approvals.inbox_key('tap24_o1') k),
          '3 infinity', 'inbox_key of a low claim without a deadline: rank 3, infinity');
SELECT is(ARRAY(SELECT lim || ':' || aft FROM generate_series(1, 4) lim,
                unnest(string_to_array(pg_temp.inb('usr_o'), ' ')) aft
                WHERE (SELECT coalesce(string_agg(i.id, ' ' ORDER BY i.ordinality), '')
                         FROM approvals.inbox_key(aft) k,
                              approvals.inbox_after('usr_o', lim, k.rank, k.expires_key, k.created_at, aft)
                              WITH ORDINALITY AS i)
                   <> (SELECT coalesce(string_agg(i.id, ' ' ORDER BY i.ordinality), '')
                         FROM approvals.inbox('usr_o', lim, aft) WITH ORDINALITY AS i)),
          '{}'::text[], 'inbox_after from inbox_key equals inbox after that id, for every claim and page sizes 1..4');
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox_after('usr_o', 2, NULL, 'infinity', now(), 'x')$$), 'ERROR 22004',
          'inbox_after: a NULL part of the key is 22004');
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox_after('usr_o', 0, 1::int2, 'infinity', now(), 'x')$$), 'ERROR 22023',
          'inbox_after: page_limit 0 is 22023');
SELECT is(pg_temp.code($$SELECT * FROM approvals.inbox_key('tap24_nope')$$), 'ERROR P0002', 'inbox_key of an unknown claim is P0002');
SELECT is(pg_temp.code($$SELECT * FROM approvals.inbox_key(NULL)$$), 'ERROR 22004', 'inbox_key(NULL) is 22004');
SET ROLE t24_rev;
SELECT is(pg_temp.code($$SELECT * FROM approvals.inbox_key('tap24_o6', actor => 'usr_o')$$), 'ERROR 42501',
          'inbox_key: naming another actor without approvals_platform is 42501 (the actor rule, as for inbox)');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Callers: the actor rule, roles, tenant isolation
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT pg_temp.sub('tap24_ta', ARRAY['t24_rev'], ten => 't24_ta'),
                         pg_temp.sub('tap24_tb', ARRAY['t24_rev'], ten => 't24_tb'),
                         pg_temp.sub('tap24_tn', ARRAY['t24_rev'])$$,
                'fixture: claims routed to t24_rev in tenants t24_ta, t24_tb and none');
SET ROLE t24_rev;
SELECT is((SELECT coalesce(string_agg(id, ' ' ORDER BY id), '') FROM approvals.inbox()), 'tap24_ta tap24_tn',
          'a reviewer''s own inbox (actor defaults to its role name): only the tenants it sees');
SELECT is((SELECT coalesce(string_agg(id, ' ' ORDER BY id), '') FROM approvals.inbox(actor => 't24_rev')), 'tap24_ta tap24_tn',
          'naming itself as actor is allowed');
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox(actor => 'usr_o')$$), 'ERROR 42501',
          'a reviewer asking for another person''s inbox is 42501 (actor rule)');
SET ROLE t24_req;
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox()$$), 'ERROR 42501', 'a requester may not call inbox (42501)');
SET ROLE t24_rdr;
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox()$$), 'ERROR 42501', 'a reader may not call inbox (42501)');
SET ROLE t24_coord;
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox()$$), 'ERROR 42501', 'a coordinator may not call inbox (42501)');
SET ROLE t24_adm;
SELECT is(pg_temp.code($$SELECT count(*) FROM approvals.inbox()$$), 'ERROR 42501', 'an admin (not reviewer) may not call inbox (42501)');
SET ROLE t24_plat;
SELECT is((SELECT coalesce(string_agg(id, ' ' ORDER BY id), '') FROM approvals.inbox(actor => 't24_rev')), 'tap24_ta tap24_tb tap24_tn',
          'platform may ask for t24_rev''s inbox and sees every tenant');
SELECT is((SELECT string_agg(id, ' ') FROM approvals.inbox(actor => 'usr_o', page_limit => 3)), 'tap24_o8 tap24_o7 tap24_o9',
          'platform reads usr_o''s inbox');
RESET ROLE;
SELECT lives_ok($$SELECT approvals.delegate('t24_dg', delegator => 't24_rev')$$, 't24_rev delegates everything to t24_dg');
SET ROLE t24_dg;
SELECT is((SELECT coalesce(string_agg(id, ' ' ORDER BY id), '') FROM approvals.inbox()), 'tap24_tn',
          'the delegate''s inbox holds only the delegator''s claims of tenants the delegate sees');
RESET ROLE;
SELECT is((SELECT coalesce(string_agg(id, ' ' ORDER BY id), '') FROM approvals.inbox(actor => 't24_dg')), 'tap24_ta tap24_tb tap24_tn',
          'asked by the superuser (every tenant), the same inbox holds all three');

-- ---------------------------------------------------------------------------
-- Batches: a batch-approved claim leaves; a cancelled batch's revert puts it back
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT pg_temp.sub(cid, ARRAY['usr_ba']) FROM unnest(ARRAY['tap24_b1', 'tap24_b2', 'tap24_b3', 'tap24_b4', 'tap24_b5']) AS cid$$,
                'fixture: five claims routed to usr_ba');
SELECT is(pg_temp.inb('usr_ba'), 'tap24_b1 tap24_b2 tap24_b3 tap24_b4 tap24_b5', 'usr_ba''s inbox');
SELECT is((SELECT string_agg(claim_id || ':' || decision, ' ') FROM approvals.process_batch(
              (approvals.create_batch(ARRAY['tap24_b1'], coordinator => 'usr_coord')).id)),
          'tap24_b1:approved', 'a batch approves b1');
SELECT is(pg_temp.holders('tap24_b1'), '', 'the batch-approved claim left the inbox');
INSERT INTO pg_temp.tb SELECT 'proc', id FROM approvals.create_batch(ARRAY['tap24_b2', 'tap24_b3'], coordinator => 'usr_coord');
SELECT is((SELECT string_agg(claim_id || ':' || decision, ' ' ORDER BY claim_id) FROM approvals.process_batch(pg_temp.b('proc'))),
          'tap24_b2:approved tap24_b3:approved', 'a second batch approves b2 and b3');
SELECT is(pg_temp.inb('usr_ba'), 'tap24_b4 tap24_b5', 'b2 and b3 left the inbox');
-- Leave the batch as a crashed run would (processing, with b4 still to do), as 12_batch_revert_cancel does.
INSERT INTO approvals.batch_item_lists (batch_id, first_position, last_position, claim_ids)
    VALUES (pg_temp.b('proc'), 3, 3, ARRAY['tap24_b4']);
UPDATE approvals.batches SET status = 'processing', completed_at = NULL, next_position = processed_count + 1,
                             total_claims = total_claims + 1, worker_pid = NULL
 WHERE id = pg_temp.b('proc');
SELECT is((SELECT c.claims_reverted FROM approvals.cancel_batch(pg_temp.b('proc')) AS c), 2, 'cancelling the batch reverts b2 and b3');
SELECT is(pg_temp.inb('usr_ba'), 'tap24_b2 tap24_b3 tap24_b4 tap24_b5', 'the reverted claims are back in the assignee''s inbox');
SELECT is((SELECT string_agg(claim_id || ':' || decision, ' ' ORDER BY claim_id) FROM approvals.process_batch(
              (approvals.create_batch(ARRAY['tap24_b5', 'tap24_nope'], coordinator => 'usr_coord', max_failures => 0)).id)),
          'tap24_b5:reverted tap24_nope:failed', 'a batch over its failure threshold rolls back: b5 reverted');
SELECT is(pg_temp.holders('tap24_b5'), 'usr_ba', 'the rolled-back claim is in the inbox again');

SELECT * FROM finish();
ROLLBACK;
