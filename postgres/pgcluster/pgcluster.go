// Package pgcluster runs a throwaway PostgreSQL primary, and optionally a synchronous streaming standby,
// on one machine for fault tests: real postmasters made with initdb and pg_basebackup, on free loopback
// ports, that a test can SIGKILL, restart and promote.
//
// The binaries come from TALLY_PG_BIN, else the newest /usr/lib/postgresql/*/bin, else PATH. PostgreSQL
// refuses to run as root, so when the test runs as root the servers run as the user postgres and their
// directories belong to it. Without the binaries a test skips, except in CI (CI=true), where it fails.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvBin names the environment variable that may point at the directory holding initdb and postgres.
const EnvBin = "TALLY_PG_BIN"

// Database is the database every cluster holds for the test, besides postgres.
const Database = "tally"

// Bounds on the slow steps, so that a broken machine fails a test instead of hanging it.
const (
	commandTimeout = 2 * time.Minute
	readyTimeout   = time.Minute
	stopTimeout    = 30 * time.Second
)

// Options choose what New builds.
type Options struct {
	// Standby adds a streaming standby made with pg_basebackup; the primary waits for it to confirm
	// every commit (synchronous_standby_names = '*').
	Standby bool
	// Settings are extra postgresql.conf lines for every node ("name = value").
	Settings []string
}

// Cluster is a primary and, when asked, its standby.
type Cluster struct {
	Primary *Node
	Standby *Node // nil without Options.Standby

	bin  string
	dir  string
	cred *syscall.Credential // nil when not running as root
}

// Node is one postmaster: its data directory, its port and, while it runs, its process.
type Node struct {
	Name string
	Port int

	c       *Cluster
	dataDir string
	logPath string
	extra   []string // command-line settings of this node

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// New builds and starts a cluster that is stopped and removed when the test ends. It returns once the
// primary accepts connections, the database Database exists and, with a standby, the standby streams
// synchronously.
func New(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	bin, err := findBin()
	if err != nil {
		unavailable(tb, err.Error())
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		if c.cred, err = postgresUser(); err != nil {
			unavailable(tb, err.Error())
		}
	}
	// Not t.TempDir: its parents are private to root, and the postgres user must reach the data.
	if c.dir, err = os.MkdirTemp("", "pgcluster-"); err != nil {
		tb.Fatalf("pgcluster: %v", err)
	}
	tb.Cleanup(func() { c.cleanup(tb) })
	if err := c.own(c.dir); err != nil {
		tb.Fatalf("pgcluster: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*commandTimeout)
	defer cancel()
	if c.Primary, err = c.initPrimary(ctx, opts.Settings); err != nil {
		tb.Fatalf("pgcluster: primary: %v", err)
	}
	if opts.Standby {
		if c.Standby, err = c.initStandby(ctx); err != nil {
			tb.Fatalf("pgcluster: standby: %v", err)
		}
		if err := c.waitSync(ctx); err != nil {
			tb.Fatalf("pgcluster: %v", err)
		}
	}
	return c
}

// URL is a connection URL for the database Database on every node, primary first, that only a
// read-write server satisfies: the form Tally's --db takes for failover.
func (c *Cluster) URL() string {
	hosts := []string{fmt.Sprintf("127.0.0.1:%d", c.Primary.Port)}
	if c.Standby != nil {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", c.Standby.Port))
	}
	return "postgres://postgres@" + strings.Join(hosts, ",") + "/" + Database + "?sslmode=disable&target_session_attrs=read-write"
}

// URL is a connection URL for the database Database on this node alone.
func (n *Node) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", n.Port, Database)
}

// Addr is the node's host:port.
func (n *Node) Addr() string { return fmt.Sprintf("127.0.0.1:%d", n.Port) }

// Log returns what the node's postmaster has logged so far.
func (n *Node) Log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

func (c *Cluster) initPrimary(ctx context.Context, settings []string) (*Node, error) {
	n, err := c.newNode("primary")
	if err != nil {
		return nil, err
	}
	if err := c.run(ctx, "initdb", "-D", n.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"); err != nil {
		return nil, err
	}
	conf := append([]string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = ''",
		"wal_level = replica",
		"max_wal_senders = 4",
		"max_connections = 100",
		"shared_buffers = 32MB",
		"wal_keep_size = 64MB",
		"logging_collector = off",
	}, settings...)
	if err := appendFile(filepath.Join(n.dataDir, "postgresql.conf"), strings.Join(conf, "\n")+"\n"); err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	if err := n.exec(ctx, "postgres", "CREATE DATABASE "+Database); err != nil {
		return nil, err
	}
	return n, nil
}

func (c *Cluster) initStandby(ctx context.Context) (*Node, error) {
	n, err := c.newNode("standby")
	if err != nil {
		return nil, err
	}
	// -R writes standby.signal and primary_conninfo; the copy of the primary's configuration is the
	// standby's, except that a standby (and the primary it becomes) waits for no standby of its own.
	if err := c.run(ctx, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Primary.Port), "-U", "postgres",
		"-D", n.dataDir, "-R", "-X", "stream", "-c", "fast"); err != nil {
		return nil, err
	}
	n.extra = []string{"-c", "synchronous_standby_names=", "-c", "hot_standby=on", "-c", "hot_standby_feedback=on"}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	// Only now that a standby streams may the primary wait for one: set earlier, CREATE DATABASE and
	// pg_basebackup's own checkpoint would wait for a standby that does not exist yet.
	if err := c.Primary.exec(ctx, "postgres", `ALTER SYSTEM SET synchronous_standby_names = '*'`); err != nil {
		return nil, err
	}
	if err := c.Primary.exec(ctx, "postgres", `SELECT pg_reload_conf()`); err != nil {
		return nil, err
	}
	return n, nil
}

