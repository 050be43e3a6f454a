-- 02_claim_submit: approvals.submit — happy paths, every argument limit at the
-- boundary, NULL / empty / enum / range errors, explicit ids, supersede on
-- resubmit and idempotency keys.
BEGIN;
SELECT plan(105);

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
-- The event trail of a claim: 'action(from>to) ...' in log order.
CREATE FUNCTION pg_temp.ev(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(action || '(' || coalesce(from_status, '') || '>'
                               || coalesce(to_status, '') || ')', ' ' ORDER BY id), '')
      FROM approvals.events WHERE claim_id = cid
$f$;

CREATE ROLE t02_req  IN ROLE approvals_requester;
CREATE ROLE t02_req2 IN ROLE approvals_requester;

-- ---------------------------------------------------------------------------
-- Happy paths
-- ---------------------------------------------------------------------------
SET ROLE t02_req;
SELECT is(pg_temp.q($$SELECT row(id, status, requester)::text
                        FROM approvals.submit('t02_inv', 'inv-1', 'hash-1', id => 'tap02_min')$$),
          '(tap02_min,pending,t02_req)',
          'submit with the three required arguments returns the new pending claim');
SELECT lives_ok($$SELECT approvals.submit('t02_inv', 'inv-default', 'hash-d')$$,
                'submit without an id');
RESET ROLE;

SELECT matches((SELECT id FROM approvals.claims WHERE resource_type = 't02_inv' AND resource_id = 'inv-default'),
               '^clm_[0-9a-f]{16}$', 'the default id is clm_ + 16 lowercase hex characters');
SELECT is(
    (SELECT row(tenant, resource_type, resource_id, snapshot_hash, kind, status, requester,
                reviewer, note, priority, required_approvals, approval_count, approvers,
                assignee, amount, currency, title, context, fields, decided_at, expires_at,
                batch_id)::text
       FROM approvals.claims WHERE id = 'tap02_min'),
    '(,t02_inv,inv-1,hash-1,data_review,pending,t02_req,,,normal,1,0,,,,,,,,,,)',
    'the stored claim has the documented defaults (kind data_review, priority normal, 1 approval needed)');
SELECT ok((SELECT created_at IS NOT NULL AND created_at <= clock_timestamp()
             FROM approvals.claims WHERE id = 'tap02_min'),
          'created_at is set');
SELECT is(
    (SELECT string_agg(row(action, from_status, to_status, actor, snapshot_hash, tenant,
                           comment)::text, ' ' ORDER BY id)
       FROM approvals.events WHERE claim_id = 'tap02_min'),
    '(submitted,,pending,t02_req,hash-1,,)',
    'one submitted event (NULL -> pending) by the requester, with the snapshot hash');

SELECT is(
    pg_temp.q($$SELECT row(tenant, kind, note, requester, amount, currency, title, context,
                           fields, approvers, required_approvals, priority,
                           expires_at = now() + interval '1 day', assignee, idempotency_key)::text
                 FROM approvals.submit(
                   resource_type => 't02_inv', resource_id => 'inv-full', snapshot_hash => 'h-full',
                   tenant => 't02_m1', kind => 'financial_review', note => 'please check',
                   actor => 'usr_alice', id => 'tap02_full', amount => 14200.00, currency => 'USD',
                   title => 'Approve Invoice INV-2026-0042', context => 'Invoice from Acme Supplies Ltd',
                   fields => '[{"key":"vendor","label":"Vendor","value":"Acme Supplies Ltd"}]',
                   approvers => ARRAY['usr_mgr_jane','usr_cfo'], required_approvals => 2,
                   priority => 'high', expires_at => now() + interval '1 day',
                   idempotency_key => 'idem-full')$$),
    '(t02_m1,financial_review,"please check",usr_alice,14200.00,USD,"Approve Invoice INV-2026-0042",'
    '"Invoice from Acme Supplies Ltd","[{""key"": ""vendor"", ""label"": ""Vendor"", ""value"": ""Acme Supplies Ltd""}]",'
    '"{usr_mgr_jane,usr_cfo}",2,high,t,usr_mgr_jane,idem-full)',
    'submit with every argument stores each of them; the assignee is the first approver');
