package api

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// CORS opens the portal API (/v1/portal/...) and the widget's script (/widget/...) to browsers on the
// origins of Options.CORSOrigins, so that a page on another origin can embed the widget beside the
// Genesys Messenger. Nothing else is opened: the ledger, catalog administration, OAuth and operational
// routes never answer with CORS headers, and an origin that is not listed gets none either (the browser
// then refuses the page the answer). Tokens travel in the Authorization header, so there is no
// credentials mode: no cookie of Tally's is ever sent cross-origin.

// corsMaxAge is how long a browser may cache a preflight answer, in seconds.
const corsMaxAge = "600"

// corsScoped reports whether a path is one a page on another origin may call.
func corsScoped(p string) bool {
	p = path.Clean("/" + p)
	return strings.HasPrefix(p, "/v1/portal/") || strings.HasPrefix(p, "/widget/")
}

// cors wraps the route table: it answers the preflight of an allowed origin itself, and marks the
// answers to an allowed origin's requests as readable by it.
func (s *Server) cors(next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, o := range s.opts.CORSOrigins {
		allowed[o] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !corsScoped(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin") // caches must not give one origin's answer to another
		origin := r.Header.Get("Origin")
		if origin == "" || !allowed[origin] {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		// Retry-After is not a header a cross-origin script may read unless it is exposed, and the
		// widget honours it on 429 and 503.
		h.Set("Access-Control-Expose-Headers", "Retry-After, X-Request-Id")
		next.ServeHTTP(w, r)
	})
}

// ParseOrigins reads a comma-separated list of exact origins (scheme://host[:port], as browsers send
// them in the Origin header) for Options.CORSOrigins. A default port is dropped, scheme and host are
// lowercased; a wildcard, a path, a query or credentials are refused: the list names the pages that may
// spend customers' points, one by one.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		o, err := parseOrigin(raw)
		if err != nil {
			return nil, err
		}
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out, nil
}

func parseOrigin(raw string) (string, error) {
	bad := func(why string) error { return fmt.Errorf("CORS origin %q %s", raw, why) }
	if strings.Contains(raw, "*") {
		return "", bad("is a wildcard: list each origin (scheme://host[:port])")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", bad("is not a URL: want scheme://host[:port]")
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return "", bad("is not http or https: want scheme://host[:port]")
	case u.Host == "" || u.Opaque != "":
		return "", bad("has no host: want scheme://host[:port]")
	case u.User != nil:
		return "", bad("has credentials: want scheme://host[:port]")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "?") || strings.HasSuffix(raw, "#"):
		return "", bad("has a path, query or fragment: an origin is scheme://host[:port] only")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" && strings.HasSuffix(u.Host, ":") {
		return "", bad("has an empty port")
	}
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}
