-- The ledger schema. Key columns use the "C" collation so that ORDER BY follows byte order, the same
-- order Go's sort and SQLite use: rows are then locked and scanned in the order the domain sorts keys.

-- +goose Up
CREATE TABLE accounts (
    id              TEXT COLLATE "C" PRIMARY KEY,
    customer_hash   TEXT COLLATE "C" UNIQUE NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('customer', 'system')),
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen', 'closed')),
    balance         BIGINT NOT NULL DEFAULT 0,
    balance_version BIGINT NOT NULL DEFAULT 0,
    last_tx_hash    TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    -- Defence in depth: the ledger never lets a customer balance go below zero.
    CONSTRAINT accounts_customer_balance_nonnegative CHECK (kind = 'system' OR balance >= 0)
);

INSERT INTO accounts (id, customer_hash, kind, created_at) VALUES
    ('system:adjustments', NULL, 'system', now()),
    ('system:expired',     NULL, 'system', now()),
    ('system:issuance',    NULL, 'system', now()),
    ('system:redemptions', NULL, 'system', now());

-- Metadata is TEXT, not jsonb: the hash chain covers its exact bytes.
CREATE TABLE transactions (
    seq             BIGINT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('accrual', 'redemption', 'expiry', 'adjustment', 'reversal')),
    account_id      TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    channel         TEXT COLLATE "C" NOT NULL,
    idempotency_key TEXT COLLATE "C" NOT NULL,
    request_hash    TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    actor           TEXT NOT NULL DEFAULT '',
    metadata        TEXT NOT NULL DEFAULT '',
    reverses_seq    BIGINT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    hash            TEXT NOT NULL,
    CONSTRAINT transactions_idempotency_key UNIQUE (channel, idempotency_key),
    CONSTRAINT transactions_reverses_seq_key UNIQUE (reverses_seq)
);

CREATE INDEX transactions_account_seq ON transactions (account_id, seq);

CREATE TABLE postings (
    seq        BIGINT NOT NULL REFERENCES transactions (seq),
    idx        INT NOT NULL,
    account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    amount     BIGINT NOT NULL,
    PRIMARY KEY (seq, idx)
);

-- System account balances are spread over shards so that no single row is updated by every write.
CREATE TABLE account_shards (
    account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    shard      INT NOT NULL,
    balance    BIGINT NOT NULL,
    PRIMARY KEY (account_id, shard)
);

CREATE TABLE processed_events (
    channel      TEXT COLLATE "C" NOT NULL,
    event_id     TEXT COLLATE "C" NOT NULL,
    request_hash TEXT NOT NULL,
    tx_seq       BIGINT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'done')),
    code         TEXT NOT NULL DEFAULT '',
    response     BYTEA,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, event_id)
);

CREATE INDEX processed_events_created_at ON processed_events (created_at);

CREATE TABLE reward_catalog (
    reward_id          TEXT COLLATE "C" PRIMARY KEY,
    name               TEXT NOT NULL,
    point_cost         BIGINT NOT NULL CHECK (point_cost > 0),
    inventory          BIGINT NULL CHECK (inventory >= 0),
    min_tier           TEXT NOT NULL DEFAULT '',
    fulfillment_method TEXT NOT NULL,
    webhook_url        TEXT NOT NULL DEFAULT '',
    active             BOOLEAN NOT NULL DEFAULT true,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

-- CACHE 1 (no per-session caching) keeps nextval increasing across sessions in call order, which
-- NextSeqs relies on: numbers taken after locking an account exceed those of its earlier writers.
CREATE SEQUENCE ledger_seq CACHE 1;

-- +goose Down
DROP SEQUENCE ledger_seq;
DROP TABLE reward_catalog;
DROP TABLE processed_events;
DROP TABLE account_shards;
DROP TABLE postings;
DROP TABLE transactions;
DROP TABLE accounts;
