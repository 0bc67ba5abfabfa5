package auth

import (
	"context"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tally-ledger/tally"
)

// sessionType is the JWT "typ" of portal session tokens. The verifier of access tokens requires
// "at+jwt", so a session token can never pass as an access token, nor the other way round.
const sessionType = "session+jwt"

// IssueSession signs a short-lived portal session token for one customer: what the redemption portal
// and the widget present instead of the customer's identity. Its audience is the issuer's with
// "/portal" appended.
func (i *Issuer) IssueSession(ctx context.Context, customerHash string, ttl time.Duration) (string, time.Time, error) {
	if !tally.IsCustomerHash(customerHash) {
		return "", time.Time{}, tally.Errorf(tally.EINVALID, "a session names a customer hash")
	}
	now := i.cfg.Now()
	exp := now.Add(ttl)
	claims := jwt.MapClaims{
		"iss": i.cfg.Issuer,
		"sub": customerHash,
		"aud": i.cfg.Audience + "/portal",
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": exp.Unix(),
		"jti": newJTI(),
	}
	raw, err := i.sign(ctx, sessionType, claims, now)
	if err != nil {
		return "", time.Time{}, err
	}
	return raw, time.Unix(exp.Unix(), 0).UTC(), nil
}

// VerifySession checks a portal session token and returns the customer hash it was issued for. Errors
// are *tally.Error: EUNAUTHORIZED with the reason, EUNAVAILABLE when the keys cannot be read.
func (i *Issuer) VerifySession(ctx context.Context, raw string) (string, error) {
	if len(raw) > maxTokenBytes {
		return "", errMalformed
	}
	h, _, err := peek(raw)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(h.Typ, sessionType) {
		return "", tally.Errorf(tally.EUNAUTHORIZED, "not a session token")
	}
	if h.Kid == "" {
		return "", errNoKID
	}
	parser := newParser([]string{jwt.SigningMethodEdDSA.Alg()}, i.cfg.Issuer, i.cfg.Audience+"/portal", DefaultLeeway, i.cfg.Now)
	var claims jwt.RegisteredClaims
	_, err = parser.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) {
		return i.verificationKey(ctx, h.Kid)
	})
	if err != nil {
		return "", verificationError(err)
	}
	if !tally.IsCustomerHash(claims.Subject) {
		return "", errMissingClaim
	}
	return claims.Subject, nil
}
