-- The outbox of the Genesys contact mirror (tally.MirrorStore): one row per account whose balance and tier
-- are copied to a Genesys external contact. The contact id is a raw customer identifier: it is stored only
-- sealed (AES-GCM under the ledger key, the account id as additional data). Nothing in the ledger's write
-- path reads or writes this table.

-- +goose Up
CREATE TABLE contact_mirror (
    account_id      TEXT PRIMARY KEY,
    contact_sealed  BLOB NOT NULL,
    wanted_version  INTEGER NOT NULL,
    sent_version    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    updated_at      INTEGER NOT NULL
);

CREATE INDEX contact_mirror_due ON contact_mirror (next_attempt_at) WHERE wanted_version > sent_version;

-- +goose Down
DROP TABLE contact_mirror;
