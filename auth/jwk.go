package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
)

// jwk is a public JSON Web Key (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2): the members Tally writes and
// reads. Field order is the order of the JSON output.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// jwkSet is a JWK Set (RFC 7517 §5).
type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// minRSABits is the smallest RSA modulus accepted from an external issuer (RFC 7518 §3.3 asks for 2048).
const minRSABits = 2048

// ed25519JWK returns the public JWK of an Ed25519 key.
func ed25519JWK(kid string, pub ed25519.PublicKey) jwk {
	return jwk{Kty: "OKP", Crv: "Ed25519", X: b64(pub), Kid: kid, Alg: algEdDSA, Use: "sig"}
}

// ed25519Thumbprint is the RFC 7638 thumbprint of an Ed25519 public key, used as its kid: the SHA-256 of
// the required members in lexicographic order, without white space.
func ed25519Thumbprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64(pub) + `"}`))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// publicKey decodes the public key of a JWK: *rsa.PublicKey, *ecdsa.PublicKey on P-256, or
// ed25519.PublicKey. Any other type or curve is an error.
func (k jwk) publicKey() (any, error) {
	switch k.Kty {
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, fmt.Errorf("unsupported OKP curve %q", k.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 x")
		}
		return ed25519.PublicKey(x), nil
	case "EC":
		if k.Crv != "P-256" {
			return nil, fmt.Errorf("unsupported EC curve %q", k.Crv)
		}
		x, errX := base64.RawURLEncoding.DecodeString(k.X)
		y, errY := base64.RawURLEncoding.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("bad P-256 coordinates")
		}
		// SEC 1 uncompressed form; parsing rejects points off the curve (invalid-curve attacks).
		point := append(append([]byte{4}, x...), y...)
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	case "RSA":
		n, errN := base64.RawURLEncoding.DecodeString(k.N)
		e, errE := base64.RawURLEncoding.DecodeString(k.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA modulus or exponent")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA modulus of %d bits is too small", pub.N.BitLen())
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return nil, errors.New("bad RSA exponent")
		}
		return pub, nil
	}
	return nil, fmt.Errorf("unsupported key type %q", k.Kty)
}

// keyFits reports whether a key of this type may verify signatures of algorithm alg. It keeps an RSA key
// from being used as an HMAC secret and the like, whatever the token's header says.
func keyFits(alg string, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		return alg == "ES256" && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == algEdDSA
	}
	return false
}
