#!/usr/bin/env bash
# Benchmarks Tally on this machine and prints a summary:
#   1. `tally serve` on a freshly created PostgreSQL database (tally_bench) and on a temporary SQLite file:
#      the guide's webhook event (testdata/genesys/guide-webhook-event.json, a new event id each time,
#      customers spread) from 64 clients as the deployment's first 10,000 requests, then from 16 and 64
#      clients, lookups at a fixed rate, lookups beside accruals; the server's peak RSS. On PostgreSQL,
#      pgbench runs the same row work just before and just after the accruals. Nothing runs ANALYZE on
#      Tally's tables but the server itself: a new deployment must be fast from its first request.
#      (pgbench's own tables are vacuumed and analyzed after loading, as `pgbench -i` does.)
#   2. the ledger layer (no HTTP) on both stores: accruals, redemptions, one hot customer;
#   3. pgbench doing the row work of one accrual per transaction, run next to the PostgreSQL ledger
#      runs so that their ratio is measured in the same minute;
#   4. portal redemptions over HTTP (`tally bench redeem`) on both stores at 16 and 64 clients, and a
#      flash sale (one reward of 10,000 units, 64 clients) that checks receipts + units left = 10,000;
#      on PostgreSQL beside pgbench doing the row work of one redemption per transaction.
# Every run reports CPU time per operation (server, PostgreSQL backends, load generator, from /proc) and
# how busy the whole machine was, and the load average is printed before it: on a shared machine,
# compare ratios measured in the same run, not rates across runs.
# Settings (environment): DURATION (10s), PG (postgres://postgres@127.0.0.1:5432, trust auth),
# PORT (18080), CUSTOMERS (10000), RATE (2000), RESULTS (a file in /tmp).
# Run it from anywhere in the repository: bash bench/run.sh [SECTION...], where the sections are
# http-postgres, http-sqlite, ledger-postgres, ledger-sqlite, redeem-postgres and redeem-sqlite
# (default: all six, in that order), so that a section disturbed by other load on the machine can be
# measured again alone.
set -euo pipefail

DURATION=${DURATION:-10s}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-18080}
CUSTOMERS=${CUSTOMERS:-10000}
RATE=${RATE:-2000}
RESULTS=${RESULTS:-$(mktemp /tmp/tally-bench-XXXXXX.txt)}
PGDB="$PG/tally_bench?sslmode=disable"
export TALLY_CUSTOMER_SECRET=${TALLY_CUSTOMER_SECRET:-bench-customer-secret-0123456789}

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
# run: the load average, then the command; its output goes to the results and to $work/last.
run() { load; "$@" 2>&1 | tee "$work/last" | tee -a "$RESULTS" >&2; say ""; }

echo "building tally" >&2
go build -o "$work/tally" ./cmd/tally
tally="$work/tally"
export TALLY_LEDGER_KEY=${TALLY_LEDGER_KEY:-$("$tally" keygen)}

say "# Tally benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(git describe --always --dirty 2>/dev/null || echo "?")"
say ""

# fresh_pg: drops and creates the database tally_bench, so that the server starts on a new one.
fresh_pg() { psql -q "$PG/postgres" -c 'DROP DATABASE IF EXISTS tally_bench' -c 'CREATE DATABASE tally_bench'; }

# ratio LABEL HTTP_OUT PGBENCH_OUT...: HTTP accruals per second at 64 clients over pgbench's tps at 64.
ratio() {
	local label=$1 http=$2 rate pg
	shift 2
	rate=$(awk '$1 == "accrual" && $2 == 64 && $3 == "clients" { print $4; exit }' "$http")
	for f in "$@"; do
		pg=$(awk '$1 == 64 && $2 ~ /^[0-9]+$/ { print $2; exit }' "$f")
		[ -n "$rate" ] && [ -n "$pg" ] && say "$label at 64 clients: $rate/s against pgbench's $pg tps in the same run: $(awk -v a="$rate" -v b="$pg" 'BEGIN { printf "%.2f", a / b }')"
	done
	return 0
}

