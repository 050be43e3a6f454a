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
