-- claimd schema, version 1: tenants, API keys, subscriptions, registered
-- devices, the IMEIs of cancelled options, claims and policy versions.
--
-- Conventions (sql/README.md explains them):
--   * every table except policy_versions and schema_migrations carries
--     tenant_id, and every reference between tenant-owned rows is a composite
--     foreign key that starts with tenant_id, so a row can never point at
--     another tenant's object (and Citus can co-locate by tenant_id);
--   * dates are `date` (Japan civil dates), money is `bigint` yen >= 0;
--   * enums are text with a CHECK listing exactly the core's stable names.
-- Applied by `claimd migrate` inside one transaction: no BEGIN/COMMIT here.

-- Policy versions: one row per version, one column per parameter of
-- policy.md. A reference table under Citus (small, read everywhere).
CREATE TABLE policy_versions (
    name                   text PRIMARY KEY
                           CHECK (name ~ '^[A-Za-z0-9._-]{1,32}$'),
    effective_from         date NOT NULL UNIQUE,
    monthly_fee            bigint NOT NULL CHECK (monthly_fee BETWEEN 0 AND 10000000),
    free_months            integer NOT NULL CHECK (free_months BETWEEN 0 AND 24),
    repair_cap             bigint NOT NULL CHECK (repair_cap BETWEEN 0 AND 10000000),
    exchange_fees          bigint[] NOT NULL,
    max_uses               integer NOT NULL CHECK (max_uses BETWEEN 1 AND 16),
    frequency_window       text NOT NULL
                           CHECK (frequency_window IN ('contract_year', 'rolling_12_months')),
    natural_failure_months integer NOT NULL CHECK (natural_failure_months BETWEEN 0 AND 600),
    registration_days      integer NOT NULL CHECK (registration_days BETWEEN 0 AND 366),
    ios_exchange           boolean NOT NULL,
    loaner_os              text NOT NULL CHECK (loaner_os IN ('ios', 'android')),
    created_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT policy_versions_exchange_fees_check CHECK (
        array_ndims(exchange_fees) = 1
        AND cardinality(exchange_fees) = max_uses
        AND array_position(exchange_fees, NULL) IS NULL
        AND 0 <= ALL (exchange_fees)
        AND 10000000 >= ALL (exchange_fees))
);
COMMENT ON TABLE policy_versions IS
    'Adjudication policy versions (policy.md); a claim is decided under the version in force on its incident_on.';
COMMENT ON COLUMN policy_versions.frequency_window IS
    'The policy parameter "window" (a reserved word in SQL).';

-- Tenants: a carrier or MVNO brand. A reference table under Citus: few rows,
-- and api_keys (also a reference table) must reach it from any node.
CREATE TABLE tenants (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._:-]{1,64}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- API keys: only the SHA-256 of the key is stored (the key is 32 random
-- bytes from getrandom, printed once by `claimd keys create`). A key is
-- found by its hash before the tenant is known, so under Citus this is a
-- reference table: authentication is a local lookup on every node.
CREATE TABLE api_keys (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES tenants (id),
    key_hash   bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT api_keys_revoked_at_check CHECK (revoked_at >= created_at),
    -- Target of the composite references below (a claim names the key of its
    -- own tenant only).
    UNIQUE (tenant_id, id)
);

-- Subscriptions: a mobile line and its option. The option is chosen at
-- application only (device_protection never changes: the runtime role has no
-- UPDATE on it). live is true until the option is cancelled; devices carry a
-- copy of it (see devices) so that "one live subscription per IMEI" is a
-- plain partial unique index.
CREATE TABLE subscriptions (
    tenant_id         bigint NOT NULL REFERENCES tenants (id),
    id                bigint GENERATED ALWAYS AS IDENTITY,
    subscription_ref  text NOT NULL CHECK (subscription_ref ~ '^[A-Za-z0-9._:-]{1,64}$'),
    applied_on        date NOT NULL,
    activated_on      date,
    device_protection boolean NOT NULL,
    cancelled_on      date,
    live              boolean GENERATED ALWAYS AS (cancelled_on IS NULL) STORED,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, subscription_ref),
    UNIQUE (tenant_id, id, live),
    CONSTRAINT subscriptions_activated_on_check CHECK (activated_on >= applied_on),
    CONSTRAINT subscriptions_cancelled_on_check CHECK (cancelled_on >= applied_on),
    -- Only an option can be cancelled.
    CONSTRAINT subscriptions_option_check CHECK (cancelled_on IS NULL OR device_protection)
);
COMMENT ON COLUMN subscriptions.cancelled_on IS
    'The day the option was cancelled; once set, the subscription is no longer live.';

