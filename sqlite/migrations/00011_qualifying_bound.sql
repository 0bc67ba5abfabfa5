-- An upper bound of each account's qualifying points (see the PostgreSQL migration of the same number):
-- every accrual adds to qualifying_bound, which bounds the account's qualifying points in every window
-- that starts at or after qualifying_from (microseconds; NULL: no bound known). The ledger sums a window
-- only when the bound reaches the next tier. Every account starts with the sum of all its accruals.
-- (SQLite keeps its foreign keys from lots and accrual_rules: dropping them would rebuild both tables,
-- and SQLite's one writer is not where accrual throughput is won.)

-- +goose Up
ALTER TABLE accounts ADD COLUMN qualifying_bound INTEGER NOT NULL DEFAULT 0 CHECK (qualifying_bound >= 0);
ALTER TABLE accounts ADD COLUMN qualifying_from INTEGER NULL DEFAULT 0;
UPDATE accounts SET qualifying_bound = (
    SELECT COALESCE(SUM(t.amount), 0) FROM transactions t WHERE t.account_id = accounts.id AND t.kind = 'accrual');

-- +goose Down
ALTER TABLE accounts DROP COLUMN qualifying_from;
ALTER TABLE accounts DROP COLUMN qualifying_bound;
