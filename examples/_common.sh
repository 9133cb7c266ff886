# Shared helpers for the example scripts (sourced, not run).
# Every node N lives in $RUN_DIR/node-N: its config.toml, data/, marmot.log and marmot.pid. The PID file is
# written by marmot itself once the node serves and removed by it on exit, so "running" below means: the
# PID file names a live process.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MARMOT="${MARMOT:-$REPO/.venv/bin/marmot}"
RUN_DIR="${MARMOT_RUN_DIR:-/tmp/marmot-cluster}"
SECRET="${MARMOT_CLUSTER_SECRET:-marmot-example-secret}"

if [ ! -x "$MARMOT" ]; then
  echo "marmot not found at $MARMOT: run 'make run' once (or set MARMOT=/path/to/marmot)" >&2
  exit 1
fi

# node_pid ID: print the PID of node ID if it runs (its PID file names a live process), else nothing
node_pid() {
  local pidfile="$RUN_DIR/node-$1/marmot.pid" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
  grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null || echo "$pid"  # a zombie has exited
}

# node_ids: the ids of every node these scripts have set up under $RUN_DIR, in order
node_ids() {
  local dir
  for dir in "$RUN_DIR"/node-*/; do
    [ -f "$dir/config.toml" ] || continue
    dir="${dir%/}"; echo "${dir##*-}"
  done | sort -n
}

# config_value ID KEY: the first `KEY = value` of node ID's config (ports), without quotes
config_value() {
  sed -n "s/^$2 = \"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" "$RUN_DIR/node-$1/config.toml" | head -n 1
}

# describe_node ID: one line saying where node ID listens and whether it runs
describe_node() {
  local id="$1" pid dir="$RUN_DIR/node-$1"
  pid="$(node_pid "$id")"
  local where="MySQL 127.0.0.1:$(config_value "$id" port), cluster 127.0.0.1:$(config_value "$id" grpc_port)"
  local what="node"
  grep -q '^\[replica\]' "$dir/config.toml" && what="node (read-only replica)"
  if [ -n "$pid" ]; then
    echo "${what/node/node $id}: running, pid $pid, $where, log $dir/marmot.log"
  else
    echo "${what/node/node $id}: not running ($where, log $dir/marmot.log)"
  fi
}

# write_config ID MYSQL_PORT CLUSTER_PORT [SEED_ADDR...]: the node's config file
write_config() {
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
}

# write_replica_config ID MYSQL_PORT CLUSTER_PORT FOLLOW_ADDR...: the config of a read-only replica that
# follows the cluster through the nodes listed (it learns the others from them)
write_replica_config() {
  local id="$1" mysql_port="$2" cluster_port="$3"; shift 3
  local dir="$RUN_DIR/node-$id" follow=""
  mkdir -p "$dir"
  for s in "$@"; do follow="$follow\"$s\", "; done
  cat > "$dir/config.toml" <<TOML
node_id = $id
data_dir = "$dir/data"
[cluster]
grpc_bind_address = "127.0.0.1"
grpc_advertise_address = "127.0.0.1:$cluster_port"
grpc_port = $cluster_port
[mysql]
bind_address = "127.0.0.1"
port = $mysql_port
[logging]
format = "console"
file = "$dir/marmot.log"
[replica]
enabled = true
follow_addresses = [${follow%, }]
secret = "$SECRET"
reconnect_interval_seconds = 1
reconnect_max_backoff_seconds = 5
database_discovery_interval_seconds = 1
TOML
}

# start_replica ID MYSQL_PORT CLUSTER_PORT FOLLOW_ADDR...: write its config and start it, unless it runs
start_replica() {
  local id="$1" pid
  pid="$(node_pid "$id")"
  if [ -n "$pid" ]; then
    echo "replica node $id already runs (pid $pid): left as it is"
    return 0
  fi
  write_replica_config "$@"
  launch_node "$id"
}

# launch_node ID: start node ID from its config in the background; marmot -daemon returns once the node
# serves (0) or has failed (non-zero, its error on stderr)
launch_node() {
  local id="$1" dir="$RUN_DIR/node-$1"
  if ! "$MARMOT" --config "$dir/config.toml" -daemon -pid-file "$dir/marmot.pid"; then
    echo "node $id did not start (log: $dir/marmot.log)" >&2
    return 1
  fi
  describe_node "$id"
}

# start_node ID MYSQL_PORT CLUSTER_PORT [SEED_ADDR...]: write its config and start it, unless it runs
start_node() {
  local id="$1" pid
  pid="$(node_pid "$id")"
  if [ -n "$pid" ]; then
    echo "node $id already runs (pid $pid): left as it is"
    return 0
  fi
  write_config "$@"
  launch_node "$id"
}

# stop_node ID: SIGTERM the process node ID's PID file names, and wait for it to exit
stop_node() {
  local id="$1" pidfile="$RUN_DIR/node-$1/marmot.pid" pid
  pid="$(node_pid "$id")"
  if [ -z "$pid" ]; then
    rm -f "$pidfile"  # stale: its process is gone
    return 1
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "pid $pid ($pidfile) has not exited after 30 s; left running" >&2
    return 2
  fi
  echo "stopped pid $pid ($pidfile)"
}

# stop_nodes: stop exactly the processes whose PID files these scripts' nodes wrote
stop_nodes() {
  local found=0 id rc
  for id in $(node_ids); do
    rc=0; stop_node "$id" || rc=$?
    if [ "$rc" = 0 ]; then found=1; elif [ "$rc" = 2 ]; then return 1; fi
  done
  [ "$found" = 1 ] || echo "no running nodes under $RUN_DIR"
}

# status_nodes: one line per node; exit 0 when every node runs, 3 when some (or all) do not
status_nodes() {
  local ids id all=0
  ids="$(node_ids)"
  if [ -z "$ids" ]; then echo "no nodes under $RUN_DIR"; return 3; fi
  for id in $ids; do
    describe_node "$id"
    [ -n "$(node_pid "$id")" ] || all=3
  done
  return "$all"
}

# restart_node ID: stop node ID if it runs, then start it again on its existing config
restart_node() {
  local id="$1" rc=0
  if [ ! -f "$RUN_DIR/node-$id/config.toml" ]; then
    echo "node $id was never started under $RUN_DIR" >&2
    return 1
  fi
  stop_node "$id" || rc=$?
  [ "$rc" != 2 ] || return 1
  launch_node "$id"
}

# common_command ARGS...: handle `stop`, `status` and `restart N` (shared by every script); returns 1 when
# ARGS is none of them, else exits with the command's status
common_command() {
  local rc=0
  case "${1:-}" in
    stop) stop_nodes || rc=$?; exit "$rc" ;;
    status) status_nodes || rc=$?; exit "$rc" ;;
    restart)
      if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then echo "usage: $0 restart N" >&2; exit 2; fi
      restart_node "$2" || rc=$?; exit "$rc" ;;
  esac
  return 1
}
