-- Contact attempts and right-party contacts per channel (the activity's type: call,
-- sms, whatsapp, email, letter, visit) for the KPIs, kept per day like the other
-- figures. The days kept before this table existed are dropped, to be kept again with it
-- from the events (their snapshots stay).

CREATE TABLE kpi_day_channels (
    day                  date NOT NULL REFERENCES kpi_days ON DELETE CASCADE,
    agent_id             uuid,
    bucket               text,
    portfolio_id         uuid,
    channel              text NOT NULL,
    contact_attempts     bigint NOT NULL,
    right_party_contacts bigint NOT NULL
);
CREATE INDEX kpi_day_channels_day_idx ON kpi_day_channels (day);

DELETE FROM kpi_days;
