#!/bin/sh
# Reproduce the tables of docs/compare.md: every flow type trained with the
# same data, seed, minibatches and iteration budget by `cnf compare`.
#   scripts/compare.sh [BUILD_DIR] [OUT_DIR]
# The real data sets (faithful.csv, miniboone-val.csv, miniboone-test.csv;
# see docs/results.md for their origin) are read from the directory $CNF_DATA,
# which must be set.  Each run takes a few minutes; --threads 1 for all, so
# the CNF and the discrete flows run on one core alike.  The 2-D sets also
# train the CNF by flow matching (cnf-fm, cnf-ot-fm; docs/objectives.md).
set -eu
BUILD=${1:-build}
OUT=${2:-compare-out}
DATA=${CNF_DATA:?set CNF_DATA to the directory holding faithful.csv and miniboone-*.csv}
FLOWS=cnf,realnvp,nice,maf,iaf,planar,radial,affine,elementwise
FLOWS2D=cnf,cnf-fm,cnf-ot-fm,realnvp,nice,maf,iaf,planar,radial,affine,elementwise
mkdir -p "$OUT"
for toy in 8gaussians checkerboard 2spirals; do
  "$BUILD/cnf" --threads 1 compare --data "$toy" --flows "$FLOWS2D" --iters 500 --seed 1 --out "$OUT/$toy"
done
"$BUILD/cnf" --threads 1 compare --data "$DATA/faithful.csv" --flows "$FLOWS2D" --iters 500 --seed 1 \
  --out "$OUT/faithful"
"$BUILD/cnf" --threads 1 compare --data "$DATA/miniboone-val.csv" --test "$DATA/miniboone-test.csv" \
  --flows "$FLOWS" --iters 200 --seed 1 --out "$OUT/miniboone"
