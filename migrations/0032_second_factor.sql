-- An optional TOTP second factor per user (RFC 6238) and its one-time recovery codes
-- (docs/features/second-factor.md).

-- One row per user who started enrolling. `secret_sealed` is the TOTP secret sealed with
-- a key derived from the server's token secret (nonce, AES-256-GCM ciphertext and tag),
-- never the secret itself. The factor is on once `confirmed_at` is set (a code from the
-- app proved the secret was copied). `last_used_step` is the newest 30-second step whose
-- code was accepted: a code of that step or an earlier one is refused, so a code seen
-- over a shoulder or replayed from a log cannot be used again.
CREATE TABLE second_factors (
    user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed  bytea NOT NULL,
    confirmed_at   timestamptz,
    last_used_step bigint,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- The SHA-256 of each recovery code (of the user id and the code): the codes are shown
-- once and never stored. A used code keeps its row with `used_at` set.
CREATE TABLE recovery_codes (
    user_id   uuid NOT NULL REFERENCES second_factors (user_id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);
