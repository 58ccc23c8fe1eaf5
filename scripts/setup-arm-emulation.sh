#!/usr/bin/env bash
# The emulated aarch64 device's set-up ships with the package; this is its entry point here.
exec bash "$(dirname "$0")/../chamtvm/devices/setup-arm-emulation.sh" "$@"
