#!/usr/bin/env bash
# Host tools for the emulated aarch64 device and the arm target, then the cached arm64
# userland + aarch64 TVM runtime (~/.cache/chamtvm/arm64 or $CHAMTVM_CACHE/arm64).
#   bash chamtvm/devices/setup-arm-emulation.sh            # apt packages + cached userland (~1 min)
#   bash chamtvm/devices/setup-arm-emulation.sh --apt-only # apt packages only
# Needs root or sudo for apt-get, network access to the Debian mirror and PyPI.
set -euo pipefail
# runs from anywhere: the package is installed (python -m chamtvm)
PY=${PYTHON:-python3}
PKGS=(qemu-user-static mmdebstrap g++-aarch64-linux-gnu)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for t in qemu-aarch64-static mmdebstrap aarch64-linux-gnu-g++; do
  command -v "$t" >/dev/null || { echo "setup-arm-emulation: $t still missing" >&2; exit 1; }
done
if [ "${1:-}" != "--apt-only" ]; then
  "$PY" -m chamtvm device emulate-arm --setup-only
fi