-- The device registered on a subscription (at most one, ever). live mirrors
-- subscriptions.live through the deferred composite foreign key: cancelling
-- an option must set devices.live = false in the same transaction, or the
-- commit fails. The partial unique index then keeps an IMEI on at most one
-- live subscription of a tenant.
CREATE TABLE devices (
    tenant_id       bigint NOT NULL,
    subscription_id bigint NOT NULL,
    imei            text NOT NULL CHECK (imei ~ '^[0-9]{15}$'),
    os              text NOT NULL CHECK (os IN ('ios', 'android')),
    model           text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
    release_date    date NOT NULL,
    purchased_from  text NOT NULL CHECK (purchased_from IN ('other', 'carrier')),
    registered_on   date NOT NULL,
    live            boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, subscription_id),
    UNIQUE (tenant_id, subscription_id, imei),
    FOREIGN KEY (tenant_id, subscription_id, live)
        REFERENCES subscriptions (tenant_id, id, live)
        DEFERRABLE INITIALLY DEFERRED
);
CREATE UNIQUE INDEX devices_live_imei_key ON devices (tenant_id, imei) WHERE live;

-- The IMEIs of cancelled options: such an IMEI may never be covered again by
-- the tenant (registration answers reenrollment_forbidden). Written by the
-- cancellation, with the device it came from.
CREATE TABLE cancelled_imeis (
    tenant_id       bigint NOT NULL,
    imei            text NOT NULL CHECK (imei ~ '^[0-9]{15}$'),
    subscription_id bigint NOT NULL,
    cancelled_on    date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, imei),
    FOREIGN KEY (tenant_id, subscription_id, imei)
        REFERENCES devices (tenant_id, subscription_id, imei)
);

