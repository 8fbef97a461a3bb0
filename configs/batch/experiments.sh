#!/usr/bin/env bash
# Experiments (b) and (c) of docs/batch-size.md (issue 17). Run from the repository root after a debug build:
#   bash configs/batch/experiments.sh            # → runs/batch/{fixed-B,adaptive,lr/...}
#   BIN=.build/release/swift-train bash configs/batch/experiments.sh c     # one part, another build
#   BIN=.build/release/swift-train bash configs/batch/experiments.sh gpt   # (b) on the byte GPT (not in "all")
#   BIN=.build/release/swift-train bash configs/batch/experiments.sh gpt-lr  # (c) on the byte GPT (not in "all")
# (a) is two commands, in docs/batch-size.md. Total ≈ 6 min on the shared 2-core machine.
set -euo pipefail
bin=${BIN:-.build/debug/swift-train}
run() { nice -n ${NICE:-10} launch/mpirun -n 2 $bin "$@" > /dev/null; }
part=${1:-all}
if [[ $part == all || $part == b ]]; then
  # (b) fixed batches, lr 0.001·√(B/64), evaluated every ~1,280 examples; then the adaptive run.
  for b in 64 128 256 512 1024; do
    lr=$(python3 -c "print(0.001*($b/64)**0.5)")
    run --config configs/batch/adaptive.yaml --set train.batch_schedule=fixed --set train.global_batch=$b \
        --set optimizer.lr=$lr --set train.eval_every=$(( 1280 / b > 0 ? 1280 / b : 1 )) --set train.log_every=1 --out runs/batch/fixed-$b
  done
  run --config configs/batch/adaptive.yaml --out runs/batch/adaptive
fi
if [[ $part == all || $part == c ]]; then
  # (c) lr grid at each batch, fixed budget of 1 epoch (60,000 examples), final test loss. Muon: the hidden matrices
  # on Muon at the grid's lr, the head and biases on AdamW at 0.001·√(B/64) (its √-scaled lr, as in (b)).
  for opt in adamw sgd muon; do
    if [[ $opt == adamw ]]; then lrs="0.0003 0.001 0.003 0.01 0.03"
    elif [[ $opt == sgd ]]; then lrs="0.01 0.03 0.1 0.3 1.0"
    else lrs="0.003 0.01 0.03 0.1 0.3"; fi
    for b in 64 256 1024 4096; do
      for lr in $lrs; do
        if [[ $opt == adamw ]]; then extra="--set optimizer.name=adamw --set optimizer.lr=$lr --set optimizer.weight_decay=0.01"
        elif [[ $opt == sgd ]]; then extra="--set optimizer.name=sgd --set optimizer.lr=$lr --set optimizer.momentum=0.9 --set optimizer.nesterov=true --set optimizer.weight_decay=0.0005"
        else extra="--set optimizer.name=adamw --set optimizer.lr=$(python3 -c "print(0.001*($b/64)**0.5)") --set optimizer.weight_decay=0.01 --set groups.matrix.optimizer=muon --set groups.matrix.lr=$lr"; fi
        run --config configs/batch/adaptive.yaml --set train.batch_schedule=fixed --set train.global_batch=$b --set train.epochs=1 \
            $extra --set train.eval_every=0 --set train.log_every=1 \
            --set train.max_bad_steps=3 --out runs/batch/lr/$opt-b$b-lr$lr || true
      done
    done
  done
fi
if [[ $part == gpt ]]; then
  # (b) on the byte GPT: fixed 8, 16, 32 sequences (lr 0.001·√(B/8), evaluated every ~200 sequences), then adaptive.
  for b in 8 16 32; do
    lr=$(python3 -c "print(0.001*($b/8)**0.5)")
    run --config configs/batch/gpt-adaptive.yaml --set train.batch_schedule=fixed --set train.global_batch=$b \
        --set optimizer.lr=$lr --set train.steps=$(( 8000 / b )) --set train.eval_every=$(( 200 / b )) --out runs/batch/gpt-fixed-$b
  done
  run --config configs/batch/gpt-adaptive.yaml --out runs/batch/gpt-adaptive
fi
if [[ $part == gpt-lr ]]; then
  # (c) on the byte GPT: lr grid at 8, 32 and 128 sequences, a fixed budget of 8,192 sequences (1.05 M tokens), warmup
  # over the first 400 sequences then constant, final validation loss on 512 sequences. Single-process runs, JOBS at
  # a time (default 2: one per core; a 1-rank run differs from a 2-rank one only in summation order). A run whose
  # summary.json exists is skipped, so the part can be stopped and rerun. OPTS picks the optimizers (default all),
  # LRS replaces their grids (the docs' table adds OPTS=adamw LRS="0.0005 0.002").
  out=runs/batch/gpt-lr
  mkdir -p $out
  jobs=()
  for opt in ${OPTS:-adamw sgd muon}; do
    if [[ $opt == adamw ]]; then lrs="0.0003 0.001 0.003 0.01"
    elif [[ $opt == sgd ]]; then lrs="0.03 0.1 0.3 1.0"
    else lrs="0.003 0.01 0.03 0.1"; fi
    lrs=${LRS:-$lrs}
    for b in 8 32 128; do
      for lr in $lrs; do
        dir=$out/$opt-b$b-lr$lr
        [[ -f $dir/summary.json ]] && continue
        rm -rf $dir
        if [[ $opt == adamw ]]; then extra="--set optimizer.lr=$lr"
        elif [[ $opt == sgd ]]; then extra="--set optimizer.name=sgd --set optimizer.lr=$lr --set optimizer.momentum=0.9 --set optimizer.nesterov=true --set optimizer.weight_decay=0"
        else extra="--set optimizer.lr=$(python3 -c "print(0.001*($b/8)**0.5)") --set groups.matrix.optimizer=muon --set groups.matrix.lr=$lr --set groups.matrix.weight_decay=0"; fi
        jobs+=("$bin train --config configs/batch/gpt-branch-base.yaml --set train.global_batch=$b --set train.steps=$(( 8192 / b )) \
--set schedule.warmup_steps=$(( 400 / b )) --set train.eval_every=0 --set train.noise_scale=false --set checkpoint.every=0 \
--set checkpoint.final=false --set train.max_bad_steps=3 --set train.log_every=$(( 80 / b > 0 ? 80 / b : 1 )) $extra --out $dir")
      done
    done
  done
  printf '%s\n' "${jobs[@]}" | OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 nice -n ${NICE:-10} xargs -P ${JOBS:-2} -I{} sh -c '{} > /dev/null 2>&1 || true'
fi
