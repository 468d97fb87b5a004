#!/usr/bin/env bash
# The test command: installs what the tests need, starts a private RabbitMQ broker on loopback,
# runs the test projects, stops the broker, and prints one closing line
# "tests: N passed, N failed, N skipped".
#   scripts/test.sh [--tier unit|broker|endtoend[,...]] [extra dotnet test args, e.g. --filter FullyQualifiedName~Curation]
# Tiers (the class-level trait Tier on every test class):
#   unit      no broker, no other process (the broker is not started)
#   broker    needs the RabbitMQ broker
#   endtoend  real service hosts with the trainer or the whole pipeline, the built CLI, the quick demo
# Without --tier every tier runs. A --filter given too is combined with the tier's (both must hold).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

tiers=""
filter=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tier) tiers=${2:?"test.sh: --tier needs a value (unit, broker, endtoend)"}; shift 2 ;;
    --tier=*) tiers=${1#--tier=}; shift ;;
    --filter) filter=${2:?"test.sh: --filter needs a value"}; shift 2 ;;
    --filter=*) filter=${1#--filter=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

tier_filter=""
needs_broker=1
if [ -n "$tiers" ]; then
  needs_broker=0
  IFS=',' read -ra wanted <<< "$tiers"
  for t in "${wanted[@]}"; do
    case "${t,,}" in
      unit) name=Unit ;;
      broker) name=Broker; needs_broker=1 ;;
      endtoend|end-to-end|e2e) name=EndToEnd; needs_broker=1 ;;
      *) echo "test.sh: unknown tier '$t' (unit, broker, endtoend)" >&2; exit 2 ;;
    esac
    tier_filter="${tier_filter:+$tier_filter|}Tier=$name"
  done
fi
if [ -n "$tier_filter" ] && [ -n "$filter" ]; then
  filter="($tier_filter)&($filter)"
elif [ -n "$tier_filter" ]; then
  filter=$tier_filter
fi
if [ -n "$filter" ]; then
  args+=(--filter "$filter")
fi

"$root/scripts/setup.sh" --tests

export JESTMESH_AMQP_PORT=${JESTMESH_AMQP_PORT:-5699}
if [ "$needs_broker" = 1 ]; then
  broker_dir=$(mktemp -d /tmp/jestmesh-test-broker.XXXXXX)
  export JESTMESH_BROKER_DIR="$broker_dir"
  cleanup() { "$root/scripts/broker.sh" stop "$broker_dir" || true; rm -rf "$broker_dir"; }
  trap cleanup EXIT
  echo "test: starting RabbitMQ on 127.0.0.1:$JESTMESH_AMQP_PORT" >&2
  JESTMESH_TEST_AMQP_URI=$("$root/scripts/broker.sh" start "$broker_dir")
  export JESTMESH_TEST_AMQP_URI
  export JESTMESH_TEST_BROKER_SCRIPT="$root/scripts/broker.sh"
else
  # Unit tier: no broker; a test that reaches for one fails saying so.
  unset JESTMESH_TEST_AMQP_URI JESTMESH_TEST_BROKER_SCRIPT JESTMESH_BROKER_DIR
  echo "test: tier $tiers: no broker" >&2
fi

dotnet build JestMesh.sln -c Release --nologo -v quiet -clp:ErrorsOnly
log=$(mktemp)
set +e
dotnet test JestMesh.sln -c Release --no-build --nologo "${args[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# dotnet test prints one "Failed: a, Passed: b, Skipped: c" line per assembly; add them up.
grep -oE 'Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+' "$log" \
  | awk -F'[:,] +' '{f+=$2; p+=$4; s+=$6} END {printf "tests: %d passed, %d failed, %d skipped\n", p, f, s}'
rm -f "$log"
exit "$status"
