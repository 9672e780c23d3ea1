-- The runtime role of `claimd serve`, claimd_app, and exactly the rights the
-- daemon needs: read the policy, the keys and its tenants' objects; create
-- subscriptions, devices, cancelled IMEIs and claims; change only the columns
-- an activation, a cancellation or a withdrawal changes. No DDL, no DELETE,
-- no UPDATE of a decision, no key creation. Every later migration that adds
-- a table grants claimd_app what it needs there (no default privileges).
--
-- The role is cluster-wide. The private-PostgreSQL helper (tests/pg/pg-private)
-- creates it with LOGIN before migrating; on any other database this
-- migration creates it NOLOGIN when absent, and an operator gives it LOGIN and
-- a password.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'claimd_app') THEN
        BEGIN
            CREATE ROLE claimd_app NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role claimd_app does not exist and role % may not create it',
                current_user
                USING HINT = 'Create it first: CREATE ROLE claimd_app LOGIN PASSWORD ''...'';';
        END;
    END IF;
    IF current_user = 'claimd_app' THEN
        RAISE EXCEPTION 'migrations must run as the owner role, not as the runtime role claimd_app';
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'claimd_app'
               AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb)) THEN
        RAISE EXCEPTION 'the runtime role claimd_app must not be a superuser or hold CREATEROLE, CREATEDB or BYPASSRLS';
    END IF;
    -- No temporary tables and no objects in public for anyone but the owner
    -- (the database owner may revoke these; PostgreSQL 15 already revokes
    -- CREATE on public, older templates may not).
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    REVOKE CREATE ON SCHEMA public FROM PUBLIC;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM claimd_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM claimd_app;
GRANT USAGE ON SCHEMA public TO claimd_app;

-- Read-only: the policy, the tenants, the keys (to authenticate a request;
-- keys are created and revoked by `claimd keys` as the owner) and the
-- migration state (for /readyz).
GRANT SELECT ON policy_versions, tenants, api_keys, schema_migrations TO claimd_app;

-- Subscriptions: created by POST /v1/subscriptions; only activation and
-- cancellation change them. UPDATE on a column also allows the SELECT ... FOR
-- UPDATE that serialises the claims of a subscription.
GRANT SELECT, INSERT ON subscriptions TO claimd_app;
GRANT UPDATE (activated_on, cancelled_on) ON subscriptions TO claimd_app;

-- Devices: registered once; a cancellation clears live.
GRANT SELECT, INSERT ON devices TO claimd_app;
GRANT UPDATE (live) ON devices TO claimd_app;

-- Cancelled IMEIs: append-only.
GRANT SELECT, INSERT ON cancelled_imeis TO claimd_app;

-- Claims: insert-only, except the withdrawal columns. No DELETE.
GRANT SELECT, INSERT ON claims TO claimd_app;
GRANT UPDATE (withdrawn_at, withdrawn_by_key_id) ON claims TO claimd_app;

-- A batch pre-allocates its claims' decision order with nextval().
DO $$
BEGIN
    EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO claimd_app',
                   pg_get_serial_sequence('claims', 'seq'));
END
$$;