SELECT is((SELECT row(approval_count, route_position, status)::text FROM approvals.claims WHERE id = 'tap02_full'),
          '(0,1,pending)', 'a routed claim starts at route position 1 with no approvals');

SET ROLE t02_req;
SELECT lives_ok($$SELECT approvals.submit('t02_inv', 'inv-self', 'h', id => 'tap02_self', actor => 't02_req')$$,
                'a non-platform caller may pass its own name as actor');
SELECT throws_ok($$SELECT approvals.submit('t02_inv', 'inv-mallory', 'h', id => 'tap02_mallory', actor => 't02_mallory')$$,
                 '42501', NULL, 'a non-platform caller passing another actor is 42501');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id = 'tap02_mallory' OR resource_id = 'inv-mallory'),
          0, 'nothing is stored after the refused actor override');

-- ---------------------------------------------------------------------------
-- Length limits: exactly at the limit passes, one over is 22001 naming the
-- argument and the limit, and nothing is stored.  The over-limit call reuses
-- the at-limit claim's resource, so a stored call would also supersede it.
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.q($$SELECT length(resource_id) FROM approvals.submit('t02_lim', repeat('r', 255), 'h', id => 'tap02_l_rid')$$),
          '255', 'resource_id of 255 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', repeat('r', 256), 'h', id => 'tap02_o_rid')$$,
                 '22001', 'resource_id is 256 characters; the limit is 255', 'resource_id of 256 characters is 22001');

SELECT is(pg_temp.q($$SELECT length(snapshot_hash) FROM approvals.submit('t02_lim', 'lim-hash', repeat('h', 128), id => 'tap02_l_hash')$$),
          '128', 'snapshot_hash of 128 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-hash', repeat('h', 129), id => 'tap02_o_hash')$$,
                 '22001', 'snapshot_hash is 129 characters; the limit is 128', 'snapshot_hash of 129 characters is 22001');

SELECT is(pg_temp.q($$SELECT length(note) FROM approvals.submit('t02_lim', 'lim-note', 'h', note => repeat('n', 2000), id => 'tap02_l_note')$$),
          '2000', 'note of 2000 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-note', 'h', note => repeat('n', 2013), id => 'tap02_o_note')$$,
                 '22001', 'note is 2013 characters; the limit is 2000', 'note of 2013 characters is 22001 (the API.md example message)');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-note', 'h', note => repeat('n', 2001), id => 'tap02_o_note')$$,
                 '22001', 'note is 2001 characters; the limit is 2000', 'note of 2001 characters is 22001');
SELECT CASE WHEN getdatabaseencoding() = 'UTF8'
       THEN is(pg_temp.q($$SELECT length(note) FROM approvals.submit('t02_lim', 'lim-note-mb', 'h', note => repeat(chr(233), 2000), id => 'tap02_l_notemb')$$),
               '2000', 'the limit counts characters, not bytes: 2000 two-byte characters are accepted')
       ELSE skip('database encoding is not UTF8', 1) END;

SELECT is(pg_temp.q($$SELECT length(requester) FROM approvals.submit('t02_lim', 'lim-actor', 'h', actor => repeat('a', 128), id => 'tap02_l_actor')$$),
          '128', 'actor of 128 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-actor', 'h', actor => repeat('a', 129), id => 'tap02_o_actor')$$,
                 '22001', 'actor is 129 characters; the limit is 128', 'actor of 129 characters is 22001');

SELECT is(pg_temp.q($$SELECT length(context) FROM approvals.submit('t02_lim', 'lim-context', 'h', context => repeat('c', 1000), id => 'tap02_l_context')$$),
          '1000', 'context of 1000 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-context', 'h', context => repeat('c', 1001), id => 'tap02_o_context')$$,
                 '22001', 'context is 1001 characters; the limit is 1000', 'context of 1001 characters is 22001');

