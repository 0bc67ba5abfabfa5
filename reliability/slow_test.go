package reliability

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowProxy forwards TCP connections on loopback to a target, holding every chunk for a delay that
// the test sets: a database that answers, but late.
type slowProxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // nanoseconds, each way

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *slowProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(up, c) })
		p.wg.Go(func() { p.pipe(c, up) })
	}
}

// pipe copies src to dst, each chunk after the delay, and closes both when either side ends.
func (p *slowProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			time.Sleep(time.Duration(p.delay.Load()))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *slowProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// architectLimit is how long a Genesys Cloud Data Action waits for an answer before it fails the flow.
const architectLimit = 3 * time.Second

// TestSlowStoreLookupsAnswerInTime puts a proxy between Tally and PostgreSQL that delays every packet
// by more than the lookup and write deadlines: balance lookups still answer inside Architect's 3 s (the
// last-known balance, marked stale, or a prompt 503), never hang; writes answer too, and once the
// store is fast again lookups are fresh.
func TestSlowStoreLookupsAnswerInTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	direct, err := url.Parse(sharedPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, direct.Host)
	slowURL := *direct
	slowURL.Host = proxy.ln.Addr().String()
	d := newDeployment(t, slowURL.String())
	s := d.startServer("tally", "--lookup-deadline", "1s", "--write-deadline", "2s")
	token := d.token(ctx, s)
	c := newClient(t, token, func() []*server { return []*server{s} })
	known := op{Key: "known", Customer: "known-customer", Kind: "accrual", Amount: 500}
	c.send(ctx, known)
	if st, a, err := lookup(ctx, s.base, token, known.Customer); err != nil || st != 200 || a.Balance != 500 || a.Stale {
		t.Fatalf("lookup on a fast store: %d %+v %v", st, a, err)
	}

	proxy.delay.Store(int64(1500 * time.Millisecond)) // a round trip takes 3 s: above both deadlines
	var (
		wg                sync.WaitGroup
		mu                sync.Mutex
		slowest           time.Duration
		stale, unanswered int
	)
	for i := range 40 {
		wg.Go(func() {
			customer := known.Customer
			if i%4 == 3 {
				customer = "never-seen" // nothing cached: a prompt 503 is the honest answer
			}
			start := time.Now()
			st, a, err := lookup(ctx, s.base, token, customer)
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			slowest = max(slowest, took)
			switch {
			case err != nil && !errors.Is(err, io.EOF):
				unanswered++
				t.Errorf("lookup %d: %v after %s", i, err, took)
			case took >= architectLimit:
				t.Errorf("lookup %d answered after %s, beyond Architect's %s", i, took, architectLimit)
			case customer == known.Customer && (st != 200 || !a.Stale || a.Balance != 500):
				t.Errorf("lookup %d of a known customer on a slow store: %d %+v, want the last-known 500 marked stale", i, st, a)
			case customer != known.Customer && st != 503 && st != 200:
				t.Errorf("lookup %d of an unknown customer on a slow store: %d", i, st)
			case a.Stale:
				stale++
			}
		})
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	// A write is answered too, bounded by the write deadline: queued (202) or 503, never a hang.
	start := time.Now()
	status, body, err := postJSON(ctx, s.base, "/v1/ledger/transaction/process", token, op{Key: "slow-accrual", Customer: known.Customer, Kind: "accrual", Amount: 5}.body())
	if err != nil || (status != 202 && status != 503 && status != 201) || time.Since(start) > 10*time.Second {
		t.Errorf("accrual on a slow store: %d %s %v after %s", status, body, err, time.Since(start))
	}
	proxy.delay.Store(0)
	if status == 503 {
		c.send(ctx, op{Key: "slow-accrual", Customer: known.Customer, Kind: "accrual", Amount: 5})
	} else {
		c.mu.Lock()
		c.ops = append(c.ops, op{Key: "slow-accrual", Customer: known.Customer, Kind: "accrual", Amount: 5})
		c.results["slow-accrual"] = map[int]string{201: applied, 202: queued}[status]
		c.mu.Unlock()
	}
	checkLedger(t, ctx, d, c, s, token, direct.String())
	t.Logf("FIGURE %s: lookups=40 stale_answers=%d unanswered=%d slowest=%s limit=%s", t.Name(), stale, unanswered, slowest.Round(10*time.Millisecond), architectLimit)
}
