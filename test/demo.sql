-- The README's main job: a small approval workflow and a bulk batch processed by the
-- background worker. Run by test/demo.sh as the superuser; safe to run again (each run
-- resubmits the same resources, which supersedes their previous pending claims).
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
SELECT now() AS run_started \gset

\echo '== a policy: invoices need two approvals (route usr_mgr_jane -> usr_cfo_sam), below 100 they auto-approve'
SELECT approvals.set_policy(resource_type => 'invoice', approvers => ARRAY['usr_mgr_jane', 'usr_cfo_sam'],
                            required_approvals => 2, auto_approve_below => 100);

\echo '== single claims, submitted on behalf of users (the superuser may pass actor)'
SELECT c.id, c.resource_id, c.status, c.assignee, c.amount
FROM (VALUES ('INV-2026-0042', 14200.00), ('INV-2026-0043', 56.10), ('INV-2026-0044', 990.00))
         AS v(resource_id, amount),
     LATERAL approvals.submit('invoice', v.resource_id, md5(v.resource_id || v.amount),
                              tenant => 'acme', actor => 'usr_alice', amount => v.amount,
                              currency => 'USD', title => 'Approve invoice ' || v.resource_id) AS c
ORDER BY c.resource_id;

\echo '== decisions: jane approves 0042 (it moves to sam), sam approves it; jane rejects 0044'
SELECT id, status, approval_count, assignee, reviewer
FROM approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'INV-2026-0042'
                       AND status = 'pending'), 'approved', 'Vendor terms checked', actor => 'usr_mgr_jane');
SELECT id, status, approval_count, assignee, reviewer
FROM approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'INV-2026-0042'
                       AND status = 'pending'), 'approved', actor => 'usr_cfo_sam');
SELECT id, status, reviewer
FROM approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'INV-2026-0044'
                       AND status = 'pending'), 'rejected', 'Duplicate of INV-2026-0031',
                      actor => 'usr_mgr_jane');

\echo '== the audit log of INV-2026-0042'
SELECT e.id, e.actor, e.action, e.from_status, e.to_status, e.comment
FROM approvals.events e JOIN approvals.claims c ON c.id = e.claim_id
WHERE c.resource_id = 'INV-2026-0042' AND c.status = 'approved'
ORDER BY e.id DESC LIMIT 4;

\echo '== a bulk batch: 2000 payout lines, a few of them already decided, one unknown id'
SELECT count(*) AS payouts_submitted
FROM generate_series(1, 2000) AS g,
     LATERAL approvals.submit('payout', 'PAY-' || lpad(g::text, 5, '0'), md5('payout' || g),
                              actor => 'usr_alice', amount => 10 + g % 90) AS c;
SELECT count(*) AS decided_beforehand
FROM (SELECT id FROM approvals.claims WHERE resource_type = 'payout' AND status = 'pending'
      AND created_at >= :'run_started' ORDER BY resource_id LIMIT 3) AS d,
     LATERAL approvals.decide(d.id, 'rejected', actor => 'usr_mgr_jane') AS x;

SELECT id AS batch_id, status, total_claims, total_amount
FROM approvals.create_batch(
         ARRAY(SELECT id FROM approvals.claims WHERE resource_type = 'payout'
               AND created_at >= :'run_started' ORDER BY resource_id) || ARRAY['clm_does_not_exist'],
         coordinator => 'usr_coord99', comment => 'End-of-month batch approval') \gset

\echo '== the background worker picks it up at commit; its progress:'
SELECT batch_id, status, processed_count, total_claims, percent, worker_pid
FROM approvals.batch_progress WHERE batch_id = :'batch_id';
SELECT id, status, processed_count, approved_count, failed_count, approved_amount,
       started_at - queued_at AS time_in_queue, completed_at - started_at AS time_processing
FROM approvals.wait_batch(:'batch_id', '2 minutes');

\echo '== per-claim results that did not succeed'
SELECT claim_id, decision, error
FROM approvals.batch_results(:'batch_id') WHERE decision <> 'approved';

\echo '== the same batch through the JSON layer (seed 000), first two results'
SELECT jsonb_pretty(b - 'results' || jsonb_build_object(
           'results', jsonb_path_query_array(b, '$.results[0 to 1]'))) AS api_get_batch
FROM approvals.api_get_batch(:'batch_id') AS b;
