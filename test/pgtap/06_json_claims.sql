-- 06_json_claims: the JSON layer for claims — api_submit (seed 001, POST /v0/approvals)
-- and api_respond (seed 004, approval interaction response): field names,
-- value types, timestamp format, mapping onto submit/decide and errors.
BEGIN;
SELECT plan(54);

-- Timestamps must come out in UTC whatever the session's time zone.
SET LOCAL TimeZone = 'America/New_York';

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
CREATE FUNCTION pg_temp.utc(ts timestamptz) RETURNS text LANGUAGE sql AS $f$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$f$;

CREATE ROLE t06_req IN ROLE approvals_requester;
CREATE ROLE t06_rev IN ROLE approvals_reviewer;
CREATE ROLE t06_adm IN ROLE approvals_admin;

CREATE TEMP TABLE t06_out (name text PRIMARY KEY, body jsonb);
GRANT ALL ON t06_out TO PUBLIC;

-- ---------------------------------------------------------------------------
-- api_submit
-- ---------------------------------------------------------------------------
SELECT lives_ok($$INSERT INTO t06_out SELECT 'min', approvals.api_submit('{"merchantId":"t06_m","resourceType":"invoice",
                                              "resourceId":"inv-0042","dataSnapshotHash":"sha256:abc"}')$$,
                'api_submit with the four required keys (superuser caller)');
SELECT is(ARRAY(SELECT jsonb_object_keys(body) FROM t06_out WHERE name = 'min' ORDER BY 1),
          ARRAY['createdAt','dataSnapshotHash','decidedAt','decision','id','kind','merchantId','note',
                'object','requester','resourceId','resourceType','reviewer'],
          'api_submit returns exactly the approval object''s fields (camelCase)');
SELECT is((SELECT body - 'id' - 'createdAt' FROM t06_out WHERE name = 'min'),
          '{"object":"approval","merchantId":"t06_m","resourceType":"invoice","resourceId":"inv-0042",
            "kind":"data_review","decision":"pending","requester":"postgres",
            "dataSnapshotHash":"sha256:abc","reviewer":null,"note":null,"decidedAt":null}'::jsonb,
          'api_submit: object approval, defaults kind data_review, decision pending, JSON nulls for reviewer, note, decidedAt');
SELECT is((SELECT jsonb_typeof(body -> 'id') || ' ' || jsonb_typeof(body -> 'createdAt') FROM t06_out WHERE name = 'min'),
          'string string', 'api_submit: id and createdAt are strings');
SELECT is((SELECT row(c.tenant, c.resource_type, c.resource_id, c.snapshot_hash, c.kind, c.status, c.requester)::text
             FROM t06_out o JOIN approvals.claims c ON c.id = o.body ->> 'id' WHERE o.name = 'min'),
          '(t06_m,invoice,inv-0042,sha256:abc,data_review,pending,postgres)',
          'api_submit: id is the stored claim; merchantId -> tenant, resourceType, resourceId, dataSnapshotHash mapped');
SELECT matches((SELECT body ->> 'createdAt' FROM t06_out WHERE name = 'min'),
               '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', 'api_submit: createdAt looks like 2023-11-07T05:31:56Z');
SELECT is((SELECT o.body ->> 'createdAt' FROM t06_out o WHERE o.name = 'min'),
          (SELECT pg_temp.utc(c.created_at) FROM t06_out o JOIN approvals.claims c ON c.id = o.body ->> 'id' WHERE o.name = 'min'),
          'api_submit: createdAt is the claim''s created_at in UTC (session time zone America/New_York)');

SELECT lives_ok($$INSERT INTO t06_out SELECT 'full', approvals.api_submit('{"merchantId":"t06_m","resourceType":"order","resourceId":"ord-7",
                 "dataSnapshotHash":"h7","kind":"financial_review","note":"Q3 order","actorId":"usr_platform_user",
                 "somethingElse":true}')$$,
                'api_submit with every key (and an unknown one)');
SELECT is((SELECT body - 'id' - 'createdAt' FROM t06_out WHERE name = 'full'),
          '{"object":"approval","merchantId":"t06_m","resourceType":"order","resourceId":"ord-7",
            "kind":"financial_review","decision":"pending","requester":"usr_platform_user",
            "dataSnapshotHash":"h7","reviewer":null,"note":"Q3 order","decidedAt":null}'::jsonb,
          'api_submit with kind, note and actorId (platform caller): actorId becomes the requester');

-- as a requester role (no platform): the requester is the role, tenant must be granted
SET ROLE t06_req;
SELECT throws_ok($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceType":"invoice","resourceId":"inv-r1","dataSnapshotHash":"h"}')$$,
                 '42501', NULL, 'api_submit into a merchant not granted to the caller is 42501');
