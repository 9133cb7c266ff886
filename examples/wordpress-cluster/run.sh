#!/usr/bin/env bash
# Distributed WordPress on one machine: 3 Marmot nodes and 3 WordPress front ends (Debian's `wordpress`
# package served by PHP's built-in web server), front end N talking to node N. Everything on 127.0.0.1.
#   examples/wordpress-cluster/run.sh [start]   start what does not run yet, install WordPress once, print the URLs
#   examples/wordpress-cluster/run.sh status    nodes and front ends: PID, ports, log (exit 0 only if all run)
#   examples/wordpress-cluster/run.sh stop      stop exactly the processes it started (by their PID files)
# Ports and folder (defaults in brackets), e.g. to run beside examples/run-cluster.sh or in a test:
#   MARMOT_WP_HTTP_PORTS ["9101 9102 9103"]     front ends (http://127.0.0.1:PORT)
#   MARMOT_WP_MYSQL_PORTS ["9191 9192 9193"]    the nodes' MySQL ports
#   MARMOT_WP_CLUSTER_PORTS ["9181 9182 9183"]  the nodes' cluster ports
#   MARMOT_RUN_DIR [/tmp/marmot-wordpress]      node-N/ (config, data, log, PID), site/ (WordPress), wp-N/
#   MARMOT_WP_ADMIN_PASSWORD [marmot-wordpress] the password of WordPress user `admin`
export MARMOT_RUN_DIR="${MARMOT_RUN_DIR:-/tmp/marmot-wordpress}"
source "$(dirname "$0")/../_common.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORDPRESS=/usr/share/wordpress
read -r -a HTTP_PORTS <<< "${MARMOT_WP_HTTP_PORTS:-9101 9102 9103}"
read -r -a MYSQL_PORTS <<< "${MARMOT_WP_MYSQL_PORTS:-9191 9192 9193}"
read -r -a CLUSTER_PORTS <<< "${MARMOT_WP_CLUSTER_PORTS:-9181 9182 9183}"
ADMIN_PASSWORD="${MARMOT_WP_ADMIN_PASSWORD:-marmot-wordpress}"
SITE="$RUN_DIR/site"

# frontend_pid N: the PID of front end N if it runs (its PID file names a live `php` process), else nothing
frontend_pid() {
  local pidfile="$RUN_DIR/wp-$1/php.pid" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
  grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && return 0
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q '^php -S ' && echo "$pid"  # not a reused PID
  return 0
}

# port_open PORT: something accepts connections on 127.0.0.1:PORT
port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

describe_frontend() {
  local n="$1" pid url node
  url="$(cat "$RUN_DIR/wp-$n/url" 2>/dev/null || echo "?")"
  node="$(cat "$RUN_DIR/wp-$n/db_host" 2>/dev/null || echo "?")"
  pid="$(frontend_pid "$n")"
  if [ -n "$pid" ]; then
    echo "front end $n: running, pid $pid, $url -> node $n (MySQL $node), log $RUN_DIR/wp-$n/php.log"
  else
    echo "front end $n: not running ($url -> node $n, log $RUN_DIR/wp-$n/php.log)"
  fi
}

status_all() {
  local rc=0 n
  status_nodes || rc=$?
  for n in 1 2 3; do
    [ -d "$RUN_DIR/wp-$n" ] || continue
    describe_frontend "$n"
    [ -n "$(frontend_pid "$n")" ] || rc=3
  done
  return "$rc"
}

# stop_frontend N: SIGTERM the php process front end N's PID file names, wait for it, remove the file
stop_frontend() {
  local n="$1" pid
  pid="$(frontend_pid "$n")"
  if [ -z "$pid" ]; then rm -f "$RUN_DIR/wp-$n/php.pid"; return 1; fi
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "front end $n (pid $pid) has not exited after 10 s; left running" >&2
    return 2
  fi
  rm -f "$RUN_DIR/wp-$n/php.pid"
  echo "stopped front end $n (pid $pid)"
}

stop_all() {
  local n rc failed=0
  for n in 1 2 3; do
    rc=0; stop_frontend "$n" || rc=$?
    [ "$rc" != 2 ] || failed=1
  done
  stop_nodes || failed=1
  return "$failed"
}

# start_wp_node N: node N with the read and write levels WordPress needs (see README "Distributed WordPress")
start_wp_node() {
  local n="$1" pid seeds=()
  pid="$(node_pid "$n")"
  if [ -n "$pid" ]; then echo "node $n already runs (pid $pid): left as it is"; return 0; fi
  [ "$n" = 1 ] || seeds=("127.0.0.1:${CLUSTER_PORTS[0]}")
  write_config "$n" "${MYSQL_PORTS[$((n - 1))]}" "${CLUSTER_PORTS[$((n - 1))]}" "${seeds[@]}"
  cat >> "$RUN_DIR/node-$n/config.toml" <<TOML
[replication]
# a write is acknowledged once 2 of the 3 nodes hold it, and every read first catches this node up with
# a majority (a read barrier): 2 + 2 > 3, so any front end shows what another one wrote just before
default_write_consistency = "QUORUM"
default_read_consistency = "QUORUM"
TOML
  launch_node "$n"
}

