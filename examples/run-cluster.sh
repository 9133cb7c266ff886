#!/usr/bin/env bash
# A 3-node cluster on 127.0.0.1: MySQL 3307-3309, cluster ports 8081-8083.
#   examples/run-cluster.sh         start all three and show the membership
#   examples/run-cluster.sh stop    stop exactly the processes it started (PID files in $MARMOT_RUN_DIR)
source "$(dirname "$0")/_common.sh"
if [ "${1:-}" = "stop" ]; then stop_nodes; exit 0; fi
start_node 1 3307 8081
start_node 2 3308 8082 127.0.0.1:8081
start_node 3 3309 8083 127.0.0.1:8081
sleep 3
"$MARMOT" members --address 127.0.0.1:8081 --secret "$SECRET" || true
echo "connect: mysql -h127.0.0.1 -P3307 -uroot --skip-ssl     stop: $0 stop"
