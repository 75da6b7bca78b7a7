"""The GPU benchmark's CPU smoke mode runs and writes its report (the real run needs CUDA)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_gpu_benchmark_smoke_mode_on_cpu(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "bench_gpu.py"),
        "--device",
        "cpu",
        "--tiny",
        "--variants",
        "eager",
        "--models",
        "cifar10_4_140,smnist_4_140,resnet18",
        "--out",
        str(tmp_path),
    ]
    subprocess.run(command, check=True, env=env, capture_output=True, text=True, timeout=300)
    report = json.loads((tmp_path / "gpu_speed.json").read_text())
    rows = report["results"]
    assert [(r["model"], r["variant"]) for r in rows] == [
        ("cifar10_4_140", "eager"),
        ("smnist_4_140", "eager"),
        ("resnet18", "eager"),
        ("resnet18", "eager"),
    ]
    assert all(r["step_ms"] > 0 and r["images_per_s"] > 0 and len(r["times_s"]) == 2 for r in rows)
    assert report["settings"]["tiny"] and "TINY" in (tmp_path / "gpu_speed.md").read_text()
