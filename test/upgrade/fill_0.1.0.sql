-- test/upgrade/fill_0.1.0.sql: realistic contents for a database at approvals 0.1.0, written
-- with direct INSERTs as the superuser (test/shell/70_upgrade.sh).  The 0.1.0 functions
-- cannot be used for this: the current library refuses to run them under the 0.1.0 schema
-- ("Run ALTER EXTENSION approvals UPDATE").  The rows are what 0.1.0's C code writes
-- (src/claim.c, src/policy.c, src/batch.c): the same columns, statuses, events, counters
-- and batch bookkeeping.  Ids are deterministic (clm_/bat_ + 16 hex characters).
--
--   policies: 3, handlers: 1 (invoice -> public.upgrade_pay), tenant_grants: 2,
--   idempotency_keys: 2 (a claim and a batch)
--   claims with their events: single claims in every status (pending with a route, approved
--   by a quorum of two, rejected, abstained then escalated, superseded, auto-approved,
--   expired, cancelled) and the claims of the batches below
--   batches:
--     bat_..c0 completed: 20 items, 18 approved, 2 failed (already processed, not found)
--     bat_..c1 cancelled: 5 items approved then reverted
--     bat_..a0 pending (start => false): 10 items
--     bat_..b0 processing, orphaned (its worker is gone): 250 items, the first chunk of 100
--              done (98 approved, 1 already processed, 1 not found), next_position 101;
--              the rest: 145 pending claims and 5 that fail (decided earlier, tenant globex,
--              tenant acme, expired while pending, submitted by the coordinator)
--     bat_..d0 queued: 30 items of pending claims
-- One transaction; run as a superuser with psql -f.
\set ON_ERROR_STOP on
BEGIN;

-- a handler target (what set_handler would register) and where it writes
CREATE TABLE public.upgrade_payments (
    claim_id text NOT NULL,
    action   text NOT NULL,
    status   text NOT NULL
);
CREATE FUNCTION public.upgrade_pay(c approvals.claims, e approvals.events) RETURNS void
    LANGUAGE sql
    BEGIN ATOMIC
        INSERT INTO public.upgrade_payments VALUES (c.id, e.action, c.status);
    END;

-- ---------------------------------------------------------------------------
-- policies, handlers, tenant grants
-- ---------------------------------------------------------------------------
INSERT INTO approvals.policies (tenant, resource_type, kind, approvers, required_approvals,
                                auto_approve_below, expires_in, on_expiry, allow_self_approval,
                                created_at, updated_at)
VALUES (NULL, 'invoice', NULL, '{usr_mgr_jane,usr_cfo_sam}', 2, 100, '3 days', 'escalate',
        false, now() - interval '30 days', now() - interval '2 days'),
       ('acme', 'expense', 'travel', NULL, 1, NULL, '1 day', 'expire', true,
        now() - interval '20 days', now() - interval '20 days'),
       (NULL, NULL, NULL, NULL, 1, NULL, NULL, 'expire', false,
        now() - interval '40 days', now() - interval '40 days');

INSERT INTO approvals.handlers (resource_type, handler, search_path, created_at)
VALUES ('invoice', 'public.upgrade_pay(approvals.claims, approvals.events)',
        '"$user", public, pg_temp', now() - interval '10 days');

INSERT INTO approvals.tenant_grants (tenant, member, granted_at)
VALUES ('acme', 'approvals_reader'::regrole, now() - interval '15 days'),
       ('globex', 'approvals_requester'::regrole, now() - interval '14 days');

