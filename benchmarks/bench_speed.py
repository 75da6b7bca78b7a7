"""Speed and memory benchmark of CCNN presets, and the project's speed targets.

Usage::

    python benchmarks/bench_speed.py [--quick] [--out DIR] [--device cpu|cuda] [--threads N]

Every measurement runs in a fresh worker process (this script with ``--worker SPEC``), so
peak memory can be read per configuration: on CPU the growth of the peak resident set size
(``resource.getrusage().ru_maxrss``, whose high-water mark is first reset through
``/proc/self/clear_refs``) over the RSS just before the first call; on CUDA
``torch.cuda.max_memory_allocated`` over the memory allocated before it. The parent process
never imports torch, so it cannot inflate a worker's peak.

Writes ``DIR/speed.json``, ``DIR/speed.md`` and ``DIR/speed.png`` (default DIR:
``benchmarks/results``). See ``benchmarks/README.md`` for what each number means.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any, Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"
PRESET_1D, PRESET_2D = "smnist_4_140", "cifar10_4_140"
FFT_SPEEDUP_TARGET = 3.0  # continuous FFT path vs the official direct 33x33 convolution
CACHE_SPEEDUP_TARGET = 2.0  # cached vs regenerated kernels, eval, batch 1
NLOGN_GROWTH_TARGET = 1.3  # measured time growth / N log N growth, 1D
TUNING_ENV_PREFIXES = ("OMP_", "MKL_", "KMP_", "GOMP_", "MALLOC_")  # settings that change timings: reported


# -- what to run -------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """Sizes and repeat budgets of one benchmark run (``FULL`` or ``QUICK``).

    Timed repeats after the warm-up: ``budget_s / warm-up time``, clamped to
    ``[min_runs, max_runs]`` (big sizes get fewer runs); comparisons use ``compare_budget_s``
    for all their variants together.
    """

    sizes: dict[str, tuple[int, ...]]
    batch: int
    budget_s: float
    compare_budget_s: float
    min_runs: int
    max_runs: int
    fft_vs_reference_size: int
    cache_sizes: dict[str, tuple[int, ...]]
    nlogn_sizes: tuple[int, int]
    layer_direct_runs: int


FULL = Plan(
    sizes={PRESET_1D: (1024, 4096, 16384, 65536), PRESET_2D: (32, 64, 128, 256)},
    batch=2,
    budget_s=20.0,
    compare_budget_s=60.0,
    min_runs=3,
    max_runs=10,
    fft_vs_reference_size=128,
    cache_sizes={PRESET_1D: (784, 4096), PRESET_2D: (32, 128)},
    nlogn_sizes=(4096, 65536),
    layer_direct_runs=1,
)
QUICK = Plan(
    sizes={PRESET_1D: (256, 512), PRESET_2D: (16, 24)},
    batch=2,
    budget_s=0.3,
    compare_budget_s=0.5,
    min_runs=2,
    max_runs=3,
    fft_vs_reference_size=16,
    cache_sizes={PRESET_1D: (784,), PRESET_2D: (32,)},
    nlogn_sizes=(256, 1024),
    layer_direct_runs=2,
)


@dataclass(frozen=True)
class Variant:
    """One timed call: a preset at an input size (per spatial axis).

    ``backward``: train mode, ``model(x).sum().backward()``; else eval mode under no_grad.
    ``cached``: eval only; False clears every conv's kernel cache before each call.
    ``checkpointed``: fwd+bwd with ``set_grad_checkpointing()`` (each block recomputed in backward).
    """

    preset: str
    size: int
    batch: int = 2
    backward: bool = False
    mode: str = "continuous"
    conv_impl: str = "auto"
    cached: bool = True
    checkpointed: bool = False

    @property
    def label(self) -> str:
        impl = "reference" if self.mode == "reference" else self.conv_impl
        kind = "fwd+bwd" if self.backward else "fwd" + ("" if self.cached else " uncached")
        return f"{self.preset} {self.size} b{self.batch} {impl} {kind}" + (" checkpointed" if self.checkpointed else "")


# -- worker side (imports torch) -----------------------------------------------------------
class MemoryMeter:
    """Peak memory growth of the current process from :meth:`start` to :meth:`peak_mb`."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.base = 0
        self.method = ""

    def start(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base, self.method = torch.cuda.memory_allocated(), "cuda max_memory_allocated"
        elif _reset_peak_rss():
            self.base, self.method = _current_rss_bytes(), "ru_maxrss (high-water mark reset) - RSS before"
        else:  # growth of the peak beyond the process's earlier peak (a lower bound)
            self.base, self.method = _maxrss_bytes(), "ru_maxrss growth over the earlier peak (lower bound)"

    def peak_mb(self) -> float:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _maxrss_bytes()
        return max(peak - self.base, 0) / 2**20


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _current_rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss_bytes() -> int:
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB on Linux


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def time_call(step: Callable[[], None], device: str) -> float:
    """Wall-clock seconds of one call of ``step`` (device work included)."""
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start


def repeat_count(warmup_s: float, budget_s: float, plan: Plan) -> int:
    """How many timed runs fit ``budget_s``, clamped to the plan's bounds."""
    return min(max(int(budget_s / max(warmup_s, 1e-6)), plan.min_runs), plan.max_runs)


class ModelFactory:
    """Builds each (preset, mode, conv_impl) once and hands out independent copies."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._built: dict[tuple[str, str, str], Any] = {}

    def __call__(self, variant: Variant) -> Any:
        import copy

        import torch
        from ccnn_hf import build_ccnn

        key = (variant.preset, variant.mode, variant.conv_impl)
        if key not in self._built:
            torch.manual_seed(0)
            self._built[key] = build_ccnn(variant.preset, mode=variant.mode, conv_impl=variant.conv_impl).to(
                self.device
            )
        model = copy.deepcopy(self._built[key])
        for conv in model.continuous_convs():
            conv.clear_kernel_cache()
        return model


def make_input(model: Any, variant: Variant, device: str) -> Any:
    """A fixed standard-normal input ``[B, C, size, ...]`` for ``model``."""
    import torch

    generator = torch.Generator().manual_seed(1)
    shape = (variant.batch, model.in_chans, *(variant.size,) * model.data_dim)
    return torch.randn(shape, generator=generator).to(device)


def make_step(model: Any, variant: Variant, x: Any) -> Callable[[], None]:
    """The timed call of ``variant`` on ``model`` (which it puts in train or eval mode)."""
    import torch

    if variant.backward:
        model.train()
        model.set_grad_checkpointing(variant.checkpointed)

        def train_step() -> None:
            model.zero_grad(set_to_none=True)
            model(x).sum().backward()

        return train_step
    model.eval()
    convs = model.continuous_convs()

    def eval_step() -> None:
        if not variant.cached:
            for conv in convs:
                conv.clear_kernel_cache()
        with torch.no_grad():
            model(x)

    return eval_step


def record_conv_paths(model: Any, paths: list[str]) -> list[Any]:
    """Hooks that append each conv's depthwise path ("fft"/"direct") to ``paths``; returns the handles.

    The kernel shape comes from the sampling plan, so nothing extra is generated; the path
    chooser runs in the hook instead of in the conv itself (its result is cached).
    """

    def hook(conv: Any, args: tuple) -> None:
        x, scale = args[0], args[1] if len(args) > 1 else None
        scale = conv.input_scale(x) if scale is None else scale
        kernel_shape = (conv.in_channels, *(grid.taps for grid in conv.sampling_plan(scale)))
        paths.append(conv.conv_path(x, kernel_shape))

    return [conv.register_forward_pre_hook(hook) for conv in model.continuous_convs()]


def measure_variant(spec: dict, device: str, plan: Plan) -> dict:
    """Worker task: time one variant (warm-up, then adaptive repeats) and its peak memory."""
    variant = Variant(**spec["variant"])
    model = ModelFactory(device)(variant)
    x = make_input(model, variant, device)
    step = make_step(model, variant, x)
    meter = MemoryMeter(device)
    meter.start()
    paths: list[str] = []
    handles = record_conv_paths(model, paths)
    warmup = time_call(step, device)
    for handle in handles:
        handle.remove()
    faults = _minor_page_faults()
    times = [time_call(step, device) for _ in range(repeat_count(warmup, plan.budget_s, plan))]
    return {
        "variant": asdict(variant),
        "label": variant.label,
        "warmup_s": warmup,
        "times_s": times,
        "median_s": median(times),
        "peak_mem_mb": meter.peak_mb(),
        "mem_method": meter.method,
        "minor_page_faults_per_run": (_minor_page_faults() - faults) / len(times),
        "conv_paths": dict(Counter(paths)),
    }


def _minor_page_faults() -> int:
    """Minor page faults of this process so far (fresh memory pages the OS had to map in)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def compare_variants(spec: dict, device: str, plan: Plan) -> dict:
    """Worker task: time several variants in one process, interleaved round by round."""
    variants = [Variant(**v) for v in spec["variants"]]
    factory = ModelFactory(device)
    steps = []
    for variant in variants:
        model = factory(variant)
        steps.append(make_step(model, variant, make_input(model, variant, device)))
    warmups = [time_call(step, device) for step in steps]
    rounds = repeat_count(sum(warmups), plan.compare_budget_s, plan)
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(rounds):
        for run, step in zip(times, steps):
            run.append(time_call(step, device))
    return {
        "labels": [v.label for v in variants],
        "variants": [asdict(v) for v in variants],
        "warmups_s": warmups,
        "times_s": times,
        "medians_s": [median(run) for run in times],
    }


def compare_layer_paths(spec: dict, device: str, plan: Plan) -> dict:
    """Worker task: one block's depthwise conv, FFT vs direct, forward+backward.

    Uses the kernel the continuous model generates at ``size`` (fixed, requires grad) on a
    ``[batch, hidden, size, size]`` input. The direct path gets no warm-up (at full size one
    call takes minutes, which dwarfs any one-time cost).
    """
    import torch
    from ccnn_hf.fftconv import depthwise_conv_direct, depthwise_conv_fft

    variant = Variant(**spec["variant"])
    model = ModelFactory(device)(variant)
    conv = model.blocks[0].conv
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(variant.batch, conv.in_channels, variant.size, variant.size, generator=generator).to(device)
    with torch.no_grad():
        kernel = conv.kernel(conv.input_scale(x)).detach().clone()
    x.requires_grad_(True)
    kernel.requires_grad_(True)
    bias = conv.bias.detach().clone().requires_grad_(True)

    def step_of(impl: Callable) -> Callable[[], None]:
        def step() -> None:
            for tensor in (x, kernel, bias):
                tensor.grad = None
            impl(x, kernel, bias, False).sum().backward()

        return step

    fft_step, direct_step = step_of(depthwise_conv_fft), step_of(depthwise_conv_direct)
    fft_warmup = time_call(fft_step, device)
    fft_times = [time_call(fft_step, device) for _ in range(repeat_count(fft_warmup, plan.budget_s, plan))]
    direct_times = [time_call(direct_step, device) for _ in range(plan.layer_direct_runs)]
    return {
        "label": f"{variant.preset} block conv {variant.size}px b{variant.batch} fwd+bwd",
        "kernel_shape": list(kernel.shape),
        "input_shape": list(x.shape),
        "fft_times_s": fft_times,
        "direct_times_s": direct_times,
        "fft_median_s": median(fft_times),
        "direct_median_s": median(direct_times),
    }


def machine_info(spec: dict, device: str, plan: Plan) -> dict:
    """Worker task: CPU/GPU model, threads and library versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "env": {name: value for name, value in sorted(os.environ.items()) if name.startswith(TUNING_ENV_PREFIXES)},
    }


WORKER_TASKS: dict[str, Callable[[dict, str, Plan], dict]] = {
    "measure": measure_variant,
    "memory": measure_variant,  # the same measurement, reported as a ratio instead of in the sweep
    "compare": compare_variants,
    "layer": compare_layer_paths,
    "info": machine_info,
}


def run_worker(spec: dict, device: str, threads: int | None, plan: Plan) -> None:
    """Entry point of a worker process: print the task's result as one JSON line."""
    import torch

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))  # benchmark the working tree's ccnn_hf
    from ccnn_hf.training.allocator import keep_large_allocations

    keep_large_allocations()  # as ccnn-train does: large activations are reused, not re-mapped per call
    if threads:
        torch.set_num_threads(threads)
    print(json.dumps(WORKER_TASKS[spec["task"]](spec, device, plan)))


