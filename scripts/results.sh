#!/usr/bin/env bash
# Reproduce every number and picture of docs/results.md.
#
#   scripts/results.sh DATA_DIR [faithful|miniboone|all]
#
# DATA_DIR holds faithful.csv, miniboone-val.csv and miniboone-test.csv (see
# docs/results.md for their origin and md5 sums). The script builds the tool into
# build-results/ (or, with CNF_REF=<commit>, that commit into
# out/results/src-<commit>/), writes everything (data splits, models, logs, PNGs)
# into out/results/ and prints the numbers; it never writes into the repository.
# It takes 45 to 60 minutes on a busy 2-core machine (three training runs of
# 10 to 25 minutes).
# Timings vary with the load of the machine; the NLLs are deterministic for a
# given build, seed and thread count.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: scripts/results.sh DATA_DIR [faithful|miniboone|all]" >&2
  exit 2
fi
data=$(cd "$1" && pwd)
what=${2:-all}
cd "$(dirname "$0")/.."
root=$(pwd)

out=$root/out/results
mkdir -p "$out"
# CNF_REF=<commit>: build that commit (exported into out/results/src-<commit>) instead of
# the working tree; docs/results.md names the commit its numbers were measured at.
src=$root
if [ -n "${CNF_REF:-}" ]; then
  src=$out/src-$CNF_REF
  rm -rf "$src" && mkdir -p "$src"
  git archive "$CNF_REF" | tar -x -C "$src"
fi
cmake -S "$src" -B "$src/build-results" -DCMAKE_BUILD_TYPE=Release -DCNF_BUILD_TESTS=OFF >/dev/null
cmake --build "$src/build-results" -j "$(nproc)" --target cnf_cli >/dev/null
cnf=$src/build-results/cnf
echo "cnf $("$cnf" --version | awk '{print $2}') built from ${CNF_REF:-the working tree} ($(git rev-parse --short HEAD) checked out)"
cd "$out"

# Wall time of a command, in seconds, into the variable WALL.
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  WALL=$(python3 -c "print('%.1f' % ($t1 - $t0))")
}

# Mean and median of -logp of a `cnf logp` output file.
nll_stats() {
  python3 - "$1" <<'EOF'
import statistics, sys
v = [-float(l) for l in open(sys.argv[1]).read().split()[1:]]
q = statistics.quantiles(v, n=100)
print("rows %d  mean %.4f (standard error %.4f)  median %.4f  p10 %.4f  p90 %.4f  p99 %.4f  max %.4f"
      % (len(v), statistics.fmean(v), statistics.stdev(v) / len(v) ** 0.5, statistics.median(v),
         q[9], q[89], q[98], max(v)))
EOF
}

