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
