-- 05_tenant: grant_tenant / revoke_tenant, row-level security on claims and
-- events, and 42501 when acting on another tenant's claim.
BEGIN;
SELECT plan(43);

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
-- The tap05 claims the current role can see.
CREATE FUNCTION pg_temp.seen() RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(id, ' ' ORDER BY id), '') FROM approvals.claims WHERE id LIKE 'tap05%'
$f$;
CREATE FUNCTION pg_temp.seen_events() RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(DISTINCT claim_id, ' ' ORDER BY claim_id), '') FROM approvals.events WHERE claim_id LIKE 'tap05%'
$f$;

CREATE ROLE t05_ra   IN ROLE approvals_requester, approvals_reviewer;   -- tenant t05_ta
CREATE ROLE t05_rb   IN ROLE approvals_requester, approvals_reviewer;   -- tenant t05_tb
CREATE ROLE t05_grp;                                                    -- group granted tenant t05_tg
CREATE ROLE t05_rg   IN ROLE approvals_requester, approvals_reviewer, t05_grp;
CREATE ROLE t05_none IN ROLE approvals_requester, approvals_reviewer;   -- no tenant
CREATE ROLE t05_rdr  IN ROLE approvals_reader;                          -- reader, tenant t05_ta
CREATE ROLE t05_adm  IN ROLE approvals_admin;
CREATE ROLE t05_plat IN ROLE approvals_platform;

-- ---------------------------------------------------------------------------
-- Grants
-- ---------------------------------------------------------------------------
SET ROLE t05_adm;
SELECT lives_ok($$SELECT approvals.grant_tenant('t05_ta', 't05_ra'), approvals.grant_tenant('t05_tb', 't05_rb'),
                         approvals.grant_tenant('t05_tg', 't05_grp'), approvals.grant_tenant('t05_ta', 't05_rdr')$$,
                'admin grants tenants to roles');
SELECT lives_ok($$SELECT approvals.grant_tenant('t05_ta', 't05_ra')$$, 'granting the same tenant twice is harmless');
SET ROLE t05_ra;
SELECT throws_ok($$SELECT approvals.grant_tenant('t05_tb', 't05_ra')$$, '42501', NULL,
                 'a non-admin granting itself a tenant is 42501');
SELECT throws_ok($$SELECT approvals.revoke_tenant('t05_ta', 't05_ra')$$, '42501', NULL,
                 'a non-admin revoking a tenant is 42501');
SET ROLE t05_plat;
SELECT throws_ok($$SELECT approvals.grant_tenant('t05_tb', 't05_ra')$$, '42501', NULL,
                 'platform granting a tenant is 42501 (admin only)');
RESET ROLE;

-- Fixtures: claims in no tenant and in tenants t05_ta, t05_tb, t05_tg.
SELECT lives_ok($$
    SELECT approvals.submit('t05_ten', c.id, 'h', id => c.id, tenant => c.tenant, actor => c.requester)
      FROM (VALUES ('tap05_n1', NULL::text, 'usr_x'),
                   ('tap05_a1', 't05_ta',   'usr_x'),
                   ('tap05_a2', 't05_ta',   't05_rb'),
                   ('tap05_b1', 't05_tb',   'usr_x'),
                   ('tap05_b2', 't05_tb',   'usr_x'),
                   ('tap05_g1', 't05_tg',   'usr_x')) AS c(id, tenant, requester)$$,
    'fixture: six claims across three tenants and none');

-- ---------------------------------------------------------------------------
-- Visibility (row-level security)
-- ---------------------------------------------------------------------------
SET ROLE t05_ra;
SELECT is(pg_temp.seen(), 'tap05_a1 tap05_a2 tap05_n1', 't05_ra sees its tenant''s claims and the tenant-less one');
SELECT is(pg_temp.seen_events(), 'tap05_a1 tap05_a2 tap05_n1', 't05_ra sees the events of the same claims only');
SET ROLE t05_rb;
SELECT is(pg_temp.seen(), 'tap05_b1 tap05_b2 tap05_n1', 't05_rb sees tenant t05_tb and the tenant-less claim');
SELECT is(pg_temp.seen_events(), 'tap05_b1 tap05_b2 tap05_n1', 't05_rb sees the events of the same claims only');
SET ROLE t05_rg;
SELECT is(pg_temp.seen(), 'tap05_g1 tap05_n1', 'a member of a granted group role sees the group''s tenant');
SET ROLE t05_none;
SELECT is(pg_temp.seen(), 'tap05_n1', 'a role without tenants sees only tenant-less claims');
SELECT is(pg_temp.seen_events(), 'tap05_n1', 'and only their events');
SET ROLE t05_rdr;
SELECT is(pg_temp.seen(), 'tap05_a1 tap05_a2 tap05_n1', 'a plain reader is filtered by its tenant grants too');
SET ROLE t05_adm;
SELECT is(pg_temp.seen(), 'tap05_a1 tap05_a2 tap05_b1 tap05_b2 tap05_g1 tap05_n1', 'admin sees every tenant');
SET ROLE t05_plat;
SELECT is(pg_temp.seen(), 'tap05_a1 tap05_a2 tap05_b1 tap05_b2 tap05_g1 tap05_n1', 'platform sees every tenant');
SELECT is(pg_temp.seen_events(), 'tap05_a1 tap05_a2 tap05_b1 tap05_b2 tap05_g1 tap05_n1', 'platform sees every tenant''s events');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Acting on another tenant's claim is 42501 (not P0002)
-- ---------------------------------------------------------------------------
SET ROLE t05_rb;
SELECT throws_ok($$SELECT approvals.decide('tap05_a1', 'approved')$$, '42501', NULL,
                 'deciding another tenant''s claim is 42501');
