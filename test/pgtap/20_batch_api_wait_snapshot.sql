-- 20_batch_api_wait_snapshot: wait_batch inside a REPEATABLE READ transaction cannot see a batch
-- change (its snapshot is fixed), so it says so at once (25000) instead of waiting out its
-- timeout and returning a stale status; a batch already finished is still returned.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT plan(3);

CREATE TEMP TABLE b20 AS
    SELECT id FROM approvals.create_batch(ARRAY['tap20_none'], coordinator => 'usr_coord20');
SELECT is((SELECT status FROM approvals.wait_batch((SELECT id FROM b20), '0 seconds')), 'queued',
          'with timeout 0 it returns the batch as it is');
SELECT throws_ok($$SELECT approvals.wait_batch((SELECT id FROM b20), '1 minute')$$, '25000', NULL,
                 'on a batch that is not finished it is 25000 at once, not a minute of waiting');
CREATE TEMP TABLE r20 AS SELECT * FROM approvals.process_batch((SELECT id FROM b20));
SELECT is((SELECT status FROM approvals.wait_batch((SELECT id FROM b20), '1 minute')), 'completed',
          'a finished batch is returned at once');

SELECT * FROM finish();
ROLLBACK;
