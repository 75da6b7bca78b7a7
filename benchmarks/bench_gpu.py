"""Training-step speed on an accelerator: CCNN presets vs timm's resnet18, eager vs compiled, bf16.

One prepared command for when a GPU is lent::

    python benchmarks/bench_gpu.py                        # CUDA: batch 64 and 256, eager and compiled
    python benchmarks/bench_gpu.py --device cpu --tiny    # smoke test of the script itself (seconds)

For each model (``cifar10_4_140`` on 3x32x32 images, ``smnist_4_140`` on 784-step sequences,
resnet18 on the same 3x32x32 images and on 1x28x28 digits, the image form of sMNIST), batch size
and variant, it times full training steps (AdamW; forward under bf16 autocast, cross-entropy,
backward, step) after warm-up steps that include compilation, and reports the median step time,
images per second, the compile (warm-up) time and, on CUDA, the peak memory. Variants:
``eager``; ``compiled``: CCNN through ``ccnn_hf.training.speed.compile_for_training`` (stem and
blocks, one graph each, ``mode="reduce-overhead"`` on CUDA: CUDA graphs), resnet18 whole through
``torch.compile`` (same mode). Writes ``OUT/gpu_speed.json`` and ``OUT/gpu_speed.md``
(default OUT: ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from statistics import median

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"
# (name, builder, input shape without batch), in the order they run at each batch size: each CCNN
# next to its resnet18 comparison, so that a --time_budget keeps pairs
MODELS = [
    ("cifar10_4_140", "ccnn", (3, 32, 32)),
    ("resnet18", "timm", (3, 32, 32)),
    ("smnist_4_140", "ccnn", (1, 784)),
    ("resnet18", "timm", (1, 28, 28)),
]
TINY_CCNN = dict(hidden=16, blocks=1, kernel_hidden=8)


def build(name: str, kind: str, in_chans: int, tiny: bool):
    """A freshly initialised model with 10 classes (seeded)."""
    import torch

    torch.manual_seed(0)
    if kind == "ccnn":
        from ccnn_hf import build_ccnn

        return build_ccnn(name, in_chans=in_chans, **(TINY_CCNN if tiny else {}))
    import timm

    return timm.create_model(name, pretrained=False, num_classes=10, in_chans=in_chans)


def train_steps(model, x, y, steps: int, device: str, dtype) -> list[float]:
    """Time ``steps`` training steps (seconds each, synchronised on CUDA)."""
    import torch
    from torch.nn import functional as F

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=dtype):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def measure(name: str, kind: str, shape: tuple[int, ...], batch: int, variant: str, args) -> dict:
    import torch

    from ccnn_hf.training.speed import compile_for_training

    torch._dynamo.reset()
    model = build(name, kind, shape[0], args.tiny).to(args.device).train()
    what = "eager"
    if variant == "compiled":
        what = compile_for_training(model, args.device)
    x = torch.randn(batch, *shape, device=args.device)
    y = torch.randint(0, 10, (batch,), device=args.device)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    warmup = train_steps(model, x, y, args.warmup, args.device, torch.bfloat16)
    times = train_steps(model, x, y, args.steps, args.device, torch.bfloat16)
    step = median(times)
    return {
        "model": name,
        "input": list(shape),
        "batch": batch,
        "variant": variant,
        "compiled": what,
        "step_ms": 1000 * step,
        "images_per_s": batch / step,
        "warmup_s": sum(warmup),
        "times_s": times,
        "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None,
        "params": sum(p.numel() for p in model.parameters()),
    }


def machine(args) -> dict:
    import torch

    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "MKL_", "PYTORCH_", "CUDA_"))},
    }
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def markdown(report: dict) -> str:
    rows = report["results"]
    lines = [
        "# Training-step speed (bf16 autocast, AdamW)",
        "",
        f"Machine: {json.dumps(report['machine'])}. Median of {report['settings']['steps']} timed steps after "
        f"{report['settings']['warmup']} warm-up steps (compilation included in warm-up)"
        + (" - TINY smoke-test models, not a benchmark." if report["settings"]["tiny"] else "."),
        "",
        "| model | input | batch | variant | step ms | images/s | warm-up s | peak MB | params |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        peak = "-" if r["peak_mem_mb"] is None else f"{r['peak_mem_mb']:.0f}"
        lines.append(
            f"| {r['model']} | {'x'.join(map(str, r['input']))} | {r['batch']} | {r['variant']} | "
            f"{r['step_ms']:.1f} | {r['images_per_s']:.0f} | {r['warmup_s']:.1f} | {peak} | {r['params']:,} |"
        )
    speedups = []
    for r in rows:
        if r["variant"] == "compiled":
            base = next(
                (
                    e
                    for e in rows
                    if e["variant"] == "eager"
                    and (e["model"], e["input"], e["batch"]) == (r["model"], r["input"], r["batch"])
                ),
                None,
            )
            if base:
                speedups.append(
                    f"{r['model']} {'x'.join(map(str, r['input']))} b{r['batch']}: "
                    f"{base['step_ms'] / r['step_ms']:.2f}x"
                )
    if speedups:
        lines += ["", "Compiled vs eager (step time ratio): " + "; ".join(speedups) + "."]
    for failure in report.get("failed", []):
        lines += ["", f"FAILED {failure['row']}: {failure['error'].strip().splitlines()[0]}"]
    if report.get("skipped_for_time"):
        lines += ["", "Not run (time budget): " + "; ".join(report["skipped_for_time"]) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="tiny models and batches, few steps: a smoke test")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 64,256; tiny: 2)")
    parser.add_argument("--variants", default="eager,compiled", help="comma-separated: eager, compiled")
    parser.add_argument("--models", default=None, help="comma-separated model names to keep (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20; tiny 2)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 5; tiny 1)")
    parser.add_argument(
        "--time_budget", type=float, default=None, help="seconds: rows not started by then are skipped (and listed)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.steps = args.steps or (2 if args.tiny else 20)
    args.warmup = args.warmup or (1 if args.tiny else 5)
    batches = [int(b) for b in (args.batches or ("2" if args.tiny else "64,256")).split(",")]
    variants = args.variants.split(",")
    if not set(variants) <= {"eager", "compiled"}:
        parser.error(f"--variants {args.variants!r}: each must be eager or compiled")
    keep = None if args.models is None else set(args.models.split(","))
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: use --device cpu (with --tiny for a smoke test)")
    results, failed, skipped = [], [], []
    started = time.perf_counter()
    for batch in batches:  # every model at the first batch size before any at the next
        for name, kind, shape in MODELS:
            if keep is not None and name not in keep:
                continue
            if args.tiny:
                shape = (shape[0], *(min(s, 64) if len(shape) == 2 else min(s, 8) for s in shape[1:]))
            for variant in variants:
                label = f"{name} {'x'.join(map(str, shape))} b{batch} {variant}"
                if args.time_budget and time.perf_counter() - started > args.time_budget:
                    skipped.append(label)
                    continue
                try:
                    row = measure(name, kind, shape, batch, variant, args)
                except Exception as error:  # one failing variant (a compiler error, say) must not lose the rest
                    failed.append({"row": label, "error": f"{type(error).__name__}: {str(error)[:500]}"})
                    print(f"{label}: FAILED {failed[-1]['error']}", flush=True)
                    continue
                print(f"{label}: {row['step_ms']:.1f} ms/step, {row['images_per_s']:.0f} img/s", flush=True)
                results.append(row)
                write_report(args, results, failed, skipped)  # after every row: a killed run keeps what it measured
    report = write_report(args, results, failed, skipped)
    print(markdown(report))
    return report


def write_report(args, results: list[dict], failed: list[dict], skipped: list[str]) -> dict:
    """Write ``gpu_speed.json`` and ``gpu_speed.md`` for the rows so far (each file replaced whole)."""
    report = {
        "machine": machine(args),
        "settings": {"steps": args.steps, "warmup": args.warmup, "tiny": args.tiny, "dtype": "bfloat16 autocast"},
        "results": results,
        "failed": failed,
        "skipped_for_time": skipped,
    }
    from ccnn_hf.training.files import write_json_atomic, write_text_atomic

    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "gpu_speed.json", report)
    write_text_atomic(args.out / "gpu_speed.md", markdown(report))
    return report


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    main()
