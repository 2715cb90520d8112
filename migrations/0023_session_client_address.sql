-- The client address each session signed in from. While an address is over its budget of
-- failed logins, only users who signed in from it before are still judged (issue 44,
-- item 12): one device guessing made-up emails must not lock a whole office out.
ALTER TABLE auth_sessions ADD COLUMN client_address text;
CREATE INDEX auth_sessions_user_address_idx ON auth_sessions (user_id, client_address, created_at)
    WHERE client_address IS NOT NULL;