-- Claims: the full audit record of one decision, written once by one
-- set-based INSERT ... ON CONFLICT (tenant_id, claim_ref) DO NOTHING and never
-- changed again except for the withdrawal columns. seq is the decision order
-- (history pages newest first by seq); a batch may pre-allocate its values
-- with nextval() in batch order, hence BY DEFAULT.
CREATE TABLE claims (
    tenant_id           bigint NOT NULL,
    seq                 bigint GENERATED BY DEFAULT AS IDENTITY,
    claim_ref           text NOT NULL CHECK (claim_ref ~ '^[A-Za-z0-9._:-]{1,64}$'),
    subscription_id     bigint NOT NULL,
    -- SHA-256 of the request's canonical JSON body: same claim_ref with
    -- another fingerprint is claim_ref_reused.
    fingerprint         bytea NOT NULL CHECK (octet_length(fingerprint) = 32),

    -- The claim as asked.
    imei                text NOT NULL CHECK (imei ~ '^[0-9]{15}$'),
    incident_on         date NOT NULL,
    cause               text NOT NULL CHECK (cause IN ('natural_failure', 'physical_damage')),
    damage              text CHECK (damage IN ('screen', 'water', 'total_loss', 'other')),
    remedy              text NOT NULL CHECK (remedy IN ('repair', 'exchange')),
    repair_estimate     bigint CHECK (repair_estimate BETWEEN 0 AND 10000000),

    -- The decision.
    status              text NOT NULL CHECK (status IN ('approved', 'denied')),
    reasons             text[] NOT NULL DEFAULT '{}',
    covered_amount      bigint NOT NULL CHECK (covered_amount >= 0),
    customer_charge     bigint NOT NULL CHECK (customer_charge >= 0),
    use_number          integer CHECK (use_number >= 1),
    uses_remaining      integer NOT NULL CHECK (uses_remaining >= 0),
    window_start        date NOT NULL,
    window_end          date NOT NULL,
    loaner              text CHECK (loaner IN ('ios', 'android')),
    policy_version      text NOT NULL REFERENCES policy_versions (name),
    decided_at          timestamptz NOT NULL DEFAULT now(),
    api_key_id          bigint NOT NULL,

    -- The facts the decision used: the subscription and device as they
    -- stood (device_snapshot is NULL when none was registered) and the seq of
    -- every use it counted in the window.
    subscription_snapshot jsonb NOT NULL CHECK (jsonb_typeof(subscription_snapshot) = 'object'),
    device_snapshot     jsonb CHECK (jsonb_typeof(device_snapshot) = 'object'),
    counted_uses        bigint[] NOT NULL DEFAULT '{}'
                        CHECK (array_position(counted_uses, NULL) IS NULL),

    -- The withdrawal: the only columns the runtime role may update.
    withdrawn_at        timestamptz,
    withdrawn_by_key_id bigint,

    PRIMARY KEY (tenant_id, seq),
    UNIQUE (tenant_id, claim_ref),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id),
    FOREIGN KEY (tenant_id, api_key_id) REFERENCES api_keys (tenant_id, id),
    FOREIGN KEY (tenant_id, withdrawn_by_key_id) REFERENCES api_keys (tenant_id, id),

    CONSTRAINT claims_damage_cause_check CHECK ((cause = 'physical_damage') = (damage IS NOT NULL)),
    CONSTRAINT claims_estimate_remedy_check CHECK ((remedy = 'repair') = (repair_estimate IS NOT NULL)),
    CONSTRAINT claims_reasons_check CHECK (
        reasons <@ ARRAY['option_not_enrolled', 'option_cancelled', 'device_not_registered',
                         'imei_mismatch', 'incident_before_coverage',
                         'natural_failure_expired', 'exchange_not_offered_ios',
                         'frequency_limit', 'cap_exceeded']::text[]
        AND coalesce(array_ndims(reasons), 1) = 1),
    CONSTRAINT claims_window_check CHECK (
        window_start <= incident_on AND incident_on <= window_end),
    -- A denial: at least one failed rule (never cap_exceeded), no use, no
    -- money, no loaner, nothing to withdraw.
    CONSTRAINT claims_denied_check CHECK (
        status <> 'denied'
        OR (cardinality(reasons) >= 1 AND NOT ('cap_exceeded' = ANY (reasons))
            AND use_number IS NULL AND covered_amount = 0 AND customer_charge = 0
            AND loaner IS NULL AND withdrawn_at IS NULL)),
    -- An approval: a use number, at most cap_exceeded as reason.
    CONSTRAINT claims_approved_check CHECK (
        status <> 'approved'
        OR (use_number IS NOT NULL AND reasons <@ ARRAY['cap_exceeded']::text[])),
    -- An approved repair: the option covers up to the cap, the customer pays
    -- the excess (cap_exceeded exactly when there is one), a loaner is lent.
    CONSTRAINT claims_approved_repair_check CHECK (
        status <> 'approved' OR remedy <> 'repair'
        OR (covered_amount + customer_charge = repair_estimate AND loaner IS NOT NULL
            AND ('cap_exceeded' = ANY (reasons)) = (customer_charge > 0))),
    -- An approved exchange: the customer pays the fee, nothing is covered.
    CONSTRAINT claims_approved_exchange_check CHECK (
        status <> 'approved' OR remedy <> 'exchange'
        OR (covered_amount = 0 AND loaner IS NULL AND cardinality(reasons) = 0)),
    CONSTRAINT claims_withdrawal_check CHECK (
        (withdrawn_at IS NULL) = (withdrawn_by_key_id IS NULL)
        AND (withdrawn_at IS NULL OR withdrawn_at >= decided_at))
);
COMMENT ON TABLE claims IS
    'One row per decided claim: the request, the whole decision and the facts it used; only the withdrawal columns ever change.';

-- History, newest decided first: WHERE tenant_id AND subscription_id ORDER BY
-- seq DESC (cursor: seq < $after).
CREATE INDEX claims_history_idx ON claims (tenant_id, subscription_id, seq DESC);
-- Uses of a window: the approved claims of a subscription by incident date
-- (withdrawn ones included; the core skips them).
CREATE INDEX claims_uses_idx ON claims (tenant_id, subscription_id, incident_on)
    WHERE status = 'approved';
