#!/usr/bin/env bash
# Join node N to a running cluster through SEED_ADDR: MySQL on 3306+N, cluster port 8080+N.
#   examples/join-cluster.sh N SEED_ADDR      e.g. examples/join-cluster.sh 2 127.0.0.1:8081
#   examples/join-cluster.sh status           which nodes these scripts started run
#   examples/join-cluster.sh restart N        stop node N (if it runs) and start it again
#   examples/join-cluster.sh stop             stop every node these scripts started
source "$(dirname "$0")/_common.sh"
common_command "$@" || :
if [ $# -ne 2 ]; then echo "usage: $0 N SEED_ADDR | status | restart N | stop" >&2; exit 2; fi
n="$1"
start_node "$n" $((3306 + n)) $((8080 + n)) "$2"
