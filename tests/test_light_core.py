"""The torch core imports and runs without transformers, timm, accelerate or matplotlib."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


LAYERS = {"transformers", "timm", "accelerate", "torchvision", "torch._dynamo"}

LAZY = r"""
import sys
import torch
import ccnn_hf
from ccnn_hf import build_ccnn

model = build_ccnn("smnist_4_140", width=8, depth=1).eval()
with torch.no_grad():
    model(torch.randn(1, 1, 64))
print(sorted(name for name in sys.argv[1].split(",") if name in sys.modules))
"""

# Run after `import ccnn_hf` (the first line), in this order: the layers must be registered.
ORDERS = {
    "timm_after": "import ccnn_hf\nimport timm",
    "timm_before": "import timm\nimport ccnn_hf",
    "a_transformers_model_after": "import ccnn_hf\nfrom transformers import BertModel",
    "auto_before": "from transformers import AutoModel\nimport ccnn_hf",
    "class_first": "import ccnn_hf\nfrom ccnn_hf.modeling_ccnn import CCNNModel",
}

REGISTERED = r"""
import sys
import timm
from transformers import AutoConfig, AutoFeatureExtractor, AutoImageProcessor, AutoModel
from transformers import AutoModelForImageClassification

assert timm.list_models("ccnn_2d*") == ["ccnn_2d", "ccnn_2d_4_140", "ccnn_2d_6_380"], timm.list_models("ccnn*")
assert timm.create_model("ccnn_2d", hidden=8, blocks=1, num_classes=3).head.fc.out_features == 3
modeling_auto = sys.modules["transformers.models.auto.modeling_auto"]
for module in (timm, timm.models, modeling_auto):  # the watched modules keep their own loader
    assert module.__loader__ is module.__spec__.loader and "ccnn_hf" not in type(module.__loader__).__module__
config = AutoConfig.for_model("ccnn", hidden_channels=8, num_blocks=1, num_labels=3)
assert type(config).__name__ == "CCNNConfig", type(config)
model = AutoModelForImageClassification.from_config(config)
assert type(model).__name__ == "CCNNForImageClassification", type(model)
assert type(AutoModel.from_config(config)).__name__ == "CCNNModel"
folder = sys.argv[1]
model.save_pretrained(folder)
assert type(AutoModelForImageClassification.from_pretrained(folder)).__name__ == "CCNNForImageClassification"
assert "AutoModelForImageClassification" in AutoConfig.from_pretrained(folder).auto_map
from ccnn_hf import CCNNFeatureExtractor, CCNNImageProcessor
CCNNImageProcessor().save_pretrained(folder)
assert type(AutoImageProcessor.from_pretrained(folder)) is CCNNImageProcessor
CCNNFeatureExtractor(sampling_rate=8000).save_pretrained(folder)
assert type(AutoFeatureExtractor.from_pretrained(folder)) is CCNNFeatureExtractor
print("ok")
"""


def _python(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_import_and_build_leave_the_layers_unimported():
    """`import ccnn_hf` and a model built and run import neither transformers, timm, accelerate, torchvision
    nor the compiler (torch._dynamo)."""
    assert _python(LAZY, ",".join(sorted(LAYERS))) == "[]"


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_layers_register_whichever_is_imported_first(order, tmp_path):
    """timm's registry and transformers' Auto classes know the CCNNs, whether imported before or after ccnn_hf."""
    assert _python(ORDERS[order] + "\n" + REGISTERED, str(tmp_path)).endswith("ok")


COMPILE_FIRST_TIME = r"""
import torch
from ccnn_hf import build_ccnn

model = build_ccnn("cifar10_4_140", hidden=8, blocks=1, kernel_hidden=8).eval()
try:
    torch.compile(model, fullgraph=True, backend="eager")(torch.randn(1, 3, 11, 11))
except Exception as error:
    print(str(error))
"""


def test_the_compiler_imported_after_ccnn_hf_still_keeps_kernel_plans_out_of_graphs():
    """`import ccnn_hf` leaves the compiler unimported; compiled later, a model that never ran stops at the
    kernel plan (fullgraph=True) with the way out."""
    assert "kernel plans read mask widths on the host" in _python(COMPILE_FIRST_TIME)
