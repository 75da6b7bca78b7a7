"""model_cards/build_release.py: runs of several seeds, their mean and range, and the results table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from ccnn_hf.integrations.released import RELEASES
from helpers import REPO

pytestmark = pytest.mark.hub  # also run against the oldest allowed versions (.ci/oldest)


@pytest.fixture(scope="module")
def build_release():
    spec = importlib.util.spec_from_file_location("build_release", REPO / "model_cards" / "build_release.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_release"] = module  # its dataclasses resolve their annotations there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["build_release"]


def results(base: float, at_28: float, resize_28: float, *, timm: bool = False, steps: int = 100) -> dict:
    """A results.json as ccnn-train writes it, for a 14x14 run also tested at 28x28."""
    modes = ("timm", "resize") if timm else ("continuous", "reference", "resize")
    at = {"14x14": dict.fromkeys(modes, base), "28x28": {"continuous": at_28, "timm": at_28, "reference": 0.1}}
    at["28x28"]["resize"] = resize_28
    return {
        "dataset": "mnist",
        "modality": "image",
        "base_setting": "14x14",
        "hardware": "x86_64 CPU x1 threads",
        "time_per_epoch_s": 50.0,
        "train_time_s": 200.0,
        "train_samples": 4000,
        "recipe": f"lr 0.02, {steps} steps of batch 64 x 1 processes",
        "steps": steps,
        "evaluation": [
            {"setting": setting, "mode": mode, "accuracy": at[setting][mode]} for setting in at for mode in modes
        ],
    }


def write_run(folder: Path, results_json: dict, seed: int, time_limit: float = 480) -> None:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results_json))
    options = {"seed": seed, "time_limit": time_limit, "preset": "cifar10_4_140", "grad_accum": None}
    (folder / ".ccnn-run.json").write_text(json.dumps({"options": options}))


def write_seeds(runs: Path) -> None:
    """mnist2d trained with seeds 0 and 1: CCNN 97 / 98 % at 14x14, resnet18 96 / 99 %."""
    write_run(runs / "mnist2d_ccnn", results(0.97, 0.96, 0.95), 0)
    write_run(runs / "mnist2d_resnet18", results(0.96, 0.20, 0.94, timm=True, steps=310), 0)
    write_run(runs / "mnist2d_ccnn_seed1", results(0.98, 0.99, 0.97), 1)
    write_run(runs / "mnist2d_resnet18_seed1", results(0.99, 0.30, 0.98, timm=True, steps=1674), 1)


def test_mean_and_range_over_seeds(build_release):
    assert build_release.mean_range([0.97, 0.98, 0.985]) == "97.8 (97.0-98.5)"
    assert build_release.mean_range([0.9712], digits=2) == "97.12"
    assert build_release.mean_range([]) == "-"


def test_seed_runs_are_found_beside_seed_0(build_release, tmp_path):
    write_seeds(tmp_path)
    (tmp_path / "fsdd_ccnn_seed1").mkdir()  # another release's seed is not this one's
    runs = build_release.seed_runs(tmp_path, "mnist2d")
    assert [run.seed for run in runs] == [0, 1]
    assert build_release.seed_accuracies(runs, "ccnn", "28x28", "resize") == [0.95, 0.97]
    assert build_release.seed_accuracies(runs, "baseline", "28x28", "timm") == [0.20, 0.30]
    assert build_release.seed_runs(tmp_path, "smnist") == []


def test_a_seed_without_its_baseline_is_refused(build_release, tmp_path):
    write_seeds(tmp_path)
    write_run(tmp_path / "mnist2d_ccnn_seed2", results(0.9, 0.9, 0.9), 2)
    with pytest.raises(SystemExit, match="mnist2d seed 2.*mnist2d_resnet18_seed2"):
        build_release.seed_runs(tmp_path, "mnist2d")


def test_a_run_of_another_seed_than_its_folder_says_is_refused(build_release, tmp_path):
    write_seeds(tmp_path)
    write_run(tmp_path / "mnist2d_ccnn_seed2", results(0.9, 0.9, 0.9), 3)
    write_run(tmp_path / "mnist2d_resnet18_seed2", results(0.9, 0.9, 0.9, timm=True), 2)
    with pytest.raises(SystemExit, match="--seed 3, its name says seed 2"):
        build_release.seed_runs(tmp_path, "mnist2d")


def test_card_section_and_table_row_report_mean_range_and_budget(build_release, tmp_path):
    write_seeds(tmp_path)
    runs = build_release.seed_runs(tmp_path, "mnist2d")
    section = build_release.seeds_section(runs, "Both models ran at once.")
    assert "### Over 2 seeds" in section and "`--seed` 0, 1" in section
    assert (
        "| 14x14 | 97.50 (97.00-98.00) | 97.50 (97.00-98.00) | 97.50 (97.00-98.00) | 97.50 (96.00-99.00) |" in section
    )
    assert (
        "| 28x28 | 97.50 (96.00-99.00) | 10.00 (10.00-10.00) | 96.00 (95.00-97.00) | 25.00 (20.00-30.00) |" in section
    )
    assert "480 s training budget" in section and "CCNN 1.61 epochs / 100 steps in 200.0 s" in section
    assert "resnet18 5 epochs / 310 steps in 200.0 s, 27 epochs / 1674 steps" in section
    assert section.endswith("Both models ran at once.")

    row = build_release.results_row(RELEASES["mnist2d"], "mnist2d", runs).split(" | ")
    header = build_release.HEADER.split(" | ")
    assert len(row) == len(header)
    assert row[2] == "97.5 (97.0-98.0) %" and row[4] == "97.5 (96.0-99.0) %"
    assert row[3] == "28x28: 97.5 (96.0-99.0) / 10.0 (10.0-10.0) / 96.0 (95.0-97.0)"
    assert row[5] == "28x28: 25.0 (20.0-30.0) / 96.0 (94.0-98.0)"
    assert row[8] == "2 (0, 1)" and row[9] == "480 s; epochs CCNN 1.61, 1.61, resnet18 5, 27 |"


def test_kept_rows_of_older_tables_get_the_new_columns(build_release, tmp_path, monkeypatch):
    old = "| [ccnn_smnist_4_140](smnist.md) | smnist @ 196 | 98.0 % | none | 96.9 % | none | 21.4 s / 13.4 s | x86 |"
    (tmp_path / "RESULTS.md").write_text(f"# results\n\n{old}\n")
    monkeypatch.setattr(build_release, "HERE", tmp_path)
    kept = build_release.kept_rows({"smnist"})["smnist"]
    assert kept == old + " 1 | on the card |"
    assert kept.count("|") == build_release.HEADER.count("|")


def test_the_run_a_ccnn_was_fine_tuned_from_counts_in_its_budget(build_release, tmp_path):
    write_seeds(tmp_path)
    write_run(tmp_path / "mnist2d_start", results(0.96, 0.95, 0.96, steps=310), 0)
    tuned = results(0.97, 0.97, 0.96, steps=62) | {"init_from": "runs/mnist2d_start"}
    (tmp_path / "runs").mkdir()
    for entry in tmp_path.iterdir():
        if entry.name != "runs":
            entry.rename(tmp_path / "runs" / entry.name)
    runs = tmp_path / "runs"
    (runs / "mnist2d_ccnn" / "results.json").write_text(json.dumps(tuned))
    found = build_release.seed_runs(runs, "mnist2d")
    assert found[0].init["steps"] == 310 and found[1].init is None
    section = build_release.seeds_section(found)
    assert "CCNN 1 epochs / 62 steps in 200.0 s (fine-tuned from a run of 5 epochs / 310 steps in 200.0 s)" in section
    row = build_release.results_row(RELEASES["mnist2d"], "mnist2d", found)
    assert row.endswith("480 s; epochs CCNN 5 + 1, 1.61, resnet18 5, 27 |")

    tuned["init_from"] = "runs/elsewhere"
    (runs / "mnist2d_ccnn" / "results.json").write_text(json.dumps(tuned))
    with pytest.raises(SystemExit, match="fine-tuned from runs/elsewhere, which holds no results.json"):
        build_release.seed_runs(runs, "mnist2d")


def test_every_release_carries_the_code_save_pretrained_writes_now(build_release):
    """The code a shipped folder's auto_map names (run by trust_remote_code=True without ccnn_hf) is
    the package's own, as it stands: a change to a module it copies needs `build_release.py --code_only`."""
    from ccnn_hf.integrations.released import available_releases, released_weights

    for name in available_releases():
        shipped = {path.name: path.read_text(encoding="utf-8") for path in released_weights(name).glob("*.py")}
        expected = build_release.code_files(name)
        stale = sorted(file for file in set(shipped) | set(expected) if shipped.get(file) != expected.get(file))
        assert not stale, (
            f"{name}: {stale} differ from the package; run python model_cards/build_release.py --code_only"
        )
        config = json.loads((released_weights(name) / "config.json").read_text(encoding="utf-8"))
        preprocessor = released_weights(name) / "preprocessor_config.json"
        pointers = [*config["auto_map"].values()]
        if preprocessor.exists():
            pointers += json.loads(preprocessor.read_text(encoding="utf-8"))["auto_map"].values()
        assert {pointer.split(".")[0] + ".py" for pointer in pointers} <= set(shipped)


def test_the_card_table_says_which_weights_each_run_tested(build_release):
    """Runs with --val_split test their best-validation weights; the comparison table says which."""
    ccnn = results(0.97, 0.96, 0.95) | {"params": 1000}
    ccnn["selection"] = {"validation_samples": 400, "selected_step": 80, "validation_accuracy": 0.9712}
    baseline = results(0.96, 0.20, 0.94, timm=True) | {"params": 2000}
    table = build_release.comparison_table(ccnn, baseline)
    assert "| weights tested | best on 400 held-out samples: step 80 (97.12 %) |" in table and "| final |" in table
    assert "weights tested" not in build_release.comparison_table(results(0.97, 0.96, 0.95) | {"params": 1}, baseline)
