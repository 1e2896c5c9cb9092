#!/usr/bin/env bash
# Three local MariaDB Galera nodes for development and the Galera test tier (npm run test:galera).
#
#   scripts/galera.sh up DIR        start nodes 1-3 (data in DIR/n1..n3, created when missing)
#   scripts/galera.sh down DIR      stop every running node (n3, n2, then n1: n1 stops last, so
#                                   it is the one safe to bootstrap the next `up`)
#   scripts/galera.sh join DIR N    start node N into the running cluster (IST or SST from a
#                                   donor; never --wsrep-new-cluster)
#   scripts/galera.sh status DIR    each node's wsrep_local_state_comment
#
# Node N listens for SQL on 127.0.0.1:331N (root, empty password), for group communication on
# 456N, for IST on 457N and for SST on 458N. DATABASE_URL for the service:
#   mysql://root@127.0.0.1:3311,127.0.0.1:3312,127.0.0.1:3313/velobase
set -euo pipefail

GALERA_PROVIDER=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}
MARIADBD=${MARIADBD:-/usr/sbin/mariadbd}
NODES=(1 2 3)
SYNC_WAIT_SECONDS=${GALERA_SYNC_WAIT_SECONDS:-120}
# Evicting a dead node pauses writes on the others for about evs.suspect_timeout (see
# docs/scaling.md); GALERA_PROVIDER_OPTIONS adds to or overrides these.
PROVIDER_OPTIONS="gcache.size=128M;evs.suspect_timeout=PT5S;evs.inactive_timeout=PT15S"

fail() {
  echo "galera: $*" >&2
  exit 1
}

usage() {
  sed -n '2,14p' "$0" >&2
  exit 2
}

