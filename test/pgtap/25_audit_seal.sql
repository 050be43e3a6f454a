-- 25_audit_seal: the tamper-evident audit chain (API.md §11; README "Audit seals"):
-- seal_audit's count, seals of at most 10,000 events over contiguous id ranges (a
-- rolled-back id inside a range), the chain (seal 1 after 64 zeros, each prev_hash the
-- previous hash), every hash recomputed here in SQL from the README's canonical encoding
-- (COPY text of the 12 columns, the escapes, `at` in UTC whatever the session's
-- TimeZone), audit_head, verify_audit with from/to ranges, every role and SQLSTATE
-- (42501, 25000 under REPEATABLE READ and SERIALIZABLE), the seals are append-only even
-- for a superuser, and tampering by a superuser who disabled the triggers: a changed
-- column (each of the 11 besides id), a deleted event, an event inserted inside a sealed
-- range, a changed, deleted or forged seal — each named with its seal, first bad event
-- and detail.
--
-- The main part runs in one transaction that is rolled back; seal_audit seals the
-- transaction's own events (nothing else writes events in this database). The
-- REPEATABLE READ and SERIALIZABLE checks come first, each in its own transaction
-- (an isolation level cannot change inside one); they write nothing.
-- Each tamper runs in pg_temp.tamper(): a subtransaction that is always rolled back.
-- Seal ids are relative to the seals that existed before (pg_temp.s(n)), so the file
-- does not depend on an empty log.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT plan(111);
SELECT throws_ok($$SELECT approvals.seal_audit()$$, '25000', NULL,
                 'seal_audit in a REPEATABLE READ transaction is 25000');
SELECT lives_ok($$SELECT count(*) FROM approvals.verify_audit()$$,
                'verify_audit runs in a REPEATABLE READ transaction');
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT throws_ok($$SELECT approvals.seal_audit()$$, '25000', NULL,
                 'seal_audit in a SERIALIZABLE transaction is 25000');
COMMIT;

BEGIN;
CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;

-- Named numbers (seal ids, event ids) kept for later tests.
CREATE TEMP TABLE kv (k text PRIMARY KEY, v bigint);
GRANT SELECT ON kv TO PUBLIC;
CREATE FUNCTION pg_temp.k(name text) RETURNS bigint LANGUAGE sql AS $f$
    SELECT v FROM pg_temp.kv WHERE k = name
$f$;
CREATE FUNCTION pg_temp.setk(name text, val bigint) RETURNS bigint LANGUAGE sql AS $f$
    INSERT INTO pg_temp.kv VALUES (name, val) ON CONFLICT (k) DO UPDATE SET v = excluded.v RETURNING v
$f$;
-- Seal n of this file (the seals before it are counted in 's0').
CREATE FUNCTION pg_temp.s(n int) RETURNS bigint LANGUAGE sql AS $f$
    SELECT pg_temp.k('s0') + n
$f$;
-- The last event id drawn (the sequence is not rolled back with a transaction).
CREATE FUNCTION pg_temp.drawn() RETURNS bigint LANGUAGE sql AS $f$
    SELECT last_value FROM approvals.events_id_seq
$f$;

