-- A rebuild spends its last part, after every row is copied, finishing the new index
-- (the embedded backend merges its segments: tens of seconds for millions of
-- documents) and swapping it in. The phase lets `arrears reindex` show that instead of
-- a bar sitting at 100%.
ALTER TABLE search_tasks
    ADD COLUMN phase text NOT NULL DEFAULT 'copying' CHECK (phase IN ('copying', 'swapping'));
