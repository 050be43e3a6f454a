-- pg_regress: the claim workflow as a user sees it (ids and times are masked).
SET client_min_messages = warning;
CREATE ROLE regress_alice LOGIN;
CREATE ROLE regress_jane LOGIN;
CREATE ROLE regress_sam LOGIN;
CREATE ROLE regress_nobody LOGIN;
GRANT approvals_requester TO regress_alice;
GRANT approvals_reviewer TO regress_jane, regress_sam;

-- submit as alice, with a route of two approvers and a quorum of two
SET ROLE regress_alice;
SELECT id ~ '^clm_[0-9a-f]{16}$' AS id_ok, resource_type, resource_id, status, requester,
       approvers, required_approvals, approval_count, assignee
FROM approvals.submit('invoice', 'INV-1', 'h1', amount => 100, id => 'clm_regress_1',
                      approvers => ARRAY['regress_jane', 'regress_sam'], required_approvals => 2);
-- alice may not act for someone else, nor decide
SELECT approvals.submit('invoice', 'INV-2', 'h2', actor => 'regress_jane');
SELECT approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'INV-1'), 'approved');
RESET ROLE;

-- route: sam is not the assignee yet; jane approves, then sam
SET ROLE regress_sam;
SELECT approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'INV-1'), 'approved');
SET ROLE regress_jane;
SELECT status, approval_count, assignee, reviewer
FROM approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'INV-1'), 'approved',
                      'looks right', snapshot_hash => 'h1');
SET ROLE regress_sam;
SELECT approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'INV-1'), 'approved',
                        snapshot_hash => 'stale');
SELECT status, approval_count, assignee, reviewer, decided_at IS NOT NULL AS decided
FROM approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'INV-1'), 'approved');
SELECT approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'INV-1'), 'rejected');
RESET ROLE;

-- the audit log
SELECT actor, action, from_status, to_status, comment
FROM approvals.events WHERE claim_id = (SELECT id FROM approvals.claims WHERE resource_id = 'INV-1')
ORDER BY id;

-- abstain past the end of the route escalates
SELECT status, assignee FROM approvals.submit('invoice', 'INV-3', 'h3', actor => 'regress_alice', id => 'clm_regress_3',
                                              approvers => ARRAY['regress_jane']);
SELECT status, assignee, reviewer
FROM approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'INV-3'), 'abstained',
                      'not my area', actor => 'regress_jane');
SELECT action, from_status, to_status FROM approvals.events
WHERE claim_id = (SELECT id FROM approvals.claims WHERE resource_id = 'INV-3') ORDER BY id;

-- resubmitting a resource supersedes its pending claim
SELECT status FROM approvals.submit('invoice', 'INV-3', 'h3b', actor => 'regress_alice', id => 'clm_regress_3b');
SELECT snapshot_hash, status FROM approvals.claims WHERE resource_id = 'INV-3' ORDER BY created_at, snapshot_hash;

-- limits and errors
SELECT approvals.submit('invoice', repeat('x', 256), 'h');
SELECT approvals.submit('invoice', 'INV-4', repeat('h', 129));
SELECT approvals.submit('invoice', 'INV-4', 'h', note => repeat('n', 2001));
SELECT approvals.submit('invoice', 'INV-4', 'h', priority => 'asap');
SELECT approvals.submit('invoice', NULL, 'h');
SELECT approvals.submit('invoice', 'INV-4', 'h', fields => '[{"key":"a","label":"A"}]');
SELECT approvals.decide('clm_nope', 'approved');
SELECT approvals.decide((SELECT id FROM approvals.claims WHERE resource_id = 'INV-3' AND status = 'pending'), 'maybe');

-- a role with no approvals role sees nothing
SET ROLE regress_nobody;
SELECT count(*) FROM approvals.claims;
RESET ROLE;

-- the audit log is append-only
UPDATE approvals.events SET actor = 'x';
DELETE FROM approvals.events;
TRUNCATE approvals.events;

-- the JSON layer
SELECT approvals.api_submit('{"merchantId":"m1","resourceType":"order","resourceId":"o-1",
        "dataSnapshotHash":"abc","note":"please","actorId":"regress_alice"}')
       - 'id' - 'createdAt' AS approval;
SELECT approvals.api_respond((SELECT id FROM approvals.claims WHERE resource_id = 'o-1'),
        '{"outcome":"approved","data":{"comment":"ok"},"extra":1}', 'regress_jane')
       - 'interactionId' - 'timestamp' AS response;

DROP OWNED BY regress_alice, regress_jane, regress_sam, regress_nobody;
DROP ROLE regress_alice, regress_jane, regress_sam, regress_nobody;
