-- 15_batch_api_privileges: who may call the batch functions (PUBLIC nothing,
-- readers read, coordinators act, admins purge), that the C functions check
-- the role themselves even when EXECUTE is granted directly, that nobody
-- writes the batch tables directly, and tenant isolation of batches (RLS,
-- 42501 on another tenant's batch, 'Claim belongs to another tenant').
BEGIN;
SELECT plan(86);

CREATE TEMP TABLE tb (label text PRIMARY KEY, id text NOT NULL);
GRANT ALL ON tb TO PUBLIC;
CREATE FUNCTION pg_temp.b(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT id FROM pg_temp.tb WHERE label = l
$f$;
-- The labels of the test's batches the current role can see.
CREATE FUNCTION pg_temp.seen() RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(t.label, ' ' ORDER BY t.label), '') FROM approvals.batches b JOIN pg_temp.tb t ON t.id = b.id
$f$;
CREATE FUNCTION pg_temp.seen_items() RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(DISTINCT t.label, ' ' ORDER BY t.label), '') FROM approvals.batch_items i JOIN pg_temp.tb t ON t.id = i.batch_id
$f$;
CREATE FUNCTION pg_temp.listed() RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(t.label, ' ' ORDER BY t.label), '')
      FROM approvals.list_batches(page_limit => 1000) b JOIN pg_temp.tb t ON t.id = b.id
$f$;

CREATE ROLE tb_nobody;
CREATE ROLE tb_rdr     IN ROLE approvals_reader;
CREATE ROLE tb_rdr_a   IN ROLE approvals_reader;        -- granted tenant tb_ta
CREATE ROLE tb_grp;                                     -- granted tenant tb_tb
CREATE ROLE tb_rdr_g   IN ROLE approvals_reader, tb_grp;
CREATE ROLE tb_coord   IN ROLE approvals_coordinator;   -- no tenant
CREATE ROLE tb_coord_a IN ROLE approvals_coordinator;   -- granted tenant tb_ta
CREATE ROLE tb_adm     IN ROLE approvals_admin;
CREATE ROLE tb_plat    IN ROLE approvals_platform;
SELECT lives_ok($$SELECT approvals.grant_tenant('tb_ta', 'tb_rdr_a'), approvals.grant_tenant('tb_ta', 'tb_coord_a'),
                         approvals.grant_tenant('tb_tb', 'tb_grp')$$,
                'tenant grants: tb_ta to tb_rdr_a and tb_coord_a, tb_tb to group tb_grp');

SELECT lives_ok($$
    SELECT approvals.submit('tb_inv', c.id, 'h', id => c.id, tenant => c.tenant, actor => 'usr_req15', amount => 1)
      FROM (VALUES ('tb15_n1', NULL::text), ('tb15_n2', NULL), ('tb15_n3', NULL), ('tb15_n4', NULL),
                   ('tb15_a1', 'tb_ta'), ('tb15_a2', 'tb_ta'), ('tb15_b1', 'tb_tb'), ('tb15_b2', 'tb_tb')) AS c(id, tenant)$$,
    'fixture: claims without tenant and in tenants tb_ta and tb_tb');
SELECT lives_ok($$INSERT INTO pg_temp.tb
    SELECT 'none', (approvals.create_batch(ARRAY['tb15_n1'], coordinator => 'usr_c', start => false)).id UNION ALL
    SELECT 'ta',   (approvals.create_batch(ARRAY['tb15_a1'], coordinator => 'usr_c', start => false, tenant => 'tb_ta')).id UNION ALL
    SELECT 'tb',   (approvals.create_batch(ARRAY['tb15_b1'], coordinator => 'usr_c', start => false, tenant => 'tb_tb')).id$$,
    'fixture: pending batches without tenant, in tb_ta and in tb_tb');