SELECT is(pg_temp.q($$SELECT length(idempotency_key) FROM approvals.submit('t02_lim', 'lim-idem', 'h', idempotency_key => repeat('k', 255), id => 'tap02_l_idem')$$),
          '255', 'idempotency_key of 255 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-idem', 'h', idempotency_key => repeat('k', 256), id => 'tap02_o_idem')$$,
                 '22001', 'idempotency_key is 256 characters; the limit is 255', 'idempotency_key of 256 characters is 22001');

SELECT is(pg_temp.q($$SELECT length(tenant) FROM approvals.submit('t02_lim', 'lim-tenant', 'h', tenant => repeat('t', 128), id => 'tap02_l_tenant')$$),
          '128', 'tenant of 128 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-tenant', 'h', tenant => repeat('t', 129), id => 'tap02_o_tenant')$$,
                 '22001', 'tenant is 129 characters; the limit is 128', 'tenant of 129 characters is 22001');

SELECT is(pg_temp.q($$SELECT length(resource_type) FROM approvals.submit(repeat('x', 64), 'lim-rtype', 'h', id => 'tap02_l_rtype')$$),
          '64', 'resource_type of 64 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit(repeat('x', 65), 'lim-rtype', 'h', id => 'tap02_o_rtype')$$,
                 '22001', 'resource_type is 65 characters; the limit is 64', 'resource_type of 65 characters is 22001');

SELECT is(pg_temp.q($$SELECT length(kind) FROM approvals.submit('t02_lim', 'lim-kind', 'h', kind => repeat('k', 64), id => 'tap02_l_kind')$$),
          '64', 'kind of 64 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-kind', 'h', kind => repeat('k', 65), id => 'tap02_o_kind')$$,
                 '22001', 'kind is 65 characters; the limit is 64', 'kind of 65 characters is 22001');

SELECT is(pg_temp.q($$SELECT length(title) FROM approvals.submit('t02_lim', 'lim-title', 'h', title => repeat('t', 255), id => 'tap02_l_title')$$),
          '255', 'title of 255 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-title', 'h', title => repeat('t', 256), id => 'tap02_o_title')$$,
                 '22001', 'title is 256 characters; the limit is 255', 'title of 256 characters is 22001');

SELECT is(pg_temp.q($$SELECT length(currency) FROM approvals.submit('t02_lim', 'lim-currency', 'h', currency => repeat('C', 16), id => 'tap02_l_currency')$$),
          '16', 'currency of 16 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-currency', 'h', currency => repeat('C', 17), id => 'tap02_o_currency')$$,
                 '22001', 'currency is 17 characters; the limit is 16', 'currency of 17 characters is 22001');

SELECT is(pg_temp.q($$SELECT length(id) FROM approvals.submit('t02_lim', 'lim-id', 'h', id => 'tap02_l_' || repeat('i', 56))$$),
          '64', 'id of 64 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-id', 'h', id => 'tap02_o_' || repeat('i', 57))$$,
                 '22001', 'id is 65 characters; the limit is 64', 'id of 65 characters is 22001');

SELECT is(pg_temp.q($$SELECT length(approvers[1]) FROM approvals.submit('t02_lim', 'lim-approver', 'h', approvers => ARRAY[repeat('a', 128)], id => 'tap02_l_approver')$$),
          '128', 'an approver of 128 characters is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_lim', 'lim-approver', 'h', approvers => ARRAY['usr_ok', repeat('a', 129)], id => 'tap02_o_approver')$$,
                 '22001', NULL, 'an approver of 129 characters is 22001');

SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id LIKE 'tap02_o_%'), 0,
          'no claim was stored by an over-limit call');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id LIKE 'tap02_o_%'), 0,
          'no event was stored by an over-limit call');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id LIKE 'tap02_l_%' AND status = 'pending'),
          CASE WHEN getdatabaseencoding() = 'UTF8' THEN 14 ELSE 13 END,
          'every at-limit claim is still pending (the failed calls superseded nothing)');
