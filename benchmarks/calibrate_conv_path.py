"""Calibrate the direct/FFT crossover of ``conv_impl="auto"`` (``ccnn_hf.fftconv``) on this machine.

``auto`` picks the depthwise path from operation counts (``fftconv.estimated_costs``): FFT when
``direct_cost > crossover * fft_cost``, one crossover per pass (inference, training) and
number of spatial axes. This script times both paths over a grid of layer shapes
(1D causal and 2D centred, batch 1..64, kernels from 3 taps to the input size), forward and
forward+backward, and reports the crossover that loses the least time summed over the grid,
next to the constants in use. It changes nothing; the constants are written down by hand in
``fftconv.py`` with the conditions of the measurement.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/calibrate_conv_path.py [--threads N] [--dims 1 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ccnn_hf.training.files import write_json_atomic
from ccnn_hf.fftconv import crossover_for, depthwise_conv_direct, depthwise_conv_fft, estimated_costs

CHANNELS = 140
# (x shape without channels, kernel spatial shape, causal)
GRID_1D = [
    ((b, n), (k,), True)
    for b in (1, 8, 64)
    for n in (64, 196, 784, 2048)
    for k in sorted({3, 9, 17, 33, n // 8, n // 4, n // 2, n})
    if 3 <= k <= n
]
GRID_2D = [
    ((b, n, n), (k, k), False)
    for b in (1, 8, 64)
    for n in (8, 14, 32, 64)
    for k in sorted({3, 5, 9, 15, 2 * (n // 4) + 1, 2 * (n // 2) + 1, n + 1 - n % 2})
    if k <= n + 1
]
MAX_DIRECT_COST = 2e10  # larger problems are FFT by any crossover in range, and take minutes on the direct path


def time_call(fn, x: torch.Tensor, kernel: torch.Tensor, causal: bool, backward: bool, budget_s: float) -> float:
    """Median-of-few wall time of one call (forward, or forward+backward), after one warm-up."""

    def once() -> float:
        start = time.perf_counter()
        out = fn(x, kernel, None, causal)
        if backward:
            out.sum().backward()
        return time.perf_counter() - start

    first = once()
    runs = max(2, min(7, int(budget_s / max(first, 1e-6))))
    times = sorted(once() for _ in range(runs))
    return times[len(times) // 2]


def measure(budget_s: float, dims: tuple[int, ...], keep: Callable[[list[dict]], None]) -> list[dict]:
    """Time both paths over the grids of ``dims``; ``keep`` gets the rows so far after each shape."""
    rows = []
    grid = (GRID_1D if 1 in dims else []) + (GRID_2D if 2 in dims else [])
    for x_rest, kernel_spatial, causal in tqdm(grid, desc="shapes"):
        x_shape = (x_rest[0], CHANNELS, *x_rest[1:])
        kernel_shape = (CHANNELS, *kernel_spatial)
        direct_cost, fft_cost = estimated_costs(x_shape, kernel_shape, causal)
        if direct_cost > MAX_DIRECT_COST:
            continue
        row = dict(
            x=list(x_shape), kernel=list(kernel_shape), causal=causal, direct_cost=direct_cost, fft_cost=fft_cost
        )
        for backward in (False, True):
            x = torch.randn(x_shape, requires_grad=backward)
            kernel = torch.randn(kernel_shape, requires_grad=backward)
            with torch.enable_grad() if backward else torch.no_grad():
                for name, fn in (("direct", depthwise_conv_direct), ("fft", depthwise_conv_fft)):
                    row[f"{name}_{'train' if backward else 'eval'}_s"] = time_call(
                        fn, x, kernel, causal, backward, budget_s
                    )
        rows.append(row)
        keep(rows)
    return rows


def loss(rows: list[dict], crossover: float, pass_: str) -> float:
    """Seconds lost over the grid by choosing with ``crossover`` instead of the faster path."""
    total = 0.0
    for r in rows:
        chosen = "fft" if r["direct_cost"] > crossover * r["fft_cost"] else "direct"
        total += r[f"{chosen}_{pass_}_s"] - min(r[f"direct_{pass_}_s"], r[f"fft_{pass_}_s"])
    return total


def best_crossover(rows: list[dict], pass_: str) -> tuple[float, float]:
    candidates = [2.0 ** (e / 4) for e in range(-24, 25)]
    scored = [(loss(rows, c, pass_), c) for c in candidates]
    least = min(s for s, _ in scored)
    # Of the crossovers within 2 % of the least loss, the geometric middle of the range.
    good = [c for s, c in scored if s <= least * 1.02 + 1e-9]
    return (good[0] * good[-1]) ** 0.5, least


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--budget", type=float, default=0.3, help="seconds of timed runs per path and shape")
    parser.add_argument("--out", type=Path, default=None, help="write the measurements as JSON here")
    parser.add_argument(
        "--dims", type=int, nargs="+", choices=(1, 2), default=[1, 2], help="spatial axes to calibrate (default: both)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()}", flush=True)

    def keep(rows: list[dict], summary: dict | None = None) -> None:
        """The measurements so far in ``--out`` (written atomically: an interrupted run keeps its rows)."""
        if args.out:
            state = dict(rows=rows, summary=summary, complete=summary is not None, threads=torch.get_num_threads())
            write_json_atomic(args.out, {**state, "load": os.getloadavg()})

    rows = measure(args.budget, tuple(args.dims), keep)
    summary = {}
    for pass_ in ("eval", "train"):
        for data_dim in args.dims:
            subset = [r for r in rows if len(r["x"]) == data_dim + 2]
            crossover, lost = best_crossover(subset, pass_)
            in_use = crossover_for(pass_ == "train", data_dim)
            best_total = sum(min(r[f"direct_{pass_}_s"], r[f"fft_{pass_}_s"]) for r in subset)
            name = f"{pass_} {data_dim}D"
            summary[name] = dict(
                best_crossover=crossover,
                lost_s=lost,
                in_use=in_use,
                lost_in_use_s=loss(subset, in_use, pass_),
                best_total_s=best_total,
            )
            print(
                f"{name}: best crossover {crossover:.3g} (loses {lost:.3f} s of {best_total:.3f} s); "
                f"in use {in_use:.3g} (loses {summary[name]['lost_in_use_s']:.3f} s)"
            )
    keep(rows, summary)


if __name__ == "__main__":
    main()
