-- The README's main job, as a guided tour: claims submitted under a policy with a route and a
-- handler that makes "approve" and its business effect one transaction; one claim decided by
-- hand; a batch of 30 000 claims created by a coordinator and processed by the background
-- worker while we watch; the results with their error texts; the audit log of one claim.
--
-- Run by test/demo.sh as the superuser postgres in database postgres (where the worker runs).
-- Safe to run again: each run gets a number and its resource ids end in -r<number>, so a run
-- shows only its own rows (earlier runs stay in the tables for exploring).
\set QUIET on
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;

-- The demo's own objects: a run counter, the payments the handler makes, the handler, and two
-- helpers for showing things.
CREATE SCHEMA IF NOT EXISTS demo;
CREATE TABLE IF NOT EXISTS demo.runs (
    run        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS demo.payments (
    claim_id    text PRIMARY KEY,
    resource_id text NOT NULL,
    amount      numeric NOT NULL,
    paid_at     timestamptz NOT NULL DEFAULT now()
);

-- The handler. approvals runs it in the same transaction as every state change of a claim of
-- the resource types it is registered for: an approval pays (a row in demo.payments); a
-- payment over the limit is refused by raising, so the approval does not happen either; a
-- reverted approval (cancel_batch) takes the payment back.
CREATE OR REPLACE FUNCTION demo.pay(c approvals.claims, e approvals.events) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF e.action IN ('approved', 'auto_approved') AND c.status = 'approved' THEN
        IF c.amount > 20000 THEN
            RAISE EXCEPTION 'Payment refused: % USD is over the 20000 USD limit', c.amount;
        END IF;
        INSERT INTO demo.payments (claim_id, resource_id, amount)
        VALUES (c.id, c.resource_id, c.amount);
    ELSIF e.action = 'reverted' THEN
        DELETE FROM demo.payments WHERE claim_id = c.id;
    END IF;
END $$;

-- One progress line of a running batch, read from approvals.batch_progress, then half a
-- second's wait (so that a list of calls samples it every half second). No line, and no wait,
-- once the batch is no longer queued or processing.
CREATE OR REPLACE FUNCTION demo.progress(batch text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
        SELECT rtrim(format('  %s  %-10s %6s of %s  %5s %%  %s  %5s claims/s  %s',
                            to_char(clock_timestamp(), 'HH24:MI:SS.MS'), p.status,
                            p.processed_count, p.total_claims, p.percent,
                            rpad(repeat('#', (p.percent / 5)::int), 20, '.'),
                            round(coalesce(p.claims_per_second, 0)),
                            'worker pid ' || p.worker_pid))
        FROM approvals.batch_progress p
        WHERE p.batch_id = batch AND p.status IN ('queued', 'processing');
    IF FOUND THEN
        PERFORM pg_sleep(0.5);
    END IF;
END $$;

-- What a statement is refused with (SQLSTATE and message), or 'accepted'.
CREATE OR REPLACE FUNCTION demo.refusal(statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

INSERT INTO demo.runs DEFAULT VALUES RETURNING run, '-r' || run AS tag \gset
SELECT current_setting('approvals.chunk_size') AS chunk_size \gset
\echo '=== approvals demo, run' :run 'on this cluster: its resource ids end in' :tag

\echo
\echo '=== 1. Setup, as the superuser postgres'
\echo '  policy:  an invoice needs 2 approvals, routed usr_mgr_jane -> usr_cfo_sam;'
\echo '           under 100 USD it is approved at once'
\echo '  handler: demo.pay(claim, event) pays an approved invoice or payout (a row in demo.payments)'
\echo '           in the transaction that approves it, and refuses payments over 20000 USD'
DO $$
BEGIN
    PERFORM approvals.set_policy(resource_type => 'invoice',
                                 approvers => ARRAY['usr_mgr_jane', 'usr_cfo_sam'],
                                 required_approvals => 2, auto_approve_below => 100);
    PERFORM approvals.set_handler('invoice', 'demo.pay(approvals.claims, approvals.events)');
    PERFORM approvals.set_handler('payout', 'demo.pay(approvals.claims, approvals.events)');
END $$;

\echo
\echo '=== 2. usr_alice submits three invoices of tenant acme (the superuser acts for her: actor =>)'
SELECT c.resource_id, c.amount, c.status, c.assignee, c.approvers AS route, c.id AS claim_id
FROM (VALUES ('INV-2026-0042', 14200.00), ('INV-2026-0043', 56.10), ('INV-2026-0044', 990.00))
         AS v(invoice, amount),
     LATERAL approvals.submit('invoice', v.invoice || :'tag', md5(v.invoice || v.amount),
                              tenant => 'acme', actor => 'usr_alice', amount => v.amount,
                              currency => 'USD', title => 'Approve invoice ' || v.invoice) AS c
ORDER BY c.resource_id;
\echo '  INV-2026-0043 is under 100 USD: approved at submit, and paid by the handler already.'
\echo '  The others wait for their assignee, usr_mgr_jane.'
SELECT id AS inv42 FROM approvals.claims
WHERE resource_id = 'INV-2026-0042' || :'tag' AND status = 'pending' \gset

\echo
\echo '=== 3. INV-2026-0042 decided by hand, along its route and by the right people'
\echo '  Out of turn, or on her own claim, a decision is refused:'
SELECT a.actor, demo.refusal(format('SELECT approvals.decide(%L, %L, actor => %L)',
                                    :'inv42', 'approved', a.actor)) AS refused_with
FROM (VALUES ('usr_cfo_sam'), ('usr_alice')) AS a(actor);
\echo '  Its assignee usr_mgr_jane approves (1 of 2), which assigns it to usr_cfo_sam, who approves (2 of 2):'
SELECT reviewer AS decided_by, status, approval_count, assignee AS now_assigned_to
FROM approvals.decide(:'inv42', 'approved', 'Vendor terms checked', actor => 'usr_mgr_jane');
SELECT reviewer AS decided_by, status, approval_count, assignee AS now_assigned_to
FROM approvals.decide(:'inv42', 'approved', 'OK to pay', actor => 'usr_cfo_sam');
\echo '  The payments so far: each one written by the transaction that approved its claim'
\echo '  (the same transaction id, xmin, on the payment row and on the approving event)'
SELECT p.resource_id, p.amount, e.actor AS approved_by, e.action, p.xmin AS payment_xmin,
       e.xmin AS event_xmin
FROM demo.payments p
     JOIN approvals.events e ON e.claim_id = p.claim_id AND e.to_status = 'approved'
WHERE p.resource_id LIKE 'INV-%' || :'tag'
ORDER BY p.resource_id;

\echo '=== 4. A batch: coordinator usr_coord99 approves tenant acme''s payouts in one go'
SELECT count(*) AS payouts
FROM generate_series(1, 30000) AS g,
     LATERAL approvals.submit('payout', 'PAY-' || lpad(g::text, 5, '0') || :'tag', md5('payout' || g),
                              tenant => 'acme', actor => 'usr_alice', currency => 'USD',
                              amount => CASE WHEN g IN (12345, 23456) THEN 25000 ELSE 10 + g % 90 END)
         AS c \gset
SELECT status AS pay7 FROM approvals.decide(
    (SELECT id FROM approvals.claims WHERE resource_id = 'PAY-00007' || :'tag' AND status = 'pending'),
    'rejected', 'Duplicate of PAY-00006', actor => 'usr_mgr_jane') \gset
SELECT id AS coord_claim FROM approvals.submit('payout', 'PAY-COORD' || :'tag', md5('coord'),
    tenant => 'acme', actor => 'usr_coord99', amount => 42, currency => 'USD') \gset
\echo '  usr_alice submitted' :payouts 'payouts of 10 to 99 USD (but PAY-12345 and PAY-23456 ask for 25000);'
\echo '  usr_mgr_jane has' :pay7 'PAY-00007 by hand; usr_coord99 submitted PAY-COORD himself.'
\echo '  The batch takes every PAY-...':tag 'claim, plus a claim id that does not exist:'
SELECT id AS batch_id, status, total_claims, total_amount
FROM approvals.create_batch(
         ARRAY(SELECT id FROM approvals.claims
               WHERE resource_type = 'payout' AND resource_id LIKE 'PAY-%' || :'tag'
               ORDER BY resource_id) || ARRAY['clm_does_not_exist'],
         coordinator => 'usr_coord99', tenant => 'acme',
         comment => 'End-of-month payouts, demo run ' || :run) \gset
\echo '  batch' :batch_id 'is' :status 'with' :total_claims 'claims,' :total_amount 'USD'

\echo
\echo '=== 5. The background worker takes it when create_batch commits, and processes it in chunks'
\echo '  of' :chunk_size 'claims, one transaction each. approvals.batch_progress every half second:'
\pset format unaligned
\pset tuples_only on
-- At most 16 samples (8 s); on a slower machine wait_batch below covers the rest.
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
SELECT demo.progress(:'batch_id');
\pset tuples_only off
\pset format aligned
\echo '  approvals.wait_batch waits for the end:'
SELECT status, processed_count AS processed, approved_count AS approved, failed_count AS failed,
       approved_amount, completed_at - started_at AS time_processing
FROM approvals.wait_batch(:'batch_id', '2 minutes');

\echo '=== 6. The results: the items that were not approved, with their error texts'
SELECT c.resource_id, r.claim_id, r.decision, r.error
FROM approvals.batch_results(:'batch_id') WITH ORDINALITY AS r
     LEFT JOIN approvals.claims c ON c.id = r.claim_id
WHERE r.decision <> 'approved'
ORDER BY r.ordinality;
\echo '  The handler paid exactly what the batch approved:'
SELECT b.approved_count, b.approved_amount, p.payments, p.paid
FROM approvals.get_batch(:'batch_id') AS b,
     (SELECT count(*) AS payments, sum(amount) AS paid FROM demo.payments
      WHERE resource_id LIKE 'PAY-%' || :'tag') AS p;

\echo '=== 7. The audit log of INV-2026-0042':tag '(append-only: approvals.events)'
SELECT to_char(e.at, 'HH24:MI:SS.MS') AS at, e.actor, e.action, e.from_status, e.to_status,
       e.comment
FROM approvals.events e
WHERE e.claim_id = :'inv42'
ORDER BY e.id;
