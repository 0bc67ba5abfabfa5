-- Erasure records (tally.Erasure): one row per customer forgotten, naming the random pseudonym the
-- account was re-keyed to, never the raw id or the old customer hash. mac binds the row to the ledger key.

-- +goose Up
CREATE TABLE erasures (
    no                 INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id         TEXT NOT NULL UNIQUE,
    actor              TEXT NOT NULL,
    reason             TEXT NOT NULL,
    erased_at          INTEGER NOT NULL,
    transactions       INTEGER NOT NULL,
    checkpoint_through INTEGER NOT NULL,
    mac                TEXT NOT NULL
);

-- +goose Down
DROP TABLE erasures;
