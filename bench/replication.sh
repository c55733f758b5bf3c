#!/usr/bin/env bash
# Replication cost and failover on a three-node cluster of real `sluice server` processes: produce
# throughput of a replication-factor-1 topic with acks=1 against a replication-factor-3 topic with
# acks=all (same records, 6 partitions so every node leads two), then the time from kill -9 of a
# partition leader to the first acknowledged acks=all write, once for a leader that is not the
# active controller and once for the controller itself.
# Usage: bench/replication.sh [records] [rounds]   (default 5,000,000 records of 100 bytes, 2 rounds)
# SESSION_MS=n sets broker.session.timeout.ms (default: unset, Kafka's 9000 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000000}
ROUNDS=${2:-2}
cargo build --release -q -p sluice
. bench/cluster.sh
extra=()
[ -n "${SESSION_MS:-}" ] && extra+=("broker.session.timeout.ms=$SESSION_MS" "broker.heartbeat.interval.ms=$((SESSION_MS / 4))")
start_cluster "${extra[@]}"
trap stop_cluster EXIT
sluice=target/release/sluice
topics() { $sluice topics --bootstrap-server "$bootstrap" "$@"; }
# Creation needs every node registered; retry while they come up.
create() { until topics --create "$@" >/dev/null 2>&1; do sleep 0.2; done; }
create --topic rf1 --partitions 6 --replication-factor 1
create --topic rf3 --partitions 6 --replication-factor 3 --config min.insync.replicas=2
topics --describe --topic rf1; topics --describe --topic rf3
cluster_cpu() { echo "$(cpu_seconds "${pid[1]}") $(cpu_seconds "${pid[2]}") $(cpu_seconds "${pid[3]}")"; }
now() { date +%s.%N; }

# One perf run: prints "rate client_cpu node_cpu_1 node_cpu_2 node_cpu_3 wall".
measure() {
  local topic=$1 acks=$2 batch=$3 before after t0 t1 out
  before=$(cluster_cpu)
  t0=$(now)
  out=$(/usr/bin/time -f "TIME %U %S" $sluice perf produce --bootstrap-server "$bootstrap" \
      --topic "$topic" --num-records "$N" --record-size 100 --reporting-interval 1000 \
      --producer-props acks="$acks" linger.ms=5 batch.size="$batch" 2>&1)
  t1=$(now)
  after=$(cluster_cpu)
  echo "$out" | grep -v '^TIME' >&2
  python3 - "$out" "$before" "$after" "$t0" "$t1" <<'PY'
import re, sys
out, before, after, t0, t1 = sys.argv[1:]
rate = float(re.search(r"records sent, ([0-9.]+) records/sec", out).group(1))
u, s = map(float, re.search(r"TIME ([0-9.]+) ([0-9.]+)", out).groups())
cpu = [a - b for a, b in zip(map(float, after.split()), map(float, before.split()))]
print(rate, u + s, *cpu, float(t1) - float(t0))
PY
}

summary=""
# Both with large batches (throughput as the client can push it) and with Kafka's default
# batch.size, where each request carries less and the replication round trips weigh more.
for batch in 1000000 16384; do
  results=()
  for r in $(seq "$ROUNDS"); do
    echo "batch.size=$batch round $r: (a) rf1 acks=1" >&2
    a=$(measure rf1 1 $batch)
    echo "batch.size=$batch round $r: (b) rf3 acks=all" >&2
    b=$(measure rf3 all $batch)
    results+=("$a|$b")
  done
  summary+=$(python3 - "$N" "$batch" "${results[@]}" <<'PY'
import sys
n, batch = int(sys.argv[1]), int(sys.argv[2])
print()
print(f"produce, {n:,} records of 100 bytes, 6 partitions, sluice perf produce "
      f"(linger.ms=5, batch.size={batch}):")
print("round | (a) rf1 acks=1 | (b) rf3 acks=all | (b)/(a) | CPU s (a): client, nodes 1/2/3 | CPU s (b): client, nodes 1/2/3")
for i, row in enumerate(sys.argv[3:], 1):
    a, b = ([float(x) for x in part.split()] for part in row.split("|"))
    fmt = lambda m: f"{m[1]:.2f}, {m[2]:.2f}/{m[3]:.2f}/{m[4]:.2f}"
    print(f"{i} | {a[0]:,.0f} rec/s | {b[0]:,.0f} rec/s | {b[0] / a[0]:.2f} | {fmt(a)} | {fmt(b)}")
PY
)$'\n'
done
topics --describe --topic rf3
echo "$summary"

# Failover: a fresh 3-partition RF3 topic per case, so the victim leads one of its partitions.
pids="1:${pid[1]},2:${pid[2]},3:${pid[3]}"
echo
echo "failover, broker.session.timeout.ms=${SESSION_MS:-9000 (default)}:"
create --topic failover-1 --partitions 3 --replication-factor 3 --config min.insync.replicas=2
sleep 1
out=$(python3 bench/failover.py --bootstrap "$bootstrap" --topic failover-1 --pids "$pids" --victim not-controller)
echo "$out"
victim=$(echo "$out" | awk '/^FAILOVER_SECONDS/ { print $4 }')
wait_gone "${pid[$victim]}"
start_node "$victim"
# Back in every ISR before the next kill, or the second case would lose its quorum.
deadline=$((SECONDS + 120))
until [ "$(topics --describe --topic failover-1 2>/dev/null | grep -c 'Isr: [0-9],[0-9],[0-9]')" = 3 ]; do
  [ $SECONDS -lt $deadline ] || { echo "node $victim did not rejoin the ISR" >&2; exit 1; }
  sleep 0.5
done
echo "node $victim restarted and rejoined the ISR"
create --topic failover-2 --partitions 3 --replication-factor 3 --config min.insync.replicas=2
sleep 1
pids="1:${pid[1]},2:${pid[2]},3:${pid[3]}"
python3 bench/failover.py --bootstrap "$bootstrap" --topic failover-2 --pids "$pids" --victim controller
