package spool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally/spool"
	"github.com/tally-ledger/tally/spool/natstest"
)

// backend opens spools of one kind for the suite. open opens a new, empty spool; reopen opens again the
// spool that open (or the last reopen) opened, after the test closed it, as a restarted process would.
type backend struct {
	name   string
	open   func(t *testing.T, limit int64, workers int) spool.Spool
	reopen func(t *testing.T) spool.Spool
}

func fileBackend() backend {
	var path string
	var limit int64
	var workers int
	return backend{
		name: "file",
		open: func(t *testing.T, l int64, w int) spool.Spool {
			path, limit, workers = filepath.Join(t.TempDir(), "tally.spool"), l, w
			return mustOpenFile(t, path, spool.FileOptions{MaxBytes: limit, Workers: workers})
		},
		reopen: func(t *testing.T) spool.Spool {
			return mustOpenFile(t, path, spool.FileOptions{MaxBytes: limit, Workers: workers})
		},
	}
}

func jetStreamBackend() backend {
	var opts spool.JetStreamOptions
	return backend{
		name: "jetstream",
		open: func(t *testing.T, limit int64, workers int) spool.Spool {
			// The stream's limit is in messages: byte sizes differ from the file's framing.
			opts = spool.JetStreamOptions{Stream: natstest.Stream(t), Workers: workers}
			if limit > 0 {
				opts.MaxMsgs = limit / 100
			}
			return natstest.Open(t, opts)
		},
		reopen: func(t *testing.T) spool.Spool { return natstest.Open(t, opts) },
	}
}

func mustOpenFile(t *testing.T, path string, opts spool.FileOptions) *spool.File {
	t.Helper()
	s, err := spool.OpenFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSpool runs the same suite against both backends.
func TestSpool(t *testing.T) {
	for _, b := range []func() backend{fileBackend, jetStreamBackend} {
		be := b()
		t.Run(be.name, func(t *testing.T) {
			if be.name == "jetstream" {
				natstest.URL(t)
			}
			t.Run("ReplayInArrivalOrder", func(t *testing.T) { testReplayInOrder(t, b()) })
			t.Run("ReplayStopsAtFirstFailureAndResumes", func(t *testing.T) { testStopAndResume(t, b()) })
			t.Run("Reopen", func(t *testing.T) { testReopen(t, b()) })
			t.Run("ConcurrentAppends", func(t *testing.T) { testConcurrentAppends(t, b()) })
			t.Run("Full", func(t *testing.T) { testFull(t, b()) })
			t.Run("PerCustomerOrderWithWorkers", func(t *testing.T) { testPerCustomerOrder(t, b()) })
		})
	}
}

func entry(customer string, i int) spool.Entry {
	return spool.Entry{
		Body:     fmt.Appendf(nil, `{"id":"ev-%s-%d","user_id":%q}`, customer, i, customer),
		Customer: customer, Client: "client-1",
		Received: time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC),
	}
}

func mustAppend(t *testing.T, s spool.Spool, e spool.Entry) {
	t.Helper()
	if err := s.Append(context.Background(), e); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// replayAll replays s, returning what apply saw.
func replayAll(t *testing.T, s spool.Spool) []spool.Entry {
	t.Helper()
	var mu sync.Mutex
	var got []spool.Entry
	if err := s.Replay(context.Background(), func(e spool.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return got
}

func depth(t *testing.T, s spool.Spool) int64 {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Depth
}

func bodies(es []spool.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Body))
	}
	return out
}

