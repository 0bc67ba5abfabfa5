-- Points lifecycle: every credit of a customer is a lot (its id is the seq of the crediting transaction)
-- that may be pending (not spendable before pending_until) and may expire (at expires_at). Debits consume
-- lots soonest-expiring first, and lot_uses records which lots each debit consumed.
--
-- SQLite cannot change a CHECK constraint: accounts is rebuilt (the twelve-step procedure of
-- https://www.sqlite.org/lang_altertable.html), with foreign keys off, outside goose's transaction.

-- +goose NO TRANSACTION
-- +goose Up
PRAGMA foreign_keys = OFF;

BEGIN IMMEDIATE;

CREATE TABLE accounts_new (
    id              TEXT PRIMARY KEY,
    customer_hash   TEXT UNIQUE,                -- = id for a customer, NULL for a system account
    kind            TEXT NOT NULL CHECK (kind IN ('customer', 'system')),
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen', 'closed')),
    balance         INTEGER NOT NULL DEFAULT 0, -- customers only: system balances live in account_shards
    balance_version INTEGER NOT NULL DEFAULT 0,
    last_tx_hash    TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    pending         INTEGER NOT NULL DEFAULT 0, -- points of the balance not spendable yet
    overdraft_limit INTEGER NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0),
    -- The spendable balance (balance - pending) may go below zero only as far as the overdraft limit,
    -- which a clawback under the allow_negative return policy sets.
    CONSTRAINT accounts_customer_balance_nonnegative
        CHECK (kind = 'system' OR (pending >= 0 AND balance - pending >= -overdraft_limit))
);

INSERT INTO accounts_new (id, customer_hash, kind, status, balance, balance_version, last_tx_hash, created_at)
SELECT id, customer_hash, kind, status, balance, balance_version, last_tx_hash, created_at FROM accounts;

DROP TABLE accounts;

ALTER TABLE accounts_new RENAME TO accounts;

CREATE TABLE lots (
    seq           INTEGER PRIMARY KEY REFERENCES transactions (seq),
    account_id    TEXT NOT NULL,                -- the crediting transaction's (no foreign key of its own)
    points        INTEGER NOT NULL CHECK (points > 0),
    remaining     INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    pending_until INTEGER,                      -- NULL: active
    expires_at    INTEGER,                      -- NULL: never
    created_at    INTEGER NOT NULL,
    activated_at  INTEGER
);

CREATE INDEX lots_open ON lots (account_id, expires_at, seq) WHERE remaining > 0;
CREATE INDEX lots_lapsing ON lots (expires_at, account_id) WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE INDEX lots_pending ON lots (pending_until) WHERE pending_until IS NOT NULL;

CREATE TABLE lot_uses (
    debit_seq INTEGER NOT NULL REFERENCES transactions (seq),
    lot_seq   INTEGER NOT NULL REFERENCES lots (seq),
    points    INTEGER NOT NULL CHECK (points > 0),
    PRIMARY KEY (debit_seq, lot_seq)
);

CREATE INDEX lot_uses_lot ON lot_uses (lot_seq);

-- Points earned before lots existed never expire: each customer's balance becomes one lot, numbered by
-- the account's latest crediting transaction.
INSERT INTO lots (seq, account_id, points, remaining, created_at)
SELECT (SELECT t.seq FROM transactions t JOIN postings p ON p.seq = t.seq AND p.account_id = t.account_id
        WHERE t.account_id = a.id AND p.amount > 0 ORDER BY t.seq DESC LIMIT 1),
       a.id, a.balance, a.balance,
       (SELECT t.created_at FROM transactions t JOIN postings p ON p.seq = t.seq AND p.account_id = t.account_id
        WHERE t.account_id = a.id AND p.amount > 0 ORDER BY t.seq DESC LIMIT 1)
FROM accounts a
WHERE a.kind = 'customer' AND a.balance > 0;

PRAGMA foreign_key_check;

COMMIT;

PRAGMA foreign_keys = ON;

-- +goose Down
PRAGMA foreign_keys = OFF;

BEGIN IMMEDIATE;

DROP TABLE lot_uses;
DROP TABLE lots;

CREATE TABLE accounts_old (
    id              TEXT PRIMARY KEY,
    customer_hash   TEXT UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('customer', 'system')),
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen', 'closed')),
    balance         INTEGER NOT NULL DEFAULT 0,
    balance_version INTEGER NOT NULL DEFAULT 0,
    last_tx_hash    TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    CONSTRAINT accounts_customer_balance_nonnegative CHECK (kind = 'system' OR balance >= 0)
);

INSERT INTO accounts_old (id, customer_hash, kind, status, balance, balance_version, last_tx_hash, created_at)
SELECT id, customer_hash, kind, status, balance, balance_version, last_tx_hash, created_at FROM accounts;

DROP TABLE accounts;

ALTER TABLE accounts_old RENAME TO accounts;

COMMIT;

PRAGMA foreign_keys = ON;
