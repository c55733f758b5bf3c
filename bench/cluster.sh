# Sourced by the replication bench: start_cluster [key=value ...] runs three combined
# broker+controller release nodes on free loopback ports, each with its own dir under $cdir.
# Sets $cdir, $bootstrap, bport[i], pid[i] (i = node id 1..3). start_node i restarts one node
# with the same config; stop_cluster ends every node and removes $cdir.
free_ports() {
  # Bound together, so the n ports are distinct; released just before the nodes bind them.
  python3 -c "
import socket
ss = [socket.socket() for _ in range($1)]
for s in ss: s.bind(('127.0.0.1', 0))
print(' '.join(str(s.getsockname()[1]) for s in ss))"
}

start_node() {
  local i=$1
  RUST_LOG=${RUST_LOG:-warn} target/release/sluice server "$cdir/node$i.properties" \
    >>"$cdir/node$i.log" 2>&1 &
  pid[$i]=$!
  # Not a job of this shell: a node killed by a test would otherwise print a "Killed" notice.
  disown "${pid[$i]}"
}

# Waits until process $1 is gone (nodes are disowned, so `wait` cannot).
wait_gone() {
  while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
}

start_cluster() {
  cdir=$(mktemp -d)
  local ports voters i
  read -r -a ports <<<"$(free_ports 6)"
  voters="1@127.0.0.1:${ports[3]},2@127.0.0.1:${ports[4]},3@127.0.0.1:${ports[5]}"
  bootstrap=""
  for i in 1 2 3; do
    bport[$i]=${ports[$((i - 1))]}
    bootstrap="${bootstrap:+$bootstrap,}127.0.0.1:${bport[$i]}"
    {
      echo "process.roles=broker,controller"
      echo "node.id=$i"
      echo "controller.quorum.voters=$voters"
      echo "controller.listener.names=CONTROLLER"
      echo "listeners=PLAINTEXT://127.0.0.1:${bport[$i]},CONTROLLER://127.0.0.1:${ports[$((i + 2))]}"
      echo "advertised.listeners=PLAINTEXT://127.0.0.1:${bport[$i]}"
      echo "log.dirs=$cdir/node$i/logs"
      printf '%s\n' "$@"
    } >"$cdir/node$i.properties"
    start_node "$i"
  done
  for i in 1 2 3; do
    until python3 -c "import socket; socket.create_connection(('127.0.0.1',${bport[$i]}))" 2>/dev/null; do
      kill -0 "${pid[$i]}" 2>/dev/null || { echo "node $i exited:" >&2; tail "$cdir/node$i.log" >&2; return 1; }
      sleep 0.1
    done
  done
}

stop_cluster() {
  local i
  for i in 1 2 3; do kill "${pid[$i]}" 2>/dev/null || true; done
  for i in 1 2 3; do wait_gone "${pid[$i]}"; done
  rm -rf "$cdir"
}

# CPU seconds (user + system) a process has used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}
