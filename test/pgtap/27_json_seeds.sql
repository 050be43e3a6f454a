-- 27_json_seeds: seed 002 (api_approve_file, batch reference and tracking_id) and seed 003
-- (api_process_batch, api_batch_statistics) in their own shape: members, status mapping,
-- amounts as two-decimal strings, every SQLSTATE, and that a refused call changes nothing.
BEGIN;
SELECT plan(52);

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
CREATE FUNCTION pg_temp.st(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE;
END $f$;

CREATE ROLE t27_coord IN ROLE approvals_coordinator;
CREATE ROLE t27_reader IN ROLE approvals_reader;

-- claims: two payouts in KES with titles, one in USD, one that will fail (another's request)
SELECT approvals.submit('t27_pay', 'p1', 'h1', id => 't27_c1', actor => 't27_req', amount => 25000,
                        currency => 'KES', title => 'John Doe');
SELECT approvals.submit('t27_pay', 'p2', 'h2', id => 't27_c2', actor => 't27_req', amount => 25000,
                        currency => 'KES', title => 'Jane Smith');
SELECT approvals.submit('t27_pay', 'p3', 'h3', id => 't27_c3', actor => 't27_req', amount => 1.5,
                        currency => 'USD');
SELECT approvals.submit('t27_pay', 'p4', 'h4', id => 't27_c4', actor => 't27_coord', amount => 10,
                        currency => 'KES');

-- ---------------------------------------------------------------------------
-- reference and tracking_id
-- ---------------------------------------------------------------------------
-- batches are created by the coordinator's own role (only it, platform or admin may start them)
SET ROLE t27_coord;
SELECT id AS b1, tracking_id AS t1 FROM approvals.create_batch(ARRAY['t27_c1', 't27_c2'],
    start => false, reference => 'PAYROLL-JAN-2024') \gset
RESET ROLE;
SELECT is((SELECT reference FROM approvals.batches WHERE id = :'b1'), 'PAYROLL-JAN-2024',
          'create_batch stores the reference');
SELECT ok((SELECT tracking_id IS NOT NULL FROM approvals.batches WHERE id = :'b1'),
          'every batch gets a tracking_id');
SELECT is((SELECT format_type(atttypid, atttypmod) FROM pg_attribute
            WHERE attrelid = 'approvals.batches'::regclass AND attname = 'tracking_id'),
          'uuid', 'tracking_id is a uuid');
SELECT ok(EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                   AND a.attnum = ANY (i.indkey)
                  WHERE i.indrelid = 'approvals.batches'::regclass AND i.indisunique
                    AND a.attname = 'tracking_id' AND i.indnatts = 1),
          'tracking_id is unique');
SELECT is(pg_temp.st($$SELECT approvals.create_batch(ARRAY['t27_c3'], coordinator => 't27_coord',
                       start => false, reference => repeat('r', 256))$$),
          'ERROR 22001', 'a reference over 255 characters is 22001');

-- ---------------------------------------------------------------------------
-- api_approve_file: errors first (each leaves the batch pending)
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.st($$SELECT approvals.api_approve_file('{"transactions": ["t27_c1", "t27_c2"]}')$$),
          'ERROR 22023', 'neither file_id nor tracking_id: 22023');
SELECT is(pg_temp.st(format($$SELECT approvals.api_approve_file('{"file_id": "%s"}')$$, :'b1')),
          'ERROR 22004', 'transactions missing: 22004');
SELECT is(pg_temp.st(format($$SELECT approvals.api_approve_file('{"file_id": "%s", "transactions": "t27_c1"}')$$, :'b1')),
          'ERROR 22023', 'transactions not an array: 22023');
SELECT is(pg_temp.st($$SELECT approvals.api_approve_file('{"tracking_id": "not-a-uuid", "transactions": []}')$$),
          'ERROR 22023', 'a tracking_id that is not a UUID: 22023');
SELECT is(pg_temp.st($$SELECT approvals.api_approve_file(
              '{"tracking_id": "00000000-0000-0000-0000-000000000000", "transactions": ["t27_c1"]}')$$),
          'ERROR P0002', 'an unknown tracking_id: P0002');
SELECT is(pg_temp.st($$SELECT approvals.api_approve_file('{"file_id": "bat_nope", "transactions": ["t27_c1"]}')$$),
          'ERROR P0002', 'an unknown file_id: P0002');
SET ROLE t27_coord;
SELECT id AS b2 FROM approvals.create_batch(ARRAY['t27_c3'], start => false) \gset
RESET ROLE;
SELECT is(pg_temp.st(format($$SELECT approvals.api_approve_file('{"file_id": "%s", "tracking_id": "%s", "transactions": ["t27_c1", "t27_c2"]}')$$,
                            :'b2', :'t1')),
          'ERROR 22023', 'file_id and tracking_id naming different batches: 22023');
