// Package widget holds the front-end assets the binary serves: the LoyaltyWidget (one hand-written
// JavaScript file, no build step) and the portal page that embeds it.
package widget

import "embed"

// FS holds the assets under static/.
//
//go:embed static
var FS embed.FS

// Version is the widget's version, as the integration guide's script URL names it
// (/widget/v2.1.0/bundle.min.js).
const Version = "2.1.0"

// Bundle is the path of the widget's script in FS.
const Bundle = "static/loyalty-widget.js"