SELECT is((SELECT string_agg(DISTINCT action, ',') FROM approvals.events WHERE claim_id LIKE 'tap02_l_%'),
          'submitted', 'the at-limit claims have only their submitted events');

-- ---------------------------------------------------------------------------
-- NULL and empty required arguments
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT approvals.submit(NULL, 'req-null', 'h', id => 'tap02_e1')$$, '22004', NULL,
                 'resource_type NULL is 22004');
SELECT throws_ok($$SELECT approvals.submit('t02_req', NULL, 'h', id => 'tap02_e2')$$, '22004', NULL,
                 'resource_id NULL is 22004');
SELECT throws_ok($$SELECT approvals.submit('t02_req', 'req-null', NULL, id => 'tap02_e3')$$, '22004', NULL,
                 'snapshot_hash NULL is 22004');
SELECT throws_ok($$SELECT approvals.submit('', 'req-empty', 'h', id => 'tap02_e4')$$, '22023', NULL,
                 'resource_type empty is 22023');
SELECT throws_ok($$SELECT approvals.submit('t02_req', '', 'h', id => 'tap02_e5')$$, '22023', NULL,
                 'resource_id empty is 22023');
SELECT throws_ok($$SELECT approvals.submit('t02_req', 'req-empty', '', id => 'tap02_e6')$$, '22023', NULL,
                 'snapshot_hash empty is 22023');

-- ---------------------------------------------------------------------------
-- fields: a JSON array of at most 20 objects with string key, label, value
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.q($$SELECT jsonb_array_length(fields) FROM approvals.submit('t02_fields', 'f-20', 'h', id => 'tap02_f20',
                 fields => (SELECT jsonb_agg(jsonb_build_object('key', 'k' || i, 'label', 'L' || i, 'value', 'v' || i))
                              FROM generate_series(1, 20) i))$$),
          '20', '20 fields are accepted and stored');
SELECT throws_ok($$SELECT approvals.submit('t02_fields', 'f-21', 'h', id => 'tap02_e_f21',
                 fields => (SELECT jsonb_agg(jsonb_build_object('key', 'k' || i, 'label', 'L' || i, 'value', 'v' || i))
                              FROM generate_series(1, 21) i))$$,
                 '22023', NULL, '21 fields is 22023');
SELECT throws_ok($$SELECT approvals.submit('t02_fields', 'f-obj', 'h', id => 'tap02_e_fobj',
                 fields => '{"key":"a","label":"A","value":"1"}')$$,
                 '22023', NULL, 'fields that is an object, not an array, is 22023');
SELECT throws_ok($$SELECT approvals.submit('t02_fields', 'f-nolabel', 'h', id => 'tap02_e_fnolabel',
                 fields => '[{"key":"a","value":"1"}]')$$,
                 '22023', NULL, 'a field without label is 22023');
SELECT throws_ok($$SELECT approvals.submit('t02_fields', 'f-num', 'h', id => 'tap02_e_fnum',
                 fields => '[{"key":"amount","label":"Amount","value":14200}]')$$,
                 '22023', NULL, 'a field whose value is a number, not a string, is 22023');
SELECT throws_ok($$SELECT approvals.submit('t02_fields', 'f-str', 'h', id => 'tap02_e_fstr',
                 fields => '["vendor"]')$$,
                 '22023', NULL, 'a field that is not an object is 22023');

-- ---------------------------------------------------------------------------
-- priority, required_approvals, amount, approvers, expires_at
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.q($$SELECT string_agg(c.priority, ',' ORDER BY c.id)
                   FROM unnest(ARRAY['low','normal','high','urgent']) p,
                        LATERAL approvals.submit('t02_prio', 'p-' || p, 'h', id => 'tap02_prio_' || p, priority => p) c$$),
          'high,low,normal,urgent', 'priorities low, normal, high and urgent are accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_prio', 'p-bad', 'h', id => 'tap02_e_prio', priority => 'critical')$$,
                 '22023', NULL, 'priority critical is 22023');

