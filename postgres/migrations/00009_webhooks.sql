-- Events out (tally.WebhookStore): webhook subscriptions, and the outbox of their deliveries. A delivery
-- row is written in the same transaction as the ledger write that causes the event, one per subscribed
-- endpoint, and leased by the delivery workers of every replica as fulfillment jobs are. No secret is
-- stored: each subscription's signing secret is derived from the ledger's webhook key, its id and
-- secret_version.

-- +goose Up
CREATE TABLE webhook_subscriptions (
    id             TEXT COLLATE "C" PRIMARY KEY,
    url            TEXT NOT NULL,
    event_types    TEXT NOT NULL, -- space-separated
    filter         TEXT NOT NULL DEFAULT '',
    expiring_days  INTEGER NOT NULL DEFAULT 0,
    secret_version INTEGER NOT NULL DEFAULT 1,
    active         BOOLEAN NOT NULL DEFAULT true,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhook_deliveries (
    event_id        TEXT COLLATE "C" NOT NULL,
    subscription_id TEXT COLLATE "C" NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    account_id      TEXT COLLATE "C" NOT NULL DEFAULT '',
    tx_seq          BIGINT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'skipped', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (event_id, subscription_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, created_at);
CREATE INDEX webhook_deliveries_account ON webhook_deliveries (account_id);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_subscriptions;
