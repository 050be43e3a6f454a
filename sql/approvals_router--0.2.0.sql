-- approvals_router 0.2.0: the approvals API (API.md sections 3-6 and 9-12) on a
-- router database, forwarded with PL/Proxy to the node that owns each call.
--
-- Placement: a tenant's claims, batches and delegations live on one partition,
-- approvals_router.tenant_key(tenant) & (partitions - 1). Every id a node makes
-- carries that key as the two hex digits after its prefix (clm_7f...), and a
-- batch's tracking_id as its first byte, so an id routes without a lookup.
-- Calls that name no tenant or id run on every node and are merged here.
-- PL/Proxy connects to a node as the calling role (current_user): the node
-- authorizes the original caller. Declarations only; nothing is decided here.

\echo Use "CREATE EXTENSION approvals_router" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Group roles: the same names as on the nodes (created when missing; the same
-- list as the approvals script, so that a role means the same on router and node)
-- ---------------------------------------------------------------------------
DO $roles$
DECLARE
    r text;
BEGIN
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

CREATE SCHEMA approvals;
COMMENT ON SCHEMA approvals IS
    'The approvals API, routed to the nodes that own each tenant (extension approvals_router)';
COMMENT ON SCHEMA approvals_router IS
    'Partitions and routing of the approvals router (extension approvals_router)';
REVOKE ALL ON SCHEMA approvals, approvals_router FROM PUBLIC;
GRANT USAGE ON SCHEMA approvals, approvals_router TO approvals_reader, approvals_requester,
      approvals_reviewer, approvals_coordinator, approvals_admin, approvals_platform;

-- ---------------------------------------------------------------------------
-- Partitions and routing keys
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals_router.set_partitions(conninfos text[]) RETURNS integer
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer := coalesce(cardinality(conninfos), 0);
    current text[];
    opts text[] := ARRAY[]::text[];
    name text;
BEGIN
    IF conninfos IS NULL THEN
        RAISE EXCEPTION 'conninfos must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF n < 1 OR n > 256 OR (n & (n - 1)) <> 0 THEN
        RAISE EXCEPTION 'conninfos has % entries; it must be a power of two from 1 to 256', n
            USING ERRCODE = '22023',
                  HINT = 'Name a node several times to get a power of two (ARRAY[a, b, c, a]).';
    END IF;
    IF array_position(conninfos, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'partition % has a NULL connection string', array_position(conninfos, NULL) - 1
            USING ERRCODE = '22004';
    END IF;
    -- The node must see the caller: PL/Proxy connects as the calling role only when the
    -- string names no user (and it cannot add one to a URI).
    SELECT format('partition %s: %L names a user, a password or is a URI', i - 1, conninfos[i])
      INTO name
      FROM generate_subscripts(conninfos, 1) i
     WHERE conninfos[i] ~* '(^|[[:space:]])(user|password|passfile)[[:space:]]*='
        OR conninfos[i] ~* '^[a-z]+://'
     LIMIT 1;
    IF name IS NOT NULL THEN
        RAISE EXCEPTION '%', name
            USING ERRCODE = '22023',
                  HINT = 'Give host, port, dbname and the like as key=value pairs: PL/Proxy connects as the calling role, and a password belongs in a user mapping (CREATE USER MAPPING FOR role SERVER approvals_nodes OPTIONS (password ...), as a superuser) or in the router''s .pgpass.';
    END IF;
    -- PL/Proxy shares a node's connection between partitions whose strings are equal; the
    -- same node spelled two ways would run every call on every node twice on it.
    SELECT format('partitions %s and %s name the same node in two spellings: %L and %L',
                  a.i - 1, b.i - 1, conninfos[a.i], conninfos[b.i])
      INTO name
      FROM generate_subscripts(conninfos, 1) a(i), generate_subscripts(conninfos, 1) b(i)
     WHERE a.i < b.i AND conninfos[a.i] <> conninfos[b.i]
       AND ARRAY(SELECT t FROM regexp_split_to_table(btrim(conninfos[a.i]), '\s+') t ORDER BY t)
         = ARRAY(SELECT t FROM regexp_split_to_table(btrim(conninfos[b.i]), '\s+') t ORDER BY t)
     LIMIT 1;
    IF name IS NOT NULL THEN
        RAISE EXCEPTION '%', name
            USING ERRCODE = '22023',
                  HINT = 'Repeat a node''s connection string exactly: PL/Proxy tells nodes apart by the string.';
    END IF;
    SELECT array_agg(split_part(o, '=', 1)) INTO current
    FROM pg_foreign_server s, unnest(s.srvoptions) o
    WHERE s.srvname = 'approvals_nodes' AND o ~ '^p[0-9]+=';
    IF NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'approvals_nodes') THEN
        EXECUTE format('CREATE SERVER approvals_nodes FOREIGN DATA WRAPPER plproxy OPTIONS (%s)',
                       (SELECT string_agg(format('p%s %L', i - 1, conninfos[i]), ', ')
                        FROM generate_subscripts(conninfos, 1) i)
                       || ', disable_binary ''1''');
        CREATE USER MAPPING FOR PUBLIC SERVER approvals_nodes;
        GRANT USAGE ON FOREIGN SERVER approvals_nodes TO approvals_reader, approvals_requester,
              approvals_reviewer, approvals_coordinator, approvals_admin, approvals_platform;
        RETURN n;
    END IF;
    -- One ALTER: PL/Proxy checks the partition count of the final option list only.
    FOR i IN 1 .. n LOOP
        name := 'p' || (i - 1);
        opts := opts || format('%s %s %L', CASE WHEN name = ANY (current) THEN 'SET' ELSE 'ADD' END,
                               name, conninfos[i]);
    END LOOP;
    FOREACH name IN ARRAY coalesce(current, ARRAY[]::text[]) LOOP
        IF substr(name, 2)::integer >= n THEN
            opts := opts || format('DROP %s', name);
        END IF;
    END LOOP;
    EXECUTE format('ALTER SERVER approvals_nodes OPTIONS (%s)', array_to_string(opts, ', '));
    RETURN n;
END
$$;
COMMENT ON FUNCTION approvals_router.set_partitions(text[]) IS
    'Set the nodes (libpq connection strings) of the partitions, a power of two of them; a node may appear several times';

