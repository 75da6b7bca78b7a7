"""The torch core imports and runs without transformers, timm, accelerate or matplotlib."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import importlib.abc
import sys

BLOCKED = {"transformers", "timm", "accelerate", "matplotlib", "huggingface_hub", "torchvision"}


class Blocker(importlib.abc.MetaPathFinder):
    """Acts as if the optional libraries were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


sys.meta_path.insert(0, Blocker())

import torch
import ccnn_hf.ccnn  # the core module alone
import ccnn_hf
from ccnn_hf import CCNN, build_ccnn, PRESETS

model = build_ccnn("cifar10_4_140", width=8, depth=1, kernel_width=8).eval()
with torch.no_grad():
    logits = model(torch.randn(2, 3, 16, 16))
assert logits.shape == (2, 10), logits.shape
assert not BLOCKED & {name.split(".")[0] for name in sys.modules}, sorted(BLOCKED & set(sys.modules))
try:
    ccnn_hf.CCNNConfig
except ImportError as error:
    assert "pip install" in str(error) and "[hf]" in str(error), error
else:
    raise AssertionError("CCNNConfig without transformers should raise an ImportError")
print("ok")
'''


def test_core_imports_and_runs_with_torch_alone():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
