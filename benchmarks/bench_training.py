"""CPU training speed of CCNN against timm's resnet18 and against its own reference mode, as ratios
measured within one process.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_training.py [--rounds 8] [--threads N] [--compile] [--out DIR]

Three comparisons, each a full training step as ``ccnn-train`` takes it (AdamW; forward,
cross-entropy plus, for a CCNN, the official L2-norm penalty with its preset's weight; backward,
step) at batch 64 on the same fixed input, models built with ``torch.manual_seed(0)``:

* 14x14 MNIST: ``cifar10_4_140`` with one input channel, its kernel scaled to the 14x14 base
  (15x15 taps, as ``ccnn-train --preset cifar10_4_140 --dataset mnist --dataset_option resolution=14``
  builds it) vs resnet18 (timm, one input channel, 10 classes).
  Goal: CCNN at most 2x resnet18's step time (an epoch is the same number of steps for both).
* sMNIST-784: ``smnist_4_140`` on ``[64, 1, 784]`` vs resnet18 on the same data as ``ccnn-train
  --timm_model resnet18`` feeds it, a ``[64, 1, 1, 784]`` image. Goal: CCNN no slower.
* digits-64 (8x8 digits as sequences, L = 64): the 48-channel, 3-block ``smnist_4_140`` of issue 24's learning
  curves on ``[64, 1, 64]``, resnet18 on ``[64, 1, 1, 64]``; a short sequence, where fixed costs weigh most.

Each comparison also times the same CCNN in reference mode with the official initialisation (the
official code's behaviour: fixed kernel grid, no band limits, the official path switch) in the same
rounds. Goal: the default (continuous) step at most 1.05x the reference step.

After two warm-up steps each, the models are timed interleaved, round by round (so load changes
hit both); the ratio is of the medians. ``--compile`` adds both models compiled as ``ccnn-train
--compile`` compiles them (CCNN: stem and blocks, one graph each; resnet18: whole), timed in the
same rounds, and the compiled ratio. Each comparison also counts the dense floating-point work of
one step (``torch.utils.flop_counter``: convolutions and matrix products; the CCNN's FFTs and
elementwise work are not counted): a time ratio below the FLOP ratio would need the CCNN's dense
layers to run faster than resnet18's. Writes ``OUT/training.json`` and ``OUT/training.md``
(default OUT: ``benchmarks/results``) with the load average before and after.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path
from statistics import median

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"
BATCH = 64
# name: (CCNN preset, CCNN input shape, resnet18 input shape, target ratio CCNN / resnet18)
COMPARISONS = {
    "14x14 MNIST": ("cifar10_4_140", (1, 14, 14), (1, 14, 14), 2.0),
    "sMNIST-784": ("smnist_4_140", (1, 784), (1, 1, 784), 1.0),
    "digits-64": ("smnist_4_140", (1, 64), (1, 1, 64), 1.0),
}
# What ccnn-train changes in a preset for the comparison's data (its base resolution and kernel).
CCNN_OVERRIDES = {
    "14x14 MNIST": {"kernel_size": 15, "base_resolution": (14, 14)},
    "sMNIST-784": {},
    "digits-64": {"hidden_channels": 48, "num_blocks": 3, "base_resolution": (64,)},
}
REFERENCE_TARGET = 1.05  # default step / reference-mode step (issue 24)


def make_step(model, shape: tuple[int, ...], penalty=None, weight: float = 0.0):
    """A closure running one AdamW training step of ``model`` on a fixed batch of ``shape``; with a
    ``penalty`` function, ``weight`` x its value joins the loss (as ccnn-train adds the CCNN's)."""
    import torch
    from torch.nn import functional as F

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, *shape, generator=generator)
    y = torch.randint(0, 10, (BATCH,), generator=generator)
    # No decoupled weight decay, as in ccnn-train: the CCNN's official penalty regularises instead.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    model.train()

    def step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        if penalty is not None:
            loss = loss + weight * penalty()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    return step


