-- approvals 0.2.0: the catalogue of the API, in the order of the README: roles,
-- tables (claims, events, policies, handlers, tenants, batches), the audit log,
-- tenant visibility, claims, policies and handlers, the JSON layer, batches,
-- privileges.
-- Declarations only: every decision is made in C (src/); the JSON layer is a
-- thin SQL wrapper over the C functions.

\echo Use "CREATE EXTENSION approvals" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Group roles (created when missing; never dropped with the extension)
-- ---------------------------------------------------------------------------
DO $roles$
DECLARE
    r text;
BEGIN
    -- Roles are cluster-wide: CREATE EXTENSION in two databases at once must not
    -- both create them (the second would fail on a duplicate role name).
    LOCK TABLE pg_catalog.pg_authid, pg_catalog.pg_auth_members IN SHARE ROW EXCLUSIVE MODE;
    FOREACH r IN ARRAY ARRAY['approvals_reader', 'approvals_requester',
                             'approvals_reviewer', 'approvals_coordinator',
                             'approvals_admin', 'approvals_platform']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$roles$;

GRANT approvals_reader TO approvals_requester, approvals_reviewer,
                          approvals_coordinator, approvals_admin;
GRANT approvals_reader, approvals_requester, approvals_reviewer,
      approvals_coordinator TO approvals_platform;

COMMENT ON SCHEMA approvals IS
    'Approval workflows and bulk approval batches (extension approvals)';
REVOKE ALL ON SCHEMA approvals FROM PUBLIC;
GRANT USAGE ON SCHEMA approvals TO approvals_reader, approvals_requester,
      approvals_reviewer, approvals_coordinator, approvals_admin, approvals_platform;

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------
CREATE TABLE approvals.claims (
    id                  text PRIMARY KEY,
    tenant              text,
    resource_type       text NOT NULL,
    resource_id         text NOT NULL,
    kind                text NOT NULL,
    snapshot_hash       text NOT NULL,
    status              text NOT NULL
        CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled', 'expired')),
    requester           text NOT NULL,
    reviewer            text,
    note                text,
    title               text,
    context             text,
    fields              jsonb,
    amount              numeric CHECK (amount >= 0),
    currency            text,
    priority            text NOT NULL DEFAULT 'normal'
        CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    approvers           text[],
    required_approvals  integer NOT NULL DEFAULT 1 CHECK (required_approvals >= 1),
    approval_count      integer NOT NULL DEFAULT 0,
    approved_by         text[] NOT NULL DEFAULT '{}',
    route_position      integer,
    assignee            text,
    allow_self_approval boolean NOT NULL DEFAULT false,
    on_expiry           text NOT NULL DEFAULT 'expire'
        CHECK (on_expiry IN ('expire', 'escalate')),
    expires_in          interval,
    batch_id            text,
    idempotency_key     text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    decided_at          timestamptz,
    expires_at          timestamptz,
    steps               jsonb,
    current_step        integer,
    step_approvals      integer NOT NULL DEFAULT 0,
    step_abstained      text[] NOT NULL DEFAULT '{}',
    step_escalated      boolean NOT NULL DEFAULT false,
    named_approvers     text[],
    policy_id           bigint,
    policy_version      integer
);
COMMENT ON TABLE approvals.claims IS
    'Things awaiting (or having had) a decision; written only by approvals functions';

-- One pending claim per resource: resubmitting supersedes.
CREATE UNIQUE INDEX claims_one_pending_per_resource
    ON approvals.claims (tenant, resource_type, resource_id) NULLS NOT DISTINCT
    WHERE status = 'pending';
CREATE INDEX claims_pending_expiry ON approvals.claims (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;
CREATE INDEX claims_resource ON approvals.claims (resource_type, resource_id);
COMMENT ON INDEX approvals.claims_one_pending_per_resource IS
    'One pending claim per (tenant, resource_type, resource_id): submit supersedes on it';
COMMENT ON INDEX approvals.claims_pending_expiry IS
    'The pending claims that can expire, by deadline (expire_due)';
COMMENT ON INDEX approvals.claims_resource IS
    'A resource''s claims, pending or not';

CREATE TABLE approvals.events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    claim_id      text NOT NULL,
    batch_id      text,
    tenant        text,
    actor         text NOT NULL,
    action        text NOT NULL,
    from_status   text,
    to_status     text,
    comment       text,
    snapshot_hash text,
    at            timestamptz NOT NULL DEFAULT now(),
    on_behalf_of  text
);
COMMENT ON TABLE approvals.events IS
    'Append-only audit log: one row per claim state change';
CREATE INDEX events_claim ON approvals.events (claim_id, id);
CREATE INDEX events_batch ON approvals.events (batch_id) WHERE batch_id IS NOT NULL;
COMMENT ON SEQUENCE approvals.events_id_seq IS
    'Event ids: the order of the audit log';
COMMENT ON INDEX approvals.events_claim IS
    'A claim''s events in order';
COMMENT ON INDEX approvals.events_batch IS
    'The events of a batch (revert, results)';

CREATE TABLE approvals.policies (
    id                  bigint GENERATED ALWAYS AS IDENTITY,
    tenant              text,
    resource_type       text,
    kind                text,
    approvers           text[],
    required_approvals  integer NOT NULL DEFAULT 1 CHECK (required_approvals >= 1),
    auto_approve_below  numeric,
    expires_in          interval,
    on_expiry           text NOT NULL DEFAULT 'expire'
        CHECK (on_expiry IN ('expire', 'escalate')),
    allow_self_approval boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    version             integer NOT NULL DEFAULT 1,
    active              boolean NOT NULL DEFAULT true,
    steps               jsonb,
    PRIMARY KEY (id, version)
);
COMMENT ON TABLE approvals.policies IS
    'Approval policies matched at submit (NULL columns match anything), every version of each';
COMMENT ON SEQUENCE approvals.policies_id_seq IS
    'Policy ids';
CREATE UNIQUE INDEX policies_one_active ON approvals.policies (tenant, resource_type, kind)
    NULLS NOT DISTINCT WHERE active;
COMMENT ON INDEX approvals.policies_one_active IS
    'One active version per (tenant, resource_type, kind)';

CREATE TABLE approvals.handlers (
    resource_type text PRIMARY KEY,
    handler       regprocedure NOT NULL,
    search_path   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE approvals.handlers IS
    'Per resource type, a function run in the same transaction as every claim state change';

CREATE TABLE approvals.tenant_grants (
    tenant     text NOT NULL,
    member     regrole NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, member)
);
COMMENT ON TABLE approvals.tenant_grants IS
    'Which roles (and their members) may see and act on which tenant';