SELECT throws_ok($$SELECT approvals.decide('tap05_a1', 'abstained')$$, '42501', NULL,
                 'abstaining on another tenant''s claim is 42501');
SELECT throws_ok($$SELECT approvals.cancel_claim('tap05_a2')$$, '42501', NULL,
                 'cancelling one''s own request filed in another tenant is 42501');
SELECT throws_ok($$SELECT approvals.submit('t05_ten', 'x-1', 'h', id => 'tap05_x1', tenant => 't05_ta')$$, '42501', NULL,
                 'submitting into another tenant is 42501');
SELECT throws_ok($$SELECT approvals.decide('tap05_nope', 'approved')$$, 'P0002', NULL,
                 'a claim that does not exist at all is still P0002');
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap05_b1', 'approved')$$), 'approved',
          'deciding a claim of one''s own tenant works');
SELECT is(pg_temp.q($$SELECT tenant FROM approvals.submit('t05_ten', 'x-2', 'h', id => 'tap05_x2', tenant => 't05_tb')$$), 't05_tb',
          'submitting into one''s own tenant works');
SET ROLE t05_none;
SELECT throws_ok($$SELECT approvals.decide('tap05_b2', 'rejected')$$, '42501', NULL,
                 'a role without tenants deciding a tenant''s claim is 42501');
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap05_n1', 'rejected')$$), 'rejected',
          'a role without tenants may decide a tenant-less claim');
SELECT throws_ok($$SELECT approvals.submit('t05_ten', 'x-3', 'h', id => 'tap05_x3', tenant => 't05_tb')$$, '42501', NULL,
                 'a role without tenants submitting into a tenant is 42501');
SET ROLE t05_rg;
SELECT is(pg_temp.q($$SELECT status FROM approvals.decide('tap05_g1', 'approved')$$), 'approved',
          'a member of a granted group may decide the group''s tenant claims');
RESET ROLE;
SELECT is((SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM approvals.claims
            WHERE id IN ('tap05_a1', 'tap05_a2', 'tap05_b2')),
          'tap05_a1:pending tap05_a2:pending tap05_b2:pending', 'the refused calls left the claims pending');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id IN ('tap05_a1', 'tap05_a2', 'tap05_b2')), 3,
          'the refused calls appended no events');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id IN ('tap05_x1', 'tap05_x3')), 0,
          'the refused submits stored no claims');
SELECT is((SELECT string_agg(id || ':' || coalesce(tenant, '-'), ' ' ORDER BY id) FROM approvals.claims WHERE id LIKE 'tap05%'),
          'tap05_a1:t05_ta tap05_a2:t05_ta tap05_b1:t05_tb tap05_b2:t05_tb tap05_g1:t05_tg tap05_n1:- tap05_x2:t05_tb',
          'every stored claim keeps the tenant it was submitted with');
SELECT is((SELECT count(*)::int FROM approvals.events e JOIN approvals.claims c ON c.id = e.claim_id
            WHERE c.id LIKE 'tap05%' AND e.tenant IS DISTINCT FROM c.tenant), 0,
          'every event carries its claim''s tenant');

-- platform acts on any tenant
SET ROLE t05_plat;
SELECT is(pg_temp.q($$SELECT reviewer FROM approvals.decide('tap05_b2', 'approved', actor => 'usr_jane')$$), 'usr_jane',
          'platform decides another tenant''s claim for a user');
SELECT is(pg_temp.q($$SELECT tenant FROM approvals.submit('t05_ten', 'x-4', 'h', id => 'tap05_x4', tenant => 't05_new', actor => 'usr_jane')$$),
          't05_new', 'platform submits into any tenant');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Revoke
-- ---------------------------------------------------------------------------
SET ROLE t05_adm;
SELECT lives_ok($$SELECT approvals.revoke_tenant('t05_ta', 't05_ra')$$, 'admin revokes tenant t05_ta from t05_ra');
SET ROLE t05_ra;
SELECT is(pg_temp.seen(), 'tap05_n1', 'after the revoke t05_ra no longer sees tenant t05_ta');
SELECT throws_ok($$SELECT approvals.decide('tap05_a1', 'approved')$$, '42501', NULL,
                 'after the revoke deciding a t05_ta claim is 42501');
SET ROLE t05_rdr;
SELECT is(pg_temp.seen(), 'tap05_a1 tap05_a2 tap05_n1', 'the revoke did not affect the other role granted t05_ta');
SET ROLE t05_adm;
SELECT lives_ok($$SELECT approvals.revoke_tenant('t05_tg', 't05_grp')$$, 'admin revokes tenant t05_tg from the group');
SET ROLE t05_rg;
SELECT is(pg_temp.seen(), 'tap05_n1', 'after the group revoke its member no longer sees t05_tg');
RESET ROLE;


-- Policies are tenant-scoped too: their approver lists are not another tenant's to read.
CREATE ROLE t05_pol_rdr IN ROLE approvals_reader;
SELECT approvals.set_policy(resource_type => 't05_pol', tenant => 't05_pol_tenant',
                            approvers => ARRAY['usr_secret_cfo']);
SELECT approvals.set_policy(resource_type => 't05_pol', approvers => ARRAY['usr_public']);
SET ROLE t05_pol_rdr;
SELECT is((SELECT string_agg(coalesce(tenant, '-') || ':' || array_to_string(approvers, ','), ' ')
             FROM approvals.policies WHERE resource_type = 't05_pol'),
          '-:usr_public', 'a reader without the tenant sees only the tenant-less policy');
RESET ROLE;
SELECT approvals.grant_tenant('t05_pol_tenant', 't05_pol_rdr');
SET ROLE t05_pol_rdr;
SELECT is((SELECT count(*)::int FROM approvals.policies WHERE resource_type = 't05_pol'), 2,
          'with the tenant granted it sees both');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
