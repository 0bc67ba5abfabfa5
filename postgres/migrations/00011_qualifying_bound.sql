-- Two costs of every accrual that bought nothing the ledger relies on:
--
-- 1. Qualifying points (tiers) were summed over the account's accruals of the whole rolling window in
--    every batch, to see whether the customer reached a higher tier. accounts.qualifying_bound is an
--    upper bound of that sum for every window that starts at or after qualifying_from: each accrual adds
--    to it (written with the balance, under the account lock), a reversal leaves it (the sum can only
--    fall), and the ledger sums the window only when the bound reaches the next tier, then stores the
--    exact sum and the window's start as the new bound. NULL qualifying_from: no bound is known (the
--    ledger sums). Every account starts with the sum of all its accruals, valid for any window.
-- 2. The foreign keys from lots and accrual_rules to transactions made each accrual lock its own new
--    transaction row (FOR KEY SHARE) twice. Both rows are written in the transaction's own database
--    transaction by the ledger alone, and `tally verify` checks that every lot and every rule line
--    belongs to a transaction of the right kind and account.

-- +goose Up
ALTER TABLE accounts ADD COLUMN qualifying_bound BIGINT NOT NULL DEFAULT 0 CHECK (qualifying_bound >= 0);
ALTER TABLE accounts ADD COLUMN qualifying_from TIMESTAMPTZ NULL DEFAULT '1970-01-01T00:00:00Z';
UPDATE accounts a SET qualifying_bound = s.points
FROM (SELECT account_id, sum(amount)::bigint AS points FROM transactions WHERE kind = 'accrual' GROUP BY account_id) s
WHERE s.account_id = a.id;
ALTER TABLE lots DROP CONSTRAINT lots_seq_fkey;
ALTER TABLE accrual_rules DROP CONSTRAINT accrual_rules_seq_fkey;

-- +goose Down
ALTER TABLE accrual_rules ADD CONSTRAINT accrual_rules_seq_fkey FOREIGN KEY (seq) REFERENCES transactions (seq);
ALTER TABLE lots ADD CONSTRAINT lots_seq_fkey FOREIGN KEY (seq) REFERENCES transactions (seq);
ALTER TABLE accounts DROP COLUMN qualifying_from;
ALTER TABLE accounts DROP COLUMN qualifying_bound;
