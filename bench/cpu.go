package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// CPU is the processor time that one run took, from /proc: on a machine shared by the server, the
// database and the load generator a rate alone does not say which of them ran out of CPU, nor how much
// each operation costs.
type CPU struct {
	Server   time.Duration // the server process (Options.ServerPID); 0 when not watched
	Postgres time.Duration // the PostgreSQL backends connected to the watched database
	Client   time.Duration // the load generator (this process, or pgbench)
	Busy     float64       // share of the machine's CPU time busy during the run, every process counted
}

// PerOp divides d by the run's successful operations.
func PerOp(d time.Duration, ops int) time.Duration {
	if ops <= 0 {
		return 0
	}
	return d / time.Duration(ops)
}

// clockTick is the unit of /proc's CPU times (USER_HZ), 100 per second on Linux.
const clockTick = 10 * time.Millisecond

// cpuWatch samples, every sampleEvery while a run lasts, the CPU times of the watched processes. The
// backends are sampled repeatedly because pgbench's backends exit when it ends, before the run's last
// sample: a backend's time is its last sample, so a backend that exits loses at most one interval.
type cpuWatch struct {
	serverPID int
	conn      *pgx.Conn // lists the backends; nil when no database is watched
	stop      chan struct{}
	done      chan struct{}

	mu      sync.Mutex
	first   map[int]time.Duration // backend pid -> CPU time when first seen
	last    map[int]time.Duration
	server0 time.Duration
	self0   time.Duration
	busy0   [2]int64 // busy, total ticks of the machine
	started bool     // the first sample is taken: backends seen later are new
}

const sampleEvery = 250 * time.Millisecond

// watchCPU starts watching serverPID (0: none) and the backends of the database pgURL ("": none).
func watchCPU(ctx context.Context, serverPID int, pgURL string) (*cpuWatch, error) {
	w := &cpuWatch{serverPID: serverPID, stop: make(chan struct{}), done: make(chan struct{}),
		first: map[int]time.Duration{}, last: map[int]time.Duration{}}
	if pgURL != "" {
		conn, err := pgx.Connect(ctx, plainURL(pgURL))
		if err != nil {
			return nil, fmt.Errorf("watch PostgreSQL backends: %w", err)
		}
		w.conn = conn
	}
	if serverPID > 0 {
		t, err := procCPU(serverPID)
		if err != nil {
			w.close(ctx)
			return nil, fmt.Errorf("watch server process %d: %w", serverPID, err)
		}
		w.server0 = t
	}
	w.self0, _ = procCPU(os.Getpid())
	w.busy0 = machineTicks()
	w.sample(ctx)
	go w.loop(ctx)
	return w, nil
}

func (w *cpuWatch) loop(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			w.sample(ctx)
		}
	}
}

// sample records the CPU time of every backend of the database.
func (w *cpuWatch) sample(ctx context.Context) {
	if w.conn == nil {
		return
	}
	rows, err := w.conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		return // the next sample tries again
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	defer func() { w.started = true }()
	for _, pid := range pids {
		t, err := procCPU(int(pid))
		if err != nil {
			continue // exited meanwhile
		}
		if _, ok := w.first[int(pid)]; !ok {
			// A backend that connected during the run did all its work during it.
			w.first[int(pid)] = 0
			if !w.started {
				w.first[int(pid)] = t
			}
		}
		w.last[int(pid)] = t
	}
}

// end stops the watch and returns what the run took. client, when positive, replaces this process's
// time (pgbench runs as a child process).
func (w *cpuWatch) end(ctx context.Context, client time.Duration) CPU {
	close(w.stop)
	<-w.done      // the loop no longer uses the connection
	w.sample(ctx) // the backends' last figures
	var c CPU
	if w.serverPID > 0 {
		if t, err := procCPU(w.serverPID); err == nil {
			c.Server = t - w.server0
		}
	}
	if client > 0 {
		c.Client = client
	} else if t, err := procCPU(os.Getpid()); err == nil {
		c.Client = t - w.self0
	}
	w.mu.Lock()
	for pid, t := range w.last {
		c.Postgres += t - w.first[pid]
	}
	w.mu.Unlock()
	b := machineTicks()
	if total := b[1] - w.busy0[1]; total > 0 {
		c.Busy = float64(b[0]-w.busy0[0]) / float64(total)
	}
	w.close(ctx)
	return c
}

func (w *cpuWatch) close(ctx context.Context) {
	if w.conn != nil {
		_ = w.conn.Close(context.WithoutCancel(ctx))
	}
}

// procCPU is the user and system time of a process so far (fields 14 and 15 of /proc/PID/stat).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count fields after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// machineTicks returns the busy and total CPU ticks of the machine so far (first line of /proc/stat);
// idle and iowait count as not busy. Zeros when /proc/stat cannot be read.
func machineTicks() [2]int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return [2]int64{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return [2]int64{}
	}
	var total, idle int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest times are already counted in user and nice
			break
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return [2]int64{total - idle, total}
}