-- ---------------------------------------------------------------------------
-- PUBLIC: nothing
-- ---------------------------------------------------------------------------
SET ROLE tb_nobody;
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb15_n2'])$$, '42501', NULL, 'no role: create_batch is 42501');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('none'), comment => 'x')$$, '42501', NULL, 'no role: update_batch is 42501');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('none'))$$, '42501', NULL, 'no role: start_batch is 42501');
SELECT throws_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('none'))$$, '42501', NULL, 'no role: process_batch is 42501');
SELECT throws_ok($$SELECT * FROM approvals.cancel_batch(pg_temp.b('none'))$$, '42501', NULL, 'no role: cancel_batch is 42501');
SELECT throws_ok($$SELECT * FROM approvals.batch_results(pg_temp.b('none'))$$, '42501', NULL, 'no role: batch_results is 42501');
SELECT throws_ok($$SELECT approvals.get_batch(pg_temp.b('none'))$$, '42501', NULL, 'no role: get_batch is 42501');
SELECT throws_ok($$SELECT * FROM approvals.list_batches()$$, '42501', NULL, 'no role: list_batches is 42501');
SELECT throws_ok($$SELECT approvals.wait_batch(pg_temp.b('none'), '1 second')$$, '42501', NULL, 'no role: wait_batch is 42501');
SELECT throws_ok($$SELECT approvals.purge_batches('1 day')$$, '42501', NULL, 'no role: purge_batches is 42501');
SELECT throws_ok($$CALL approvals.run_queued()$$, '42501', NULL, 'no role: run_queued is 42501');
SELECT throws_ok($$SELECT approvals.api_create_batch('{"claim_ids": ["tb15_n2"]}')$$, '42501', NULL, 'no role: api_create_batch is 42501');
SELECT throws_ok($$SELECT approvals.api_update_batch(pg_temp.b('none'), '{"comment": "x"}')$$, '42501', NULL, 'no role: api_update_batch is 42501');
SELECT throws_ok($$SELECT approvals.api_cancel_batch(pg_temp.b('none'))$$, '42501', NULL, 'no role: api_cancel_batch is 42501');
SELECT throws_ok($$SELECT approvals.api_get_batch(pg_temp.b('none'))$$, '42501', NULL, 'no role: api_get_batch is 42501');
SELECT throws_ok($$SELECT approvals.api_list_batches()$$, '42501', NULL, 'no role: api_list_batches is 42501');
SELECT throws_ok($$SELECT count(*) FROM approvals.batches$$, '42501', NULL, 'no role: reading approvals.batches is 42501');
SELECT throws_ok($$SELECT count(*) FROM approvals.batch_items$$, '42501', NULL, 'no role: reading approvals.batch_items is 42501');
RESET ROLE;

-- EXECUTE granted directly is not enough: the functions check the group role.
GRANT USAGE ON SCHEMA approvals TO tb_nobody;
GRANT EXECUTE ON FUNCTION approvals.create_batch(text[], text, text, text, boolean, text, integer, real, text, boolean, text, text),
                          approvals.process_batch(text), approvals.cancel_batch(text, text), approvals.get_batch(text),
                          approvals.list_batches(text, text, integer, integer), approvals.purge_batches(interval)
      TO tb_nobody;
GRANT EXECUTE ON PROCEDURE approvals.run_queued(integer) TO tb_nobody;
SET ROLE tb_nobody;
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb15_n2'])$$, '42501', NULL, 'EXECUTE without approvals_coordinator: create_batch still 42501');
SELECT throws_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('none'))$$, '42501', NULL, 'process_batch still 42501');
SELECT throws_ok($$SELECT * FROM approvals.cancel_batch(pg_temp.b('none'))$$, '42501', NULL, 'cancel_batch still 42501');
SELECT throws_ok($$SELECT approvals.get_batch(pg_temp.b('none'))$$, '42501', NULL, 'get_batch without approvals_reader still 42501');
SELECT throws_ok($$SELECT * FROM approvals.list_batches()$$, '42501', NULL, 'list_batches without approvals_reader still 42501');
SELECT throws_ok($$SELECT approvals.purge_batches('1 day')$$, '42501', NULL, 'purge_batches without approvals_admin still 42501');
SELECT throws_ok($$CALL approvals.run_queued()$$, '42501', NULL, 'run_queued without coordinator or admin still 42501');
RESET ROLE;
SELECT is((SELECT status FROM approvals.batches WHERE id = pg_temp.b('none')), 'pending', 'the refused calls left the batch pending');