CREATE TABLE approvals.idempotency_keys (
    scope      text NOT NULL,
    requester  text NOT NULL,
    key        text NOT NULL,
    request    text[] NOT NULL,
    object_id  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, requester, key)
);
COMMENT ON TABLE approvals.idempotency_keys IS
    'Idempotency keys: the arguments of the first call and the object it created';

CREATE TABLE approvals.batches (
    id                text PRIMARY KEY,
    tenant            text,
    coordinator       text NOT NULL,
    comment           text,
    action            text NOT NULL CHECK (action IN ('approve', 'reject')),
    status            text NOT NULL
        CHECK (status IN ('pending', 'queued', 'processing', 'completed', 'failed', 'cancelled')),
    total_claims      integer NOT NULL DEFAULT 0,
    processed_count   integer NOT NULL DEFAULT 0,
    approved_count    integer NOT NULL DEFAULT 0,
    rejected_count    integer NOT NULL DEFAULT 0,
    failed_count      integer NOT NULL DEFAULT 0,
    reverted_count    integer NOT NULL DEFAULT 0,
    total_amount      numeric NOT NULL DEFAULT 0,
    approved_amount   numeric NOT NULL DEFAULT 0,
    failed_amount     numeric NOT NULL DEFAULT 0,
    max_failures      integer CHECK (max_failures >= 0),
    max_failure_ratio real CHECK (max_failure_ratio >= 0 AND max_failure_ratio <= 1),
    on_threshold      text NOT NULL DEFAULT 'rollback'
        CHECK (on_threshold IN ('rollback', 'continue')),
    auto_retry        boolean NOT NULL DEFAULT true,
    error             text,
    idempotency_key   text,
    created_by        regrole NOT NULL,
    next_position     integer NOT NULL DEFAULT 1,
    worker_pid        integer,
    worker_started    timestamptz,
    attempts          integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    queued_at         timestamptz,
    started_at        timestamptz,
    completed_at      timestamptz,
    cancelled_at      timestamptz,
    reference         text,
    tracking_id       uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE
);
COMMENT ON TABLE approvals.batches IS
    'Bulk approve/reject actions over lists of claims; written only by approvals functions';
CREATE INDEX batches_queue ON approvals.batches (queued_at, id)
    WHERE status IN ('queued', 'processing');
CREATE INDEX batches_created ON approvals.batches (created_at DESC, id DESC);
COMMENT ON INDEX approvals.batches_queue IS
    'Batches that can be taken, oldest first (the queue)';
COMMENT ON INDEX approvals.batches_created IS
    'Batches newest first (list_batches)';

-- A batch's items: the claim list is kept compactly (claim id arrays of consecutive positions,
-- written once by create_batch/update_batch) until a chunk processes those items and writes
-- their results (one row per chunk, arrays again); approvals.batch_items shows both as one row
-- per item.
CREATE TABLE approvals.batch_item_lists (
    batch_id       text NOT NULL,
    first_position integer NOT NULL,
    last_position  integer NOT NULL,
    claim_ids      text[] NOT NULL,
    PRIMARY KEY (batch_id, first_position),
    CHECK (last_position - first_position + 1 = pg_catalog.cardinality(claim_ids)),
    CHECK (pg_catalog.array_ndims(claim_ids) = 1 AND pg_catalog.array_lower(claim_ids, 1) = 1
           AND pg_catalog.array_position(claim_ids, NULL) IS NULL)
);
ALTER TABLE approvals.batch_item_lists ALTER COLUMN claim_ids SET STORAGE EXTERNAL;
COMMENT ON TABLE approvals.batch_item_lists IS
    'Internal: a batch''s items not processed yet, claim_ids[k] at position first_position + k - 1 (a chunk deletes the items it processes: the lists it finished, and the head of the list it stopped in)';
CREATE TABLE approvals.batch_item_results (
    batch_id       text NOT NULL,
    first_position integer NOT NULL,
    last_position  integer NOT NULL,
    claim_ids      text[] NOT NULL,
    decisions      text[] NOT NULL,
    errors         text[] NOT NULL,
    processed_at   timestamptz NOT NULL,
    PRIMARY KEY (batch_id, first_position),
    CHECK (last_position - first_position + 1 = pg_catalog.cardinality(claim_ids)
           AND pg_catalog.cardinality(decisions) = pg_catalog.cardinality(claim_ids)
           AND pg_catalog.cardinality(errors) = pg_catalog.cardinality(claim_ids)),
    CHECK (pg_catalog.array_ndims(claim_ids) = 1 AND pg_catalog.array_lower(claim_ids, 1) = 1
           AND pg_catalog.array_position(claim_ids, NULL) IS NULL),
    CHECK (decisions <@ ARRAY['approved', 'rejected', 'failed', 'reverted'])
);
ALTER TABLE approvals.batch_item_results ALTER COLUMN claim_ids SET STORAGE EXTERNAL;
COMMENT ON TABLE approvals.batch_item_results IS
    'Internal: the results of a batch''s processed items, one row per chunk: claim_ids[k], decisions[k] and errors[k] are those of the item at position first_position + k - 1';

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

-- Delegation (out of office): the delegate may decide what the delegator may, in scope.
CREATE TABLE approvals.delegations (
    id             text PRIMARY KEY,
    tenant         text,
    delegator      text NOT NULL,
    delegate       text NOT NULL,
    resource_type  text,
    max_amount     numeric CHECK (max_amount >= 0),
    valid_from     timestamptz NOT NULL DEFAULT now(),
    valid_until    timestamptz,
    revoked_at     timestamptz,
    revoked_by     text,
    revoke_comment text,
    comment        text,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (delegate <> delegator),
    CHECK (valid_until > valid_from)
);
COMMENT ON TABLE approvals.delegations IS
    'Delegations: the delegate may decide the claims the delegator may, within scope and dates';
CREATE INDEX delegations_delegate ON approvals.delegations (delegate) WHERE revoked_at IS NULL;
CREATE INDEX delegations_delegator ON approvals.delegations (delegator);
COMMENT ON INDEX approvals.delegations_delegate IS
    'The unrevoked delegations to a delegate (decide, inbox)';
COMMENT ON INDEX approvals.delegations_delegator IS
    'A delegator''s delegations';

-- The inbox's index: one row per pending claim and person it waits for by name
-- (claims.named_approvers, the requester left out), in inbox order.
CREATE TABLE approvals.inbox_entries (
    actor         text NOT NULL,
    rank          smallint NOT NULL,
    expires_key   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL,
    claim_id      text NOT NULL,
    tenant        text,
    resource_type text NOT NULL,
    amount        numeric,
    requester     text NOT NULL,
    PRIMARY KEY (actor, rank, expires_key, created_at, claim_id)
);
COMMENT ON TABLE approvals.inbox_entries IS
    'Internal: who each pending claim waits for by name, in inbox order (approvals.inbox)';
