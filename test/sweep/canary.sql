-- test/sweep/canary.sql: proves that test/shell/60_bad_input.sh can fail. NOT part of the
-- suite; for a scratch cluster only (never a shared one: it crashes backends).
--
-- Loaded into template1, it adds an event trigger that puts four misbehaving routines into
-- schema approvals whenever CREATE EXTENSION approvals runs in a database made from it (the
-- sweep's own database is). The sweep must then report, as every role that may call them:
--   approvals.zz_canary_crash(key => NULL) and (all arguments NULL): server crashed (SIGSEGV)
--   approvals.zz_canary_internal(x => 0): raised XX000
--   approvals.zz_canary_leftover(x => ''), as superuser: raised 22023 and left rows behind
--   approvals.zz_canary_type: no hostile values for type uuid
--
--   source test/lib.sh && ap_use_cluster sweep 54341 && ap_start
--   ap_psql -d template1 -f test/sweep/canary.sql
--   bash test/shell/60_bad_input.sh          # 23 "not ok" lines
--   ap_psql -d template1 -c 'DROP EVENT TRIGGER sweep_canary' -c 'DROP FUNCTION public.sweep_canary_et()'
CREATE OR REPLACE FUNCTION public.sweep_canary_et() RETURNS event_trigger LANGUAGE plpgsql AS $et$
BEGIN
  IF to_regnamespace('approvals') IS NULL OR to_regproc('approvals.zz_canary_crash') IS NOT NULL THEN
    RETURN;
  END IF;
  -- segfaults its backend when key is NULL (like json_required did)
  CREATE FUNCTION approvals.zz_canary_crash(body jsonb, key text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER AS $f$
  BEGIN
    IF key IS NULL THEN
      COPY (SELECT 1) TO PROGRAM 'kill -SEGV $PPID';
      PERFORM pg_sleep(5);
    END IF;
    RETURN body ->> key;
  END $f$;
  -- raises XX000 for 0 (like set_handler(0) did)
  CREATE FUNCTION approvals.zz_canary_internal(x integer) RETURNS integer
    LANGUAGE plpgsql AS $f$
  BEGIN
    IF x = 0 THEN RAISE EXCEPTION 'cache lookup failed for canary %', x USING ERRCODE = 'XX000'; END IF;
    RETURN x;
  END $f$;
  -- commits a row, then raises for an empty string
  CREATE PROCEDURE approvals.zz_canary_leftover(x text)
    LANGUAGE plpgsql AS $f$
  BEGIN
    INSERT INTO approvals.tenant_grants (tenant, member) VALUES ('canary-' || clock_timestamp(), 0);
    COMMIT;
    IF x = '' THEN RAISE EXCEPTION 'x must not be empty' USING ERRCODE = '22023'; END IF;
  END $f$;
  -- an argument type the sweep has no hostile values for
  CREATE FUNCTION approvals.zz_canary_type(u uuid) RETURNS uuid LANGUAGE sql RETURN u;
END
$et$;
DROP EVENT TRIGGER IF EXISTS sweep_canary;
CREATE EVENT TRIGGER sweep_canary ON ddl_command_end WHEN TAG IN ('CREATE EXTENSION')
    EXECUTE FUNCTION public.sweep_canary_et();
