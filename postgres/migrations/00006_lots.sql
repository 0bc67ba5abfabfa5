-- Points lifecycle: every credit of a customer is a lot (its id is the seq of the crediting transaction)
-- that may be pending (not spendable before pending_until) and may expire (at expires_at). Debits consume
-- lots soonest-expiring first, and lot_uses records which lots each debit consumed.

-- +goose Up
ALTER TABLE accounts ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN overdraft_limit BIGINT NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0);
-- The spendable balance (balance - pending) may go below zero only as far as the account's overdraft
-- limit, which a clawback under the allow_negative return policy sets. The name stays: the stores map
-- it to tally.NegativeBalance.
ALTER TABLE accounts DROP CONSTRAINT accounts_customer_balance_nonnegative;
ALTER TABLE accounts ADD CONSTRAINT accounts_customer_balance_nonnegative
    CHECK (kind = 'system' OR (pending >= 0 AND balance - pending >= -overdraft_limit));

CREATE TABLE lots (
    seq           BIGINT PRIMARY KEY REFERENCES transactions (seq),
    -- The account of the crediting transaction (which references accounts): no foreign key of its own,
    -- whose check would cost every accrual a lookup.
    account_id    TEXT COLLATE "C" NOT NULL,
    points        BIGINT NOT NULL CHECK (points > 0),
    remaining     BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    pending_until TIMESTAMPTZ NULL,
    expires_at    TIMESTAMPTZ NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    activated_at  TIMESTAMPTZ NULL
);

-- An account's open lots in the order debits consume them.
CREATE INDEX lots_open ON lots (account_id, expires_at, seq) WHERE remaining > 0;
-- The expiry job's and the activation job's scans.
CREATE INDEX lots_lapsing ON lots (expires_at, account_id) WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE INDEX lots_pending ON lots (pending_until) WHERE pending_until IS NOT NULL;

CREATE TABLE lot_uses (
    debit_seq BIGINT NOT NULL REFERENCES transactions (seq),
    lot_seq   BIGINT NOT NULL REFERENCES lots (seq),
    points    BIGINT NOT NULL CHECK (points > 0),
    PRIMARY KEY (debit_seq, lot_seq)
);

CREATE INDEX lot_uses_lot ON lot_uses (lot_seq);

-- Points earned before lots existed never expire: each customer's balance becomes one lot, numbered by
-- the account's latest crediting transaction.
INSERT INTO lots (seq, account_id, points, remaining, created_at)
SELECT c.seq, a.id, a.balance, a.balance, c.created_at
FROM accounts a
CROSS JOIN LATERAL (
    SELECT t.seq, t.created_at
    FROM transactions t JOIN postings p ON p.seq = t.seq AND p.account_id = t.account_id
    WHERE t.account_id = a.id AND p.amount > 0
    ORDER BY t.seq DESC
    LIMIT 1
) c
WHERE a.kind = 'customer' AND a.balance > 0;

-- +goose Down
DROP TABLE lot_uses;
DROP TABLE lots;
ALTER TABLE accounts DROP CONSTRAINT accounts_customer_balance_nonnegative;
ALTER TABLE accounts ADD CONSTRAINT accounts_customer_balance_nonnegative CHECK (kind = 'system' OR balance >= 0);
ALTER TABLE accounts DROP COLUMN overdraft_limit;
ALTER TABLE accounts DROP COLUMN pending;
