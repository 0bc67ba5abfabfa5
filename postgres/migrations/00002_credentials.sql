-- OAuth clients and token signing keys (tally.CredentialStore). Keys use the "C" collation, as in
-- 00001, so that Clients lists in byte order like SQLite and Go's sort.

-- +goose Up
CREATE TABLE oauth_clients (
    client_id   TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL, -- space-separated, in the order given
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ NULL -- NULL while the client may fetch tokens
);

CREATE TABLE signing_keys (
    kid         TEXT COLLATE "C" PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    private_key BYTEA NOT NULL,
    public_key  BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    not_after   TIMESTAMPTZ NOT NULL,
    retire_at   TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE oauth_clients;
