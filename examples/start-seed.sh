#!/usr/bin/env bash
# Start the first (seed) node of a cluster: node 1, MySQL on 3307, cluster port 8081.
#   examples/start-seed.sh               start it (left as it is if it runs)
#   examples/start-seed.sh status        which nodes these scripts started run
#   examples/start-seed.sh restart N     stop node N (if it runs) and start it again
#   examples/start-seed.sh stop          stop every node these scripts started
source "$(dirname "$0")/_common.sh"
common_command "$@" || :
if [ $# -ne 0 ]; then echo "usage: $0 [status | restart N | stop]" >&2; exit 2; fi
start_node 1 3307 8081
echo "join more nodes with: examples/join-cluster.sh 2 127.0.0.1:8081"
