#!/usr/bin/env bash
# A private RabbitMQ broker on loopback, in its own data directory, for tests and the local demo.
#   scripts/broker.sh start [DIR]   boot it (waits until it answers), print its AMQP URI
#   scripts/broker.sh stop  [DIR]   stop it and every process it started (epmd included)
#   scripts/broker.sh ctl   [DIR] ARGS...   rabbitmqctl against it (e.g. stop_app, start_app)
# Ports come from JESTMESH_AMQP_PORT (default 5679) and JESTMESH_DIST_PORT (default AMQP + 20000).
# With JESTMESH_AMQPS_PORT and JESTMESH_TLS_DIR (holding ca.crt, server.crt, server.key) it also
# listens for AMQPS on 127.0.0.1:JESTMESH_AMQPS_PORT with that certificate; it asks clients for a
# certificate from ca.crt (verify_peer) but does not require one.
# Running as root, the packaged wrapper switches to the rabbitmq user and trips over root-owned
# directories, so the server script is started directly with everything pointing into DIR.
set -euo pipefail

cmd=${1:?usage: broker.sh start|stop|ctl [DIR] [ARGS...]}
dir=${2:-${JESTMESH_BROKER_DIR:-/tmp/jestmesh-broker}}
shift $(( $# >= 2 ? 2 : 1 ))
port=${JESTMESH_AMQP_PORT:-5679}
dist=${JESTMESH_DIST_PORT:-$((port + 20000))}
node="jestmesh-$port@localhost"
rmq_bin=/usr/lib/rabbitmq/bin

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

case "$cmd" in
  start)
    if [ ! -x "$rmq_bin/rabbitmq-server" ]; then
      echo "broker.sh: RabbitMQ is not installed; run: apt-get install -y rabbitmq-server" >&2
      exit 2
    fi
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
    if [ -f "$dir/rabbit.pid" ] && kill -0 "$(cat "$dir/rabbit.pid")" 2>/dev/null; then
      echo "amqp://guest:guest@127.0.0.1:$port/"
      exit 0
    fi
    # The Erlang cookie must be private to HOME, or rabbitmqctl refuses it.
    [ -f "$HOME/.erlang.cookie" ] || { head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$HOME/.erlang.cookie"; chmod 400 "$HOME/.erlang.cookie"; }
    setsid "$rmq_bin/rabbitmq-server" > "$dir/log/console.log" 2>&1 < /dev/null &
    "$rmq_bin/rabbitmqctl" -n "$node" wait --timeout 90 "$dir/rabbit.pid" > /dev/null
    echo "amqp://guest:guest@127.0.0.1:$port/"
    ;;
  stop)
    env_for_broker
    if [ -f "$dir/rabbit.pid" ]; then
      pid=$(cat "$dir/rabbit.pid")
      "$rmq_bin/rabbitmqctl" -n "$node" stop "$dir/rabbit.pid" > /dev/null 2>&1 || kill "$pid" 2>/dev/null || true
      rm -f "$dir/rabbit.pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    pkill -f "$dir/mnesia" 2>/dev/null || true
    # epmd outlives the node; stop it once no Erlang node is left on this machine.
    pgrep -x beam.smp > /dev/null || pkill -x epmd 2>/dev/null || true
    ;;
  ctl)
    env_for_broker
    exec "$rmq_bin/rabbitmqctl" -n "$node" "$@"
    ;;
  *)
    echo "broker.sh: unknown command '$cmd' (start|stop|ctl)" >&2
    exit 2
    ;;
esac
