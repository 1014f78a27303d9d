#!/usr/bin/env bash
# The speed figures of docs/performance.md, section "Two cores, the
# solver's vectors": per-evaluation costs of both precisions on one and two
# threads against the PyTorch reference, where the batch split pays, a
# maximum-likelihood training step at FFJORD's toy settings (1000 steps,
# both precisions, one and two threads, REPS rounds interleaved, the median
# reported), and the log-density of 10^6 points of the trained 8gaussians
# model.  Writes markdown into OUT_DIR (default bench-speed/) and prints it.
#
#   scripts/bench-speed.sh [OUT_DIR]        # about 20 minutes on a quiet 2-core machine
#   REPS=1 POINTS=100000 scripts/bench-speed.sh   # a quicker pass
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-speed}
reps=${REPS:-2}
points=${POINTS:-1000000}
mkdir -p "$out"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target cnf_cli bench_prec >/dev/null
export OPENBLAS_NUM_THREADS=1

{
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$out/machine.md"

build/bench/bench_prec --samples 11 --threads 1,2 --split 25,50,100,250,500,1000 \
  --out "$out/ops.md" >/dev/null

# Training: every configuration once per round, rounds interleaved.
: > "$out/train.raw"
for r in $(seq 1 "$reps"); do
  for d in 8gaussians checkerboard 2spirals; do
    for p in single double; do
      for t in 1 2; do
        log="$out/$d-$p-$t.log"
        build/cnf --threads "$t" train --data "$d" --iters 1000 --test-n 20000 --seed 0 \
          --precision "$p" --out "$out/$d-$p-$t.cnf" --log-every 1000 > "$log" 2>&1
        get() { awk -v k="$1" '$1 == k { print $2 }' "$log"; }
        echo "$d $p $t $(get seconds_per_iter) $(get nfe_forward_mean) $(get nfe_backward_mean)" \
          "$(get T1) $(get test_nll)" >> "$out/train.raw"
      done
    done
  done
done
# FFJORD's median s/iter at 1000 iterations on this machine kind (two threads).
awk -v reps="$reps" '
  BEGIN { ff["8gaussians"] = 0.153; ff["checkerboard"] = 0.099; ff["2spirals"] = 0.063
          print "| data | precision | threads | s/step (median of " reps ") | NFE fwd | NFE bwd | T | test NLL | FFJORD s/iter | speed-up |"
          print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" }
  { k = $1 " " $2 " " $3; n[k]++; s[k, n[k]] = $4; fw[k] = $5; bw[k] = $6; T[k] = $7; nll[k] = $8
    if (!(k in seen)) { seen[k] = 1; order[++m] = k } }
  END { for (i = 1; i <= m; i++) { k = order[i]; c = n[k]
          for (a = 1; a <= c; a++) for (b = a + 1; b <= c; b++) if (s[k, b] < s[k, a]) { x = s[k, a]; s[k, a] = s[k, b]; s[k, b] = x }
          med = c % 2 ? s[k, (c + 1) / 2] : 0.5 * (s[k, c / 2] + s[k, c / 2 + 1])
          split(k, f, " ")
          printf "| %s | %s | %s | %.4f | %.1f | %.1f | %.3f | %.4f | %.3f | %.1fx |\n", f[1], f[2], f[3], med, fw[k], bw[k], T[k], nll[k], ff[f[1]], ff[f[1]] / med } }
' "$out/train.raw" > "$out/train.md"

build/bench/bench_prec --no-ops --model "$out/8gaussians-double-1.cnf" --points "$points" \
  --solve-batch 10000 --solve-reps 1 --threads 1,2 --out "$out/solve.md" >/dev/null

cat "$out/machine.md" "$out/ops.md" "$out/train.md" "$out/solve.md"