CREATE VIEW approvals_router.partitions AS
    SELECT substr(split_part(o, '=', 1), 2)::integer AS partition,
           substr(o, strpos(o, '=') + 1) AS conninfo
    FROM pg_catalog.pg_foreign_server s, unnest(s.srvoptions) o
    WHERE s.srvname = 'approvals_nodes' AND o ~ '^p[0-9]+='
    ORDER BY 1;
COMMENT ON VIEW approvals_router.partitions IS
    'The partitions and the connection string of the node of each';

CREATE FUNCTION approvals_router.tenant_key(tenant text) RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN pg_catalog.get_byte(pg_catalog.sha256(pg_catalog.convert_to(coalesce(tenant, ''), 'UTF8')), 0);
COMMENT ON FUNCTION approvals_router.tenant_key(text) IS
    'The routing key of a tenant: the first byte of SHA-256 of its name in UTF-8 (NULL: of the empty string), 0..255';

-- Ids that carry no key of their tenant: made before 0.2.0, or chosen by the caller on a node.
CREATE TABLE approvals_router.id_routes (
    id      text PRIMARY KEY,
    key     integer NOT NULL CHECK (key BETWEEN 0 AND 255)
);
COMMENT ON TABLE approvals_router.id_routes IS
    'Ids (claim, batch, delegation; a tracking_id as 32 hex digits) whose tenant''s key they do not carry, with that key: filled by learn_ids()';

CREATE FUNCTION approvals_router.carried_key(id text) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN id ~ '^[a-z]+_[0-9a-f]{2}'
                THEN ('x' || substring(id FROM '^[a-z]+_([0-9a-f]{2})'))::bit(8)::integer
                ELSE pg_catalog.get_byte(pg_catalog.sha256(pg_catalog.convert_to(coalesce(id, ''), 'UTF8')), 0)
           END;
COMMENT ON FUNCTION approvals_router.carried_key(text) IS
    'The routing key an id carries (the two hex digits after its prefix); an id that carries none, its own hash';

CREATE FUNCTION approvals_router.id_key(id text) RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN coalesce((SELECT r.key FROM approvals_router.id_routes r WHERE r.id = id_key.id),
                    approvals_router.carried_key(id));
COMMENT ON FUNCTION approvals_router.id_key(text) IS
    'The routing key of an id: the one learn_ids() recorded for it, else the one it carries';

