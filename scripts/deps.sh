#!/usr/bin/env bash
# Install the Debian packages cnf needs, if any is missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libsundials-dev libopenblas-dev libgsl-dev libcunit1-dev
      libcairo2-dev fonts-dejavu-core
      clang # clang: the fuzz targets (scripts/fuzz.sh)
      libopenmpi-dev openmpi-bin python3 python3-numpy python3-cffi)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "cnf: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
