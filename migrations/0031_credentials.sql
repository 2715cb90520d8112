-- The life of a user (issue 48): the sessions a user can see and end, passwords an
-- admin resets with a one-time token, and login failures kept where every instance
-- (and the next start) sees them.

-- The device a session signed in from (its User-Agent, bounded and sanitised) and when
-- its tokens were last refreshed.
ALTER TABLE auth_sessions ADD COLUMN user_agent text;
ALTER TABLE auth_sessions ADD COLUMN last_used_at timestamptz;
CREATE INDEX auth_sessions_live_idx ON auth_sessions (user_id, created_at DESC, id DESC) WHERE revoked_at IS NULL;

-- At most one reset token per user: a new one replaces the old. Only its hash is kept.
CREATE TABLE password_reset_tokens (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- Failed logins per key (a hash of the email and client address for the lockout, of the
-- address for its budget): a count in a window that opens with the first failure, and
-- the time the key is refused until once the count reaches its limit. Rows past
-- `expires_at` are purged.
CREATE TABLE login_failures (
    key          bytea PRIMARY KEY,
    failures     integer NOT NULL,
    window_start timestamptz NOT NULL,
    locked_until timestamptz,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX login_failures_expires_idx ON login_failures (expires_at);