CREATE INDEX inbox_entries_claim ON approvals.inbox_entries (claim_id);
COMMENT ON INDEX approvals.inbox_entries_claim IS
    'A claim''s inbox entries (rewritten when its named approvers change)';

SELECT pg_catalog.pg_extension_config_dump('approvals.claims', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.events', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.policies', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.handlers', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.tenant_grants', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.idempotency_keys', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.policies_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.batches', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.batch_item_lists', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.batch_item_results', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.delegations', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.inbox_entries', '');

-- The audit log refuses UPDATE, DELETE and TRUNCATE, whoever asks.
CREATE FUNCTION approvals.events_append_only() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'approvals_events_append_only';
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON approvals.events
    FOR EACH ROW EXECUTE FUNCTION approvals.events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON approvals.events
    FOR EACH STATEMENT EXECUTE FUNCTION approvals.events_append_only();
COMMENT ON FUNCTION approvals.events_append_only() IS
    'Trigger of approvals.events and approvals.audit_seals: refuses UPDATE, DELETE and TRUNCATE (39P01 when called directly)';
COMMENT ON TRIGGER events_no_update_delete ON approvals.events IS
    'The audit log is append-only: no UPDATE or DELETE, whoever asks';
COMMENT ON TRIGGER events_no_truncate ON approvals.events IS
    'The audit log is append-only: no TRUNCATE, whoever asks';

-- ---------------------------------------------------------------------------
-- The tamper-evident audit chain: seals over the audit log
-- ---------------------------------------------------------------------------
-- Seal n covers events first_event..last_event (contiguous with seal n-1) and holds the
-- SHA-256 of seal n-1's hash and of its events' canonical lines (README: "Audit seals").
CREATE TABLE approvals.audit_seals (
    id          bigint PRIMARY KEY,
    first_event bigint NOT NULL,
    last_event  bigint NOT NULL,
    event_count integer NOT NULL,
    prev_hash   text NOT NULL,
    hash        text NOT NULL,
    digests     bytea NOT NULL,
    sealed_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE approvals.audit_seals IS
    'The seals over the audit log: a chain of SHA-256 hashes of consecutive ranges of events';
-- digests are hashes: compressing them only costs (pglz gives up after trying)
ALTER TABLE approvals.audit_seals ALTER COLUMN digests SET STORAGE EXTERNAL;
-- The next seal's end, kept until the transactions that could still commit events below it end.
CREATE TABLE approvals.audit_seal_pending (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_event  bigint,
    waiting_for text[]
);
COMMENT ON TABLE approvals.audit_seal_pending IS
    'Internal: where the next seal may end once the listed transactions have ended (seal_audit)';
INSERT INTO approvals.audit_seal_pending DEFAULT VALUES;
SELECT pg_catalog.pg_extension_config_dump('approvals.audit_seals', '');
CREATE TRIGGER audit_seals_no_update_delete BEFORE UPDATE OR DELETE ON approvals.audit_seals
    FOR EACH ROW EXECUTE FUNCTION approvals.events_append_only();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON approvals.audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION approvals.events_append_only();
COMMENT ON TRIGGER audit_seals_no_update_delete ON approvals.audit_seals IS
    'Seals are append-only: no UPDATE or DELETE, whoever asks';
COMMENT ON TRIGGER audit_seals_no_truncate ON approvals.audit_seals IS
    'Seals are append-only: no TRUNCATE, whoever asks';
REVOKE ALL ON approvals.audit_seals, approvals.audit_seal_pending FROM PUBLIC;
GRANT SELECT ON approvals.audit_seals TO approvals_reader;

CREATE FUNCTION approvals.seal_audit() RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_seal_audit';
COMMENT ON FUNCTION approvals.seal_audit() IS
    'Seal every event that can no longer change; returns how many (admin; the worker runs it every naptime)';

CREATE FUNCTION approvals.verify_audit(from_seal bigint DEFAULT NULL, to_seal bigint DEFAULT NULL)
RETURNS TABLE(seal_id bigint, ok boolean, first_bad_event bigint, detail text)
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_verify_audit';
COMMENT ON FUNCTION approvals.verify_audit(bigint, bigint) IS
    'Recompute the seals (all, or from_seal..to_seal) from the events: one row per seal, naming the first bad event';

CREATE FUNCTION approvals.audit_head()
RETURNS TABLE(seal_id bigint, last_event bigint, hash text, sealed_at timestamptz)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT s.id, s.last_event, s.hash, s.sealed_at FROM approvals.audit_seals s
     ORDER BY s.id DESC LIMIT 1;
END;
COMMENT ON FUNCTION approvals.audit_head() IS
    'The latest seal: the hash an auditor keeps outside the database';

-- ---------------------------------------------------------------------------
-- Tenant visibility (row-level security for roles that are not platform/admin)
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals.sees_all_tenants() RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'approvals_sees_all_tenants';
COMMENT ON FUNCTION approvals.sees_all_tenants() IS
    'True when the current role is a superuser or a member of approvals_platform or approvals_admin';

CREATE FUNCTION approvals.visible_tenants() RETURNS text[]
    LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'approvals_visible_tenants';
COMMENT ON FUNCTION approvals.visible_tenants() IS
    'The tenants granted to the current role or to a role it belongs to';

ALTER TABLE approvals.claims ENABLE ROW LEVEL SECURITY;
ALTER TABLE approvals.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE approvals.policies ENABLE ROW LEVEL SECURITY;
CREATE POLICY policies_tenant_isolation ON approvals.policies FOR SELECT
    USING (tenant IS NULL
           OR (SELECT approvals.sees_all_tenants())
           OR tenant = ANY ((SELECT approvals.visible_tenants())::text[]));
CREATE POLICY claims_tenant_isolation ON approvals.claims FOR SELECT
    USING (tenant IS NULL
           OR (SELECT approvals.sees_all_tenants())
           OR tenant = ANY ((SELECT approvals.visible_tenants())::text[]));
CREATE POLICY events_tenant_isolation ON approvals.events FOR SELECT
    USING (tenant IS NULL
           OR (SELECT approvals.sees_all_tenants())
           OR tenant = ANY ((SELECT approvals.visible_tenants())::text[]));
COMMENT ON POLICY policies_tenant_isolation ON approvals.policies IS
    'Tenant isolation: a policy of a tenant is visible to roles granted that tenant, platform and admin';
COMMENT ON POLICY claims_tenant_isolation ON approvals.claims IS
    'Tenant isolation: a claim of a tenant is visible to roles granted that tenant, platform and admin';
COMMENT ON POLICY events_tenant_isolation ON approvals.events IS
    'Tenant isolation: an event of a tenant''s claim is visible as the claim is';
ALTER TABLE approvals.delegations ENABLE ROW LEVEL SECURITY;
CREATE POLICY delegations_tenant_isolation ON approvals.delegations FOR SELECT
    USING (tenant IS NULL
           OR (SELECT approvals.sees_all_tenants())
           OR tenant = ANY ((SELECT approvals.visible_tenants())::text[]));
COMMENT ON POLICY delegations_tenant_isolation ON approvals.delegations IS
    'Tenant isolation: a delegation scoped to a tenant is visible as that tenant''s claims are';

ALTER TABLE approvals.batches ENABLE ROW LEVEL SECURITY;
ALTER TABLE approvals.batch_item_lists ENABLE ROW LEVEL SECURITY;
ALTER TABLE approvals.batch_item_results ENABLE ROW LEVEL SECURITY;
CREATE POLICY batches_tenant_isolation ON approvals.batches FOR SELECT
    USING (tenant IS NULL
           OR (SELECT approvals.sees_all_tenants())
           OR tenant = ANY ((SELECT approvals.visible_tenants())::text[]));
CREATE POLICY batch_item_lists_tenant_isolation ON approvals.batch_item_lists FOR SELECT
    USING (EXISTS (SELECT 1 FROM approvals.batches b WHERE b.id = batch_id));
CREATE POLICY batch_item_results_tenant_isolation ON approvals.batch_item_results FOR SELECT
    USING (EXISTS (SELECT 1 FROM approvals.batches b WHERE b.id = batch_id));
COMMENT ON POLICY batches_tenant_isolation ON approvals.batches IS
    'Tenant isolation: a batch of a tenant is visible to roles granted that tenant, platform and admin';
COMMENT ON POLICY batch_item_lists_tenant_isolation ON approvals.batch_item_lists IS
    'Tenant isolation: an item is visible when its batch is';
COMMENT ON POLICY batch_item_results_tenant_isolation ON approvals.batch_item_results IS
    'Tenant isolation: an item is visible when its batch is';

-- One row per item of a batch, in any state: the processed ones with their result, the others
-- (still in a claim list) without.  security_invoker: the tables' tenant policies apply to
-- whoever reads it.
CREATE VIEW approvals.batch_items WITH (security_invoker = true) AS
    SELECT r.batch_id, r.first_position + (x.o - 1)::integer AS position, x.claim_id,
           x.decision, x.error, r.processed_at
    FROM approvals.batch_item_results r
    CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(r.claim_ids), pg_catalog.unnest(r.decisions),
                                  pg_catalog.unnest(r.errors))
                       WITH ORDINALITY AS x(claim_id, decision, error, o)
    UNION ALL
    SELECT l.batch_id, l.first_position + (x.o - 1)::integer, x.claim_id,
           NULL::text, NULL::text, NULL::timestamptz
    FROM approvals.batch_item_lists l
    CROSS JOIN LATERAL pg_catalog.unnest(l.claim_ids) WITH ORDINALITY AS x(claim_id, o);
