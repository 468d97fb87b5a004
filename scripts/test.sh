#!/usr/bin/env bash
# The test command: installs what the tests need, starts a private RabbitMQ broker on loopback,
# runs every test project, stops the broker, and prints one closing line "N passed, N failed".
#   scripts/test.sh [extra dotnet test args, e.g. --filter FullyQualifiedName~Curation]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh"

export JESTMESH_AMQP_PORT=${JESTMESH_AMQP_PORT:-5699}
broker_dir=$(mktemp -d /tmp/jestmesh-test-broker.XXXXXX)
export JESTMESH_BROKER_DIR="$broker_dir"
cleanup() { "$root/scripts/broker.sh" stop "$broker_dir" || true; rm -rf "$broker_dir"; }
trap cleanup EXIT
echo "test: starting RabbitMQ on 127.0.0.1:$JESTMESH_AMQP_PORT" >&2
export JESTMESH_TEST_AMQP_URI=$("$root/scripts/broker.sh" start "$broker_dir")
export JESTMESH_TEST_BROKER_SCRIPT="$root/scripts/broker.sh"

dotnet build JestMesh.sln -c Release --nologo -v quiet -clp:ErrorsOnly
log=$(mktemp)
set +e
dotnet test JestMesh.sln -c Release --no-build --nologo "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# dotnet test prints one "Failed: a, Passed: b, Skipped: c" line per assembly; add them up.
grep -oE 'Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+' "$log" \
  | awk -F'[:,] +' '{f+=$2; p+=$4; s+=$6} END {printf "tests: %d passed, %d failed, %d skipped\n", p, f, s}'
rm -f "$log"
exit "$status"