-- ---------------------------------------------------------------------------
-- Readers read; coordinators act; admins purge
-- ---------------------------------------------------------------------------
SET ROLE tb_rdr;
SELECT is((SELECT status FROM approvals.get_batch(pg_temp.b('none'))), 'pending', 'a reader may get_batch');
SELECT is((SELECT string_agg(claim_id, ',') FROM approvals.batch_results(pg_temp.b('none'))), 'tb15_n1', 'a reader may read batch_results');
SELECT is(pg_temp.listed(), 'none', 'a reader may list_batches');
SELECT is(approvals.api_get_batch(pg_temp.b('none')) ->> 'status', 'pending', 'a reader may api_get_batch');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb15_n2'])$$, '42501', NULL, 'a reader creating a batch is 42501');
SELECT throws_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('none'))$$, '42501', NULL, 'a reader processing a batch is 42501');
SELECT throws_ok($$SELECT * FROM approvals.cancel_batch(pg_temp.b('none'))$$, '42501', NULL, 'a reader cancelling a batch is 42501');
SELECT throws_ok($$SELECT approvals.api_cancel_batch(pg_temp.b('none'))$$, '42501', NULL, 'a reader calling api_cancel_batch is 42501');
SELECT throws_ok($$CALL approvals.run_queued()$$, '42501', NULL, 'a reader running the queue is 42501');
SET ROLE tb_coord;
SELECT throws_ok($$SELECT approvals.purge_batches('1 day')$$, '42501', NULL, 'a coordinator purging is 42501');
SAVEPOINT q;
SELECT lives_ok($$CALL approvals.run_queued()$$, 'a coordinator may run the queue');
ROLLBACK TO SAVEPOINT q;
SET ROLE tb_adm;
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb15_n2'])$$, '42501', NULL, 'an admin (not a coordinator) creating a batch is 42501');
SELECT lives_ok($$SELECT approvals.purge_batches('1 day')$$, 'an admin may purge');
SAVEPOINT q;
SELECT lives_ok($$CALL approvals.run_queued()$$, 'an admin may run the queue');
ROLLBACK TO SAVEPOINT q;
RESET ROLE;

-- Nobody writes the tables directly.
SET ROLE tb_coord;
SELECT throws_ok($$INSERT INTO approvals.batches (id, coordinator, action, status, created_by) VALUES ('bat_x', 'tb_coord', 'approve', 'completed', 1)$$,
                 '42501', NULL, 'a coordinator cannot INSERT into approvals.batches');
SELECT throws_ok($$UPDATE approvals.batches SET status = 'completed'$$, '42501', NULL, 'a coordinator cannot UPDATE approvals.batches');
SELECT throws_ok($$UPDATE approvals.batch_items SET decision = 'approved'$$, '55000', 'cannot update view "batch_items"',
                 'nobody can UPDATE approvals.batch_items (a view of the item tables)');
SELECT throws_ok($$DELETE FROM approvals.batch_items$$, '55000', 'cannot delete from view "batch_items"',
                 'nobody can DELETE from approvals.batch_items');
SELECT throws_ok($$INSERT INTO approvals.batch_item_lists VALUES ('bat_x', 1, 1, '{c}')$$, '42501', NULL, 'a coordinator cannot INSERT into approvals.batch_item_lists');
SELECT throws_ok($$UPDATE approvals.batch_item_results SET decisions = '{}'$$, '42501', NULL, 'a coordinator cannot UPDATE approvals.batch_item_results');
SET ROLE tb_adm;
SELECT throws_ok($$DELETE FROM approvals.batches$$, '42501', NULL, 'an admin cannot DELETE from approvals.batches');
SET ROLE tb_plat;
SELECT throws_ok($$UPDATE approvals.batches SET tenant = NULL$$, '42501', NULL, 'platform cannot UPDATE approvals.batches');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Tenant isolation
-- ---------------------------------------------------------------------------
SET ROLE tb_rdr;
SELECT is(pg_temp.seen(), 'none', 'a reader without tenants sees only the tenant-less batch');
SELECT is(pg_temp.seen_items(), 'none', 'and only its items');
SET ROLE tb_rdr_a;
SELECT is(pg_temp.seen(), 'none ta', 'tb_rdr_a sees tb_ta''s batch and the tenant-less one');
SELECT is(pg_temp.seen_items(), 'none ta', 'and their items');
SELECT is(pg_temp.listed(), 'none ta', 'list_batches lists the same');
SELECT is((approvals.api_list_batches(1, 1000) -> 'pagination' ->> 'total')::int, (SELECT count(*)::int FROM approvals.batches),
          'api_list_batches'' total counts only visible batches');
SELECT is((SELECT tenant FROM approvals.get_batch(pg_temp.b('ta'))), 'tb_ta', 'get_batch of its tenant''s batch works');
SELECT throws_ok($$SELECT approvals.get_batch(pg_temp.b('tb'))$$, '42501', NULL, 'get_batch of another tenant''s batch is 42501');
SELECT throws_ok($$SELECT * FROM approvals.batch_results(pg_temp.b('tb'))$$, '42501', NULL, 'batch_results of another tenant''s batch is 42501');
SELECT throws_ok($$SELECT approvals.api_get_batch(pg_temp.b('tb'))$$, '42501', NULL, 'api_get_batch of another tenant''s batch is 42501');
SELECT throws_ok($$SELECT approvals.get_batch('bat_0000000000000000')$$, 'P0002', NULL, 'an unknown batch is still P0002');
SET ROLE tb_rdr_g;
SELECT is(pg_temp.seen(), 'none tb', 'a member of a group granted tb_tb sees tb_tb''s batch');
SET ROLE tb_adm;
SELECT is(pg_temp.seen(), 'none ta tb', 'admin sees every batch');
SET ROLE tb_plat;
SELECT is(pg_temp.listed(), 'none ta tb', 'platform lists every batch');
RESET ROLE;