SELECT throws_ok($$SELECT approvals.submit('t02_ra', 'ra-0', 'h', id => 'tap02_e_ra0', required_approvals => 0)$$,
                 '22023', NULL, 'required_approvals 0 is 22023');
SELECT is(pg_temp.q($$SELECT required_approvals FROM approvals.submit('t02_ra', 'ra-2of2', 'h', id => 'tap02_ra_2of2',
                 approvers => ARRAY['usr_a','usr_b'], required_approvals => 2)$$),
          '2', 'required_approvals equal to the number of approvers is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_ra', 'ra-3of2', 'h', id => 'tap02_e_ra3of2',
                 approvers => ARRAY['usr_a','usr_b'], required_approvals => 3)$$,
                 '22023', NULL, 'required_approvals above the number of approvers is 22023');
SELECT is(pg_temp.q($$SELECT required_approvals FROM approvals.submit('t02_ra', 'ra-3', 'h', id => 'tap02_ra_3', required_approvals => 3)$$),
          '3', 'required_approvals 3 without an approvers route is accepted');

SELECT is(pg_temp.q($$SELECT amount FROM approvals.submit('t02_amt', 'a-0', 'h', id => 'tap02_amt0', amount => 0)$$),
          '0', 'amount 0 is accepted');
SELECT throws_ok($$SELECT approvals.submit('t02_amt', 'a-neg', 'h', id => 'tap02_e_amt', amount => -0.01)$$,
                 '22023', NULL, 'amount -0.01 is 22023');

SELECT throws_ok($$SELECT approvals.submit('t02_apv', 'ap-null', 'h', id => 'tap02_e_apnull', approvers => ARRAY['usr_a', NULL])$$,
                 '22023', NULL, 'approvers with a NULL element is 22023');
SELECT throws_ok($$SELECT approvals.submit('t02_apv', 'ap-dup', 'h', id => 'tap02_e_apdup', approvers => ARRAY['usr_a', 'usr_b', 'usr_a'])$$,
                 '22023', NULL, 'approvers with a duplicate is 22023');
SELECT throws_ok($$SELECT approvals.submit('t02_apv', 'ap-empty', 'h', id => 'tap02_e_apempty', approvers => ARRAY[]::text[])$$,
                 '22023', NULL, 'an empty approvers array is 22023');

SELECT throws_ok($$SELECT approvals.submit('t02_exp', 'x-past', 'h', id => 'tap02_e_exp', expires_at => now() - interval '1 second')$$,
                 '22023', NULL, 'expires_at in the past is 22023');
SELECT is(pg_temp.q($$SELECT expires_at = now() + interval '1 hour' FROM approvals.submit('t02_exp', 'x-future', 'h', id => 'tap02_future', expires_at => now() + interval '1 hour')$$),
          'true', 'expires_at in the future is accepted and stored');

SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id LIKE 'tap02_e%'), 0,
          'no claim was stored by a refused call');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id LIKE 'tap02_e%'), 0,
          'no event was stored by a refused call');

-- ---------------------------------------------------------------------------
-- Explicit ids
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT approvals.submit('t02_other', 'o-1', 'h', id => 'tap02_min')$$,
                 '22023', NULL, 'submitting with an id that already exists is 22023');
SELECT is((SELECT row(resource_type, resource_id, status)::text FROM approvals.claims WHERE id = 'tap02_min'),
          '(t02_inv,inv-1,pending)', 'the existing claim with that id is unchanged');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE resource_type = 't02_other'), 0,
          'nothing was stored by the duplicate-id call');

-- ---------------------------------------------------------------------------
-- Supersede: one pending claim per (tenant, resource_type, resource_id)
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.submit('t02_doc', 'd-1', 'h1', id => 'tap02_s1', actor => 'usr_alice')$$,
                'supersede: first submission of d-1');
SELECT is(pg_temp.q($$SELECT status FROM approvals.submit('t02_doc', 'd-1', 'h2', id => 'tap02_s2', actor => 'usr_bob')$$),
          'pending', 'supersede: second submission of d-1 is pending');
