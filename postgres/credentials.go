package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tally-ledger/tally"
)

var _ tally.CredentialStore = (*DB)(nil)

// Every method below is one statement, committed on its own: none needs a transaction of its own, and
// none can meet a serialization failure under READ COMMITTED.

// CreateClient inserts a client. ECONFLICT when the ID is taken; EINVALID for a scope that the
// space-separated scopes column cannot hold (empty, or containing a space).
func (db *DB) CreateClient(ctx context.Context, c tally.Client) error {
	if err := c.CheckText(); err != nil {
		return err
	}
	scopes, err := tally.JoinScopes(c.Scopes)
	if err != nil {
		return err
	}
	var revoked *time.Time // NULL while not revoked
	if c.RevokedAt != nil {
		t := c.RevokedAt.UTC()
		revoked = &t
	}
	_, err = db.pool.Exec(ctx, `
		INSERT INTO oauth_clients (client_id, name, secret_hash, scopes, created_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		c.ID, c.Name, c.SecretHash, scopes, c.CreatedAt.UTC(), revoked)
	if code, _ := pgCode(err); code == codeUniqueViolation {
		return &tally.Error{Code: tally.ECONFLICT, Message: fmt.Sprintf("client %q already exists", c.ID), Err: err}
	}
	return classify(ctx, "create client", err)
}

const clientColumns = `client_id, name, secret_hash, scopes, created_at, revoked_at`

// Client returns one client, revoked or not. ENOTFOUND when absent.
func (db *DB) Client(ctx context.Context, id string) (tally.Client, error) {
	if err := tally.CheckText("client id", id); err != nil {
		return tally.Client{}, err
	}
	c, err := scanClient(db.pool.QueryRow(ctx, `SELECT `+clientColumns+` FROM oauth_clients WHERE client_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Client{}, tally.Errorf(tally.ENOTFOUND, "client %q not found", id)
	}
	if err != nil {
		return tally.Client{}, classify(ctx, "client", err)
	}
	return c, nil
}

// Clients lists every client, revoked ones included, ordered by ID (byte order: the column is
// COLLATE "C").
func (db *DB) Clients(ctx context.Context) ([]tally.Client, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+clientColumns+` FROM oauth_clients ORDER BY client_id`)
	if err != nil {
		return nil, classify(ctx, "clients", err)
	}
	clients, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.Client, error) {
		return scanClient(row)
	})
	if err != nil {
		return nil, classify(ctx, "clients", err)
	}
	if clients == nil {
		clients = []tally.Client{}
	}
	return clients, nil
}

// RevokeClient sets the RevokedAt of a client unless it is set already. ENOTFOUND when absent.
func (db *DB) RevokeClient(ctx context.Context, id string, at time.Time) error {
	if err := tally.CheckText("client id", id); err != nil {
		return err
	}
	tag, err := db.pool.Exec(ctx,
		`UPDATE oauth_clients SET revoked_at = COALESCE(revoked_at, $2) WHERE client_id = $1`, id, at.UTC())
	return updatedOne(ctx, tag, err, "revoke client", tally.Errorf(tally.ENOTFOUND, "client %q not found", id))
}

func scanClient(row pgx.Row) (tally.Client, error) {
	var c tally.Client
	var scopes string
	var revoked *time.Time
	if err := row.Scan(&c.ID, &c.Name, &c.SecretHash, &scopes, &c.CreatedAt, &revoked); err != nil {
		return c, err
	}
	c.Scopes = tally.SplitScopes(scopes)
	c.CreatedAt = c.CreatedAt.UTC()
	if revoked != nil {
		t := revoked.UTC()
		c.RevokedAt = &t
	}
	return c, nil
}

// SigningKeys lists every stored signing key, ordered by KID.
func (db *DB) SigningKeys(ctx context.Context) ([]tally.SigningKey, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT kid, algorithm, private_key, public_key, created_at, not_after, retire_at
		FROM signing_keys ORDER BY kid`)
	if err != nil {
		return nil, classify(ctx, "signing keys", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.SigningKey, error) {
		var k tally.SigningKey
		err := row.Scan(&k.KID, &k.Algorithm, &k.SealedPrivateKey, &k.PublicKey, &k.CreatedAt, &k.NotAfter, &k.RetireAt)
		k.CreatedAt, k.NotAfter, k.RetireAt = k.CreatedAt.UTC(), k.NotAfter.UTC(), k.RetireAt.UTC()
		return k, err
	})
	if err != nil {
		return nil, classify(ctx, "signing keys", err)
	}
	if keys == nil {
		keys = []tally.SigningKey{}
	}
	return keys, nil
}

// AddSigningKey inserts a key. ECONFLICT when the KID is taken.
func (db *DB) AddSigningKey(ctx context.Context, k tally.SigningKey) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at, not_after, retire_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.KID, k.Algorithm, k.SealedPrivateKey, k.PublicKey, k.CreatedAt.UTC(), k.NotAfter.UTC(), k.RetireAt.UTC())
	if code, _ := pgCode(err); code == codeUniqueViolation {
		return &tally.Error{Code: tally.ECONFLICT, Message: fmt.Sprintf("signing key %q already exists", k.KID), Err: err}
	}
	return classify(ctx, "add signing key", err)
}

// RetireSigningKey sets the NotAfter and RetireAt of a key. ENOTFOUND when absent.
func (db *DB) RetireSigningKey(ctx context.Context, kid string, notAfter, retireAt time.Time) error {
	tag, err := db.pool.Exec(ctx, `UPDATE signing_keys SET not_after = $2, retire_at = $3 WHERE kid = $1`,
		kid, notAfter.UTC(), retireAt.UTC())
	return updatedOne(ctx, tag, err, "retire signing key", tally.Errorf(tally.ENOTFOUND, "signing key %q not found", kid))
}

// DeleteSigningKey deletes a key; an absent key is not an error.
func (db *DB) DeleteSigningKey(ctx context.Context, kid string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM signing_keys WHERE kid = $1`, kid)
	return classify(ctx, "delete signing key", err)
}

// updatedOne checks the outcome of an UPDATE by primary key: notFound when it matched no row.
func updatedOne(ctx context.Context, tag pgconn.CommandTag, err error, op string, notFound error) error {
	if err != nil {
		return classify(ctx, op, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound
	}
	return nil
}