SELECT is(pg_temp.st(format($$SELECT approvals.api_approve_file('{"file_id": "%s", "transactions": ["t27_c1"]}')$$, :'b1')),
          'ERROR AP002', 'transactions missing one of the file''s claims: AP002');
SELECT is(pg_temp.st(format($$SELECT approvals.api_approve_file('{"file_id": "%s", "transactions": ["t27_c1", "t27_c3"]}')$$, :'b1')),
          'ERROR AP002', 'transactions with another claim instead: AP002');
SELECT is((SELECT status FROM approvals.batches WHERE id = :'b1'), 'pending',
          'after the refused calls the file is still pending');
SET ROLE t27_reader;
SELECT is(pg_temp.st(format($$SELECT approvals.api_approve_file('{"file_id": "%s", "transactions": ["t27_c1", "t27_c2"]}')$$, :'b1')),
          'ERROR 42501', 'a reader may not approve a file: 42501');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- api_approve_file: the file object
-- ---------------------------------------------------------------------------
SET ROLE t27_coord;
SELECT approvals.api_approve_file(jsonb_build_object('tracking_id', :'t1', 'file_id', :'b1',
           'transactions', jsonb_build_array('t27_c2', 't27_c1'))) AS f \gset
RESET ROLE;
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(:'f'::jsonb) k),
          ARRAY['batch_reference', 'created_at', 'failed_amount', 'file_id', 'paid_amount', 'status',
                'total_amount', 'tracking_id', 'transactions', 'transactions_count', 'updated_at'],
          'the file object has exactly the seed''s members (no wallet, no charges)');
SELECT is(:'f'::jsonb ->> 'file_id', :'b1', 'file_id is the batch id');
SELECT is(:'f'::jsonb ->> 'tracking_id', :'t1', 'tracking_id is the batch''s');
SELECT is(:'f'::jsonb ->> 'status', 'PROCESSING', 'a started file is PROCESSING');
SELECT is(:'f'::jsonb ->> 'batch_reference', 'PAYROLL-JAN-2024', 'batch_reference is the reference');
SELECT is(:'f'::jsonb -> 'total_amount', '"50000.00"'::jsonb, 'total_amount is a string with two decimals');
SELECT is(:'f'::jsonb -> 'paid_amount', '"0.00"'::jsonb, 'paid_amount is "0.00" before processing');
SELECT is(:'f'::jsonb -> 'failed_amount', '"0.00"'::jsonb, 'failed_amount is "0.00" before processing');
SELECT is(:'f'::jsonb -> 'transactions_count', '2'::jsonb, 'transactions_count is a number');
SELECT is(:'f'::jsonb -> 'transactions',
          '[{"transaction_id": "t27_c1", "status": "PENDING", "amount": "25000.00", "name": "John Doe"},
            {"transaction_id": "t27_c2", "status": "PENDING", "amount": "25000.00", "name": "Jane Smith"}]'::jsonb,
          'transactions in the file''s order: id, PENDING, amount string, the claim''s title as name');
SELECT ok(:'f'::jsonb ->> 'created_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', 'created_at is ISO 8601 UTC');
SELECT is((SELECT status FROM approvals.batches WHERE id = :'b1'), 'queued', 'the file''s batch is queued');
SELECT is(pg_temp.st(format($$SELECT approvals.api_approve_file('{"file_id": "%s", "transactions": ["t27_c1", "t27_c2"]}')$$, :'b1')),
          'ERROR 55000', 'approving a file that is no longer pending: 55000');

-- processed: COMPLETED, APPROVED, paid_amount
SELECT count(*) FROM approvals.process_batch(:'b1');
SELECT is(approvals.api_payout_file((SELECT b FROM approvals.batches b WHERE id = :'b1')) ->> 'status',
          'COMPLETED', 'a completed file is COMPLETED');
SELECT is(approvals.api_payout_file((SELECT b FROM approvals.batches b WHERE id = :'b1')) -> 'paid_amount',
          '"50000.00"'::jsonb, 'paid_amount is the approved amount');
SELECT is((SELECT array_agg(t ->> 'status') FROM jsonb_array_elements(
              approvals.api_payout_file((SELECT b FROM approvals.batches b WHERE id = :'b1')) -> 'transactions') t),
          ARRAY['APPROVED', 'APPROVED'], 'processed transactions are APPROVED');

-- ---------------------------------------------------------------------------
-- api_process_batch and api_batch_statistics
-- ---------------------------------------------------------------------------
SELECT approvals.submit('t27_pay', 'p5', 'h5', id => 't27_c5', actor => 't27_req', amount => 7,
                        currency => 'KES');
