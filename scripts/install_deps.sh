#!/usr/bin/env bash
# Installs the Debian packages dualtune needs (DESIGN.md "Dependencies") that are
# missing on this machine. Idempotent: does nothing when all are present.
set -euo pipefail
pkgs=(cmake g++ make ccache pkg-config zlib1g-dev
      libtorch-dev libopenblas-dev libfaiss-dev libopencv-dev libyaml-cpp-dev
      libcli11-dev nlohmann-json3-dev libspdlog-dev libgtest-dev libbenchmark-dev
      dataset-fashion-mnist gnuplot-nox libgloo-dev libsqlite3-dev
      clang-14 libclang-rt-14-dev libomp-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