COMMENT ON VIEW approvals.batch_items IS
    'One row per claim of a batch, in the batch''s order (position), with its result once processed';

REVOKE ALL ON ALL TABLES IN SCHEMA approvals FROM PUBLIC;
GRANT SELECT ON approvals.claims, approvals.events, approvals.policies,
                approvals.handlers, approvals.batches, approvals.batch_items,
                approvals.batch_item_lists, approvals.batch_item_results,
                approvals.delegations
      TO approvals_reader;

-- ---------------------------------------------------------------------------
-- Claims
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals.submit(
    resource_type text, resource_id text, snapshot_hash text,
    tenant text DEFAULT NULL, kind text DEFAULT 'data_review', note text DEFAULT NULL,
    actor text DEFAULT NULL, id text DEFAULT NULL,
    amount numeric DEFAULT NULL, currency text DEFAULT NULL,
    title text DEFAULT NULL, context text DEFAULT NULL, fields jsonb DEFAULT NULL,
    approvers text[] DEFAULT NULL, required_approvals integer DEFAULT NULL,
    priority text DEFAULT 'normal', expires_at timestamptz DEFAULT NULL,
    idempotency_key text DEFAULT NULL, steps jsonb DEFAULT NULL)
RETURNS approvals.claims
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_submit';
COMMENT ON FUNCTION approvals.submit(text, text, text, text, text, text, text, text, numeric,
    text, text, text, jsonb, text[], integer, text, timestamptz, text, jsonb) IS
    'Submit a resource for approval: creates a pending claim (superseding the resource''s previous pending claim)';

CREATE FUNCTION approvals.decide(
    claim_id text, outcome text, comment text DEFAULT NULL,
    snapshot_hash text DEFAULT NULL, actor text DEFAULT NULL, on_behalf_of text DEFAULT NULL)
RETURNS approvals.claims
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_decide';
COMMENT ON FUNCTION approvals.decide(text, text, text, text, text, text) IS
    'Approve, reject or abstain on a pending claim (for a delegator: on_behalf_of)';

CREATE FUNCTION approvals.cancel_claim(claim_id text, comment text DEFAULT NULL,
                                       actor text DEFAULT NULL)
RETURNS approvals.claims
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_cancel_claim';
COMMENT ON FUNCTION approvals.cancel_claim(text, text, text) IS
    'Cancel a pending claim (its requester, or an admin)';

CREATE FUNCTION approvals.expire_due() RETURNS integer
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_expire_due';
COMMENT ON FUNCTION approvals.expire_due() IS
    'Expire (or escalate, per policy) pending claims past expires_at; returns how many';

-- ---------------------------------------------------------------------------
-- Policies, handlers, tenants
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals.set_policy(
    resource_type text DEFAULT NULL, kind text DEFAULT NULL, tenant text DEFAULT NULL,
    approvers text[] DEFAULT NULL, required_approvals integer DEFAULT 1,
    auto_approve_below numeric DEFAULT NULL, expires_in interval DEFAULT NULL,
    on_expiry text DEFAULT 'expire', allow_self_approval boolean DEFAULT false,
    steps jsonb DEFAULT NULL)
RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_set_policy';
COMMENT ON FUNCTION approvals.set_policy(text, text, text, text[], integer, numeric, interval,
    text, boolean, jsonb) IS
    'A new version of the policy for (tenant, resource_type, kind); NULL matches anything';

