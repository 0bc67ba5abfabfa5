package bench

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var (
	//go:embed pgbench/accrual.sql
	accrualScript []byte
	//go:embed pgbench/redemption.sql
	redemptionScript []byte
	//go:embed pgbench/schema.sql
	pgbenchSchema string
)

// PgbenchConfig is a pgbench run of accrual.sql: the floor that one accrual per transaction gives.
type PgbenchConfig struct {
	DB       string // postgres:// URL of the database to create schemas in
	Binary   string // pgbench; "" finds it in PATH or /usr/lib/postgresql/*/bin
	Clients  []int
	Duration time.Duration
	Accounts int
	Hot      bool   // every client on account 1
	Mode     string // pgbench -M: simple, extended or prepared
	WatchCPU bool   // measure the CPU time of pgbench and of its backends (from /proc)
	Script   string // "accrual" (default) or "redemption": whose row work each transaction does
}

// PgbenchRun is pgbench's report for one client count.
type PgbenchRun struct {
	Clients      int
	TPS          float64
	Transactions int
	Failed       int
	LatencyAvg   time.Duration
	CPU          *CPU // nil when not measured; Client is pgbench's own time
}

// Pgbench runs pgbench once per client count, each time on fresh tables in a fresh schema.
func Pgbench(ctx context.Context, cfg PgbenchConfig) ([]PgbenchRun, error) {
	if !strings.HasPrefix(cfg.DB, "postgres://") && !strings.HasPrefix(cfg.DB, "postgresql://") {
		return nil, fmt.Errorf("pgbench needs a postgres:// database URL")
	}
	bin, err := pgbenchBinary(cfg.Binary)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tally-pgbench-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	body := accrualScript
	switch cfg.Script {
	case "", "accrual":
	case "redemption":
		body = redemptionScript
	default:
		return nil, fmt.Errorf("pgbench script must be accrual or redemption, not %q", cfg.Script)
	}
	script := filepath.Join(dir, "work.sql")
	if err := os.WriteFile(script, body, 0o600); err != nil {
		return nil, err
	}
	var runs []PgbenchRun
	for _, c := range cfg.Clients {
		r, err := pgbenchLevel(ctx, cfg, bin, script, c)
		if err != nil {
			return runs, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

func pgbenchLevel(ctx context.Context, cfg PgbenchConfig, bin, script string, clients int) (_ PgbenchRun, err error) {
	fresh, err := NewFresh(ctx, cfg.DB)
	if err != nil {
		return PgbenchRun{}, err
	}
	defer func() {
		if derr := fresh.Drop(context.WithoutCancel(ctx)); err == nil {
			err = derr
		}
	}()
	err = pgExec(ctx, fresh.URL, pgbenchSchema,
		fmt.Sprintf("INSERT INTO acct (id) SELECT g FROM generate_series(1, %d) AS g", cfg.Accounts),
		"VACUUM ANALYZE acct")
	if err != nil {
		return PgbenchRun{}, fmt.Errorf("pgbench tables: %w", err)
	}
	accounts := cfg.Accounts
	if cfg.Hot {
		accounts = 1
	}
	args, env, err := pgbenchArgs(cfg.DB, fresh.Schema)
	if err != nil {
		return PgbenchRun{}, err
	}
	args = append(args, "-n", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(2, clients)),
		"-T", strconv.Itoa(int(cfg.Duration.Round(time.Second)/time.Second)),
		"-D", "accounts="+strconv.Itoa(accounts), "-f", script)
	if cfg.Mode != "" {
		args = append(args, "-M", cfg.Mode)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	var w *cpuWatch
	if cfg.WatchCPU {
		if w, err = watchCPU(ctx, 0, fresh.URL); err != nil {
			return PgbenchRun{}, err
		}
	}
	if err := cmd.Run(); err != nil {
		if w != nil {
			w.end(ctx, 0)
		}
		return PgbenchRun{}, fmt.Errorf("pgbench -c %d: %v: %s", clients, err, lastLine(stderr.String()))
	}
	r, err := ParsePgbench(out.String())
	if w != nil {
		c := w.end(ctx, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		r.CPU = &c
	}
	if err != nil {
		return PgbenchRun{}, err
	}
	r.Clients = clients
	return r, nil
}

// pgbenchArgs turns a database URL into pgbench's connection flags, and the environment that carries
// the password, TLS mode and search_path.
func pgbenchArgs(dbURL, schema string) (args, env []string, err error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return nil, nil, fmt.Errorf("database URL: %w", err)
	}
	if h := u.Hostname(); h != "" {
		args = append(args, "-h", h)
	}
	if p := u.Port(); p != "" {
		args = append(args, "-p", p)
	}
	if n := u.User.Username(); n != "" {
		args = append(args, "-U", n)
	}
	if d := strings.TrimPrefix(u.Path, "/"); d != "" {
		args = append(args, "-d", d)
	}
	if p, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+p)
	}
	if m := u.Query().Get("sslmode"); m != "" {
		env = append(env, "PGSSLMODE="+m)
	}
	env = append(env, "PGOPTIONS=-c search_path="+schema)
	return args, env, nil
}

func pgbenchBinary(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench"); len(m) > 0 {
		return m[len(m)-1], nil
	}
	return "", fmt.Errorf("pgbench not found in PATH or /usr/lib/postgresql/*/bin: install postgresql-client or pass --pgbench")
}

// ParsePgbench reads the summary pgbench prints at the end of a run.
func ParsePgbench(out string) (PgbenchRun, error) {
	var r PgbenchRun
	var haveTPS bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var err error
		switch {
		case strings.HasPrefix(line, "tps = "):
			r.TPS, err = strconv.ParseFloat(firstField(line, "tps = "), 64)
			haveTPS = err == nil
		case strings.HasPrefix(line, "number of transactions actually processed:"):
			r.Transactions, err = strconv.Atoi(firstField(line, "processed:"))
		case strings.HasPrefix(line, "number of failed transactions:"):
			r.Failed, err = strconv.Atoi(firstField(line, "transactions:"))
		case strings.HasPrefix(line, "latency average = "):
			var ms float64
			if ms, err = strconv.ParseFloat(firstField(line, "="), 64); err == nil && strings.HasSuffix(line, " ms") {
				r.LatencyAvg = time.Duration(ms * float64(time.Millisecond))
			}
		}
		if err != nil {
			return r, fmt.Errorf("pgbench output line %q: %v", line, err)
		}
	}
	if !haveTPS {
		return r, fmt.Errorf("pgbench output has no tps line: %q", lastLine(out))
	}
	return r, nil
}

// firstField is the first word after marker in line.
func firstField(line, marker string) string {
	_, rest, _ := strings.Cut(line, marker)
	if f := strings.Fields(rest); len(f) > 0 {
		return f[0]
	}
	return ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
