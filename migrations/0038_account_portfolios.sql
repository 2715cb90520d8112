-- Accounts belong to at most one portfolio (docs/features/portfolios.md). The key keeps
-- a deleted portfolio's accounts pointing at it; a portfolio that accounts name cannot be
-- removed from the table (portfolios are only ever soft-deleted).
ALTER TABLE accounts ADD COLUMN portfolio_id uuid REFERENCES portfolios (id);
CREATE INDEX accounts_portfolio ON accounts (portfolio_id) WHERE portfolio_id IS NOT NULL;

-- The new column is audited like the others: the update trigger is written again over
-- the table's columns as they are now.
SELECT audit_watch_updates('accounts', 'account', 'id',
    '{search_version,updated_at,updated_by,created_at,created_by,current_balance}', '{}');
