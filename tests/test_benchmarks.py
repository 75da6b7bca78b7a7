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
        ("resnet18", "eager"),
        ("smnist_4_140", "eager"),
        ("resnet18", "eager"),
    ]
    assert all(r["step_ms"] > 0 and r["images_per_s"] > 0 and len(r["times_s"]) == 2 for r in rows)
    assert report["settings"]["tiny"] and "TINY" in (tmp_path / "gpu_speed.md").read_text()


def test_training_benchmark_reports_ratios_and_dense_flops(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO / "benchmarks" / "bench_training.py"), "--rounds", "1", "--out", str(tmp_path)]
    subprocess.run([*command, "--only", "14x14 MNIST"], check=True, env=env, capture_output=True, timeout=300)
    result = json.loads((tmp_path / "training.json").read_text())["results"]["14x14 MNIST"]
    assert result["ratio"] == result["median_s"]["ccnn"] / result["median_s"]["resnet18"] > 0
    # The CCNN's 1x1 layers alone (the FFTs are not counted) do more dense work than all of resnet18 at 14x14.
    assert result["dense_gflop"]["ccnn"] > result["dense_gflop"]["resnet18"] > 0
    assert result["compiled_ratio"] is None and "| 14x14 MNIST" in (tmp_path / "training.md").read_text()


def test_gpu_benchmark_skips_rows_past_its_time_budget(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO / "benchmarks" / "bench_gpu.py"), "--device", "cpu", "--tiny"]
    options = ["--variants", "eager", "--models", "resnet18", "--time_budget", "0.001", "--out", str(tmp_path)]
    subprocess.run([*command, *options], check=True, env=env, capture_output=True, text=True, timeout=300)
    report = json.loads((tmp_path / "gpu_speed.json").read_text())
    assert [r["input"] for r in report["results"]] == [[3, 8, 8]]  # the first row starts within the budget
    assert report["skipped_for_time"] == ["resnet18 1x8x8 b2 eager"] and not report["failed"]
    assert "Not run (time budget): resnet18 1x8x8 b2 eager." in (tmp_path / "gpu_speed.md").read_text()
