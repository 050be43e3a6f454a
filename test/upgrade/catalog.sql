-- test/upgrade/catalog.sql: the catalog of extension approvals as sorted text, one fact a
-- line ("KIND OBJECT | VALUE"), so that two databases can be compared with diff
-- (test/shell/70_upgrade.sh: ALTER EXTENSION approvals UPDATE against a fresh install).
--
-- Covers everything in schema approvals: relations (kind, persistence, row-level security,
-- options, ACL), columns (position among the live columns, type, not-null, default, identity,
-- generated, collation, storage, compression, statistics target, options, ACL), constraints,
-- indexes, sequences (parameters and owner column), views, rules, triggers, policies, types
-- (enum labels, domains), functions and procedures (pg_get_functiondef, one line per line of
-- it, and their ACL), the schema's ACL and default privileges, initial privileges
-- (pg_init_privs, what pg_dump treats as the extension's own grants), every comment on a
-- non-built-in object, the pg_extension_config_dump registrations, and the extension's
-- members (pg_depend deptype 'e').  Owners are left out: both sides are created by the same
-- superuser, and ACLs (which name the grantor) are compared as they are.
-- Column options leave out pg_attver=N: this server build (PostgreSQL 15.20 as packaged here)
-- stamps it on every column it creates, with a value that differs per relation and install.
SET search_path = pg_catalog;
WITH nsp AS (
    SELECT n.oid, n.nspacl FROM pg_namespace n WHERE n.nspname = 'approvals'
), ext AS (
    SELECT e.* FROM pg_extension e WHERE e.extname = 'approvals'
), rel AS (
    SELECT c.*, c.oid::regclass::text AS qname
    FROM pg_class c JOIN nsp ON c.relnamespace = nsp.oid
), fn AS (
    SELECT p.*, p.oid::regprocedure::text AS sig
    FROM pg_proc p JOIN nsp ON p.pronamespace = nsp.oid
), facts(k, n, v) AS (
    -- the extension and its schema
    SELECT 'extension approvals', 0,
           format('version=%s relocatable=%s schema=%s requires=%s',
                  e.extversion, e.extrelocatable, e.extnamespace::regnamespace,
                  (SELECT string_agg(r.extname, ',' ORDER BY r.extname)
                   FROM pg_extension r WHERE r.oid IN (SELECT d.refobjid FROM pg_depend d
                       WHERE d.classid = 'pg_extension'::regclass AND d.objid = e.oid
                         AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'n')))
    FROM ext e
    UNION ALL
    SELECT 'schema approvals', 0, format('acl=%s', coalesce(nsp.nspacl::text, '-')) FROM nsp
    UNION ALL
    SELECT 'default_acl approvals', 0,
           format('role=%s type=%s acl=%s', d.defaclrole::regrole, d.defaclobjtype, d.defaclacl)
    FROM pg_default_acl d JOIN nsp ON d.defaclnamespace = nsp.oid
    -- relations
    UNION ALL
    SELECT 'relation ' || r.qname, 0,
           format('kind=%s persistence=%s rowsecurity=%s forcerowsecurity=%s replident=%s '
                  'partition=%s partkey=%s options=%s acl=%s',
                  r.relkind, r.relpersistence, r.relrowsecurity, r.relforcerowsecurity,
                  r.relreplident, r.relispartition,
                  CASE WHEN r.relkind = 'p' THEN pg_get_partkeydef(r.oid) END,
                  coalesce(r.reloptions::text, '-'), coalesce(r.relacl::text, '-'))
    FROM rel r
    UNION ALL
    SELECT 'inherits ' || i.inhrelid::regclass, i.inhseqno, i.inhparent::regclass::text
    FROM pg_inherits i JOIN rel r ON r.oid = i.inhrelid
    -- columns (position among the live columns: a dropped column leaves a gap in attnum)
    UNION ALL
    SELECT 'column ' || r.qname || '.' || quote_ident(a.attname), 0,
           format('#%s %s notnull=%s default=%s identity=%s generated=%s collation=%s '
                  'storage=%s compression=%s stattarget=%s options=%s acl=%s',
                  row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-'),
                  nullif(a.attidentity, ''), nullif(a.attgenerated, ''),
                  coalesce(co.collname, '-'), a.attstorage, nullif(a.attcompression, ''),
                  a.attstattarget,
                  coalesce((SELECT array_agg(o ORDER BY o)::text FROM unnest(a.attoptions) AS o
                            WHERE o NOT LIKE 'pg\_attver=%'), '-'),
                  coalesce(a.attacl::text, '-'))
    FROM rel r
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
    WHERE r.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
    -- constraints of tables and domains
    UNION ALL
    SELECT 'constraint ' || coalesce(r.qname, co.contypid::regtype::text) || '.'
           || quote_ident(co.conname), 0,
           format('type=%s %s validated=%s noinherit=%s', co.contype,
                  pg_get_constraintdef(co.oid), co.convalidated, co.connoinherit)
    FROM pg_constraint co
    LEFT JOIN rel r ON r.oid = co.conrelid
    WHERE co.connamespace = (SELECT oid FROM nsp)
    -- indexes
    UNION ALL
    SELECT 'index ' || i.indexrelid::regclass, 0,
           format('%s valid=%s clustered=%s replident=%s', pg_get_indexdef(i.indexrelid),
                  i.indisvalid, i.indisclustered, i.indisreplident)
    FROM pg_index i JOIN rel r ON r.oid = i.indrelid
    -- sequences (parameters, and the column that owns them)
    UNION ALL
    SELECT 'sequence ' || r.qname, 0,
           format('type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned_by=%s',
                  s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
                  s.seqcache, s.seqcycle,
                  coalesce((SELECT string_agg(pg_describe_object(d.refclassid, d.refobjid,
                                                                 d.refobjsubid)
                                              || ' (' || d.deptype::text || ')', ', ')
                            FROM pg_depend d
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = r.oid
                              AND d.refclassid = 'pg_class'::regclass
                              AND d.deptype IN ('a', 'i')), '-'))
    FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid
    -- views and materialized views, one line per line of their definition
    UNION ALL
    SELECT 'view ' || r.qname, l.n::integer, l.line
    FROM rel r, regexp_split_to_table(pg_get_viewdef(r.oid, true), E'\n')
                    WITH ORDINALITY AS l(line, n)
    WHERE r.relkind IN ('v', 'm')
    -- rules other than views' own
    UNION ALL
    SELECT 'rule ' || r.qname || '.' || quote_ident(ru.rulename), 0,
           pg_get_ruledef(ru.oid) || ' enabled=' || ru.ev_enabled::text
    FROM pg_rewrite ru JOIN rel r ON r.oid = ru.ev_class
    WHERE ru.rulename <> '_RETURN'
    -- triggers (not the internal ones of foreign keys: those are the constraints)
    UNION ALL
    SELECT 'trigger ' || r.qname || '.' || quote_ident(t.tgname), 0,
           pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
    FROM pg_trigger t JOIN rel r ON r.oid = t.tgrelid
    WHERE NOT t.tgisinternal
    -- row-level security policies
    UNION ALL
    SELECT 'policy ' || r.qname || '.' || quote_ident(p.polname), 0,
           format('cmd=%s permissive=%s roles=%s using=%s check=%s', p.polcmd, p.polpermissive,
                  (SELECT string_agg(CASE WHEN x.role = 0 THEN 'public'
                                          ELSE x.role::regrole::text END, ',' ORDER BY 1)
                   FROM unnest(p.polroles) AS x(role)),
                  coalesce(pg_get_expr(p.polqual, p.polrelid), '-'),
                  coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '-'))
    FROM pg_policy p JOIN rel r ON r.oid = p.polrelid
    -- types (row types and array types included), enum labels, domains
    UNION ALL
    SELECT 'type ' || t.oid::regtype, 0,
           format('type=%s category=%s relation=%s element=%s base=%s notnull=%s default=%s '
                  'collation=%s acl=%s labels=%s',
                  t.typtype, t.typcategory, nullif(t.typrelid, 0)::regclass,
                  nullif(t.typelem, 0)::regtype, nullif(t.typbasetype, 0)::regtype,
                  t.typnotnull, coalesce(t.typdefault, '-'),
                  coalesce((SELECT collname FROM pg_collation WHERE oid = t.typcollation), '-'),
                  coalesce(t.typacl::text, '-'),
                  coalesce((SELECT string_agg(quote_literal(e.enumlabel), ','
                                              ORDER BY e.enumsortorder)
                            FROM pg_enum e WHERE e.enumtypid = t.oid), '-'))
    FROM pg_type t JOIN nsp ON t.typnamespace = nsp.oid
    -- functions and procedures: their whole definition (signature, return type, language,
    -- volatility, strictness, security, parallel safety, cost, settings, body), and ACL
    UNION ALL
    SELECT 'function ' || f.sig, l.n::integer, l.line
    FROM fn f, regexp_split_to_table(pg_get_functiondef(f.oid), E'\n') WITH ORDINALITY AS l(line, n)
    WHERE f.prokind <> 'a'
    UNION ALL
    SELECT 'function ' || f.sig, 0,
           format('aggregate transfn=%s finalfn=%s combinefn=%s stype=%s initval=%s',
                  a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggtranstype::regtype,
                  a.agginitval)
    FROM fn f JOIN pg_aggregate a ON a.aggfnoid = f.oid
    UNION ALL
    SELECT 'function ' || f.sig, -1,
           format('kind=%s acl=%s', f.prokind, coalesce(f.proacl::text, '-'))
    FROM fn f
    -- initial privileges (recorded by CREATE EXTENSION and ALTER EXTENSION UPDATE)
    UNION ALL
    SELECT 'init_privs ' || pg_describe_object(ip.classoid, ip.objoid, ip.objsubid), 0,
           format('type=%s %s', ip.privtype, ip.initprivs)
    FROM pg_init_privs ip
    WHERE ip.objoid >= 16384
    -- comments on every object that is not built in
    UNION ALL
    SELECT 'comment ' || pg_describe_object(d.classoid, d.objoid, d.objsubid), 0,
           d.description
    FROM pg_description d
    WHERE d.objoid >= 16384
    -- tables and sequences whose contents pg_dump dumps (pg_extension_config_dump)
    UNION ALL
    SELECT 'config_dump ' || c.rel::regclass, 0, format('condition=%L', c.cond)
    FROM ext e, unnest(e.extconfig, e.extcondition) AS c(rel, cond)
    -- members of the extension
    UNION ALL
    SELECT 'member', 0, pg_describe_object(d.classid, d.objid, d.objsubid)
    FROM ext e JOIN pg_depend d
      ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid AND d.deptype = 'e'
)
SELECT k || ' | ' || v FROM facts ORDER BY k, n, v;
