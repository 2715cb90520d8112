-- Errors a row is known to have when it is staged (an account number an earlier row
-- of the file has, a NUL character) no longer settle it at once: the row is still
-- validated in its chunk, so its uploader sees every error of the row together.
ALTER TABLE import_rows ADD COLUMN refusals jsonb;
