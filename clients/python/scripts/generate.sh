#!/usr/bin/env bash
# Compiles protos/jestmesh/v1/*.proto into the descriptor set the Python package builds its message
# classes from at run time (jestmesh/descriptors/jestmesh_v1.binpb, committed; tests/test_descriptors.py
# fails when it is stale). Any protoc that knows proto3 `optional` (3.15+) will do:
#   - $PROTOC when set;
#   - the protoc in the Grpc.Tools NuGet package the .NET build restores (~/.nuget/packages/grpc.tools);
#   - `python3 -m grpc_tools.protoc` from a pip-installed grpcio-tools.
# (Debian's python3-grpc-tools 1.14 cannot parse `optional`; its protoc is not used.)
#   clients/python/scripts/generate.sh [OUT]    (default: the committed file)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here/jestmesh/descriptors/jestmesh_v1.binpb}
args=(-I "$root/protos" --include_imports --descriptor_set_out="$out"
      jestmesh/v1/curation.proto jestmesh/v1/selection_log.proto jestmesh/v1/run_summary.proto)
if [ -n "${PROTOC:-}" ]; then
  exec "$PROTOC" "${args[@]}"
fi
nuget=$(ls -d "${NUGET_PACKAGES:-$HOME/.nuget/packages}"/grpc.tools/*/tools/linux_x64/protoc 2>/dev/null | sort -V | tail -1 || true)
if [ -n "$nuget" ] && [ -x "$nuget" ]; then
  exec "$nuget" "${args[@]}"
fi
for py in python3 /usr/bin/python3; do
  # An old grpc_tools (Debian's 1.14) fails on `optional`: then try the next interpreter.
  if "$py" -c 'import grpc_tools.protoc' 2>/dev/null && "$py" -m grpc_tools.protoc "${args[@]}"; then
    exit 0
  fi
done
echo "generate.sh: no protoc with proto3 optional: set PROTOC, restore the .NET solution (Grpc.Tools), or pip install grpcio-tools" >&2
exit 2
