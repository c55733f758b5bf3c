#!/usr/bin/env bash
# Sluice Streams against a plain consume-then-produce loop on one release broker in one run:
# N records (keys key-0..key-9999, 100-byte values) pre-produced to a one-partition topic, then
# per round (a) a map+filter Streams app, (b) a group_by_key+count Streams app (in-memory store
# with a changelog and the default 10 MiB record cache), (b') the same count with the cache off
# (statestore.cache.max.bytes=0: a changelog and an output record per input record) and (c) the
# same map+filter written with sluice-client's Consumer and Producer, each a fresh group reading
# the whole topic (examples/streams_bench.rs), with the same producer settings and commit
# cadence; prints records/s, CPU seconds and (a)/(c), (b)/(c), (b')/(c).
# Usage: bench/streams.sh [records] [rounds] [commit_interval_ms]   (default 2,000,000, 2, 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000000}
ROUNDS=${2:-2}
COMMIT_MS=${3:-1000}
cargo build --release -q -p sluice
cargo build --release -q -p sluice-examples --example streams_bench
. bench/broker.sh
start_broker num.partitions=1 group.initial.rebalance.delay.ms=0
trap stop_broker EXIT
bench=target/release/examples/streams_bench
broker_cpu() { awk -v tck="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / tck }' /proc/$pid/stat; }
target/release/sluice topics --bootstrap-server "$b" --create --topic input --partitions 1 >/dev/null
$bench --bootstrap-server "$b" --mode produce --topic input --records "$N" --keys 10000 --record-size 100

# One mode: prints its RESULT line with the broker's CPU seconds during the run appended.
run() {
  local mode=$1 round=$2 before out
  target/release/sluice topics --bootstrap-server "$b" --create --topic "out-$mode-$round" \
    --partitions 1 >/dev/null
  before=$(broker_cpu)
  out=$($bench --bootstrap-server "$b" --mode "$mode" --topic input --output "out-$mode-$round" \
    --records "$N" --commit-interval-ms "$COMMIT_MS" --state-dir "$dir/state" | grep '^RESULT')
  echo "$out broker_cpu=$(python3 -c "print(f'{$(broker_cpu) - $before:.2f}')")"
}

lines=()
for r in $(seq "$ROUNDS"); do
  for mode in map-filter count count-uncached plain-loop; do
    line=$(run "$mode" "$r")
    echo "round $r: $line"
    lines+=("$r $line")
  done
done
python3 - "$N" "$COMMIT_MS" "${lines[@]}" <<'PY'
import sys
n, commit = int(sys.argv[1]), sys.argv[2]
rows = {}
for line in sys.argv[3:]:
    r, _, *kv = line.split()
    d = dict(x.split("=") for x in kv)
    rows.setdefault(int(r), {})[d["mode"]] = d
print(f"\n{n:,} records of 100 bytes, one partition, commit.interval.ms={commit}")
print("round | (a) map-filter | (b) count | (b') count, no cache | (c) plain loop | (a)/(c) | (b)/(c) | (b')/(c) | CPU s a/b/b'/c (app) | CPU s a/b/b'/c (broker)")
for r, m in sorted(rows.items()):
    a, b, u, c = m["map-filter"], m["count"], m["count-uncached"], m["plain-loop"]
    rate = lambda d: float(d["rate"])
    print(f"{r} | {rate(a):,.0f} rec/s | {rate(b):,.0f} rec/s | {rate(u):,.0f} rec/s | "
          f"{rate(c):,.0f} rec/s | {rate(a) / rate(c):.2f} | {rate(b) / rate(c):.2f} | "
          f"{rate(u) / rate(c):.2f} | {a['cpu']}/{b['cpu']}/{u['cpu']}/{c['cpu']} | "
          f"{a['broker_cpu']}/{b['broker_cpu']}/{u['broker_cpu']}/{c['broker_cpu']}")
PY
