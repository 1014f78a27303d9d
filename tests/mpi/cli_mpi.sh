#!/usr/bin/env bash
# cli_mpi.sh CNF MPIRUN: `mpirun -np 2 cnf ...` against one process.
#   train: the same progress and summary (timings aside) and a model whose
#          log p agrees; logp and sample: the same rows to 1e-10 relative;
#   a missing input file: exit 2 with one process's message, once;
#   a rank killed mid-training: every rank ends within seconds, non-zero,
#          and the model file on disk loads;
#   SIGTERM to one rank: every rank stops after the same step with a
#          checkpoint, exit 143, rank 0 prints the stop once.
set -u
CNF=$1 MPIRUN=$2
MPI="$MPIRUN -np 2 --oversubscribe"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
fail=0
check() { if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; fail=1; fi; }
# numeric compare of two CSV files (same shape), max relative difference <= tol
close() {
  awk -F, -v tol="$3" 'NR==FNR { if (FNR > 1) for (i = 1; i <= NF; i++) a[FNR, i] = $i; next }
    FNR > 1 { for (i = 1; i <= NF; i++) { d = $i - a[FNR, i]; if (d < 0) d = -d;
              m = a[FNR, i] < 0 ? -a[FNR, i] : a[FNR, i]; if (m < 1e-300) m = 1e-300;
              if (d / m > w) w = d / m; n++ } }
    END { printf "  max rel diff %.3g over %d values\n", w, n; exit !(n > 0 && w <= tol) }' "$1" "$2"
}
args="--data 8gaussians --iters 40 --seed 3 --threads 1 --batch 64"
"$CNF" train $args --out one.cnf >one.out 2>one.err
$MPI "$CNF" train $args --out two.cnf >two.out 2>two.err
check "train: exit 0 with 1 and 2 ranks" '[ -s one.cnf ] && [ -s two.cnf ]'
check "train: the same summary (timings aside)" \
  'diff <(grep -v seconds one.out) <(grep -v seconds two.out)'
check "train: the same progress line" \
  'diff <(sed "s/ elapsed.*//" one.err) <(sed "s/ elapsed.*//" two.err)'
"$CNF" toy --name 8gaussians -n 3000 --seed 9 --out x.csv
"$CNF" logp --model one.cnf --in x.csv --out lp1.csv 2>/dev/null
$MPI "$CNF" logp --model one.cnf --in x.csv --out lp2.csv 2>/dev/null
check "logp: 2 ranks = 1 process" 'close lp1.csv lp2.csv 1e-10'
"$CNF" logp --model two.cnf --in x.csv --out lp3.csv 2>/dev/null
check "train: the 2-rank model's log p = the 1-process model's" 'close lp1.csv lp3.csv 1e-8'
"$CNF" sample --model one.cnf -n 500 --seed 4 --out s1.csv 2>/dev/null
$MPI "$CNF" sample --model one.cnf -n 500 --seed 4 --out s2.csv 2>/dev/null
check "sample: 2 ranks = 1 process" 'close s1.csv s2.csv 1e-10'
$MPI "$CNF" logp --model one.cnf --in missing.csv --out lp4.csv >bad.out 2>bad.err
rc=$?
check "a missing file: exit 2, message once, no output" \
  '[ $rc -eq 2 ] && [ "$(grep -c "cnf logp: missing.csv" bad.err)" -eq 1 ] && [ ! -e lp4.csv ]'
$MPI "$CNF" train --data 8gaussians --iters 1000000 --save-every 5 --seed 3 --threads 1 \
  --out k.cnf >k.out 2>k.err &
mp=$!
for _ in $(seq 100); do [ -s k.cnf ] && break; sleep 0.2; done
victim=$(pgrep -f -- "--out k.cnf" | grep -v "^$mp\$" | tail -1)
kill -9 "$victim" 2>/dev/null
t0=$(date +%s)
wait $mp
rc=$?
t1=$(date +%s)
check "a killed rank: all end within 10 s, non-zero (exit $rc after $((t1 - t0)) s)" \
  '[ $rc -ne 0 ] && [ $((t1 - t0)) -le 10 ] && [ -z "$(pgrep -f -- "--out k.cnf")" ]'
check "a killed rank: the model file on disk loads" \
  '"$CNF" eval --model k.cnf --in x.csv >/dev/null 2>&1'
rm -f k.cnf
$MPI "$CNF" train --data 8gaussians --iters 1000000 --save-every 5 --seed 3 --threads 1 \
  --out k.cnf >k.out 2>k.err &
mp=$!
for _ in $(seq 100); do [ -s k.cnf ] && break; sleep 0.2; done
victim=$(pgrep -f -- "--out k.cnf" | grep -v "^$mp\$" | tail -1)
kill -TERM "$victim" 2>/dev/null
wait $mp
rc=$?
check "SIGTERM to one rank: all stop after the same step, exit 143, rank 0 says so once" \
  '[ $rc -eq 143 ] && [ "$(grep -c "interrupted at step" k.err)" -eq 1 ] && [ -z "$(pgrep -f -- "--out k.cnf")" ]'
check "SIGTERM to one rank: the checkpoint loads" \
  '"$CNF" eval --model k.cnf --in x.csv >/dev/null 2>&1'
exit $fail