func testReplayInOrder(t *testing.T, b backend) {
	s := b.open(t, 0, 1)
	if st, err := s.Stats(context.Background()); err != nil || st.Depth != 0 || !st.Oldest.IsZero() {
		t.Fatalf("empty spool: Stats = %+v, %v", st, err)
	}
	var want []spool.Entry
	for i := range 5 {
		e := entry("c"+fmt.Sprint(i%2), i)
		mustAppend(t, s, e)
		want = append(want, e)
	}
	st, err := s.Stats(context.Background())
	if err != nil || st.Depth != 5 || st.Oldest.IsZero() {
		t.Fatalf("Stats = %+v, %v; want depth 5 and an oldest time", st, err)
	}
	got := replayAll(t, s)
	if fmt.Sprint(bodies(got)) != fmt.Sprint(bodies(want)) {
		t.Fatalf("replayed %q, want %q", bodies(got), bodies(want))
	}
	for i := range got {
		if got[i].Customer != want[i].Customer || got[i].Client != want[i].Client || !got[i].Received.Equal(want[i].Received) {
			t.Fatalf("entry %d came back as %+v, want %+v", i, got[i], want[i])
		}
	}
	if d := depth(t, s); d != 0 {
		t.Fatalf("depth after replay = %d, want 0", d)
	}
	if again := replayAll(t, s); len(again) != 0 {
		t.Fatalf("a second replay handed over %d entries", len(again))
	}
	// The spool keeps working after it was emptied (for the file: compacted).
	mustAppend(t, s, entry("c9", 9))
	if got := replayAll(t, s); len(got) != 1 || got[0].Customer != "c9" {
		t.Fatalf("after compaction replayed %q", bodies(got))
	}
}

