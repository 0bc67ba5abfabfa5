// Package widget holds the front-end assets the binary serves: the redemption portal page.
package widget

import "embed"

// FS holds the assets under static/.
//
//go:embed static
var FS embed.FS
