#!/usr/bin/env bash
# A private RabbitMQ broker on loopback, in its own data directory, for tests and the local demo.
#   scripts/broker.sh start [DIR]   boot it (waits until it answers), print its AMQP URI
#   scripts/broker.sh stop  [DIR]   stop it and every process it started (epmd included)
#   scripts/broker.sh ctl   [DIR] ARGS...   rabbitmqctl against it (e.g. stop_app, start_app)
# Ports come from JESTMESH_AMQP_PORT (default 5679) and JESTMESH_DIST_PORT (default AMQP + 20000).
#
# A cluster: JESTMESH_BROKER_NODES=N (e.g. 3) starts N nodes on AMQP ports PORT .. PORT+N-1 (each
# with its own node name jestmesh-PORT@localhost, distribution port AMQP + 20000 and data directory
# DIR/node-PORT), joins them into one cluster and prints their URIs comma-separated: the form
# Messaging:Uri takes for a client that fails over between nodes. `start` again restarts any node
# that died (it rejoins by itself from its data directory); `stop` stops them all; `ctl` talks to
# the node on JESTMESH_AMQP_PORT; `kill DIR PORT` SIGKILLs one node (a crash, for failover tests).
# With JESTMESH_AMQPS_PORT and JESTMESH_TLS_DIR (holding ca.crt, server.crt, server.key) it also
# listens for AMQPS on 127.0.0.1:JESTMESH_AMQPS_PORT with that certificate; it asks clients for a
# certificate from ca.crt (verify_peer) but does not require one.
# Running as root, the packaged wrapper switches to the rabbitmq user and trips over root-owned
# directories, so the server script is started directly with everything pointing into DIR.
set -euo pipefail

