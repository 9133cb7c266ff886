#!/usr/bin/env bash
# A 3-node cluster on 127.0.0.1: MySQL 3307-3309, cluster ports 8081-8083 (files in $MARMOT_RUN_DIR,
# default /tmp/marmot-cluster).
#   examples/run-cluster.sh              start all three (nodes that already run are left as they are)
#   examples/run-cluster.sh status       which nodes run: PID, ports, log (exit 0 only if all run)
#   examples/run-cluster.sh restart N    stop node N (if it runs) and start it again
#   examples/run-cluster.sh stop         stop exactly the processes it started (by their PID files)
source "$(dirname "$0")/_common.sh"
common_command "$@" || :
if [ $# -ne 0 ]; then echo "usage: $0 [status | restart N | stop]" >&2; exit 2; fi
if [ -n "$(node_pid 1)" ] && [ -n "$(node_pid 2)" ] && [ -n "$(node_pid 3)" ]; then
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
echo "connect: mysql -h127.0.0.1 -P3307 -uroot --skip-ssl"
echo "status: $0 status     restart a node: $0 restart N     stop: $0 stop"
