"""ccnn-train sets a sleeping OpenMP wait policy before torch loads, unless the user chose one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ccnn_hf.training import cli_env

REPO = Path(__file__).resolve().parent.parent


def test_the_command_line_tools_are_recognised():
    assert cli_env.running_cli(["/venv/bin/python", "/venv/bin/ccnn-train", "--epochs", "1"])
    assert cli_env.running_cli(["python", "-m", "ccnn_hf.training.train"])
    assert not cli_env.running_cli(["python", "-m", "pytest", "ccnn_hf.training.train"])
    assert not cli_env.running_cli(["python", "script.py"])


def test_passive_is_set_only_before_torch_and_only_if_unset(monkeypatch):
    cli = ["python", "-m", "ccnn_hf.training.train"]
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert not cli_env.prefer_passive_openmp(cli)  # torch is loaded in this test process: too late
    monkeypatch.delitem(sys.modules, "torch")
    assert cli_env.prefer_passive_openmp(cli) and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert not cli_env.prefer_passive_openmp(cli) and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert not cli_env.prefer_passive_openmp(["python", "train_my_model.py"])


def test_ccnn_train_offers_compile():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "ccnn_hf.training.train", "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "--compile" in done.stdout