cmd=${1:?usage: broker.sh start|stop|ctl|kill [DIR] [ARGS...]}
base_dir=${2:-${JESTMESH_BROKER_DIR:-/tmp/jestmesh-broker}}
shift $(( $# >= 2 ? 2 : 1 ))
base_port=${JESTMESH_AMQP_PORT:-5679}
nodes=${JESTMESH_BROKER_NODES:-1}
rmq_bin=/usr/lib/rabbitmq/bin
case "$nodes" in
  ''|*[!0-9]*|0) echo "broker.sh: JESTMESH_BROKER_NODES must be a positive integer, not '$nodes'" >&2; exit 2 ;;
esac

# Selects node $1 (its AMQP port): sets port, dist, node and dir. A single broker keeps the
# layout it always had (DIR itself); cluster nodes live in DIR/node-PORT.
select_node() {
  port=$1
  if [ "$nodes" = 1 ] && [ ! -d "$base_dir/node-$port" ]; then
    dir=$base_dir
    dist=${JESTMESH_DIST_PORT:-$((port + 20000))}
  else
    dir=$base_dir/node-$port
    dist=$((port + 20000))
  fi
  node="jestmesh-$port@localhost"
}
select_node "$base_port"

env_for_broker() {
  export HOME="$dir/home"
  export RABBITMQ_NODENAME="$node"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$port"
  export RABBITMQ_DIST_PORT="$dist"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_PID_FILE="$dir/rabbit.pid"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
  # Keep Erlang distribution on loopback too (it listens on all interfaces by default).
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

# A process that runs (a killed one stays a zombie until its parent reaps it, and kill -0 still succeeds on a zombie).
alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }

start_node() {
  select_node "$1"
  mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
  env_for_broker
  echo "[]." > "$dir/enabled_plugins"
  cat > "$dir/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$port
loopback_users = none
vm_memory_high_watermark.relative = 0.2
disk_free_limit.absolute = 50MB
CONF
  if [ -n "${JESTMESH_AMQPS_PORT:-}" ]; then
    [ "$nodes" = 1 ] || { echo "broker.sh: JESTMESH_AMQPS_PORT is for a single broker, not a $nodes-node cluster" >&2; exit 2; }
    tls=${JESTMESH_TLS_DIR:?"broker.sh: JESTMESH_AMQPS_PORT needs JESTMESH_TLS_DIR (ca.crt, server.crt, server.key)"}
    for f in ca.crt server.crt server.key; do
      [ -r "$tls/$f" ] || { echo "broker.sh: $tls/$f is missing" >&2; exit 2; }
    done
    cat >> "$dir/rabbitmq.conf" <<CONF
listeners.ssl.1 = 127.0.0.1:$JESTMESH_AMQPS_PORT
ssl_options.cacertfile = $tls/ca.crt
ssl_options.certfile = $tls/server.crt
ssl_options.keyfile = $tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
CONF
  fi
  echo "[]." > "$dir/advanced.config"
  if [ -f "$dir/rabbit.pid" ] && alive "$(cat "$dir/rabbit.pid")"; then
    return 0
  fi
  # The Erlang cookie must be private to HOME, or rabbitmqctl refuses it; cluster nodes share one.
  if [ ! -f "$HOME/.erlang.cookie" ]; then
    if [ -n "${cookie:-}" ]; then printf '%s' "$cookie" > "$HOME/.erlang.cookie"; else head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$HOME/.erlang.cookie"; fi
    chmod 400 "$HOME/.erlang.cookie"
  fi
  cookie=$(cat "$HOME/.erlang.cookie")
  rm -f "$dir/rabbit.pid"
  setsid "$rmq_bin/rabbitmq-server" > "$dir/log/console.log" 2>&1 < /dev/null &
  started_nodes="${started_nodes:-} $port"
}

wait_node() {
  select_node "$1"
  env_for_broker
  "$rmq_bin/rabbitmqctl" -n "$node" wait --timeout 90 "$dir/rabbit.pid" > /dev/null
}

stop_node() {
  select_node "$1"
  env_for_broker
  if [ -f "$dir/rabbit.pid" ]; then
    pid=$(cat "$dir/rabbit.pid")
    "$rmq_bin/rabbitmqctl" -n "$node" stop "$dir/rabbit.pid" > /dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    rm -f "$dir/rabbit.pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  pkill -f "$dir/mnesia" 2>/dev/null || true
}

ports() { seq "$base_port" $((base_port + nodes - 1)); }

uris() {
  local out="" p
  for p in $(ports); do out="${out:+$out,}amqp://guest:guest@127.0.0.1:$p/"; done
  echo "$out"
}

case "$cmd" in
  start)
    if [ ! -x "$rmq_bin/rabbitmq-server" ]; then
      echo "broker.sh: RabbitMQ is not installed; run: apt-get install -y rabbitmq-server" >&2
      exit 2
    fi
    cookie=""
    started_nodes=""
    for p in $(ports); do start_node "$p"; done
    for p in $(ports); do wait_node "$p"; done
    # Join every node that is not yet in the first node's cluster (a node restarted after a
    # crash is a member already and rejoins by itself).
    if [ "$nodes" -gt 1 ]; then
      select_node "$base_port"; first=$node
      for p in $(ports | tail -n +2); do
        select_node "$p"; env_for_broker
        if ! "$rmq_bin/rabbitmqctl" -n "$node" cluster_status --formatter json 2>/dev/null | grep -q "\"$first\""; then
          # The nodes report transient errors while they join: keep them in the node's log, show them on failure.
          for step in stop_app "join_cluster $first" start_app; do
            # shellcheck disable=SC2086
            "$rmq_bin/rabbitmqctl" -n "$node" $step >> "$dir/log/join.log" 2>&1 || { echo "broker.sh: rabbitmqctl $step on $node failed:" >&2; tail -20 "$dir/log/join.log" >&2; exit 1; }
          done
        fi
      done
    fi
    uris
    ;;
  stop)
    if [ "$nodes" = 1 ]; then
      # Whatever was started in DIR: one broker, or the nodes of a cluster.
      found=$(find "$base_dir" -maxdepth 1 -type d -name 'node-*' 2>/dev/null | sed 's/.*node-//' || true)
      if [ -n "$found" ]; then nodes=$(echo "$found" | wc -l); for p in $found; do stop_node "$p"; done; else stop_node "$base_port"; fi
    else
      for p in $(ports); do stop_node "$p"; done
    fi
    # epmd outlives the node; stop it once no Erlang node is left on this machine.
    pgrep -x beam.smp > /dev/null || pkill -x epmd 2>/dev/null || true
    ;;
  kill)
    victim=${1:?usage: broker.sh kill DIR PORT}
    select_node "$victim"
    [ -f "$dir/rabbit.pid" ] || { echo "broker.sh: no node on port $victim in $base_dir" >&2; exit 2; }
    pid=$(cat "$dir/rabbit.pid")
    kill -9 "$pid"
    # Return once it is gone, so a `start` right after restarts it instead of finding it "running".
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    ;;
  ctl)
    env_for_broker
    exec "$rmq_bin/rabbitmqctl" -n "$node" "$@"
    ;;
  *)
    echo "broker.sh: unknown command '$cmd' (start|stop|ctl|kill)" >&2
    exit 2
    ;;
esac
