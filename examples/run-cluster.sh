#!/usr/bin/env bash
# A 3-node cluster on 127.0.0.1: MySQL 3307-3309, cluster ports 8081-8083 (files in $MARMOT_RUN_DIR,
# default /tmp/marmot-cluster), and optionally read-only replicas following it.
#   examples/run-cluster.sh              start all three (nodes that already run are left as they are)
#   examples/run-cluster.sh --replicas N also N read-only replicas (node ids 51.., MySQL 3310..,
#                                        cluster ports 8091..), following node 1 (they learn the others)
#   examples/run-cluster.sh status       which nodes run: PID, ports, log (exit 0 only if all run)
#   examples/run-cluster.sh restart N    stop node N (if it runs) and start it again
#   examples/run-cluster.sh stop         stop exactly the processes it started (by their PID files)
source "$(dirname "$0")/_common.sh"
common_command "$@" || :
replicas=0
if [ $# -eq 2 ] && [ "$1" = "--replicas" ] && [[ "$2" =~ ^[0-9]$ ]]; then
  replicas="$2"
elif [ $# -ne 0 ]; then
  echo "usage: $0 [--replicas N (0-9) | status | restart N | stop]" >&2; exit 2
fi
running_replicas=1
for r in $(seq 1 "$replicas"); do [ -n "$(node_pid $((50 + r)))" ] || running_replicas=0; done
if [ -n "$(node_pid 1)" ] && [ -n "$(node_pid 2)" ] && [ -n "$(node_pid 3)" ] && [ "$running_replicas" = 1 ]; then
  echo "the cluster already runs under $RUN_DIR:"
  status_nodes
  echo "status: $0 status     restart a node: $0 restart N     stop: $0 stop"
  exit 0
fi
start_node 1 3307 8081
start_node 2 3308 8082 127.0.0.1:8081
start_node 3 3309 8083 127.0.0.1:8081
for _ in $(seq 1 40); do  # the joiners turn ALIVE once they have caught up
  "$MARMOT" members --address 127.0.0.1:8081 --secret "$SECRET" 2>/dev/null | grep -q "3 members, 3 alive" && break
  sleep 0.5
done
"$MARMOT" members --address 127.0.0.1:8081 --secret "$SECRET" || true
for r in $(seq 1 "$replicas"); do
  start_replica $((50 + r)) $((3309 + r)) $((8090 + r)) 127.0.0.1:8081
done
echo "connect: mysql -h127.0.0.1 -P3307 -uroot --skip-ssl"
if [ "$replicas" -gt 0 ]; then
  echo "replicas (read-only): mysql -h127.0.0.1 -P3310 -uroot --skip-ssl; state: curl -s -H 'X-Marmot-Secret: $SECRET' http://127.0.0.1:8091/admin/replica/status"
fi
echo "status: $0 status     restart a node: $0 restart N     stop: $0 stop"