-- ---------------------------------------------------------------------------
-- single claims in every status, with their events
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE c0 AS
SELECT 'clm_' || left(md5('upgrade-single-' || tag), 16) AS id, *
FROM (VALUES
    -- tag, tenant, type, resource, kind, status, requester, reviewer, amount, approvers,
    -- required, approval_count, approved_by, route_position, assignee, on_expiry,
    -- expires_in, expires_at, decided_at, age
    ('pending-route', 'acme', 'invoice', 'INV-2026-0042', 'data_review', 'pending', 'usr_req',
     NULL, 14200::numeric, '{usr_mgr_jane,usr_cfo_sam}'::text[], 2, 1, '{usr_mgr_jane}'::text[],
     2, 'usr_cfo_sam', 'escalate', interval '3 days', now() + interval '2 days', NULL::timestamptz,
     interval '1 day'),
    ('approved-quorum', 'acme', 'invoice', 'INV-2026-0043', 'data_review', 'approved', 'usr_req',
     'usr_cfo_sam', 900, '{usr_mgr_jane,usr_cfo_sam}', 2, 2, '{usr_mgr_jane,usr_cfo_sam}',
     NULL, NULL, 'escalate', '3 days', now() + interval '1 day', now() - interval '20 hours',
     '2 days'),
    ('rejected', NULL, 'expense', 'EXP-7', 'data_review', 'rejected', 'usr_req', 'usr_rev',
     42.5, NULL, 1, 0, '{}', NULL, NULL, 'expire', NULL, NULL, now() - interval '3 hours',
     '5 hours'),
    ('escalated', NULL, 'contract', 'CTR-1', 'legal', 'pending', 'usr_req', NULL, NULL,
     '{usr_legal}', 1, 0, '{}', NULL, NULL, 'expire', NULL, NULL, NULL, '6 hours'),
    ('superseded', 'globex', 'document', 'DOC-9', 'data_review', 'cancelled', 'usr_req', NULL,
     NULL, NULL, 1, 0, '{}', NULL, NULL, 'expire', NULL, NULL, now() - interval '1 hour',
     '4 hours'),
    ('superseding', 'globex', 'document', 'DOC-9', 'data_review', 'pending', 'usr_req', NULL,
     NULL, NULL, 1, 0, '{}', NULL, NULL, 'expire', NULL, NULL, NULL, '1 hour'),
    ('auto-approved', NULL, 'invoice', 'INV-SMALL-1', 'data_review', 'approved', 'usr_req',
     'system', 50, '{usr_mgr_jane,usr_cfo_sam}', 2, 0, '{}', NULL, NULL, 'escalate', '3 days',
     now() + interval '3 days', now() - interval '7 hours', '7 hours'),
    ('expired', 'acme', 'expense', 'EXP-8', 'travel', 'expired', 'usr_req', NULL, 300, NULL, 1,
     0, '{}', NULL, NULL, 'expire', '1 day', now() - interval '1 day', now() - interval '23 hours',
     '2 days'),
    ('cancelled', NULL, 'expense', 'EXP-9', 'data_review', 'cancelled', 'usr_req', NULL, 12,
     NULL, 1, 0, '{}', NULL, NULL, 'expire', NULL, NULL, now() - interval '30 minutes',
     '50 minutes')
) AS v(tag, tenant, resource_type, resource_id, kind, status, requester, reviewer, amount,
       approvers, required_approvals, approval_count, approved_by, route_position, assignee,
       on_expiry, expires_in, expires_at, decided_at, age);

INSERT INTO approvals.claims (id, tenant, resource_type, resource_id, kind, snapshot_hash,
    status, requester, reviewer, note, title, context, fields, amount, currency, priority,
    approvers, required_approvals, approval_count, approved_by, route_position, assignee,
    allow_self_approval, on_expiry, expires_in, batch_id, idempotency_key, created_at,
    updated_at, decided_at, expires_at)
SELECT id, tenant, resource_type, resource_id, kind, 'sha256:' || md5(id), status, requester,
       reviewer,
       CASE WHEN tag = 'pending-route' THEN 'Vendor terms checked; net 30' END,
       CASE WHEN resource_type = 'invoice' THEN 'Invoice ' || resource_id END,
       CASE WHEN tag = 'pending-route' THEN 'Q1 hardware order' END,
       CASE WHEN tag = 'pending-route' THEN
           '[{"key": "vendor", "label": "Vendor", "value": "Initech"},
             {"key": "po", "label": "Purchase order", "value": "PO-77"}]'::jsonb END,
       amount, CASE WHEN amount IS NOT NULL THEN 'USD' END,
       CASE WHEN tag = 'pending-route' THEN 'high' WHEN tag = 'escalated' THEN 'urgent'
            ELSE 'normal' END,
       approvers, required_approvals, approval_count, approved_by, route_position, assignee,
       tag = 'expired', on_expiry, expires_in, NULL,
       CASE WHEN tag = 'pending-route' THEN 'idem-inv-0042' END,
       now() - age, coalesce(decided_at, now() - age / 2), decided_at, expires_at
