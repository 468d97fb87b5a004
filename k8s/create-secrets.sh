#!/usr/bin/env bash
# Creates (or keeps) the two Secrets every JestMesh install needs, for the kustomize path:
#   jestmesh-api-keys  key trainer: the API key Selection accepts and the trainer sends (>= 16 chars;
#                      a random 48-character key unless JESTMESH_API_KEY is set; an existing one is kept)
#   jestmesh-rabbitmq  key uri: amqp://user:pass@host:5672/ ; from JESTMESH_AMQP_URI if set, else from the
#                      RabbitMQ Cluster Operator's <cluster>-default-user Secret (overlays/local reads that
#                      Secret's connection_string directly; this one is for the base and production)
#   k8s/create-secrets.sh NAMESPACE [RABBITMQCLUSTER_NAME]
set -euo pipefail
ns=${1:?namespace}; cluster=${2:-}
if ! kubectl -n "$ns" get secret jestmesh-api-keys > /dev/null 2>&1; then
  key=${JESTMESH_API_KEY:-$(head -c 36 /dev/urandom | base64 | tr -d '/+=\n' | head -c 48)}
  if [ ${#key} -lt 16 ]; then echo "create-secrets: the API key must have at least 16 characters" >&2; exit 2; fi
  kubectl -n "$ns" create secret generic jestmesh-api-keys --from-literal=trainer="$key"
fi
if [ -n "${JESTMESH_AMQP_URI:-}" ]; then
  kubectl -n "$ns" create secret generic jestmesh-rabbitmq --from-literal=uri="$JESTMESH_AMQP_URI" \
    --dry-run=client -o yaml | kubectl apply -f -
elif [ -n "$cluster" ]; then
  "$(dirname "${BASH_SOURCE[0]}")/create-broker-secret.sh" "$ns" "$cluster"
fi
