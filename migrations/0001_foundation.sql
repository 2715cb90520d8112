-- Users, sessions (refresh-token families), accounts, and the search version sequence.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL CONSTRAINT users_email_key UNIQUE,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'manager', 'agent', 'viewer')),
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_created_idx ON users (created_at, id);

-- One row per login; every refresh token rotated from that login belongs to it.
-- Revoking the session revokes the whole family and the access tokens that name it.
CREATE TABLE auth_sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX auth_sessions_user_idx ON auth_sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- One sequence for every indexed document: a later committed change always has a
-- larger version, so the index can refuse anything older than what it holds.
CREATE SEQUENCE search_version_seq;

-- Assigned in a BEFORE row trigger, i.e. after the row lock is taken, so versions of
-- one row grow in commit order.
CREATE FUNCTION set_search_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_version := nextval('search_version_seq');
    RETURN NEW;
END;
$$;

CREATE SEQUENCE account_number_seq START 100001;

CREATE TABLE accounts (
    id                  uuid PRIMARY KEY,
    account_number      text NOT NULL CONSTRAINT accounts_account_number_key UNIQUE,
    external_ref        text,
    debtor_name         text NOT NULL,
    email               text,
    phone               text,
    address_line1       text,
    address_line2       text,
    address_city        text,
    address_region      text,
    address_postal_code text,
    address_country     text,
    timezone            text NOT NULL DEFAULT 'UTC',
    status              text NOT NULL DEFAULT 'active' CHECK (status IN
                            ('active', 'delinquent', 'promise_to_pay', 'payment_plan',
                             'disputed', 'paid', 'settled', 'closed')),
    original_balance    numeric(20, 4) NOT NULL CHECK (original_balance >= 0),
    current_balance     numeric(20, 4) NOT NULL CHECK (current_balance >= 0),
    currency            text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    due_date            date,
    assigned_agent_id   uuid REFERENCES users (id),
    next_action_at      timestamptz,
    tags                text[] NOT NULL DEFAULT '{}',
    custom_fields       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom_fields) = 'object'),
    do_not_call         boolean NOT NULL DEFAULT false,
    do_not_email        boolean NOT NULL DEFAULT false,
    cease_communication boolean NOT NULL DEFAULT false,
    created_by          uuid REFERENCES users (id),
    updated_by          uuid REFERENCES users (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    search_version      bigint NOT NULL
);
CREATE INDEX accounts_assigned_agent_idx ON accounts (assigned_agent_id);

CREATE TRIGGER accounts_search_version
    BEFORE INSERT OR UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION set_search_version();