FROM c0;

-- every claim starts with 'submitted' (actor: the requester)
INSERT INTO approvals.events (claim_id, tenant, actor, action, from_status, to_status,
                              snapshot_hash, at)
SELECT id, tenant, requester, 'submitted', NULL, 'pending', 'sha256:' || md5(id), now() - age
FROM c0 ORDER BY age DESC, id;

INSERT INTO approvals.events (claim_id, tenant, actor, action, from_status, to_status,
                              comment, snapshot_hash, at)
SELECT c.id, c.tenant, e.actor, e.action, e.from_status, e.to_status, e.comment,
       'sha256:' || md5(c.id), now() - c.age + e.after
FROM c0 c
JOIN (VALUES
    ('pending-route', 1, 'usr_mgr_jane', 'approved', 'pending', 'pending', 'Looks right', interval '1 hour'),
    ('approved-quorum', 1, 'usr_mgr_jane', 'approved', 'pending', 'pending', NULL, '1 hour'),
    ('approved-quorum', 2, 'usr_cfo_sam', 'approved', 'pending', 'approved', 'OK', '2 hours'),
    ('rejected', 1, 'usr_rev', 'rejected', 'pending', 'rejected', 'Receipt missing', '2 hours'),
    ('escalated', 1, 'usr_legal', 'abstained', 'pending', 'pending', 'Conflict of interest', '1 hour'),
    ('escalated', 2, 'system', 'escalated', 'pending', 'pending', NULL, '1 hour'),
    ('superseded', 1, 'usr_req', 'superseded', 'pending', 'cancelled', NULL, '3 hours'),
    ('auto-approved', 1, 'system', 'auto_approved', 'pending', 'approved',
     'amount below the policy''s auto_approve_below', '0 seconds'),
    ('expired', 1, 'system', 'expired', 'pending', 'expired', NULL, '1 day 1 hour'),
    ('cancelled', 1, 'usr_req', 'cancelled', 'pending', 'cancelled', 'Duplicate', '20 minutes')
) AS e(tag, seq, actor, action, from_status, to_status, comment, after) ON e.tag = c.tag
ORDER BY c.age DESC, c.id, e.seq;

-- ---------------------------------------------------------------------------
-- claims of the batches: pending at first, with their 'submitted' events
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE bc AS
SELECT 'clm_' || left(md5('upgrade-' || b || '-' || g), 16) AS id, b AS batch, g AS pos,
       CASE WHEN b = 'd0' THEN 'expense' ELSE 'invoice' END AS resource_type,
       upper(b) || '-' || lpad(g::text, 4, '0') AS resource_id,
       (g * 37 % 1000 + 100)::numeric AS amount
FROM (VALUES ('c0', 18), ('c1', 5), ('a0', 10), ('b0', 246), ('d0', 30)) AS s(b, n),
     generate_series(1, s.n) AS g;

INSERT INTO approvals.claims (id, tenant, resource_type, resource_id, kind, snapshot_hash,
    status, requester, amount, currency, approvers, required_approvals, route_position,
    assignee, on_expiry, expires_in, created_at, updated_at, expires_at)
SELECT id, NULL, resource_type, resource_id, 'data_review', 'sha256:' || md5(id), 'pending',
       'usr_req', amount, 'EUR',
       CASE WHEN resource_type = 'invoice' THEN '{usr_mgr_jane,usr_cfo_sam}'::text[] END,
       CASE WHEN resource_type = 'invoice' THEN 2 ELSE 1 END,
       CASE WHEN resource_type = 'invoice' THEN 1 END,
       CASE WHEN resource_type = 'invoice' THEN 'usr_mgr_jane' END,
       CASE WHEN resource_type = 'invoice' THEN 'escalate' ELSE 'expire' END,
       CASE WHEN resource_type = 'invoice' THEN interval '3 days' END,
       now() - interval '3 hours', now() - interval '3 hours',
       CASE WHEN resource_type = 'invoice' THEN now() + interval '3 days' END
