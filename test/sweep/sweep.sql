-- test/sweep/sweep.sql: fixtures, hostile values and the call generator of
-- test/shell/60_bad_input.sh (the catalog-driven bad-input sweep).
--
-- Loaded as a superuser into the sweep's own database (approvals installed). Then the shell
-- fills sweep.roles, calls sweep.setup() and sweep.generate(suffix) for every role, and runs
-- the generated psql blocks (sweep.calls) in one session per role.
--
-- Every function and procedure of schema approvals (except trigger functions) is called
--   * once with sane arguments,
--   * once per (argument, hostile value of that argument's type), the other arguments sane,
--   * once with every argument NULL (with two or more arguments; else that is a hostile call).
-- The calls of a role's session are psql blocks that echo @@B (begun), @@O (returned) or
-- @@E (raised: SQLSTATE, rows left behind, message) and @@S (a fixture step failed).
-- An argument type with no hostile values here is reported by sweep.generate (in
-- sweep.problems), so that whoever adds one extends sweep.hostile below.
--
-- Sane values are SQL expressions; they may use the psql variables :'claim' (a pending claim
-- nobody in the sweep requested), :'own_claim' (a pending claim the calling role requested,
-- when it may submit), :'c1' .. :'c4' (pending claims; c3 and c4 are in :'pbatch'),
-- :'pbatch' (a pending batch the calling role may amend) and :'dbatch' (a completed batch).
-- A block whose call uses any of them first makes fresh ones (sweep.fresh(), unless the role
-- may not call the function at all), so a successful call never spoils the next call's.
-- {role} is replaced by the role's suffix (none, reader, ..., super) and {sane} in a hostile
-- value by the argument's sane value.

SET client_min_messages = warning;
CREATE SCHEMA sweep;
GRANT USAGE ON SCHEMA sweep TO PUBLIC;

-- The roles swept: suffix (names sweep.handler_<suffix>), login role, how reports name it.
CREATE TABLE sweep.roles (
    ord    integer PRIMARY KEY,
    suffix text NOT NULL UNIQUE,
    login  name NOT NULL,
    label  text NOT NULL
);

-- ---------------------------------------------------------------------------------------
-- Helpers callable by every swept role
-- ---------------------------------------------------------------------------------------

-- arr with its lower bound moved to lb (same elements).
CREATE FUNCTION sweep.with_lb(arr text[], lb integer) RETURNS text[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog
    RETURN CASE WHEN cardinality(arr) = 0 THEN arr
           ELSE format('[%s:%s]=%s', lb, lb + cardinality(arr) - 1, arr)::text[] END;

-- Fresh fixtures, made as the superuser (acting as sweep_usr / sweep_coord); only those asked
-- for (the others come back as 'unused': \gset would unset a variable set to NULL, and a
-- call the role may not make still uses them).
CREATE SEQUENCE sweep.fixture_seq;
CREATE FUNCTION sweep.fresh(want_claim boolean DEFAULT true, want_c12 boolean DEFAULT true,
                            want_pbatch boolean DEFAULT true, want_dbatch boolean DEFAULT true,
                            OUT claim text, OUT own_claim text, OUT c1 text, OUT c2 text,
                            OUT c3 text, OUT c4 text, OUT pbatch text, OUT dbatch text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n text := 'fx-' || nextval('sweep.fixture_seq');
    d text;
BEGIN
    claim := 'unused'; own_claim := 'unused'; c1 := 'unused'; c2 := 'unused';
    c3 := 'unused'; c4 := 'unused'; pbatch := 'unused'; dbatch := 'unused';
    IF want_claim THEN
        claim := (approvals.submit('sweep', n, 'sha256:sweep', actor => 'sweep_usr')).id;
        own_claim := claim;
    END IF;
    IF want_c12 THEN
        c1 := (approvals.submit('sweep', n || '-1', 'sha256:sweep', actor => 'sweep_usr')).id;
        c2 := (approvals.submit('sweep', n || '-2', 'sha256:sweep', actor => 'sweep_usr')).id;
    END IF;
    IF want_pbatch THEN
        c3 := (approvals.submit('sweep', n || '-3', 'sha256:sweep', actor => 'sweep_usr')).id;
        c4 := (approvals.submit('sweep', n || '-4', 'sha256:sweep', actor => 'sweep_usr')).id;
        pbatch := (approvals.create_batch(ARRAY[c3, c4], coordinator => 'sweep_coord',
                                          start => false)).id;
    END IF;
    IF want_dbatch THEN
        d := (approvals.submit('sweep', n || '-d', 'sha256:sweep', actor => 'sweep_usr')).id;
        dbatch := (approvals.create_batch(ARRAY[d], coordinator => 'sweep_coord',
                                          start => false)).id;
        PERFORM approvals.process_batch(dbatch);
    END IF;
END
$$;

-- Rows a raising call left behind. The call's own transaction was rolled back, so a row it
-- left can only come from a transaction that committed while it ran (run_queued commits per
-- chunk). x0 is the next transaction id before the call: when no transaction id from x0 on
-- has committed, nothing can have been left ('-', the common case, and cheap); otherwise the
-- rows of the tables of schema approvals written by those transactions, e.g.
-- 'claims+2,events+2' ('-' when none: another database's transactions do commit meanwhile).
CREATE FUNCTION sweep.left_behind(x0 xid8) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog
AS $$
DECLARE
    xids xid[];
    t regclass;
    n bigint;
    res text := '';
BEGIN
    SELECT array_agg((x::bigint % 4294967296)::text::xid) INTO xids
      FROM generate_series(x0::text::bigint,
                           pg_snapshot_xmax(pg_current_snapshot())::text::bigint - 1) AS g(x)
     WHERE pg_xact_status(x::text::xid8) = 'committed';
    IF xids IS NULL THEN
        RETURN '-';
    END IF;
    FOR t IN SELECT c.oid FROM pg_class c
              WHERE c.relnamespace = 'approvals'::regnamespace AND c.relkind IN ('r', 'p')
              ORDER BY c.relname LOOP
        EXECUTE format('SELECT count(*) FROM %s WHERE xmin = ANY ($1)', t) INTO n USING xids;
        IF n > 0 THEN
            res := res || CASE WHEN res = '' THEN '' ELSE ',' END
                   || (SELECT relname FROM pg_class WHERE oid = t) || '+' || n;
        END IF;
    END LOOP;
    IF res = '' THEN
        RETURN '-';
    END IF;
    -- Another session of this database (a background worker serving it?) may have written them.
    SELECT count(*) INTO n FROM pg_stat_activity
     WHERE datid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND pid <> pg_backend_pid();
    RETURN res || CASE WHEN n > 0 THEN ';other-sessions-in-this-database=' || n ELSE '' END;
END
$$;

-- ---------------------------------------------------------------------------------------
-- Sane values: per (function, argument), per argument name (fn NULL), else the argument's
-- default, else per type (sweep.type_sane), else for a row type a real row.
-- ---------------------------------------------------------------------------------------
CREATE TABLE sweep.sane (fn text, arg text NOT NULL, expr text NOT NULL, UNIQUE NULLS NOT DISTINCT (fn, arg));
INSERT INTO sweep.sane (fn, arg, expr) VALUES
    (NULL, 'claim_id', $$:'claim'$$),
    (NULL, 'batch_id', $$:'pbatch'$$),
    (NULL, 'claim_ids', $$ARRAY[:'c1', :'c2']$$),
    (NULL, 'resource_type', $$'sweep'$$),
    (NULL, 'resource_id', $$'sweep-res'$$),
    (NULL, 'snapshot_hash', $$'sha256:sweep'$$),
    (NULL, 'comment', $$'sweep comment'$$),
    (NULL, 'outcome', $$'approved'$$),
    (NULL, 'handler', $$'sweep.handler_{role}(approvals.claims, approvals.events)'$$),
    (NULL, 'member', $$current_user$$),
    (NULL, 'tenant', $$NULL$$),
    (NULL, 'key', $$'k'$$),
    (NULL, 'older_than', $$'100 years'$$),
    ('submit', 'note', $$'a note'$$),
    ('submit', 'amount', $$10.5$$),
    ('submit', 'currency', $$'USD'$$),
    ('submit', 'title', $$'A title'$$),
    ('submit', 'context', $$'Some context'$$),
    ('submit', 'fields', $$'[{"key": "k", "label": "Label", "value": "v"}]'$$),
    ('submit', 'approvers', $$ARRAY['usr_a', 'usr_b']$$),
    ('submit', 'required_approvals', $$1$$),
    ('submit', 'expires_at', $$now() + interval '1 day'$$),
    ('cancel_claim', 'claim_id', $$:'own_claim'$$),
    ('set_policy', 'resource_type', $$'sweep_pol'$$),
    ('set_policy', 'approvers', $$ARRAY['usr_a', 'usr_b']$$),
    ('set_policy', 'auto_approve_below', $$5$$),
    ('set_policy', 'expires_in', $$'1 day'$$),
    ('set_handler', 'resource_type', $$'sweep_h'$$),
    ('grant_tenant', 'tenant', $$'sweep_t'$$),
    ('revoke_tenant', 'tenant', $$'sweep_t'$$),
    ('json_required', 'body', $$'{"k": "v"}'$$),
    ('json_text_array', 'body', $$'{"k": ["a", "b"]}'$$),
    ('json_text_array', 'required', $$true$$),
    ('api_submit', 'body', $$jsonb_build_object('merchantId', 'sweep_m', 'resourceType', 'sweep',
        'resourceId', 'api-' || md5(random()::text), 'dataSnapshotHash', 'sha256:sweep', 'kind', 'data_review',
        'note', 'a note')$$),
    ('api_respond', 'body', $$'{"outcome": "approved", "data": {"comment": "ok"}}'$$),
    ('api_create_batch', 'body', $$jsonb_build_object('claim_ids', jsonb_build_array(:'c1', :'c2'),
        'coordinator_id', current_user, 'comment', 'sweep comment')$$),
    ('api_update_batch', 'body', $$jsonb_build_object('claim_ids', jsonb_build_array(:'c3', :'c4'),
        'add_claim_ids', jsonb_build_array(:'c1'), 'comment', 'sweep comment')$$),
    ('create_batch', 'max_failures', $$10$$),
    ('create_batch', 'max_failure_ratio', $$0.5$$),
    ('update_batch', 'claim_ids', $$ARRAY[:'c2']$$),
    ('update_batch', 'add_claim_ids', $$ARRAY[:'c1']$$),
    ('start_batch', 'confirm_claim_ids', $$ARRAY[:'c3', :'c4']$$),
    ('wait_batch', 'batch_id', $$:'dbatch'$$),
    ('wait_batch', 'timeout', $$'1 second'$$),
    ('get_batch', 'batch_id', $$:'dbatch'$$),
    ('batch_results', 'batch_id', $$:'dbatch'$$),
    ('api_get_batch', 'batch_id', $$:'dbatch'$$);

CREATE TABLE sweep.type_sane (typ regtype PRIMARY KEY, expr text NOT NULL);
INSERT INTO sweep.type_sane VALUES
    ('text', $$'sweep'$$),
    ('text[]', $$ARRAY['sweep']$$),
    ('integer', '1'),
    ('smallint', '1'),
    ('bigint', '1'),
    ('numeric', '1'),
    ('real', '0.5'),
    ('boolean', 'true'),
    ('interval', $$'1 second'$$),
    ('timestamptz', $$now() + interval '1 day'$$),
    ('jsonb', $$'{"k": "v"}'$$),
    ('regprocedure', $$'sweep.handler_{role}(approvals.claims, approvals.events)'$$),
    ('regrole', 'current_user'),
    ('tid', $$'(0,1)'$$);

-- ---------------------------------------------------------------------------------------
-- Hostile values per type. label is how a report names the value.
-- ---------------------------------------------------------------------------------------
CREATE TABLE sweep.hostile (typ regtype NOT NULL, ord integer NOT NULL, label text NOT NULL,
                            expr text NOT NULL, PRIMARY KEY (typ, ord));
INSERT INTO sweep.hostile (typ, ord, label, expr) VALUES
    ('text', 1, 'NULL', 'NULL'),
    ('text', 2, $$''$$, $$''$$),
    ('text', 3, 'blank', $$E' \t\n '$$),
    ('text', 4, $$100000 x 'x'$$, $$repeat('x', 100000)$$),
    ('text', 5, 'multibyte', $$'Grüße, 日本語, ÄÖÜ ĳ'$$),
    ('text', 6, $$300 x 'ß'$$, $$repeat('ß', 300)$$),
    ('text', 7, 'emoji', $$'😀👍🏽👨‍👩‍👧🇺🇳'$$),
    ('text', 9, 'quotes', $v$$x$O'Brien "q" \'; DROP TABLE x; --$x$$v$),
    ('text', 10, 'format directives', $$'%s%s%n%d %x %%'$$),
    ('text', 11, 'control characters', $$E'\x01\x1b[31m\x7f\r'$$),
    -- Around the length limits (64, 128, 255, 1000, 2000 characters), in 2- and 4-byte
    -- characters: a limit checked in bytes, or a buffer sized in characters, shows here.
    ('text', 12, $$64 x 'é'$$, $$repeat('é', 64)$$),
    ('text', 13, $$65 x 'é'$$, $$repeat('é', 65)$$),
    ('text', 14, $$128 x 'é'$$, $$repeat('é', 128)$$),
    ('text', 15, $$129 x 'é'$$, $$repeat('é', 129)$$),
    ('text', 16, $$255 x 'é'$$, $$repeat('é', 255)$$),
    ('text', 17, $$256 x 'é'$$, $$repeat('é', 256)$$),
    ('text', 18, $$1000 x 'é'$$, $$repeat('é', 1000)$$),
    ('text', 19, $$1001 x 'é'$$, $$repeat('é', 1001)$$),
    ('text', 20, $$2000 x '😀'$$, $$repeat('😀', 2000)$$),
    ('text', 21, $$2001 x '😀'$$, $$repeat('😀', 2001)$$),
    ('text', 22, $$64 x '😀'$$, $$repeat('😀', 64)$$),
    ('text', 23, $$255 x '😀'$$, $$repeat('😀', 255)$$),

    ('text[]', 1, 'NULL', 'NULL'),
    ('text[]', 2, 'empty array', $$'{}'$$),
    ('text[]', 3, '{NULL}', 'ARRAY[NULL]'),
    ('text[]', 4, 'sane + NULL element', $$array_append(coalesce({sane}, ARRAY['sweep']), NULL)$$),
    ('text[]', 5, 'sane twice (duplicates)', $$array_cat(coalesce({sane}, ARRAY['sweep']), coalesce({sane}, ARRAY['sweep']))$$),
    ('text[]', 6, '2-D array of sane', $$ARRAY[coalesce({sane}, ARRAY['sweep']), coalesce({sane}, ARRAY['sweep'])]$$),
    ('text[]', 7, 'lower bound 0', $$sweep.with_lb(coalesce({sane}, ARRAY['sweep']), 0)$$),
    ('text[]', 8, 'lower bound -7', $$sweep.with_lb(coalesce({sane}, ARRAY['sweep']), -7)$$),
    ('text[]', 9, 'lower bound near INT_MAX', $$sweep.with_lb(coalesce({sane}, ARRAY['sweep']), 2147483600)$$),
    ('text[]', 10, '3000 distinct elements', $$ARRAY(SELECT 'sweep-' || g FROM generate_series(1, 3000) g)$$),
    ('text[]', 11, '3000 x first sane element', $$array_fill((coalesce({sane}, ARRAY['sweep']))[1], ARRAY[3000])$$),
    ('text[]', 12, $${''}$$, $$ARRAY['']$$),
    ('text[]', 13, $${100000 x 'x'}$$, $$ARRAY[repeat('x', 100000)]$$),
    ('text[]', 14, '{emoji, quotes, %n}', $v$ARRAY['😀👍🏽', $x$O'Brien "q" \$x$, '%s%n']$v$),

    ('integer', 1, 'NULL', 'NULL'),
    ('integer', 2, '0', '0'),
    ('integer', 3, '-1', '-1'),
    ('integer', 4, 'INT_MAX', '2147483647'),
    ('integer', 5, 'INT_MIN', '-2147483648'),

    ('smallint', 1, 'NULL', 'NULL'),
    ('smallint', 2, '0', '0'),
    ('smallint', 3, '-1', '-1'),
    ('smallint', 4, 'INT16_MAX', '32767'),
    ('smallint', 5, 'INT16_MIN', '-32768'),
    ('bigint', 1, 'NULL', 'NULL'),
    ('bigint', 2, '0', '0'),
    ('bigint', 3, '-1', '-1'),
    ('bigint', 4, 'INT_MAX + 1', '2147483648'),
    ('bigint', 5, 'INT64_MAX', '9223372036854775807'),
    ('bigint', 6, 'INT64_MIN', '-9223372036854775808'),

    ('numeric', 1, 'NULL', 'NULL'),
    ('numeric', 2, '0', '0'),
    ('numeric', 3, '-1', '-1'),
    ('numeric', 4, 'NaN', $$'NaN'$$),
    ('numeric', 5, 'Infinity', $$'Infinity'$$),
    ('numeric', 6, '-Infinity', $$'-Infinity'$$),
    ('numeric', 7, '1e1000', $$'1e1000'$$),
    ('numeric', 8, '1e-1000', $$'1e-1000'$$),
    ('numeric', 9, '-1e-1000', $$'-1e-1000'$$),

    ('real', 1, 'NULL', 'NULL'),
    ('real', 2, '0', '0'),
    ('real', 3, '-1', '-1'),
    ('real', 4, 'NaN', $$'NaN'$$),
    ('real', 5, 'Infinity', $$'Infinity'$$),
    ('real', 6, '-Infinity', $$'-Infinity'$$),
    ('real', 7, '-0', $$'-0'$$),
    ('real', 8, '3.4e38', $$'3.4e38'$$),
    ('real', 9, '1e-45', $$'1e-45'$$),

    ('tid', 1, 'NULL', 'NULL'),
    ('tid', 2, '(0,0)', $$'(0,0)'$$),
    ('tid', 3, '(0,65535)', $$'(0,65535)'$$),
    ('tid', 4, '(4294967295,65535)', $$'(4294967295,65535)'$$),
    ('tid', 5, '(4294967294,1)', $$'(4294967294,1)'$$),
    ('tid', 6, 'a claim row', $$(SELECT max(ctid) FROM approvals.claims)$$),

    ('boolean', 1, 'NULL', 'NULL'),
    ('boolean', 2, 'true', 'true'),
    ('boolean', 3, 'false', 'false'),

    ('interval', 1, 'NULL', 'NULL'),
    ('interval', 2, '0', $$'0'$$),
    ('interval', 3, '-1 microsecond', $$'-1 microsecond'$$),
    ('interval', 4, '-1 day', $$'-1 day'$$),
    ('interval', 5, '-178000000 years', $$'-178000000 years'$$),
    ('interval', 6, '178000000 years', $$'178000000 years'$$),
    ('interval', 7, 'INT_MAX days', $$'2147483647 days'$$),
    ('interval', 8, 'INT_MIN days', $$'-2147483648 days'$$),
    ('interval', 9, 'largest time part', $$'2562047788 hours 54.775807 seconds'$$),
    ('interval', 10, '1 mon -30 days', $$'1 mon -30 days'$$),

    ('timestamptz', 1, 'NULL', 'NULL'),
    ('timestamptz', 2, 'infinity', $$'infinity'$$),
    ('timestamptz', 3, '-infinity', $$'-infinity'$$),
    ('timestamptz', 4, 'epoch', $$'epoch'$$),
    ('timestamptz', 5, 'earliest (4713 BC)', $$'4713-01-01 00:00:00+00 BC'$$),
    ('timestamptz', 6, 'latest (294276 AD)', $$'294276-12-31 23:59:59+00'$$),
    ('timestamptz', 7, 'now() - 1 s', $$now() - interval '1 second'$$),
    ('timestamptz', 8, 'now()', $$now()$$),

    ('jsonb', 1, 'NULL', 'NULL'),
    ('jsonb', 2, 'JSON null', $$'null'$$),
    ('jsonb', 3, 'true', $$'true'$$),
    ('jsonb', 4, 'number', $$'-1.5e300'$$),
    ('jsonb', 5, 'string', $$'"text"'$$),
    ('jsonb', 6, 'empty array', $$'[]'$$),
    ('jsonb', 7, 'array of mixed', $$'[1, "a", null, {}, []]'$$),
    ('jsonb', 8, 'empty object', $$'{}'$$),
    ('jsonb', 9, 'arrays nested 10000 deep', $$(repeat('[', 10000) || repeat(']', 10000))$$),
    ('jsonb', 10, 'objects nested 10000 deep', $$(repeat('{"a": ', 10000) || '1' || repeat('}', 10000))$$),
    ('jsonb', 11, $$100000 x 'x' string$$, $$to_jsonb(repeat('x', 100000))$$),
    ('jsonb', 12, 'object with 3000 keys', $$(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 3000) g)$$),
    ('jsonb', 13, 'sane in an array, 3000 times', $$(SELECT jsonb_agg(coalesce({sane}, 'null'::jsonb)) FROM generate_series(1, 3000))$$),
    ('jsonb', 14, 'sane wrapped in an array', $$jsonb_build_array({sane})$$),

    ('regprocedure', 1, 'NULL', 'NULL'),
    ('regprocedure', 2, '0::regprocedure', '0::oid'),
    ('regprocedure', 3, 'an oid of no function', '4294967295::oid'),
    ('regprocedure', 4, 'approvals.expire_due()', $$'approvals.expire_due()'$$),
    ('regprocedure', 5, 'approvals.api_approval(claims)', $$'approvals.api_approval(approvals.claims)'$$),
    ('regprocedure', 6, 'a trigger function', $$'approvals.events_append_only()'$$),
    ('regprocedure', 7, 'pg_catalog.now()', $$'pg_catalog.now()'$$),
    ('regprocedure', 8, 'returns integer', $$'sweep.wrong_ret(approvals.claims, approvals.events)'$$),
    ('regprocedure', 9, 'arguments swapped', $$'sweep.swapped(approvals.events, approvals.claims)'$$),
    ('regprocedure', 10, 'extra defaulted argument', $$'sweep.extra_arg(approvals.claims, approvals.events, integer)'$$),
    ('regprocedure', 11, 'a procedure', $$'sweep.proc(approvals.claims, approvals.events)'$$),
    ('regprocedure', 12, 'an aggregate', $$'sweep.agg(approvals.claims, approvals.events)'$$),
    ('regprocedure', 13, 'returns SETOF void', $$'sweep.setof(approvals.claims, approvals.events)'$$),
    ('regprocedure', 14, 'the superuser''s handler', $$'sweep.handler_super(approvals.claims, approvals.events)'$$),

    ('regrole', 1, 'NULL', 'NULL'),
    ('regrole', 2, '0::regrole (PUBLIC)', '0::oid'),
    ('regrole', 3, 'an oid of no role', '4294967295::oid'),
    ('regrole', 4, 'a superuser', $$(SELECT oid FROM pg_roles WHERE rolsuper ORDER BY oid LIMIT 1)$$),
    ('regrole', 5, 'approvals_admin', $$'approvals_admin'$$),
    ('regrole', 6, 'pg_database_owner', $$'pg_database_owner'$$),
    ('regrole', 7, 'pg_read_all_data', $$'pg_read_all_data'$$);

-- Wrong-type values put in place of each member of a sane JSON argument.
CREATE TABLE sweep.json_wrong (ord integer PRIMARY KEY, label text NOT NULL, expr text NOT NULL);
INSERT INTO sweep.json_wrong VALUES
    (1, 'null', $$'null'$$),
    (2, 'true', $$'true'$$),
    (3, 'a number', $$'12345678901234567890.5'$$),
    (4, '""', $$'""'$$),
    (5, $$100000 x 'x'$$, $$to_jsonb(repeat('x', 100000))$$),
    (6, '[]', $$'[]'$$),
    (7, '[null]', $$'[null]'$$),
    (8, '{}', $$'{}'$$),
    (9, 'nested 10000 deep', $$(repeat('[', 10000) || repeat(']', 10000))::jsonb$$);

-- ---------------------------------------------------------------------------------------
-- Generated calls
-- ---------------------------------------------------------------------------------------
CREATE TABLE sweep.calls (
    suffix text NOT NULL,
    seq    integer NOT NULL,
    fn     text NOT NULL,          -- approvals.f
    arg    text,                   -- NULL: the sane or the all-NULL call
    vlabel text NOT NULL,          -- the hostile value, 'sane' or 'all NULL'
    kind   text NOT NULL,          -- sane | hostile | allnull
    sql    text NOT NULL,          -- the call itself (with psql variables)
    block  text NOT NULL,          -- the psql block that runs and reports it
    PRIMARY KEY (suffix, seq)
);
CREATE TABLE sweep.problems (fn text, msg text);

-- Sane JSON with psql variables replaced by a placeholder, evaluated for its shape.
CREATE FUNCTION sweep.json_shape(expr text) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
DECLARE
    j jsonb;
BEGIN
    EXECUTE format('SELECT (%s)::jsonb', regexp_replace(expr, $r$:'\w+'$r$, $r$'x'$r$, 'g')) INTO j;
    RETURN j;
END
$$;

-- Paths of the members of a JSON value, down to depth 3 (the first 2 elements of arrays).
CREATE FUNCTION sweep.json_paths(j jsonb, prefix text[] DEFAULT '{}') RETURNS SETOF text[]
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
DECLARE
    k text;
    v jsonb;
    i integer;
BEGIN
    IF cardinality(prefix) >= 3 THEN
        RETURN;
    END IF;
    IF jsonb_typeof(j) = 'object' THEN
        FOR k, v IN SELECT e.key, e.value FROM jsonb_each(j) e ORDER BY e.key LOOP
            RETURN NEXT prefix || k;
            RETURN QUERY SELECT * FROM sweep.json_paths(v, prefix || k);
        END LOOP;
    ELSIF jsonb_typeof(j) = 'array' THEN
        FOR i IN 0 .. least(jsonb_array_length(j), 2) - 1 LOOP
            RETURN NEXT prefix || i::text;
            RETURN QUERY SELECT * FROM sweep.json_paths(j -> i, prefix || i::text);
        END LOOP;
    END IF;
END
$$;

-- Setup: per-role handlers, wrong-signature functions, policies and grants, and
-- one set of fixtures (so that row types have a real row).
CREATE FUNCTION sweep.setup() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
DECLARE
    r record;
    admin name;
BEGIN
    -- A valid handler per role, owned by it (set_handler wants the caller to own it).
    FOR r IN SELECT * FROM sweep.roles LOOP
        EXECUTE format('CREATE FUNCTION sweep.%I(c approvals.claims, e approvals.events) '
                       'RETURNS void LANGUAGE plpgsql AS %L', 'handler_' || r.suffix, 'BEGIN END');
        EXECUTE format('ALTER FUNCTION sweep.%I(approvals.claims, approvals.events) OWNER TO %I',
                       'handler_' || r.suffix, r.login);
    END LOOP;
    CREATE FUNCTION sweep.handler_fixture(c approvals.claims, e approvals.events) RETURNS void
        LANGUAGE plpgsql AS 'BEGIN END';

    -- Functions of the wrong signature, owned by the admin role so that its set_handler gets
    -- past the ownership check.
    CREATE FUNCTION sweep.wrong_ret(c approvals.claims, e approvals.events) RETURNS integer
        LANGUAGE sql RETURN 1;
    CREATE FUNCTION sweep.swapped(e approvals.events, c approvals.claims) RETURNS void
        LANGUAGE plpgsql AS 'BEGIN END';
    CREATE FUNCTION sweep.extra_arg(c approvals.claims, e approvals.events, x integer DEFAULT 0)
        RETURNS void LANGUAGE plpgsql AS 'BEGIN END';
    CREATE PROCEDURE sweep.proc(c approvals.claims, e approvals.events)
        LANGUAGE plpgsql AS 'BEGIN END';
    CREATE FUNCTION sweep.agg_step(s integer, c approvals.claims, e approvals.events)
        RETURNS integer LANGUAGE sql RETURN s;
    CREATE AGGREGATE sweep.agg(approvals.claims, approvals.events)
        (sfunc = sweep.agg_step, stype = integer, initcond = '0');
    CREATE FUNCTION sweep.setof(c approvals.claims, e approvals.events) RETURNS SETOF void
        LANGUAGE sql AS 'SELECT WHERE false';
    SELECT login INTO admin FROM sweep.roles WHERE suffix = 'admin';
    IF admin IS NOT NULL THEN
        EXECUTE format('ALTER FUNCTION sweep.wrong_ret(approvals.claims, approvals.events) OWNER TO %I', admin);
        EXECUTE format('ALTER FUNCTION sweep.swapped(approvals.events, approvals.claims) OWNER TO %I', admin);
        EXECUTE format('ALTER FUNCTION sweep.extra_arg(approvals.claims, approvals.events, integer) OWNER TO %I', admin);
        EXECUTE format('ALTER PROCEDURE sweep.proc(approvals.claims, approvals.events) OWNER TO %I', admin);
        EXECUTE format('ALTER FUNCTION sweep.setof(approvals.claims, approvals.events) OWNER TO %I', admin);
        EXECUTE format('ALTER FUNCTION sweep.agg_step(integer, approvals.claims, approvals.events) OWNER TO %I', admin);
        EXECUTE format('ALTER AGGREGATE sweep.agg(approvals.claims, approvals.events) OWNER TO %I', admin);
    END IF;
    GRANT EXECUTE ON ALL ROUTINES IN SCHEMA sweep TO PUBLIC;

    -- The fixtures' resource type: a handler runs with every change, and a policy of its
    -- own (no route, no expiry) wins over whatever catch-all policy the sweep creates.
    PERFORM approvals.set_handler('sweep', 'sweep.handler_fixture(approvals.claims, approvals.events)');
    PERFORM approvals.set_policy('sweep');
    -- api_submit's merchant is a tenant every swept role may act on.
    FOR r IN SELECT * FROM sweep.roles LOOP
        PERFORM approvals.grant_tenant('sweep_m', r.login::regrole);
    END LOOP;
    PERFORM sweep.fresh();
END
$$;

-- For a row type: a real row (any row of its table, as a literal), else a row of NULLs.
-- NULL for a type that is not a row type.
CREATE FUNCTION sweep.row_sane(typ oid) RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
DECLARE
    rel oid;
    natts integer;
    lit text;
BEGIN
    SELECT t.typrelid INTO rel FROM pg_type t WHERE t.oid = typ AND t.typtype = 'c';
    IF rel IS NULL THEN
        RETURN NULL;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = rel) IN ('r', 'p', 'v', 'm') THEN
        EXECUTE format('SELECT t::text FROM %s t LIMIT 1', rel::regclass) INTO lit;
    END IF;
    IF lit IS NULL THEN
        SELECT count(*) INTO natts FROM pg_attribute
         WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped;
        lit := '(' || repeat(',', natts - 1) || ')';
    END IF;
    RETURN quote_literal(lit);
END
$$;

-- For a row type, its hostile values as a JSON array of {ord, label, expr} ({sane} is the
-- real row); NULL for a type that is not a row type.
CREATE FUNCTION sweep.row_hostile(typ oid) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
DECLARE
    rel oid;
    natts integer;
    ts_cols text[];
    text_cols text[];
    v jsonb := '[]';
BEGIN
    SELECT t.typrelid INTO rel FROM pg_type t WHERE t.oid = typ AND t.typtype = 'c';
    IF rel IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT count(*),
           array_agg(attname::text ORDER BY attnum) FILTER (WHERE atttypid = 'timestamptz'::regtype),
           array_agg(attname::text ORDER BY attnum) FILTER (WHERE atttypid = 'text'::regtype)
      INTO natts, ts_cols, text_cols
      FROM pg_attribute
     WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped;
    v := v || jsonb_build_object('ord', 1, 'label', 'NULL row', 'expr', 'NULL');
    v := v || jsonb_build_object('ord', 2, 'label', 'row of NULL fields',
                                 'expr', quote_literal('(' || repeat(',', natts - 1) || ')'));
    IF ts_cols IS NOT NULL THEN
        v := v || jsonb_build_object('ord', 3, 'label', 'real row, timestamps infinity',
            'expr', format('jsonb_populate_record({sane}, %L)',
                           (SELECT jsonb_object_agg(c, 'infinity') FROM unnest(ts_cols) c)));
        v := v || jsonb_build_object('ord', 4, 'label', 'real row, timestamps -infinity',
            'expr', format('jsonb_populate_record({sane}, %L)',
                           (SELECT jsonb_object_agg(c, '-infinity') FROM unnest(ts_cols) c)));
    END IF;
    IF text_cols IS NOT NULL THEN
        v := v || jsonb_build_object('ord', 5, 'label', $l$real row, text fields ''$l$,
            'expr', format('jsonb_populate_record({sane}, %L)',
                           (SELECT jsonb_object_agg(c, '') FROM unnest(text_cols) c)));
        v := v || jsonb_build_object('ord', 6, 'label', $l$real row, text fields 100000 x 'x'$l$,
            'expr', format('jsonb_populate_record({sane}, (SELECT jsonb_object_agg(c, repeat(''x'', 100000)) FROM unnest(%L::text[]) c))',
                           text_cols));
    END IF;
    RETURN v;
END
$$;

-- One generated call: its SQL and the psql block that runs and reports it.
CREATE FUNCTION sweep.add_call(role_suffix text, seq integer, fn text, is_proc boolean,
                               variadic_last boolean, arg text, vlabel text, kind text,
                               types oid[], vals text[], can_submit boolean, can_coord boolean,
                               can_call boolean)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
DECLARE
    args text;
    call text;
    b text := '';
    n integer := cardinality(types);
BEGIN
    SELECT string_agg(CASE WHEN variadic_last AND o = n THEN 'VARIADIC ' ELSE '' END
                      || '(' || v || ')::' || format_type(t, NULL), ', ' ORDER BY o)
      INTO args
      FROM unnest(vals, types) WITH ORDINALITY AS u(v, t, o);
    call := CASE WHEN is_proc THEN 'CALL ' ELSE 'SELECT ' END || fn || '(' || coalesce(args, '') || ')';
    b := format(E'\\echo @@B %s\n', seq);
    -- Fresh fixtures for a call that uses them (not when the role may not call the function:
    -- the call fails on that whatever its arguments; the session's first fixtures serve it).
    IF can_call AND call ~ $r$:'(claim|own_claim|c1|c2|c3|c4|pbatch|dbatch)'$r$ THEN
        b := b || format(E'SELECT * FROM sweep.fresh(%L, %L, %L, %L) \\gset\n'
                         '\\if :ERROR\n\\echo @@S %s fresh :LAST_ERROR_SQLSTATE\n\\endif\n',
                         call ~ $r$:'(own_)?claim'$r$, call ~ $r$:'c[12]'$r$,
                         call ~ $r$:'(c[34]|pbatch)'$r$, call ~ $r$:'dbatch'$r$, seq);
        IF can_submit AND call ~ $r$:'own_claim'$r$ THEN
            b := b || format(E'SELECT id AS own_claim FROM approvals.submit(''sweep'', ''own-'' || :''claim'', ''sha256:sweep'') \\gset\n'
                             '\\if :ERROR\n\\echo @@S %s own_claim :LAST_ERROR_SQLSTATE\n\\endif\n', seq);
        END IF;
        IF can_coord AND call ~ $r$:'pbatch'$r$ THEN
            b := b || format(E'SELECT id AS pbatch FROM approvals.create_batch(ARRAY[:''c3'', :''c4''], start => false) \\gset\n'
                             '\\if :ERROR\n\\echo @@S %s pbatch :LAST_ERROR_SQLSTATE\n\\endif\n', seq);
        END IF;
    END IF;
    -- Only the call runs under the statement timeout (:'sweep_timeout'; the fixtures and the
    -- checks have none). A procedure may commit as it goes: stopped by the timeout half-way,
    -- it would leave rows behind legitimately, so it gets a minute (nothing should take it).
    b := b || E'SELECT pg_snapshot_xmax(pg_current_snapshot()) AS x0 \\gset\n'
           || CASE WHEN is_proc THEN E'SET statement_timeout = ''60s'';\n'
                   ELSE E'SET statement_timeout = :''sweep_timeout'';\n' END
           || call || E';\n'
           || E'\\if :ERROR\n'
           || E'\\set sqlstate :LAST_ERROR_SQLSTATE\n'
           || E'SET statement_timeout = 0;\n'
           || E'SELECT sweep.left_behind(:''x0'') AS left_behind, left(regexp_replace(regexp_replace(:''LAST_ERROR_MESSAGE'', ''\\s+'', '' '', ''g''), ''[[:cntrl:]]'', ''?'', ''g''), 200) AS msg \\gset\n'
           || E'\\if :ERROR\n'
           || format(E'\\echo @@E %s :sqlstate ? the check for rows left behind failed: :LAST_ERROR_SQLSTATE\n', seq)
           || E'\\else\n'
           || format(E'\\echo @@E %s :sqlstate :left_behind :msg\n', seq)
           || E'\\endif\n'
           || E'\\else\n'
           || E'SET statement_timeout = 0;\n'
           || format(E'\\echo @@O %s\n', seq)
           || E'\\endif\n';
    INSERT INTO sweep.calls VALUES (role_suffix, seq, fn, arg, vlabel, kind, call, b);
END
$$;

-- Generate the calls of one role (sweep.roles.suffix) into sweep.calls; returns how many.
CREATE FUNCTION sweep.generate(role_suffix text) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
DECLARE
    p record;
    a record;
    h record;
    login name;
    can_submit boolean;
    can_coord boolean;
    n integer := 0;
    i integer;
    nin integer;
    names text[];
    types oid[];
    sane text[];
    nulls text[];
    vals text[];
    fn text;
    e text;
    path text[];
    bad text;
    is_proc boolean;
    variadic_last boolean;
    can_call boolean;
BEGIN
    SELECT r.login INTO login FROM sweep.roles r WHERE r.suffix = role_suffix;
    can_submit := pg_has_role(login, 'approvals_requester', 'MEMBER');
    can_coord := pg_has_role(login, 'approvals_coordinator', 'MEMBER')
                 AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = login);
    DELETE FROM sweep.calls WHERE suffix = role_suffix;
    DELETE FROM sweep.problems;

    FOR p IN
        SELECT pr.oid, pr.proname, pr.prokind, pr.pronargs, pr.proargnames, pr.proargmodes,
               pr.provariadic,
               (SELECT array_agg(x ORDER BY o) FROM unnest(pr.proargtypes::oid[]) WITH ORDINALITY u(x, o))
                   AS argtypes
          FROM pg_proc pr
         WHERE pr.pronamespace = 'approvals'::regnamespace
           AND pr.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
         ORDER BY pr.proname, pr.oid
    LOOP
        fn := 'approvals.' || quote_ident(p.proname);
        is_proc := p.prokind = 'p';
        variadic_last := p.provariadic <> 0;
        can_call := has_schema_privilege(login, 'approvals', 'USAGE')
                    AND has_function_privilege(login, p.oid, 'EXECUTE');
        names := '{}';
        types := '{}';
        sane := '{}';
        nulls := '{}';
        bad := NULL;
        nin := 0;
        FOR a IN
            SELECT t.pos, coalesce(p.proargmodes[t.pos], 'i') AS mode,
                   coalesce(nullif(p.proargnames[t.pos], ''), '$' || t.pos) AS name
              FROM generate_series(1, coalesce(cardinality(p.proargmodes), p.pronargs)) AS t(pos)
             ORDER BY t.pos
        LOOP
            IF a.mode NOT IN ('i', 'b', 'v') THEN
                CONTINUE;
            END IF;
            nin := nin + 1;
            names := names || a.name;
            types := types || p.argtypes[nin];
            e := coalesce(
                (SELECT s.expr FROM sweep.sane s WHERE s.fn = p.proname AND s.arg = a.name),
                (SELECT s.expr FROM sweep.sane s WHERE s.fn IS NULL AND s.arg = a.name),
                pg_get_function_arg_default(p.oid, a.pos),
                (SELECT s.expr FROM sweep.type_sane s WHERE s.typ = p.argtypes[nin]),
                sweep.row_sane(p.argtypes[nin]));
            IF NOT EXISTS (SELECT 1 FROM sweep.hostile x WHERE x.typ = p.argtypes[nin])
               AND sweep.row_hostile(p.argtypes[nin]) IS NULL THEN
                bad := coalesce(bad || '; ', '') || 'no hostile values for type '
                       || format_type(p.argtypes[nin], NULL) || ' (argument ' || a.name || ')';
            ELSIF e IS NULL THEN
                bad := coalesce(bad || '; ', '') || 'no sane value for type '
                       || format_type(p.argtypes[nin], NULL) || ' (argument ' || a.name || ')';
            END IF;
            sane := sane || replace(coalesce(e, 'NULL'), '{role}', role_suffix);
            nulls := nulls || 'NULL'::text;
        END LOOP;
        IF bad IS NOT NULL THEN
            INSERT INTO sweep.problems VALUES (fn, bad);
            CONTINUE;
        END IF;

        -- The sane call.
        n := n + 1;
        PERFORM sweep.add_call(role_suffix, n, fn, is_proc, variadic_last, NULL, 'sane', 'sane',
                               types, sane, can_submit, can_coord, can_call);
        -- Each argument in turn replaced by each hostile value of its type.
        FOR i IN 1 .. nin LOOP
            FOR h IN
                SELECT q.label, q.expr FROM (
                    SELECT x.ord, x.label, x.expr FROM sweep.hostile x WHERE x.typ = types[i]
                    UNION ALL
                    SELECT r.ord, r.label, r.expr
                      FROM jsonb_to_recordset(sweep.row_hostile(types[i]))
                           AS r(ord integer, label text, expr text)) q
                 ORDER BY q.ord
            LOOP
                vals := sane;
                vals[i] := replace(h.expr, '{sane}',
                                   '(' || sane[i] || ')::' || format_type(types[i], NULL));
                n := n + 1;
                PERFORM sweep.add_call(role_suffix, n, fn, is_proc, variadic_last, names[i],
                                       h.label, 'hostile', types, vals, can_submit, can_coord, can_call);
            END LOOP;
            -- JSON: every member of the sane value replaced by values of the wrong type.
            IF types[i] = 'jsonb'::regtype THEN
                FOR path IN SELECT * FROM sweep.json_paths(sweep.json_shape(sane[i])) LOOP
                    FOR h IN SELECT w.label, w.expr FROM sweep.json_wrong w ORDER BY w.ord LOOP
                        vals := sane;
                        vals[i] := format('jsonb_set((%s)::jsonb, %L, %s)', sane[i], path, h.expr);
                        n := n + 1;
                        PERFORM sweep.add_call(role_suffix, n, fn, is_proc, variadic_last,
                                               names[i],
                                               array_to_string(path, '.') || ' := ' || h.label,
                                               'hostile', types, vals, can_submit, can_coord, can_call);
                    END LOOP;
                END LOOP;
            END IF;
        END LOOP;
        -- Every argument NULL (for one argument, that is its NULL hostile value already).
        IF nin > 1 THEN
            n := n + 1;
            PERFORM sweep.add_call(role_suffix, n, fn, is_proc, variadic_last, NULL, 'all NULL',
                                   'allnull', types, nulls, can_submit, can_coord, can_call);
        END IF;
    END LOOP;
    RETURN n;
END
$$;
