"""conversion/convert_original_ccnn.py: official checkpoints -> transformers/timm folders."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

from helpers import REPO, require_shared

spec = importlib.util.spec_from_file_location("convert_original_ccnn", REPO / "conversion" / "convert_original_ccnn.py")
converter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(converter)

FIXTURES = {"smnist_ccnn_4_140_perturbed": "smnist_4_140", "cifar10_ccnn_4_140_perturbed": "cifar10_4_140"}


def fixture(folder: str) -> tuple[Path, dict]:
    root = require_shared("fixtures", "reference", folder)
    return root / "model.safetensors", load_file(root / "io.safetensors")


def lightning_checkpoint(path: Path, state: dict, with_initialized: bool = True, **extra) -> Path:
    """What Lightning's ModelCheckpoint writes: the network under ``network.`` plus trainer state."""
    network = {f"network.{k}": v for k, v in state.items() if with_initialized or not k.endswith(".initialized")}
    torch.save(
        {
            "epoch": 12,
            "global_step": 3400,
            "pytorch-lightning_version": "1.6.5",
            "state_dict": network,
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 13, "completed": 12}}}},
            "callbacks": {
                "ModelCheckpoint{'monitor': 'val/acc', 'mode': 'max'}": {
                    "monitor": "val/acc",
                    "best_model_score": torch.tensor(0.91),
                    "best_model_path": "artifacts/best.ckpt",
                    "best_k_models": {"artifacts/best.ckpt": torch.tensor(0.91)},
                }
            },
            "optimizer_states": [
                {
                    "state": {0: {"step": torch.tensor(3400.0), "exp_avg": torch.zeros(3)}},
                    "param_groups": [{"lr": 0.02, "betas": (0.9, 0.999), "params": [0]}],
                }
            ],
            "lr_schedulers": [{"base_lrs": [0.02], "last_epoch": 3400, "_schedulers": [{"start_factor": 1e-8}]}],
            **extra,
        },
        path,
    )
    return path


def logits_of(folder: Path, x: torch.Tensor) -> torch.Tensor:
    model = (AutoModelForImageClassification if x.ndim == 4 else AutoModelForSequenceClassification).from_pretrained(
        folder
    )
    with torch.no_grad():
        return model.eval()(**{model.main_input_name: x}).logits


@pytest.mark.parametrize("folder", sorted(FIXTURES))
def test_converted_folder_reproduces_the_official_logits(folder, tmp_path):
    weights, io = fixture(folder)
    converter.convert(weights, FIXTURES[folder], tmp_path / "out")
    tolerance = 1e-3 if "smnist" in folder else 2e-4
    for inp, ref in (("input", "logits"), *[(k.replace("logits", "input"), k) for k in io if k.startswith("logits_")]):
        if inp in io:
            out = logits_of(tmp_path / "out", io[inp])
            assert ((out - io[ref]).abs().max() / io[ref].abs().max()).item() <= tolerance, inp


@pytest.mark.parametrize("with_initialized", [True, False])
def test_lightning_checkpoints_with_and_without_initialized_buffers(with_initialized, tmp_path):
    weights, io = fixture("smnist_ccnn_4_140_perturbed")
    ckpt = lightning_checkpoint(tmp_path / "last.ckpt", load_file(weights), with_initialized)
    converter.convert(ckpt, "smnist_4_140", tmp_path / "out")
    out = logits_of(tmp_path / "out", io["input"])
    assert ((out - io["logits"]).abs().max() / io["logits"].abs().max()).item() <= 1e-3


def test_checkpoints_needing_arbitrary_objects_are_refused(tmp_path):
    weights, _ = fixture("smnist_ccnn_4_140")
    ckpt = lightning_checkpoint(tmp_path / "evil.ckpt", load_file(weights), hyper_parameters=argparse.Namespace(lr=1))
    with pytest.raises(ValueError, match="refusing to unpickle"):
        converter.convert(ckpt, "smnist_4_140", tmp_path / "out")


def test_a_checkpoint_that_does_not_fit_the_preset_is_refused_naming_keys(tmp_path):
    weights, _ = fixture("smnist_ccnn_4_140")
    with pytest.raises(ValueError, match=r"shape mismatch for 'stem\.conv\.kernel_net"):
        converter.convert(weights, "smnist_6_380", tmp_path / "out")  # 380 hidden channels, 6 blocks
    from safetensors.torch import save_file

    state = load_file(weights)
    state["conv1.mask_mean_param"] = torch.zeros_like(state["conv1.mask_mean_param"])  # a centred (non-causal) mask
    save_file(state, tmp_path / "centred.safetensors")
    with pytest.raises(ValueError, match="conv1.mask_mean_param"):
        converter.convert(tmp_path / "centred.safetensors", "smnist_4_140", tmp_path / "out2")


def test_command_line_writes_a_card_and_timm_loads_2d_weights(tmp_path):
    import timm

    weights, io = fixture("cifar10_ccnn_4_140")
    out = tmp_path / "cifar"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "conversion" / "convert_original_ccnn.py"),
            "--checkpoint",
            str(weights),
            "--preset",
            "cifar10_4_140",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "verification: max |converted - raw|" in done.stdout
    card = (out / "README.md").read_text()
    assert "reference mode" in card and "No accuracy was measured" in card and "timm.create_model" in card
    model = timm.create_model(
        "ccnn_2d_4_140.cifar10",
        pretrained=True,
        mode="reference",
        pretrained_cfg_overlay=dict(file=str(out / "model.safetensors"), num_classes=10),
    ).eval()
    with torch.no_grad():
        logits = model(io["input"])
    assert ((logits - io["logits"]).abs().max() / io["logits"].abs().max()).item() <= 2e-4
    bad = subprocess.run(
        [
            sys.executable,
            str(REPO / "conversion" / "convert_original_ccnn.py"),
            "--checkpoint",
            str(weights),
            "--preset",
            "smnist_4_140",
            "--output",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "does not match the model" in bad.stderr
