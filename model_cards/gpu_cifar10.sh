#!/usr/bin/env bash
# One prepared GPU run (a lent H100/H200, ~10 minutes): CCNN cifar10_4_140 in bf16 on 40k CIFAR-10
# training images (the 10k test images held out), then timm's resnet18 by the same command with the
# same data, recipe and time budget. Results come back as tarballs under $OUT.
# Usage on the device machine, from the repository root: OUT=/some/dir bash model_cards/gpu_cifar10.sh
set -euo pipefail
export PYTHONPATH="$PWD" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT="${OUT:-/tmp/out}"
DATA="${DATA:-.gpu_data/cifar10_40k.zip}"
BUDGET="${BUDGET:-240}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU"
python3 -c "import torch, transformers, timm, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'timm', timm.__version__)"
common=(--dataset "$DATA" --preset cifar10_4_140 --mixed_precision bf16 --epochs 500 --warmup 1 --time_limit "$BUDGET"
        --eval_resolutions 0.5x,1x,2x --report_to none --save_steps 1000000)
for name in ccnn resnet18; do
  extra=()
  [ "$name" = resnet18 ] && extra=(--timm_model resnet18)
  python3 -m ccnn_hf.train "${common[@]}" "${extra[@]}" --output_dir "run_$name" 2>&1 | tr '\r' '\n' \
    | grep -v -E '^(training|Writing)' | tail -20
  # the baseline's 44 MB of weights are not released: bring back its results only
  skip=(--exclude=checkpoints)
  [ "$name" = resnet18 ] && skip+=(--exclude=model.safetensors)
  tar czf "$OUT/${name}_cifar10.tgz" "${skip[@]}" "run_$name"
done
