package tally

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"sort"
	"strconv"
	"time"
)

// Head is the newest state of one customer account: how many transactions its chain holds (its
// balance_version), the newest hash and the balance after it. A checkpoint commits to every account's head.
type Head struct {
	AccountID string `json:"account_id"`
	Version   int64  `json:"version"`
	Hash      string `json:"hash"`
	Balance   int64  `json:"balance"`
}

// Checkpoint is a signed digest of the whole ledger head, in the manner of Certificate Transparency's
// signed tree heads: kept outside the database (an append-only file, the log), it lets an audit prove
// later that the ledger still holds everything the checkpoint covered, even against someone who can
// rewrite the database but does not hold the ledger key.
//
// Root commits to every customer account's Head (see HeadTree). The heads themselves are recorded in the
// database at each checkpoint that saw them change, so that an audit can name the account that differs;
// the signed root authenticates those records.
type Checkpoint struct {
	No           int64     `json:"no"`
	CreatedAt    time.Time `json:"created_at"`
	MaxSeq       int64     `json:"max_seq"`      // the highest transaction number committed
	Transactions int64     `json:"transactions"` // customer transactions covered: the sum of every head's version
	Accounts     int64     `json:"accounts"`     // customer accounts covered
	Root         string    `json:"root"`         // HeadTree root, hex
	KeyID        string    `json:"key_id"`       // LedgerKey.KeyID of the signer
	Signature    string    `json:"signature"`    // Ed25519 over SignedBytes, base64
}

// SignedBytes is what the signature covers: every field but the signature, in a fixed order.
func (c *Checkpoint) SignedBytes() []byte {
	b := make([]byte, 0, 256)
	b = append(b, "tally-checkpoint-v1\n"...)
	b = appendField(b, "no", strconv.FormatInt(c.No, 10))
	b = appendField(b, "created_at", strconv.FormatInt(c.CreatedAt.UnixMicro(), 10))
	b = appendField(b, "max_seq", strconv.FormatInt(c.MaxSeq, 10))
	b = appendField(b, "transactions", strconv.FormatInt(c.Transactions, 10))
	b = appendField(b, "accounts", strconv.FormatInt(c.Accounts, 10))
	b = appendField(b, "root", strconv.Quote(c.Root))
	b = appendField(b, "key_id", strconv.Quote(c.KeyID))
	return b
}

// SignCheckpoint fills in the key id and signature of c.
func (k *LedgerKey) SignCheckpoint(c *Checkpoint) {
	c.KeyID = k.KeyID()
	c.Signature = base64.StdEncoding.EncodeToString(k.Sign(c.SignedBytes()))
}

// VerifyCheckpoint reports whether c was signed by this ledger key and is unchanged since.
func (k *LedgerKey) VerifyCheckpoint(c Checkpoint) bool {
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	return err == nil && c.KeyID == k.KeyID() && ed25519.Verify(k.PublicKey(), c.SignedBytes(), sig)
}

// headBuckets is how many buckets HeadTree spreads accounts over.
const headBuckets = 256

// HeadTree is a two-level Merkle tree over account heads: accounts fall into 256 buckets by the first
// byte of SHA-256 of their id; a bucket's hash covers its heads in id order, and the root covers the
// bucket hashes in order. Changing heads re-hashes only their buckets, so that an audit can replay many
// checkpoints, each changing a few accounts, without re-hashing the whole ledger each time.
type HeadTree struct {
	buckets [headBuckets]map[string]Head
	hashes  [headBuckets][32]byte
	dirty   [headBuckets]bool
	fresh   bool // hashes hold something
	txs     int64
	count   int64
}

// NewHeadTree returns an empty tree.
func NewHeadTree() *HeadTree { return &HeadTree{} }

// Put adds or replaces the head of h.AccountID.
func (t *HeadTree) Put(h Head) {
	sum := sha256.Sum256([]byte(h.AccountID))
	i := sum[0]
	if t.buckets[i] == nil {
		t.buckets[i] = map[string]Head{}
	}
	if old, ok := t.buckets[i][h.AccountID]; ok {
		t.txs -= old.Version
	} else {
		t.count++
	}
	t.buckets[i][h.AccountID] = h
	t.txs += h.Version
	t.dirty[i] = true
}

// Get returns the head of an account.
func (t *HeadTree) Get(id string) (Head, bool) {
	sum := sha256.Sum256([]byte(id))
	h, ok := t.buckets[sum[0]][id]
	return h, ok
}

// Accounts is how many heads the tree holds; Transactions the sum of their versions.
func (t *HeadTree) Accounts() int64     { return t.count }
func (t *HeadTree) Transactions() int64 { return t.txs }

// Root returns the hex root over every head.
func (t *HeadTree) Root() string {
	for i := range t.buckets {
		if !t.fresh || t.dirty[i] {
			t.hashes[i] = hashBucket(t.buckets[i])
			t.dirty[i] = false
		}
	}
	t.fresh = true
	h := sha256.New()
	h.Write([]byte("tally-heads-v1\n"))
	for i := range t.hashes {
		h.Write(t.hashes[i][:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashBucket(b map[string]Head) [32]byte {
	ids := make([]string, 0, len(b))
	for id := range b {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	h := sha256.New()
	h.Write([]byte("tally-heads-bucket-v1\n"))
	var line []byte
	for _, id := range ids {
		hd := b[id]
		line = line[:0]
		line = appendField(line, "account", strconv.Quote(hd.AccountID))
		line = appendField(line, "version", strconv.FormatInt(hd.Version, 10))
		line = appendField(line, "hash", strconv.Quote(hd.Hash))
		line = appendField(line, "balance", strconv.FormatInt(hd.Balance, 10))
		h.Write(line)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
