-- pg_regress: a batch as a coordinator sees it (ids and times are masked).
SET client_min_messages = warning;
SELECT count(*) FROM generate_series(1, 6) g,
       LATERAL approvals.submit('payout', 'P-' || g, 'h' || g, actor => 'regress_req', amount => g * 10);
SELECT (approvals.submit('payout', 'P-own', 'h', actor => 'regress_coord')).status AS own;
SELECT status FROM approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'P-2'),
                                    'rejected', actor => 'regress_rev');
CREATE TEMP TABLE ids AS
  SELECT array_agg(id ORDER BY resource_id) || ARRAY['clm_missing'] AS ids
  FROM approvals.claims WHERE resource_type = 'payout';

-- create (pending), amend, confirm wrongly, confirm rightly
-- (errors that name the random batch id are shown as their SQLSTATE)
\set VERBOSITY sqlstate
SELECT id AS batch FROM approvals.create_batch((SELECT ids[1:3] FROM ids), coordinator => 'regress_coord',
                                               comment => 'March', start => false) \gset
SELECT status, total_claims, total_amount FROM approvals.update_batch(:'batch', add_claim_ids => (SELECT ids[4:9] FROM ids));
SELECT approvals.start_batch(:'batch', (SELECT ids[1:7] FROM ids));
SELECT approvals.start_batch(:'batch', (SELECT ids[1:7] || ARRAY['clm_other'] FROM ids));
SELECT status, total_claims, total_amount FROM approvals.start_batch(:'batch', (SELECT ids FROM ids));
SELECT approvals.update_batch(:'batch', comment => 'too late');

-- process it now, in this transaction
SELECT r.decision, r.error, c.resource_id
FROM approvals.process_batch(:'batch') r LEFT JOIN approvals.claims c ON c.id = r.claim_id;
SELECT status, processed_count, approved_count, failed_count, approved_amount, failed_amount, error
FROM approvals.batches WHERE id = :'batch';
SELECT approvals.cancel_batch(:'batch');

\set VERBOSITY default
-- bad input
SELECT approvals.create_batch(ARRAY['a', 'b', 'a']);
SELECT approvals.create_batch('{}');
SELECT approvals.create_batch(ARRAY['a'], action => 'approve_all');
SELECT approvals.create_batch(ARRAY['a'], max_failure_ratio => 1.5);

-- a threshold with rollback: two unknown claims, max_failures 1
SELECT count(*) FROM generate_series(1, 4) g,
       LATERAL approvals.submit('payout', 'Q-' || g, 'h', actor => 'regress_req');
SELECT id AS tbatch FROM approvals.create_batch(
    ARRAY(SELECT id FROM approvals.claims WHERE resource_id LIKE 'Q-%' ORDER BY resource_id) || ARRAY['x1', 'x2'],
    coordinator => 'regress_coord', max_failures => 1, start => false) \gset
SELECT decision, error FROM approvals.process_batch(:'tbatch');
SELECT status, approved_count, failed_count, reverted_count, error FROM approvals.batches WHERE id = :'tbatch';
SELECT status, count(*) FROM approvals.claims WHERE resource_id LIKE 'Q-%' GROUP BY status;

-- JSON (seed 000)
SELECT approvals.api_get_batch(:'batch') - ARRAY['batch_id', 'created_at', 'completed_at', 'results']
       AS summary;
SELECT jsonb_path_query(approvals.api_get_batch(:'batch'), '$.results[*] ? (@.error != null)') - 'claim_id' - 'processed_at' AS failed_results;
