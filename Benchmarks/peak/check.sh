#!/usr/bin/env bash
# Compares `cnn bench peak` (AVX-512, 1 thread) with an independently written FMA loop, run
# alternately three times so both see the same machine. Needs an AVX-512 CPU, gcc and a release
# build of cnn (swift build -c release --product cnn).
set -euo pipefail
cd "$(dirname "$0")"
gcc -O2 -mavx512f -o /tmp/independent_fma independent_fma.c
cnn=../../.build/release/cnn
for i in 1 2 3; do
  ind=$(/tmp/independent_fma)
  ours=$(OMP_NUM_THREADS=1 "$cnn" bench peak --json --seconds 0.3 | grep '"strategy":"avx512","threads":1' | sed 's/.*"gflops":\([0-9.]*\).*/\1/')
  echo "independent $ind GFLOP/s, cnn bench peak $ours GFLOP/s, ratio $(python3 -c "print(round($ours/$ind, 3))")"
done
