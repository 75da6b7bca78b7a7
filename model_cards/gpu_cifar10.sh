#!/usr/bin/env bash
# One prepared GPU run (a lent H100/H200, under 10 minutes), from the repository root:
#   OUT=/some/dir bash model_cards/gpu_cifar10.sh
# 1. The CIFAR-10 release: CCNN cifar10_4_140 and timm's resnet18 trained at the same time by the same
#    command (bf16, --compile, --augment, batch 128) on the same 40k training images (the 10k test images
#    held out) with the same --time_limit BUDGET. A run whose compiled step fails is retried eagerly with
#    the time that is left.
# 2. benchmarks/bench_gpu.py with the rest of the time (rows not started by then are listed as skipped).
# A short lease: BENCH_FIRST=SECONDS runs the benchmark first, and BUDGET=auto gives the training what is left.
# Results come back under $OUT: the runs as tarballs (no checkpoints; no resnet18 weights), gpu_speed.*,
# and log.txt. No network: the data is the zip at $DATA, the code this checkout (PYTHONPATH).
set -uo pipefail
OUT="${OUT:-/tmp/out}"
DATA="${DATA:-.gpu_data/cifar10_40k.zip}"
BUDGET="${BUDGET:-270}"  # seconds of training per model
TOTAL="${TOTAL:-570}"    # seconds for everything; the benchmark gets what the training leaves
read -r -a EXTRA <<< "${EXTRA:-}"            # more ccnn-train options (a CPU smoke test: --cpu --max_samples 256)
read -r -a BENCH_ARGS <<< "${BENCH_ARGS:-}"  # more bench_gpu.py options (a CPU smoke test: --device cpu --tiny)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONPATH="$PWD" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no GPU"
python3 -c "import torch, transformers, timm, accelerate, huggingface_hub as h; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'timm', timm.__version__, 'accelerate', accelerate.__version__, 'hub', h.__version__)"
nproc

common=(--dataset "$DATA" --preset cifar10_4_140 --augment --mixed_precision bf16 --batch_size 128
        --val_split 0.1 --patience 20 --warmup 2 --epochs 500 --eval_resolutions 0.5x,1x,2x --test_every "${TEST_EVERY:-5}" --report_to none
        --save_steps 1000000 --overwrite "${EXTRA[@]}")

# train NAME TIME_LIMIT EXTRA...: one run into run_NAME (log run_NAME.log), killed past its limit + SLACK s
train() {
  local name=$1 limit=$2
  shift 2
  timeout $((limit + ${SLACK:-150})) python3 -m ccnn_hf.training.train "${common[@]}" --time_limit "$limit" "$@" \
    --output_dir "run_$name" 2>&1 | tr '\r' '\n' | grep -v -E '^(training|Writing)' > "run_$name.log"
}

# retry NAME EXTRA...: after a failed compiled run, the same run eagerly with the time left
retry() {
  local name=$1 left
  shift
  tail -30 "run_$name.log"
  left=$((TOTAL - SECONDS - 200))
  if [ "$left" -ge 60 ]; then
    echo "== $name: compiled run failed; eager run with --time_limit $left"
    mv "run_$name.log" "run_${name}_compiled_failed.log"
    train "$name" "$left" "$@" || tail -30 "run_$name.log"
  fi
}

bench() {  # bench SECONDS: bench_gpu.py for at most SECONDS (rows not started by SECONDS - 40 are skipped)
  echo "== benchmark at ${SECONDS}s: $1 s"
  timeout "$1" python3 benchmarks/bench_gpu.py --time_budget $(($1 - 40)) --out "$OUT" "${BENCH_ARGS[@]}"
}
if [ -n "${BENCH_FIRST:-}" ]; then  # a short lease: the CIFAR-10 rows first, then training with the rest
  bench "$BENCH_FIRST"
  [ "$BUDGET" = auto ] && BUDGET=$((TOTAL - SECONDS - 95))
fi
echo "== training (budget $BUDGET s each, both at once) at ${SECONDS}s"
train ccnn "$BUDGET" --compile &
ccnn=$!
train resnet18 "$BUDGET" --timm_model resnet18 --compile &
resnet=$!
wait $ccnn || retry ccnn
wait $resnet || retry resnet18 --timm_model resnet18
for name in ccnn resnet18; do
  echo "== $name"
  tail -14 "run_$name.log"
  skip=(--exclude=checkpoints)
  [ "$name" = resnet18 ] && skip+=(--exclude=model.safetensors)  # the baseline's 44 MB are not released
  cp run_*"$name"*.log "run_$name/" 2>/dev/null
  tar czf "$OUT/${name}_cifar10.tgz" "${skip[@]}" "run_$name"
done

left=$((TOTAL - SECONDS - 5))
[ -z "${BENCH_FIRST:-}" ] && [ "$left" -ge 60 ] && bench "$left"
echo "== done at ${SECONDS}s"