# -- parent side (no torch) ----------------------------------------------------------------
def job_list(plan: Plan) -> list[dict]:
    """Every worker task of a run, in order: machine info, the size sweep, then the ratios."""
    jobs: list[dict] = [{"task": "info", "name": "machine"}]
    for preset, sizes in plan.sizes.items():
        for size in sizes:
            for backward in (False, True):
                variant = Variant(preset, size, batch=plan.batch, backward=backward)
                jobs.append({"task": "measure", "name": variant.label, "variant": asdict(variant)})
    size = plan.fft_vs_reference_size
    pair = [
        Variant(PRESET_2D, size, batch=plan.batch, backward=True, conv_impl="fft"),
        Variant(PRESET_2D, size, batch=plan.batch, backward=True, mode="reference"),
    ]
    jobs.append({"task": "compare", "name": "fft_vs_reference", "variants": [asdict(v) for v in pair]})
    layer = Variant(PRESET_2D, size, batch=plan.batch, backward=True, conv_impl="fft")
    jobs.append({"task": "layer", "name": "direct_vs_fft_layer", "variant": asdict(layer)})
    for variant in memory_variants(plan):  # each in a fresh process: its own peak
        jobs.append({"task": "memory", "name": f"memory {variant.label}", "variant": asdict(variant)})
    for preset, sizes in plan.cache_sizes.items():  # pairs (cached, uncached) per size
        pairs = [Variant(preset, n, batch=1, cached=cached) for n in sizes for cached in (True, False)]
        jobs.append({"task": "compare", "name": f"cache {preset}", "variants": [asdict(v) for v in pairs]})
    small, big = plan.nlogn_sizes
    growth = [Variant(PRESET_1D, n, batch=plan.batch, backward=b) for b in (False, True) for n in (small, big)]
    jobs.append({"task": "compare", "name": "nlogn", "variants": [asdict(v) for v in growth]})
    return jobs


