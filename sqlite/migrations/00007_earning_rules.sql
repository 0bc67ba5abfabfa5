-- Earning rules, versioned (a row is never updated: an edit or a deactivation adds the next version), the
-- rule versions and points recorded with each accrual, and what each rule paid each customer per cap
-- period. Times are Unix microseconds, as elsewhere.

-- +goose Up
CREATE TABLE earning_rules (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version > 0),
    active     INTEGER NOT NULL,
    definition TEXT NOT NULL,
    actor      TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE accrual_rules (
    seq     INTEGER NOT NULL REFERENCES transactions (seq),
    rule    TEXT NOT NULL,
    version INTEGER NOT NULL,
    points  INTEGER NOT NULL CHECK (points > 0),
    PRIMARY KEY (seq, rule)
);

CREATE TABLE rule_usage (
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    rule         TEXT NOT NULL,
    period       TEXT NOT NULL CHECK (period IN ('day', 'week', 'month')),
    period_start INTEGER NOT NULL,
    points       INTEGER NOT NULL CHECK (points >= 0),
    PRIMARY KEY (account_id, rule, period, period_start)
);

-- +goose Down
DROP TABLE rule_usage;
DROP TABLE accrual_rules;
DROP TABLE earning_rules;
