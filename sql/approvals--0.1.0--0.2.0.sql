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
    'Trigger of approvals.events and approvals.audit_seals: refuses UPDATE, DELETE and TRUNCATE (39P01 when called directly)';
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

-- A batch's items are written once: the claim list is kept compactly (claim id arrays of
-- consecutive positions) until a chunk processes those items and writes their results (one
-- row per chunk, arrays again); approvals.batch_items becomes a view of both.
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

-- The items of 0.1.0: the processed ones become result rows (one per run of consecutive
-- positions processed at the same time, at most 1000 items), the others claim lists of
-- consecutive positions (at most 1000 ids each, as create_batch writes them).
INSERT INTO approvals.batch_item_results (batch_id, first_position, last_position, claim_ids,
                                          decisions, errors, processed_at)
    SELECT batch_id, min(position), max(position),
           pg_catalog.array_agg(claim_id ORDER BY position),
           pg_catalog.array_agg(decision ORDER BY position),
           pg_catalog.array_agg(error ORDER BY position), t
    FROM (SELECT batch_id, position, claim_id, decision, error, coalesce(processed_at, now()) AS t,
                 position - pg_catalog.row_number() OVER (
                     PARTITION BY batch_id, coalesce(processed_at, now()) ORDER BY position) AS run
          FROM approvals.batch_items WHERE decision IS NOT NULL) i
    GROUP BY batch_id, t, run, (position - 1) / 1000;
INSERT INTO approvals.batch_item_lists (batch_id, first_position, last_position, claim_ids)
    SELECT batch_id, min(position), max(position), pg_catalog.array_agg(claim_id ORDER BY position)
    FROM (SELECT batch_id, position, claim_id,
                 position - pg_catalog.row_number() OVER (PARTITION BY batch_id ORDER BY position) AS run
          FROM approvals.batch_items WHERE decision IS NULL) i
    GROUP BY batch_id, run, (position - 1) / 1000;
-- A batch resumes at next_position, before which a list holds no item.
UPDATE approvals.batches b SET next_position = l.first_position
    FROM (SELECT batch_id, min(first_position) AS first_position
          FROM approvals.batch_item_lists GROUP BY batch_id) l
    WHERE l.batch_id = b.id AND b.next_position > l.first_position;
ALTER EXTENSION approvals DROP TABLE approvals.batch_items;  -- also leaves pg_extension_config_dump
DROP TABLE approvals.batch_items;

ALTER TABLE approvals.batch_item_lists ENABLE ROW LEVEL SECURITY;
ALTER TABLE approvals.batch_item_results ENABLE ROW LEVEL SECURITY;
CREATE POLICY batch_item_lists_tenant_isolation ON approvals.batch_item_lists FOR SELECT
    USING (EXISTS (SELECT 1 FROM approvals.batches b WHERE b.id = batch_id));
CREATE POLICY batch_item_results_tenant_isolation ON approvals.batch_item_results FOR SELECT
    USING (EXISTS (SELECT 1 FROM approvals.batches b WHERE b.id = batch_id));
COMMENT ON POLICY batch_item_lists_tenant_isolation ON approvals.batch_item_lists IS
    'Tenant isolation: an item is visible when its batch is';
COMMENT ON POLICY batch_item_results_tenant_isolation ON approvals.batch_item_results IS
    'Tenant isolation: an item is visible when its batch is';
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
REVOKE ALL ON approvals.batch_item_lists, approvals.batch_item_results, approvals.batch_items
    FROM PUBLIC;
GRANT SELECT ON approvals.batch_items, approvals.batch_item_lists, approvals.batch_item_results
    TO approvals_reader;
