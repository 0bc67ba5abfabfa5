// Package sim is the Genesys Cloud emulator and load generator behind `tally sim`: it calls a running
// Tally the way Genesys does (a custom auth action's client-credentials token, Workflow Data Actions on
// conversation end, EventBridge deliveries, Architect lookups with a timeout, retries and a fallback
// path, portal redemptions from two devices at once), keeps a book of every answer, and at the end reads
// the ledger back through the API to check that what was acknowledged is exactly what the ledger holds.
package sim