CREATE FUNCTION approvals_router.tracking_hex(tracking_id text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN lower(regexp_replace(tracking_id, '[^0-9a-fA-F]', '', 'g'));
CREATE FUNCTION approvals_router.tracking_key(tracking_id text) RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN coalesce((SELECT r.key FROM approvals_router.id_routes r
                     WHERE r.id = approvals_router.tracking_hex(tracking_key.tracking_id)),
                    CASE WHEN tracking_id ~* '^\{?[0-9a-f]{2}'
                         THEN ('x' || lower(substring(tracking_id FROM '^\{?([0-9a-fA-F]{2})')))::bit(8)::integer
                         ELSE 0
                    END);
COMMENT ON FUNCTION approvals_router.tracking_key(text) IS
    'The routing key of a batch''s tracking_id: the one learn_ids() recorded, else its first byte';

CREATE FUNCTION approvals_router.file_key(body jsonb) RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE WHEN pg_catalog.jsonb_typeof(body -> 'file_id') = 'string'
                THEN approvals_router.id_key(body ->> 'file_id')
                WHEN pg_catalog.jsonb_typeof(body -> 'tracking_id') = 'string'
                THEN approvals_router.tracking_key(body ->> 'tracking_id')
                ELSE 0
           END;
COMMENT ON FUNCTION approvals_router.file_key(jsonb) IS
    'The routing key of a payout-file request: its file_id, else its tracking_id';

CREATE FUNCTION approvals_router.merchant_key(body jsonb) RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN approvals_router.tenant_key(body ->> 'merchantId');
COMMENT ON FUNCTION approvals_router.merchant_key(jsonb) IS
    'The routing key of an api_submit body: its merchantId''s';

CREATE FUNCTION approvals_router.submit_key(tenant text, id text) RETURNS integer
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k integer := approvals_router.tenant_key(tenant);
BEGIN
    IF id IS NOT NULL AND approvals_router.id_key(id) <> k THEN
        RAISE EXCEPTION 'claim id % does not carry the routing key of tenant %', id,
                        coalesce(tenant, 'NULL')
            USING ERRCODE = '22023',
                  HINT = format('Through the router, an id you choose is a prefix, an underscore and '
                                '"%s" (the tenant''s key in two hex digits), e.g. clm_%s...; or leave id NULL.',
                                lpad(to_hex(k), 2, '0'), lpad(to_hex(k), 2, '0'));
    END IF;
    RETURN k;
END
$$;
COMMENT ON FUNCTION approvals_router.submit_key(text, text) IS
    'The routing key of a submit: the tenant''s; an id chosen by the caller must carry it';

CREATE FUNCTION approvals_router.tenant_keys(tenant text) RETURNS SETOF integer
    LANGUAGE sql STABLE
    AS $$ SELECT approvals_router.tenant_key(tenant) WHERE tenant IS NOT NULL
          UNION ALL
          SELECT partition FROM approvals_router.partitions WHERE tenant IS NULL $$;
COMMENT ON FUNCTION approvals_router.tenant_keys(text) IS
    'Where a call about one tenant, or about every tenant (NULL), runs: that tenant''s partition, or every partition';

CREATE FUNCTION approvals_router.partition_of(tenant text) RETURNS integer
    LANGUAGE sql STABLE
    RETURN approvals_router.tenant_key(tenant)
           & ((SELECT count(*) FROM approvals_router.partitions)::integer - 1);
COMMENT ON FUNCTION approvals_router.partition_of(text) IS
    'The partition that holds a tenant''s claims, batches and delegations';

CREATE FUNCTION approvals_router.node_ids_each()
RETURNS TABLE(kind text, id text, tenant text)
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON ALL;
    SELECT 'id'::text AS kind, id, tenant FROM approvals.claims
    UNION ALL SELECT 'id', id, tenant FROM approvals.batches
    UNION ALL SELECT 'id', id, tenant FROM approvals.delegations
    UNION ALL SELECT 'tracking', pg_catalog.replace(tracking_id::text, '-', ''), tenant FROM approvals.batches;
$$;
CREATE FUNCTION approvals_router.learn_ids() RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    INSERT INTO approvals_router.id_routes (id, key)
    SELECT i.id, approvals_router.tenant_key(i.tenant)
      FROM approvals_router.node_ids_each() i
     WHERE approvals_router.tenant_key(i.tenant)
           <> CASE i.kind WHEN 'tracking' THEN ('x' || left(i.id, 2))::bit(8)::integer
                          ELSE approvals_router.carried_key(i.id) END
    ON CONFLICT (id) DO UPDATE SET key = EXCLUDED.key;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION approvals_router.learn_ids() IS
    'Read every id of every node and record those that do not carry their tenant''s key (superuser; after adding 0.1.0 data or ids chosen on a node); how many';

-- ---------------------------------------------------------------------------
-- Relations: the nodes' rows, read on every node
-- ---------------------------------------------------------------------------
CREATE TYPE approvals_router.claim AS (
    id text, tenant text, resource_type text, resource_id text, kind text, snapshot_hash text,
    status text, requester text, reviewer text, note text, title text, context text,
    fields jsonb, amount numeric, currency text, priority text, approvers text[],
    required_approvals integer, approval_count integer, approved_by text[],
    route_position integer, assignee text, allow_self_approval boolean, on_expiry text,
    expires_in interval, batch_id text, idempotency_key text, created_at timestamptz,
    updated_at timestamptz, decided_at timestamptz, expires_at timestamptz, steps jsonb,
    current_step integer, step_approvals integer, step_abstained text[],
    step_escalated boolean, named_approvers text[], policy_id bigint, policy_version integer);
CREATE TYPE approvals_router.event AS (
    id bigint, claim_id text, batch_id text, tenant text, actor text, action text,
    from_status text, to_status text, comment text, snapshot_hash text, at timestamptz,
    on_behalf_of text);
CREATE TYPE approvals_router.batch AS (
    id text, tenant text, coordinator text, comment text, action text, status text,
    total_claims integer, processed_count integer, approved_count integer,
    rejected_count integer, failed_count integer, reverted_count integer, total_amount numeric,
    approved_amount numeric, failed_amount numeric, max_failures integer,
    max_failure_ratio real, on_threshold text, auto_retry boolean, error text,
    idempotency_key text, created_by text, next_position integer, worker_pid integer,
    worker_started timestamptz, attempts integer, created_at timestamptz,
    updated_at timestamptz, queued_at timestamptz, started_at timestamptz,
    completed_at timestamptz, cancelled_at timestamptz, reference text, tracking_id uuid);
CREATE TYPE approvals_router.batch_item AS (
    batch_id text, "position" integer, claim_id text, decision text, error text,
    processed_at timestamptz);
CREATE TYPE approvals_router.delegation AS (
    id text, tenant text, delegator text, delegate text, resource_type text,
    max_amount numeric, valid_from timestamptz, valid_until timestamptz,
    revoked_at timestamptz, revoked_by text, revoke_comment text, comment text,
    created_by text, created_at timestamptz);
CREATE TYPE approvals_router.policy AS (
    id bigint, tenant text, resource_type text, kind text, approvers text[],
    required_approvals integer, auto_approve_below numeric, expires_in interval,
    on_expiry text, allow_self_approval boolean, created_at timestamptz,
    updated_at timestamptz, version integer, active boolean, steps jsonb);
CREATE TYPE approvals_router.audit_seal AS (
    id bigint, first_event bigint, last_event bigint, event_count integer, prev_hash text,
    hash text, sealed_at timestamptz);
CREATE TYPE approvals_router.batch_progress AS (
    batch_id text, status text, processed_count integer, total_claims integer,
    percent numeric, claims_per_second numeric, estimated_time_left interval,
    time_to_queue interval, time_in_queue interval, time_processing interval,
    worker_pid integer, attempts integer);

CREATE FUNCTION approvals_router.all_claims() RETURNS SETOF approvals_router.claim
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON ALL; SELECT * FROM approvals.claims; $$;
CREATE FUNCTION approvals_router.all_events() RETURNS SETOF approvals_router.event
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON ALL; SELECT * FROM approvals.events; $$;
CREATE FUNCTION approvals_router.all_batches() RETURNS SETOF approvals_router.batch
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON ALL;
    SELECT * FROM approvals.batches; $$;
CREATE FUNCTION approvals_router.all_batch_items() RETURNS SETOF approvals_router.batch_item
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON ALL; SELECT * FROM approvals.batch_items; $$;
CREATE FUNCTION approvals_router.all_delegations() RETURNS SETOF approvals_router.delegation
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON ALL; SELECT * FROM approvals.delegations; $$;
CREATE FUNCTION approvals_router.all_policies() RETURNS SETOF approvals_router.policy
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON ALL; SELECT * FROM approvals.policies; $$;
CREATE FUNCTION approvals_router.all_audit_seals() RETURNS SETOF approvals_router.audit_seal
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON ALL;
    SELECT id, first_event, last_event, event_count, prev_hash, hash, sealed_at FROM approvals.audit_seals; $$;
CREATE FUNCTION approvals_router.all_batch_progress() RETURNS SETOF approvals_router.batch_progress
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON ALL; SELECT * FROM approvals.batch_progress; $$;

CREATE VIEW approvals.claims WITH (security_invoker = true) AS SELECT * FROM approvals_router.all_claims();
CREATE VIEW approvals.events WITH (security_invoker = true) AS SELECT * FROM approvals_router.all_events();
CREATE VIEW approvals.batches WITH (security_invoker = true) AS SELECT * FROM approvals_router.all_batches();
CREATE VIEW approvals.batch_items WITH (security_invoker = true) AS SELECT * FROM approvals_router.all_batch_items();
CREATE VIEW approvals.delegations WITH (security_invoker = true) AS SELECT * FROM approvals_router.all_delegations();
CREATE VIEW approvals.policies WITH (security_invoker = true) AS SELECT * FROM approvals_router.all_policies();
CREATE VIEW approvals.audit_seals WITH (security_invoker = true) AS SELECT * FROM approvals_router.all_audit_seals();
CREATE VIEW approvals.batch_progress WITH (security_invoker = true) AS SELECT * FROM approvals_router.all_batch_progress();
COMMENT ON VIEW approvals.claims IS 'The claims of every node (each node applies the caller''s tenant isolation)';
COMMENT ON VIEW approvals.events IS 'The audit events of every node (ids are per node)';
COMMENT ON VIEW approvals.batches IS 'The batches of every node';
COMMENT ON VIEW approvals.batch_items IS 'The batch items of every node';
COMMENT ON VIEW approvals.delegations IS 'The delegations of every node';
COMMENT ON VIEW approvals.policies IS 'The policies of every node (set_policy through the router writes each node''s copy)';
COMMENT ON VIEW approvals.audit_seals IS 'The audit seals of every node (each node has its own chain)';
COMMENT ON VIEW approvals.batch_progress IS 'The progress of the batches of every node';

-- ---------------------------------------------------------------------------
-- Claims (API.md section 3)
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
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes';
    RUN ON approvals_router.submit_key(tenant, id);
$$;
COMMENT ON FUNCTION approvals.submit(text, text, text, text, text, text, text, text, numeric, text,
                                     text, text, jsonb, text[], integer, text, timestamptz, text, jsonb) IS
    'Submit a claim on the node of its tenant';

CREATE FUNCTION approvals.decide(claim_id text, outcome text, comment text DEFAULT NULL,
                                 snapshot_hash text DEFAULT NULL, actor text DEFAULT NULL,
                                 on_behalf_of text DEFAULT NULL)
RETURNS approvals.claims
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes';
    RUN ON approvals_router.id_key(claim_id);
$$;
COMMENT ON FUNCTION approvals.decide(text, text, text, text, text, text) IS
    'Decide a claim on the node that holds it';

CREATE FUNCTION approvals.cancel_claim(claim_id text, comment text DEFAULT NULL, actor text DEFAULT NULL)
RETURNS approvals.claims
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes';
    RUN ON approvals_router.id_key(claim_id);
$$;
COMMENT ON FUNCTION approvals.cancel_claim(text, text, text) IS
    'Cancel a pending claim on the node that holds it';

CREATE FUNCTION approvals_router.expire_due_each() RETURNS SETOF integer
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes';
    RUN ON ALL;
    SELECT approvals.expire_due();
$$;
CREATE FUNCTION approvals.expire_due() RETURNS integer
    LANGUAGE sql VOLATILE
    RETURN (SELECT coalesce(sum(n), 0)::integer FROM approvals_router.expire_due_each() n);
COMMENT ON FUNCTION approvals.expire_due() IS
    'Expire (or escalate) the claims past expires_at on every node; how many';

-- ---------------------------------------------------------------------------
-- Batches (API.md section 4)
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals.create_batch(
    claim_ids text[], coordinator text DEFAULT NULL, comment text DEFAULT NULL,
    action text DEFAULT 'approve', start boolean DEFAULT true, tenant text DEFAULT NULL,
    max_failures integer DEFAULT NULL, max_failure_ratio real DEFAULT NULL,
    on_threshold text DEFAULT 'rollback', auto_retry boolean DEFAULT true,
    idempotency_key text DEFAULT NULL, reference text DEFAULT NULL)
RETURNS approvals.batches
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes';
    RUN ON approvals_router.tenant_key(tenant);
$$;
COMMENT ON FUNCTION approvals.create_batch(text[], text, text, text, boolean, text, integer, real,
                                           text, boolean, text, text) IS
    'Create a batch on the node of its tenant (it decides that node''s claims)';

CREATE FUNCTION approvals.update_batch(batch_id text, claim_ids text[] DEFAULT NULL,
                                       add_claim_ids text[] DEFAULT NULL, comment text DEFAULT NULL)
RETURNS approvals.batches
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.update_batch(text, text[], text[], text) IS 'Amend a pending batch on its node';

CREATE FUNCTION approvals.start_batch(batch_id text, confirm_claim_ids text[] DEFAULT NULL)
RETURNS approvals.batches
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.start_batch(text, text[]) IS 'Queue a pending batch on its node';

CREATE FUNCTION approvals.process_batch(batch_id text)
RETURNS TABLE(claim_id text, decision text, error text, processed_at timestamptz)
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.process_batch(text) IS
    'Process a batch now on its node, in one transaction of that node';

CREATE FUNCTION approvals.cancel_batch(batch_id text, comment text DEFAULT NULL)
RETURNS TABLE(batch_id text, cancelled boolean, cancelled_at timestamptz, claims_reverted integer)
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.cancel_batch(text, text) IS 'Cancel a batch on its node and revert what it decided';

CREATE FUNCTION approvals.batch_results(batch_id text)
RETURNS TABLE(claim_id text, decision text, error text, processed_at timestamptz)
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.batch_results(text) IS 'One row per claim of a batch, in the batch''s order';

CREATE FUNCTION approvals.get_batch(batch_id text) RETURNS approvals.batches
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.get_batch(text) IS 'A batch, from its node';

CREATE FUNCTION approvals.wait_batch(batch_id text, timeout interval DEFAULT '1 minute')
RETURNS approvals.batches
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.wait_batch(text, interval) IS
    'Wait on its node until a batch is finished or the timeout passes';

-- Each node's newest `depth` batches (one read when depth <= 1000, else 1000 at a time);
-- merged newest first, then the page.
CREATE FUNCTION approvals_router.list_batches_each(status text, coordinator text, depth integer)
RETURNS SETOF approvals_router.batch
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes';
    RUN ON ALL;
    SELECT b.* FROM pg_catalog.generate_series(1, (depth + 999) / 1000) g,
         approvals.list_batches(status, coordinator, g, LEAST(depth, 1000)) b;
$$;
-- The paging arguments' checks, as on a node.
CREATE FUNCTION approvals_router.check_page(page integer, page_limit integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF page < 1 THEN
        RAISE EXCEPTION 'page is %; it must be at least 1', page USING ERRCODE = '22023';
    END IF;
    IF page_limit < 1 OR page_limit > 1000 THEN
        RAISE EXCEPTION 'page_limit is %; it must be between 1 and 1000', page_limit
            USING ERRCODE = '22023';
    END IF;
    IF page::bigint * page_limit > 100000 THEN
        RAISE EXCEPTION 'page % of % goes past the newest 100000 batches, the deepest the router pages',
                        page, page_limit
            USING ERRCODE = '22023',
                  HINT = 'Narrow the list with status or coordinator, or read approvals.batches.';
    END IF;
END
$$;
CREATE FUNCTION approvals.list_batches(status text DEFAULT NULL, coordinator text DEFAULT NULL,
                                       page integer DEFAULT 1, page_limit integer DEFAULT 20)
RETURNS SETOF approvals.batches
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    page := coalesce(page, 1);
    page_limit := coalesce(page_limit, 20);
    PERFORM approvals_router.check_page(page, page_limit);
    RETURN QUERY
        SELECT * FROM approvals_router.list_batches_each(status, coordinator, page * page_limit) b
        ORDER BY b.created_at DESC, b.id DESC
        OFFSET (page - 1)::bigint * page_limit LIMIT page_limit;
END
$$;
COMMENT ON FUNCTION approvals.list_batches(text, text, integer, integer) IS
    'The batches of every node, newest first, one page';

CREATE FUNCTION approvals_router.purge_batches_each(older_than interval) RETURNS SETOF integer
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON ALL; SELECT approvals.purge_batches(older_than);
$$;
CREATE FUNCTION approvals.purge_batches(older_than interval) RETURNS integer
    LANGUAGE sql VOLATILE
    RETURN (SELECT sum(n)::integer FROM approvals_router.purge_batches_each(older_than) n);
COMMENT ON FUNCTION approvals.purge_batches(interval) IS
    'Delete finished batches older than that on every node; how many';

CREATE PROCEDURE approvals.run_queued(max_batches integer DEFAULT NULL)
    LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'run_queued cannot run through the router'
        USING ERRCODE = '0A000',
              DETAIL = 'It commits once per chunk on the node that holds the batch, and a routed call is one transaction of that node.',
              HINT = 'Each node''s worker processes its queued batches; without the worker, CALL approvals.run_queued() on each node (pg_cron there).';
END
$$;
COMMENT ON PROCEDURE approvals.run_queued(integer) IS
    'Not through the router: each node runs its own queued batches (its worker, or run_queued there)';

-- ---------------------------------------------------------------------------
-- Policies, handlers, tenants (API.md sections 5 and 8): on every node
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals_router.set_policy_each(resource_type text, kind text, tenant text,
    approvers text[], required_approvals integer, auto_approve_below numeric,
    expires_in interval, on_expiry text, allow_self_approval boolean, steps jsonb)
RETURNS SETOF integer
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes';
    RUN ON ALL;
    SELECT 1 FROM approvals.set_policy(resource_type, kind, tenant, approvers, required_approvals,
        auto_approve_below, expires_in, on_expiry, allow_self_approval, steps);
$$;
CREATE FUNCTION approvals.set_policy(resource_type text DEFAULT NULL, kind text DEFAULT NULL,
    tenant text DEFAULT NULL, approvers text[] DEFAULT NULL, required_approvals integer DEFAULT 1,
    auto_approve_below numeric DEFAULT NULL, expires_in interval DEFAULT NULL,
    on_expiry text DEFAULT 'expire', allow_self_approval boolean DEFAULT false,
    steps jsonb DEFAULT NULL)
RETURNS void
    LANGUAGE sql VOLATILE
BEGIN ATOMIC
    SELECT count(*) FROM approvals_router.set_policy_each(resource_type, kind, tenant, approvers,
        required_approvals, auto_approve_below, expires_in, on_expiry, allow_self_approval, steps);
END;
COMMENT ON FUNCTION approvals.set_policy(text, text, text, text[], integer, numeric, interval, text,
                                         boolean, jsonb) IS
    'Create or version a policy on every node';

CREATE FUNCTION approvals_router.drop_policy_each(resource_type text, kind text, tenant text)
RETURNS SETOF integer
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON ALL;
    SELECT approvals.drop_policy(resource_type, kind, tenant);
$$;
CREATE FUNCTION approvals.drop_policy(resource_type text DEFAULT NULL, kind text DEFAULT NULL,
                                      tenant text DEFAULT NULL) RETURNS integer
    LANGUAGE sql VOLATILE
    RETURN (SELECT max(n)::integer FROM approvals_router.drop_policy_each(resource_type, kind, tenant) n);
COMMENT ON FUNCTION approvals.drop_policy(text, text, text) IS
    'Deactivate a policy on every node; how many were active (the most any node had)';

CREATE FUNCTION approvals_router.set_handler_each(resource_type text, handler text)
RETURNS SETOF integer
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON ALL;
    SELECT 1 FROM approvals.set_handler(resource_type, handler::pg_catalog.regprocedure);
$$;
CREATE FUNCTION approvals.set_handler(resource_type text, handler text) RETURNS void
    LANGUAGE sql VOLATILE
BEGIN ATOMIC
    SELECT count(*) FROM approvals_router.set_handler_each(resource_type, handler);
END;
COMMENT ON FUNCTION approvals.set_handler(text, text) IS
    'Set the handler of a resource type on every node (the handler is named as text: it exists on the nodes, not here)';
CREATE FUNCTION approvals.set_handler(resource_type text, handler regprocedure) RETURNS void
    LANGUAGE sql VOLATILE
BEGIN ATOMIC
    SELECT approvals.set_handler(resource_type, handler::text);
END;
COMMENT ON FUNCTION approvals.set_handler(text, regprocedure) IS
    'The contract''s signature, for a handler that also exists on the router (a literal takes the text form)';

CREATE FUNCTION approvals_router.tenant_grant_each(grant_it boolean, tenant text, member text)
RETURNS SETOF integer
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON ALL;
    SELECT 1 FROM approvals.grant_tenant(tenant, member::pg_catalog.regrole) WHERE grant_it
    UNION ALL
    SELECT 1 FROM approvals.revoke_tenant(tenant, member::pg_catalog.regrole) WHERE NOT grant_it;
$$;
CREATE FUNCTION approvals.grant_tenant(tenant text, member regrole) RETURNS void
    LANGUAGE sql VOLATILE
BEGIN ATOMIC
    SELECT count(*) FROM approvals_router.tenant_grant_each(true, tenant, member::text);
END;
COMMENT ON FUNCTION approvals.grant_tenant(text, regrole) IS 'Let a role see and act on a tenant, on every node';
CREATE FUNCTION approvals.revoke_tenant(tenant text, member regrole) RETURNS void
    LANGUAGE sql VOLATILE
BEGIN ATOMIC
    SELECT count(*) FROM approvals_router.tenant_grant_each(false, tenant, member::text);
END;
COMMENT ON FUNCTION approvals.revoke_tenant(text, regrole) IS 'Take a tenant back from a role, on every node';

-- ---------------------------------------------------------------------------
-- The JSON layer (API.md section 6, and seeds 002 and 003 of section 12)
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals.api_submit(body jsonb) RETURNS jsonb
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON approvals_router.merchant_key(body);
$$;
COMMENT ON FUNCTION approvals.api_submit(jsonb) IS 'POST /v0/approvals, on the node of merchantId';

CREATE FUNCTION approvals.api_respond(claim_id text, body jsonb, actor text DEFAULT NULL) RETURNS jsonb
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(claim_id); $$;
COMMENT ON FUNCTION approvals.api_respond(text, jsonb, text) IS 'Approval interaction response, on the claim''s node';

CREATE FUNCTION approvals_router.api_list_batches_each(depth integer)
RETURNS TABLE(created_at timestamptz, id text, summary jsonb)
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON ALL;
    SELECT b.created_at, b.id, approvals.api_batch_summary(b) AS summary
    FROM pg_catalog.generate_series(1, (depth + 999) / 1000) g,
         approvals.list_batches(NULL, NULL, g, LEAST(depth, 1000)) b;
$$;
CREATE FUNCTION approvals_router.batch_count_each() RETURNS SETOF bigint
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON ALL; SELECT count(*) FROM approvals.batches;
$$;
CREATE FUNCTION approvals.api_list_batches(page integer DEFAULT 1, "limit" integer DEFAULT 20)
RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p integer := coalesce(page, 1);       -- NULL means the default, as on a node
    l integer := coalesce("limit", 20);
BEGIN
    PERFORM approvals_router.check_page(p, l);
    RETURN jsonb_build_object(
        'data', coalesce((SELECT jsonb_agg(s.summary ORDER BY s.created_at DESC, s.id DESC)
                          FROM (SELECT * FROM approvals_router.api_list_batches_each(p * l) e
                                ORDER BY e.created_at DESC, e.id DESC
                                OFFSET (p - 1)::bigint * l LIMIT l) s), '[]'::jsonb),
        'pagination', jsonb_build_object(
            'page', page, 'limit', "limit",
            'total', (SELECT coalesce(sum(n), 0) FROM approvals_router.batch_count_each() n)));
END
$$;
COMMENT ON FUNCTION approvals.api_list_batches(integer, integer) IS
    'GET /approval-batches over every node: {data: [...], pagination: {page, limit, total}}';

CREATE FUNCTION approvals.api_get_batch(batch_id text) RETURNS jsonb
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.api_get_batch(text) IS 'GET /approval-batches/:id, from the batch''s node';

CREATE FUNCTION approvals.api_create_batch(body jsonb) RETURNS jsonb
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.tenant_key(NULL); $$;
COMMENT ON FUNCTION approvals.api_create_batch(jsonb) IS
    'POST /approval-batches (no tenant in the body: on the node of the NULL tenant)';

CREATE FUNCTION approvals.api_update_batch(batch_id text, body jsonb) RETURNS jsonb
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.api_update_batch(text, jsonb) IS 'PUT /approval-batches/:id, on the batch''s node';

CREATE FUNCTION approvals.api_cancel_batch(batch_id text) RETURNS jsonb
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.api_cancel_batch(text) IS 'DELETE /approval-batches/:id, on the batch''s node';

CREATE FUNCTION approvals.api_approve_file(body jsonb) RETURNS jsonb
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.file_key(body); $$;
COMMENT ON FUNCTION approvals.api_approve_file(jsonb) IS
    'Seed 002: confirm a payout file, on the node its file_id or tracking_id names';

CREATE FUNCTION approvals.api_process_batch(batch_id text, override_threshold boolean DEFAULT false,
                                            auto_retry boolean DEFAULT true) RETURNS jsonb
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.api_process_batch(text, boolean, boolean) IS
    'Seed 003: process a batch now on its node';

CREATE FUNCTION approvals.api_batch_statistics(batch_id text) RETURNS jsonb
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(batch_id); $$;
COMMENT ON FUNCTION approvals.api_batch_statistics(text) IS
    'Seed 003: paymentBatchStatistics of a batch, from its node';

-- ---------------------------------------------------------------------------
-- Delegation and the inbox (API.md sections 9 and 10)
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals.delegate(delegate text, valid_until timestamptz DEFAULT NULL,
    valid_from timestamptz DEFAULT now(), resource_type text DEFAULT NULL,
    tenant text DEFAULT NULL, max_amount numeric DEFAULT NULL, comment text DEFAULT NULL,
    delegator text DEFAULT NULL)
RETURNS approvals.delegations
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.tenant_key(tenant); $$;
COMMENT ON FUNCTION approvals.delegate(text, timestamptz, timestamptz, text, text, numeric, text, text) IS
    'Delegate on the node of the delegation''s tenant (a NULL tenant: the node of the NULL tenant only)';

CREATE FUNCTION approvals.revoke_delegation(delegation_id text, comment text DEFAULT NULL)
RETURNS approvals.delegations
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(delegation_id); $$;
COMMENT ON FUNCTION approvals.revoke_delegation(text, text) IS 'End a delegation, on its node';

CREATE FUNCTION approvals_router.inbox_first_each(actor text, page_limit integer)
RETURNS SETOF approvals_router.claim
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON ALL; SELECT * FROM approvals.inbox(actor, page_limit, NULL);
$$;
CREATE FUNCTION approvals_router.inbox_key(claim_id text, actor text,
    OUT rank smallint, OUT expires_key timestamptz, OUT created_at timestamptz)
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON approvals_router.id_key(claim_id);
    SELECT * FROM approvals.inbox_key(claim_id, actor);
$$;
CREATE FUNCTION approvals_router.inbox_after_each(actor text, page_limit integer, after_rank smallint,
    after_expires_key timestamptz, after_created_at timestamptz, after_id text)
RETURNS SETOF approvals_router.claim
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON ALL;
    SELECT * FROM approvals.inbox_after(actor, page_limit, after_rank, after_expires_key,
                                        after_created_at, after_id);
$$;
CREATE FUNCTION approvals_router.inbox_rank(priority text) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END;
CREATE FUNCTION approvals.inbox(actor text DEFAULT NULL, page_limit integer DEFAULT 50,
                                after text DEFAULT NULL)
RETURNS SETOF approvals.claims
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k record;
    rows approvals_router.claim[];
BEGIN
    -- The nodes check the arguments, in their order (actor, role, page_limit, after): a bad
    -- page_limit goes to them as a first page, and every node's rows are fetched before the
    -- merge's LIMIT (LIMIT 0 would not ask them at all).
    IF after IS NOT NULL AND (page_limit IS NULL OR page_limit NOT BETWEEN 1 AND 1000) THEN
        after := NULL;
    END IF;
    IF after IS NULL THEN
        rows := ARRAY(SELECT c FROM approvals_router.inbox_first_each(actor, page_limit) c);
    ELSE
        -- The previous page's last claim lives on one node: its key, then every node's next page.
        SELECT * INTO k FROM approvals_router.inbox_key(after, actor);
        rows := ARRAY(SELECT c FROM approvals_router.inbox_after_each(actor, page_limit, k.rank,
                                                                      k.expires_key, k.created_at, after) c);
    END IF;
    RETURN QUERY
        SELECT c.* FROM unnest(rows) c
        ORDER BY approvals_router.inbox_rank(c.priority), coalesce(c.expires_at, 'infinity'),
                 c.created_at, c.id
        LIMIT page_limit;
END
$$;
COMMENT ON FUNCTION approvals.inbox(text, integer, text) IS
    'The pending claims waiting for the actor by name on every node, merged in inbox order, a page after claim `after`';

-- ---------------------------------------------------------------------------
-- Audit seals (API.md section 11): each node has its own chain
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals_router.seal_audit_each() RETURNS SETOF bigint
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON ALL; SELECT approvals.seal_audit(); $$;
CREATE FUNCTION approvals.seal_audit() RETURNS bigint
    LANGUAGE sql VOLATILE
    RETURN (SELECT coalesce(sum(n), 0)::bigint FROM approvals_router.seal_audit_each() n);
COMMENT ON FUNCTION approvals.seal_audit() IS 'Seal every node''s events that can no longer change; how many';

CREATE FUNCTION approvals.verify_audit(from_seal bigint DEFAULT NULL, to_seal bigint DEFAULT NULL)
RETURNS TABLE(seal_id bigint, ok boolean, first_bad_event bigint, detail text)
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON ALL;
    SELECT v.seal_id, v.ok, v.first_bad_event,
           CASE WHEN v.ok THEN v.detail
                ELSE 'node ' || pg_catalog.current_database() || ' port '
                     || pg_catalog.current_setting('port') || ': ' || v.detail END AS detail
    FROM approvals.verify_audit(from_seal, to_seal) v;
$$;
COMMENT ON FUNCTION approvals.verify_audit(bigint, bigint) IS
    'Check every node''s seal chain (seal ids are per node; a failure names its node)';

CREATE FUNCTION approvals.audit_head()
RETURNS TABLE(seal_id bigint, last_event bigint, hash text, sealed_at timestamptz)
    LANGUAGE plproxy AS $$ CLUSTER 'approvals_nodes'; RUN ON ALL; SELECT * FROM approvals.audit_head(); $$;
COMMENT ON FUNCTION approvals.audit_head() IS 'The head of every node''s seal chain, one row per node';

-- ---------------------------------------------------------------------------
-- Statistics (API.md section 12): every node's groups, merged exactly
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals_router.claim_stats_each(since timestamptz, tenant text)
RETURNS TABLE(resource_type text, submitted bigint, approved bigint, rejected bigint,
              cancelled bigint, expired bigint, pending bigint, overdue bigint,
              decision_times interval[])
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON approvals_router.tenant_keys(tenant);
    SELECT * FROM approvals.claim_stats_parts(since, tenant);
$$;
CREATE FUNCTION approvals.claim_stats(since timestamptz DEFAULT now() - interval '30 days',
                                      tenant text DEFAULT NULL)
RETURNS TABLE(resource_type text, submitted bigint, approved bigint, rejected bigint,
              cancelled bigint, expired bigint, pending bigint, overdue bigint,
              p50_time_to_decision interval, p90_time_to_decision interval)
    LANGUAGE sql STABLE
BEGIN ATOMIC
    WITH p AS (SELECT * FROM approvals_router.claim_stats_each(since, tenant)),
    t AS (SELECT p.resource_type, percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS p50,
                 percentile_cont(0.9) WITHIN GROUP (ORDER BY x) AS p90
          FROM p, unnest(p.decision_times) AS x GROUP BY p.resource_type)
    SELECT p.resource_type, sum(p.submitted)::bigint, sum(p.approved)::bigint,
           sum(p.rejected)::bigint, sum(p.cancelled)::bigint, sum(p.expired)::bigint,
           sum(p.pending)::bigint, sum(p.overdue)::bigint, min(t.p50), min(t.p90)
    FROM p LEFT JOIN t ON t.resource_type = p.resource_type
    GROUP BY p.resource_type ORDER BY p.resource_type;
END;
COMMENT ON FUNCTION approvals.claim_stats(timestamptz, text) IS
    'claim_stats over every node (counts summed, percentiles over every node''s decision times)';

CREATE FUNCTION approvals_router.approver_stats_each(since timestamptz, tenant text)
RETURNS TABLE(actor text, decisions bigint, approved bigint, rejected bigint, abstained bigint,
              response_times interval[], assigned_pending bigint, assigned_overdue bigint)
    LANGUAGE plproxy AS $$
    CLUSTER 'approvals_nodes'; RUN ON approvals_router.tenant_keys(tenant);
    SELECT * FROM approvals.approver_stats_parts(since, tenant);
$$;
CREATE FUNCTION approvals.approver_stats(since timestamptz DEFAULT now() - interval '30 days',
                                         tenant text DEFAULT NULL)
RETURNS TABLE(actor text, decisions bigint, approved bigint, rejected bigint, abstained bigint,
              p50_response interval, p90_response interval, assigned_pending bigint,
              assigned_overdue bigint)
    LANGUAGE sql STABLE
BEGIN ATOMIC
    WITH p AS (SELECT * FROM approvals_router.approver_stats_each(since, tenant)),
    t AS (SELECT p.actor, percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS p50,
                 percentile_cont(0.9) WITHIN GROUP (ORDER BY x) AS p90
          FROM p, unnest(p.response_times) AS x GROUP BY p.actor)
    SELECT p.actor, sum(p.decisions)::bigint, sum(p.approved)::bigint, sum(p.rejected)::bigint,
           sum(p.abstained)::bigint, min(t.p50), min(t.p90), sum(p.assigned_pending)::bigint,
           sum(p.assigned_overdue)::bigint
    FROM p LEFT JOIN t ON t.actor = p.actor
    GROUP BY p.actor ORDER BY p.actor;
END;
COMMENT ON FUNCTION approvals.approver_stats(timestamptz, text) IS
    'approver_stats over every node (counts summed, percentiles over every node''s response times)';

-- ---------------------------------------------------------------------------
-- Values cross to the nodes as text: the arguments of a time, interval or
-- float type go in one DateStyle, IntervalStyle and float precision whatever
-- the caller's session says (PL/Proxy passes on only the client encoding), so
-- that '05/03/2027' means the same on both sides. (Only those functions: a SET
-- clause costs every call; the nodes' answers, in ISO and postgres style, read
-- the same under any setting.)
-- ---------------------------------------------------------------------------
DO $set$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
             JOIN pg_catalog.pg_language l ON l.oid = p.prolang
             WHERE l.lanname = 'plproxy'
               AND p.pronamespace IN ('approvals'::regnamespace, 'approvals_router'::regnamespace)
               AND p.proargtypes::oid[] && ARRAY['timestamptz', 'timestamp', 'date', 'time',
                                                 'interval', 'real', 'double precision']::regtype[]::oid[]
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET datestyle = ''ISO, MDY'' '
                                  'SET intervalstyle = ''postgres'' SET extra_float_digits = 3', f);
    END LOOP;
END
$set$;

-- ---------------------------------------------------------------------------
-- Only a superuser manages the user mappings of approvals_nodes: a mapping's
-- `user` option would make PL/Proxy connect as that user instead of the
-- caller, and USAGE on the server (which every approvals role needs) lets a
-- role map itself.
-- ---------------------------------------------------------------------------
CREATE FUNCTION approvals_router.guard_user_mappings() RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
               JOIN pg_user_mappings m ON m.umid = c.objid
               WHERE c.classid = 'pg_user_mapping'::regclass AND m.srvname = 'approvals_nodes') THEN
        RAISE EXCEPTION 'only a superuser may create or alter a user mapping of server approvals_nodes'
            USING ERRCODE = '42501',
                  HINT = 'The router connects to the nodes as the calling role; ask a superuser for a mapping that holds your password.';
    END IF;
