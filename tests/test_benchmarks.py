"""The benchmarks run and write their reports (the GPU benchmark in its CPU smoke mode; the real run needs CUDA)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ccnn_hf import get_preset

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
    # The table shows the measured step times, their ratio and the verdict against the target (<= 2).
    row = next(line for line in (tmp_path / "training.md").read_text().splitlines() if line.startswith("| 14x14 MNIST"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    ccnn_ms, resnet_ms = (1e3 * result["median_s"][k] for k in ("ccnn", "resnet18"))
    assert cells[1:5] == ["eager", f"{ccnn_ms:.0f}", f"{resnet_ms:.0f}", f"{ccnn_ms / resnet_ms:.2f}"]
    assert cells[5:7] == ["<= 2", "yes" if ccnn_ms / resnet_ms <= 2 else "**NO**"]
    # The CCNN's 1x1 layers alone (the FFTs are not counted) do more dense work than all of resnet18 at 14x14.
    assert result["dense_gflop"]["ccnn"] > result["dense_gflop"]["resnet18"] > 0
    table = (tmp_path / "training.md").read_text()
    assert result["compiled_ratio"] is None and "| compiled |" not in table  # not asked for: no compiled row
    # The same CCNN in reference mode (official init), timed in the same rounds: its own table, target <= 1.05.
    reference_table = table[table.index("| default step ms") :]
    row = next(line for line in reference_table.splitlines() if line.startswith("| 14x14"))
    default_ms, reference_ms = (1e3 * result["median_s"][k] for k in ("ccnn", "ccnn reference"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == [f"{default_ms:.1f}", f"{reference_ms:.1f}", f"{default_ms / reference_ms:.2f}"]
    assert cells[4] == ("yes" if default_ms / reference_ms <= 1.05 else "**NO**")
    # cifar10_4_140's official penalty, with the weight its preset trains with, joins the CCNN's loss.
    assert result["penalty_weight"] == get_preset("cifar10_4_140").train["weight_decay"] > 0


def test_gpu_benchmark_skips_rows_past_its_time_budget(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO / "benchmarks" / "bench_gpu.py"), "--device", "cpu", "--tiny"]
    options = ["--variants", "eager", "--models", "resnet18", "--time_budget", "0.001", "--out", str(tmp_path)]
    subprocess.run([*command, *options], check=True, env=env, capture_output=True, text=True, timeout=300)
    report = json.loads((tmp_path / "gpu_speed.json").read_text())
    assert [r["input"] for r in report["results"]] == [[3, 8, 8]]  # the first row starts within the budget
    assert report["skipped_for_time"] == ["resnet18 1x8x8 b2 eager"] and not report["failed"]
    assert "Not run (time budget): resnet18 1x8x8 b2 eager." in (tmp_path / "gpu_speed.md").read_text()


def test_mnist_test_evaluation_reports_every_mode_with_recalibrated_statistics(tmp_path):
    """``eval_mnist_test.py`` on a small npz in the real test set's format: every mode at every size,
    "resize" and "recalibrated" (BatchNorm statistics at that size) only away from the base 14x14."""
    from ccnn_hf.data.mnist import mnist_csv_path

    table = np.loadtxt(mnist_csv_path(), delimiter=",", dtype=np.uint8)[::125]  # 40 digits, 4 of each (sorted file)
    np.savez(tmp_path / "digits.npz", images=table[:, :-1].reshape(-1, 28, 28), labels=table[:, -1].astype(np.int64))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO / "benchmarks" / "eval_mnist_test.py"), "--npz", str(tmp_path / "digits.npz")]
    options = ["--sizes", "14,28", "--bn_samples", "16", "--batch_size", "20"]
    done = subprocess.run([*command, *options], check=True, env=env, capture_output=True, text=True, timeout=300)
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    assert [(r["size"], r["mode"]) for r in rows] == [
        (14, "continuous"),
        (14, "reference"),
        (28, "continuous"),
        (28, "reference"),
        (28, "resize"),
        (28, "recalibrated"),
    ]
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    assert rows[0]["accuracy"] > 0.5  # the released weights know these digits at 14x14


@pytest.mark.slow
def test_import_benchmark_reports_each_statement_and_the_layers_it_imported(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO / "benchmarks" / "bench_import.py"), "--runs", "1", "--out", str(tmp_path)]
    subprocess.run(command, check=True, env=env, capture_output=True, text=True, timeout=600)
    results = json.loads((tmp_path / "import.json").read_text())["results"]
    assert list(results)[:3] == ["import torch", "import ccnn_hf", "import ccnn_hf + build_ccnn"]
    assert results["import ccnn_hf + build_ccnn"]["layers"] == []
    assert {"timm", "transformers"} <= set(results[list(results)[3]]["layers"])
    assert all(row["seconds"] > 0 and row["rss_mb"] > 0 for row in results.values())
    assert "| import ccnn_hf + build_ccnn |" in (tmp_path / "import.md").read_text()


def _bench_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learning_curve_benchmark_records_every_steps_loss_and_merges_invocations(tmp_path):
    from helpers import reset_accelerate

    bench = _bench_module("bench_learning_curves")
    assert bench.steps_below([1.0] * 10 + [0.1] * 10) == 16  # steps 7-16: (4 x 1.0 + 6 x 0.1) / 10 = 0.46
    assert bench.steps_below([1.0] * 30) is None
    common = ["--tiny", "--tasks", "digits_seq", "--seeds", "0", "--out", str(tmp_path)]
    for variant in ("default", "official"):  # two invocations, one table
        bench.main([*common, "--variants", variant, "--resume"])
        reset_accelerate()
    report = bench.main(["--report_only", "--out", str(tmp_path)])
    runs = {r["variant"]: r for r in report["runs"]}
    assert set(runs) == {"default", "official"}
    assert all(len(r["loss"]) == 3 and 0 <= r["accuracy"] <= 1 for r in runs.values())
    assert "--mode" in runs["official"]["argv"] and "--mode" not in runs["default"]["argv"]
    table = (tmp_path / "learning_curves.md").read_text()
    assert "| digits_seq | default | 3 |" in table and "| digits_seq | official | 3 |" in table
    assert (tmp_path / "learning_curves.png").stat().st_size > 10_000


def test_conv_path_calibration_keeps_each_measured_shape(tmp_path, monkeypatch):
    """The calibration writes its rows after every shape (an interrupted run keeps them), then the
    summary of the families it was asked for."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import calibrate_conv_path as calibration
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    monkeypatch.setattr(calibration, "GRID_1D", calibration.GRID_1D[:2])
    out = tmp_path / "calibration.json"
    seen = []
    write = calibration.write_json_atomic
    monkeypatch.setattr(
        calibration, "write_json_atomic", lambda path, data: (seen.append(len(data["rows"])), write(path, data))
    )
    monkeypatch.setattr(sys, "argv", ["x", "--dims", "1", "--budget", "0.001", "--threads", "1", "--out", str(out)])
    calibration.main()
    assert seen == [1, 2, 2]  # after each of the two shapes, then with the summary
    result = json.loads(out.read_text())
    assert result["complete"] and len(result["rows"]) == 2 and set(result["summary"]) == {"eval 1D", "train 1D"}
