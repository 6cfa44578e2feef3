#!/usr/bin/env bash
# Distributed training under Open MPI on loopback: builds `cnn` with the MPI trait, checks that
# `mpirun -np 2` gives the weights of a 1-rank run (same global batch), that the gradient allreduce
# overlapped with backward gives the weights of the one after backward bit for bit, that
# synchronised batch norm matches one rank, that the distributed benchmarks run, that killing a rank ends the
# job with an error instead of a hang while the last checkpoint stays valid, and that the checkpoint
# resumes on another number of ranks. Expects the default build's tests in .build (run by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

if ! command -v mpirun >/dev/null || ! pkg-config --exists ompi-c; then
  echo "== installing libopenmpi-dev openmpi-bin"
  (apt-get install -y libopenmpi-dev openmpi-bin || (apt-get update && apt-get install -y libopenmpi-dev openmpi-bin)) >/dev/null
fi
mpirun --version | head -1

echo "== build cnn with the MPI trait"
swift build --product cnn --traits OpenMP,MPI --scratch-path .build-mpi 2>&1 | tail -1
CNN=.build-mpi/debug/cnn
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca btl self,tcp --mca btl_tcp_if_include lo)
OUT=.build/ci-mpi
rm -rf "$OUT"; mkdir -p "$OUT"
ARGS=(train --distributed --epochs 1 --limit-train 1000 --limit-test 500 --batch-size 64 --seed 3 --optimizer sgd)

echo "== equivalence: mpirun -np 2 (gradient allreduce overlapped with backward, the default) vs -np 1 (global batch 64)"
"${MPIRUN[@]}" -np 2 "$CNN" "${ARGS[@]}" --checkpoint-dir "$OUT/np2" | grep -E "^(distributed|epoch 1/1:|gradient)"
"${MPIRUN[@]}" -np 1 "$CNN" "${ARGS[@]}" --checkpoint-dir "$OUT/np1" | grep -E "^(epoch 1/1:)"
CNN_MPI_WEIGHTS_A="$OUT/np2/model.safetensors" CNN_MPI_WEIGHTS_B="$OUT/np1/model.safetensors" \
  swift test --skip-build --no-parallel --filter DistributedMPIComparison 2>&1 | grep -E "max weight difference|passed|failed|error"

# With 2 ranks every element of an allreduce is a + b whatever the bucketing, so the overlapped run
# (small buckets: several allreduces in flight during backward) and the after-backward run must
# give the same weights bit for bit.
echo "== overlapped (0.1 MiB buckets) vs after backward (--no-overlap): identical weights"
"${MPIRUN[@]}" -np 2 "$CNN" "${ARGS[@]}" --bucket-mib 0.1 --checkpoint-dir "$OUT/np2-small" | grep -E "^(gradient averaging|epoch 1/1:)"
"${MPIRUN[@]}" -np 2 "$CNN" "${ARGS[@]}" --no-overlap --checkpoint-dir "$OUT/np2-after" | grep -E "^(gradient averaging|epoch 1/1:)"
CNN_MPI_WEIGHTS_A="$OUT/np2-small/model.safetensors" CNN_MPI_WEIGHTS_B="$OUT/np2-after/model.safetensors" CNN_MPI_TOLERANCE=0 \
  swift test --skip-build --no-parallel --filter DistributedMPIComparison 2>&1 | grep -E "max weight difference|passed|failed|error"

echo "== synchronised batch norm: mpirun -np 2 --sync-batchnorm vs -np 1 (ResNet-18, global batch 32)"
# The convolutions are pinned to im2col, forward and gradients: AUTO's Winograd tile depends on the
# per-rank batch (16 here, 32 on one rank), and Winograd's rounding (about 1e-5 of the output)
# moved max-pool argmaxes enough to leave 2.9e-2 between the runs. This check is about the
# statistics, so both runs take the GEMM, whose results do not depend on the batch split.
BN_ARGS=(train --distributed --model resnet18 --epochs 1 --limit-train 128 --limit-test 32 --batch-size 32 --seed 3 --optimizer sgd
         --conv-algorithm im2col)
"${MPIRUN[@]}" -np 2 "$CNN" "${BN_ARGS[@]}" --sync-batchnorm --checkpoint-dir "$OUT/bn2" | grep -E "^(synchronised|epoch 1/1:)"
"${MPIRUN[@]}" -np 1 "$CNN" "${BN_ARGS[@]}" --checkpoint-dir "$OUT/bn1" | grep -E "^(epoch 1/1:)"
# Tolerance over weights and running statistics. Without --sync-batchnorm (per-rank statistics)
# the difference is 1.5; with it, 1.4e-6 to 5.2e-4 after these 4 steps. The upper figure is not an
# error in the synchronisation: after one step the runs agree to 1.2e-7, and the difference then
# appears first in conv1's weights. MNIST's flat background gives many windows of nearly equal
# values in the stem's max pooling; a rounding difference (here a changed summation order, from the
# third session's tap trimming) can move an argmax and route that position's gradient elsewhere.
# 5e-3 keeps a margin of 300 to the unsynchronised case.
CNN_MPI_WEIGHTS_A="$OUT/bn2/model.safetensors" CNN_MPI_WEIGHTS_B="$OUT/bn1/model.safetensors" CNN_MPI_TOLERANCE=5e-3 \
  swift test --skip-build --no-parallel --filter DistributedMPIComparison 2>&1 | grep -E "max weight difference|passed|failed|error"

echo "== allreduce bandwidth and scaling benchmarks run under mpirun (functional check; figures: see the README)"
"${MPIRUN[@]}" -np 2 "$CNN" bench allreduce --max-bytes 8K --iterations 3 --json
"${MPIRUN[@]}" -np 2 "$CNN" bench scaling --case lenet5 --steps 2 --json
"${MPIRUN[@]}" -np 2 "$CNN" bench scaling --case lenet5 --steps 2 --no-overlap --json

echo "== a killed rank ends the job (no hang); the checkpoint stays valid and resumes on 1 rank"
"${MPIRUN[@]}" -np 2 "$CNN" train --distributed --epochs 20 --limit-train 2000 --limit-test 200 --batch-size 64 \
  --checkpoint-dir "$OUT/kill" > "$OUT/kill.log" 2>&1 &
JOB=$!
for _ in $(seq 1 600); do [ -e "$OUT/kill/checkpoint.safetensors" ] && break; sleep 0.2; done
[ -e "$OUT/kill/checkpoint.safetensors" ] || { echo "no checkpoint appeared"; cat "$OUT/kill.log"; exit 1; }
VICTIM=$(pgrep -n -P "$JOB" cnn || pgrep -n -P "$(pgrep -n -P "$JOB")" cnn)
kill -9 "$VICTIM"
START=$(date +%s)
if timeout 120 tail --pid="$JOB" -f /dev/null; then :; else echo "mpirun still running 120 s after a rank was killed"; exit 1; fi
set +e; wait "$JOB"; STATUS=$?; set -e
echo "mpirun exited with status $STATUS $(( $(date +%s) - START )) s after rank pid $VICTIM was killed"
[ "$STATUS" -ne 0 ] || { echo "expected a non-zero exit"; exit 1; }
DONE=$(grep -c "^epoch .*: train" "$OUT/kill.log" || true)
"${MPIRUN[@]}" -np 1 "$CNN" train --distributed --resume --epochs $((DONE + 1)) --limit-train 2000 --limit-test 200 --batch-size 64 \
  --checkpoint-dir "$OUT/kill" | grep -E "^(resumed|epoch)"
echo "== mpi OK"
