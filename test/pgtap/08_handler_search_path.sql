-- 08_handler_search_path: a handler runs with the search_path recorded by set_handler (pg_temp
-- last), never with the caller's, so a caller cannot steer the handler owner's code to
-- objects of its choosing (a temporary table, or a schema put first in its path); and with the
-- caller's planner settings (enable_seqscan), not the extension's own, also when a batch decides
-- (the chunk runs in a bracket nested in process_batch's).
BEGIN;
SELECT plan(9);

CREATE ROLE t08_adm IN ROLE approvals_admin;
CREATE ROLE t08_rev IN ROLE approvals_reviewer;
CREATE SCHEMA t08_app AUTHORIZATION t08_adm;
CREATE SCHEMA t08_evil;
GRANT USAGE, CREATE ON SCHEMA t08_evil TO t08_rev;
SET ROLE t08_adm;
CREATE TABLE t08_app.payments (claim_id text, action text);
CREATE FUNCTION t08_app.pay(c approvals.claims, e approvals.events) RETURNS void
LANGUAGE plpgsql AS $$ BEGIN INSERT INTO payments VALUES (c.id, e.action); END $$;
SET search_path = t08_app, public;
SELECT lives_ok($$SELECT approvals.set_handler('t08_inv', 't08_app.pay(approvals.claims, approvals.events)')$$,
                'the admin registers a handler that names its table without a schema');
RESET search_path;
RESET ROLE;
SELECT is((SELECT search_path FROM approvals.handlers WHERE resource_type = 't08_inv'), 't08_app, public, pg_temp',
          'set_handler recorded the registrant''s search_path, pg_temp last');
SELECT lives_ok($$SELECT approvals.submit('t08_inv', 'i-1', 'h', id => 't08_c1', actor => 'usr_req')$$,
                'a submission runs the handler');

-- The reviewer prepares look-alikes: a temporary payments table and one in a schema of its own.
SET ROLE t08_rev;
CREATE TEMP TABLE payments (claim_id text, action text);
CREATE TABLE t08_evil.payments (claim_id text, action text);
SET search_path = t08_evil, pg_temp, public;
SELECT lives_ok($$SELECT approvals.decide('t08_c1', 'approved')$$, 'the reviewer decides with its own search_path');
RESET search_path;
SELECT is((SELECT count(*)::int FROM pg_temp.payments) + (SELECT count(*)::int FROM t08_evil.payments), 0,
          'the handler wrote to neither of the reviewer''s tables');
RESET ROLE;
SELECT is((SELECT string_agg(action, ',' ORDER BY action) FROM t08_app.payments WHERE claim_id = 't08_c1'),
          'approved,submitted', 'it wrote to its own table, for both state changes');
SELECT is((SELECT status FROM approvals.claims WHERE id = 't08_c1'), 'approved', 'and the decision stands');

-- Handlers see the caller's enable_seqscan, from decide and from a batch alike
CREATE TABLE t08_seen (how text, setting text);
CREATE FUNCTION t08_seq(c approvals.claims, e approvals.events) RETURNS void
LANGUAGE sql AS $$ INSERT INTO t08_seen VALUES (e.action, current_setting('enable_seqscan')) $$;
SELECT approvals.set_handler('t08_seq', 'public.t08_seq(approvals.claims, approvals.events)');
SELECT approvals.submit('t08_seq', 'r' || g, 'h', id => 't08_s' || g, actor => 'usr_req') FROM generate_series(1, 2) g;
SET LOCAL enable_seqscan = on;
SELECT approvals.decide('t08_s1', 'approved', actor => 'usr_rev');
CREATE TEMP TABLE r08 AS SELECT * FROM approvals.process_batch(
    (approvals.create_batch(ARRAY['t08_s2'], coordinator => 'usr_coord', start => false)).id);
SELECT is((SELECT string_agg(DISTINCT setting, ',') FROM t08_seen WHERE how = 'approved'), 'on',
          'handlers of decide and of a batch run with the caller''s enable_seqscan = on');
SELECT is((SELECT count(*)::int FROM t08_seen WHERE how = 'approved'), 2, 'both handlers ran');

SELECT * FROM finish();
ROLLBACK;
