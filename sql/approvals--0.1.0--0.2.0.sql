-- approvals 0.1.0 -> 0.2.0 (ALTER EXTENSION approvals UPDATE)
--
-- Every change to the SQL objects between 0.1.0 and 0.2.0, in the order of
-- sql/approvals--0.2.0.sql.  test/shell/70_upgrade.sh checks that the catalog
-- after this script equals a fresh install of 0.2.0.
\echo Use "ALTER EXTENSION approvals UPDATE TO '0.2.0'" to load this file. \quit
