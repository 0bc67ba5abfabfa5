package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// defaultGCPercent is serve's garbage collector target. Go's own default (100) had the collector take
// about a fifth of serve's CPU under a stream of accruals (BENCHMARKS.md): each request allocates a few
// tens of kilobytes that die at once, while the live heap stays small (tens of MiB). Letting the heap grow
// to three times the live heap between collections halves the collections for memory a server has.
const defaultGCPercent = 200

// setGCPercent applies --gc-percent unless the operator set GOGC, which Go has applied already.
func setGCPercent(percent int, log *slog.Logger) {
	if v := os.Getenv("GOGC"); v != "" {
		log.Info("GOGC is set: --gc-percent is not applied", "gogc", v)
		return
	}
	debug.SetGCPercent(percent)
}
