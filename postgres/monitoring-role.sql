-- The role the collector reads Postgres as (through postgres_exporter): it may log in and read the
-- statistics and settings views (the built-in pg_monitor role), and nothing else: no table of the
-- platform, no write. At most 3 connections, so it can never take the services' place, and no
-- statement of it waits on a lock or runs long (below).
--
-- Idempotent, run with psql on every start of the stack (native: `cargo xtask stack`; compose: the
-- one-shot `postgres-monitor-init` service), so a database made before this file existed gets the
-- role too and a changed password is applied:
--   psql -v monitor_password="$(cat <password file>)" -f postgres/monitoring-role.sql
-- The password comes from a file outside the repo (native: target/stack/postgres-monitor-password;
-- compose: the orgraph-secrets volume); it is never written here.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SELECT 'CREATE ROLE orgraph_monitor'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'orgraph_monitor')\gexec
ALTER ROLE orgraph_monitor WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    CONNECTION LIMIT 3 PASSWORD :'monitor_password';
GRANT pg_monitor TO orgraph_monitor;
-- A monitoring query never waits: the exporter's table sizes need a lock on each table, and behind
-- a migration's (or a stuck batch's) exclusive lock they queued for minutes, one session per
-- scrape, until the 3 connections were used up and nothing about Postgres could be read. With
-- these they fail at once (that scrape lacks the blocked table's size) and the connection is free.
ALTER ROLE orgraph_monitor SET lock_timeout = '1s';
ALTER ROLE orgraph_monitor SET statement_timeout = '5s';
