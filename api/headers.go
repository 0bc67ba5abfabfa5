package api

import (
	"net/http"
	"strings"
)

// apiCSP is the Content-Security-Policy of every answer but the portal page: a JSON answer, a problem
// or a script is never a document that may load or run anything, nor be framed.
const apiCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// genesysFrameAncestors are the Genesys Cloud web origins (every region's apps, login and Messenger
// hosts) that may frame the portal page: a Genesys web messaging deployment or a script in the agent's
// desktop shows the portal link in a frame.
const genesysFrameAncestors = "https://*.mypurecloud.com https://*.mypurecloud.ie https://*.mypurecloud.de " +
	"https://*.mypurecloud.jp https://*.mypurecloud.com.au https://*.pure.cloud https://*.us-gov-pure.cloud"

// portalCSP is the portal page's policy: its own inline boot script and style and the widget's script
// from this server; calls to this server only; reward images from any https host (an image runs
// nothing); framed only by this server, the origins allowed to embed the widget (Options.CORSOrigins)
// and Genesys Cloud.
func portalCSP(origins []string) string {
	ancestors := "'self' " + genesysFrameAncestors
	if len(origins) > 0 {
		ancestors += " " + strings.Join(origins, " ")
	}
	return "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' https: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; " +
		"frame-ancestors " + ancestors
}

// secure sets the security headers of every answer, before the handler runs so that a handler (the
// portal page) may replace them: no MIME sniffing, no Referer (a portal URL carries a session token in
// its fragment, which browsers never send, but nothing else about it needs to leave either), the API's
// Content-Security-Policy, and with Options.HSTS or on a TLS connection Strict-Transport-Security.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", apiCSP)
		if s.opts.HSTS || r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}