RESET ROLE;
SELECT lives_ok($$SELECT approvals.grant_tenant('t06_m', 't06_req')$$, 'grant merchant t06_m to t06_req');
SET ROLE t06_req;
SELECT is(pg_temp.q($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceType":"invoice","resourceId":"inv-r1","dataSnapshotHash":"h"}') ->> 'requester'$$),
          't06_req', 'api_submit by a requester role: requester is the role');
SELECT is(pg_temp.q($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceType":"invoice","resourceId":"inv-r2","dataSnapshotHash":"h","actorId":"t06_req"}') ->> 'requester'$$),
          't06_req', 'api_submit by a requester role naming itself as actorId');
RESET ROLE;

-- errors
SELECT throws_ok($$SELECT approvals.api_submit('{"resourceType":"invoice","resourceId":"e-1","dataSnapshotHash":"h"}')$$,
                 '22004', NULL, 'api_submit without merchantId is 22004');
SELECT throws_ok($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceId":"e-2","dataSnapshotHash":"h"}')$$,
                 '22004', NULL, 'api_submit without resourceType is 22004');
SELECT throws_ok($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceType":"invoice","dataSnapshotHash":"h"}')$$,
                 '22004', NULL, 'api_submit without resourceId is 22004');
SELECT throws_ok($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceType":"invoice","resourceId":"e-4"}')$$,
                 '22004', NULL, 'api_submit without dataSnapshotHash is 22004');
SELECT throws_ok($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceType":"invoice","resourceId":null,"dataSnapshotHash":"h"}')$$,
                 '22004', NULL, 'api_submit with resourceId null is 22004');
SELECT throws_ok($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceType":"invoice","resourceId":"","dataSnapshotHash":"h"}')$$,
                 '22023', NULL, 'api_submit with an empty resourceId is 22023');
-- The seed's enums and string members are checked (unknown keys are ignored)
SELECT is(approvals.json_string('{"k":"v"}', 'k', true, ARRAY['v', 'w']), 'v', 'json_string returns an allowed string member');
SELECT is(approvals.json_string('{"k":null}', 'k'), NULL, 'json_string: an absent or null optional member is NULL');
SELECT throws_ok($$SELECT approvals.json_string('{}', 'k', true)$$, '22004', 'request body needs "k"', 'json_string: a missing required member is 22004');
SELECT throws_ok($$SELECT approvals.json_string('{"k":1}', 'k')$$, '22023', '"k" must be a JSON string', 'json_string: a member that is not a string is 22023');
SELECT throws_ok($$SELECT approvals.json_string('{"k":"x"}', 'k', false, ARRAY['v'])$$, '22023', 'invalid "k" "x"', 'json_string: a value not allowed is 22023');
SELECT throws_ok($$SELECT approvals.json_string('{"k":"v"}', 'k', NULL)$$, '22004', 'required must not be null', 'json_string: a NULL required flag is 22004');
SELECT throws_ok($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceType":"invoice","resourceId":"e-k","dataSnapshotHash":"h","kind":"bogus"}')$$,
                 '22023', 'invalid "kind" "bogus"', 'api_submit with a kind the seed does not define is 22023');
SELECT throws_ok($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceType":"payout","resourceId":"e-t","dataSnapshotHash":"h"}')$$,
                 '22023', 'invalid "resourceType" "payout"', 'api_submit with a resourceType other than order or invoice is 22023');
SELECT throws_ok($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceType":"invoice","resourceId":"e-n","dataSnapshotHash":"h","note":{"a":1}}')$$,
                 '22023', '"note" must be a JSON string', 'api_submit with a note that is not a string is 22023');
SELECT throws_ok($$SELECT approvals.api_submit('{"merchantId":"t06_m","resourceType":"invoice","resourceId":7,"dataSnapshotHash":"h"}')$$,
                 '22023', '"resourceId" must be a JSON string', 'api_submit with a numeric resourceId is 22023');
SELECT is(approvals.api_submit('{"merchantId":"t06_m","resourceType":"order","resourceId":"ok-u","dataSnapshotHash":"h","kind":"push","colour":"red"}') ->> 'kind',
          'push', 'api_submit takes kind push and ignores an unknown key');
SELECT throws_ok(format($$SELECT approvals.api_submit(%L)$$,
                        jsonb_build_object('merchantId', 't06_m', 'resourceType', 'invoice', 'resourceId', 'e-7',
                                           'dataSnapshotHash', 'h', 'note', repeat('n', 2001))),
                 '22001', 'note is 2001 characters; the limit is 2000', 'api_submit with a note of 2001 characters is 22001');
SELECT throws_ok(format($$SELECT approvals.api_submit(%L)$$,
                        jsonb_build_object('merchantId', 't06_m', 'resourceType', 'invoice', 'resourceId', repeat('r', 256),
                                           'dataSnapshotHash', 'h')),
                 '22001', NULL, 'api_submit with a resourceId of 256 characters is 22001');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE resource_id LIKE 'e-%' OR length(resource_id) > 255), 0,
          'the refused api_submit calls stored nothing');

-- ---------------------------------------------------------------------------
-- api_respond
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.submit('invoice', r, 'h-' || r, id => 'tap06_' || r, actor => 'usr_req')
                    FROM unnest(ARRAY['r1','r2','r3','r4','r5']) r$$,
                'fixture: five pending claims');
