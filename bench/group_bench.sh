#!/usr/bin/env bash
# Group stabilisation time and offset commits/s (confluent-kafka) against a release build of the
# broker, once with group.initial.rebalance.delay.ms=0 and once with Kafka's default 3000.
# Usage: bench/group_bench.sh [commits]   (default 20,000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
cargo build --release -q
for delay in 0 3000; do
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$dir/server.properties" <<PROPS
node.id=1
listeners=PLAINTEXT://127.0.0.1:$port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
log.dirs=$dir/logs
group.initial.rebalance.delay.ms=$delay
PROPS
  RUST_LOG=warn target/release/sluice server "$dir/server.properties" &
  pid=$!
  until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null; do sleep 0.1; done
  echo "== group.initial.rebalance.delay.ms=$delay"
  python3 bench/group_bench.py "127.0.0.1:$port" "$N"
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$dir"
done