def memory_variants(plan: Plan) -> list[Variant]:
    """fwd+bwd at the comparison size: ours as trained by default, ours with activation
    checkpointing, and the official behaviour (reference mode)."""
    size, batch = plan.fft_vs_reference_size, plan.batch
    return [
        Variant(PRESET_2D, size, batch=batch, backward=True),
        Variant(PRESET_2D, size, batch=batch, backward=True, checkpointed=True),
        Variant(PRESET_2D, size, batch=batch, backward=True, mode="reference"),
    ]


def run_job(job: dict, args: argparse.Namespace) -> dict:
    """Run one task in a fresh worker process and return its parsed result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job), "--device", args.device]
    command += ["--quick"] if args.quick else []
    command += ["--threads", str(args.threads)] if args.threads else []
    # Sleeping, not spinning, OpenMP threads unless the user chose (README: shared CPU machines).
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def nlogn(n: int) -> float:
    return n * math.log(n)


def ratio_rows(results: dict[str, dict], plan: Plan) -> list[dict]:
    """The project's speed ratios with their targets, from the comparison results."""
    rows = []
    ref = results["fft_vs_reference"]
    fft_s, ref_s = ref["medians_s"]
    size = plan.fft_vs_reference_size
    rows.append(
        _row(
            f"{PRESET_2D} {size}px fwd+bwd: reference (direct 33x33) / continuous FFT",
            ref_s / fft_s,
            f">= {FFT_SPEEDUP_TARGET:g}",
            ref_s / fft_s >= FFT_SPEEDUP_TARGET,
            f"reference {_ms(ref_s)} ms, continuous fft {_ms(fft_s)} ms",
        )
    )
    layer = results["direct_vs_fft_layer"]
    kernel = "x".join(str(k) for k in layer["kernel_shape"])
    rows.append(
        _row(
            f"{PRESET_2D} {size}px one block conv fwd+bwd: continuous direct / FFT",
            layer["direct_median_s"] / layer["fft_median_s"],
            "-",
            None,
            f"kernel {kernel}: direct {_ms(layer['direct_median_s'])} ms "
            f"({len(layer['direct_times_s'])} run), fft {_ms(layer['fft_median_s'])} ms",
        )
    )
    for preset, sizes in plan.cache_sizes.items():
        medians = results[f"cache {preset}"]["medians_s"]
        for n, cached, uncached in zip(sizes, medians[0::2], medians[1::2]):
            rows.append(
                _row(
                    f"{preset} {n} fwd b1: uncached / cached kernels",
                    uncached / cached,
                    f">= {CACHE_SPEEDUP_TARGET:g}",
                    uncached / cached >= CACHE_SPEEDUP_TARGET,
                    f"cached {_ms(cached)} ms, uncached {_ms(uncached)} ms",
                )
            )
    ours, checkpointed, official = (results[f"memory {v.label}"] for v in memory_variants(plan))
    for name, run in (("continuous", ours), ("continuous, activation checkpointing", checkpointed)):
        value = run["peak_mem_mb"] / official["peak_mem_mb"]
        rows.append(
            _row(
                f"{PRESET_2D} {size}px fwd+bwd peak memory: {name} / official (reference mode)",
                value,
                "<= 1",
                value <= 1,
                f"{run['peak_mem_mb']:.0f} MB vs {official['peak_mem_mb']:.0f} MB, "
                f"fwd+bwd {_ms(run['median_s'])} ms vs {_ms(official['median_s'])} ms",
            )
        )
    small, big = plan.nlogn_sizes
    expected = nlogn(big) / nlogn(small)
    fwd_small, fwd_big, bwd_small, bwd_big = results["nlogn"]["medians_s"]
    for kind, t_small, t_big in (("fwd", fwd_small, fwd_big), ("fwd+bwd", bwd_small, bwd_big)):
        growth = (t_big / t_small) / expected
        rows.append(
            _row(
                f"{PRESET_1D} {kind}: (t({big}) / t({small})) / N log N growth {expected:.2f}",
                growth,
                f"<= {NLOGN_GROWTH_TARGET:g}",
                growth <= NLOGN_GROWTH_TARGET,
                f"t({small}) {_ms(t_small)} ms, t({big}) {_ms(t_big)} ms, time growth {t_big / t_small:.2f}x",
            )
        )
    return rows


