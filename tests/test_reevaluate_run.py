"""model_cards/reevaluate_run.py: re-estimated BatchNorm statistics for a finished run, also one written
by an older ccnn-train whose marker lacks later options."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ccnn_hf.training.train import run

SCRIPT = Path(__file__).resolve().parent.parent / "model_cards" / "reevaluate_run.py"


def test_reevaluates_a_run_written_before_later_options(tmp_path):
    out = tmp_path / "run"
    argv = ["--dataset", "digits", "--hidden", "12", "--blocks", "2", "--kernel_hidden", "8", "--report_to", "none"]
    run([*argv, "--max_steps", "3", "--eval_resolutions", "1x", "--output_dir", str(out)])
    marker = json.loads((out / ".ccnn-run.json").read_text())
    for option in ("augment", "test_every"):
        del marker["options"][option]
    (out / ".ccnn-run.json").write_text(json.dumps(marker))
    before = load_file(out / "model.safetensors")
    spec = importlib.util.spec_from_file_location("reevaluate_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([str(out)])
    after, results = load_file(out / "model.safetensors"), json.loads((out / "results.json").read_text())
    assert "re-estimated" in results["reevaluated"] and results["batch_norm_statistics_samples"] > 0
    stats = [k for k in before if "running_" in k]
    weights = [k for k in before if "running_" not in k and "num_batches" not in k]
    assert all(torch.equal(before[k], after[k]) for k in weights)  # the learned weights stay
    assert stats and all(torch.isfinite(after[k]).all() for k in stats)
