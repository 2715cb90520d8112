-- WhatsApp's customer-service window (docs/features/messages.md#whatsapps-24-hour-window):
-- a business may write freely to a WhatsApp user only within 24 hours of that user's
-- last message; outside it, only a template its provider approved. A WhatsApp template
-- names what it was approved as, at Meta (name and language) and at Twilio (a Content
-- Template SID); a message sent as one keeps what it was sent as and its parameters.

ALTER TABLE message_templates
    ADD COLUMN meta_name          text CHECK (meta_name ~ '^[a-z0-9_]+$' AND length(meta_name) <= 512),
    ADD COLUMN meta_language      text CHECK (meta_language ~ '^[a-z]{2,3}(_[A-Za-z]{2,4})?$'),
    ADD COLUMN twilio_content_sid text CHECK (twilio_content_sid ~ '^HX[0-9a-fA-F]{32}$'),
    ADD CHECK ((meta_name IS NULL) = (meta_language IS NULL)),
    ADD CHECK (channel = 'whatsapp' OR (meta_name IS NULL AND twilio_content_sid IS NULL));

-- {"meta_name", "meta_language", "twilio_content_sid", "parameters": [text, ...]}.
ALTER TABLE account_messages
    ADD COLUMN approved_template jsonb CHECK (jsonb_typeof(approved_template) = 'object'),
    ADD CHECK (approved_template IS NULL OR channel = 'whatsapp');

-- The window is the sender's: the last WhatsApp message from a number.
CREATE INDEX inbound_messages_whatsapp_by_sender ON inbound_messages (sender, received_at DESC)
    WHERE channel = 'whatsapp';

-- The template's update trigger watches the new columns too.
SELECT audit_watch_updates('message_templates', 'message_template', '', '{created_at,created_by,updated_at,updated_by}', '{}');