CREATE FUNCTION approvals.drop_policy(resource_type text DEFAULT NULL, kind text DEFAULT NULL,
                                      tenant text DEFAULT NULL) RETURNS integer
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_drop_policy';
COMMENT ON FUNCTION approvals.drop_policy(text, text, text) IS
    'Deactivate the policy of (tenant, resource_type, kind); returns how many were active (its versions stay)';

-- ---------------------------------------------------------------------------
-- Delegation and the inbox
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals.delegate(
    delegate text, valid_until timestamptz DEFAULT NULL, valid_from timestamptz DEFAULT now(),
    resource_type text DEFAULT NULL, tenant text DEFAULT NULL, max_amount numeric DEFAULT NULL,
    comment text DEFAULT NULL, delegator text DEFAULT NULL)
RETURNS approvals.delegations
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_delegate';
COMMENT ON FUNCTION approvals.delegate(text, timestamptz, timestamptz, text, text, numeric,
    text, text) IS
    'Let a delegate decide, within scope and dates, the claims the delegator may decide';

CREATE FUNCTION approvals.revoke_delegation(delegation_id text, comment text DEFAULT NULL)
RETURNS approvals.delegations
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_revoke_delegation';
COMMENT ON FUNCTION approvals.revoke_delegation(text, text) IS
    'End a delegation now (its delegator, its creator, or an admin); decisions made through it stay';

CREATE FUNCTION approvals.inbox(actor text DEFAULT NULL, page_limit integer DEFAULT 50,
                                after text DEFAULT NULL)
RETURNS SETOF approvals.claims
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_inbox';
COMMENT ON FUNCTION approvals.inbox(text, integer, text) IS
    'The pending claims waiting for the actor by name (directly or through a delegation), a page after claim id `after`';

CREATE FUNCTION approvals.inbox_key(claim_id text, actor text DEFAULT NULL,
    OUT rank smallint, OUT expires_key timestamptz, OUT created_at timestamptz)
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_inbox_key';
COMMENT ON FUNCTION approvals.inbox_key(text, text) IS
    'The inbox order key of a claim (rank, expires_key, created_at), to continue a page with inbox_after';

CREATE FUNCTION approvals.inbox_after(actor text, page_limit integer, after_rank smallint,
                                      after_expires_key timestamptz, after_created_at timestamptz,
                                      after_id text)
RETURNS SETOF approvals.claims
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_inbox_after';
COMMENT ON FUNCTION approvals.inbox_after(text, integer, smallint, timestamptz, timestamptz, text) IS
    'An inbox page after an order key given whole (inbox_key of the previous page''s last claim); for a router over several nodes';

CREATE FUNCTION approvals.set_handler(resource_type text, handler regprocedure)
RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_set_handler';
COMMENT ON FUNCTION approvals.set_handler(text, regprocedure) IS
    'Set (or with NULL remove) the function f(approvals.claims, approvals.events) run with every state change of that resource type';

CREATE FUNCTION approvals.grant_tenant(tenant text, member regrole) RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_grant_tenant';
COMMENT ON FUNCTION approvals.grant_tenant(text, regrole) IS
    'Let a role (and its members) see and act on a tenant''s claims and batches';

CREATE FUNCTION approvals.revoke_tenant(tenant text, member regrole) RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_revoke_tenant';
COMMENT ON FUNCTION approvals.revoke_tenant(text, regrole) IS
    'Take back a tenant grant';

-- ---------------------------------------------------------------------------
-- Statistics
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals.claim_stats(since timestamptz DEFAULT now() - interval '30 days',
                                      tenant text DEFAULT NULL)
RETURNS TABLE(resource_type text, submitted bigint, approved bigint, rejected bigint,
              cancelled bigint, expired bigint, pending bigint, overdue bigint,
              p50_time_to_decision interval, p90_time_to_decision interval)
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_claim_stats';
COMMENT ON FUNCTION approvals.claim_stats(timestamptz, text) IS
    'Per resource type, the claims created since `since` that the caller sees: counts by status, overdue, decision times';

CREATE FUNCTION approvals.approver_stats(since timestamptz DEFAULT now() - interval '30 days',
                                         tenant text DEFAULT NULL)
RETURNS TABLE(actor text, decisions bigint, approved bigint, rejected bigint, abstained bigint,
              p50_response interval, p90_response interval, assigned_pending bigint,
              assigned_overdue bigint)
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_approver_stats';
COMMENT ON FUNCTION approvals.approver_stats(timestamptz, text) IS
    'Per actor, over the claims created since `since` that the caller sees: decisions, response times, what waits for them now';

CREATE FUNCTION approvals.claim_stats_parts(since timestamptz DEFAULT now() - interval '30 days',
                                            tenant text DEFAULT NULL)
RETURNS TABLE(resource_type text, submitted bigint, approved bigint, rejected bigint,
              cancelled bigint, expired bigint, pending bigint, overdue bigint,
              decision_times interval[])
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_claim_stats_parts';
COMMENT ON FUNCTION approvals.claim_stats_parts(timestamptz, text) IS
    'claim_stats with every decision time instead of percentiles, for a router that merges several nodes';

CREATE FUNCTION approvals.approver_stats_parts(since timestamptz DEFAULT now() - interval '30 days',
                                               tenant text DEFAULT NULL)
RETURNS TABLE(actor text, decisions bigint, approved bigint, rejected bigint, abstained bigint,
              response_times interval[], assigned_pending bigint, assigned_overdue bigint)
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_approver_stats_parts';
COMMENT ON FUNCTION approvals.approver_stats_parts(timestamptz, text) IS
    'approver_stats with every response time instead of percentiles, for a router that merges several nodes';