-- The README's canonical encoding, written independently of the C code: a value in
-- COPY text format (NULL is \N; backslash, backspace, form feed, newline, carriage
-- return, tab, vertical tab escaped), the 12 columns tab-separated, a newline at the end.
CREATE FUNCTION pg_temp.ct(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
    SELECT CASE WHEN v IS NULL THEN '\N' ELSE
        replace(replace(replace(replace(replace(replace(replace(v,
            '\', '\\'), chr(8), '\b'), chr(12), '\f'), chr(10), '\n'), chr(13), '\r'),
            chr(9), '\t'), chr(11), '\v') END
$f$;
CREATE FUNCTION pg_temp.line(e approvals.events) RETURNS text LANGUAGE sql AS $f$
    SELECT concat_ws(E'\t', pg_temp.ct(e.id::text), pg_temp.ct(e.claim_id), pg_temp.ct(e.batch_id),
                     pg_temp.ct(e.tenant), pg_temp.ct(e.actor), pg_temp.ct(e.action),
                     pg_temp.ct(e.from_status), pg_temp.ct(e.to_status), pg_temp.ct(e.comment),
                     pg_temp.ct(e.snapshot_hash),
                     pg_temp.ct(to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
                     pg_temp.ct(e.on_behalf_of)) || E'\n'
$f$;
-- A seal's hash recomputed from its prev_hash and the events of its range as they are now.
CREATE FUNCTION pg_temp.rehash(sid bigint) RETURNS text LANGUAGE sql AS $f$
    SELECT encode(sha256(convert_to(a.prev_hash || E'\n'
               || coalesce((SELECT string_agg(pg_temp.line(e), '' ORDER BY e.id) FROM approvals.events e
                             WHERE e.id BETWEEN a.first_event AND a.last_event), ''), 'UTF8')), 'hex')
      FROM approvals.audit_seals a WHERE a.id = sid
$f$;
-- What verify_audit finds wrong: 'seal|first_bad_event|detail' per seal that is not ok
-- ('-' for a NULL first_bad_event), or 'all ok'.
CREATE FUNCTION pg_temp.bad(from_seal bigint DEFAULT NULL, to_seal bigint DEFAULT NULL) RETURNS text
LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(format('%s|%s|%s', seal_id, coalesce(first_bad_event::text, '-'), detail),
                               E'\n' ORDER BY seal_id), 'all ok')
      FROM approvals.verify_audit(from_seal, to_seal) WHERE NOT ok
$f$;
-- Run statements as a superuser with the user triggers of events and audit_seals
-- disabled, then return what verify_audit finds (pg_temp.bad()); everything, the
-- triggers included, is rolled back afterwards.
CREATE FUNCTION pg_temp.tamper(VARIADIC stmts text[]) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    r text;
    s text;
BEGIN
    BEGIN
        ALTER TABLE approvals.events DISABLE TRIGGER USER;
        ALTER TABLE approvals.audit_seals DISABLE TRIGGER USER;
        FOREACH s IN ARRAY stmts LOOP
            EXECUTE s;
        END LOOP;
        r := pg_temp.bad();
        RAISE EXCEPTION 't25: undo' USING ERRCODE = 'T2500';
    EXCEPTION WHEN SQLSTATE 'T2500' THEN
        NULL;
    END;
    RETURN r;
END $f$;
-- 'seal|event|' followed by a regular expression of the detail, for matches().
CREATE FUNCTION pg_temp.rx(VARIADIC lines text[]) RETURNS text LANGUAGE sql AS $f$
    SELECT '^' || array_to_string(lines, '\n') || '$'
$f$;

CREATE ROLE t25_rdr   IN ROLE approvals_reader;      -- no tenant granted
CREATE ROLE t25_req   IN ROLE approvals_requester;
CREATE ROLE t25_rev   IN ROLE approvals_reviewer;
CREATE ROLE t25_coord IN ROLE approvals_coordinator;
CREATE ROLE t25_adm   IN ROLE approvals_admin;
CREATE ROLE t25_plat  IN ROLE approvals_platform;
CREATE ROLE t25_none;                                -- no approvals role

-- ---------------------------------------------------------------------------
-- The contract's signatures and relation
-- ---------------------------------------------------------------------------
SELECT is(
    ARRAY(SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || ') -> ' || pg_get_function_result(p.oid)
            FROM pg_proc p WHERE p.pronamespace = 'approvals'::regnamespace
             AND p.proname IN ('seal_audit', 'verify_audit', 'audit_head') ORDER BY 1),
    ARRAY['audit_head() -> TABLE(seal_id bigint, last_event bigint, hash text, sealed_at timestamp with time zone)',
          'seal_audit() -> bigint',
          'verify_audit(from_seal bigint DEFAULT NULL::bigint, to_seal bigint DEFAULT NULL::bigint) -> TABLE(seal_id bigint, ok boolean, first_bad_event bigint, detail text)'],
    'seal_audit, verify_audit and audit_head have the contract''s arguments and results');
SELECT is(
    ARRAY(SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute
           WHERE attrelid = 'approvals.audit_seals'::regclass AND attnum > 0 AND NOT attisdropped
             AND attname IN ('id', 'first_event', 'last_event', 'event_count', 'prev_hash', 'hash', 'sealed_at')
           ORDER BY attnum),
    ARRAY['id bigint', 'first_event bigint', 'last_event bigint', 'event_count integer', 'prev_hash text',
          'hash text', 'sealed_at timestamp with time zone'],
    'approvals.audit_seals has the contract''s columns');

-- ---------------------------------------------------------------------------
-- Baseline: seal whatever is there; then nothing new seals nothing
-- ---------------------------------------------------------------------------
DO $$ BEGIN PERFORM pg_temp.setk('pre', approvals.seal_audit()); END $$;
DO $$ BEGIN PERFORM pg_temp.setk('s0', coalesce((SELECT max(id) FROM approvals.audit_seals), 0)); END $$;
DO $$ BEGIN PERFORM pg_temp.setk('l0', coalesce((SELECT max(last_event) FROM approvals.audit_seals), 0)); END $$;
SELECT is(approvals.seal_audit(), 0::bigint, 'seal_audit with no new event returns 0');
SELECT is((SELECT count(*) FROM approvals.audit_seals), pg_temp.k('s0'), '... and adds no seal');

-- ---------------------------------------------------------------------------
-- Seal 1: events of every shape (control characters, backslashes, unicode, NULLs,
-- an empty comment, a delegate's on_behalf_of, a tenant the reader cannot see)
-- ---------------------------------------------------------------------------
DO $$
BEGIN
    PERFORM approvals.submit(E'rt25\tx', E'res\\1\n', E'h\t\\25', id => E'c25\ta', actor => E'usr\breq',
                             tenant => 't25_ta', note => E'n\v');
    PERFORM approvals.decide(E'c25\ta', 'approved', actor => E'usr\trev',
        comment => E'tab\there nl\nline cr\rret bs\\slash bsp\bx ff\fx vt' || chr(11) || E'x ünïcødé ✓ 😀 "q" ''s \\N');
    PERFORM approvals.submit('rt25', 'b', 'h-b', id => 'c25_b', actor => 'usr_req');
    PERFORM approvals.decide('c25_b', 'rejected', actor => 'usr_rev');           -- comment NULL
    PERFORM approvals.submit('rt25', 'c', 'h-c', id => 'c25_c', actor => 'usr_req');
    PERFORM approvals.cancel_claim('c25_c', comment => '', actor => 'usr_req');  -- comment ''
    PERFORM approvals.submit('rt25', 'd', 'h-d', id => 'c25_d', actor => 'usr_req', approvers => ARRAY['usr_dr']);
    PERFORM approvals.delegate('usr_dg', delegator => 'usr_dr');
    PERFORM approvals.decide('c25_d', 'approved', actor => 'usr_dg', on_behalf_of => 'usr_dr');
END $$;
DO $$ BEGIN PERFORM pg_temp.setk('n1', (SELECT count(*) FROM approvals.events WHERE id > pg_temp.k('l0'))); END $$;
DO $$ BEGIN PERFORM pg_temp.setk('last1', (SELECT max(id) FROM approvals.events)); END $$;
SELECT is((SELECT count(*) FROM approvals.events WHERE id > pg_temp.k('l0') AND on_behalf_of = 'usr_dr'
              AND comment IS NULL), 1::bigint, 'fixture: an event with on_behalf_of (and a NULL comment)');

SELECT is((SELECT count(*) FROM unnest(ARRAY[8, 9, 10, 11, 12, 13, 92]) c
            WHERE strpos((SELECT comment FROM approvals.events WHERE claim_id = E'c25\ta' AND action = 'approved'), chr(c)) > 0),
          7::bigint, 'fixture: a comment with every character the encoding escapes (\b \t \n \v \f \r and backslash)');
SELECT is(approvals.seal_audit(), pg_temp.k('n1'), 'seal_audit returns how many events it sealed');
SELECT is((SELECT count(*) FROM approvals.audit_seals), pg_temp.s(1), 'it made one seal');
SELECT is((SELECT row(first_event, last_event, event_count)::text FROM approvals.audit_seals WHERE id = pg_temp.s(1)),
          row(pg_temp.k('l0') + 1, pg_temp.k('last1'), pg_temp.k('n1'))::text,
          'the seal covers the events from the previous seal''s last_event + 1 to the last one, and counts them');
SELECT is((SELECT prev_hash FROM approvals.audit_seals WHERE id = 1), repeat('0', 64),
          'the first seal''s prev_hash is 64 zeros');
SELECT matches((SELECT hash FROM approvals.audit_seals WHERE id = pg_temp.s(1)), '^[0-9a-f]{64}$',
               'hash is 64 lowercase hex characters');
SELECT is((SELECT hash FROM approvals.audit_seals WHERE id = pg_temp.s(1)), pg_temp.rehash(pg_temp.s(1)),
          'hash = SHA-256 of prev_hash, a newline and the COPY text lines of the events (recomputed in SQL)');
SELECT is((SELECT sealed_at FROM approvals.audit_seals WHERE id = pg_temp.s(1)), now(),
          'sealed_at is the sealing transaction''s time');
SELECT is((SELECT row(h.*)::text FROM approvals.audit_head() h),
          (SELECT row(id, last_event, hash, sealed_at)::text FROM approvals.audit_seals WHERE id = pg_temp.s(1)),
          'audit_head() is the latest seal (seal_id, last_event, hash, sealed_at)');
SELECT is((SELECT count(*) FROM approvals.audit_head()), 1::bigint, 'audit_head() returns one row');
SELECT is((SELECT array_agg(row(seal_id, ok, first_bad_event, detail)::text ORDER BY seal_id)
             FROM approvals.verify_audit() WHERE seal_id > pg_temp.k('s0')),
          ARRAY[row(pg_temp.s(1), true, NULL::bigint, NULL::text)::text],
          'verify_audit(): the seal is ok, first_bad_event and detail NULL');
SELECT is(approvals.seal_audit(), 0::bigint, 'sealing again right away seals nothing');

-- ---------------------------------------------------------------------------
-- Seal 2: `at` is written in UTC whatever the session's TimeZone
-- ---------------------------------------------------------------------------
SET TimeZone = 'Pacific/Chatham';
SELECT is((approvals.submit('rt25', 'tz', 'h-tz', id => 'c25_tz', actor => 'usr_req')).id, 'c25_tz',
          'fixture: a claim submitted under TimeZone Pacific/Chatham');
SELECT is(approvals.seal_audit(), 1::bigint, 'seal_audit under TimeZone Pacific/Chatham seals its one event');
SET TimeZone = 'America/St_Johns';
SELECT is(pg_temp.rehash(pg_temp.s(2)), (SELECT hash FROM approvals.audit_seals WHERE id = pg_temp.s(2)),
          'its hash is the one of the UTC encoding');
SELECT is(pg_temp.bad(), 'all ok', 'verify_audit under another TimeZone (America/St_Johns): all ok');
RESET TimeZone;

-- ---------------------------------------------------------------------------
-- Seal 3: an id drawn by a rolled-back subtransaction lies inside the range
-- ---------------------------------------------------------------------------
DO $$ BEGIN
    PERFORM approvals.submit('rt25', 'g' || g, 'h-g', id => 'c25_g' || g, actor => 'usr_req') FROM generate_series(1, 3) g;
END $$;
DO $$ BEGIN PERFORM pg_temp.setk('gap_lo', pg_temp.drawn() + 1); END $$;
SAVEPOINT gap;
SELECT is((approvals.decide('c25_g2', 'approved', actor => 'usr_rev')).status, 'approved', 'fixture: a decision in a savepoint');
ROLLBACK TO SAVEPOINT gap;
DO $$ BEGIN PERFORM pg_temp.setk('gap_hi', pg_temp.drawn()); END $$;
SELECT is((approvals.decide('c25_g3', 'rejected', actor => 'usr_rev')).status, 'rejected', 'fixture: a decision after it was rolled back');
SELECT ok(pg_temp.k('gap_hi') >= pg_temp.k('gap_lo')
          AND NOT EXISTS (SELECT FROM approvals.events WHERE id BETWEEN pg_temp.k('gap_lo') AND pg_temp.k('gap_hi')),
          'the rolled-back decision left a gap in the event ids');
SELECT is(approvals.seal_audit(), 4::bigint, 'seal_audit seals the 4 events, not the rolled-back one');
SELECT ok((SELECT first_event < pg_temp.k('gap_lo') AND last_event > pg_temp.k('gap_hi')
                  AND event_count = last_event - first_event + 1 - (pg_temp.k('gap_hi') - pg_temp.k('gap_lo') + 1)
             FROM approvals.audit_seals WHERE id = pg_temp.s(3)),
          'the gap is inside the seal''s range; event_count counts the events only');

-- ---------------------------------------------------------------------------
-- Seals 4 and 5: at most 10,000 events per seal
-- ---------------------------------------------------------------------------
SELECT is((SELECT count(approvals.submit('rt25_big', 'big' || g, 'h', actor => 'usr_req'))
             FROM generate_series(1, 12345) g), 12345::bigint, 'fixture: 12,345 claims submitted');
SELECT is(approvals.seal_audit(), 12345::bigint, 'seal_audit seals all 12,345 events in one call');
SELECT is((SELECT array_agg(event_count ORDER BY id) FROM approvals.audit_seals WHERE id > pg_temp.s(3)),
          ARRAY[10000, 2345], '... in two seals: 10,000 events, then 2,345');
SELECT is((SELECT last_event FROM approvals.audit_seals WHERE id = pg_temp.s(5)), pg_temp.drawn(),
          'the last seal ends at the last event');

-- ---------------------------------------------------------------------------
-- The whole chain
-- ---------------------------------------------------------------------------
SELECT is(ARRAY(SELECT s.id FROM approvals.audit_seals s
                  LEFT JOIN approvals.audit_seals p ON p.id = s.id - 1
                 WHERE s.prev_hash IS DISTINCT FROM coalesce(p.hash, repeat('0', 64)) ORDER BY 1),
          '{}'::bigint[], 'every seal''s prev_hash is the previous seal''s hash');
SELECT is(ARRAY(SELECT s.id FROM approvals.audit_seals s
                  LEFT JOIN approvals.audit_seals p ON p.id = s.id - 1
                 WHERE s.first_event <> coalesce(p.last_event, 0) + 1 OR s.last_event < s.first_event ORDER BY 1),
          '{}'::bigint[], 'seal ids are consecutive and their ranges contiguous (seal 1 from event 1)');
SELECT is(ARRAY(SELECT e.id FROM approvals.events e
                 WHERE (SELECT count(*) FROM approvals.audit_seals s WHERE e.id BETWEEN s.first_event AND s.last_event) <> 1
                 ORDER BY 1),
          '{}'::bigint[], 'every event is in exactly one seal');
SELECT is(ARRAY(SELECT s.id FROM approvals.audit_seals s
                 WHERE s.event_count <> (SELECT count(*) FROM approvals.events e WHERE e.id BETWEEN s.first_event AND s.last_event)
                    OR s.event_count > 10000 ORDER BY 1),
          '{}'::bigint[], 'every seal counts the events of its range, at most 10,000');
SELECT is(ARRAY(SELECT id FROM approvals.audit_seals WHERE id > pg_temp.k('s0') AND hash <> pg_temp.rehash(id) ORDER BY 1),
          '{}'::bigint[], 'every hash recomputed in SQL from the canonical encoding matches');
SELECT is((SELECT row(count(*), bool_and(ok), min(seal_id), max(seal_id))::text FROM approvals.verify_audit()),
          row(pg_temp.s(5), true, 1, pg_temp.s(5))::text, 'verify_audit(): one row per seal, all ok');
SELECT is((SELECT seal_id FROM approvals.audit_head()), pg_temp.s(5), 'audit_head() is the newest seal');

-- verify_audit(from_seal, to_seal)
SELECT is(ARRAY(SELECT seal_id FROM approvals.verify_audit(pg_temp.s(2), pg_temp.s(4)) WHERE ok),
          ARRAY[pg_temp.s(2), pg_temp.s(3), pg_temp.s(4)], 'verify_audit(from, to): the seals from..to, ok');
SELECT is(ARRAY(SELECT seal_id FROM approvals.verify_audit(from_seal => pg_temp.s(4)) WHERE ok),
          ARRAY[pg_temp.s(4), pg_temp.s(5)], 'verify_audit(from_seal => n): n to the newest');
SELECT is(ARRAY(SELECT seal_id FROM approvals.verify_audit(to_seal => pg_temp.s(1)) WHERE ok),
          ARRAY(SELECT generate_series(1, pg_temp.s(1))), 'verify_audit(to_seal => n): the first to n');
SELECT is(ARRAY(SELECT seal_id FROM approvals.verify_audit(pg_temp.s(3), pg_temp.s(3))),
          ARRAY[pg_temp.s(3)], 'verify_audit(n, n): seal n alone');
SELECT is((SELECT count(*) FROM approvals.verify_audit(pg_temp.s(4), pg_temp.s(2))), 0::bigint,
          'verify_audit(from > to): no row');
SELECT is((SELECT count(*) FROM approvals.verify_audit(pg_temp.s(5) + 1)), 0::bigint,
          'verify_audit(from after the newest seal): no row');

-- ---------------------------------------------------------------------------
-- Roles
-- ---------------------------------------------------------------------------
SET ROLE t25_rdr;
SELECT is((SELECT row(count(*), bool_and(ok))::text FROM approvals.verify_audit()), row(pg_temp.s(5), true)::text,
          'a reader may verify_audit (all ok, also over the events of a tenant it cannot see)');
SELECT is((SELECT seal_id FROM approvals.audit_head()), pg_temp.s(5), 'a reader may call audit_head()');
SELECT is((SELECT count(*) FROM approvals.audit_seals), pg_temp.s(5), 'a reader may SELECT approvals.audit_seals');
SELECT throws_ok($$SELECT approvals.seal_audit()$$, '42501', NULL, 'seal_audit as a reader is 42501');
RESET ROLE;
SET ROLE t25_req;
SELECT throws_ok($$SELECT approvals.seal_audit()$$, '42501', NULL, 'seal_audit as a requester is 42501');
SELECT is((SELECT count(*) FROM approvals.verify_audit()), pg_temp.s(5), 'a requester (a reader) may verify_audit');
RESET ROLE;
SET ROLE t25_rev;
SELECT throws_ok($$SELECT approvals.seal_audit()$$, '42501', NULL, 'seal_audit as a reviewer is 42501');
RESET ROLE;
SET ROLE t25_coord;
SELECT throws_ok($$SELECT approvals.seal_audit()$$, '42501', NULL, 'seal_audit as a coordinator is 42501');
RESET ROLE;
SET ROLE t25_plat;
SELECT throws_ok($$SELECT approvals.seal_audit()$$, '42501', NULL, 'seal_audit as platform is 42501');
SELECT is((SELECT count(*) FROM approvals.verify_audit()), pg_temp.s(5), 'platform may verify_audit');
RESET ROLE;
SET ROLE t25_none;
SELECT throws_ok($$SELECT approvals.seal_audit()$$, '42501', NULL, 'seal_audit by a role with no approvals role is 42501');
SELECT throws_ok($$SELECT count(*) FROM approvals.verify_audit()$$, '42501', NULL,
                 'verify_audit by a role with no approvals role is 42501');
SELECT throws_ok($$SELECT count(*) FROM approvals.audit_head()$$, '42501', NULL,
                 'audit_head by a role with no approvals role is 42501');
SELECT throws_ok($$SELECT count(*) FROM approvals.audit_seals$$, '42501', NULL,
                 'SELECT approvals.audit_seals by a role with no approvals role is 42501');
RESET ROLE;
GRANT USAGE ON SCHEMA approvals TO t25_none;
GRANT EXECUTE ON FUNCTION approvals.seal_audit(), approvals.verify_audit(bigint, bigint), approvals.audit_head() TO t25_none;
SET ROLE t25_none;
SELECT throws_ok($$SELECT approvals.seal_audit()$$, '42501', NULL,
                 'EXECUTE granted directly: seal_audit by a role with no approvals role is still 42501');
SELECT throws_ok($$SELECT count(*) FROM approvals.verify_audit()$$, '42501', NULL,
                 'EXECUTE granted directly: verify_audit by a role with no approvals role is still 42501');
SELECT throws_ok($$SELECT count(*) FROM approvals.audit_head()$$, '42501', NULL,
                 'EXECUTE granted directly: audit_head by a role with no approvals role is still 42501');
RESET ROLE;
-- an admin seals; it cannot write the seals
DO $$ BEGIN PERFORM approvals.submit('rt25', 'adm', 'h', id => 'c25_adm', actor => 'usr_req'); END $$;
SET ROLE t25_adm;
SELECT is(approvals.seal_audit(), 1::bigint, 'an admin may seal_audit (the one new event)');
SELECT throws_ok($$INSERT INTO approvals.audit_seals (id, first_event, last_event, event_count, prev_hash, hash, digests)
                   VALUES (1000000, 1, 1, 1, '', '', '')$$, '42501', NULL, 'an admin may not INSERT into audit_seals');
SELECT throws_ok($$UPDATE approvals.audit_seals SET hash = hash$$, '42501', NULL, 'an admin may not UPDATE audit_seals');
SELECT throws_ok($$DELETE FROM approvals.audit_seals$$, '42501', NULL, 'an admin may not DELETE from audit_seals');
SELECT throws_ok($$TRUNCATE approvals.audit_seals$$, '42501', NULL, 'an admin may not TRUNCATE audit_seals');
RESET ROLE;
SELECT is((SELECT seal_id FROM approvals.audit_head()), pg_temp.s(6), 'the admin''s seal is the new head');

-- ---------------------------------------------------------------------------
-- Append-only, even for a superuser (while the triggers are enabled)
-- ---------------------------------------------------------------------------
SELECT throws_ok($$UPDATE approvals.audit_seals SET hash = hash WHERE id = 1$$, '42501', 'approvals.audit_seals is append-only',
                 'a superuser''s UPDATE of audit_seals is refused (42501)');
SELECT throws_ok($$DELETE FROM approvals.audit_seals WHERE id = 1$$, '42501', 'approvals.audit_seals is append-only',
                 'a superuser''s DELETE from audit_seals is refused (42501)');
SELECT throws_ok($$TRUNCATE approvals.audit_seals$$, '42501', 'approvals.audit_seals is append-only',
                 'a superuser''s TRUNCATE of audit_seals is refused (42501)');
SELECT throws_ok($$UPDATE approvals.events SET comment = 'x' WHERE id = (SELECT max(id) FROM approvals.events)$$, '42501', NULL,
                 'a superuser''s UPDATE of events is refused (42501)');
SELECT throws_ok($$DELETE FROM approvals.events$$, '42501', NULL, 'a superuser''s DELETE from events is refused (42501)');
SELECT is((SELECT count(*) FROM approvals.audit_seals), pg_temp.s(6), 'every seal is still there');
SELECT is(pg_temp.bad(), 'all ok', 'verify_audit: all ok before the tampering');

-- ---------------------------------------------------------------------------
-- Tampering by a superuser with the triggers disabled
-- ---------------------------------------------------------------------------
-- event ids to tamper with
DO $$ BEGIN PERFORM pg_temp.setk('e_special', (SELECT id FROM approvals.events WHERE claim_id = E'c25\ta' AND action = 'approved')); END $$;
DO $$ BEGIN PERFORM pg_temp.setk('e_null', (SELECT id FROM approvals.events WHERE claim_id = 'c25_b' AND action = 'rejected')); END $$;
DO $$ BEGIN PERFORM pg_temp.setk('e_empty', (SELECT id FROM approvals.events WHERE claim_id = 'c25_c' AND action <> 'submitted')); END $$;
DO $$ BEGIN PERFORM pg_temp.setk('e_obo', (SELECT id FROM approvals.events WHERE claim_id = 'c25_d' AND on_behalf_of IS NOT NULL)); END $$;
DO $$ BEGIN PERFORM pg_temp.setk('b4', (SELECT first_event FROM approvals.audit_seals WHERE id = pg_temp.s(4))); END $$;
DO $$ BEGIN PERFORM pg_temp.setk('b5', (SELECT first_event FROM approvals.audit_seals WHERE id = pg_temp.s(5))); END $$;
SELECT is((SELECT count(*) FROM approvals.events
            WHERE id IN (pg_temp.k('e_special'), pg_temp.k('e_null'), pg_temp.k('e_empty'), pg_temp.k('e_obo'),
                         pg_temp.k('b4') + 5000, pg_temp.k('b4') + 5003, pg_temp.k('b4') + 5010, pg_temp.k('b5') + 7)),
          8::bigint, 'fixture: the events to tamper with exist');

-- a changed column, each of the 11 besides id, on the event in seal 1 that has them all set
-- (on_behalf_of: the delegate's event)
CREATE TEMP TABLE t25_cols (col text, val text, ev text);
INSERT INTO t25_cols VALUES
    ('claim_id', $$'c25_other'$$, 'e_special'), ('batch_id', $$'bat_x'$$, 'e_special'),
    ('tenant', $$'t25_tb'$$, 'e_special'), ('actor', $$'usr_forger'$$, 'e_special'),
    ('action', $$'rejected'$$, 'e_special'), ('from_status', $$'approved'$$, 'e_special'),
    ('to_status', $$'rejected'$$, 'e_special'), ('comment', $$comment || '.'$$, 'e_special'),
    ('snapshot_hash', $$'h-forged'$$, 'e_special'), ('at', $$at + interval '1 microsecond'$$, 'e_special'),
    ('on_behalf_of', $$'usr_other'$$, 'e_obo');
SELECT matches(pg_temp.tamper(format('UPDATE approvals.events SET %I = %s WHERE id = %s', col, val, pg_temp.k(ev))),
               pg_temp.rx(format('%s\|%s\|event %s of seal %s was changed', pg_temp.s(1), pg_temp.k(ev), pg_temp.k(ev), pg_temp.s(1))),
               format('a changed %s of an event is found: seal, first bad event, "event … of seal … was changed"; the other seals ok', col))
  FROM t25_cols ORDER BY col;
SELECT matches(pg_temp.tamper(format('UPDATE approvals.events SET comment = %L WHERE id = %s', '', pg_temp.k('e_null'))),
               pg_temp.rx(format('%s\|%s\|event %s of seal %s was changed', pg_temp.s(1), pg_temp.k('e_null'), pg_temp.k('e_null'), pg_temp.s(1))),
               'a NULL comment changed to '''' is found (\N and the empty string differ)');
SELECT matches(pg_temp.tamper(format('UPDATE approvals.events SET comment = NULL WHERE id = %s', pg_temp.k('e_empty'))),
               pg_temp.rx(format('%s\|%s\|event %s of seal %s was changed', pg_temp.s(1), pg_temp.k('e_empty'), pg_temp.k('e_empty'), pg_temp.s(1))),
               'an empty comment changed to NULL is found');
SELECT matches(pg_temp.tamper(format('UPDATE approvals.events SET comment = %L WHERE id = %s', E'x\ty', pg_temp.k('e_empty'))),
               pg_temp.rx(format('%s\|%s\|event %s of seal %s was changed', pg_temp.s(1), pg_temp.k('e_empty'), pg_temp.k('e_empty'), pg_temp.s(1))),
               'a comment changed to one with a tab is found');
SELECT is(pg_temp.tamper(format('UPDATE approvals.events SET comment = comment WHERE id = %s', pg_temp.k('e_special'))),
          'all ok', 'an UPDATE that changes no value is not a change');
-- two events of one seal and one of another: the first of each is named
SELECT matches(pg_temp.tamper(
        format('UPDATE approvals.events SET actor = ''usr_x'' WHERE id IN (%s, %s, %s)',
               pg_temp.k('b4') + 5010, pg_temp.k('b4') + 5003, pg_temp.k('b5') + 7)),
        pg_temp.rx(format('%s\|%s\|event %s of seal %s was changed', pg_temp.s(4), pg_temp.k('b4') + 5003, pg_temp.k('b4') + 5003, pg_temp.s(4)),
                   format('%s\|%s\|event %s of seal %s was changed', pg_temp.s(5), pg_temp.k('b5') + 7, pg_temp.k('b5') + 7, pg_temp.s(5))),
        'events changed in two seals: each seal names its first changed event');

-- ranges: a changed event of seal 4 is outside verify_audit(5, 6) and inside verify_audit(4, 4)
CREATE FUNCTION pg_temp.tamper_ranges(ev bigint) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    BEGIN
        ALTER TABLE approvals.events DISABLE TRIGGER USER;
        UPDATE approvals.events SET actor = 'usr_x' WHERE id = ev;
        r := pg_temp.bad(pg_temp.s(5), pg_temp.s(6)) || ' / ' || pg_temp.bad(pg_temp.s(4), pg_temp.s(4))
             || ' / ' || pg_temp.bad(pg_temp.s(1), pg_temp.s(3));
        RAISE EXCEPTION 't25: undo' USING ERRCODE = 'T2500';
    EXCEPTION WHEN SQLSTATE 'T2500' THEN
        NULL;
    END;
    RETURN r;
END $f$;
SELECT is(pg_temp.tamper_ranges(pg_temp.k('b4') + 5000),
          format('all ok / %s|%s|event %s of seal %s was changed / all ok',
                 pg_temp.s(4), pg_temp.k('b4') + 5000, pg_temp.k('b4') + 5000, pg_temp.s(4)),
          'verify_audit(from, to) checks those seals only (the chain into seal 5 from seal 4''s stored hash)');

-- a deleted event: in the middle, the first and the last of a seal
SELECT matches(pg_temp.tamper(format('DELETE FROM approvals.events WHERE id = %s', pg_temp.k('b4') + 5000)),
               pg_temp.rx(format('%s\|%s\|event %s of seal %s was deleted', pg_temp.s(4), pg_temp.k('b4') + 5000, pg_temp.k('b4') + 5000, pg_temp.s(4))),
               'a deleted event is found: "event … of seal … was deleted"');
SELECT matches(pg_temp.tamper(format('DELETE FROM approvals.events WHERE id = %s', pg_temp.k('b4'))),
               pg_temp.rx(format('%s\|%s\|event %s of seal %s was deleted', pg_temp.s(4), pg_temp.k('b4'), pg_temp.k('b4'), pg_temp.s(4))),
               'the deleted first event of a seal is found');
SELECT matches(pg_temp.tamper(format('DELETE FROM approvals.events WHERE id = %s', pg_temp.k('last1'))),
               pg_temp.rx(format('%s\|%s\|event %s of seal %s was deleted', pg_temp.s(1), pg_temp.k('last1'), pg_temp.k('last1'), pg_temp.s(1))),
               'the deleted last event of a seal is found');
SELECT matches(pg_temp.tamper(format('DELETE FROM approvals.events WHERE id BETWEEN %s AND %s', pg_temp.k('b5') + 7, pg_temp.k('b5') + 9)),
               pg_temp.rx(format('%s\|%s\|event %s of seal %s was deleted', pg_temp.s(5), pg_temp.k('b5') + 7, pg_temp.k('b5') + 7, pg_temp.s(5))),
               'three deleted events: the first is named');

-- an event inserted into the gap inside seal 3's range
DO $$ BEGIN PERFORM pg_temp.setk('f3', (SELECT first_event FROM approvals.audit_seals WHERE id = pg_temp.s(3))); END $$;
DO $$ BEGIN PERFORM pg_temp.setk('l3', (SELECT last_event FROM approvals.audit_seals WHERE id = pg_temp.s(3))); END $$;
SELECT matches(pg_temp.tamper(format(
        $$INSERT INTO approvals.events (id, claim_id, actor, action, from_status, to_status, comment, snapshot_hash)
          OVERRIDING SYSTEM VALUE VALUES (%s, 'c25_g2', 'usr_rev', 'approved', 'pending', 'approved', 'backdated', 'h-g')$$,
        pg_temp.k('gap_lo'))),
        pg_temp.rx(format('%s\|%s\|event %s was inserted inside the range of seal %s \(events %s to %s\)',
                          pg_temp.s(3), pg_temp.k('gap_lo'), pg_temp.k('gap_lo'), pg_temp.s(3),
                          pg_temp.k('f3'), pg_temp.k('l3'))),
        'an event inserted into a sealed range (into the id gap) is found: "event … was inserted inside the range of seal …"');
-- an event deleted and another inserted with its id (a replaced event)
SELECT matches(pg_temp.tamper(
        format('DELETE FROM approvals.events WHERE id = %s', pg_temp.k('e_null')),
        format($$INSERT INTO approvals.events (id, claim_id, actor, action, from_status, to_status, snapshot_hash)
                 OVERRIDING SYSTEM VALUE VALUES (%s, 'c25_b', 'usr_rev', 'approved', 'pending', 'approved', 'h-b')$$,
               pg_temp.k('e_null'))),
        pg_temp.rx(format('%s\|%s\|event %s of seal %s was changed', pg_temp.s(1), pg_temp.k('e_null'), pg_temp.k('e_null'), pg_temp.s(1))),
        'an event replaced by another with its id is found as changed');

-- seals changed, deleted, forged
SELECT matches(pg_temp.tamper(format($$UPDATE approvals.audit_seals SET hash = repeat('f', 64) WHERE id = %s$$, pg_temp.s(2))),
               pg_temp.rx(format('%s\|-\|seal %s was changed: its hash does not match its events', pg_temp.s(2), pg_temp.s(2)),
                          format('%s\|-\|the chain is broken at seal %s\M.*', pg_temp.s(3), pg_temp.s(3))),
               'a changed seal hash: "seal n was changed: its hash does not match its events", "the chain is broken at seal n+1"');
SELECT matches(pg_temp.tamper(format($$UPDATE approvals.audit_seals SET prev_hash = repeat('0', 64) WHERE id = %s$$, pg_temp.s(3))),
               pg_temp.rx(format('%s\|-\|the chain is broken at seal %s\M.*', pg_temp.s(3), pg_temp.s(3))),
               'a changed prev_hash: the chain is broken at that seal');
SELECT matches(pg_temp.tamper(format($$DELETE FROM approvals.audit_seals WHERE id = %s$$, pg_temp.s(3))),
               pg_temp.rx(format('%s\|-\|seal %s is missing: seal %s follows seal %s', pg_temp.s(4), pg_temp.s(3), pg_temp.s(4), pg_temp.s(2))),
               'a deleted seal: "seal n is missing: seal n+1 follows seal n-1"');
SELECT matches(pg_temp.tamper(format($$UPDATE approvals.audit_seals SET event_count = event_count + 1 WHERE id = %s$$, pg_temp.s(4))),
               pg_temp.rx(format('%s\|-\|seal %s was changed\M.*', pg_temp.s(4), pg_temp.s(4))),
               'a changed event_count: "seal n was changed"');
SELECT matches(pg_temp.tamper(format($$UPDATE approvals.audit_seals SET last_event = last_event - 1 WHERE id = %s$$, pg_temp.s(4))),
               pg_temp.rx(format('%s\|.*', pg_temp.s(4)), format('%s\|.*', pg_temp.s(5))),
               'seal n''s range shortened by one event: seals n and n+1 are not ok');
-- a superuser re-seals a changed event: the seal's hash is recomputed, the chain breaks after it
SELECT matches(pg_temp.tamper(
        format('UPDATE approvals.events SET comment = ''forged'' WHERE id = %s', pg_temp.k('e_null')),
        format('UPDATE approvals.audit_seals SET hash = pg_temp.rehash(id) WHERE id = %s', pg_temp.s(1))),
        pg_temp.rx(format('%s\|%s\|event %s of seal %s was changed', pg_temp.s(1), pg_temp.k('e_null'), pg_temp.k('e_null'), pg_temp.s(1)),
                   format('%s\|-\|the chain is broken at seal %s\M.*', pg_temp.s(2), pg_temp.s(2))),
        'a changed event with its seal''s hash recomputed: the event is still named, and the chain breaks at the next seal');
-- the newest seal deleted: verify_audit cannot tell, the head hash kept outside can
DO $$ BEGIN PERFORM pg_temp.setk('head_id', (SELECT seal_id FROM approvals.audit_head())); END $$;
CREATE TEMP TABLE t25_head AS SELECT hash FROM approvals.audit_head();
CREATE FUNCTION pg_temp.drop_head() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    BEGIN
        ALTER TABLE approvals.audit_seals DISABLE TRIGGER USER;
        DELETE FROM approvals.audit_seals WHERE id = pg_temp.k('head_id');
        r := pg_temp.bad() || ' / ' || ((SELECT seal_id FROM approvals.audit_head()) = pg_temp.k('head_id') - 1)
             || ' / ' || ((SELECT hash FROM approvals.audit_head()) = (SELECT hash FROM t25_head));
        RAISE EXCEPTION 't25: undo' USING ERRCODE = 'T2500';
    EXCEPTION WHEN SQLSTATE 'T2500' THEN
        NULL;
    END;
    RETURN r;
END $f$;
SELECT is(pg_temp.drop_head(), 'all ok / true / false',
          'the newest seal deleted: verify_audit is all ok, but audit_head''s hash differs from the one kept');
-- a forged seal appended with a made-up hash
SELECT matches(pg_temp.tamper(format(
        $$INSERT INTO approvals.audit_seals (id, first_event, last_event, event_count, prev_hash, hash, digests)
          SELECT %s, last_event + 1, last_event + 1, 0, hash, repeat('a', 64), '' FROM approvals.audit_seals WHERE id = %s$$,
        pg_temp.s(7), pg_temp.s(6))),
        pg_temp.rx(format('%s\|-\|seal %s was changed: its hash does not match its events', pg_temp.s(7), pg_temp.s(7))),
        'a forged seal with a made-up hash: "seal n was changed: its hash does not match its events"');
SELECT is(pg_temp.bad(), 'all ok', 'after all the (rolled-back) tampering: all ok again');
-- the pending seal's list of transactions to wait for, edited to hold a NULL and junk: both are
-- not transactions, so nothing is waited for (it used to crash the server on the NULL)
UPDATE approvals.audit_seal_pending SET last_event = (SELECT max(id) FROM approvals.events),
                                        waiting_for = ARRAY[NULL, 'junk', '1'];
SELECT lives_ok($$SELECT approvals.seal_audit()$$, 'seal_audit with NULL and junk in audit_seal_pending.waiting_for');
SELECT is(pg_temp.bad(), 'all ok', 'and the seals still verify');

SELECT * FROM finish();
ROLLBACK;