faithful() {
  echo "== Old Faithful"
  # Dequantize (seeded): waiting += U(-0.5, 0.5) min, eruptions += U(-0.05, 0.05) min;
  # seeded 80/20 split; standardized copies for the picture model.
  python3 - "$data/faithful.csv" "$out" <<'EOF'
import csv, math, random, sys
src, outdir = sys.argv[1], sys.argv[2]
rows = [tuple(map(float, r)) for r in list(csv.reader(open(src)))[1:]]
rng = random.Random(20240601)
deq = [(e + rng.uniform(-0.05, 0.05), w + rng.uniform(-0.5, 0.5)) for e, w in rows]
idx = list(range(len(deq))); rng.shuffle(idx)
ntr = int(round(0.8 * len(deq)))
train = [deq[i] for i in idx[:ntr]]; val = [deq[i] for i in idx[ntr:]]
def write(name, data, hdr=("eruptions", "waiting")):
    with open(f"{outdir}/{name}", "w") as f:
        f.write(",".join(hdr) + "\n")
        for r in data: f.write(",".join("%.17g" % v for v in r) + "\n")
write("faithful-all.csv", deq); write("faithful-train.csv", train); write("faithful-val.csv", val)
# mean and sample sd (N - 1) of the training rows, as cnf train --standardize computes them
mu = [sum(r[j] for r in train) / len(train) for j in range(2)]
sd = [math.sqrt(sum((r[j] - mu[j]) ** 2 for r in train) / (len(train) - 1)) for j in range(2)]
st = lambda d: [tuple((r[j] - mu[j]) / sd[j] for j in range(2)) for r in d]
write("faithful-train-std.csv", st(train), ("z_eruptions", "z_waiting"))
write("faithful-val-std.csv", st(val), ("z_eruptions", "z_waiting"))
write("faithful-all-std.csv", st(deq), ("z_eruptions", "z_waiting"))
print("rows %d: train %d, held out %d" % (len(deq), len(train), len(val)))
print("train mean %.6f %.6f  sd %.6f %.6f  log(sd1*sd2) %.6f" % (mu[0], mu[1], sd[0], sd[1], math.log(sd[0] * sd[1])))
with open(f"{outdir}/faithful-logsd.txt", "w") as f: f.write("%.10f\n" % math.log(sd[0] * sd[1]))
EOF

  # 1. the model in original units (standardization folded into the model)
  timed "$cnf" train --data faithful-train.csv --val faithful-val.csv --standardize \
    --iters 2000 --seed 1 --out faithful-orig.cnf >faithful-orig-train.out 2>faithful-orig-train.log
  echo "-- train --standardize, original units (wall ${WALL} s)"
  cat faithful-orig-train.out
  echo "train NLL (best model):   $("$cnf" eval --model faithful-orig.cnf --in faithful-train.csv 2>/dev/null)"
  echo "held-out NLL (best model): $("$cnf" eval --model faithful-orig.cnf --in faithful-val.csv 2>/dev/null)"
  echo "train NLL (last model):   $("$cnf" eval --model faithful-orig.cnf.last --in faithful-train.csv 2>/dev/null)"
  echo "held-out NLL (last model): $("$cnf" eval --model faithful-orig.cnf.last --in faithful-val.csv 2>/dev/null)"
  "$cnf" eval --model faithful-orig.cnf --in faithful-val.csv --verbose 2>&1 >/dev/null |
    grep -E '^(nfe|nsteps|wall_seconds) ' | awk '!seen[$0]++' | tr '\n' ' '; echo
  "$cnf" logp --model faithful-orig.cnf --in faithful-val.csv --batch 1000 --out faithful-val-logp.csv
  echo "held-out -log p (best model): $(nll_stats faithful-val-logp.csv)"
  echo "-- baselines on the same split"
  python3 - faithful-train.csv faithful-val.csv <<'EOF'
import csv, math, random, sys
def load(p): return [tuple(map(float, r)) for r in list(csv.reader(open(p)))[1:]]
tr, va = load(sys.argv[1]), load(sys.argv[2])
def lg(x, m, S):  # log N(x; m, S), 2-D
    a, b, c = S[0][0], S[0][1], S[1][1]; det = a * c - b * b
    dx, dy = x[0] - m[0], x[1] - m[1]
    q = (c * dx * dx - 2 * b * dx * dy + a * dy * dy) / det
    return -math.log(2 * math.pi) - 0.5 * math.log(det) - 0.5 * q
def fit(X, K, iters=500):
    n = len(X); rng = random.Random(0)
    xs = sorted(X); m = [xs[(2 * k + 1) * n // (2 * K)] for k in range(K)]
    S = [[[1.0, 0.0], [0.0, 36.0]] for _ in range(K)]; w = [1.0 / K] * K
    for _ in range(iters):
        R = []
        for x in X:
            l = [math.log(w[k]) + lg(x, m[k], S[k]) for k in range(K)]; mx = max(l)
            e = [math.exp(v - mx) for v in l]; s = sum(e); R.append([v / s for v in e])
        for k in range(K):
            nk = sum(r[k] for r in R); w[k] = nk / n
            m[k] = tuple(sum(r[k] * x[j] for r, x in zip(R, X)) / nk for j in range(2))
            cv = [[sum(r[k] * (x[i] - m[k][i]) * (x[j] - m[k][j]) for r, x in zip(R, X)) / nk for j in range(2)] for i in range(2)]
            S[k] = cv
    return w, m, S
def nll(X, w, m, S):
    t = 0
    for x in X:
        l = [math.log(w[k]) + lg(x, m[k], S[k]) for k in range(len(w))]; mx = max(l)
        t -= mx + math.log(sum(math.exp(v - mx) for v in l))
    return t / len(X)
for K in (1, 2, 3):
    p = fit(tr, K)
    print("Gaussian mixture, %d full-covariance component%s (EM): train NLL %.4f, held-out NLL %.4f" % (K, "" if K == 1 else "s", nll(tr, *p), nll(va, *p)))
EOF

  # 2. the same on standardized data, for the picture ([-L, L]^2 around 0)
  timed "$cnf" train --data faithful-train-std.csv --val faithful-val-std.csv \
    --iters 2000 --seed 1 --out faithful-std.cnf >faithful-std-train.out 2>faithful-std-train.log
  echo "-- train on standardized data (wall ${WALL} s)"
  cat faithful-std-train.out
  logsd=$(cat faithful-logsd.txt)
  for f in train val; do
    n=$("$cnf" eval --model faithful-std.cnf --in faithful-$f-std.csv 2>/dev/null | awk '{print $2}')
    echo "$f NLL, standardized units $n; + log(sd1*sd2) = original units $(python3 -c "print('%.6f' % ($n + $logsd))")"
  done
  timed "$cnf" plot --model faithful-std.cnf --range 2.5 --grid 300 --data faithful-all-std.csv --out faithful.png
  echo "wrote out/results/faithful.png (${WALL} s)"
}

miniboone() {
  echo "== MINIBOONE"
  # seeded 90/10 split of miniboone-val.csv: rows to fit, rows for early stopping
  python3 - "$data/miniboone-val.csv" "$out" <<'EOF'
import random, sys
src, outdir = sys.argv[1], sys.argv[2]
lines = open(src).read().splitlines()
hdr, rows = lines[0], [l for l in lines[1:] if l]
rng = random.Random(20240601)
idx = list(range(len(rows))); rng.shuffle(idx)
nval = len(rows) // 10
with open(f"{outdir}/miniboone-fit.csv", "w") as f:
    f.write(hdr + "\n" + "".join(rows[i] + "\n" for i in sorted(idx[nval:])))
with open(f"{outdir}/miniboone-stop.csv", "w") as f:
    f.write(hdr + "\n" + "".join(rows[i] + "\n" for i in sorted(idx[:nval])))
print("miniboone-val.csv: %d rows to fit, %d for early stopping" % (len(rows) - nval, nval))
EOF
  timed "$cnf" train --data miniboone-fit.csv --val miniboone-stop.csv --hidden 256-256 \
    --batch 500 --iters 400 --val-every 50 --log-every 10 --seed 1 \
    --out miniboone.cnf >miniboone-train.out 2>miniboone-train.log
  echo "-- train (wall ${WALL} s; an epoch is 2956/500 = 5.9 steps)"
  cat miniboone-train.out
  grep val_nll miniboone-train.log
  timed "$cnf" eval --model miniboone.cnf --in "$data/miniboone-test.csv" --verbose \
    >miniboone-eval.out 2>miniboone-eval.log
  echo "-- test, exact trace (wall ${WALL} s): $(cat miniboone-eval.out)"
  grep -E '^(solves|nfe|nsteps) ' miniboone-eval.log | awk '!seen[$0]++' | tr '\n' ' '; echo
  echo "fit rows:  $("$cnf" eval --model miniboone.cnf --in miniboone-fit.csv 2>/dev/null)"
  "$cnf" logp --model miniboone.cnf --in "$data/miniboone-test.csv" --batch 1000 --out miniboone-test-logp.csv
  echo "test -log p: $(nll_stats miniboone-test-logp.csv)"
  timed "$cnf" plot --model miniboone.cnf --data "$data/miniboone-test.csv" --seed 1 --size 240 --out miniboone-pairs.png
  echo "wrote out/results/miniboone-pairs.png (${WALL} s)"
}

case $what in
  faithful) faithful ;;
  miniboone) miniboone ;;
  all) faithful; miniboone ;;
  *) echo "usage: scripts/results.sh DATA_DIR [faithful|miniboone|all]" >&2; exit 2 ;;
esac
