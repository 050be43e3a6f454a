-- 28_batch_item_lists: a batch's items are written once. create_batch and update_batch keep
-- the claim list as lists of at most 1000 ids (approvals.batch_item_lists); the chunk that
-- processes items writes their results as one row (approvals.batch_item_results, arrays) and
-- takes them out of the lists (deletes the lists it finished, cuts the head off the one it
-- stopped in); approvals.batch_items shows one row per item in every state. Here a batch of
-- 2503 items (lists of 1000, 1000, 500 and 3 after update_batch) runs in chunks of 700 and
-- stops after its second chunk (failure threshold, rollback, which rewrites the result rows):
-- the view, batch_results and the counters agree on every item.
BEGIN;
SELECT plan(14);

-- 2503 claims t25_00001 .. t25_02503, requested by usr_req25 except 701 .. 710 (requested by
-- the coordinator: those items fail, "Requester cannot decide own claim").
SELECT is((SELECT count(*)::int FROM (
              SELECT approvals.submit('t25', 'r-' || g, 'h', id => 't25_' || lpad(g::text, 5, '0'),
                                      actor => CASE WHEN g BETWEEN 701 AND 710 THEN 'usr_coord25' ELSE 'usr_req25' END)
                FROM generate_series(1, 2503) g) s),
          2503, 'submitted 2503 claims');
SELECT (approvals.create_batch(ARRAY(SELECT 't25_' || lpad(g::text, 5, '0') FROM generate_series(1, 2500) g),
                              coordinator => 'usr_coord25', start => false,
                              max_failures => 5, on_threshold => 'rollback')).id AS b \gset
SELECT is((SELECT total_claims FROM approvals.update_batch(:'b',
              add_claim_ids => ARRAY['t25_02501', 't25_02502', 't25_02503'])), 2503,
          'update_batch appends three claims');
SELECT is((SELECT string_agg(first_position || '-' || last_position || ':' || cardinality(claim_ids), ' '
                             ORDER BY first_position)
             FROM approvals.batch_item_lists WHERE batch_id = :'b'),
          '1-1000:1000 1001-2000:1000 2001-2500:500 2501-2503:3',
          'the claim list is kept as lists of at most 1000 ids, the appended ones in a list of their own');
SELECT is((SELECT count(*)::int FROM approvals.batch_item_results WHERE batch_id = :'b'), 0,
          'no result row before processing');
SELECT throws_ok(format($$SELECT approvals.update_batch(%L, add_claim_ids => ARRAY['t25_01999'])$$, :'b'), '22023',
                 'claim "t25_01999" is already in batch "' || :'b' || '"',
                 'update_batch finds a duplicate inside a list');

SET LOCAL approvals.chunk_size = 700;
SELECT is((SELECT string_agg(coalesce(decision, '-') || ':' || count, ' ' ORDER BY decision)
             FROM (SELECT decision, count(*) FROM approvals.process_batch(:'b') GROUP BY decision) r),
          'failed:10 reverted:1390 -:1103',
          'two chunks ran (1400 items: 10 failed, the rest decided and reverted by the rollback), 1103 never processed');
SELECT is((SELECT row(status, processed_count, failed_count, reverted_count, next_position)::text
             FROM approvals.batches WHERE id = :'b'),
          '(failed,1400,10,1390,1401)', 'the batch failed after its second chunk');
SELECT is((SELECT string_agg(first_position || '-' || last_position || ':' || claim_ids[1], ' ' ORDER BY first_position)
             FROM approvals.batch_item_lists WHERE batch_id = :'b'),
          '1401-2000:t25_01401 2001-2500:t25_02001 2501-2503:t25_02501',
          'the lists hold the items not processed: the first list is gone, the second lost its head');
SELECT is((SELECT string_agg(first_position || '-' || last_position || ':' || claim_ids[1] || ':'
                             || array_to_string(ARRAY(SELECT DISTINCT d FROM unnest(decisions) d ORDER BY d), '/'),
                             ' ' ORDER BY first_position)
             FROM approvals.batch_item_results WHERE batch_id = :'b'),
          '1-700:t25_00001:reverted 701-1400:t25_00701:failed/reverted',
          'one result row per chunk, its items reverted by the rollback (but the failed ones)');
SELECT is((SELECT row(count(*), count(DISTINCT position), min(position), max(position),
                      count(*) FILTER (WHERE decision IS NULL AND position > 1400),
                      count(*) FILTER (WHERE claim_id <> 't25_' || lpad(position::text, 5, '0')))::text
             FROM approvals.batch_items WHERE batch_id = :'b'),
          '(2503,2503,1,2503,1103,0)',
          'batch_items: every item once, at its position, positions 1401.. not processed');
SELECT is((SELECT count(*)::int FROM approvals.batch_results(:'b') WITH ORDINALITY AS r(claim_id, decision, error, processed_at, n)
            WHERE r.claim_id <> 't25_' || lpad(r.n::text, 5, '0')
               OR (r.decision IS NULL) <> (r.n > 1400)),
          0, 'batch_results: the processed items, then the others, in batch order');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id LIKE 't25\_%' AND status = 'pending'), 2503,
          'every claim is pending again (reverted or never decided)');

-- Lists are no longer than a chunk (a chunk that ends inside a list rewrites its rest).
SET LOCAL approvals.chunk_size = 300;
SELECT (approvals.create_batch(ARRAY(SELECT 't25_' || lpad(g::text, 5, '0') FROM generate_series(1, 700) g),
                               coordinator => 'usr_coord25', start => false)).id AS b300 \gset
SELECT is((SELECT string_agg(first_position || '-' || last_position, ' ' ORDER BY first_position)
             FROM approvals.batch_item_lists WHERE batch_id = :'b300'),
          '1-300 301-600 601-700', 'with approvals.chunk_size 300, create_batch writes lists of 300 ids');

-- A claim list edited to name one claim twice: the chunk refuses it (XX001) rather than decide
-- the claim for one item and record the other as failed.
SELECT (approvals.create_batch(ARRAY['t25_00001', 't25_00002'], coordinator => 'usr_coord25',
                               start => false)).id AS bdup \gset
UPDATE approvals.batch_item_lists SET claim_ids = ARRAY['t25_00001', 't25_00001'] WHERE batch_id = :'bdup';
SELECT throws_ok(format('SELECT count(*) FROM approvals.process_batch(%L)', :'bdup'), 'XX001',
                 format('batch "%s" lists claim "t25_00001" at positions 1 and 2', :'bdup'),
                 'a claim listed twice in one chunk is XX001, nothing decided');

SELECT * FROM finish();
ROLLBACK;
