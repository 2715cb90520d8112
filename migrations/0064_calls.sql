-- Telephony (src/telephony, docs/features/telephony.md): the phone each agent takes and
-- places calls on, and every call the service placed or took.
--
-- A call the console places rings the agent's phone first; when the agent answers, the
-- provider asks what to do and the guard decides again: allowed, the debtor is dialled
-- and the attempt becomes the call's activity; refused, the agent hears why. A debtor's
-- call rings the agents who may take it; the first to answer gets the caller's accounts
-- on the console. The provider's reports end the call (its result, how long the debtor
-- was on the line, a recording's address) and the agent's wrap-up completes its activity.

CREATE TABLE agent_phones (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    phone      text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE calls (
    id               uuid PRIMARY KEY,
    direction        text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    -- The account called, or the caller's one account; none for a caller with several
    -- or none (the wrap-up names it).
    account_id       uuid REFERENCES accounts (id) ON DELETE CASCADE,
    -- The attempt or the inbound contact, once the debtor is on the line's other end.
    activity_id      uuid REFERENCES activities (id) ON DELETE SET NULL,
    -- Who placed it, or who answered it.
    agent_id         uuid REFERENCES users (id) ON DELETE SET NULL,
    debtor_number    text NOT NULL,
    agent_number     text,
    provider         text NOT NULL,
    provider_call_id text,
    status           text NOT NULL CHECK (status IN ('placed', 'ringing', 'connecting', 'in_progress', 'ended')),
    result           text CHECK (result IN ('answered', 'busy', 'no_answer', 'failed', 'canceled', 'refused', 'agent_missed', 'missed')),
    refused_rule     text,
    duration_seconds integer CHECK (duration_seconds >= 0),
    recording_url    text,
    wrapped_up_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz,
    CHECK ((status = 'ended') = (result IS NOT NULL))
);
CREATE UNIQUE INDEX calls_provider_call_key ON calls (provider, provider_call_id);
CREATE INDEX calls_agent_idx ON calls (agent_id, created_at DESC, id DESC);
CREATE INDEX calls_account_idx ON calls (account_id, created_at DESC) WHERE account_id IS NOT NULL;
CREATE INDEX calls_activity_idx ON calls (activity_id) WHERE activity_id IS NOT NULL;
