"""The ``ccnn-train`` quickstart (no arguments) on a quiet machine and next to competing CPU load.

Usage::

    python benchmarks/bench_quickstart.py                      # idle, then with a load of 2
    python benchmarks/bench_quickstart.py --loads 0,2 --policies default,ACTIVE

Each run is ``python -m ccnn_hf.training.train`` without arguments (the quickstart configuration) in a
fresh process and a temporary working directory while ``load`` busy-looping processes compete for the CPUs.
Policy ``default`` leaves ``OMP_WAIT_POLICY`` unset, so ``ccnn-train`` applies its own (``PASSIVE``, see
``ccnn_hf/training/cli_env.py``); other values are passed to the run as ``OMP_WAIT_POLICY``. Reports wall
time, the run's CPU time (user + system, children's rusage), the load average before and after, the
run's torch threads and its continuous-mode accuracies (they repeat exactly on one processor with one
thread count, and differ between processors and thread counts: float rounding), to
``OUT/quickstart.json`` and ``OUT/quickstart.md`` (default OUT: ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"


def _spin() -> None:
    while True:
        pass


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_quickstart(load: int, policy: str, timeout: float) -> dict:
    """One quickstart run next to ``load`` busy processes; wall and CPU seconds."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(load)]
    for spinner in spinners:
        spinner.start()
    before = os.getloadavg()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:  # no arguments: the quickstart writes to ./runs/quickstart
        done = subprocess.run(
            [sys.executable, "-m", "ccnn_hf.training.train"],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        results = Path(workdir, "runs", "quickstart", "results.json")
        run_results = json.loads(results.read_text()) if done.returncode == 0 else {}
    wall = time.perf_counter() - start
    after_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    for spinner in spinners:
        spinner.terminate()
        spinner.join()
    if done.returncode != 0:
        raise RuntimeError(f"quickstart failed ({done.returncode}):\n{done.stderr[-3000:]}")
    cpu = (after_usage.ru_utime - usage.ru_utime) + (after_usage.ru_stime - usage.ru_stime)
    return {
        "load": load,
        "policy": policy,
        "wall_s": wall,
        "cpu_s": cpu,
        "load_before": before,
        "load_after": os.getloadavg(),
        "hardware": run_results["hardware"],
        "accuracy": {f"{r['setting']} {r['mode']}": r["accuracy"] for r in run_results["evaluation"]},
        "stdout_tail": done.stdout[-600:],
    }


def markdown(report: dict) -> str:
    lines = [
        "# `ccnn-train` quickstart next to competing CPU load",
        "",
        f"Machine: {report['machine']}. Competing load: busy-looping processes started with the run. "
        "Load average (1 / 5 / 15 min) before and after each run, including the machine's other users.",
        "",
        "| competing load | OMP_WAIT_POLICY | wall s | CPU s | load before | load after | hardware | "
        "continuous accuracy 8x8 / 16x16 / 32x32 % |",
        "|---:|---|---:|---:|---|---|---|---|",
    ]
    for r in report["results"]:
        fmt = lambda v: " / ".join(f"{x:.2f}" for x in v)  # noqa: E731
        accuracy = " / ".join(f"{100 * r['accuracy'][f'{side} continuous']:.2f}" for side in ("8x8", "16x16", "32x32"))
        lines.append(
            f"| {r['load']} | {r['policy']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {fmt(r['load_before'])} | "
            f"{fmt(r['load_after'])} | {r['hardware']} | {accuracy} |"
        )
    idle = next((r for r in report["results"] if r["load"] == 0 and r["policy"] == "default"), None)
    if idle:
        lines += [""] + [
            f"Load {r['load']} ({r['policy']}) / idle: {r['wall_s'] / idle['wall_s']:.2f}x wall time."
            for r in report["results"]
            if r is not idle
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", default="0,2", help="comma-separated numbers of competing busy processes")
    parser.add_argument(
        "--policies", default="default", help="comma-separated: default (ccnn-train's), PASSIVE, ACTIVE"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    results = []
    for policy in args.policies.split(","):
        for load in (int(n) for n in args.loads.split(",")):
            row = run_quickstart(load, policy, args.timeout)
            print(f"load {load}, {policy}: {row['wall_s']:.1f} s wall, {row['cpu_s']:.1f} s CPU", flush=True)
            results.append(row)
    report = {
        "machine": f"{cpu_model()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}",
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quickstart.json").write_text(json.dumps(report, indent=1))
    (args.out / "quickstart.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
