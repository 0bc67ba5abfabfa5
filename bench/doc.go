// Package bench is Tally's load generator: durable writes through the ledger service, the same row
// work through pgbench as a floor to compare with, and the HTTP API of a running server. Every run is
// bounded by a duration (or a count) and the HTTP driver only targets loopback addresses.
package bench
