#!/usr/bin/env bash
# The Sluice client against librdkafka (kcat) on the same broker in the same run: N records of
# 100 bytes to a one-partition topic each, acks=1, linger.ms=5; then each reads its topic back
# (sluice perf consume as a group member, as kafka-consumer-perf-test does; kcat by assignment).
# Usage: bench/client_vs_librdkafka.sh [records]   (default 2,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000000}
command -v kcat >/dev/null || { echo "kcat is needed: apt-get install kcat" >&2; exit 1; }
cargo build --release -q
. bench/broker.sh
start_broker num.partitions=1 group.initial.rebalance.delay.ms=0
trap stop_broker EXIT
python3 -c "
import sys
line = (b'x' * 92)
out = sys.stdout.buffer
for i in range($N):
    out.write(b'%08d' % i + line + b'\n')
" >"$dir/input"
for t in kcat-topic sluice-topic; do kcat -b "$b" -L -t $t >/dev/null 2>&1 || true; done
now() { python3 -c 'import time; print(time.time())'; }

t0=$(now)
kcat -b "$b" -t kcat-topic -P -X acks=1 -X linger.ms=5 -X batch.num.messages=10000 \
     -X queue.buffering.max.messages=2000000 -X queue.buffering.max.kbytes=2000000 <"$dir/input"
t1=$(now)
target/release/sluice perf produce --bootstrap-server "$b" --topic sluice-topic \
    --num-records "$N" --record-size 100 --reporting-interval 1000 \
    --producer-props acks=1 linger.ms=5 batch.size=1000000 >"$dir/sluice-produce.txt"
t2=$(now)
python3 - "$N" "$t0" "$t1" "$t2" <<'PY'
import sys
n, t0, t1, t2 = int(sys.argv[1]), *map(float, sys.argv[2:5])
k, s = t1 - t0, t2 - t1
print(f"produce, kcat (librdkafka): {n/k:,.0f} records/s ({n*100/k/1e6:.1f} MB/s)")
print(f"produce, sluice perf:       {n/s:,.0f} records/s ({n*100/s/1e6:.1f} MB/s)  ratio {k/s:.2f}")
PY
echo "sluice perf produce summary:"; tail -2 "$dir/sluice-produce.txt"

if target/release/sluice perf consume --help >/dev/null 2>&1; then
  t3=$(now)
  got=$(kcat -b "$b" -t kcat-topic -C -o beginning -e -q -X fetch.message.max.bytes=4194304 \
        -X queued.min.messages=10000000 -X queued.max.messages.kbytes=2097151 \
        -X fetch.wait.max.ms=100 | wc -l)
  t4=$(now)
  target/release/sluice perf consume --bootstrap-server "$b" --topic sluice-topic \
      --messages "$N" >"$dir/sluice-consume.txt"
  t5=$(now)
  [ "$got" -eq "$N" ] || { echo "kcat consumed $got of $N records" >&2; exit 1; }
  python3 - "$N" "$t3" "$t4" "$t5" <<'PY'
import sys
n, t3, t4, t5 = int(sys.argv[1]), *map(float, sys.argv[2:5])
k, s = t4 - t3, t5 - t4
print(f"consume, kcat (librdkafka): {n/k:,.0f} records/s ({n*100/k/1e6:.1f} MB/s)")
print(f"consume, sluice perf:       {n/s:,.0f} records/s ({n*100/s/1e6:.1f} MB/s)  ratio {k/s:.2f}")
PY
  echo "sluice perf consume summary:"; tail -2 "$dir/sluice-consume.txt"
fi
