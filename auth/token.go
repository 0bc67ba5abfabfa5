package auth

import (
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
)

// maxTokenRequestBytes bounds the body of a token request.
const maxTokenRequestBytes = 64 << 10

// TokenService is the token endpoint of RFC 6749 §3.2 for the client credentials grant (§4.4), to be
// routed as "POST /oauth/token".
type TokenService struct {
	issuer  *Issuer
	clients tally.CredentialStore
	log     *slog.Logger
}

// NewTokenService returns a token endpoint that authenticates clients against clients and signs tokens
// with issuer. A nil logger means slog.Default().
func NewTokenService(issuer *Issuer, clients tally.CredentialStore, logger *slog.Logger) *TokenService {
	if logger == nil {
		logger = slog.Default()
	}
	return &TokenService{issuer: issuer, clients: clients, log: logger}
}

var _ http.Handler = (*TokenService)(nil)

// tokenResponse is the success body of RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// oauthError is an error response of RFC 6749 §5.2.
type oauthError struct {
	status      int
	code        string // the "error" member
	description string
	basic       bool // answer with a Basic challenge (invalid_client)
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func badRequest(code, description string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: code, description: description}
}

// ServeHTTP answers a token request: a form-encoded POST with grant_type=client_credentials, an optional
// space-separated scope (a subset of the client's scopes; all of them when absent), and the client
// authenticated with HTTP Basic or the client_id and client_secret form fields, not both. Secrets are never
// logged.
func (s *TokenService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every answer carries credentials or says something about them: none may be cached (§5.1).
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")

	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
	resp, err := s.token(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *TokenService) token(r *http.Request) (tokenResponse, error) {
	if r.Method != http.MethodPost {
		return tokenResponse{}, &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request",
			description: "the token endpoint takes POST"}
	}
	form, err := readForm(r)
	if err != nil {
		return tokenResponse{}, err
	}

	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		return tokenResponse{}, badRequest("invalid_request", "grant_type is missing")
	default:
		return tokenResponse{}, badRequest("unsupported_grant_type", "only client_credentials is supported")
	}

	id, secret, basic, err := clientCredentials(r, form)
	if err != nil {
		return tokenResponse{}, err
	}
	// The client id is looked up in the database, where a NUL or a byte that is not UTF-8 would fail
	// the query (500) on PostgreSQL rather than find no client; the secret is only hashed, but is no
	// secret Tally made either. RFC 6749 §5.2 names a malformed parameter invalid_request (400).
	if tally.CheckText("client_id", id) != nil || tally.CheckText("client_secret", secret) != nil {
		return tokenResponse{}, badRequest("invalid_request", "client_id and client_secret must be UTF-8 text without NUL characters")
	}
	client, err := s.authenticate(r, id, secret, basic)
	if err != nil {
		return tokenResponse{}, err
	}

	scopes := client.Scopes
	if requested := strings.Fields(form.Get("scope")); len(requested) > 0 {
		scopes = nil
		for _, sc := range requested {
			if !slices.Contains(client.Scopes, sc) {
				return tokenResponse{}, badRequest("invalid_scope", "scope "+strconv.Quote(sc)+" is not granted to this client")
			}
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	if len(scopes) == 0 {
		return tokenResponse{}, badRequest("invalid_scope", "this client is granted no scope")
	}

	token, _, err := s.issuer.Issue(r.Context(), client.ID, scopes)
	if err != nil {
		return tokenResponse{}, err
	}
	s.log.InfoContext(r.Context(), "auth: token issued", "client_id", client.ID, "scope", strings.Join(scopes, " "))
	return tokenResponse{
		AccessToken: token,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.issuer.TTL() / time.Second),
		Scope:       strings.Join(scopes, " "),
	}, nil
}

// readForm parses the form-encoded body (its size bounded by ServeHTTP), ignoring the query string: credentials do not belong in URLs.
// Parameters may not repeat (§3.2).
func readForm(r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, badRequest("invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, badRequest("invalid_request", "the body is too large")
		}
		return nil, badRequest("invalid_request", "the body is not a valid form")
	}
	for name, values := range r.PostForm {
		if len(values) > 1 {
			return nil, badRequest("invalid_request", "parameter "+strconv.Quote(name)+" is repeated")
		}
	}
	return r.PostForm, nil
}

// clientCredentials finds the client's id and secret in the Basic header, whose parts are form-urlencoded
// (§2.3.1), or in the form. A client_id in the form beside a Basic header must name the same client.
func clientCredentials(r *http.Request, form url.Values) (id, secret string, basic bool, err error) {
	_, formSecret := form["client_secret"]
	if r.Header.Get("Authorization") == "" {
		id, secret = form.Get("client_id"), form.Get("client_secret")
		if id == "" || secret == "" {
			return "", "", false, &oauthError{status: http.StatusUnauthorized, code: "invalid_client",
				description: "client authentication is required", basic: id == ""}
		}
		return id, secret, false, nil
	}
	user, pass, ok := r.BasicAuth()
	if ok {
		user, err = url.QueryUnescape(user)
		if err == nil {
			pass, err = url.QueryUnescape(pass)
		}
		ok = err == nil && user != ""
	}
	if !ok {
		return "", "", true, &oauthError{status: http.StatusUnauthorized, code: "invalid_client",
			description: "malformed Basic credentials", basic: true}
	}
	if formSecret || (form.Get("client_id") != "" && form.Get("client_id") != user) {
		return "", "", true, badRequest("invalid_request", "use one client authentication method")
	}
	return user, pass, true, nil
}

// authenticate returns the client whose id and secret these are. An unknown id, a wrong secret and a
// revoked client are all invalid_client; the first two take the same time.
func (s *TokenService) authenticate(r *http.Request, id, secret string, basic bool) (tally.Client, error) {
	fail := func(reason, description string) error {
		s.log.InfoContext(r.Context(), "auth: client authentication failed", "client_id", id, "reason", reason)
		return &oauthError{status: http.StatusUnauthorized, code: "invalid_client", description: description, basic: basic}
	}
	c, err := s.clients.Client(r.Context(), id)
	switch tally.ErrorCode(err) {
	case "":
	case tally.ENOTFOUND:
		SecretMatches(dummyHash, secret)
		return tally.Client{}, fail("unknown client", "client authentication failed")
	default:
		return tally.Client{}, err
	}
	if !SecretMatches(c.SecretHash, secret) {
		return tally.Client{}, fail("wrong secret", "client authentication failed")
	}
	if c.RevokedAt != nil {
		return tally.Client{}, fail("revoked", "the client is revoked")
	}
	return c, nil
}

func (s *TokenService) writeError(w http.ResponseWriter, r *http.Request, err error) {
	oe, ok := errors.AsType[*oauthError](err)
	if !ok {
		switch tally.ErrorCode(err) {
		case tally.EUNAVAILABLE:
			s.log.WarnContext(r.Context(), "auth: token request failed", "err", err)
			w.Header().Set("Retry-After", "1")
			oe = &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable",
				description: "try again shortly"}
		default:
			s.log.ErrorContext(r.Context(), "auth: token request failed", "err", err)
			oe = &oauthError{status: http.StatusInternalServerError, code: "server_error",
				description: "internal error"}
		}
	}
	if oe.basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="tally", charset="UTF-8"`)
	}
	if oe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	writeJSON(w, oe.status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{oe.code, oe.description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
