-- Where an account's zone came from (domain::debtor_zone): named by the creditor's file,
-- the API or a user (`given`), derived from the address's postal code or country
-- (`address`) or the phone number's prefix (`phone`), or `unknown` (`UTC`: the contact
-- guard then fits every zone of the address's country). `alternate_timezones` are the
-- other zones the debtor may be in (a phone whose prefix disagrees with the address): the
-- guard allows only the hours open in all of them.
--
-- Before this release a zone was only ever given, so every named one is `given` (the
-- column's first default, which costs no rewrite) and the rest `unknown`, for
-- `arrears derive-zones` to derive. Writers name the source from now on; the
-- default that stays is for rows written without one, which name no zone either.
ALTER TABLE accounts
    ADD COLUMN timezone_source text NOT NULL DEFAULT 'given'
        CHECK (timezone_source IN ('given', 'address', 'phone', 'unknown')),
    ADD COLUMN alternate_timezones text[] NOT NULL DEFAULT '{}';
ALTER TABLE accounts ALTER COLUMN timezone_source SET DEFAULT 'unknown';
UPDATE accounts SET timezone_source = 'unknown'
 WHERE timezone IN ('UTC', 'Etc/UTC', 'Etc/UCT', 'UCT', 'Etc/Universal', 'Universal', 'Zulu');
CREATE INDEX accounts_zone_unknown ON accounts (id) WHERE timezone_source = 'unknown';
-- The few accounts with other zones, for the zone-offset check (store::compliance).
CREATE INDEX accounts_alternate_timezones ON accounts (alternate_timezones) WHERE alternate_timezones <> '{}';

-- The new columns are audited like the others (a derived zone is a change to the account).
SELECT audit_watch_updates('accounts', 'account', 'id',
    '{search_version,updated_at,updated_by,created_at,created_by,current_balance}', '{}');
