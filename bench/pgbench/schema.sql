-- Tables for pgbench/accrual.sql, shaped like Tally's accounts, transactions and processed_events.
CREATE TABLE acct (
    id         INT PRIMARY KEY,
    balance    BIGINT NOT NULL DEFAULT 0,
    version    BIGINT NOT NULL DEFAULT 0,
    last_hash  TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE tx (
    seq             BIGSERIAL PRIMARY KEY,
    acct_id         INT NOT NULL REFERENCES acct (id),
    idempotency_key TEXT NOT NULL UNIQUE,
    amount          BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    hash            TEXT NOT NULL
);
CREATE INDEX tx_acct_seq ON tx (acct_id, seq);
CREATE TABLE ev (
    event_id   TEXT PRIMARY KEY,
    tx_seq     BIGINT NOT NULL,
    response   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- For pgbench/redemption.sql: the reward's stock row that every redemption takes a unit from, and the
-- redemptions (receipts) table.
CREATE TABLE reward (
    id        INT PRIMARY KEY,
    inventory BIGINT NOT NULL
);
INSERT INTO reward (id, inventory) VALUES (1, 1000000000);
CREATE TABLE redemption (
    receipt_id TEXT PRIMARY KEY,
    tx_seq     BIGINT NOT NULL UNIQUE,
    acct_id    INT NOT NULL REFERENCES acct (id),
    reward_id  INT NOT NULL REFERENCES reward (id),
    status     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