SELECT is((SELECT status FROM approvals.claims WHERE id = 'tap02_s1'), 'cancelled',
          'supersede: the first claim became cancelled');
SELECT is(pg_temp.ev('tap02_s1'), 'submitted(>pending) superseded(pending>cancelled)',
          'supersede: the first claim got a superseded event (pending -> cancelled)');
SELECT is(pg_temp.ev('tap02_s2'), 'submitted(>pending)', 'supersede: the second claim has its submitted event');
SELECT lives_ok($$SELECT approvals.submit('t02_doc', 'd-1', 'h3', id => 'tap02_s3', actor => 'usr_alice', tenant => 't02_m1')$$,
                'supersede: the same resource under a tenant');
SELECT lives_ok($$SELECT approvals.submit('t02_doc2', 'd-1', 'h4', id => 'tap02_s4', actor => 'usr_alice')$$,
                'supersede: the same resource_id under another resource_type');
SELECT is((SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM approvals.claims WHERE resource_id = 'd-1'),
          'tap02_s1:cancelled tap02_s2:pending tap02_s3:pending tap02_s4:pending',
          'supersede: another tenant or resource_type is another resource; exactly one pending claim per resource');

SELECT lives_ok($$SELECT approvals.submit('t02_doc', 'd-5', 'h5', id => 'tap02_s5', actor => 'usr_alice')$$,
                'supersede: d-5 submitted');
SELECT lives_ok($$SELECT approvals.decide('tap02_s5', 'approved', actor => 'usr_rev')$$,
                'supersede: d-5 approved');
SELECT lives_ok($$SELECT approvals.submit('t02_doc', 'd-5', 'h6', id => 'tap02_s6', actor => 'usr_alice')$$,
                'supersede: d-5 submitted again after approval');
SELECT is((SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM approvals.claims WHERE resource_id = 'd-5'),
          'tap02_s5:approved tap02_s6:pending',
          'supersede: a decided claim is not superseded, the new claim is pending');

-- ---------------------------------------------------------------------------
-- Idempotency keys
-- ---------------------------------------------------------------------------
SELECT pg_temp.q($$SELECT id FROM approvals.submit('t02_idem', 'i-1', 'h-i1', actor => 'usr_alice', note => 'n', idempotency_key => 'key-1')$$) AS idem1 \gset
SELECT matches(:'idem1'::text, '^clm_[0-9a-f]{16}$', 'idempotency: the first call creates a claim');
SELECT is(pg_temp.q($$SELECT id FROM approvals.submit('t02_idem', 'i-1', 'h-i1', actor => 'usr_alice', note => 'n', idempotency_key => 'key-1')$$),
          :'idem1'::text, 'idempotency: the repeated call returns the claim the first call created');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE resource_type = 't02_idem'), 1,
          'idempotency: the repeat created no claim');
SELECT is(pg_temp.ev(:'idem1'), 'submitted(>pending)',
          'idempotency: the repeat did not supersede the first claim or add events');
SELECT throws_ok($$SELECT approvals.submit('t02_idem', 'i-1', 'h-other', actor => 'usr_alice', note => 'n', idempotency_key => 'key-1')$$,
                 '22023', NULL, 'idempotency: the same key with different arguments is 22023');
SELECT is((SELECT string_agg(id || ':' || status, ' ') FROM approvals.claims WHERE resource_type = 't02_idem'),
          :'idem1' || ':pending', 'idempotency: the refused call stored nothing and superseded nothing');
SELECT isnt(pg_temp.q($$SELECT id FROM approvals.submit('t02_idem', 'i-2', 'h-i2', actor => 'usr_bob', idempotency_key => 'key-1')$$),
            :'idem1'::text, 'idempotency: another requester using the same key gets its own claim');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE resource_type = 't02_idem' AND requester = 'usr_bob'), 1,
          'idempotency: the other requester''s claim was stored');
