-- Messages to debtors (docs/features/messages.md): text messages, WhatsApp messages and
-- emails, each an outbound contact attempt that the compliance guard allowed and that
-- the activity it was logged as records on the account's timeline. The message row
-- keeps what was sent, to whom, through which provider, and how the sending went.

-- A WhatsApp message is an activity of its own type; the guard judges it as a text
-- message (the `sms` channel).
ALTER TABLE activities DROP CONSTRAINT activities_type_check;
ALTER TABLE activities ADD CONSTRAINT activities_type_check
    CHECK (type IN ('call', 'sms', 'whatsapp', 'email', 'letter', 'visit', 'note'));

-- Templates are data: a body with placeholders ({{debtor_name}} ...), for one channel.
CREATE TABLE message_templates (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    channel    text NOT NULL CHECK (channel IN ('sms', 'whatsapp', 'email')),
    subject    text CHECK (length(subject) BETWEEN 1 AND 200),
    body       text NOT NULL CHECK (length(body) BETWEEN 1 AND 5000),
    created_by uuid REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_by uuid REFERENCES users (id),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    -- An email has a subject; a text message has none.
    CHECK ((channel = 'email') = (subject IS NOT NULL))
);
CREATE UNIQUE INDEX message_templates_live_name ON message_templates (lower(name)) WHERE deleted_at IS NULL;
CREATE INDEX message_templates_by_creation ON message_templates (created_at DESC, id DESC);

CREATE TRIGGER message_templates_audit_insert AFTER INSERT ON message_templates
    FOR EACH ROW EXECUTE FUNCTION audit_changes('message_template', '', 'created_by',
        '{created_at,created_by,updated_at,updated_by}', '{}');
SELECT audit_watch_updates('message_templates', 'message_template', '', '{created_at,created_by,updated_at,updated_by}', '{}');

CREATE TABLE account_messages (
    id                  uuid PRIMARY KEY,
    account_id          uuid NOT NULL REFERENCES accounts (id),
    -- The outbound contact attempt the guard allowed, on the account's timeline.
    activity_id         uuid NOT NULL UNIQUE REFERENCES activities (id),
    channel             text NOT NULL CHECK (channel IN ('sms', 'whatsapp', 'email')),
    template_id         uuid REFERENCES message_templates (id),
    -- The phone number (E.164) or email address it was sent to, as the account had it.
    recipient           text NOT NULL CHECK (length(recipient) BETWEEN 1 AND 254),
    subject             text CHECK (length(subject) BETWEEN 1 AND 200),
    body                text NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    provider            text NOT NULL CHECK (length(provider) BETWEEN 1 AND 50),
    status              text NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the sender next tries a queued message.
    next_attempt_at     timestamptz,
    provider_message_id text CHECK (length(provider_message_id) BETWEEN 1 AND 200),
    -- The last failure's reason, as the provider or the connection gave it.
    error               text CHECK (length(error) BETWEEN 1 AND 2000),
    created_by          uuid REFERENCES users (id),
    created_at          timestamptz NOT NULL,
    sent_at             timestamptz,
    failed_at           timestamptz,
    CHECK ((status = 'queued') = (next_attempt_at IS NOT NULL)),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    CHECK ((status = 'failed') = (failed_at IS NOT NULL))
);
CREATE INDEX account_messages_of_account ON account_messages (account_id, created_at DESC, id DESC);
CREATE INDEX account_messages_due ON account_messages (next_attempt_at) WHERE status = 'queued';

CREATE TRIGGER account_messages_audit_insert AFTER INSERT ON account_messages
    FOR EACH ROW EXECUTE FUNCTION audit_changes('message', 'account_id', 'created_by', '{created_at,created_by}', '{}');

-- How a message's sending goes reaches the console live (`message.updated`, topics
-- `accounts` and `account:{id}`, without the text), and a message that failed is a
-- notification to whoever sent it.
CREATE FUNCTION message_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    data jsonb := jsonb_build_object('id', NEW.id, 'account_id', NEW.account_id, 'channel', NEW.channel,
        'status', NEW.status, 'attempts', NEW.attempts, 'next_attempt_at', NEW.next_attempt_at, 'error', NEW.error,
        'sent_at', NEW.sent_at, 'failed_at', NEW.failed_at);
BEGIN
    IF NEW.status IS NOT DISTINCT FROM OLD.status AND NEW.attempts IS NOT DISTINCT FROM OLD.attempts THEN
        RETURN NULL;
    END IF;
    PERFORM emit_event('message.updated', NULL, ARRAY['accounts', 'account:' || NEW.account_id], data);
    IF NEW.status = 'failed' AND OLD.status <> 'failed' THEN
        PERFORM notify_user(NEW.created_by, 'message_failed',
            CASE NEW.channel WHEN 'sms' THEN 'A text message' WHEN 'whatsapp' THEN 'A WhatsApp message' ELSE 'An email' END
                || ' could not be sent', data);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER account_messages_events
    AFTER UPDATE ON account_messages
    FOR EACH ROW EXECUTE FUNCTION message_events();
