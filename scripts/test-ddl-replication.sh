#!/usr/bin/env bash
# DDL and DML replication across a 2-node cluster (upstream Marmot's ./scripts/test-ddl-replication.sh):
#   1. start 2 nodes on 127.0.0.1 (free ports, temp data dirs, PID files)
#   2. CREATE TABLE on node 1  -> the table exists on node 2
#   3. INSERT on node 1        -> the rows are on node 2
#   4. UPDATE on node 2        -> the change is on node 1
#   5. DELETE on node 1        -> the row is gone on node 2
# Prints PASS/FAIL per step, stops exactly the processes it started, exits 0 only if every step passed.
# Needs the mysql CLI (Debian mariadb-client). MARMOT_PYTHON overrides the interpreter (default .venv).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${MARMOT_PYTHON:-$REPO/.venv/bin/python}"
SECRET="ddl-replication-test-secret"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/marmot-ddl-repl.XXXXXX")"
PIDS=()
FAILED=0

command -v mysql >/dev/null || { echo "FAIL: the mysql client is not installed" >&2; exit 1; }
[ -x "$PYTHON" ] || { echo "FAIL: no python at $PYTHON (run 'make run' once or set MARMOT_PYTHON)" >&2; exit 1; }

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
    for log in "$WORK"/node-*/marmot.log; do
      [ -f "$log" ] && { echo "--- last lines of $log" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# four distinct free ports (held open together while picked, so no two are the same)
read -r -a PORTS <<< "$("$PYTHON" -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
MYSQL_PORT=("" "${PORTS[0]}" "${PORTS[1]}")
CLUSTER_PORT=("" "${PORTS[2]}" "${PORTS[3]}")

# start_node ID [SEED]: write the node's config and start it in the background, remembering its PID
start_node() {
  local id="$1" seed="${2:-}" dir="$WORK/node-$1" seeds=""
  mkdir -p "$dir"
  [ -n "$seed" ] && seeds="\"$seed\""
  cat > "$dir/config.toml" <<TOML
node_id = $id
data_dir = "$dir/data"
[cluster]
grpc_bind_address = "127.0.0.1"
grpc_port = ${CLUSTER_PORT[$id]}
seed_nodes = [$seeds]
cluster_secret = "$SECRET"
gossip_interval_ms = 100
suspect_timeout_ms = 600
dead_timeout_ms = 1200
[mysql]
bind_address = "127.0.0.1"
port = ${MYSQL_PORT[$id]}
unix_socket = ""
[replication]
default_write_consistency = "QUORUM"
[logging]
format = "console"
TOML
  (cd "$REPO" && exec "$PYTHON" -m marmot.cli --config "$dir/config.toml" >"$dir/marmot.log" 2>&1) &
  PIDS+=("$!")
  echo "$!" > "$dir/marmot.pid"
  echo "node $id: MySQL 127.0.0.1:${MYSQL_PORT[$id]}, cluster 127.0.0.1:${CLUSTER_PORT[$id]}, pid $!"
}

# sql NODE STATEMENT: run one statement on a node (tab-separated rows, no header)
sql() { mysql -h127.0.0.1 -P"${MYSQL_PORT[$1]}" -uroot --skip-ssl -N -B --connect-timeout=5 marmot -e "$2"; }

# wait_for NODE STATEMENT EXPECTED: poll up to ~10 s until the node answers EXPECTED
wait_for() {
  local got=""
  for _ in $(seq 1 100); do
    got="$(sql "$1" "$2" 2>&1)" || true
    [ "$got" = "$3" ] && return 0
    sleep 0.1
  done
  echo "  node $1: $2" >&2
  echo "  expected: $(printf '%q' "$3")" >&2
  echo "  got:      $(printf '%q' "$got")" >&2
  return 1
}

# step NAME WRITER STATEMENT READER QUERY EXPECTED
step() {
  local name="$1" writer="$2" stmt="$3" reader="$4" query="$5" expected="$6" out
  if ! out="$(sql "$writer" "$stmt" 2>&1)"; then
    echo "FAIL: $name (node $writer: $stmt: $out)"
    FAILED=1
    return 0
  fi
  if wait_for "$reader" "$query" "$expected"; then
    echo "PASS: $name"
  else
    echo "FAIL: $name"
    FAILED=1
  fi
}

start_node 1
start_node 2 "127.0.0.1:${CLUSTER_PORT[1]}"
for id in 1 2; do  # both nodes answer SQL and see each other (a 2-node QUORUM needs both)
  up=0
  for _ in $(seq 1 300); do
    if sql "$id" "SELECT 1" >/dev/null 2>&1 && \
       [ "$("$PYTHON" -m marmot.cli members --address "127.0.0.1:${CLUSTER_PORT[$id]}" --secret "$SECRET" \
             2>/dev/null | grep -c ALIVE)" -ge 2 ]; then
      up=1; break
    fi
    sleep 0.1
  done
  if [ "$up" = 1 ]; then echo "PASS: node $id up, 2 members alive"; else echo "FAIL: node $id up"; exit 1; fi
done

step "CREATE TABLE on node 1 replicates to node 2" \
  1 "CREATE TABLE ddl_test (id INT PRIMARY KEY, name VARCHAR(50), score INT)" \
  2 "SHOW TABLES LIKE 'ddl_test'" "ddl_test"
step "INSERT on node 1 replicates to node 2" \
  1 "INSERT INTO ddl_test VALUES (1, 'alice', 10), (2, 'bob', 20), (3, 'carol', 30)" \
  2 "SELECT id, name, score FROM ddl_test ORDER BY id" $'1\talice\t10\n2\tbob\t20\n3\tcarol\t30'
step "UPDATE on node 2 replicates to node 1" \
  2 "UPDATE ddl_test SET name = 'bobby', score = score + 5 WHERE id = 2" \
  1 "SELECT id, name, score FROM ddl_test ORDER BY id" $'1\talice\t10\n2\tbobby\t25\n3\tcarol\t30'
step "DELETE on node 1 replicates to node 2" \
  1 "DELETE FROM ddl_test WHERE id = 1" \
  2 "SELECT id, name, score FROM ddl_test ORDER BY id" $'2\tbobby\t25\n3\tcarol\t30'

if [ "$FAILED" -eq 0 ]; then echo "ALL PASSED"; else echo "SOME STEPS FAILED"; fi
exit "$FAILED"