SELECT lives_ok(format($$SELECT approvals.decide(%L, 'approved', actor => 'usr_rev')$$, :'idem1'::text),
                'idempotency: the first claim is approved');
SELECT is(pg_temp.q($$SELECT row(id, status)::text FROM approvals.submit('t02_idem', 'i-1', 'h-i1', actor => 'usr_alice', note => 'n', idempotency_key => 'key-1')$$),
          '(' || :'idem1' || ',approved)', 'idempotency: a retry after the decision still returns the first claim, as it is now');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE resource_type = 't02_idem' AND resource_id = 'i-1'), 1,
          'idempotency: the late retry created no new claim');

SET ROLE t02_req2;
SELECT is(pg_temp.q($$SELECT requester FROM approvals.submit('t02_idem', 'i-3', 'h', idempotency_key => 'key-r')$$),
          't02_req2', 'idempotency: a requester role submits with a key');
SELECT is(pg_temp.q($$SELECT count(*) FROM approvals.claims WHERE resource_type = 't02_idem' AND resource_id = 'i-3'$$),
          '1', 'idempotency: visible to its requester');
SELECT is(pg_temp.q($$SELECT (approvals.submit('t02_idem', 'i-3', 'h', idempotency_key => 'key-r')).id
                       = (SELECT id FROM approvals.claims WHERE resource_type = 't02_idem' AND resource_id = 'i-3')$$),
          'true', 'idempotency: the requester role''s retry returns the same claim');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE resource_type = 't02_idem' AND resource_id = 'i-3'), 1,
          'idempotency: still one claim for i-3');

-- Routing keys: generated ids carry the first byte of SHA-256 of the tenant (the empty string
-- for NULL) as their first two hex digits; a batch's tracking_id as its first byte.
CREATE FUNCTION pg_temp.tk(t text) RETURNS text LANGUAGE sql AS
    $f$ SELECT encode(substr(sha256(convert_to(coalesce(t, ''), 'UTF8')), 1, 1), 'hex') $f$;
SELECT is(ARRAY(SELECT substr((approvals.submit('t02_key', 'k-' || coalesce(t, 'null'), 'h', tenant => t,
                                                actor => 'usr_req')).id, 5, 2) || '=' || pg_temp.tk(t)
                FROM unnest(ARRAY['acme', 'globex', 'ä-ünïcode', NULL]) t),
          ARRAY(SELECT pg_temp.tk(t) || '=' || pg_temp.tk(t) FROM unnest(ARRAY['acme', 'globex', 'ä-ünïcode', NULL]) t),
          'a claim id carries its tenant''s routing key (acme, globex, a non-ASCII name, NULL)');
SELECT ok((SELECT bool_and(id ~ '^clm_[0-9a-f]{16}$') FROM approvals.claims WHERE resource_type = 't02_key'),
          'routed ids are still clm_ + 16 lowercase hex');
SELECT is((SELECT substr(b.id, 5, 2) || ' ' || left(b.tracking_id::text, 2)
             FROM approvals.create_batch(ARRAY(SELECT id FROM approvals.claims WHERE resource_type = 't02_key' AND tenant = 'acme'),
                                         tenant => 'acme', coordinator => 'usr_coord', start => false) b),
          pg_temp.tk('acme') || ' ' || pg_temp.tk('acme'), 'a batch id and its tracking_id carry the tenant''s key');
SELECT is((SELECT substr(d.id, 5, 2) FROM approvals.delegate('usr_dlg_to', tenant => 'globex', delegator => 'usr_dlg_from') d),
          pg_temp.tk('globex'), 'a delegation id carries its tenant''s key');
SELECT is((SELECT count(DISTINCT substr(id, 7)) FROM (SELECT (approvals.submit('t02_key', 'rnd-' || g, 'h', tenant => 'acme',
                                                                            actor => 'usr_req')).id FROM generate_series(1, 200) g) s),
          200::bigint, 'the 14 random hex digits differ from claim to claim');

SELECT * FROM finish();
ROLLBACK;
