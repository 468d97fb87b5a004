#!/usr/bin/env bash
# The test command: installs what the tests need, starts a private RabbitMQ broker on loopback,
# runs the test projects, stops the broker, and prints one closing line
# "tests: N passed, N failed, N skipped".
#   scripts/test.sh [--tier unit|broker|endtoend[,...]] [extra dotnet test args, e.g. --filter FullyQualifiedName~Curation]
# Tiers (the class-level trait Tier on every test class):
#   unit      no broker, no other process (the broker is not started)
#   broker    needs the RabbitMQ broker
#   endtoend  real service hosts with the trainer or the whole pipeline, the built CLI, the quick demo,
#             and the Python client's pytest suite (clients/python/tests, against a real `jestmesh up`)
# Without --tier every tier runs. A --filter given too is combined with the tier's (both must hold);
# a --filter selects .NET tests only, so the Python suite does not run with one.
# The closing line counts the .NET and the Python tests together.
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
python_tests=1
if [ -n "$tiers" ]; then
  needs_broker=0
  python_tests=0
  IFS=',' read -ra wanted <<< "$tiers"
  for t in "${wanted[@]}"; do
    case "${t,,}" in
      unit) name=Unit ;;
      broker) name=Broker; needs_broker=1 ;;
      endtoend|end-to-end|e2e) name=EndToEnd; needs_broker=1; python_tests=1 ;;
      *) echo "test.sh: unknown tier '$t' (unit, broker, endtoend)" >&2; exit 2 ;;
    esac
    tier_filter="${tier_filter:+$tier_filter|}Tier=$name"
  done
fi
if [ -n "$filter" ]; then
  # A --filter of the caller's selects .NET tests: the Python suite runs only without one.
  python_tests=0
fi
if [ -n "$tier_filter" ] && [ -n "$filter" ]; then
  filter="($tier_filter)&($filter)"
elif [ -n "$tier_filter" ]; then
  filter=$tier_filter
fi
if [ -n "$filter" ]; then
  args+=(--filter "$filter")
fi

# Everything any tier needs (dataset, broker, and Debian's Python packages for the bundle and client tests).
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
counts=$(grep -oE 'Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+' "$log" \
  | awk -F'[:,] +' '{f+=$2; p+=$4; s+=$6} END {printf "%d %d %d", p, f, s}')
read -r passed failed skipped <<< "$counts"
rm -f "$log"
if [ "$python_tests" = 1 ]; then
  # The Python client against a real `jestmesh up` (its own broker on a port the OS picks, under a temp --state).
  # Debian's interpreter: its python3-grpcio/-protobuf/-numpy/-torch/-pytest, not a pyenv python3 on PATH.
  junit=$(mktemp /tmp/jestmesh-pytest.XXXXXX.xml)
  set +e
  /usr/bin/python3 -m pytest -p no:cacheprovider -q "$root/clients/python/tests" --junitxml="$junit"
  py_status=$?
  set -e
  read -r pp pf ps <<< "$(/usr/bin/python3 - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 1, 0)  # no report: pytest itself failed
    sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
n = lambda k: sum(int(s.get(k, 0)) for s in suites)
print(n("tests") - n("failures") - n("errors") - n("skipped"), n("failures") + n("errors"), n("skipped"))
PY
)"
  rm -f "$junit"
  echo "pytest: $pp passed, $pf failed, $ps skipped"
  passed=$((passed + pp)); failed=$((failed + pf)); skipped=$((skipped + ps))
  if [ "$py_status" != 0 ] && [ "$status" = 0 ]; then
    status=$py_status
  fi
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