def dense_gflop(model, shape: tuple[int, ...]) -> float:
    """GFLOP of convolutions and matrix products in one forward+backward of a batch of ``shape``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    probe = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as counter:
        probe(torch.zeros(BATCH, *shape)).sum().backward()
    return counter.get_total_flops() / 1e9


def compare(name: str, rounds: int, compiled: bool) -> dict:
    import timm
    import torch

    from ccnn_hf import build_ccnn, get_preset
    from ccnn_hf.training.speed import compile_for_training, regulariser

    preset, ccnn_shape, resnet_shape, _ = COMPARISONS[name]
    settings = dict(in_chans=ccnn_shape[0], num_classes=10, **CCNN_OVERRIDES[name])
    torch.manual_seed(0)
    ccnn = build_ccnn(preset, **settings)
    torch.manual_seed(0)
    reference = build_ccnn(preset, mode="reference", init_scheme="official", **settings)
    torch.manual_seed(0)
    resnet = timm.create_model("resnet18", pretrained=False, num_classes=10, in_chans=resnet_shape[0])
    gflop = {"ccnn": dense_gflop(ccnn, ccnn_shape), "resnet18": dense_gflop(resnet, resnet_shape)}
    models = {"ccnn": (ccnn, ccnn_shape), "ccnn reference": (reference, ccnn_shape), "resnet18": (resnet, resnet_shape)}
    if compiled:
        for key in ("ccnn", "resnet18"):
            model, shape = models[key]
            twin = copy.deepcopy(model)
            compile_for_training(twin, "cpu")
            models[f"{key} compiled"] = (twin, shape)
    weight = get_preset(preset).train["weight_decay"]  # the official penalty's weight (presets' naming)
    steps = {
        key: make_step(model, shape, *((regulariser(model, "compiled" in key), weight) if "ccnn" in key else ()))
        for key, (model, shape) in models.items()
    }
    warmup = {key: [step(), step()] for key, step in steps.items()}  # compiling happens here
    times = {key: [] for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            times[key].append(step())
    medians = {key: median(t) for key, t in times.items()}
    return {
        "preset": preset,
        "ccnn_input": list(ccnn_shape),
        "resnet18_input": list(resnet_shape),
        "batch": BATCH,
        "warmup_s": warmup,
        "times_s": times,
        "median_s": medians,
        "ratio": medians["ccnn"] / medians["resnet18"],
        "reference_ratio": medians["ccnn"] / medians["ccnn reference"],
        "penalty_weight": weight,
        "compiled_ratio": medians["ccnn compiled"] / medians["resnet18 compiled"] if compiled else None,
        "dense_gflop": gflop,
        "dense_gflop_ratio": gflop["ccnn"] / gflop["resnet18"],
        "params": {
            "ccnn": sum(p.numel() for p in ccnn.parameters()),
            "resnet18": sum(p.numel() for p in resnet.parameters()),
        },
    }


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# CPU training steps: CCNN vs resnet18 (same data and batch size)",
        "",
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), torch {m['torch']} with {m['threads']} threads, "
        f"`OMP_WAIT_POLICY={m['omp_wait_policy']}`. Load average (1 / 5 / 15 min) before "
        f"{' / '.join(f'{v:.2f}' for v in m['load_before'])}, after {' / '.join(f'{v:.2f}' for v in m['load_after'])}. "
        f"Batch {BATCH}, AdamW, medians of {report['rounds']} interleaved rounds after two warm-up steps; a CCNN's "
        "loss includes the official L2-norm penalty (its preset's weight), as in ccnn-train. "
        "Dense GFLOP: convolutions and matrix products of one step (FFTs and elementwise work not counted).",
        "",
        "| comparison | variant | CCNN step ms | resnet18 step ms | CCNN / resnet18 | target | met "
        "| dense GFLOP CCNN / resnet18 |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    reference_lines = [
        "",
        "The same CCNN step in its default (continuous) mode against reference mode with the official "
        f"initialisation, timed in the same rounds (target <= {REFERENCE_TARGET:g}):",
        "",
        "| comparison | default step ms | reference step ms | default / reference | met |",
        "|---|---:|---:|---:|---|",
    ]
    for name, r in report["results"].items():
        target = COMPARISONS[name][3]
        flops = f"{r['dense_gflop']['ccnn']:.1f} / {r['dense_gflop']['resnet18']:.1f} ({r['dense_gflop_ratio']:.2f}x)"
        for variant, suffix, ratio in (("eager", "", r["ratio"]), ("compiled", " compiled", r["compiled_ratio"])):
            if ratio is None:
                continue
            ccnn_ms, resnet_ms = (1e3 * r["median_s"][key + suffix] for key in ("ccnn", "resnet18"))
            lines.append(
                f"| {name} (`{r['preset']}`) | {variant} | {ccnn_ms:.0f} | {resnet_ms:.0f} | {ratio:.2f} | "
                f"<= {target:g} | {'yes' if ratio <= target else '**NO**'} | {flops} |"
            )
        default_ms, reference_ms = (1e3 * r["median_s"][key] for key in ("ccnn", "ccnn reference"))
        met = "yes" if r["reference_ratio"] <= REFERENCE_TARGET else "**NO**"
        reference_lines.append(
            f"| {name} (`{r['preset']}`) | {default_ms:.1f} | {reference_ms:.1f} | {r['reference_ratio']:.2f} | {met} |"
        )
    return "\n".join(lines + reference_lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8, help="timed rounds per comparison")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also time both models compiled")
    parser.add_argument("--only", default=None, help="comma-separated comparison names to run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    import torch

    from ccnn_hf.training.allocator import keep_large_allocations

    keep_large_allocations()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    names = list(COMPARISONS) if args.only is None else args.only.split(",")
    results = {}
    for name in names:
        results[name] = compare(name, args.rounds, args.compile)
        print(
            f"{name}: CCNN / resnet18 = {results[name]['ratio']:.2f}, "
            f"default / reference = {results[name]['reference_ratio']:.2f}",
            flush=True,
        )
    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "logical_cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "rounds": args.rounds,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training.json").write_text(json.dumps(report, indent=1))
    (args.out / "training.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(REPO_ROOT))
    main()
