package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/widget"
)

// widgetVersions are the names the widget's script is served under: the version the integration guide
// names, and latest.
var widgetVersions = map[string]string{
	"v" + widget.Version: "public, max-age=3600",
	"latest":             "no-cache",
}

// handleWidgetBundle serves the LoyaltyWidget script a host page embeds. Pages on other origins load it
// with a plain script tag; Cross-Origin-Resource-Policy lets pages that require it (COEP) load it too.
func handleWidgetBundle(w http.ResponseWriter, r *http.Request) {
	cache, ok := widgetVersions[r.PathValue("version")]
	if !ok {
		writeError(w, r, tally.Errorf(tally.ENOTFOUND, "no widget version %q: this server has v%s (and latest)", r.PathValue("version"), widget.Version))
		return
	}
	w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
	serveEmbedded(w, r, widget.Bundle, "text/javascript; charset=utf-8", cache)
}

// portalPage serves the portal page (/portal/) at / too: the widget for the customer whose session
// token is in the URL fragment, or, without one, how to get one. `serve --demo` prints its URL.
func portalPage(origins []string) http.Handler {
	files := portalFiles(origins)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/portal/"
		files.ServeHTTP(w, r2)
	})
}

// serveEmbedded serves one file of the embedded tree, with an ETag of its content so that a browser
// revalidating `latest` gets a 304.
func serveEmbedded(w http.ResponseWriter, r *http.Request, name, contentType, cache string) {
	b, err := widget.FS.ReadFile(name)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	sum := sha256.Sum256(b)
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", cache)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", `"`+hex.EncodeToString(sum[:12])+`"`)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}
