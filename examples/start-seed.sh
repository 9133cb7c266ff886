#!/usr/bin/env bash
# Start the first (seed) node of a cluster: node 1, MySQL on 3307, cluster port 8081.
#   examples/start-seed.sh          start it
#   examples/start-seed.sh stop     stop every node these scripts started
source "$(dirname "$0")/_common.sh"
if [ "${1:-}" = "stop" ]; then stop_nodes; exit 0; fi
start_node 1 3307 8081
echo "join more nodes with: examples/join-cluster.sh 2 127.0.0.1:8081"
