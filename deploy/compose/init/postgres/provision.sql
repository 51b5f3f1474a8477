-- Eva's roles, databases and grants. Idempotent: run it on every start (compose `postgres-init`, the Kubernetes
-- `postgres-init` Job) or once by hand against a managed server, as a superuser / the admin role:
--   psql -X -v ON_ERROR_STOP=1 -v owner_password=... -v app_password=... -f provision.sql
--
-- eva_owner owns every database and schema and runs the migrations (EVA_MIGRATION_DATABASE_URL).
-- eva_app is what the services connect as (EVA_DATABASE_URL): not an owner, not a superuser, NOBYPASSRLS, so
-- row-level security applies to it; it gets DML on whatever eva_owner creates, through default privileges.
-- A copy lives in deploy/k8s/components/postgres-init/ (kustomize reads only inside its tree);
-- scripts/validate_manifests.py checks that the two stay identical.
\set ON_ERROR_STOP on

SELECT 'CREATE ROLE eva_owner' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eva_owner') \gexec
SELECT 'CREATE ROLE eva_app' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eva_app') \gexec
ALTER ROLE eva_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'owner_password';
ALTER ROLE eva_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'app_password';

-- One database per service.
SELECT 'CREATE DATABASE eva_auth OWNER eva_owner' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'eva_auth') \gexec
SELECT 'CREATE DATABASE eva_tenant OWNER eva_owner' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'eva_tenant') \gexec
SELECT 'CREATE DATABASE eva_conversation OWNER eva_owner' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'eva_conversation') \gexec
SELECT 'CREATE DATABASE eva_messaging OWNER eva_owner' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'eva_messaging') \gexec
SELECT 'CREATE DATABASE eva_ingest OWNER eva_owner' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'eva_ingest') \gexec
SELECT 'CREATE DATABASE eva_n8n OWNER eva_owner' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'eva_n8n') \gexec

-- Per database: owned by eva_owner, closed to PUBLIC, open to eva_app, and default privileges so that every
-- table, sequence and function a migration creates is usable by eva_app without a grant in the migration.
\connect eva_auth
ALTER DATABASE eva_auth OWNER TO eva_owner;
REVOKE ALL ON DATABASE eva_auth FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE eva_auth TO eva_app;
ALTER SCHEMA public OWNER TO eva_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO eva_app;

\connect eva_tenant
ALTER DATABASE eva_tenant OWNER TO eva_owner;
REVOKE ALL ON DATABASE eva_tenant FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE eva_tenant TO eva_app;
ALTER SCHEMA public OWNER TO eva_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO eva_app;

\connect eva_conversation
ALTER DATABASE eva_conversation OWNER TO eva_owner;
REVOKE ALL ON DATABASE eva_conversation FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE eva_conversation TO eva_app;
ALTER SCHEMA public OWNER TO eva_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO eva_app;

\connect eva_messaging
ALTER DATABASE eva_messaging OWNER TO eva_owner;
REVOKE ALL ON DATABASE eva_messaging FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE eva_messaging TO eva_app;
ALTER SCHEMA public OWNER TO eva_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO eva_app;

\connect eva_ingest
ALTER DATABASE eva_ingest OWNER TO eva_owner;
REVOKE ALL ON DATABASE eva_ingest FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE eva_ingest TO eva_app;
ALTER SCHEMA public OWNER TO eva_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO eva_app;

\connect eva_n8n
ALTER DATABASE eva_n8n OWNER TO eva_owner;
REVOKE ALL ON DATABASE eva_n8n FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE eva_n8n TO eva_app;
ALTER SCHEMA public OWNER TO eva_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO eva_app;
ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO eva_app;
