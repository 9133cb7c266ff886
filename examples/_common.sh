# Shared helpers for the example scripts (sourced, not run).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MARMOT="${MARMOT:-$REPO/.venv/bin/marmot}"
RUN_DIR="${MARMOT_RUN_DIR:-/tmp/marmot-cluster}"
SECRET="${MARMOT_CLUSTER_SECRET:-marmot-example-secret}"

if [ ! -x "$MARMOT" ]; then
  echo "marmot not found at $MARMOT: run 'make run' once (or set MARMOT=/path/to/marmot)" >&2
  exit 1
fi

# start_node ID MYSQL_PORT CLUSTER_PORT [SEED_ADDR...]: write its config, start it in the background
start_node() {
  local id="$1" mysql_port="$2" cluster_port="$3"; shift 3
  local dir="$RUN_DIR/node-$id" seeds=""
  mkdir -p "$dir"
  for s in "$@"; do seeds="$seeds\"$s\", "; done
  cat > "$dir/config.toml" <<TOML
node_id = $id
data_dir = "$dir/data"
[cluster]
grpc_bind_address = "127.0.0.1"
grpc_advertise_address = "127.0.0.1:$cluster_port"
grpc_port = $cluster_port
seed_nodes = [${seeds%, }]
cluster_secret = "$SECRET"
[mysql]
bind_address = "127.0.0.1"
port = $mysql_port
[logging]
format = "console"
file = "$dir/marmot.log"
TOML
  "$MARMOT" --config "$dir/config.toml" -daemon -pid-file "$dir/marmot.pid"
  for _ in $(seq 1 100); do [ -s "$dir/marmot.pid" ] && break; sleep 0.1; done
  echo "node $id: MySQL 127.0.0.1:$mysql_port, cluster 127.0.0.1:$cluster_port, pid $(cat "$dir/marmot.pid"), log $dir/marmot.log"
}

# stop_nodes: SIGTERM exactly the processes whose PID files this script family wrote, then wait
stop_nodes() {
  local found=0
  for pidfile in "$RUN_DIR"/node-*/marmot.pid; do
    [ -f "$pidfile" ] || continue
    local pid; pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" && found=1
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      echo "stopped pid $pid ($pidfile)"
    fi
    rm -f "$pidfile"
  done
  [ "$found" = 1 ] || echo "no running nodes under $RUN_DIR"
}
