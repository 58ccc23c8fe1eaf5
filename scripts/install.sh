#!/usr/bin/env bash
# Install chamtvm and everything it needs on a fresh Debian machine (idempotent).
#   bash scripts/install.sh          # the package and its Python dependencies
#   bash scripts/install.sh --dev    # + test tools and the Debian packages the tests use
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip() { "$PY" -m pip "$@"; }

# torch first and pinned: 2.13.0 is a local CPU wheel here; an unpinned torch pulls CUDA.
"$PY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
  || pip install -q torch==2.13.0
# apache-tvm-ffi 0.1.15.post2 segfaults on IR JSON serialization with tvm 0.27: pin 0.1.14.post1.
pip install -q -e ".[dev]"

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Fashion-MNIST for the built-in accuracy task (offline, from Debian).
apt_install dataset-fashion-mnist
if [ "${1:-}" = "--dev" ] && [ -x scripts/setup-arm-emulation.sh ]; then
  bash scripts/setup-arm-emulation.sh   # qemu + arm64 userland for the emulated ARM device tests
fi
echo "chamtvm installed: $("$PY" -c 'import tvm, torch; print("tvm", tvm.__version__, "torch", torch.__version__)')"
