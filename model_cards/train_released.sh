#!/usr/bin/env bash
# Reproduces the released CPU-trained weights (2 cores; each run has the same time budget) and
# their timm resnet18 baselines, trained by the same command on the same data and budget.
# Usage: BUDGET=480 SHARED=../shared bash model_cards/train_released.sh [name ...]
# names: mnist2d smnist fsdd pathfinder2d vowels_drop30 (default: all). Outputs: release_runs/<name>_{ccnn,resnet18}/
set -euo pipefail
BUDGET="${BUDGET:-480}"
SHARED="${SHARED:-../shared}"
OUT="${OUT:-release_runs}"
mkdir -p "$OUT"
common=(--epochs 1000 --warmup 1 --time_limit "$BUDGET" --report_to none --save_steps 1000000 --overwrite)
declare -A ARGS=(
  [mnist2d]="--dataset mnist --dataset_option resolution=14 --preset cifar10_4_140 --batch_size 64 --eval_resolutions 0.5x,1x,2x,4x"
  [smnist]="--dataset smnist --dataset_option resolution=14 --preset smnist_4_140 --batch_size 50 --eval_resolutions 1x"
  [fsdd]="--dataset $SHARED/data/fsdd/fsdd_audiofolder.zip --preset sc_raw_4_140 --hidden 32 --sampling_rate 4000 --batch_size 32 --eval_resolutions 1x,2x"
  [pathfinder2d]="--dataset pathfinder --preset pathfinder2d_4_140 --hidden 64 --batch_size 50 --eval_resolutions 1x,2x"
  [vowels_drop30]="--dataset aeon:JapaneseVowels --drop_rate 0.3 --drop_seed 0 --preset smnist_4_140 --hidden 64 --blocks 2 --dropout 0 --batch_size 16 --eval_resolutions 1x"
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(mnist2d smnist fsdd pathfinder2d vowels_drop30)
for name in "${names[@]}"; do
  for model in ccnn resnet18; do
    extra=()
    [ "$model" = resnet18 ] && extra=(--timm_model resnet18)
    # shellcheck disable=SC2086
    ccnn-train ${ARGS[$name]} "${common[@]}" "${extra[@]}" --output_dir "$OUT/${name}_${model}" 2>&1 \
      | tr '\r' '\n' | grep -v -E '^(training|Writing)' > "$OUT/${name}_${model}.log" || { cat "$OUT/${name}_${model}.log"; exit 1; }
    tail -12 "$OUT/${name}_${model}.log"
  done
done
