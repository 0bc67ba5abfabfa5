//go:build !race

package api_test

// heldOutstanding is the most requests the load generator of TestLoadHeldAtTwiceSaturation keeps open
// at once (and the most connections it opens).
const heldOutstanding = 1024
