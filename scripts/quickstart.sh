#!/usr/bin/env bash
# Install what is missing, build cnf, and run the main job on a built-in
# default: train a continuous normalizing flow on FFJORD's 8gaussians toy
# set with FFJORD's toy settings (1000 steps, about a minute), then write
# the learned density as a PNG, samples from it, and its log-density on a
# grid, all into out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target cnf_cli >/dev/null
mkdir -p out
cnf=build/cnf
data=${1:-8gaussians}
$cnf train --data "$data" --out out/model.cnf --test-n 20000
$cnf plot --model out/model.cnf --data "$data" --out out/density.png
$cnf sample --model out/model.cnf -n 2000 --seed 1 --out out/samples.csv
$cnf grid --model out/model.cnf --range 4 --size 100 --out out/grid.csv
echo "cnf: wrote out/model.cnf, out/density.png, out/samples.csv (x1,x2,logp) and out/grid.csv (x1,x2,logp)"
