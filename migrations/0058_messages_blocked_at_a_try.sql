-- The contact guard is asked again at every try of a queued message
-- (docs/features/messages.md#the-guard-at-every-try). A message it now refuses, or
-- whose account was deleted since it was queued, is `blocked`: never handed to a
-- provider again, with the rule that stopped it (the guard's wire name, or
-- `account_deleted`) and when.
ALTER TABLE account_messages DROP CONSTRAINT account_messages_status_check;
ALTER TABLE account_messages ADD CONSTRAINT account_messages_status_check
    CHECK (status IN ('queued', 'sent', 'failed', 'blocked'));
ALTER TABLE account_messages
    ADD COLUMN blocked_rule text CHECK (blocked_rule IN ('cease_communication', 'unverified_dispute', 'do_not_call',
        'do_not_email', 'call_attempts', 'recent_conversation', 'outside_window', 'account_deleted')),
    ADD COLUMN blocked_at   timestamptz,
    ADD CHECK ((status = 'blocked') = (blocked_rule IS NOT NULL)),
    ADD CHECK ((status = 'blocked') = (blocked_at IS NOT NULL));

-- Each try asks which override was used for the message's attempt.
CREATE INDEX contact_overrides_by_activity ON contact_overrides (activity_id) WHERE activity_id IS NOT NULL;

-- A message sent after a failed try kept that try's reason as its error; a sent
-- message has none.
UPDATE account_messages SET error = NULL WHERE status = 'sent' AND error IS NOT NULL;