# serve_http STORE DBURL: starts tally serve on DBURL, runs the HTTP benchmarks, records its RSS, stops it.
serve_http() {
	local store=$1 db=$2 client id secret watch=()
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
	if [ "$store" = postgres ]; then watch=(--watch-db "$PGDB"); fi
	local common=(--url "http://127.0.0.1:$PORT" --client-id "$id" --client-secret "$secret" --customers "$CUSTOMERS" --duration "$DURATION" --server-pid "$server" "${watch[@]}")
	if [ "$store" = postgres ]; then
		say "## HTTP, PostgreSQL (a freshly created database; the guide's webhook event; no ANALYZE but the server's own)"
	else
		say "## HTTP, SQLite (a new file; the guide's webhook event)"
	fi
	if [ "$store" = postgres ]; then # the floor, just before
		run "$tally" bench pgbench --db "$PGDB" --accounts "$CUSTOMERS" --duration "$DURATION" --clients 64 --cpu
		cp "$work/last" "$work/pgbench-before"
	fi
	# The deployment's first requests (one event per customer, 64 clients), then the timed runs.
	run "$tally" bench http "${common[@]}" --op accrual --concurrency 16,64
	cp "$work/last" "$work/http-accrual"
	if [ "$store" = postgres ]; then # the floor, just after (the server idles meanwhile)
		run "$tally" bench pgbench --db "$PGDB" --accounts "$CUSTOMERS" --duration "$DURATION" --clients 16,64 --cpu
		ratio "HTTP accruals (events), PostgreSQL" "$work/http-accrual" "$work/pgbench-before" "$work/last"
		say ""
	fi
	run "$tally" bench http "${common[@]}" --op lookup --rate "$RATE" --warmup=false
	run "$tally" bench http "${common[@]}" --op mixed --rate "$RATE" --concurrency 16,64 --warmup=false
	say "server memory ($store): $(grep -E 'VmHWM|VmRSS' /proc/$server/status | tr -s ' \t' ' ' | paste -sd, -)"
	if [ "$store" = postgres ]; then
		say "server log: $(grep -c 'planner statistics refreshed' "$work/serve-$store.log" || true) rounds of ANALYZE of grown tables"
	fi
	say ""
	kill "$server"
	wait "$server" || true
	server=""
}

# serve_redeem STORE DBURL: starts tally serve on DBURL and measures portal redemptions, then a flash sale.
serve_redeem() {
	local store=$1 db=$2 client id secret
	"$tally" migrate --db "$db" >/dev/null
	client=$("$tally" clients create --db "$db" --name bench-redeem --scopes ledger:read,ledger:write,admin --json)
	id=$(echo "$client" | sed -n 's/.*"client_id":"\([^"]*\)".*/\1/p')
	secret=$(echo "$client" | sed -n 's/.*"client_secret":"\([^"]*\)".*/\1/p')
	"$tally" serve --db "$db" --addr "127.0.0.1:$PORT" >"$work/serve-redeem-$store.out" 2>"$work/serve-redeem-$store.log" &
	server=$!
	for _ in $(seq 100); do
		curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$work/serve-redeem-$store.log" >&2; exit 1; }
	local common=(--url "http://127.0.0.1:$PORT" --client-id "$id" --client-secret "$secret" --customers 2000)
	say "## Portal redemptions over HTTP, $store (2,000 funded customers with portal sessions)"
	if [ "$store" = postgres ]; then
		run "$tally" bench pgbench --db "$PGDB" --accounts 2000 --duration "$DURATION" --clients 16,64 --cpu --script redemption
	fi
	run "$tally" bench redeem "${common[@]}" --duration "$DURATION" --concurrency 16,64
	run "$tally" bench redeem "${common[@]}" --duration 60s --concurrency 64 --units 10000
	if [ "$store" = postgres ]; then
		run "$tally" bench pgbench --db "$PGDB" --accounts 2000 --duration "$DURATION" --clients 16,64 --cpu --script redemption
	fi
	kill "$server"
	wait "$server" || true
	server=""
	run "$tally" verify --db "$db" --quiet
}

fresh_pg
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(http-postgres http-sqlite ledger-postgres ledger-sqlite redeem-postgres redeem-sqlite)

# The ledger runs on fresh databases beside these (temporary SQLite files, new schemas in tally_bench).
ledger=("$tally" bench ledger --customers "$CUSTOMERS" --duration "$DURATION" --concurrency 1,16,64)
pgbench=("$tally" bench pgbench --db "$PGDB" --accounts "$CUSTOMERS" --duration "$DURATION" --clients 1,16,64 --cpu)

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
	http-postgres) fresh_pg && serve_http postgres "$PGDB" ;;
	ledger-sqlite) ledger_sqlite ;;
	ledger-postgres) ledger_postgres ;;
	redeem-sqlite) serve_redeem sqlite "sqlite:$work/redeem.db" ;;
	redeem-postgres) fresh_pg && serve_redeem postgres "$PGDB" ;;
	*) echo "unknown section $s: expected http-postgres, http-sqlite, ledger-postgres, ledger-sqlite, redeem-postgres or redeem-sqlite" >&2; exit 2 ;;
	esac
done

echo "=== summary (also in $RESULTS) ===" >&2
cat "$RESULTS"
