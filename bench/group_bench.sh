#!/usr/bin/env bash
# Group stabilisation time and offset commits/s (confluent-kafka) against a release build of the
# broker, once with group.initial.rebalance.delay.ms=0 and once with Kafka's default 3000.
# Usage: bench/group_bench.sh [commits]   (default 20,000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
cargo build --release -q
. bench/broker.sh
trap stop_broker EXIT
for delay in 0 3000; do
  start_broker "group.initial.rebalance.delay.ms=$delay"
  echo "== group.initial.rebalance.delay.ms=$delay"
  python3 bench/group_bench.py "$b" "$N"
  stop_broker
done