-- Coordinators act only on their tenants' batches.
SET ROLE tb_coord;
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb15_a2'], tenant => 'tb_ta')$$, '42501', NULL,
                 'a coordinator without tb_ta creating a tb_ta batch is 42501');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('ta'), comment => 'x')$$, '42501', NULL, 'amending another tenant''s batch is 42501');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('ta'))$$, '42501', NULL, 'starting another tenant''s batch is 42501');
SELECT throws_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('ta'))$$, '42501', NULL, 'processing another tenant''s batch is 42501');
SELECT throws_ok($$SELECT * FROM approvals.cancel_batch(pg_temp.b('ta'))$$, '42501', NULL, 'cancelling another tenant''s batch is 42501');
SELECT throws_ok($$SELECT approvals.wait_batch(pg_temp.b('ta'), '1 second')$$, '42501', NULL, 'waiting for another tenant''s batch is 42501');
SELECT is((SELECT b.total_amount FROM approvals.create_batch(ARRAY['tb15_b2', 'tb15_a2'], start => false) AS b), 0::numeric,
          'total_amount does not disclose the amounts of claims in tenants the coordinator cannot see');
RESET ROLE;
SELECT is((SELECT row(status, comment)::text FROM approvals.batches WHERE id = pg_temp.b('ta')), '(pending,)', 'the tb_ta batch is untouched');

SET ROLE tb_coord_a;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'ta2', id FROM approvals.create_batch(ARRAY['tb15_a2', 'tb15_n2', 'tb15_b2'], tenant => 'tb_ta')$$,
                'tb_coord_a creates a tb_ta batch over a tb_ta claim, a tenant-less claim and a tb_tb claim');
SELECT is((SELECT string_agg(claim_id || ':' || decision || coalesce(':' || error, ''), ' | ') FROM approvals.process_batch(pg_temp.b('ta2'))),
          'tb15_a2:approved | tb15_n2:failed:Claim belongs to another tenant | tb15_b2:failed:Claim belongs to another tenant',
          'only the claim of the batch''s own tenant is decided');
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'none2', id FROM approvals.create_batch(ARRAY['tb15_n3', 'tb15_a1'])$$,
                'tb_coord_a creates a tenant-less batch with a tb_ta claim');
SELECT is((SELECT string_agg(claim_id || ':' || decision || coalesce(':' || error, ''), ' | ') FROM approvals.process_batch(pg_temp.b('none2'))),
          'tb15_n3:approved | tb15_a1:failed:Claim belongs to another tenant',
          'a tenant-less batch decides only tenant-less claims');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('ta'), add_claim_ids => ARRAY['tb15_a2'])$$, '42501', NULL,
                 'tb_coord_a may see the tb_ta batch but not amend it: another role created it');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('ta'))$$, '42501', NULL,
                 '... nor start it');
SELECT throws_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('ta'))$$, '42501', NULL,
                 '... nor process it (which would decide claims in its coordinator''s name)');
SELECT throws_ok($$SELECT * FROM approvals.cancel_batch(pg_temp.b('ta'))$$, '42501', NULL,
                 '... nor cancel it');
RESET ROLE;
SELECT is((SELECT c.claims_reverted FROM approvals.cancel_batch(pg_temp.b('ta')) AS c), 0,
          'the superuser (platform/admin) may cancel it');
SELECT is((SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM approvals.claims WHERE id IN ('tb15_n2', 'tb15_b2', 'tb15_a1')),
          'tb15_a1:pending tb15_b2:pending tb15_n2:pending', 'the other tenants'' claims stay pending');

-- Revoking the tenant hides its batches again.
SELECT lives_ok($$SELECT approvals.revoke_tenant('tb_ta', 'tb_rdr_a')$$, 'revoke tb_ta from tb_rdr_a');
SET ROLE tb_rdr_a;
SELECT is(pg_temp.seen(), 'none none2', 'after the revoke tb_rdr_a sees only tenant-less batches');
SELECT throws_ok($$SELECT approvals.get_batch(pg_temp.b('ta2'))$$, '42501', NULL, 'and get_batch of the tb_ta batch is 42501');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
