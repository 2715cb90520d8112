-- Deleting a user anonymises the row and keeps its id, which accounts, activities, jobs
-- and the audit trail go on naming (issue 48). A deleted user stays disabled for good.
ALTER TABLE users ADD COLUMN deleted_at timestamptz;
ALTER TABLE users ADD CONSTRAINT users_deleted_stay_disabled CHECK (deleted_at IS NULL OR disabled);
