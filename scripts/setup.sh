#!/usr/bin/env bash
# Installs what JestMesh needs on a Debian/Ubuntu machine, only what is missing:
# the Fashion-MNIST dataset package, the RabbitMQ server, and (for the PyTorch comparison
# benchmark, with --bench) Debian's python3-torch and numpy, and (for the tests, with --tests: the
# reference-bundle tests and the Python client's pytest suite) python3-torch, -numpy, -pil (the bundle
# script decodes its training images with PIL), -grpcio, -protobuf and -pytest. Idempotent; says what to run when it cannot.
set -euo pipefail
want=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || want+=(dataset-fashion-mnist)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || want+=(rabbitmq-server)
if [ "${1:-}" = "--bench" ]; then
  /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || want+=(python3-torch python3-numpy)
fi
if [ "${1:-}" = "--tests" ] || [ "${1:-}" = "--python" ]; then
  for m in PIL:python3-pil grpc:python3-grpcio google.protobuf:python3-protobuf pytest:python3-pytest torch:python3-torch numpy:python3-numpy; do
    /usr/bin/python3 -c "import ${m%%:*}" 2>/dev/null || want+=("${m#*:}")
  done
fi
[ ${#want[@]} -eq 0 ] && exit 0
echo "setup: installing ${want[*]}" >&2
if [ "$(id -u)" -ne 0 ] && ! command -v sudo > /dev/null; then
  echo "setup: need root to install; run: sudo apt-get install -y ${want[*]}" >&2
  exit 2
fi
sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo_ apt-get update -qq
$sudo_ apt-get install -y -qq --no-install-recommends "${want[@]}" > /dev/null
# The package starts a system broker as the rabbitmq user; JestMesh runs its own on loopback.
if [[ " ${want[*]} " == *" rabbitmq-server "* ]]; then
  ( $sudo_ service rabbitmq-server stop || $sudo_ systemctl stop rabbitmq-server ) > /dev/null 2>&1 || true
fi
