//go:build race

package api_test

// heldOutstanding is smaller under the race detector, which allows at most 8,128 live goroutines: each
// open request holds a few (the sender, the client connection's two, the server's).
const heldOutstanding = 512
