#!/usr/bin/env bash
# Benchmarks Tally on this machine and prints a summary:
#   1. `tally serve` on a temporary SQLite file and on a fresh PostgreSQL database (tally_bench):
#      HTTP accruals, lookups at a fixed rate, lookups beside accruals; the server's peak RSS;
#   2. the ledger layer (no HTTP) on both stores: accruals, redemptions, one hot customer;
#   3. pgbench doing the row work of one accrual per transaction, run next to the PostgreSQL ledger
#      runs so that their ratio is measured in the same minute.
# Settings (environment): DURATION (10s), PG (postgres://postgres@127.0.0.1:5432, trust auth),
# PORT (18080), CUSTOMERS (10000), RATE (2000), RESULTS (a file in /tmp).
# Run it from anywhere in the repository: bash bench/run.sh [SECTION...], where the sections are
# http-sqlite, http-postgres, ledger-sqlite and ledger-postgres (default: all four, in that order), so
# that a section disturbed by other load on the machine can be measured again alone.
set -euo pipefail

DURATION=${DURATION:-10s}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-18080}
CUSTOMERS=${CUSTOMERS:-10000}
RATE=${RATE:-2000}
RESULTS=${RESULTS:-$(mktemp /tmp/tally-bench-XXXXXX.txt)}
PGDB="$PG/tally_bench?sslmode=disable"
export TALLY_CUSTOMER_SECRET=${TALLY_CUSTOMER_SECRET:-bench-customer-secret-0123456789}
export TALLY_LEDGER_KEY=${TALLY_LEDGER_KEY:-$(go run ./cmd/tally keygen)}

cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/tally-bench-run-XXXXXX)
server=""
cleanup() {
	if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
	psql -q "$PG/postgres" -c 'DROP DATABASE IF EXISTS tally_bench' >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# Progress goes to stderr as it happens; the results file is printed whole at the end.
say() { echo "$@" | tee -a "$RESULTS" >&2; }
load() { say "# $(date -u +%H:%M:%S) load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }
run() { load; "$@" 2>&1 | tee -a "$RESULTS" >&2; say ""; }

echo "building tally" >&2
go build -o "$work/tally" ./cmd/tally
tally="$work/tally"

say "# Tally benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(git describe --always --dirty 2>/dev/null || echo "?")"
say ""

# serve_http STORE DBURL: starts tally serve on DBURL, runs the HTTP benchmarks, records its RSS, stops it.
serve_http() {
	local store=$1 db=$2 client id secret
	client=$("$tally" clients create --db "$db" --name bench --scopes ledger:read,ledger:write --json)
	id=$(echo "$client" | sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p')
	secret=$(echo "$client" | sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p')
	"$tally" serve --db "$db" --addr "127.0.0.1:$PORT" >"$work/serve-$store.out" 2>"$work/serve-$store.log" &
	server=$!
	for _ in $(seq 100); do
		curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$work/serve-$store.log" >&2; exit 1; }
	local common=(--url "http://127.0.0.1:$PORT" --client-id "$id" --client-secret "$secret" --customers "$CUSTOMERS" --duration "$DURATION")
	say "## HTTP, $store"
	# One accrual per customer first, untimed, so that every account exists; then fresh planner
	# statistics, as autovacuum would give a server that has run for a while (plans made while the
	# tables were empty scan them whole).
	"$tally" bench http "${common[@]}" --op warmup
	if [ "$store" = postgres ]; then psql -q "$PGDB" -c ANALYZE; fi
	run "$tally" bench http "${common[@]}" --op accrual --concurrency 16,64 --warmup=false
	if [ "$store" = postgres ]; then # the floor, in the same minute (the server idles meanwhile)
		run "$tally" bench pgbench --db "$PGDB" --accounts "$CUSTOMERS" --duration "$DURATION" --clients 16,64
	fi
	run "$tally" bench http "${common[@]}" --op lookup --rate "$RATE" --warmup=false
	run "$tally" bench http "${common[@]}" --op mixed --rate "$RATE" --concurrency 16,64 --warmup=false
	say "server memory ($store): $(grep -E 'VmHWM|VmRSS' /proc/$server/status | tr -s ' \t' ' ' | paste -sd, -)"
	say ""
	kill "$server"
	wait "$server" || true
	server=""
}

psql -q "$PG/postgres" -c 'DROP DATABASE IF EXISTS tally_bench' -c 'CREATE DATABASE tally_bench'
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(http-sqlite http-postgres ledger-sqlite ledger-postgres)

# The ledger runs on fresh databases beside these (temporary SQLite files, new schemas in tally_bench).
ledger=("$tally" bench ledger --customers "$CUSTOMERS" --duration "$DURATION" --concurrency 1,16,64)
pgbench=("$tally" bench pgbench --db "$PGDB" --accounts "$CUSTOMERS" --duration "$DURATION" --clients 1,16,64)

ledger_sqlite() {
	say "## Ledger layer, SQLite"
	run "${ledger[@]}" --db "sqlite:$work/ledger.db" --op accrual
	run "${ledger[@]}" --db "sqlite:$work/ledger.db" --op redemption
	run "${ledger[@]}" --db "sqlite:$work/ledger.db" --op accrual --hot
}

# pgbench runs before and after the ledger runs, so that drift in the machine's load shows.
ledger_postgres() {
	say "## Ledger layer and pgbench, PostgreSQL"
	run "${pgbench[@]}"
	run "${ledger[@]}" --db "$PGDB" --op accrual
	run "${ledger[@]}" --db "$PGDB" --op redemption
	run "${ledger[@]}" --db "$PGDB" --op accrual --workers 4 # serve uses 2; more workers make smaller batches
	run "${pgbench[@]}"
	run "${pgbench[@]}" --hot
	run "${ledger[@]}" --db "$PGDB" --op accrual --hot
	run "${ledger[@]}" --db "$PGDB" --op accrual --hot --workers 1
}

for s in "${sections[@]}"; do
	case $s in
	http-sqlite) serve_http sqlite "sqlite:$work/serve.db" ;;
	http-postgres) serve_http postgres "$PGDB" ;;
	ledger-sqlite) ledger_sqlite ;;
	ledger-postgres) ledger_postgres ;;
	*) echo "unknown section $s: expected http-sqlite, http-postgres, ledger-sqlite or ledger-postgres" >&2; exit 2 ;;
	esac
done

echo "=== summary (also in $RESULTS) ===" >&2
cat "$RESULTS"
