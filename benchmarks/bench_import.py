"""The cost of ``import ccnn_hf``: wall time and resident memory, each run in a fresh interpreter.

    OMP_NUM_THREADS=1 python benchmarks/bench_import.py --runs 7 [--compare /path/to/another/checkout]

``--compare`` adds the ``ccnn_hf`` rows run from another checkout (its root on ``PYTHONPATH``), in the
same rounds: an older commit measured in the same conditions. Every configuration runs ``--runs``
times, one fresh ``python -c`` per run, the configurations interleaved round by round (so load
changes hit all of them); the table gives medians. Writes
``results/import.md`` and ``results/import.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LAYERS = ("transformers", "timm", "accelerate", "torchvision")

# name -> statement timed in a fresh interpreter
CONFIGS = {
    "import torch": "import torch",
    "import ccnn_hf": "import ccnn_hf",
    "import ccnn_hf + build_ccnn": 'import ccnn_hf\nccnn_hf.build_ccnn("cifar10_4_140")',
    "import ccnn_hf + build_ccnn + both layers (the eager import before)": (
        'import ccnn_hf\nccnn_hf.build_ccnn("cifar10_4_140")\nimport timm\n'
        "from ccnn_hf import CCNNConfig, CCNNModel, CCNNImageProcessor, CCNNFeatureExtractor"
    ),
}

CHILD = """
import json, sys, time
start = time.perf_counter()
{statement}
seconds = time.perf_counter() - start
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps(dict(
    seconds=seconds,
    rss_mb=int(status["VmRSS"].split()[0]) / 1024,
    peak_rss_mb=int(status["VmHWM"].split()[0]) / 1024,
    layers=sorted({{name.split(".")[0] for name in sys.modules}} & set({layers!r})),
)))
"""


def run_once(statement: str, tree: Path = REPO) -> dict:
    """One fresh interpreter (``tree`` on its path): the statement's seconds and RSS, the process's wall time,
    the layers it imported."""
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(statement=statement, layers=LAYERS)],
        cwd=tree,  # python -c puts its working directory first on sys.path
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_seconds": time.perf_counter() - start}


def summarise(runs: list[dict]) -> dict:
    """Medians of the runs, and the layer libraries the last run had imported."""
    keys = ("seconds", "process_seconds", "rss_mb", "peak_rss_mb")
    return {**{k: statistics.median(r[k] for r in runs) for k in keys}, "layers": runs[-1]["layers"], "runs": runs}


def conditions(load_before: tuple, load_after: tuple) -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "load_before": load_before,
        "load_after": load_after,
    }


def markdown(results: dict, machine: dict, runs: int) -> str:
    torch_row = results["import torch"]
    compare = f" --compare {machine['compare']}" if machine.get("compare") else ""
    lines = [
        "# `import ccnn_hf`: time and memory",
        "",
        f"`python benchmarks/bench_import.py --runs {runs}{compare}`: each row is the median of {runs} fresh "
        "interpreters, rows interleaved round by round. **import s**: the statement alone "
        "(interpreter start-up excluded); "
        "**process s**: the whole `python -c` run; **RSS MB**: resident memory after the statement "
        "(`VmRSS`), **peak MB**: its high-water mark (`VmHWM`); **over torch**: RSS minus that of `import torch`. "
        "A row ending in `[name]` ran from that other checkout (`--compare`).",
        "",
        f"Conditions: Python {machine['python']}, torch {machine['torch']}, {machine['cpus']} CPUs, "
        f"OMP_NUM_THREADS={machine['OMP_NUM_THREADS']}, load average before "
        f"{', '.join(f'{x:.2f}' for x in machine['load_before'])}, after "
        f"{', '.join(f'{x:.2f}' for x in machine['load_after'])}.",
        "",
        "| statement | import s | process s | RSS MB | peak MB | over torch MB | layer libraries imported |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        over = row["rss_mb"] - torch_row["rss_mb"]
        layers = ", ".join(row["layers"]) or "none"
        lines.append(
            f"| {name} | {row['seconds']:.2f} | {row['process_seconds']:.2f} | {row['rss_mb']:.0f} | "
            f"{row['peak_rss_mb']:.0f} | {over:+.0f} | {layers} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per configuration")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder of import.md / import.json")
    parser.add_argument("--compare", type=Path, help="another checkout: add its ccnn_hf rows")
    args = parser.parse_args(argv)
    configs = {name: (statement, REPO) for name, statement in CONFIGS.items()}
    if args.compare is not None:
        for name, statement in list(CONFIGS.items())[1:3]:
            configs[f"{name} [{args.compare.name}]"] = (statement, args.compare.resolve())
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for round_ in range(args.runs):
        for name, (statement, tree) in configs.items():
            runs[name].append(run_once(statement, tree))
            print(f"round {round_ + 1}/{args.runs} {name}: {runs[name][-1]['seconds']:.2f} s", flush=True)
    results = {name: summarise(r) for name, r in runs.items()}
    machine = {**conditions(load_before, os.getloadavg()), "compare": str(args.compare) if args.compare else None}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "import.json").write_text(json.dumps(dict(machine=machine, results=results), indent=1) + "\n")
    (args.out / "import.md").write_text(markdown(results, machine, args.runs))
    print(markdown(results, machine, args.runs))


if __name__ == "__main__":
    main()
