-- approvals 0.1.0 -> 0.2.0 (ALTER EXTENSION approvals UPDATE)
--
-- Every change to the SQL objects between 0.1.0 and 0.2.0, in the order of
-- sql/approvals--0.2.0.sql.  test/shell/70_upgrade.sh checks that the catalog
-- after this script equals a fresh install of 0.2.0.
\echo Use "ALTER EXTENSION approvals UPDATE TO '0.2.0'" to load this file. \quit

-- Every object is commented (the catalogue of the API)
COMMENT ON SCHEMA approvals IS
    'Approval workflows and bulk approval batches (extension approvals)';
COMMENT ON INDEX approvals.claims_one_pending_per_resource IS
    'One pending claim per (tenant, resource_type, resource_id): submit supersedes on it';
COMMENT ON INDEX approvals.claims_pending_expiry IS
    'The pending claims that can expire, by deadline (expire_due)';
COMMENT ON INDEX approvals.claims_resource IS
    'A resource''s claims, pending or not';
COMMENT ON SEQUENCE approvals.events_id_seq IS
    'Event ids: the order of the audit log';
COMMENT ON INDEX approvals.events_claim IS
    'A claim''s events in order';
COMMENT ON INDEX approvals.events_batch IS
    'The events of a batch (revert, results)';
COMMENT ON SEQUENCE approvals.policies_id_seq IS
    'Policy ids';
COMMENT ON INDEX approvals.batches_queue IS
    'Batches that can be taken, oldest first (the queue)';
COMMENT ON INDEX approvals.batches_created IS
    'Batches newest first (list_batches)';
COMMENT ON FUNCTION approvals.events_append_only() IS
    'Trigger of approvals.events: refuses UPDATE, DELETE and TRUNCATE (39P01 when called directly)';
COMMENT ON TRIGGER events_no_update_delete ON approvals.events IS
    'The audit log is append-only: no UPDATE or DELETE, whoever asks';
COMMENT ON TRIGGER events_no_truncate ON approvals.events IS
    'The audit log is append-only: no TRUNCATE, whoever asks';
COMMENT ON POLICY policies_tenant_isolation ON approvals.policies IS
    'Tenant isolation: a policy of a tenant is visible to roles granted that tenant, platform and admin';
COMMENT ON POLICY claims_tenant_isolation ON approvals.claims IS
    'Tenant isolation: a claim of a tenant is visible to roles granted that tenant, platform and admin';
COMMENT ON POLICY events_tenant_isolation ON approvals.events IS
    'Tenant isolation: an event of a tenant''s claim is visible as the claim is';
COMMENT ON POLICY batches_tenant_isolation ON approvals.batches IS
    'Tenant isolation: a batch of a tenant is visible to roles granted that tenant, platform and admin';
COMMENT ON POLICY batch_items_tenant_isolation ON approvals.batch_items IS
    'Tenant isolation: an item is visible when its batch is';

-- The JSON layer: string members are strings, and the seed's enums are checked
CREATE FUNCTION approvals.json_string(body jsonb, key text, required boolean DEFAULT false,
                                      allowed text[] DEFAULT NULL) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'approvals_json_string';
COMMENT ON FUNCTION approvals.json_string(jsonb, text, boolean, text[]) IS
    'A string member of a JSON request body: NULL when absent (22004 when required), 22023 when not a string or not one of allowed';