[ $# -ge 2 ] || usage
command=$1
dir=$2

node_dir() { echo "${dir}/n$1"; }
socket_of() { echo "$(node_dir "$1")/mysqld.sock"; }
pid_of() {
  local file
  file="$(node_dir "$1")/mariadbd.pid"
  [ -s "$file" ] && cat "$file"
}
running() {
  local pid
  pid=$(pid_of "$1") || return 1
  kill -0 "$pid" 2>/dev/null
}
sql() {
  local node=$1
  shift
  mariadb --no-defaults -uroot -h127.0.0.1 -P"331${node}" -N -B -e "$*"
}
state_of() { sql "$1" "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2; }

write_config() {
  local n=$1 d
  d=$(node_dir "$n")
  cat >"${d}/my.cnf" <<EOF
[mysqld]
user = mysql
datadir = ${d}/data
socket = ${d}/mysqld.sock
pid-file = ${d}/mariadbd.pid
log-error = ${d}/error.log
bind-address = 127.0.0.1
port = 331${n}
skip-name-resolve
performance_schema = OFF
innodb_buffer_pool_size = 256M
innodb_log_file_size = 64M
# The log is flushed once a second; a committed write lives on every node's memory (Galera's
# durability), and a kill -9 of mariadbd keeps what the OS has.
innodb_flush_log_at_trx_commit = 2
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = ${GALERA_PROVIDER}
wsrep_cluster_name = velobase_local
wsrep_cluster_address = gcomm://127.0.0.1:4561,127.0.0.1:4562,127.0.0.1:4563
wsrep_node_name = n${n}
wsrep_node_address = 127.0.0.1:456${n}
wsrep_node_incoming_address = 127.0.0.1:331${n}
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:456${n};ist.recv_addr=127.0.0.1:457${n};${PROVIDER_OPTIONS};${GALERA_PROVIDER_OPTIONS:-}"
wsrep_sst_receive_address = 127.0.0.1:458${n}
wsrep_sst_method = rsync
wsrep_slave_threads = 2
EOF
}

init_node() {
  local n=$1 d
  d=$(node_dir "$n")
  [ -d "${d}/data/mysql" ] && return 0
  mkdir -p "${d}/data"
  write_config "$n"
  chown -R mysql:mysql "$d"
  mariadb-install-db --defaults-file="${d}/my.cnf" --auth-root-authentication-method=normal >"${d}/install.log" 2>&1 ||
    fail "mariadb-install-db failed for node ${n} (see ${d}/install.log)"
}

start_node() {
  local n=$1
  shift
  running "$n" && return 0
  write_config "$n"
  chown -R mysql:mysql "$(node_dir "$n")"
  # mariadbd itself in the background: start-stop-daemon refuses while the main server runs.
  "$MARIADBD" --defaults-file="$(node_dir "$n")/my.cnf" "$@" >>"$(node_dir "$n")/stdout.log" 2>&1 &
  echo $! >"$(node_dir "$n")/started.pid"
  disown
}

# The node's last committed position as InnoDB has it (`uuid:seqno`), or nothing.
recover_position() {
  local n=$1 log
  running "$n" && return 0
  write_config "$n"
  chown -R mysql:mysql "$(node_dir "$n")"
  log="$(node_dir "$n")/recover.log"
  rm -f "$log"
  "$MARIADBD" --defaults-file="$(node_dir "$n")/my.cnf" --wsrep-recover --log-error="$log" >/dev/null 2>&1 || true
  grep -o 'WSREP: Recovered position: [0-9a-f-]*:[0-9-]*' "$log" 2>/dev/null | tail -1 | sed 's/.*Recovered position: //'
}

wait_synced() {
  local n=$1
  for _ in $(seq 1 "$SYNC_WAIT_SECONDS"); do
    # Its own process, not another one on the same port.
    kill -0 "$(cat "$(node_dir "$n")/started.pid")" 2>/dev/null || fail "node ${n} exited (see $(node_dir "$n")/error.log)"
    [ "$(state_of "$n")" = "Synced" ] && return 0
    sleep 1
  done
  fail "node ${n} did not reach Synced within ${SYNC_WAIT_SECONDS} s (see $(node_dir "$n")/error.log)"
}

# root over TCP from 127.0.0.1 with an empty password, like the development server.
open_root() {
  mariadb --no-defaults -uroot -S "$(socket_of 1)" -e \
    "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
}

case "$command" in
up)
  mkdir -p "$dir"
  chmod 755 "$dir"
  for n in "${NODES[@]}"; do init_node "$n"; done
  if ! running 1 && ! running 2 && ! running 3; then
    # n1 stopped last (see down), so its state is the newest: it starts the new cluster.
    sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' "$(node_dir 1)/data/grastate.dat" 2>/dev/null || true
    start_node 1 --wsrep-new-cluster
    for _ in $(seq 1 "$SYNC_WAIT_SECONDS"); do
      [ -S "$(socket_of 1)" ] && break
      sleep 1
    done
    for _ in $(seq 1 "$SYNC_WAIT_SECONDS"); do
      open_root 2>/dev/null && break
      sleep 1
    done
    wait_synced 1
  fi
  for n in "${NODES[@]}"; do
    start_node "$n"
    wait_synced "$n"
  done
  echo "galera: 3 nodes Synced on 127.0.0.1:3311-3313"
  ;;
join)
  [ $# -eq 3 ] || usage
  # After a crash (kill -9) the node's saved position is unknown (seqno -1). Recover it from
  # InnoDB first, as mysqld_safe does, so the node catches up by IST instead of a full SST.
  position=$(recover_position "$3")
  if [ -n "$position" ]; then start_node "$3" --wsrep-start-position="$position"; else start_node "$3"; fi
  wait_synced "$3"
  ;;
down)
  for n in 3 2 1; do
    pid=$(pid_of "$n") || continue
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
  done
  ;;
status)
  for n in "${NODES[@]}"; do echo "n${n}: $(state_of "$n" || true)"; done
  ;;
*)
  usage
  ;;
esac
