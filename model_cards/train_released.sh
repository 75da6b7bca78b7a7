#!/usr/bin/env bash
# Reproduces the released CPU-trained weights and their timm resnet18 baselines, trained by the same
# command on the same data and time budget (--time_limit BUDGET seconds of training per run).
# Usage: BUDGET=480 SEEDS="0 1" PAIR=concurrent SHARED=../shared bash model_cards/train_released.sh [name ...]
# names: mnist2d smnist smnist784 pmnist fsdd vowels_drop30 (default: all).
# SEEDS: the --seed of each run (default 0); the seed also draws the built-in datasets' split or samples.
# PAIR: "sequential" (default: CCNN then resnet18, each with every core) or "concurrent" (both at once,
#   one thread each, so that both see the same machine load; how every CPU release was trained).
# Outputs, the layout model_cards/build_release.py reads: release_runs/<name>_{ccnn,resnet18}/ for seed 0
# (the released weights), release_runs/<name>_{ccnn,resnet18}_seed<k>/ for seed k > 0, each with a .log.
set -euo pipefail
BUDGET="${BUDGET:-480}"
SEEDS="${SEEDS:-0}"
PAIR="${PAIR:-sequential}"
SHARED="${SHARED:-../shared}"
OUT="${OUT:-release_runs}"
mkdir -p "$OUT"
# The official evaluation protocol: 10 % of the training data held out (the same samples for every seed
# and model), the best-validation weights tested, early stopping after 20 epochs without improvement.
common=(--epochs 1000 --warmup 1 --time_limit "$BUDGET" --val_split 0.1 --patience 20 --report_to none
        --save_steps 1000000 --overwrite)
declare -A ARGS=(
  [mnist2d]="--dataset mnist --dataset_option resolution=14 --preset cifar10_4_140 --batch_size 64 --eval_resolutions 0.5x,1x,2x,4x"
  [smnist]="--dataset smnist --dataset_option resolution=14 --preset smnist_4_140 --batch_size 50 --eval_resolutions 1x"
  [smnist784]="--dataset smnist --preset smnist_4_140 --batch_size 50 --eval_resolutions 1x"
  [pmnist]="--dataset pmnist --preset pmnist_4_140 --batch_size 50 --eval_resolutions 1x"
  [fsdd]="--dataset $SHARED/data/fsdd/fsdd_audiofolder.zip --preset sc_raw_4_140 --hidden 32 --sampling_rate 4000 --batch_size 32 --eval_resolutions 1x,2x"
  [vowels_drop30]="--dataset aeon:JapaneseVowels --drop_rate 0.3 --drop_seed 0 --preset smnist_4_140 --hidden 64 --blocks 2 --dropout 0 --batch_size 16 --eval_resolutions 1x"
)
case "$PAIR" in
  sequential | concurrent) ;;
  *) echo "PAIR must be sequential or concurrent, not '$PAIR'" >&2; exit 2 ;;
esac

# run NAME SEED FOLDER ARGS...: one ccnn-train run of release NAME, its output filtered into FOLDER.log
run() {
  local name=$1 seed=$2 folder=$3
  shift 3
  # shellcheck disable=SC2086
  ccnn-train ${ARGS[$name]} "$@" --seed "$seed" --output_dir "$folder" 2>&1 \
    | tr '\r' '\n' | grep -v -E '^(training|Writing)' > "$folder.log" || { cat "$folder.log"; return 1; }
  tail -12 "$folder.log"
}

# train NAME MODEL SEED: the budgeted run of MODEL (ccnn or resnet18)
train() {
  local name=$1 model=$2 seed=$3 suffix extra=()
  suffix=$([ "$seed" = 0 ] || echo "_seed$seed")
  [ "$model" = resnet18 ] && extra=(--timm_model resnet18)
  run "$name" "$seed" "$OUT/${name}_${model}$suffix" "${common[@]}" "${extra[@]}"
}

names=("$@")
[ ${#names[@]} -eq 0 ] && names=(mnist2d smnist smnist784 pmnist fsdd vowels_drop30)
for name in "${names[@]}"; do
  [ -n "${ARGS[$name]:-}" ] || { echo "unknown release '$name'" >&2; exit 2; }
  for seed in $SEEDS; do
    if [ "$PAIR" = concurrent ]; then
      OMP_NUM_THREADS=1 train "$name" ccnn "$seed" & ccnn=$!
      OMP_NUM_THREADS=1 train "$name" resnet18 "$seed" & baseline=$!
      status=0
      wait "$ccnn" || status=$?
      wait "$baseline" || status=$?
      [ "$status" = 0 ] || exit "$status"
    else
      train "$name" ccnn "$seed"
      train "$name" resnet18 "$seed"
    fi
  done
done
