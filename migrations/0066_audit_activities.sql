-- Logged contacts (calls, texts, emails, letters, visits, notes) are in the audit trail
-- on their account, so its history shows the call beside the changes it brought; a
-- call's wrap-up completing its activity is an update with the fields it set.
CREATE TRIGGER activities_audit_insert AFTER INSERT ON activities REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION audit_inserted('activity', 'account_id', 'agent_id', '{created_at}', '{}');
SELECT audit_watch_updates('activities', 'activity', 'account_id', '{created_at}', '{}');
