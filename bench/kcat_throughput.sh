#!/usr/bin/env bash
# Produce and consume throughput of 100-byte records on one partition, acks=1, with kcat
# (librdkafka) against a release build of the broker; prints records/s and the broker's RSS.
# Usage: bench/kcat_throughput.sh [records]   (default 2,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000000}
command -v kcat >/dev/null || { echo "kcat is needed: apt-get install kcat" >&2; exit 1; }
cargo build --release -q
. bench/broker.sh
start_broker num.partitions=1
trap stop_broker EXIT
# Each line is 100 bytes of payload (kcat strips the newline).
python3 -c "
import sys
line = (b'x' * 92)
out = sys.stdout.buffer
for i in range($N):
    out.write(b'%08d' % i + line + b'\n')
" >"$dir/input"
kcat -b $b -L -t bench >/dev/null 2>&1 || true
now() { python3 -c 'import time; print(time.time())'; }
t0=$(now)
kcat -b $b -t bench -P -X acks=1 -X linger.ms=5 -X batch.num.messages=10000 \
     -X queue.buffering.max.messages=2000000 -X queue.buffering.max.kbytes=2000000 <"$dir/input"
t1=$(now)
# librdkafka pauses fetching (and backs off ~1 s) once 100k messages wait in its queue, and
# `-e` needs one empty long poll at the end: raise the queue and shorten the poll so the
# figure measures the broker, not the client's pauses.
got=$(kcat -b $b -t bench -C -o beginning -e -q -X fetch.message.max.bytes=4194304 \
      -X queued.min.messages=10000000 -X queued.max.messages.kbytes=2097151 \
      -X fetch.wait.max.ms=100 | wc -l)
t2=$(now)
rss=$(ps -o rss= -p $pid)
[ "$got" -eq "$N" ] || { echo "consumed $got of $N records" >&2; exit 1; }
python3 - "$N" "$t0" "$t1" "$t2" "$rss" <<'PY'
import sys
n, t0, t1, t2, rss = int(sys.argv[1]), *map(float, sys.argv[2:5]), int(sys.argv[5])
p, c = t1 - t0, t2 - t1
print(f"produce: {n} records in {p:.2f} s = {n/p:,.0f} records/s ({n*100/p/1e6:.1f} MB/s)")
print(f"consume: {n} records in {c:.2f} s = {n/c:,.0f} records/s ({n*100/c/1e6:.1f} MB/s)")
print(f"broker RSS after both: {rss/1024:.0f} MiB")
PY
