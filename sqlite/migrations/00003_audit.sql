-- What the audit needs beyond the chains: the MAC'd seal of the unkeyed (v1) part of the chains, and
-- signed checkpoints of the ledger head with the heads each recorded (see tally.Checkpoint).

-- +goose Up
CREATE TABLE ledger_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE checkpoints (
    no           INTEGER PRIMARY KEY,
    created_at   INTEGER NOT NULL,
    max_seq      INTEGER NOT NULL,
    transactions INTEGER NOT NULL,
    accounts     INTEGER NOT NULL,
    root         TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    signature    TEXT NOT NULL
);

-- One row per account per checkpoint that saw its head change; the newest row of an account is its head
-- as last recorded.
CREATE TABLE checkpoint_heads (
    account_id    TEXT NOT NULL,
    checkpoint_no INTEGER NOT NULL REFERENCES checkpoints (no),
    version       INTEGER NOT NULL,
    hash          TEXT NOT NULL,
    balance       INTEGER NOT NULL,
    PRIMARY KEY (account_id, checkpoint_no)
);

CREATE INDEX checkpoint_heads_no ON checkpoint_heads (checkpoint_no, account_id);

-- +goose Down
DROP TABLE checkpoint_heads;
DROP TABLE checkpoints;
DROP TABLE ledger_meta;