// waitSync waits until the primary reports a synchronous standby streaming.
func (c *Cluster) waitSync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		var n int
		err := c.Primary.queryRow(ctx, "postgres", `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'sync'`, &n)
		if err == nil && n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the standby did not become synchronous within %s (last error %v)", readyTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) newNode(name string) (*Node, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &Node{Name: name, Port: port, c: c, dataDir: filepath.Join(c.dir, name), logPath: filepath.Join(c.dir, name+".log")}
	if err := os.Mkdir(n.dataDir, 0o700); err != nil {
		return nil, err
	}
	if err := c.own(n.dataDir); err != nil {
		return nil, err
	}
	return n, nil
}

// Start starts the node's postmaster and waits until it accepts connections (a standby: read-only ones).
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.cmd != nil {
		n.mu.Unlock()
		return fmt.Errorf("%s is already running", n.Name)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	args := append([]string{"-D", n.dataDir, "-p", strconv.Itoa(n.Port)}, n.extra...)
	cmd := exec.Command(filepath.Join(n.c.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that Kill reaches the postmaster and every backend at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: n.c.cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.mu.Unlock()
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	return n.waitReady(ctx)
}

func (n *Node) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		var one int
		err := n.queryRow(ctx, "postgres", `SELECT 1`, &one)
		if err == nil {
			return nil
		}
		n.mu.Lock()
		done := n.done
		n.mu.Unlock()
		select {
		case <-done:
			return fmt.Errorf("%s exited while starting:\n%s", n.Name, tail(n.Log(), 2000))
		case <-ctx.Done():
			return fmt.Errorf("%s did not accept connections within %s (last error %v):\n%s", n.Name, readyTimeout, err, tail(n.Log(), 2000))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL to the postmaster and every process of its group (its backends, WAL writer,
// walsenders...), as a machine that loses power does to the server, and waits until they are gone.
// Killing a node that is not running does nothing.
func (n *Node) Kill() error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-done
	// The backends are not our children; they are gone when no process of the group is left. A
	// postmaster restarted while one still holds the old shared memory refuses to start.
	deadline := time.Now().Add(stopTimeout)
	for groupAlive(pgid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of %s's group %d survived SIGKILL for %s", n.Name, pgid, stopTimeout)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Stop shuts the node down cleanly (fast shutdown: sessions are ended, nothing committed is lost), and
// kills it if it has not stopped within 30 s.
func (n *Node) Stop() error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
		n.mu.Lock()
		n.cmd = nil
		n.mu.Unlock()
		return nil
	case <-time.After(stopTimeout):
		return n.Kill()
	}
}

// Restart kills the node and starts it again: crash recovery from its WAL.
func (n *Node) Restart(ctx context.Context) error {
	if err := n.Kill(); err != nil {
		return err
	}
	return n.Start(ctx)
}

// Running reports whether the node's postmaster runs.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Promote turns a standby into a primary (pg_ctl promote) and waits until it accepts writes.
func (n *Node) Promote(ctx context.Context) error {
	if err := n.c.run(ctx, "pg_ctl", "promote", "-D", n.dataDir, "-w", "-t", "60"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		var inRecovery bool
		err := n.queryRow(ctx, "postgres", `SELECT pg_is_in_recovery()`, &inRecovery)
		if err == nil && !inRecovery {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still in recovery %s after pg_ctl promote (last error %v)", n.Name, readyTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Exec runs one statement on the node's database Database.
func (n *Node) Exec(ctx context.Context, sql string) error { return n.exec(ctx, Database, sql) }

func (n *Node) exec(ctx context.Context, db, sql string) error {
	conn, err := n.connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func (n *Node) queryRow(ctx context.Context, db, sql string, dest ...any) error {
	conn, err := n.connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

func (n *Node) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", n.Port, db))
}

// run runs a PostgreSQL program as the servers' user.
func (c *Cluster) run(ctx context.Context, program string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, program), args...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", program, strings.Join(args, " "), err, tail(string(out), 2000))
	}
	return nil
}

// cleanup stops every node and removes the directory.
func (c *Cluster) cleanup(tb testing.TB) {
	for _, n := range []*Node{c.Primary, c.Standby} {
		if n == nil {
			continue
		}
		if err := n.Kill(); err != nil {
			tb.Errorf("pgcluster: %v", err)
		}
		if tb.Failed() {
			tb.Logf("pgcluster: %s log:\n%s", n.Name, tail(n.Log(), 4000))
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		tb.Errorf("pgcluster: %v", err)
	}
}

// own gives path to the servers' user.
func (c *Cluster) own(path string) error {
	if c.cred == nil {
		return nil
	}
	return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the user postgres to run PostgreSQL: %v", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// findBin finds the directory holding initdb, postgres, pg_basebackup and pg_ctl.
func findBin() (string, error) {
	var candidates []string
	if d := os.Getenv(EnvBin); d != "" {
		candidates = append(candidates, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	candidates = append(candidates, dirs...)
	if p, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, d := range candidates {
		ok := true
		for _, p := range []string{"initdb", "postgres", "pg_basebackup", "pg_ctl"} {
			if _, err := os.Stat(filepath.Join(d, p)); err != nil {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb, postgres, pg_basebackup, pg_ctl) in $%s, /usr/lib/postgresql/*/bin or PATH", EnvBin)
}

// version is the major version in /usr/lib/postgresql/VERSION/bin.
func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// groupAlive reports whether any live process of the group exists. A zombie does not count: it holds
// no shared memory, and whether anyone reaps it (init in a container may not) is not the test's concern.
func groupAlive(pgid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			return true
		}
	}
	return false
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// unavailable fails the test in CI and skips it elsewhere.
func unavailable(tb testing.TB, why string) {
	tb.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		tb.Fatalf("pgcluster: PostgreSQL fault tests must run in CI: %s", why)
	}
	tb.Skipf("pgcluster: skipping: %s", why)
}
