-- OAuth clients and token signing keys (tally.CredentialStore). Times are INTEGER unix microseconds (UTC).

-- +goose Up
CREATE TABLE oauth_clients (
    client_id   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL, -- space-separated, in the order given
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER        -- NULL while the client may fetch tokens
);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    private_key BLOB NOT NULL,
    public_key  BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    retire_at   INTEGER NOT NULL
);

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE oauth_clients;
