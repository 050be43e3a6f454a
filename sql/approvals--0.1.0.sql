-- approvals 0.1.0: the claims core.
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
    expires_at          timestamptz
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
    at            timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE approvals.events IS
    'Append-only audit log: one row per claim state change';
CREATE INDEX events_claim ON approvals.events (claim_id, id);
CREATE INDEX events_batch ON approvals.events (batch_id) WHERE batch_id IS NOT NULL;

CREATE TABLE approvals.policies (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    UNIQUE NULLS NOT DISTINCT (tenant, resource_type, kind)
);
COMMENT ON TABLE approvals.policies IS
    'Approval policies matched at submit (NULL columns match anything)';

CREATE TABLE approvals.handlers (
    resource_type text PRIMARY KEY,
    handler       regprocedure NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE approvals.handlers IS
    'Per resource type, a function run in the same transaction as every claim state change';

CREATE TABLE approvals.tenant_grants (
    tenant     text NOT NULL,
    member     oid NOT NULL,
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

SELECT pg_catalog.pg_extension_config_dump('approvals.claims', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.events', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.policies', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.handlers', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.tenant_grants', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.idempotency_keys', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.policies_id_seq', '');

-- The audit log refuses UPDATE, DELETE and TRUNCATE, whoever asks.
CREATE FUNCTION approvals.events_append_only() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'approvals_events_append_only';
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON approvals.events
    FOR EACH ROW EXECUTE FUNCTION approvals.events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON approvals.events
    FOR EACH STATEMENT EXECUTE FUNCTION approvals.events_append_only();

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
CREATE POLICY claims_tenant_isolation ON approvals.claims FOR SELECT
    USING (tenant IS NULL
           OR (SELECT approvals.sees_all_tenants())
           OR tenant = ANY ((SELECT approvals.visible_tenants())::text[]));
CREATE POLICY events_tenant_isolation ON approvals.events FOR SELECT
    USING (tenant IS NULL
           OR (SELECT approvals.sees_all_tenants())
           OR tenant = ANY ((SELECT approvals.visible_tenants())::text[]));

REVOKE ALL ON ALL TABLES IN SCHEMA approvals FROM PUBLIC;
GRANT SELECT ON approvals.claims, approvals.events, approvals.policies,
                approvals.handlers TO approvals_reader;

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
    idempotency_key text DEFAULT NULL)
RETURNS approvals.claims
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_submit';
COMMENT ON FUNCTION approvals.submit(text, text, text, text, text, text, text, text, numeric,
    text, text, text, jsonb, text[], integer, text, timestamptz, text) IS
    'Submit a resource for approval: creates a pending claim (superseding the resource''s previous pending claim)';

CREATE FUNCTION approvals.decide(
    claim_id text, outcome text, comment text DEFAULT NULL,
    snapshot_hash text DEFAULT NULL, actor text DEFAULT NULL)
RETURNS approvals.claims
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_decide';
COMMENT ON FUNCTION approvals.decide(text, text, text, text, text) IS
    'Approve, reject or abstain on a pending claim';

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
    on_expiry text DEFAULT 'expire', allow_self_approval boolean DEFAULT false)
RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_set_policy';
COMMENT ON FUNCTION approvals.set_policy(text, text, text, text[], integer, numeric, interval,
    text, boolean) IS
    'Create or replace the policy for (tenant, resource_type, kind); NULL matches anything';

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
        resource_type => approvals.json_required(body, 'resourceType'),
        resource_id   => approvals.json_required(body, 'resourceId'),
        snapshot_hash => approvals.json_required(body, 'dataSnapshotHash'),
        tenant        => approvals.json_required(body, 'merchantId'),
        kind          => coalesce(body ->> 'kind', 'data_review'),
        note          => body ->> 'note',
        actor         => body ->> 'actorId'));
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
-- Privileges: PUBLIC gets nothing; each group role gets what it needs.
-- ---------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA approvals FROM PUBLIC;
GRANT EXECUTE ON FUNCTION approvals.sees_all_tenants(), approvals.visible_tenants(),
      approvals.json_ts(timestamptz), approvals.json_required(jsonb, text),
      approvals.api_approval(approvals.claims)
      TO approvals_reader, approvals_requester, approvals_reviewer,
         approvals_coordinator, approvals_admin, approvals_platform;
GRANT EXECUTE ON FUNCTION
      approvals.submit(text, text, text, text, text, text, text, text, numeric, text, text,
                       text, jsonb, text[], integer, text, timestamptz, text),
      approvals.api_submit(jsonb)
      TO approvals_requester;
GRANT EXECUTE ON FUNCTION approvals.cancel_claim(text, text, text)
      TO approvals_requester, approvals_admin;
GRANT EXECUTE ON FUNCTION approvals.decide(text, text, text, text, text),
      approvals.api_respond(text, jsonb, text)
      TO approvals_reviewer;
GRANT EXECUTE ON FUNCTION approvals.expire_due(),
      approvals.set_policy(text, text, text, text[], integer, numeric, interval, text, boolean),
      approvals.set_handler(text, regprocedure),
      approvals.grant_tenant(text, regrole), approvals.revoke_tenant(text, regrole)
      TO approvals_admin;
