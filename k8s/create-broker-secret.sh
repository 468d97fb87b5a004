#!/usr/bin/env bash
# Builds the Secret jestmesh-rabbitmq (key uri) that every JestMesh service reads, from the
# credentials the RabbitMQ Cluster Operator generated for a RabbitmqCluster.
#   k8s/create-broker-secret.sh NAMESPACE RABBITMQCLUSTER_NAME
set -euo pipefail
ns=${1:?namespace}; cluster=${2:?RabbitmqCluster name}
get() { kubectl -n "$ns" get secret "$cluster-default-user" -o "jsonpath={.data.$1}" | base64 -d; }
user=$(get username); pass=$(get password)
uri="amqp://$(printf %s "$user" | jq -sRr @uri):$(printf %s "$pass" | jq -sRr @uri)@$cluster.$ns.svc:5672/"
kubectl -n "$ns" create secret generic jestmesh-rabbitmq --from-literal=uri="$uri" \
  --dry-run=client -o yaml | kubectl apply -f -
