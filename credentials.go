package tally

import (
	"context"
	"strings"
	"time"
)

// Scopes an OAuth client may be granted. A scope grants exactly what it names: ScopeAdmin does not imply
// ScopeLedgerWrite nor ScopeLedgerRead, so that an administrative client cannot move points by accident
// and every route names the one scope it needs.
const (
	ScopeLedgerRead  = "ledger:read"
	ScopeLedgerWrite = "ledger:write"
	ScopeAdmin       = "admin"
)

// Scopes lists every known scope.
var Scopes = []string{ScopeLedgerRead, ScopeLedgerWrite, ScopeAdmin}

// ValidScope reports whether s is a known scope.
func ValidScope(s string) bool {
	return s == ScopeLedgerRead || s == ScopeLedgerWrite || s == ScopeAdmin
}

// Client is an OAuth 2.0 client (RFC 6749 §2) allowed to fetch access tokens with the client credentials
// grant, such as a Genesys Cloud integration. Only a hash of its secret is stored; SecretHash names its
// algorithm as a prefix (package auth writes "sha256:" followed by the hex digest).
type Client struct {
	ID         string
	Name       string
	SecretHash string
	Scopes     []string
	CreatedAt  time.Time
	RevokedAt  *time.Time // nil while the client may fetch tokens
}

// SigningKey is a key that signs access tokens, shared by every replica through the CredentialStore.
// A key signs until NotAfter and is published (in the JWKS, for verification) until RetireAt, which is
// later than the expiry of the last token it signed; after RetireAt it may be deleted.
//
// The store never sees the private key in clear: package auth seals it with the LedgerKey, which is not
// in the database, so that a copy of the database cannot sign tokens. Stores keep the bytes as given.
type SigningKey struct {
	KID       string
	Algorithm string // "EdDSA"
	// SealedPrivateKey is the 32-byte Ed25519 seed of RFC 8032 sealed with LedgerKey.Seal (see
	// auth.OpenSigningKey). Keys stored before sealing hold the bare seed here; auth revokes them.
	SealedPrivateKey []byte
	PublicKey        []byte // the 32-byte Ed25519 public key, in clear
	CreatedAt        time.Time
	NotAfter         time.Time
	RetireAt         time.Time
}

// CredentialStore keeps OAuth clients and token signing keys. Storage adapters implement it.
//
// Every method returns a *Error with code EUNAVAILABLE when the database cannot be reached or reports a
// transient fault.
type CredentialStore interface {
	// CreateClient inserts a client. ECONFLICT when the ID is taken.
	CreateClient(ctx context.Context, c Client) error
	// Client returns one client, revoked or not. ENOTFOUND when absent.
	Client(ctx context.Context, id string) (Client, error)
	// Clients lists every client, revoked ones included, ordered by ID.
	Clients(ctx context.Context) ([]Client, error)
	// RevokeClient sets the RevokedAt of a client (keeping an earlier one). ENOTFOUND when absent.
	RevokeClient(ctx context.Context, id string, at time.Time) error

	// SigningKeys lists every stored signing key, in any order.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// AddSigningKey inserts a key. Replicas may add keys concurrently; each has its own KID. ECONFLICT
	// when the KID is taken.
	AddSigningKey(ctx context.Context, k SigningKey) error
	// RetireSigningKey sets the NotAfter and RetireAt of a key, when it rotates out. ENOTFOUND when absent.
	RetireSigningKey(ctx context.Context, kid string, notAfter, retireAt time.Time) error
	// DeleteSigningKey deletes a key. Deleting an absent key is not an error, since replicas race to
	// delete retired keys.
	DeleteSigningKey(ctx context.Context, kid string) error
}

// JoinScopes encodes scopes as one space-separated string for storage, refusing a scope that would not
// read back as itself: "a b" would come back as two scopes, and widen a grant.
func JoinScopes(scopes []string) (string, error) {
	for _, s := range scopes {
		if s == "" || strings.Contains(s, " ") {
			return "", Errorf(EINVALID, "scope %q is empty or contains a space", s)
		}
	}
	return strings.Join(scopes, " "), nil
}

// SplitScopes decodes what JoinScopes encoded; no scopes read back as nil.
func SplitScopes(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}
