-- Customers' stored tiers and their history. Qualifying points are read from transactions (accruals not
-- reversed, within the rolling window). Times are Unix microseconds.

-- +goose Up
CREATE TABLE customer_tiers (
    account_id       TEXT PRIMARY KEY REFERENCES accounts (id),
    tier             TEXT NOT NULL,
    since            INTEGER NOT NULL,
    reviewed_through INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE tier_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    from_tier  TEXT NOT NULL,
    to_tier    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    tx_seq     INTEGER NULL,
    at         INTEGER NOT NULL
);

CREATE INDEX tier_changes_account ON tier_changes (account_id, id);

-- +goose Down
DROP TABLE tier_changes;
DROP TABLE customer_tiers;