func testStopAndResume(t *testing.T, b backend) {
	s := b.open(t, 0, 1)
	for i := range 6 {
		mustAppend(t, s, entry("c", i))
	}
	failAt := string(entry("c", 3).Body)
	boom := errors.New("store down")
	var seen []string
	err := s.Replay(context.Background(), func(e spool.Entry) error {
		seen = append(seen, string(e.Body))
		if string(e.Body) == failAt {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Replay = %v, want the apply error", err)
	}
	if len(seen) != 4 {
		t.Fatalf("apply saw %d entries, want 4 (it stops at the failure): %q", len(seen), seen)
	}
	if d := depth(t, s); d != 3 {
		t.Fatalf("depth after the failure = %d, want 3", d)
	}
	got := bodies(replayAll(t, s))
	var want []string
	for i := 3; i < 6; i++ {
		want = append(want, string(entry("c", i).Body))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("resumed with %q, want %q", got, want)
	}
}

func testReopen(t *testing.T, b backend) {
	s := b.open(t, 0, 1)
	for i := range 4 {
		mustAppend(t, s, entry("c", i))
	}
	stop := errors.New("stop")
	n := 0
	_ = s.Replay(context.Background(), func(spool.Entry) error {
		if n == 2 {
			return stop
		}
		n++
		return nil
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(context.Background(), entry("c", 99)); err == nil {
		t.Fatal("Append on a closed spool succeeded")
	}
	s = b.reopen(t)
	if d := depth(t, s); d != 2 {
		t.Fatalf("depth after reopening = %d, want 2", d)
	}
	mustAppend(t, s, entry("c", 4))
	got := bodies(replayAll(t, s))
	want := []string{string(entry("c", 2).Body), string(entry("c", 3).Body), string(entry("c", 4).Body)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reopening replayed %q, want %q", got, want)
	}
}

func testConcurrentAppends(t *testing.T, b backend) {
	s := b.open(t, 0, 1)
	const writers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.Append(context.Background(), entry(fmt.Sprint("w", w), i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	if d := depth(t, s); d != writers*each {
		t.Fatalf("depth = %d, want %d", d, writers*each)
	}
	got := replayAll(t, s)
	seen := map[string]bool{}
	next := map[string]int{}
	for _, e := range got {
		if seen[string(e.Body)] {
			t.Fatalf("replayed %s twice", e.Body)
		}
		seen[string(e.Body)] = true
		// Each writer appended in order, so its entries replay in order.
		if want := string(entry(e.Customer, next[e.Customer]).Body); string(e.Body) != want {
			t.Fatalf("writer %s: replayed %s, want %s", e.Customer, e.Body, want)
		}
		next[e.Customer]++
	}
	if len(seen) != writers*each {
		t.Fatalf("replayed %d entries, want %d", len(seen), writers*each)
	}
}

func testFull(t *testing.T, b backend) {
	// The file's framed entry is about 150 bytes; the JetStream backend takes limit/100 messages.
	s := b.open(t, 500, 1)
	var kept int
	var err error
	for i := range 20 {
		if err = s.Append(context.Background(), entry("c", i)); err != nil {
			break
		}
		kept++
	}
	if !errors.Is(err, spool.ErrFull) {
		t.Fatalf("Append past the limit = %v, want ErrFull", err)
	}
	if kept == 0 || kept >= 20 {
		t.Fatalf("kept %d entries before ErrFull", kept)
	}
	if got := replayAll(t, s); len(got) != kept {
		t.Fatalf("replayed %d entries, want the %d kept", len(got), kept)
	}
	// A replayed spool has room again.
	mustAppend(t, s, entry("c", 100))
}

func testPerCustomerOrder(t *testing.T, b backend) {
	s := b.open(t, 0, 4)
	customers := []string{"a", "b", "c", "d", "e", "f", "g"}
	for i := range 70 {
		mustAppend(t, s, entry(customers[i%len(customers)], i/len(customers)))
	}
	var mu sync.Mutex
	next := map[string]int{}
	fail := true
	apply := func(e spool.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		if e.Customer == "c" && next["c"] == 5 && fail {
			fail = false
			return errors.New("transient")
		}
		if want := string(entry(e.Customer, next[e.Customer]).Body); string(e.Body) != want {
			return fmt.Errorf("customer %s: got %s before %s", e.Customer, e.Body, want)
		}
		next[e.Customer]++
		return nil
	}
	if err := s.Replay(context.Background(), apply); err == nil {
		t.Fatal("Replay hid the apply failure")
	}
	// Entries of other customers past the failure may have been applied; they may come back (apply is
	// idempotent): a customer's first entry in the resumed replay may be one already applied, never one
	// past an entry not applied.
	first := map[string]bool{}
	resume := func(e spool.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		if !first[e.Customer] {
			first[e.Customer] = true
			var i int
			fmt.Sscanf(string(e.Body), `{"id":"ev-`+e.Customer+`-%d"`, &i)
			if i > next[e.Customer] {
				return fmt.Errorf("customer %s: resumed at %d, past %d", e.Customer, i, next[e.Customer])
			}
			next[e.Customer] = i
		}
		if want := string(entry(e.Customer, next[e.Customer]).Body); string(e.Body) != want {
			return fmt.Errorf("customer %s: got %s, want %s", e.Customer, e.Body, want)
		}
		next[e.Customer]++
		return nil
	}
	if err := s.Replay(context.Background(), resume); err != nil {
		t.Fatalf("resumed Replay: %v", err)
	}
	for _, c := range customers {
		if next[c] != 10 {
			t.Fatalf("customer %s: replay ended at entry %d, want 10", c, next[c])
		}
	}
	if d := depth(t, s); d != 0 {
		t.Fatalf("depth = %d after the replay", d)
	}
}

// TestFileTornTail cuts a record written halfway (a crash mid-write) and keeps working.
func TestFileTornTail(t *testing.T) {
	for name, damage := range map[string]func(t *testing.T, path string){
		"HalfRecord": func(t *testing.T, path string) {
			info, _ := os.Stat(path)
			if err := os.Truncate(path, info.Size()-7); err != nil {
				t.Fatal(err)
			}
		},
		"CorruptChecksum": func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			b[len(b)-2] ^= 0xff
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"GarbageAfter": func(t *testing.T, path string) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte{0, 0, 1, 0, 9, 9})
			f.Close()
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tally.spool")
			s := mustOpenFile(t, path, spool.FileOptions{})
			for i := range 3 {
				mustAppend(t, s, entry("c", i))
			}
			s.Close()
			damage(t, path)
			s = mustOpenFile(t, path, spool.FileOptions{})
			want := 2
			if name == "GarbageAfter" {
				want = 3
			}
			if d := depth(t, s); d != int64(want) {
				t.Fatalf("depth after the damage = %d, want %d", d, want)
			}
			mustAppend(t, s, entry("c", 3))
			got := replayAll(t, s)
			if len(got) != want+1 || string(got[want].Body) != string(entry("c", 3).Body) {
				t.Fatalf("replayed %q", bodies(got))
			}
		})
	}
}

// TestFileModeAndCompaction: the spool and its cursor are private to the user, and a fully replayed
// spool is emptied.
func TestFileModeAndCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tally.spool")
	s := mustOpenFile(t, path, spool.FileOptions{})
	mustAppend(t, s, entry("c", 0))
	mustAppend(t, s, entry("c", 1))
	_ = s.Replay(context.Background(), func(e spool.Entry) error {
		if e.Received.Nanosecond() == 1 {
			return errors.New("later")
		}
		return nil
	})
	for _, p := range []string{path, path + ".cursor"} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", p, info.Mode().Perm())
		}
	}
	if info, _ := os.Stat(path); info.Size() == 0 {
		t.Fatal("the spool was emptied while an entry was left")
	}
	replayAll(t, s)
	if info, _ := os.Stat(path); info.Size() != 0 {
		t.Fatalf("a fully replayed spool is %d bytes, want 0", info.Size())
	}
	s.Close()
	s = mustOpenFile(t, path, spool.FileOptions{})
	if got := replayAll(t, s); len(got) != 0 {
		t.Fatalf("after compaction and reopening replayed %q", bodies(got))
	}
}

