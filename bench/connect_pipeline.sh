#!/usr/bin/env bash
# The Connect file pipeline end to end: a file of SIZE_MB with lines of varied length (ASCII and
# multi-byte UTF-8) goes FileStreamSource -> topic (JsonConverter) -> FileStreamSink, through the
# embedded broker of connect-standalone; reports MB/s against `cp` of the same file and checks
# the sink file equals the source byte for byte.
# Usage: bench/connect_pipeline.sh [size_mb]   (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${1:-1024}
cargo build --release -q
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
python3 - "$dir/test.txt" "$SIZE_MB" <<'PY'
import random, sys
path, size = sys.argv[1], int(sys.argv[2]) << 20
rng = random.Random(7)
words = ["log", "événement", "数据", "ok", "request", "naïve", "🚀", "warn", "x" * 40]
with open(path, "w", encoding="utf-8") as f:
    written = 0
    while written < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))
        f.write(line + "\n")
        written += len(line.encode()) + 1
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rest=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$dir/config"
sed -e "s#bootstrap.servers=localhost:9092#bootstrap.servers=127.0.0.1:$port#" \
    -e "s#/tmp/connect.offsets#$dir/connect.offsets#" config/connect-standalone.properties \
    >"$dir/config/connect-standalone.properties"
printf 'sluice.embedded.broker.log.dirs=%s\nlisteners=http://127.0.0.1:%s\n' "$dir/broker" "$rest" \
    >>"$dir/config/connect-standalone.properties"
# Extra worker settings to compare tunings, e.g. WORKER_EXTRA='producer.batch.size=262144'.
for kv in ${WORKER_EXTRA:-}; do echo "$kv" >>"$dir/config/connect-standalone.properties"; done
cp config/connect-file-source.properties config/connect-file-sink.properties "$dir/config/"
bytes=$(stat -c %s "$dir/test.txt")
now() { python3 -c 'import time; print(time.time())'; }
t0=$(now); cp "$dir/test.txt" "$dir/copy.txt"; sync "$dir/copy.txt"; t1=$(now)
rm "$dir/copy.txt"
(cd "$dir" && RUST_LOG=warn exec "$OLDPWD/target/release/sluice" connect-standalone config/connect-standalone.properties \
    config/connect-file-source.properties config/connect-file-sink.properties) &
pid=$!
t2=$(now)
until [ -f "$dir/test.sink.txt" ] && [ "$(stat -c %s "$dir/test.sink.txt")" -ge "$bytes" ]; do sleep 0.2; done
t3=$(now)
# CPU time of the worker (user + system), less disturbed than wall time on a shared machine.
cpu=$(awk -v tck="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / tck }' /proc/$pid/stat)
cmp "$dir/test.txt" "$dir/test.sink.txt" && echo "sink file equals the source byte for byte"
python3 - "$bytes" "$t0" "$t1" "$t2" "$t3" "$cpu" <<'PY'
import sys
b, t0, t1, t2, t3, cpu = int(sys.argv[1]), *map(float, sys.argv[2:7])
mb = b / 1e6
cp, pipe = t1 - t0, t3 - t2
print(f"cp: {mb:.0f} MB in {cp:.2f} s = {mb/cp:.0f} MB/s")
print(f"pipeline: {mb:.0f} MB in {pipe:.2f} s = {mb/pipe:.0f} MB/s (start-up included), ratio to cp {cp/pipe:.2f}")
print(f"worker CPU: {cpu:.2f} s ({mb/cpu:.0f} MB per CPU-second)")
PY
