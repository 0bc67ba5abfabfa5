package tally_test

import (
	"fmt"
	"testing"

	"github.com/tally-ledger/tally"
)

// An incrementally updated tree has the root a tree built afresh from the same heads has, and any
// change of any head changes the root.
func TestHeadTreeIncremental(t *testing.T) {
	inc := tally.NewHeadTree()
	heads := map[string]tally.Head{}
	for i := 0; i < 2000; i++ {
		id := fmt.Sprintf("%064x", i%700)
		h := tally.Head{AccountID: id, Version: int64(i), Hash: fmt.Sprintf("h%d", i), Balance: int64(i * 3)}
		heads[id] = h
		inc.Put(h)
		if i%97 == 0 {
			inc.Root()
		}
	}
	fresh := tally.NewHeadTree()
	var txs int64
	for _, h := range heads {
		fresh.Put(h)
		txs += h.Version
	}
	root := inc.Root()
	if root != fresh.Root() || inc.Accounts() != 700 || inc.Transactions() != txs || fresh.Transactions() != txs {
		t.Fatalf("incremental %s/%d/%d, fresh %s/%d/%d", root, inc.Accounts(), inc.Transactions(), fresh.Root(), fresh.Accounts(), fresh.Transactions())
	}
	some := heads[fmt.Sprintf("%064x", 5)]
	for _, change := range []func(h *tally.Head){
		func(h *tally.Head) { h.Version++ },
		func(h *tally.Head) { h.Hash += "x" },
		func(h *tally.Head) { h.Balance-- },
	} {
		h := some
		change(&h)
		fresh.Put(h)
		if fresh.Root() == root {
			t.Fatalf("changing %+v left the root unchanged", h)
		}
		fresh.Put(some)
		if fresh.Root() != root {
			t.Fatal("restoring the head did not restore the root")
		}
	}
}

func TestCheckpointSignature(t *testing.T) {
	k, other := tally.RandomLedgerKey(), tally.RandomLedgerKey()
	c := tally.Checkpoint{No: 3, MaxSeq: 10, Transactions: 9, Accounts: 2, Root: "ab"}
	k.SignCheckpoint(&c)
	if !k.VerifyCheckpoint(c) || other.VerifyCheckpoint(c) {
		t.Fatal("a checkpoint verifies only under its own key")
	}
	for _, forge := range []func(c *tally.Checkpoint){
		func(c *tally.Checkpoint) { c.No++ },
		func(c *tally.Checkpoint) { c.MaxSeq++ },
		func(c *tally.Checkpoint) { c.Transactions++ },
		func(c *tally.Checkpoint) { c.Accounts++ },
		func(c *tally.Checkpoint) { c.Root = "ac" },
		func(c *tally.Checkpoint) { c.CreatedAt = c.CreatedAt.Add(1000) },
		func(c *tally.Checkpoint) { c.KeyID = other.KeyID() },
		func(c *tally.Checkpoint) { // another first character (a signature may begin with x: 1 run in 64)
			first := "x"
			if c.Signature[0] == 'x' {
				first = "y"
			}
			c.Signature = first + c.Signature[1:]
		},
	} {
		f := c
		forge(&f)
		if k.VerifyCheckpoint(f) {
			t.Fatalf("a changed checkpoint %+v still verifies", f)
		}
	}
}

// The keyed chain: a seal binds its boundary to the key; hashes past it need the key.
func TestChainSealAndKeyedHash(t *testing.T) {
	k, other := tally.RandomLedgerKey(), tally.RandomLedgerKey()
	if _, err := tally.NewChain(k, other.NewChainSeal(5)); err == nil {
		t.Fatal("a seal made under another key was accepted")
	}
	forged := k.NewChainSeal(5)
	forged.V1Through = 50
	if _, err := tally.NewChain(k, forged); err == nil {
		t.Fatal("a seal with a moved boundary was accepted")
	}
	if s, err := tally.DecodeChainSeal(k.NewChainSeal(5).Encode()); err != nil || s != k.NewChainSeal(5) {
		t.Fatalf("seal round trip: %+v %v", s, err)
	}
	c, err := tally.NewChain(k, k.NewChainSeal(5))
	if err != nil {
		t.Fatal(err)
	}
	oc, _ := tally.NewChain(other, other.NewChainSeal(5))
	old := tally.Transaction{Seq: 5, Kind: tally.KindAccrual, AccountID: "a", Amount: 1}
	newer := tally.Transaction{Seq: 6, Kind: tally.KindAccrual, AccountID: "a", Amount: 1}
	v1, _ := tally.ChainHash("", &old)
	if h, _ := c.Hash("", &old); h != v1 {
		t.Fatal("a transaction within the seal is not hashed v1")
	}
	h, _ := c.Hash(v1, &newer)
	plain, _ := tally.ChainHash(v1, &newer)
	forgedHash, _ := oc.Hash(v1, &newer)
	if h == plain || h == forgedHash {
		t.Fatal("a transaction past the seal is not keyed by the ledger key")
	}
}