SELECT pg_catalog.pg_extension_config_dump('approvals.batch_item_lists', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.batch_item_results', '');

-- Delegation, steps, policy versions and the inbox.
-- The functions whose arguments grow (submit, decide, set_policy) are created again, with the
-- JSON functions bound to them; the claim row type gains columns meanwhile.
DROP FUNCTION approvals.api_respond(text, jsonb, text);
DROP FUNCTION approvals.api_submit(jsonb);
DROP FUNCTION approvals.decide(text, text, text, text, text);
DROP FUNCTION approvals.submit(text, text, text, text, text, text, text, text, numeric, text,
    text, text, jsonb, text[], integer, text, timestamptz, text);
DROP FUNCTION approvals.set_policy(text, text, text, text[], integer, numeric, interval, text,
    boolean);

-- Columns are added without a default, then given one: PostgreSQL refuses ADD COLUMN … DEFAULT
-- on a table whose row type a SQL-standard function body uses (a handler written BEGIN
-- ATOMIC, for one).
ALTER TABLE approvals.claims
    ADD COLUMN steps           jsonb,
    ADD COLUMN current_step    integer,
    ADD COLUMN step_approvals  integer,
    ADD COLUMN step_abstained  text[],
    ADD COLUMN step_escalated  boolean,
    ADD COLUMN named_approvers text[],
    ADD COLUMN policy_id       bigint,
    ADD COLUMN policy_version  integer;
ALTER TABLE approvals.claims
    ALTER COLUMN step_approvals SET DEFAULT 0,
    ALTER COLUMN step_abstained SET DEFAULT '{}',
    ALTER COLUMN step_escalated SET DEFAULT false;
-- claims on a route wait for their assignee by name
UPDATE approvals.claims SET step_approvals = 0, step_abstained = '{}', step_escalated = false,
    named_approvers = CASE WHEN status = 'pending' AND assignee IS NOT NULL THEN ARRAY[assignee] END;
ALTER TABLE approvals.claims
    ALTER COLUMN step_approvals SET NOT NULL,
    ALTER COLUMN step_abstained SET NOT NULL,
    ALTER COLUMN step_escalated SET NOT NULL;
ALTER TABLE approvals.events ADD COLUMN on_behalf_of text;

-- Every set_policy makes a version; one version per key is active.
ALTER TABLE approvals.policies
    DROP CONSTRAINT policies_tenant_resource_type_kind_key,
    DROP CONSTRAINT policies_pkey,
    ADD COLUMN version integer,
    ADD COLUMN active  boolean,
    ADD COLUMN steps   jsonb;
ALTER TABLE approvals.policies
    ALTER COLUMN version SET DEFAULT 1,
    ALTER COLUMN active SET DEFAULT true;
UPDATE approvals.policies SET version = 1, active = true;
ALTER TABLE approvals.policies
    ALTER COLUMN version SET NOT NULL,
    ALTER COLUMN active SET NOT NULL,
    ADD PRIMARY KEY (id, version);
COMMENT ON TABLE approvals.policies IS
    'Approval policies matched at submit (NULL columns match anything), every version of each';
CREATE UNIQUE INDEX policies_one_active ON approvals.policies (tenant, resource_type, kind)
    NULLS NOT DISTINCT WHERE active;
COMMENT ON INDEX approvals.policies_one_active IS
    'One active version per (tenant, resource_type, kind)';

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

-- the inbox entries of the claims that wait for someone
INSERT INTO approvals.inbox_entries (actor, rank, expires_key, created_at, claim_id, tenant,
                                     resource_type, amount, requester)
SELECT a.actor, CASE c.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END,
       coalesce(c.expires_at, 'infinity'), c.created_at, c.id, c.tenant, c.resource_type,
       c.amount, c.requester
FROM approvals.claims c, unnest(c.named_approvers) AS a(actor)
WHERE c.status = 'pending' AND a.actor <> c.requester;
SELECT pg_catalog.pg_extension_config_dump('approvals.delegations', '');
SELECT pg_catalog.pg_extension_config_dump('approvals.inbox_entries', '');
ALTER TABLE approvals.delegations ENABLE ROW LEVEL SECURITY;
CREATE POLICY delegations_tenant_isolation ON approvals.delegations FOR SELECT
    USING (tenant IS NULL
           OR (SELECT approvals.sees_all_tenants())
           OR tenant = ANY ((SELECT approvals.visible_tenants())::text[]));
COMMENT ON POLICY delegations_tenant_isolation ON approvals.delegations IS
    'Tenant isolation: a delegation scoped to a tenant is visible as that tenant''s claims are';
REVOKE ALL ON approvals.delegations, approvals.inbox_entries FROM PUBLIC;
GRANT SELECT ON approvals.delegations TO approvals_reader;

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

REVOKE ALL ON FUNCTION
      approvals.submit(text, text, text, text, text, text, text, text, numeric, text, text,
                       text, jsonb, text[], integer, text, timestamptz, text, jsonb),
      approvals.decide(text, text, text, text, text, text),
      approvals.set_policy(text, text, text, text[], integer, numeric, interval, text, boolean,
                           jsonb),
      approvals.drop_policy(text, text, text),
      approvals.delegate(text, timestamptz, timestamptz, text, text, numeric, text, text),
      approvals.revoke_delegation(text, text),
      approvals.inbox(text, integer, text), approvals.inbox_key(text, text),
      approvals.inbox_after(text, integer, smallint, timestamptz, timestamptz, text),
      approvals.api_submit(jsonb), approvals.api_respond(text, jsonb, text)
      FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
      approvals.submit(text, text, text, text, text, text, text, text, numeric, text, text,
                       text, jsonb, text[], integer, text, timestamptz, text, jsonb),
      approvals.api_submit(jsonb)
      TO approvals_requester;
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
      approvals.set_policy(text, text, text, text[], integer, numeric, interval, text, boolean,
                           jsonb),
      approvals.drop_policy(text, text, text)
      TO approvals_admin;

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

REVOKE ALL ON FUNCTION approvals.seal_audit(), approvals.verify_audit(bigint, bigint),
      approvals.audit_head() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION approvals.seal_audit() TO approvals_admin;
GRANT EXECUTE ON FUNCTION approvals.verify_audit(bigint, bigint), approvals.audit_head()
      TO approvals_reader;

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

REVOKE ALL ON FUNCTION approvals.claim_stats(timestamptz, text),
      approvals.approver_stats(timestamptz, text),
      approvals.claim_stats_parts(timestamptz, text),
      approvals.approver_stats_parts(timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION approvals.claim_stats(timestamptz, text),
      approvals.approver_stats(timestamptz, text),
      approvals.claim_stats_parts(timestamptz, text),
      approvals.approver_stats_parts(timestamptz, text)
      TO approvals_reader;

-- Seeds 002 and 003: batches carry a reference and a tracking id; create_batch takes the
-- reference (so it and the JSON function bound to it are created again).
DROP FUNCTION approvals.api_create_batch(jsonb);
DROP FUNCTION approvals.create_batch(text[], text, text, text, boolean, text, integer, real, text,
    boolean, text);
ALTER TABLE approvals.batches ADD COLUMN reference text, ADD COLUMN tracking_id uuid;
ALTER TABLE approvals.batches ALTER COLUMN tracking_id SET DEFAULT gen_random_uuid();
UPDATE approvals.batches SET tracking_id = gen_random_uuid();
ALTER TABLE approvals.batches ALTER COLUMN tracking_id SET NOT NULL,
    ADD CONSTRAINT batches_tracking_id_key UNIQUE (tracking_id);
-- SQL-standard bodies that read the batch row type list its columns: written again
CREATE OR REPLACE FUNCTION approvals.api_list_batches(page integer DEFAULT 1, "limit" integer DEFAULT 20)
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
CREATE OR REPLACE FUNCTION approvals.api_get_batch(batch_id text) RETURNS jsonb
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

REVOKE ALL ON FUNCTION
      approvals.create_batch(text[], text, text, text, boolean, text, integer, real, text,
                             boolean, text, text),
      approvals.api_create_batch(jsonb), approvals.batch_of_file(text, text),
      approvals.api_payout_file(approvals.batches), approvals.api_approve_file(jsonb),
      approvals.api_batch_statistics(text), approvals.api_process_batch(text, boolean, boolean)
      FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
      approvals.create_batch(text[], text, text, text, boolean, text, integer, real, text,
                             boolean, text, text),
      approvals.api_create_batch(jsonb), approvals.api_approve_file(jsonb),
      approvals.api_process_batch(text, boolean, boolean)
      TO approvals_coordinator;
GRANT EXECUTE ON FUNCTION approvals.batch_of_file(text, text),
      approvals.api_payout_file(approvals.batches), approvals.api_batch_statistics(text)
      TO approvals_reader;

-- The uncontended pass of a batch chunk (decides without a lock pass) asks it which claims
-- another transaction holds.
CREATE FUNCTION approvals.claim_row_unlocked(claim_row tid) RETURNS boolean
    LANGUAGE c STRICT VOLATILE
    AS 'MODULE_PATHNAME', 'approvals_claim_row_unlocked';
COMMENT ON FUNCTION approvals.claim_row_unlocked(tid) IS
    'Internal: does no other transaction hold the approvals.claims row at that location? (a batch chunk leaves such claims to its lock pass instead of waiting)';
REVOKE ALL ON FUNCTION approvals.claim_row_unlocked(tid) FROM PUBLIC;