-- t27_c4 was requested by the coordinator: it fails (Requester cannot decide own claim)
SET ROLE t27_coord;
SELECT id AS b3 FROM approvals.create_batch(ARRAY['t27_c5', 't27_c4'],
    start => false, max_failures => 0, reference => 'RUN-3') \gset
RESET ROLE;
SET ROLE t27_reader;
SELECT is(pg_temp.st(format($$SELECT approvals.api_process_batch('%s')$$, :'b3')), 'ERROR 42501',
          'a reader may not process a batch: 42501');
RESET ROLE;
SELECT is(pg_temp.st($$SELECT approvals.api_process_batch('bat_nope')$$), 'ERROR P0002',
          'api_process_batch of an unknown batch: P0002');
SELECT is(pg_temp.st($$SELECT approvals.api_process_batch(NULL)$$), 'ERROR 22004',
          'api_process_batch(NULL): 22004');
SET ROLE t27_coord;
SELECT approvals.api_process_batch(:'b3', override_threshold => true, auto_retry => false) AS s \gset
RESET ROLE;
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(:'s'::jsonb) k),
          ARRAY['batchCurrency', 'batchRef', 'durationInQueue', 'durationProcessed', 'processCompletionDate',
                'processEndDate', 'processStartDate', 'processedBy', 'status', 'totalAmount',
                'totalPayments', 'totalPaymentsProcessed', 'totalPaymentsSuspended'],
          'paymentBatchStatistics has exactly the documented members');
SELECT is((SELECT row(on_threshold, auto_retry)::text FROM approvals.batches WHERE id = :'b3'),
          '(continue,f)', 'override_threshold => true records on_threshold continue, and auto_retry');
SELECT is(:'s'::jsonb ->> 'status', 'completed', 'past the threshold with override: completed');
SELECT is(:'s'::jsonb -> 'totalPayments', '2'::jsonb, 'totalPayments: the items');
SELECT is(:'s'::jsonb -> 'totalPaymentsProcessed', '1'::jsonb, 'totalPaymentsProcessed: decided items');
SELECT is(:'s'::jsonb -> 'totalPaymentsSuspended', '1'::jsonb, 'totalPaymentsSuspended: failed items');
SELECT is(:'s'::jsonb -> 'totalAmount', '17'::jsonb, 'totalAmount: the batch''s total_amount (every item''s claim)');
SELECT is(:'s'::jsonb ->> 'batchCurrency', 'KES', 'batchCurrency: the claims'' shared currency');
SELECT is(:'s'::jsonb ->> 'batchRef', 'RUN-3', 'batchRef: the reference');
SELECT is(:'s'::jsonb ->> 'processedBy', 't27_coord', 'processedBy: the coordinator');
SELECT is(jsonb_typeof(:'s'::jsonb -> 'processStartDate'), 'number', 'dates are epoch milliseconds (numbers)');
SELECT is((:'s'::jsonb ->> 'processStartDate')::bigint,
          (SELECT (extract(epoch FROM started_at) * 1000)::bigint FROM approvals.batches WHERE id = :'b3'),
          'processStartDate is started_at in milliseconds');

-- without override the threshold rolls back: failed, decided claims reverted
SELECT approvals.submit('t27_pay', 'p6', 'h6', id => 't27_c6', actor => 't27_req', amount => 8);
SELECT approvals.submit('t27_pay', 'p7', 'h7', id => 't27_c7', actor => 't27_coord', amount => 9);
SET ROLE t27_coord;
SELECT id AS b4 FROM approvals.create_batch(ARRAY['t27_c6', 't27_c7'], start => false,
    max_failures => 0) \gset
RESET ROLE;
SET ROLE t27_coord;
SELECT is(approvals.api_process_batch(:'b4') ->> 'status', 'failed',
          'override_threshold false (default): the threshold stops the batch (failed)');
RESET ROLE;
SELECT is((SELECT on_threshold FROM approvals.batches WHERE id = :'b4'), 'rollback',
          'override_threshold false records on_threshold rollback');
SELECT is((SELECT array_agg(t ->> 'status' ORDER BY t ->> 'transaction_id') FROM jsonb_array_elements(
              approvals.api_payout_file((SELECT b FROM approvals.batches b WHERE id = :'b4')) -> 'transactions') t),
          ARRAY['REVERTED', 'FAILED'], 'the file object shows REVERTED and FAILED transactions');
SELECT is(pg_temp.st(format($$SELECT approvals.api_process_batch('%s')$$, :'b4')), 'ERROR 55000',
          'api_process_batch of a finished batch: 55000');
SELECT is(pg_temp.st($$SELECT approvals.api_batch_statistics('bat_nope')$$), 'ERROR P0002',
          'api_batch_statistics of an unknown batch: P0002');

SELECT * FROM finish();
ROLLBACK;
