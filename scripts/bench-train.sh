#!/usr/bin/env bash
# Training benchmark: FFJORD's toy settings (64-64-64 concatsquash, tanh,
# T = 0.5 learned, rtol = atol = 1e-5, batch 100, Adam lr 1e-3, weight decay
# 1e-5), 1000 steps, then the NLL of 20000 fresh samples with the exact
# trace.  Prints a markdown table; FFJORD's own figures on this machine kind
# are quoted beside it in docs/performance.md.
#
#   scripts/bench-train.sh [ITERS]
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-1000}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target cnf_cli >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| data | trace | adjoint | s/iter (wall) | s/iter (CPU) | NFE fwd | NFE bwd | T | test NLL |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
run() { # data trace adjoint
  local out
  out=$(build/cnf train --data "$1" --trace "$2" --adjoint "$3" --iters "$iters" \
        --test-n 20000 --seed 0 --out "$tmp/m.cnf" 2>/dev/null)
  get() { printf '%s\n' "$out" | awk -v k="$1" '$1 == k { print $2 }'; }
  printf '| %s | %s | %s | %.4f | %.4f | %.1f | %.1f | %.3f | %.3f |\n' "$1" "$2" "$3" \
    "$(get seconds_per_iter)" "$(get cpu_seconds_per_iter)" "$(get nfe_forward_mean)" \
    "$(get nfe_backward_mean)" "$(get T1)" "$(get test_nll)"
}
run 8gaussians exact checkpoint
run 8gaussians exact backsolve
run 8gaussians gauss checkpoint
run checkerboard exact checkpoint
run 2spirals exact checkpoint