FROM bc;

-- odd claims of the processing batch's second part: one of tenant acme, one expired while
-- pending, one submitted by the batch's coordinator
UPDATE approvals.claims SET tenant = 'acme'
WHERE id = (SELECT id FROM bc WHERE batch = 'b0' AND pos = 200);
UPDATE approvals.claims SET expires_at = now() - interval '1 minute'
WHERE id = (SELECT id FROM bc WHERE batch = 'b0' AND pos = 210);
UPDATE approvals.claims SET requester = 'usr_coord'
WHERE id = (SELECT id FROM bc WHERE batch = 'b0' AND pos = 220);

INSERT INTO approvals.events (claim_id, tenant, actor, action, from_status, to_status,
                              snapshot_hash, at)
SELECT c.id, c.tenant, c.requester, 'submitted', NULL, 'pending', c.snapshot_hash, c.created_at
FROM approvals.claims c JOIN bc USING (id)
ORDER BY bc.batch, bc.pos;
-- what the invoice handler wrote for them
INSERT INTO public.upgrade_payments
SELECT bc.id, 'submitted', 'pending' FROM bc WHERE resource_type = 'invoice' ORDER BY batch, pos;

-- ---------------------------------------------------------------------------
-- batches
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE b0 AS
SELECT 'bat_' || left(md5('upgrade-batch-' || b), 16) AS id, b AS tag
FROM unnest(ARRAY['c0', 'c1', 'a0', 'b0', 'd0']) AS b;

INSERT INTO approvals.batches (id, tenant, coordinator, comment, action, status,
    max_failures, max_failure_ratio, on_threshold, auto_retry, idempotency_key, created_by,
    next_position, attempts, created_at, updated_at, queued_at)
SELECT id, NULL, 'usr_coord',
       CASE tag WHEN 'c0' THEN 'Month-end close' WHEN 'b0' THEN 'Quarter-end invoices' END,
       'approve', CASE tag WHEN 'a0' THEN 'pending' ELSE 'queued' END,
       CASE WHEN tag = 'b0' THEN 50 END, CASE WHEN tag = 'd0' THEN 0.5::real END,
       CASE WHEN tag = 'd0' THEN 'continue' ELSE 'rollback' END, tag <> 'c1',
       CASE WHEN tag = 'c0' THEN 'close-2026-03' END,
       (SELECT oid FROM pg_roles WHERE rolname = current_user), 1, 0,
       now() - interval '2 hours', now() - interval '2 hours',
       CASE WHEN tag <> 'a0' THEN now() - interval '2 hours' + interval '1 second' END
FROM b0;