def _row(name: str, value: float, target: str, met: bool | None, detail: str) -> dict:
    return {"ratio": name, "value": value, "target": target, "met": met, "detail": detail}


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 1000 else f"{ms:,.0f}"


def markdown(machine: dict, configs: list[dict], ratios: list[dict]) -> str:
    """The report: machine, the size sweep, and the ratios against their targets."""
    gpu = f", GPU {machine['gpu']}" if machine["gpu"] else ""
    lines = [
        "# CCNN speed and memory",
        "",
        f"Machine: {machine['cpu']} ({machine['logical_cpus']} logical CPUs){gpu}, device `{machine['device']}`, "
        f"torch {machine['torch']} with {machine['torch_threads']} threads, Python {machine['python']}, "
        f"tuning variables: {_env(machine['env'])}. "
        f"Load average at start {_load(machine['load_start'])}, at end {_load(machine['load_end'])}.",
        "",
        'Medians of the timed runs after one warm-up; batch 2; continuous mode, `conv_impl="auto"`. '
        "Forward: eval, no_grad, kernels cached. Forward+backward: train mode, `logits.sum().backward()`. "
        "Peak memory: growth over the memory in use just before the warm-up. Page faults: minor faults "
        "per timed run (fresh pages the OS maps in; each costs a 4 KiB zero-fill). Conv paths: the depthwise "
        "path each of the 5 continuous convs took (each worker process chooses anew).",
        "",
        "| preset | input | fwd ms | fwd+bwd ms | runs fwd / fwd+bwd | peak mem fwd MB | peak mem fwd+bwd MB "
        "| page faults per run fwd / fwd+bwd | conv paths fwd / fwd+bwd |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    by_key = {(c["variant"]["preset"], c["variant"]["size"], c["variant"]["backward"]): c for c in configs}
    for preset, size, backward in by_key:
        if backward:
            continue
        fwd, bwd = by_key[preset, size, False], by_key[preset, size, True]
        shape = str(size) if preset == PRESET_1D else f"{size}x{size}"
        lines.append(
            f"| {preset} | {shape} | {_ms(fwd['median_s'])} | {_ms(bwd['median_s'])} | "
            f"{len(fwd['times_s'])} / {len(bwd['times_s'])} | {fwd['peak_mem_mb']:.0f} | "
            f"{bwd['peak_mem_mb']:.0f} | {_faults(fwd)} / {_faults(bwd)} | "
            f"{_paths(fwd)} / {_paths(bwd)} |"
        )
    lines += [
        "",
        "Ratios, each measured within one process (variants interleaved round by round):",
        "",
        "| ratio | measured | target | met | details |",
        "|---|---:|---|---|---|",
    ]
    for row in ratios:
        met = "-" if row["met"] is None else ("yes" if row["met"] else "**NO**")
        lines.append(f"| {row['ratio']} | {row['value']:.2f} | {row['target']} | {met} | {row['detail']} |")
    return "\n".join(lines) + "\n"


def _paths(config: dict) -> str:
    return " ".join(f"{path}:{count}" for path, count in sorted(config["conv_paths"].items()))


def _faults(config: dict) -> str:
    return f"{config['minor_page_faults_per_run']:,.0f}"


def _env(env: dict[str, str]) -> str:
    return ", ".join(f"`{name}={value}`" for name, value in env.items()) or "none set"


def _load(load: Sequence[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in load) + " (1 / 5 / 15 min)"


def plot(configs: list[dict], path: Path) -> None:
    """Time vs input positions (log-log) per preset, forward and forward+backward, with N log N."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    presets = sorted({c["variant"]["preset"] for c in configs})
    fig, axes = plt.subplots(1, len(presets), figsize=(6 * len(presets), 4.5), squeeze=False)
    for ax, preset in zip(axes[0], presets):
        dim = 1 if preset == PRESET_1D else 2
        for backward, style in ((False, "o-"), (True, "s-")):
            points = sorted(
                (c["variant"]["size"] ** dim, c["median_s"])
                for c in configs
                if c["variant"]["preset"] == preset and c["variant"]["backward"] == backward
            )
            n, t = zip(*points)
            ax.plot(n, t, style, label="fwd+bwd" if backward else "fwd (eval, cached)")
            if backward:
                ax.plot(
                    n, [t[0] * nlogn(m) / nlogn(n[0]) for m in n], "k--", label="N log N (from first fwd+bwd point)"
                )
        ax.set(
            xscale="log",
            yscale="log",
            title=f"{preset}, batch 2",
            xlabel="input positions N" + (" (L)" if dim == 1 else " (H x W)"),
            ylabel="seconds",
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_benchmark(args: argparse.Namespace) -> None:
    """Run every worker task, then write speed.json, speed.md and speed.png and print the report."""
    from tqdm import tqdm

    plan = QUICK if args.quick else FULL
    load_start = os.getloadavg()
    jobs = job_list(plan)
    results: dict[str, dict] = {}
    progress = tqdm(jobs, desc="bench", unit="task")
    for job in progress:
        progress.set_postfix_str(job["name"])
        results[job["name"]] = run_job(job, args)
    machine = results.pop("machine") | {"load_start": load_start, "load_end": os.getloadavg()}
    configs = [results[job["name"]] for job in jobs if job["task"] == "measure"]
    comparisons = {job["name"]: results[job["name"]] for job in jobs if job["task"] in ("compare", "layer", "memory")}
    ratios = ratio_rows(comparisons, plan)
    report = markdown(machine, configs, ratios)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"quick": args.quick, "device": args.device, "threads": args.threads, "plan": asdict(plan)}
    payload = {
        "machine": machine,
        "settings": settings,
        "configs": configs,
        "ratios": ratios,
        "comparisons": comparisons,
    }
    (out / "speed.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out / "speed.md").write_text(report)
    plot(configs, out / "speed.png")
    print(report)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (smoke test)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: benchmarks/results)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in every worker")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: JSON task spec
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        run_worker(json.loads(args.worker), args.device, args.threads, QUICK if args.quick else FULL)
    else:
        run_benchmark(args)


if __name__ == "__main__":
    main()
