package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tally-ledger/tally"
)

var _ tally.CredentialStore = (*DB)(nil)

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
	var revoked any // NULL while not revoked
	if c.RevokedAt != nil {
		revoked = micros(*c.RevokedAt)
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO oauth_clients
			(client_id, name, secret_hash, scopes, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)`,
			c.ID, c.Name, c.SecretHash, scopes, micros(c.CreatedAt), revoked)
		if isKeyTaken(err) {
			return &tally.Error{Code: tally.ECONFLICT, Message: fmt.Sprintf("client %q already exists", c.ID), Err: err}
		}
		return wrap(err, "create client")
	})
}

const clientColumns = `client_id, name, secret_hash, scopes, created_at, revoked_at`

// Client returns one client, revoked or not. ENOTFOUND when absent.
func (db *DB) Client(ctx context.Context, id string) (tally.Client, error) {
	if err := tally.CheckText("client id", id); err != nil {
		return tally.Client{}, err
	}
	c, err := scanClient(db.reader.QueryRowContext(ctx,
		`SELECT `+clientColumns+` FROM oauth_clients WHERE client_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return tally.Client{}, tally.Errorf(tally.ENOTFOUND, "client %q not found", id)
	}
	if err != nil {
		return tally.Client{}, wrap(err, "read client")
	}
	return c, nil
}

// Clients lists every client, revoked ones included, ordered by ID (byte order: SQLite's BINARY
// collation).
func (db *DB) Clients(ctx context.Context) ([]tally.Client, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT `+clientColumns+` FROM oauth_clients ORDER BY client_id`)
	if err != nil {
		return nil, wrap(err, "read clients")
	}
	defer rows.Close()
	clients := []tally.Client{}
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, wrap(err, "read clients")
		}
		clients = append(clients, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "read clients")
	}
	return clients, nil
}

// RevokeClient sets the RevokedAt of a client unless it is set already. ENOTFOUND when absent.
func (db *DB) RevokeClient(ctx context.Context, id string, at time.Time) error {
	if err := tally.CheckText("client id", id); err != nil {
		return err
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE oauth_clients SET revoked_at = COALESCE(revoked_at, ?) WHERE client_id = ?`, micros(at), id)
		return updatedOne(res, err, "revoke client", tally.Errorf(tally.ENOTFOUND, "client %q not found", id))
	})
}

func scanClient(s scanner) (tally.Client, error) {
	var c tally.Client
	var scopes string
	var created int64
	var revoked sql.NullInt64
	if err := s.Scan(&c.ID, &c.Name, &c.SecretHash, &scopes, &created, &revoked); err != nil {
		return c, err
	}
	c.Scopes = tally.SplitScopes(scopes)
	c.CreatedAt = fromMicros(created)
	if revoked.Valid {
		t := fromMicros(revoked.Int64)
		c.RevokedAt = &t
	}
	return c, nil
}

// SigningKeys lists every stored signing key, ordered by KID.
func (db *DB) SigningKeys(ctx context.Context) ([]tally.SigningKey, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT kid, algorithm, private_key, public_key, created_at,
		not_after, retire_at FROM signing_keys ORDER BY kid`)
	if err != nil {
		return nil, wrap(err, "read signing keys")
	}
	defer rows.Close()
	keys := []tally.SigningKey{}
	for rows.Next() {
		var k tally.SigningKey
		var created, notAfter, retireAt int64
		if err := rows.Scan(&k.KID, &k.Algorithm, &k.SealedPrivateKey, &k.PublicKey, &created, &notAfter, &retireAt); err != nil {
			return nil, wrap(err, "read signing keys")
		}
		k.CreatedAt, k.NotAfter, k.RetireAt = fromMicros(created), fromMicros(notAfter), fromMicros(retireAt)
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "read signing keys")
	}
	return keys, nil
}

// AddSigningKey inserts a key. ECONFLICT when the KID is taken.
func (db *DB) AddSigningKey(ctx context.Context, k tally.SigningKey) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys
			(kid, algorithm, private_key, public_key, created_at, not_after, retire_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			k.KID, k.Algorithm, k.SealedPrivateKey, k.PublicKey, micros(k.CreatedAt), micros(k.NotAfter), micros(k.RetireAt))
		if isKeyTaken(err) {
			return &tally.Error{Code: tally.ECONFLICT, Message: fmt.Sprintf("signing key %q already exists", k.KID), Err: err}
		}
		return wrap(err, "add signing key")
	})
}

// RetireSigningKey sets the NotAfter and RetireAt of a key. ENOTFOUND when absent.
func (db *DB) RetireSigningKey(ctx context.Context, kid string, notAfter, retireAt time.Time) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE signing_keys SET not_after = ?, retire_at = ? WHERE kid = ?`,
			micros(notAfter), micros(retireAt), kid)
		return updatedOne(res, err, "retire signing key", tally.Errorf(tally.ENOTFOUND, "signing key %q not found", kid))
	})
}

// DeleteSigningKey deletes a key; an absent key is not an error.
func (db *DB) DeleteSigningKey(ctx context.Context, kid string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM signing_keys WHERE kid = ?`, kid)
		return wrap(err, "delete signing key")
	})
}

// updatedOne checks the result of an UPDATE by primary key: notFound when it matched no row.
func updatedOne(res sql.Result, err error, op string, notFound error) error {
	if err != nil {
		return wrap(err, op)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap(err, op)
	}
	if n == 0 {
		return notFound
	}
	return nil
}

// isKeyTaken reports whether err is a violated PRIMARY KEY or UNIQUE constraint.
func isKeyTaken(err error) bool {
	switch resultCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return true
	}
	return false
}