END
$$;
COMMENT ON FUNCTION approvals_router.guard_user_mappings() IS
    'Event trigger: refuses user mappings of approvals_nodes made by anyone but a superuser';
CREATE EVENT TRIGGER approvals_router_user_mappings ON ddl_command_end
    WHEN TAG IN ('CREATE USER MAPPING', 'ALTER USER MAPPING')
    EXECUTE FUNCTION approvals_router.guard_user_mappings();

-- ---------------------------------------------------------------------------
-- Privileges: as on a node (PUBLIC gets nothing); each node checks again. A
-- helper is granted to the roles of the API function that calls it.
-- ---------------------------------------------------------------------------
REVOKE ALL ON ALL ROUTINES IN SCHEMA approvals, approvals_router FROM PUBLIC;
GRANT EXECUTE ON FUNCTION approvals_router.tenant_key(text), approvals_router.id_key(text),
      approvals_router.carried_key(text), approvals_router.tracking_hex(text),
      approvals_router.tracking_key(text), approvals_router.file_key(jsonb),
      approvals_router.merchant_key(jsonb), approvals_router.submit_key(text, text),
      approvals_router.partition_of(text), approvals_router.tenant_keys(text),
      approvals_router.check_page(integer, integer), approvals_router.inbox_rank(text)
      TO approvals_reader, approvals_requester, approvals_reviewer,
         approvals_coordinator, approvals_admin, approvals_platform;