SET ROLE t06_rev;
SELECT lives_ok($$INSERT INTO t06_out SELECT 'respond', approvals.api_respond('tap06_r1',
    '{"outcome":"approved","data":{"comment":"Vendor terms checked — proceed with payment."},"targetUserId":"usr_mgr_jane","priority":"high"}')$$,
    'a reviewer responds with the seed''s example body');
RESET ROLE;
SELECT is(ARRAY(SELECT jsonb_object_keys(body) FROM t06_out WHERE name = 'respond' ORDER BY 1),
          ARRAY['data','interactionId','outcome','respondedBy','timestamp'],
          'api_respond returns exactly interactionId, respondedBy, outcome, data, timestamp');
SELECT is((SELECT body - 'timestamp' FROM t06_out WHERE name = 'respond'),
          '{"interactionId":"tap06_r1","respondedBy":"t06_rev","outcome":"approved",
            "data":{"comment":"Vendor terms checked — proceed with payment."}}'::jsonb,
          'api_respond: interactionId is the claim id, respondedBy the caller, data.comment echoed, unknown keys ignored');
SELECT matches((SELECT body ->> 'timestamp' FROM t06_out WHERE name = 'respond'),
               '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', 'api_respond: timestamp looks like 2026-05-25T10:37:51Z');
SELECT is((SELECT o.body ->> 'timestamp' FROM t06_out o WHERE o.name = 'respond'),
          (SELECT pg_temp.utc(max(e.at)) FROM approvals.events e WHERE e.claim_id = 'tap06_r1'),
          'api_respond: timestamp is the time of the recorded response, in UTC');
SELECT is((SELECT row(c.status, c.reviewer, e.comment)::text FROM approvals.claims c
             JOIN approvals.events e ON e.claim_id = c.id AND e.action = 'approved' WHERE c.id = 'tap06_r1'),
          '(approved,t06_rev,"Vendor terms checked — proceed with payment.")',
          'api_respond: the claim is approved by the caller and the comment is in the event');

SELECT is(pg_temp.q($$SELECT approvals.api_respond('tap06_r2', '{"outcome":"abstained","data":{"comment":"not my area"}}', actor => 'usr_mgr_jane') - 'timestamp'$$),
          '{"data": {"comment": "not my area"}, "outcome": "abstained", "respondedBy": "usr_mgr_jane", "interactionId": "tap06_r2"}',
          'api_respond abstained with an actor (platform caller): respondedBy is the actor');
SELECT is((SELECT status FROM approvals.claims WHERE id = 'tap06_r2'),
          'pending', 'api_respond abstained: the claim stays pending');
SELECT is(pg_temp.q($$SELECT (approvals.api_respond('tap06_r3', '{"outcome":"rejected"}', actor => 'usr_mgr_jane') -> 'data')::text$$),
          '{}', 'api_respond without data: data is an empty object');
SELECT is((SELECT status FROM approvals.claims WHERE id = 'tap06_r3'), 'rejected', 'api_respond rejected: the claim is rejected');

SET ROLE t06_rev;
SELECT throws_ok($$SELECT approvals.api_respond('tap06_r4', '{"outcome":"maybe"}')$$, '22023', NULL,
                 'api_respond with outcome maybe is 22023');
SELECT throws_ok($$SELECT approvals.api_respond('tap06_r4', '{"data":{"comment":"x"}}')$$, '22004', NULL,
                 'api_respond without outcome is 22004');
SELECT throws_ok(format($$SELECT approvals.api_respond('tap06_r4', %L)$$,
                        jsonb_build_object('outcome', 'approved', 'data', jsonb_build_object('comment', repeat('c', 2001)))),
                 '22001', 'comment is 2001 characters; the limit is 2000', 'api_respond with a comment of 2001 characters is 22001');
SELECT is(pg_temp.q(format($$SELECT approvals.api_respond('tap06_r5', %L) #>> '{data,comment}'$$,
                           jsonb_build_object('outcome', 'approved', 'data', jsonb_build_object('comment', repeat('c', 2000))))),
          repeat('c', 2000), 'api_respond with a comment of 2000 characters works');
SELECT throws_ok($$SELECT approvals.api_respond('tap06_nope', '{"outcome":"approved"}')$$, 'P0002', NULL,
                 'api_respond on an unknown claim is P0002');
SELECT throws_ok($$SELECT approvals.api_respond('tap06_r1', '{"outcome":"rejected"}')$$, '55000', NULL,
                 'api_respond on a decided claim is 55000');
SELECT throws_ok($$SELECT approvals.api_respond('tap06_r4', '{"outcome":"approved"}', actor => 'usr_other')$$, '42501', NULL,
                 'api_respond by a non-platform reviewer naming another actor is 42501');
SET ROLE t06_req;
SELECT throws_ok($$SELECT approvals.api_respond('tap06_r4', '{"outcome":"approved"}')$$, '42501', NULL,
                 'api_respond by a requester (not reviewer) is 42501');
RESET ROLE;
SELECT is((SELECT row(status, approval_count, reviewer)::text FROM approvals.claims WHERE id = 'tap06_r4'),
          '(pending,0,)', 'the refused api_respond calls left the claim unchanged');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id = 'tap06_r4'), 1,
          'the refused api_respond calls appended no event');

SELECT * FROM finish();
ROLLBACK;
