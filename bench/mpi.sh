#!/usr/bin/env bash
# bench/mpi.sh [BUILD_DIR]: training throughput of cnf_fit over MPI ranks
# (bench_mpi), global batch 1000, at D = 2 (8gaussians, 64-64-64, exact
# trace) and at MINIBOONE's width D = 43 (256-256, Gaussian Hutchinson),
# for 1 rank x 1 thread, 2 ranks x 1 thread (Open MPI polling, and with
# mpi_yield_when_idle) and 1 rank x 2 threads, the configurations
# interleaved over REPS rounds (a shared machine's
# load then hits them alike).  Figures go to docs/performance.md, "Data
# parallelism over MPI".
set -euo pipefail
build=${1:-build}
reps=${REPS:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
b="$build/bench/bench_mpi"
[ -x "$b" ] || { echo "bench/mpi.sh: $b not built (needs MPI)" >&2; exit 1; }
uptime
for r in $(seq "$reps"); do
  for w in "2 64-64-64 exact 1000 20" "43 256-256 gauss 1000 3"; do
    mpirun -np 1 "$b" $w 1
    mpirun -np 2 "$b" $w 1
    mpirun -np 2 --mca mpi_yield_when_idle 1 "$b" $w 1
    mpirun -np 1 "$b" $w 2
  done
done
uptime
