-- What providers report back by webhook (docs/features/messages.md#webhooks): how the
-- delivery of a sent message went, and messages debtors send in. Each report is taken
-- once: a replay of one already taken is refused. And documents attached to an email.

-- The account's documents an email carries, in the order attached.
ALTER TABLE account_messages
    ADD COLUMN document_ids uuid[] NOT NULL DEFAULT '{}' CHECK (cardinality(document_ids) <= 5),
    ADD CHECK (cardinality(document_ids) = 0 OR channel = 'email');

-- How delivery went after the provider took the message, as its reports say. Reports
-- only move it forward (sent, then delivered or undelivered or failed, then read).
ALTER TABLE account_messages
    ADD COLUMN delivery       text CHECK (delivery IN ('sent', 'delivered', 'undelivered', 'failed', 'read')),
    ADD COLUMN delivery_error text CHECK (length(delivery_error) BETWEEN 1 AND 200),
    ADD COLUMN delivery_at    timestamptz,
    ADD CHECK ((delivery IS NULL) = (delivery_at IS NULL));
CREATE INDEX account_messages_by_provider_id ON account_messages (provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Each webhook report taken, by provider and its own key (Twilio: the message SID and
-- the status it reports), so that a replay is refused. A delivery report keeps what it
-- said: one that arrives before the sender has recorded the provider's answer (the
-- report can outrun that commit) is applied when the sender records it.
CREATE TABLE webhook_receipts (
    provider            text NOT NULL CHECK (length(provider) BETWEEN 1 AND 50),
    key                 text NOT NULL CHECK (length(key) BETWEEN 1 AND 300),
    received_at         timestamptz NOT NULL,
    provider_message_id text CHECK (length(provider_message_id) BETWEEN 1 AND 200),
    delivery            text CHECK (delivery IN ('sent', 'delivered', 'undelivered', 'failed', 'read')),
    delivery_error      text CHECK (length(delivery_error) BETWEEN 1 AND 200),
    PRIMARY KEY (provider, key)
);
CREATE INDEX webhook_receipts_deliveries ON webhook_receipts (provider_message_id) WHERE delivery IS NOT NULL;

-- A message a debtor sent in. It lands on each account whose phone number sent it as an
-- inbound activity (`activity_ids`); from a number no account has, it waits for a
-- manager (`GET /inbound-messages?matched=false`).
CREATE TABLE inbound_messages (
    id                  uuid PRIMARY KEY,
    provider            text NOT NULL CHECK (length(provider) BETWEEN 1 AND 50),
    provider_message_id text NOT NULL CHECK (length(provider_message_id) BETWEEN 1 AND 200),
    channel             text NOT NULL CHECK (channel IN ('sms', 'whatsapp')),
    -- The sender's phone number, E.164.
    sender              text NOT NULL CHECK (length(sender) BETWEEN 1 AND 50),
    body                text NOT NULL CHECK (length(body) <= 5000),
    -- The body was an opt-out word (STOP ...): `do_not_call` was set on the accounts.
    opt_out             boolean NOT NULL,
    account_ids         uuid[] NOT NULL,
    activity_ids        uuid[] NOT NULL,
    received_at         timestamptz NOT NULL,
    UNIQUE (provider, provider_message_id)
);
CREATE INDEX inbound_messages_by_arrival ON inbound_messages (received_at DESC, id DESC);
CREATE INDEX inbound_messages_unmatched ON inbound_messages (received_at DESC, id DESC)
    WHERE cardinality(account_ids) = 0;
CREATE INDEX accounts_by_phone ON accounts (phone) WHERE phone IS NOT NULL;

-- The live event carries the delivery too, and a message that was not delivered is a
-- notification to whoever sent it, as one that could not be sent is.
CREATE OR REPLACE FUNCTION message_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    data jsonb := jsonb_build_object('id', NEW.id, 'account_id', NEW.account_id, 'channel', NEW.channel,
        'status', NEW.status, 'attempts', NEW.attempts, 'next_attempt_at', NEW.next_attempt_at, 'error', NEW.error,
        'sent_at', NEW.sent_at, 'failed_at', NEW.failed_at, 'delivery', NEW.delivery,
        'delivery_error', NEW.delivery_error, 'delivery_at', NEW.delivery_at);
    what text := CASE NEW.channel WHEN 'sms' THEN 'A text message' WHEN 'whatsapp' THEN 'A WhatsApp message' ELSE 'An email' END;
BEGIN
    IF NEW.status IS NOT DISTINCT FROM OLD.status AND NEW.attempts IS NOT DISTINCT FROM OLD.attempts
        AND NEW.delivery IS NOT DISTINCT FROM OLD.delivery THEN
        RETURN NULL;
    END IF;
    PERFORM emit_event('message.updated', NULL, ARRAY['accounts', 'account:' || NEW.account_id], data);
    IF NEW.status = 'failed' AND OLD.status <> 'failed' THEN
        PERFORM notify_user(NEW.created_by, 'message_failed', what || ' could not be sent', data);
    ELSIF NEW.delivery IN ('undelivered', 'failed') AND OLD.delivery IS DISTINCT FROM NEW.delivery THEN
        PERFORM notify_user(NEW.created_by, 'message_failed', what || ' was not delivered', data);
    END IF;
    RETURN NULL;
END;
$$;