-- items: the batch's claims in order; c0 and b0 also hold odd items
INSERT INTO approvals.batch_items (batch_id, position, claim_id)
SELECT b0.id, bc.pos, bc.id FROM bc JOIN b0 ON b0.tag = bc.batch WHERE bc.batch <> 'b0';
-- bat c0 (20 items): its 18 claims, then one decided earlier and one that does not exist
INSERT INTO approvals.batch_items (batch_id, position, claim_id)
SELECT id, 19, (SELECT id FROM c0 WHERE tag = 'approved-quorum') FROM b0 WHERE tag = 'c0'
UNION ALL
SELECT id, 20, 'clm_00000000deadbeef' FROM b0 WHERE tag = 'c0';
-- bat b0 (250 items): its 246 claims in order around four odd items: position 50 a claim
-- decided earlier, 61 a claim that does not exist (both in the first chunk), 150 another
-- claim decided earlier, 180 a pending claim of tenant globex (not the batch's tenant)
INSERT INTO approvals.batch_items (batch_id, position, claim_id)
SELECT b0.id, s.position, bc.id
FROM b0,
     (SELECT p AS position, row_number() OVER (ORDER BY p) AS k
      FROM generate_series(1, 250) AS p WHERE p NOT IN (50, 61, 150, 180)) AS s
JOIN bc ON bc.batch = 'b0' AND bc.pos = s.k
WHERE b0.tag = 'b0'
UNION ALL
SELECT b0.id, p.position, p.claim_id
FROM b0, (VALUES (50, (SELECT id FROM c0 WHERE tag = 'approved-quorum')),
                 (61, 'clm_0000000000000404'),
                 (150, (SELECT id FROM c0 WHERE tag = 'auto-approved')),
                 (180, (SELECT id FROM c0 WHERE tag = 'superseding'))) AS p(position, claim_id)
WHERE b0.tag = 'b0';

-- the decided part of a batch: the claims approved by the coordinator as part of the batch,
-- their events, and the items' results.  For b0 only positions 1..100 (its first chunk).
CREATE TEMP TABLE decided AS
SELECT i.batch_id, i.position, i.claim_id, b0.tag,
       CASE WHEN c.id IS NULL THEN 'Claim not found'
            WHEN c.status <> 'pending' THEN 'Claim already processed' END AS error
FROM approvals.batch_items i
JOIN b0 ON b0.id = i.batch_id
LEFT JOIN approvals.claims c ON c.id = i.claim_id
WHERE b0.tag IN ('c0', 'c1') OR (b0.tag = 'b0' AND i.position <= 100);

UPDATE approvals.claims c SET status = 'approved', reviewer = 'usr_coord',
       batch_id = d.batch_id, assignee = NULL,
       decided_at = now() - interval '90 minutes', updated_at = now() - interval '90 minutes'
FROM decided d WHERE d.claim_id = c.id AND d.error IS NULL;

INSERT INTO approvals.events (claim_id, batch_id, tenant, actor, action, from_status,
                              to_status, comment, snapshot_hash, at)
SELECT c.id, d.batch_id, c.tenant, 'usr_coord', 'approved', 'pending', 'approved',
       b.comment, c.snapshot_hash, now() - interval '90 minutes'
FROM decided d JOIN approvals.claims c ON c.id = d.claim_id
JOIN approvals.batches b ON b.id = d.batch_id
WHERE d.error IS NULL
ORDER BY d.batch_id, d.position;
INSERT INTO public.upgrade_payments
SELECT d.claim_id, 'approved', 'approved'
FROM decided d JOIN bc ON bc.id = d.claim_id
WHERE d.error IS NULL AND bc.resource_type = 'invoice' ORDER BY d.batch_id, d.position;

UPDATE approvals.batch_items i
SET decision = CASE WHEN d.error IS NULL THEN 'approved' ELSE 'failed' END,
    error = d.error, processed_at = now() - interval '90 minutes'
FROM decided d WHERE i.batch_id = d.batch_id AND i.position = d.position;

-- bat c1 was cancelled: its claims went back to pending (events 'reverted', actor the
-- coordinator who cancelled), its items are 'reverted'
UPDATE approvals.claims c SET status = 'pending', reviewer = NULL, decided_at = NULL,
       assignee = c.approvers[c.route_position], updated_at = now() - interval '80 minutes'
FROM decided d WHERE d.claim_id = c.id AND d.tag = 'c1';
INSERT INTO approvals.events (claim_id, batch_id, tenant, actor, action, from_status,
                              to_status, comment, snapshot_hash, at)
SELECT c.id, d.batch_id, c.tenant, 'usr_coord', 'reverted', 'approved', 'pending',
       'Wrong batch', c.snapshot_hash, now() - interval '80 minutes'
FROM decided d JOIN approvals.claims c ON c.id = d.claim_id
WHERE d.tag = 'c1' ORDER BY d.position;
INSERT INTO public.upgrade_payments
SELECT d.claim_id, 'reverted', 'pending' FROM decided d WHERE d.tag = 'c1' ORDER BY d.position;
UPDATE approvals.batch_items i SET decision = 'reverted'
FROM decided d WHERE d.tag = 'c1' AND i.batch_id = d.batch_id AND i.position = d.position;

-- counters and bookkeeping (RecountBatch, ChunkStoreCounters, BatchFinish, BatchTakeOver)
UPDATE approvals.batches b
SET total_claims = s.total, total_amount = s.total_amount,
    processed_count = s.processed, approved_count = s.approved, failed_count = s.failed,
    approved_amount = s.approved_amount, failed_amount = s.failed_amount,
    next_position = s.next_position
FROM (SELECT i.batch_id, count(*)::integer AS total,
             coalesce(sum(c.amount) FILTER (WHERE c.tenant IS NULL), 0) AS total_amount,
             count(i.decision)::integer AS processed,
             count(*) FILTER (WHERE i.decision = 'approved')::integer AS approved,
             count(*) FILTER (WHERE i.decision = 'failed')::integer AS failed,
             coalesce(sum(c.amount) FILTER (WHERE i.decision = 'approved'), 0) AS approved_amount,
             coalesce(sum(c.amount) FILTER (WHERE i.decision = 'failed' AND c.tenant IS NULL),
                      0) AS failed_amount,
             coalesce(max(i.position) FILTER (WHERE i.decision IS NOT NULL), 0) + 1
                 AS next_position
      FROM approvals.batch_items i LEFT JOIN approvals.claims c ON c.id = i.claim_id
      GROUP BY i.batch_id) s
WHERE s.batch_id = b.id;

UPDATE approvals.batches b SET status = 'completed', attempts = 1,
       started_at = now() - interval '100 minutes', completed_at = now() - interval '90 minutes',
       updated_at = now() - interval '90 minutes'
FROM b0 WHERE b0.id = b.id AND b0.tag = 'c0';
UPDATE approvals.batches b SET status = 'cancelled', attempts = 1,
       approved_count = 0, reverted_count = 5, approved_amount = 0,
       error = NULL, started_at = now() - interval '100 minutes',
       cancelled_at = now() - interval '80 minutes', updated_at = now() - interval '80 minutes'
FROM b0 WHERE b0.id = b.id AND b0.tag = 'c1';
-- b0: processing by a backend that is gone (pid and start time match no live backend)
UPDATE approvals.batches b SET status = 'processing', attempts = 1,
       worker_pid = 4194000, worker_started = now() - interval '95 minutes',
       started_at = now() - interval '95 minutes', updated_at = now() - interval '90 minutes'
FROM b0 WHERE b0.id = b.id AND b0.tag = 'b0';
UPDATE approvals.batches b SET queued_at = now() - interval '1 minute',
       updated_at = now() - interval '1 minute'
FROM b0 WHERE b0.id = b.id AND b0.tag = 'd0';

-- idempotency keys: the routed invoice claim, and the completed batch
INSERT INTO approvals.idempotency_keys (scope, requester, key, request, object_id, created_at)
SELECT 'claim', 'usr_req', 'idem-inv-0042',
       ARRAY['invoice', 'INV-2026-0042', 'sha256:' || md5(id), 'acme', 'data_review',
             'Vendor terms checked; net 30', NULL, NULL, '14200', 'USD',
             'Invoice INV-2026-0042', 'Q1 hardware order',
             '[{"key": "vendor", "label": "Vendor", "value": "Initech"}, {"key": "po", "label": "Purchase order", "value": "PO-77"}]',
             '{usr_mgr_jane,usr_cfo_sam}', '2', 'high', NULL],
       id, now() - interval '1 day'
FROM c0 WHERE tag = 'pending-route'
UNION ALL
SELECT 'batch', 'usr_coord', 'close-2026-03',
       ARRAY[(SELECT '{' || string_agg(claim_id, ',' ORDER BY position) || '}'
              FROM approvals.batch_items WHERE batch_id = b0.id),
             'usr_coord', 'Month-end close', 'approve', 'true', NULL, NULL, NULL,
             'rollback', 'true'],
       id, now() - interval '2 hours'
FROM b0 WHERE tag = 'c0';

COMMIT;
