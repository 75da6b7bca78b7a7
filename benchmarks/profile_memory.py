"""Where the memory of one CCNN training step goes (CPU): tensors kept for the backward, per
module, and the allocator's live-byte peak of a forward+backward.

    python benchmarks/profile_memory.py                          # cifar10_4_140, 128x128, batch 2
    python benchmarks/profile_memory.py --preset smnist_4_140 --size 16384

* **saved for backward**: every tensor autograd keeps (``saved_tensors_hooks``), counted once
  per storage and attributed to the innermost module running when it was saved.
* **live peak**: the highest total of bytes allocated through torch's CPU allocator during one
  forward+backward (``torch.profiler`` memory events), over what was allocated before it. The
  peak RSS of ``bench_speed.py`` is higher: it also counts heap memory that was freed but not
  reusable (fragmentation).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working tree's ccnn_hf
from ccnn_hf import build_ccnn  # noqa: E402


def saved_by_module(model: torch.nn.Module, x: torch.Tensor) -> Counter:
    """Bytes autograd saves during ``model(x)``, per innermost module (each storage counted once)."""
    stack: list[str] = []
    names = {module: name for name, module in model.named_modules()}

    def enter(module: torch.nn.Module, args: tuple) -> None:
        stack.append(names[module])

    def leave(module: torch.nn.Module, args: tuple, output: object) -> None:
        stack.pop()

    handles = [h for m in names for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    seen: set[int] = set()
    per_module: Counter = Counter()

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            per_module[stack[-1] if stack else "(outside modules)"] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    for handle in handles:
        handle.remove()
    return per_module


def live_peak_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Peak of live torch-allocated CPU bytes during one forward+backward, over the start."""
    model.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x).sum().backward()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cifar10_4_140")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--mode", default="continuous", choices=("continuous", "reference"))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = build_ccnn(args.preset, mode=args.mode).train()
    x = torch.randn(args.batch, model.in_chans, *(args.size,) * model.data_dim)
    model(x).sum().backward()  # warm-up: kernel plans, lazy state
    saved = saved_by_module(model, x)
    mib = 2**20
    print(
        f"{args.preset} {args.mode} input {tuple(x.shape)}: saved for backward {sum(saved.values()) / mib:.1f} MiB, "
        f"live peak of a forward+backward {live_peak_bytes(model, x) / mib:.1f} MiB"
    )
    kinds: Counter = Counter()
    for name, nbytes in saved.items():
        kinds[name.split(".")[-1] if name else "(model)"] += nbytes
    for kind, nbytes in kinds.most_common():
        print(f"  {nbytes / mib:8.1f} MiB saved by *.{kind}")


if __name__ == "__main__":
    main()
