# Sourced by the bench scripts: start_broker [key=value ...] runs a release broker on a free
# loopback port with its own log dir (extra properties appended) and waits until it listens;
# it sets $dir, $port, $pid and $b (the bootstrap address). stop_broker ends it and removes $dir.
start_broker() {
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  {
    echo "node.id=1"
    echo "listeners=PLAINTEXT://127.0.0.1:$port"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
    echo "log.dirs=$dir/logs"
    printf '%s\n' "$@"
  } >"$dir/server.properties"
  RUST_LOG=warn target/release/sluice server "$dir/server.properties" &
  pid=$!
  b=127.0.0.1:$port
  until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null; do sleep 0.1; done
}

stop_broker() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
