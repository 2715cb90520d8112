-- The contact-compliance guard (its policy is data, so another jurisdiction changes
-- numbers, not code), manager overrides, verified disputes, and work-queue claims.

-- One row: the policy every outbound contact attempt is checked against.
CREATE TABLE contact_policy (
    id                   integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    -- Local time of day in the debtor's zone: contact allowed from window_start up to
    -- (not including) window_end (Regulation F §1006.6(b)(1)(i): 8 a.m. to 9 p.m.).
    window_start         time NOT NULL DEFAULT '08:00',
    window_end           time NOT NULL DEFAULT '21:00' CHECK (window_end > window_start),
    -- Channels the time window applies to.
    window_channels      text[] NOT NULL DEFAULT '{call,sms,email,visit}'
                             CHECK (window_channels <@ '{call,sms,email,letter,visit}'),
    -- Regulation F §1006.14(b)(2)(i): at most this many call attempts within this many days.
    call_attempt_limit   integer NOT NULL DEFAULT 7 CHECK (call_attempt_limit > 0),
    call_attempt_days    integer NOT NULL DEFAULT 7 CHECK (call_attempt_days > 0),
    -- §1006.14(b)(2)(ii): no call within this many days after a telephone conversation.
    conversation_days    integer NOT NULL DEFAULT 7 CHECK (conversation_days >= 0),
    -- Call outcomes that mean the agent spoke with the debtor.
    conversation_outcomes text[] NOT NULL DEFAULT '{right_party,promise_to_pay,dispute,paid}',
    -- How long a manager's override stays usable.
    override_minutes     integer NOT NULL DEFAULT 60 CHECK (override_minutes BETWEEN 1 AND 1440)
);
INSERT INTO contact_policy (id) VALUES (1);

-- When an account's time zone is unknown (UTC, the default), contact is allowed only
-- when it is inside the window in every zone of the account's country; country '*'
-- lists the zones used when the country is unknown or not listed.
CREATE TABLE contact_zones (
    country  text NOT NULL,
    timezone text NOT NULL,
    PRIMARY KEY (country, timezone)
);
INSERT INTO contact_zones (country, timezone) VALUES
    ('US', 'America/New_York'), ('US', 'America/Chicago'), ('US', 'America/Denver'),
    ('US', 'America/Phoenix'), ('US', 'America/Los_Angeles'), ('US', 'America/Anchorage'),
    ('US', 'Pacific/Honolulu'),
    ('CA', 'America/St_Johns'), ('CA', 'America/Halifax'), ('CA', 'America/Toronto'),
    ('CA', 'America/Winnipeg'), ('CA', 'America/Edmonton'), ('CA', 'America/Vancouver'),
    ('GB', 'Europe/London'), ('IE', 'Europe/Dublin'), ('FR', 'Europe/Paris'), ('DE', 'Europe/Berlin'),
    ('AU', 'Australia/Perth'), ('AU', 'Australia/Adelaide'), ('AU', 'Australia/Brisbane'),
    ('AU', 'Australia/Sydney'),
    ('*', 'America/New_York'), ('*', 'America/Chicago'), ('*', 'America/Denver'),
    ('*', 'America/Los_Angeles'), ('*', 'America/Anchorage'), ('*', 'Pacific/Honolulu');

-- A dispute blocks contact until someone verifies the debt; disputing again clears it.
ALTER TABLE accounts ADD COLUMN dispute_verified_at timestamptz;

CREATE FUNCTION reset_dispute_verification() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'disputed' AND OLD.status IS DISTINCT FROM 'disputed' THEN
        NEW.dispute_verified_at := NULL;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER accounts_reset_dispute_verification
    BEFORE UPDATE OF status ON accounts
    FOR EACH ROW EXECUTE FUNCTION reset_dispute_verification();

-- A manager's permission for one outbound attempt the guard would refuse. It is used by
-- the next attempt on its channel (activity_id set) or expires.
CREATE TABLE contact_overrides (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    channel     text NOT NULL CHECK (channel IN ('call', 'sms', 'email', 'letter', 'visit')),
    reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    granted_by  uuid NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    activity_id uuid REFERENCES activities (id) ON DELETE SET NULL,
    -- The rule the guard named when the override was used.
    rule        text
);
CREATE INDEX contact_overrides_created_idx ON contact_overrides (created_at DESC, id DESC);
CREATE INDEX contact_overrides_unused_idx ON contact_overrides (account_id, channel) WHERE used_at IS NULL;

-- Calls and conversations the guard counts, newest first per account.
CREATE INDEX activities_outbound_calls_idx ON activities (account_id, occurred_at DESC)
    WHERE type = 'call';

-- An agent's hold on the account `POST /queue/next` handed them; ends when they log an
-- activity on it or at expires_at.
CREATE TABLE queue_claims (
    account_id uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    agent_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX queue_claims_agent_idx ON queue_claims (agent_id);

-- The UTC offset each zone had when its accounts' documents last got their contact
-- window; when a zone's offset changes (DST), the contact-window job re-indexes them.
CREATE TABLE contact_zone_offsets (
    timezone       text PRIMARY KEY,
    offset_minutes integer NOT NULL
);
CREATE INDEX accounts_timezone_idx ON accounts (timezone, id);
