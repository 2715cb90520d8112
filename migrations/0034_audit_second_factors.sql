-- Turning a second factor on or off is a user change the audit trail keeps
-- (docs/features/audit.md): the sealed secret shows only as set, the last step used to
-- refuse a replayed code is noise. Recovery codes are not audited one by one: a sign-in
-- with one is a `session.login`.
CREATE TRIGGER second_factors_audit_insert AFTER INSERT ON second_factors
    FOR EACH ROW EXECUTE FUNCTION audit_changes('second_factor', '', 'user_id',
        '{created_at,last_used_step}', '{secret_sealed}', 'user_id');
CREATE TRIGGER second_factors_audit_update AFTER UPDATE ON second_factors
    FOR EACH ROW EXECUTE FUNCTION audit_changes('second_factor', '', '',
        '{created_at,last_used_step}', '{secret_sealed}', 'user_id');
CREATE TRIGGER second_factors_audit_delete AFTER DELETE ON second_factors
    FOR EACH ROW EXECUTE FUNCTION audit_changes('second_factor', '', '', '{last_used_step}', '{secret_sealed}', 'user_id');