// TestJetStreamSharedByReplicas: two replicas draining one stream at once apply every entry once, and
// each customer's entries in arrival order.
func TestJetStreamSharedByReplicas(t *testing.T) {
	opts := spool.JetStreamOptions{Stream: natstest.Stream(t), Workers: 3}
	a, b := natstest.Open(t, opts), natstest.Open(t, opts)
	customers := []string{"a", "b", "c", "d", "e"}
	const n = 700 // more than one batch
	for i := range n {
		mustAppend(t, a, entry(customers[i%len(customers)], i/len(customers)))
	}
	var mu sync.Mutex
	next := map[string]int{}
	apply := func(e spool.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		if want := string(entry(e.Customer, next[e.Customer]).Body); string(e.Body) != want {
			t.Errorf("customer %s: applied %s, want %s", e.Customer, e.Body, want)
		}
		next[e.Customer]++
		return nil
	}
	errs := make(chan error, 2)
	for _, s := range []spool.Spool{a, b} {
		go func() {
			var err error
			for range 1000 {
				if err = s.Replay(context.Background(), apply); err != nil {
					break
				}
				if st, serr := s.Stats(context.Background()); serr == nil && st.Depth == 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Replay: %v", err)
		}
	}
	for _, c := range customers {
		if next[c] != n/len(customers) {
			t.Fatalf("customer %s: %d entries applied, want %d", c, next[c], n/len(customers))
		}
	}
}

// TestFileCursorPastTheLog: a cursor naming a log that was emptied (a crash after the file was cut but
// before its cursor was reset) replays everything the file now holds, skipping nothing.
func TestFileCursorPastTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tally.spool")
	s := mustOpenFile(t, path, spool.FileOptions{})
	mustAppend(t, s, entry("c", 0))
	mustAppend(t, s, entry("c", 1))
	s.Close()
	if err := os.WriteFile(path+".cursor", []byte("999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = mustOpenFile(t, path, spool.FileOptions{})
	if got := replayAll(t, s); len(got) != 2 {
		t.Fatalf("replayed %q, want both entries", bodies(got))
	}
}

// TestJetStreamFullByBytes: a stream at its byte limit refuses new entries with ErrFull.
func TestJetStreamFullByBytes(t *testing.T) {
	s := natstest.Open(t, spool.JetStreamOptions{MaxBytes: 1000})
	var err error
	for i := range 50 {
		if err = s.Append(context.Background(), entry("c", i)); err != nil {
			break
		}
	}
	if !errors.Is(err, spool.ErrFull) {
		t.Fatalf("Append past the byte limit = %v, want ErrFull", err)
	}
}