REVOKE ALL ON FUNCTION approvals.json_string(jsonb, text, boolean, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION approvals.json_string(jsonb, text, boolean, text[])
      TO approvals_reader, approvals_requester, approvals_reviewer,
         approvals_coordinator, approvals_admin, approvals_platform;
CREATE OR REPLACE FUNCTION approvals.api_submit(body jsonb) RETURNS jsonb
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, approvals, pg_temp
BEGIN ATOMIC
    SELECT approvals.api_approval(approvals.submit(
        resource_type => approvals.json_string(body, 'resourceType', true, ARRAY['order', 'invoice']),
        resource_id   => approvals.json_string(body, 'resourceId', true),
        snapshot_hash => approvals.json_string(body, 'dataSnapshotHash', true),
        tenant        => approvals.json_string(body, 'merchantId', true),
        kind          => coalesce(approvals.json_string(body, 'kind', false,
                                      ARRAY['data_review', 'financial_review', 'push']),
                                  'data_review'),
        note          => approvals.json_string(body, 'note'),
        actor         => approvals.json_string(body, 'actorId')));
END;
CREATE OR REPLACE FUNCTION approvals.api_create_batch(body jsonb) RETURNS jsonb
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, approvals, pg_temp
BEGIN ATOMIC
    SELECT pg_catalog.jsonb_build_object(
        'batch_id', b.id, 'coordinator_id', b.coordinator, 'status', b.status,
        'total_claims', b.total_claims, 'created_at', approvals.json_ts(b.created_at))
    FROM approvals.create_batch(
        claim_ids   => approvals.json_text_array(body, 'claim_ids', true),
        coordinator => approvals.json_string(body, 'coordinator_id'),
        comment     => approvals.json_string(body, 'comment')) AS b;
END;
CREATE OR REPLACE FUNCTION approvals.api_update_batch(batch_id text, body jsonb) RETURNS jsonb
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, approvals, pg_temp
BEGIN ATOMIC
    SELECT pg_catalog.jsonb_build_object(
        'batch_id', b.id, 'status', b.status, 'total_claims', b.total_claims,
        'updated_at', approvals.json_ts(b.updated_at))
    FROM approvals.update_batch(
        api_update_batch.batch_id,
        claim_ids     => approvals.json_text_array(body, 'claim_ids', false),
        add_claim_ids => approvals.json_text_array(body, 'add_claim_ids', false),
        comment       => approvals.json_string(body, 'comment')) AS b;
END;

-- Roles read as names, not OIDs (tenant_grants.member, batches.created_by are regrole).
ALTER TABLE approvals.tenant_grants ALTER COLUMN member TYPE regrole;
-- The functions that take the batch row type must go while its column changes type.
DROP FUNCTION approvals.api_get_batch(text);
DROP FUNCTION approvals.api_list_batches(integer, integer);
DROP FUNCTION approvals.api_batch_summary(approvals.batches);
ALTER TABLE approvals.batches ALTER COLUMN created_by TYPE regrole;
CREATE FUNCTION approvals.api_batch_summary(b approvals.batches) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, approvals, pg_temp
    RETURN pg_catalog.jsonb_build_object(
        'batch_id', b.id, 'coordinator_id', b.coordinator, 'status', b.status,
        'total_claims', b.total_claims, 'approved_count', b.approved_count,
        'rejected_count', b.rejected_count + b.failed_count,
        'created_at', approvals.json_ts(b.created_at),
        'completed_at', approvals.json_ts(b.completed_at));
COMMENT ON FUNCTION approvals.api_batch_summary(approvals.batches) IS
    'A batch as the bulk approval processor lists it (failed items count as rejected there)';

CREATE FUNCTION approvals.api_list_batches(page integer DEFAULT 1, "limit" integer DEFAULT 20)
RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, approvals, pg_temp
BEGIN ATOMIC
    SELECT pg_catalog.jsonb_build_object(
        'data', coalesce((SELECT pg_catalog.jsonb_agg(approvals.api_batch_summary(b))
                          FROM approvals.list_batches(NULL, NULL, page, "limit") AS b), '[]'::jsonb),
        'pagination', pg_catalog.jsonb_build_object(
            'page', page, 'limit', "limit",
            'total', (SELECT pg_catalog.count(*) FROM approvals.batches)));
END;
COMMENT ON FUNCTION approvals.api_list_batches(integer, integer) IS
    'GET /approval-batches: {data: [...], pagination: {page, limit, total}}';

CREATE FUNCTION approvals.api_get_batch(batch_id text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, approvals, pg_temp
BEGIN ATOMIC
    SELECT approvals.api_batch_summary(b)
        || pg_catalog.jsonb_build_object('results', coalesce((
            SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                       'claim_id', r.claim_id,
                       'decision', CASE r.decision WHEN 'failed' THEN 'rejected' ELSE r.decision END,
                       'error', r.error))
                   || pg_catalog.jsonb_build_object('processed_at', approvals.json_ts(r.processed_at))
                   ORDER BY r.ord)
            FROM approvals.batch_results(b.id) WITH ORDINALITY AS r(claim_id, decision, error, processed_at, ord)),
            '[]'::jsonb))
    FROM approvals.get_batch(api_get_batch.batch_id) AS b;
END;
COMMENT ON FUNCTION approvals.api_get_batch(text) IS
    'GET /approval-batches/:id: the batch with per-claim results (failed items appear as rejected with an error)';

REVOKE ALL ON FUNCTION approvals.api_batch_summary(approvals.batches),
      approvals.api_list_batches(integer, integer), approvals.api_get_batch(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION approvals.api_batch_summary(approvals.batches),
      approvals.api_list_batches(integer, integer), approvals.api_get_batch(text)
      TO approvals_reader;

-- Notifications a committed transaction handed to the scheduler, which sends
-- them (NOTIFY approvals) in id order and deletes them: NOTIFY itself would
-- serialize the commits of every deciding transaction.
CREATE TABLE approvals.outbox (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload   text NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE approvals.outbox IS
    'Notifications waiting for the scheduler to send them (NOTIFY approvals), oldest id first';
REVOKE ALL ON approvals.outbox FROM PUBLIC;

-- Room on every page of batch_items for its items' results (HOT updates); applies to pages
-- written from now on.
ALTER TABLE approvals.batch_items SET (fillfactor = 50);
