-- Earning rules, versioned (a row is never updated: an edit or a deactivation adds the next version), the
-- rule versions and points recorded with each accrual, and what each rule paid each customer per cap
-- period (read and written under the customer's account lock, so concurrent events cannot pass a cap).

-- +goose Up
CREATE TABLE earning_rules (
    name       TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL CHECK (version > 0),
    active     BOOLEAN NOT NULL,
    definition TEXT NOT NULL,
    actor      TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE accrual_rules (
    seq     BIGINT NOT NULL REFERENCES transactions (seq),
    rule    TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    points  BIGINT NOT NULL CHECK (points > 0),
    PRIMARY KEY (seq, rule)
);

CREATE TABLE rule_usage (
    account_id   TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    rule         TEXT COLLATE "C" NOT NULL,
    period       TEXT NOT NULL CHECK (period IN ('day', 'week', 'month')),
    period_start TIMESTAMPTZ NOT NULL,
    points       BIGINT NOT NULL CHECK (points >= 0),
    PRIMARY KEY (account_id, rule, period, period_start)
);

-- +goose Down
DROP TABLE rule_usage;
DROP TABLE accrual_rules;
DROP TABLE earning_rules;
