-- Redemptions of rewards: the receipt a customer sees and the fulfillment job (an outbox row written in
-- the same transaction as the redemption's ledger transaction), and the coupon codes of coupon rewards.

-- +goose Up
ALTER TABLE reward_catalog ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE reward_catalog ADD COLUMN image_url TEXT NOT NULL DEFAULT '';

CREATE TABLE redemptions (
    receipt_id      TEXT PRIMARY KEY,
    tx_seq          INTEGER NOT NULL UNIQUE REFERENCES transactions (seq),
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    reward_id       TEXT NOT NULL REFERENCES reward_catalog (reward_id),
    points          INTEGER NOT NULL,
    method          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'manual', 'dead', 'refunded')),
    coupon_code     TEXT NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE INDEX redemptions_due ON redemptions (status, next_attempt_at);
CREATE INDEX redemptions_account ON redemptions (account_id, created_at);

-- A code belongs to one reward and, once assigned, to one receipt.
CREATE TABLE reward_coupons (
    reward_id  TEXT NOT NULL REFERENCES reward_catalog (reward_id),
    code       TEXT NOT NULL,
    receipt_id TEXT UNIQUE REFERENCES redemptions (receipt_id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (reward_id, code)
);

CREATE INDEX reward_coupons_free ON reward_coupons (reward_id, code) WHERE receipt_id IS NULL;

-- +goose Down
DROP TABLE reward_coupons;
DROP TABLE redemptions;
ALTER TABLE reward_catalog DROP COLUMN image_url;
ALTER TABLE reward_catalog DROP COLUMN description;
