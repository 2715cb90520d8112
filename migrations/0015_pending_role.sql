-- Self-registered users wait in role `pending`, with no data access, until an admin
-- gives them a role.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'manager', 'agent', 'viewer', 'pending'));