-- ---------------------------------------------------------------------------
-- JSON layer (seed 001: resource approval API; seed 004: approval interaction)
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals.json_ts(ts timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN pg_catalog.to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
COMMENT ON FUNCTION approvals.json_ts(timestamptz) IS
    'ISO 8601 UTC timestamp as the JSON layer prints it (2026-03-25T14:00:00Z)';

CREATE FUNCTION approvals.json_required(body jsonb, key text) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'approvals_json_required';
COMMENT ON FUNCTION approvals.json_required(jsonb, text) IS
    'The string value of a required key of a JSON request body (22004 when missing or null)';

CREATE FUNCTION approvals.json_text_array(body jsonb, key text, required boolean)
RETURNS text[]
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'approvals_json_text_array';
COMMENT ON FUNCTION approvals.json_text_array(jsonb, text, boolean) IS
    'A JSON array of strings in a request body as text[] (22004 when required and missing, 22023 when not an array of strings)';

CREATE FUNCTION approvals.json_string(body jsonb, key text, required boolean DEFAULT false,
                                      allowed text[] DEFAULT NULL) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'approvals_json_string';
COMMENT ON FUNCTION approvals.json_string(jsonb, text, boolean, text[]) IS
    'A string member of a JSON request body: NULL when absent (22004 when required), 22023 when not a string or not one of allowed';

CREATE FUNCTION approvals.api_approval(c approvals.claims) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, approvals, pg_temp
    RETURN pg_catalog.jsonb_build_object(
        'id', c.id, 'object', 'approval', 'merchantId', c.tenant,
        'resourceType', c.resource_type, 'resourceId', c.resource_id, 'kind', c.kind,
        'decision', c.status, 'requester', c.requester,
        'dataSnapshotHash', c.snapshot_hash, 'createdAt', approvals.json_ts(c.created_at),
        'reviewer', c.reviewer, 'note', c.note, 'decidedAt', approvals.json_ts(c.decided_at));
COMMENT ON FUNCTION approvals.api_approval(approvals.claims) IS
    'A claim as the resource approval API''s approval object';

CREATE FUNCTION approvals.api_submit(body jsonb) RETURNS jsonb
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
COMMENT ON FUNCTION approvals.api_submit(jsonb) IS
    'POST /v0/approvals: submit from the seed''s request body, answer with its approval object';

CREATE FUNCTION approvals.api_respond(claim_id text, body jsonb, actor text DEFAULT NULL)
RETURNS jsonb
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, approvals, pg_temp
BEGIN ATOMIC
    SELECT pg_catalog.jsonb_build_object(
        'interactionId', d.id,
        'respondedBy', d.reviewer,
        'outcome', approvals.json_required(body, 'outcome'),
        'data', CASE WHEN body #> '{data,comment}' IS NULL THEN '{}'::jsonb
                     ELSE pg_catalog.jsonb_build_object('comment', body #>> '{data,comment}') END,
        'timestamp', approvals.json_ts(pg_catalog.now()))
    FROM approvals.decide(claim_id, approvals.json_required(body, 'outcome'),
                          body #>> '{data,comment}', NULL, actor) AS d;
END;
COMMENT ON FUNCTION approvals.api_respond(text, jsonb, text) IS
    'Approval interaction response: decide from {outcome, data:{comment}}, answer with the seed''s response object';


-- ---------------------------------------------------------------------------
-- Batches
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals.create_batch(
    claim_ids text[], coordinator text DEFAULT NULL, comment text DEFAULT NULL,
    action text DEFAULT 'approve', start boolean DEFAULT true, tenant text DEFAULT NULL,
    max_failures integer DEFAULT NULL, max_failure_ratio real DEFAULT NULL,
    on_threshold text DEFAULT 'rollback', auto_retry boolean DEFAULT true,
    idempotency_key text DEFAULT NULL, reference text DEFAULT NULL)
RETURNS approvals.batches
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_create_batch';
COMMENT ON FUNCTION approvals.create_batch(text[], text, text, text, boolean, text, integer,
    real, text, boolean, text, text) IS
    'Create a batch approving (or rejecting) a list of claims: queued for processing, or pending (amendable) with start => false';

CREATE FUNCTION approvals.update_batch(batch_id text, claim_ids text[] DEFAULT NULL,
    add_claim_ids text[] DEFAULT NULL, comment text DEFAULT NULL)
RETURNS approvals.batches
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_update_batch';
COMMENT ON FUNCTION approvals.update_batch(text, text[], text[], text) IS
    'Amend a pending batch: replace (claim_ids) or extend (add_claim_ids) its claims, change its comment';

CREATE FUNCTION approvals.start_batch(batch_id text, confirm_claim_ids text[] DEFAULT NULL)
RETURNS approvals.batches
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_start_batch';
COMMENT ON FUNCTION approvals.start_batch(text, text[]) IS
    'Queue a pending batch, optionally confirming its exact claim set (AP002 when it differs)';

CREATE FUNCTION approvals.process_batch(batch_id text)
RETURNS TABLE (claim_id text, decision text, error text, processed_at timestamptz)
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_process_batch';
COMMENT ON FUNCTION approvals.process_batch(text) IS
    'Process a pending or queued batch now, inside the calling transaction; one row per claim';

CREATE FUNCTION approvals.claim_row_unlocked(claim_row tid) RETURNS boolean
    LANGUAGE c STRICT VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_claim_row_unlocked';
COMMENT ON FUNCTION approvals.claim_row_unlocked(tid) IS
    'Internal: does no other transaction hold the approvals.claims row at that location? (a batch chunk leaves such claims to its lock pass instead of waiting)';
REVOKE ALL ON FUNCTION approvals.claim_row_unlocked(tid) FROM PUBLIC;

CREATE FUNCTION approvals.cancel_batch(batch_id text, comment text DEFAULT NULL)
RETURNS TABLE (batch_id text, cancelled boolean, cancelled_at timestamptz, claims_reverted integer)
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_cancel_batch';
COMMENT ON FUNCTION approvals.cancel_batch(text, text) IS
    'Cancel a pending, queued or processing batch and revert the claims it decided';

CREATE FUNCTION approvals.batch_results(batch_id text)
RETURNS TABLE (claim_id text, decision text, error text, processed_at timestamptz)
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_batch_results';
COMMENT ON FUNCTION approvals.batch_results(text) IS
    'One row per claim of a batch, in the batch''s order';

CREATE FUNCTION approvals.list_batches(status text DEFAULT NULL, coordinator text DEFAULT NULL,
    page integer DEFAULT 1, page_limit integer DEFAULT 20)
RETURNS SETOF approvals.batches
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_list_batches';
COMMENT ON FUNCTION approvals.list_batches(text, text, integer, integer) IS
    'Batches visible to the caller, newest first, one page at a time';

CREATE FUNCTION approvals.get_batch(batch_id text) RETURNS approvals.batches
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_get_batch';
COMMENT ON FUNCTION approvals.get_batch(text) IS
    'One batch (P0002 when it does not exist, 42501 when its tenant is not visible)';

CREATE FUNCTION approvals.wait_batch(batch_id text, timeout interval DEFAULT '1 minute')
RETURNS approvals.batches
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_wait_batch';
COMMENT ON FUNCTION approvals.wait_batch(text, interval) IS
    'Block until the batch is completed, failed or cancelled, or the timeout passes; returns it';

CREATE PROCEDURE approvals.run_queued(max_batches integer DEFAULT NULL)
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'approvals_run_queued';
COMMENT ON PROCEDURE approvals.run_queued(integer) IS
    'Process queued batches in this session, committing after every chunk (for pg_cron or psql)';

CREATE FUNCTION approvals.purge_batches(older_than interval) RETURNS integer
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_purge_batches';
COMMENT ON FUNCTION approvals.purge_batches(interval) IS
    'Delete finished batches (and their items) older than that; the audit events stay';

CREATE VIEW approvals.batch_progress WITH (security_invoker = true) AS
SELECT b.id AS batch_id,
       b.status,
       b.processed_count,
       b.total_claims,
       round(100.0 * b.processed_count / nullif(b.total_claims, 0), 1) AS percent,
       round((b.processed_count / nullif(extract(epoch FROM
             coalesce(b.completed_at, b.cancelled_at, now()) - b.started_at), 0))::numeric, 1)
           AS claims_per_second,
       CASE WHEN b.status = 'processing' AND b.processed_count > 0 THEN
           (coalesce(b.completed_at, now()) - b.started_at)
           * ((b.total_claims - b.processed_count)::float8 / b.processed_count)
       END AS estimated_time_left,
       b.queued_at - b.created_at AS time_to_queue,
       b.started_at - b.queued_at AS time_in_queue,
       coalesce(b.completed_at, b.cancelled_at, now()) - b.started_at AS time_processing,
       b.worker_pid,
       b.attempts
FROM approvals.batches b;
COMMENT ON VIEW approvals.batch_progress IS
    'Progress of every batch: processed/total, percent, claims per second, estimated time left, worker pid';

-- ---------------------------------------------------------------------------
-- JSON layer for batches (seed 000: bulk approval processor)
-- ---------------------------------------------------------------------------
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

CREATE FUNCTION approvals.api_create_batch(body jsonb) RETURNS jsonb
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
COMMENT ON FUNCTION approvals.api_create_batch(jsonb) IS
    'POST /approval-batches: create and queue a batch from {claim_ids, coordinator_id, comment}';

CREATE FUNCTION approvals.api_update_batch(batch_id text, body jsonb) RETURNS jsonb
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
COMMENT ON FUNCTION approvals.api_update_batch(text, jsonb) IS
    'PUT /approval-batches/:id: amend a pending batch from {claim_ids, add_claim_ids, comment}';

CREATE FUNCTION approvals.api_cancel_batch(batch_id text) RETURNS jsonb
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, approvals, pg_temp
BEGIN ATOMIC
    SELECT pg_catalog.jsonb_build_object(
        'batch_id', c.batch_id, 'cancelled', c.cancelled,
        'cancelled_at', approvals.json_ts(c.cancelled_at), 'claims_reverted', c.claims_reverted)
    FROM approvals.cancel_batch(api_cancel_batch.batch_id) AS c;
END;
COMMENT ON FUNCTION approvals.api_cancel_batch(text) IS
    'DELETE /approval-batches/:id: cancel a batch, answer {batch_id, cancelled, cancelled_at, claims_reverted}';

-- Seed 002 (payout-file confirmation) and seed 003 (batch processor statistics)
CREATE FUNCTION approvals.batch_of_file(file_id text, tracking_id text) RETURNS text
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'approvals_batch_of_file';
COMMENT ON FUNCTION approvals.batch_of_file(text, text) IS
    'The batch a payout-file request names by file_id or tracking_id (22023 when none, or two different ones)';

CREATE FUNCTION approvals.api_payout_file(b approvals.batches) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, approvals, pg_temp
    RETURN pg_catalog.jsonb_build_object(
        'file_id', b.id, 'tracking_id', b.tracking_id,
        'status', CASE b.status WHEN 'pending' THEN 'PREVIEW-AND-APPROVE'
                                WHEN 'queued' THEN 'PROCESSING'
                                WHEN 'processing' THEN 'PROCESSING'
                                ELSE pg_catalog.upper(b.status) END,
        'batch_reference', b.reference,
        'total_amount', pg_catalog.round(b.total_amount, 2)::text,
        'transactions_count', b.total_claims,
        'paid_amount', pg_catalog.round(b.approved_amount, 2)::text,
        'failed_amount', pg_catalog.round(b.failed_amount, 2)::text,
        'transactions', coalesce((
            SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                       'transaction_id', i.claim_id,
                       'status', CASE i.decision WHEN 'approved' THEN 'APPROVED'
                                                 WHEN 'rejected' THEN 'REJECTED'
                                                 WHEN 'failed' THEN 'FAILED'
                                                 WHEN 'reverted' THEN 'REVERTED'
                                                 ELSE 'PENDING' END,
                       'amount', pg_catalog.round(c.amount, 2)::text,
                       'name', c.title) ORDER BY i.position)
            FROM approvals.batch_items i LEFT JOIN approvals.claims c ON c.id = i.claim_id
            WHERE i.batch_id = b.id), '[]'::jsonb),
        'created_at', approvals.json_ts(b.created_at),
        'updated_at', approvals.json_ts(b.updated_at));
COMMENT ON FUNCTION approvals.api_payout_file(approvals.batches) IS
    'A batch as the payout-file API''s file object (amounts as strings with two decimals)';

CREATE FUNCTION approvals.api_approve_file(body jsonb) RETURNS jsonb
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, approvals, pg_temp
BEGIN ATOMIC
    SELECT approvals.api_payout_file(b)
    FROM approvals.start_batch(
        approvals.batch_of_file(approvals.json_string(body, 'file_id'),
                                approvals.json_string(body, 'tracking_id')),
        approvals.json_text_array(body, 'transactions', true)) AS b;
END;
COMMENT ON FUNCTION approvals.api_approve_file(jsonb) IS
    'POST /send-money/approve/: confirm a pending batch from {file_id | tracking_id, transactions}, answer the file object';

CREATE FUNCTION approvals.api_batch_statistics(batch_id text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, approvals, pg_temp
BEGIN ATOMIC
    SELECT pg_catalog.jsonb_build_object(
        'batchRef', b.reference, 'processedBy', b.coordinator, 'status', b.status,
        'totalPayments', b.total_claims,
        'totalPaymentsProcessed', b.approved_count + b.rejected_count,
        'totalPaymentsSuspended', b.failed_count,
        'totalAmount', b.total_amount,
        'batchCurrency', (SELECT CASE WHEN pg_catalog.count(DISTINCT c.currency) = 1
                                      THEN pg_catalog.min(c.currency) END
                          FROM approvals.batch_items i JOIN approvals.claims c ON c.id = i.claim_id
                          WHERE i.batch_id = b.id),
        'processStartDate', (EXTRACT(epoch FROM b.started_at) * 1000)::bigint,
        'processEndDate', (EXTRACT(epoch FROM coalesce(b.completed_at, b.cancelled_at)) * 1000)::bigint,
        'processCompletionDate', (EXTRACT(epoch FROM b.completed_at) * 1000)::bigint,
        'durationInQueue', pg_catalog.floor(EXTRACT(epoch FROM b.started_at - b.queued_at))::bigint,
        'durationProcessed', pg_catalog.round(EXTRACT(epoch FROM coalesce(b.completed_at, b.cancelled_at)
                                                       - b.started_at) * 1000)::bigint)
    FROM approvals.get_batch(api_batch_statistics.batch_id) AS b;
END;
COMMENT ON FUNCTION approvals.api_batch_statistics(text) IS
    'A batch''s paymentBatchStatistics (seed 003): counts, amount, dates as epoch milliseconds';

CREATE FUNCTION approvals.api_process_batch(batch_id text, override_threshold boolean DEFAULT false,
                                            auto_retry boolean DEFAULT true) RETURNS jsonb
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_api_process_batch';
COMMENT ON FUNCTION approvals.api_process_batch(text, boolean, boolean) IS
    'POST /batchpayments/process: process a batch now (override_threshold: continue past the threshold), answer its paymentBatchStatistics';

-- ---------------------------------------------------------------------------
-- Privileges: PUBLIC gets nothing; each group role gets what it needs.
-- ---------------------------------------------------------------------------
REVOKE ALL ON ALL ROUTINES IN SCHEMA approvals FROM PUBLIC;
GRANT EXECUTE ON FUNCTION approvals.sees_all_tenants(), approvals.visible_tenants(),
      approvals.json_ts(timestamptz), approvals.json_required(jsonb, text),
      approvals.json_string(jsonb, text, boolean, text[]),
      approvals.api_approval(approvals.claims)
      TO approvals_reader, approvals_requester, approvals_reviewer,
         approvals_coordinator, approvals_admin, approvals_platform;
GRANT EXECUTE ON FUNCTION
      approvals.submit(text, text, text, text, text, text, text, text, numeric, text, text,
                       text, jsonb, text[], integer, text, timestamptz, text, jsonb),
      approvals.api_submit(jsonb)
      TO approvals_requester;
GRANT EXECUTE ON FUNCTION approvals.cancel_claim(text, text, text)
      TO approvals_requester, approvals_admin;
GRANT EXECUTE ON FUNCTION approvals.decide(text, text, text, text, text, text),
      approvals.api_respond(text, jsonb, text),
      approvals.delegate(text, timestamptz, timestamptz, text, text, numeric, text, text),
      approvals.inbox(text, integer, text),
      approvals.inbox_key(text, text),
      approvals.inbox_after(text, integer, smallint, timestamptz, timestamptz, text)
      TO approvals_reviewer;
GRANT EXECUTE ON FUNCTION approvals.revoke_delegation(text, text)
      TO approvals_reviewer, approvals_admin;
GRANT EXECUTE ON FUNCTION
      approvals.create_batch(text[], text, text, text, boolean, text, integer, real, text,
                             boolean, text, text),
      approvals.api_approve_file(jsonb),
      approvals.api_process_batch(text, boolean, boolean),
      approvals.update_batch(text, text[], text[], text),
      approvals.start_batch(text, text[]),
      approvals.process_batch(text),
      approvals.cancel_batch(text, text),
      approvals.wait_batch(text, interval),
      approvals.api_create_batch(jsonb),
      approvals.api_update_batch(text, jsonb),
      approvals.api_cancel_batch(text)
      TO approvals_coordinator;
GRANT EXECUTE ON PROCEDURE approvals.run_queued(integer) TO approvals_coordinator, approvals_admin;
GRANT EXECUTE ON FUNCTION approvals.batch_results(text),
      approvals.list_batches(text, text, integer, integer),
      approvals.get_batch(text),
      approvals.api_batch_summary(approvals.batches),
      approvals.api_list_batches(integer, integer),
      approvals.api_get_batch(text),
      approvals.json_text_array(jsonb, text, boolean)
      TO approvals_reader;
GRANT EXECUTE ON FUNCTION approvals.purge_batches(interval) TO approvals_admin;
GRANT EXECUTE ON FUNCTION approvals.seal_audit() TO approvals_admin;
GRANT EXECUTE ON FUNCTION approvals.verify_audit(bigint, bigint), approvals.audit_head()
      TO approvals_reader;
GRANT EXECUTE ON FUNCTION approvals.batch_of_file(text, text),
      approvals.api_payout_file(approvals.batches), approvals.api_batch_statistics(text)
      TO approvals_reader;
GRANT EXECUTE ON FUNCTION approvals.claim_stats(timestamptz, text),
      approvals.approver_stats(timestamptz, text),
      approvals.claim_stats_parts(timestamptz, text),
      approvals.approver_stats_parts(timestamptz, text)
      TO approvals_reader;
GRANT SELECT ON approvals.batch_progress TO approvals_reader;
GRANT EXECUTE ON FUNCTION approvals.expire_due(),
      approvals.set_policy(text, text, text, text[], integer, numeric, interval, text, boolean,
                           jsonb),
      approvals.drop_policy(text, text, text),
      approvals.set_handler(text, regprocedure),
      approvals.grant_tenant(text, regrole), approvals.revoke_tenant(text, regrole)
      TO approvals_admin;

-- ---------------------------------------------------------------------------
-- Say so when no background worker will process this database's batches.
-- ---------------------------------------------------------------------------
DO $worker$
BEGIN
    -- CREATE EXTENSION runs this script with client_min_messages = warning; this NOTICE is
    -- for the user (the setting comes back when the script ends).
    PERFORM pg_catalog.set_config('client_min_messages', 'notice', true);
    IF pg_catalog.current_setting('shared_preload_libraries')
           !~ '(^|[[:space:],])"?approvals"?([[:space:],]|$)' THEN
        RAISE NOTICE 'no background worker will process batches in database "%": approvals is not in shared_preload_libraries',
                     pg_catalog.current_database()
            USING HINT = 'Queued batches are processed by CALL approvals.run_queued() (from psql or a pg_cron job); or add approvals to shared_preload_libraries and restart.';
    ELSIF coalesce(pg_catalog.current_setting('approvals.database', true), '')
              NOT IN ('', pg_catalog.current_database()) THEN
        RAISE NOTICE 'no background worker will process batches in database "%": approvals.database restricts the worker to "%"',
                     pg_catalog.current_database(), pg_catalog.current_setting('approvals.database')
            USING HINT = 'Queued batches are processed by CALL approvals.run_queued() (from psql or a pg_cron job); or empty approvals.database and restart.';
    END IF;
END
$worker$;