GRANT EXECUTE ON FUNCTION approvals_router.all_claims(), approvals_router.all_events(),
      approvals_router.all_batches(), approvals_router.all_batch_items(),
      approvals_router.all_delegations(), approvals_router.all_policies(),
      approvals_router.all_audit_seals(), approvals_router.all_batch_progress(),
      approvals_router.list_batches_each(text, text, integer),
      approvals_router.api_list_batches_each(integer), approvals_router.batch_count_each(),
      approvals_router.claim_stats_each(timestamptz, text),
      approvals_router.approver_stats_each(timestamptz, text)
      TO approvals_reader;
GRANT EXECUTE ON FUNCTION approvals_router.inbox_first_each(text, integer),
      approvals_router.inbox_key(text, text),
      approvals_router.inbox_after_each(text, integer, smallint, timestamptz, timestamptz, text)
      TO approvals_reviewer;
GRANT EXECUTE ON FUNCTION approvals_router.expire_due_each(),
      approvals_router.purge_batches_each(interval), approvals_router.seal_audit_each(),
      approvals_router.set_policy_each(text, text, text, text[], integer, numeric, interval,
                                       text, boolean, jsonb),
      approvals_router.drop_policy_each(text, text, text),
      approvals_router.set_handler_each(text, text),
      approvals_router.tenant_grant_each(boolean, text, text)
      TO approvals_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA approvals TO approvals_reader;
GRANT SELECT ON approvals_router.partitions TO approvals_reader, approvals_admin;
GRANT SELECT ON approvals_router.id_routes TO approvals_reader, approvals_requester,
      approvals_reviewer, approvals_coordinator, approvals_admin, approvals_platform;
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
      approvals.inbox(text, integer, text)
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
      approvals.api_list_batches(integer, integer),
      approvals.api_get_batch(text),
      approvals.api_batch_statistics(text)
      TO approvals_reader, approvals_coordinator;
GRANT EXECUTE ON FUNCTION approvals.expire_due(), approvals.purge_batches(interval),
      approvals.set_policy(text, text, text, text[], integer, numeric, interval, text, boolean, jsonb),
      approvals.drop_policy(text, text, text),
      approvals.set_handler(text, text), approvals.set_handler(text, regprocedure),
      approvals.grant_tenant(text, regrole), approvals.revoke_tenant(text, regrole),
      approvals.seal_audit()
      TO approvals_admin;
GRANT EXECUTE ON FUNCTION approvals.verify_audit(bigint, bigint), approvals.audit_head(),
      approvals.claim_stats(timestamptz, text), approvals.approver_stats(timestamptz, text)
      TO approvals_reader;
