#!/usr/bin/env bash
# Install what is missing, build cnf, and run the main job on a built-in
# default: create a random 2-D flow, sample it, and write the samples and
# its density on a grid into out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target cnf_cli >/dev/null
mkdir -p out
cnf=build/cnf
$cnf init --dim 2 --seed 1 --out out/model.cnf
$cnf sample --model out/model.cnf -n 2000 --seed 1 --out out/samples.csv --verbose
$cnf grid --model out/model.cnf --range 4 --size 100 --out out/density.csv
echo "cnf: wrote out/model.cnf, out/samples.csv (x1,x2,logp) and out/density.csv (x1,x2,logp on a 100x100 grid)"
