-- Customers' stored tiers and their history. Qualifying points are not kept apart: they are the
-- customer's accruals (not reversed) within the rolling window, read from transactions by the index on
-- (account_id, seq); redemptions and expiry never lower them. Rows change only under the customer's
-- account lock.

-- +goose Up
CREATE TABLE customer_tiers (
    account_id       TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts (id),
    tier             TEXT NOT NULL,
    since            TIMESTAMPTZ NOT NULL,
    reviewed_through TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);

CREATE TABLE tier_changes (
    id         BIGSERIAL PRIMARY KEY,
    account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    from_tier  TEXT NOT NULL,
    to_tier    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    tx_seq     BIGINT NULL,
    at         TIMESTAMPTZ NOT NULL
);

CREATE INDEX tier_changes_account ON tier_changes (account_id, id);

-- +goose Down
DROP TABLE tier_changes;
DROP TABLE customer_tiers;
