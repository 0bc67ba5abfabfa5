-- The ledger schema. Times are INTEGER unix microseconds (UTC), amounts INTEGER points.

-- +goose Up
CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    customer_hash   TEXT UNIQUE,                -- = id for a customer, NULL for a system account
    kind            TEXT NOT NULL CHECK (kind IN ('customer', 'system')),
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen', 'closed')),
    balance         INTEGER NOT NULL DEFAULT 0, -- customers only: system balances live in account_shards
    balance_version INTEGER NOT NULL DEFAULT 0,
    last_tx_hash    TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    -- Defence in depth: the ledger never lets a customer balance go below zero.
    CONSTRAINT accounts_customer_balance_nonnegative CHECK (kind = 'system' OR balance >= 0)
);

INSERT INTO accounts (id, customer_hash, kind, created_at)
VALUES ('system:adjustments', NULL, 'system', CAST(strftime('%s', 'now') AS INTEGER) * 1000000),
       ('system:expired',     NULL, 'system', CAST(strftime('%s', 'now') AS INTEGER) * 1000000),
       ('system:issuance',    NULL, 'system', CAST(strftime('%s', 'now') AS INTEGER) * 1000000),
       ('system:redemptions', NULL, 'system', CAST(strftime('%s', 'now') AS INTEGER) * 1000000);

-- seq comes from counters.ledger_seq (NextSeqs), never from SQLite: it is part of the hash chain.
CREATE TABLE transactions (
    seq             INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('accrual', 'redemption', 'expiry', 'adjustment', 'reversal')),
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    channel         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    amount          INTEGER NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    actor           TEXT NOT NULL DEFAULT '',
    metadata        TEXT NOT NULL DEFAULT '',
    reverses_seq    INTEGER UNIQUE,
    created_at      INTEGER NOT NULL,
    hash            TEXT NOT NULL,
    UNIQUE (channel, idempotency_key)
);

CREATE INDEX transactions_account_seq ON transactions (account_id, seq);

CREATE TABLE postings (
    seq        INTEGER NOT NULL REFERENCES transactions (seq),
    idx        INTEGER NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    amount     INTEGER NOT NULL,
    PRIMARY KEY (seq, idx)
);

CREATE TABLE account_shards (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    shard      INTEGER NOT NULL,
    balance    INTEGER NOT NULL,
    PRIMARY KEY (account_id, shard)
);

CREATE TABLE processed_events (
    channel      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    tx_seq       INTEGER,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    code         TEXT NOT NULL DEFAULT '',
    response     BLOB,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (channel, event_id)
);

CREATE INDEX processed_events_created_at ON processed_events (created_at);

CREATE TABLE reward_catalog (
    reward_id          TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    point_cost         INTEGER NOT NULL CHECK (point_cost > 0),
    inventory          INTEGER CHECK (inventory >= 0), -- NULL: unlimited
    min_tier           TEXT NOT NULL DEFAULT '',
    fulfillment_method TEXT NOT NULL,
    webhook_url        TEXT NOT NULL DEFAULT '',
    active             INTEGER NOT NULL DEFAULT 1,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

INSERT INTO counters (name, value) VALUES ('ledger_seq', 0);

-- +goose Down
DROP TABLE counters;
DROP TABLE reward_catalog;
DROP TABLE processed_events;
DROP TABLE account_shards;
DROP TABLE postings;
DROP TABLE transactions;
DROP TABLE accounts;