# make_site: one copy of Debian's WordPress shared by the three front ends, with a wp-config.php that takes
# the database node and the site URL from the front end's environment (the same keys, salts and table
# prefix for all: they are one site)
make_site() {
  [ -f "$SITE/wp-config.php" ] && grep -q MARMOT_WP_DB_HOST "$SITE/wp-config.php" && return 0
  rm -rf "$SITE"
  cp -rL "$WORDPRESS" "$SITE"
  rm -f "$SITE/.htaccess" "$SITE/wp-config.php"
  mkdir -p "$SITE/wp-content/themes" "$SITE/wp-content/uploads"
  cp -r "$HERE/theme" "$SITE/wp-content/themes/marmot-example"
  local salts="" key
  for key in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
    salts+="define('$key', '$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')');"$'\n'
  done
  cat > "$SITE/wp-config.php" <<PHP
<?php
// Written by examples/wordpress-cluster/run.sh. Front end N is started with MARMOT_WP_DB_HOST = node N's
// MySQL address and MARMOT_WP_URL = its own URL; everything else is the same for every front end.
if (!getenv('MARMOT_WP_DB_HOST') || !getenv('MARMOT_WP_URL')) {
    die('start this front end with examples/wordpress-cluster/run.sh');
}
define('DB_NAME', 'wordpress');
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', getenv('MARMOT_WP_DB_HOST'));
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
// home and siteurl are options, one value for the whole cluster: each front end overrides them with its
// own URL, or it would redirect every visitor to the front end that ran the installer
define('WP_HOME', getenv('MARMOT_WP_URL'));
define('WP_SITEURL', getenv('MARMOT_WP_URL'));
$salts
\$table_prefix = 'wp_';
define('WP_DEBUG', false);
if (!defined('ABSPATH')) { define('ABSPATH', __DIR__ . '/'); }
define('WP_CONTENT_DIR', __DIR__ . '/wp-content');
// scheduled events: run them from one place (php wp-cron.php), not from every front end's page views
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('FS_METHOD', 'direct');
require_once ABSPATH . 'wp-settings.php';
PHP
}

# start_frontend N: php -S on front end N's port, talking to node N
start_frontend() {
  local n="$1" port="${HTTP_PORTS[$(($1 - 1))]}" dir="$RUN_DIR/wp-$1" pid
  pid="$(frontend_pid "$n")"
  if [ -n "$pid" ]; then echo "front end $n already runs (pid $pid): left as it is"; return 0; fi
  if port_open "$port"; then echo "front end $n: port $port is in use" >&2; return 1; fi
  mkdir -p "$dir"
  echo "http://127.0.0.1:$port" > "$dir/url"
  echo "127.0.0.1:${MYSQL_PORTS[$((n - 1))]}" > "$dir/db_host"
  MARMOT_WP_DB_HOST="$(cat "$dir/db_host")" MARMOT_WP_URL="$(cat "$dir/url")" \
    php -S "127.0.0.1:$port" -t "$SITE" < /dev/null > "$dir/php.log" 2>&1 &
  echo $! > "$dir/php.pid"
  pid=$!
  for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "front end $n did not start (log: $dir/php.log):" >&2; tail -n 5 "$dir/php.log" >&2
      rm -f "$dir/php.pid"; return 1
    fi
    port_open "$port" && { describe_frontend "$n"; return 0; }
    sleep 0.1
  done
  echo "front end $n does not answer on port $port (log: $dir/php.log)" >&2
  return 1
}

start_all() {
  if [ ! -f "$WORDPRESS/wp-login.php" ] || ! command -v php > /dev/null; then
    echo "needs the Debian packages wordpress, php-cli, php-mysql, php-xml" >&2
    return 1
  fi
  local n
  for n in 1 2 3; do start_wp_node "$n" || return 1; done
  local alive=""
  for _ in $(seq 1 60); do  # the joiners turn ALIVE once they have caught up; QUORUM needs them
    alive="$("$MARMOT" members --address "127.0.0.1:${CLUSTER_PORTS[0]}" --secret "$SECRET" 2>/dev/null || true)"
    grep -q "3 members, 3 alive" <<< "$alive" && break
    sleep 0.5
  done
  grep -q "3 members, 3 alive" <<< "$alive" || { echo "the 3 nodes did not all turn ALIVE:" >&2; echo "$alive" >&2; return 1; }
  php -r '$m = new mysqli("127.0.0.1", "root", "", "", (int) $argv[1]);
          if (!$m->query("CREATE DATABASE IF NOT EXISTS wordpress")) { fwrite(STDERR, $m->error . "\n"); exit(1); }' \
    "${MYSQL_PORTS[0]}" || return 1
  make_site || return 1
  MARMOT_WP_DB_HOST="127.0.0.1:${MYSQL_PORTS[0]}" MARMOT_WP_URL="http://127.0.0.1:${HTTP_PORTS[0]}" \
    php "$HERE/install.php" "$SITE" "Marmot WordPress" admin "$ADMIN_PASSWORD" admin@example.com \
    2>> "$RUN_DIR/install.log" | sed 's/^/WordPress: /'
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "WordPress install failed (log: $RUN_DIR/install.log)" >&2; return 1; }
  for n in 1 2 3; do start_frontend "$n" || return 1; done
  echo
  for n in 1 2 3; do echo "WordPress front end $n: http://127.0.0.1:${HTTP_PORTS[$((n - 1))]}/  (node $n)"; done
  echo "log in at http://127.0.0.1:${HTTP_PORTS[0]}/wp-login.php as admin / $ADMIN_PASSWORD"
  echo "status: $0 status     stop: $0 stop"
}

rc=0
case "${1:-start}" in
  start) start_all || rc=$? ;;
  status) status_all || rc=$? ;;
  stop) stop_all || rc=$? ;;
  *) echo "usage: $0 [start | status | stop]" >&2; rc=2 ;;
esac
exit "$rc"
