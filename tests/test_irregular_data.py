"""aeon archives with padding and dropped time points, the masks in ccnn-train, and the baselines' inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ccnn_hf.data import ArrayDataset
from ccnn_hf.training.errors import UserError

aeon = pytest.importorskip("aeon")

from ccnn_hf.data.aeon_archive import interpolate_missing, kept_points, load_aeon  # noqa: E402

TINY = [
    "--preset",
    "smnist_4_140",
    "--hidden",
    "8",
    "--blocks",
    "1",
    "--kernel_hidden",
    "8",
    "--dropout",
    "0",
    "--report_to",
    "none",
    "--batch_size",
    "32",
    "--eval_resolutions",
    "1x",
    "--cpu",
]


@pytest.fixture(scope="module")
def vowels_raw():
    from aeon.datasets import load_classification

    return {split: load_classification("JapaneseVowels", split=split) for split in ("train", "test")}


@pytest.fixture(scope="module")
def vowels_30():
    return load_aeon("JapaneseVowels", drop_rate=0.3, drop_seed=0)


# -- the drop protocol ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.3, 0.5, 0.7])
def test_each_series_loses_the_fraction_of_its_real_points(rate):
    lengths = np.array([7, 10, 29, 100, 251])
    kept = kept_points(lengths, 251, rate, drop_seed=0, split="train")
    assert kept.sum(1).tolist() == [n - round(rate * n) for n in lengths]
    assert not kept[np.arange(251)[None, :] >= lengths[:, None]].any()  # padding is never "kept"


def test_rate_zero_drops_nothing_and_one_point_always_stays():
    lengths = np.array([1, 5, 9])
    assert (kept_points(lengths, 9, 0.0, 0, "train") == (np.arange(9)[None, :] < lengths[:, None])).all()
    assert kept_points(np.array([1, 2]), 2, 0.9, 0, "train").sum(1).tolist() == [1, 1]


def test_the_draw_is_fixed_by_drop_seed_alone_and_independent_per_series():
    lengths = np.full(50, 40)
    first = kept_points(lengths, 40, 0.5, drop_seed=3, split="test")
    assert (first == kept_points(lengths, 40, 0.5, drop_seed=3, split="test")).all()
    assert (first != kept_points(lengths, 40, 0.5, drop_seed=4, split="test")).any()
    assert (first != kept_points(lengths, 40, 0.5, drop_seed=3, split="train")).any()
    assert len({row.tobytes() for row in first}) == 50  # every series has its own points
    # a series' draw does not depend on the others: the same series alone gives the same points
    assert (kept_points(lengths[:7], 40, 0.5, 3, "test") == first[:7]).all()


def test_points_dropped_at_a_lower_rate_are_dropped_at_a_higher_one():
    lengths = np.array([29, 150, 24])
    low, high = (kept_points(lengths, 150, r, 0, "train") for r in (0.3, 0.7))
    assert not (high & ~low).any()


def test_every_model_sees_the_same_points(vowels_30):
    again = load_aeon("JapaneseVowels", drop_rate=0.3, drop_seed=0)
    for split in ("train", "test"):
        a, b = getattr(vowels_30, split), getattr(again, split)
        assert torch.equal(a.observed_mask, b.observed_mask) and torch.equal(a.inputs, b.inputs)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_a_drop_rate_outside_zero_one_is_refused(rate):
    with pytest.raises(ValueError, match=r"drop_rate must be in \[0, 1\)"):
        load_aeon("GunPoint", drop_rate=rate)


# -- the aeon loader -----------------------------------------------------------------------------


def test_variable_lengths_are_padded_on_the_right_with_an_attention_mask(vowels_raw):
    data = load_aeon("JapaneseVowels")
    assert data.base_resolution == (29,) and data.in_channels == 12 and data.num_classes == 9
    assert data.train.observed_mask is None  # nothing missing at rate 0
    for split in ("train", "test"):
        series, labels = vowels_raw[split]
        got = getattr(data, split)
        assert got.attention_mask.sum(1).tolist() == [s.shape[1] for s in series]
        assert (got.inputs.abs().sum(1)[~got.attention_mask] == 0).all()
        # normalised values are the raw values up to the per-channel affine map
        raw = torch.as_tensor(series[5], dtype=torch.float32)
        mean, std = torch.tensor(data.mean)[:, None], torch.tensor(data.std)[:, None]
        assert torch.allclose(got.inputs[5, :, : raw.shape[1]], (raw - mean) / std, atol=1e-5)
        assert got.labels.tolist() == [int(v) - 1 for v in labels]  # "1".."9" -> 0..8


def test_observed_mask_marks_kept_real_points_and_inputs_are_zero_elsewhere(vowels_30):
    train = vowels_30.train
    assert train.observed_mask.shape == (270, 29) and train.observed_mask.dtype == torch.bool
    assert not (train.observed_mask & ~train.attention_mask).any()
    lengths = train.attention_mask.sum(1)
    assert (train.observed_mask.sum(1) == lengths - torch.round(0.3 * lengths.double()).long()).all()
    assert (train.inputs.abs().sum(1)[~train.observed_mask] == 0).all()
    assert torch.isfinite(train.inputs).all()


def test_normalisation_comes_from_the_observed_training_values(vowels_30):
    train = vowels_30.train
    values = train.inputs.permute(1, 0, 2)[:, train.observed_mask]  # [C, observed points]
    assert torch.allclose(values.mean(1), torch.zeros(12), atol=1e-4)
    assert torch.allclose(values.std(1), torch.ones(12), atol=1e-3)


def test_fixed_length_archive_without_drops_has_no_masks():
    data = load_aeon("GunPoint")
    assert data.train.masks() == {} and data.base_resolution == (150,) and data.label_names == ["1", "2"]


def test_unknown_or_regression_archives_are_refused_without_downloading():
    with pytest.raises(ValueError, match="aeon ships no classification archive 'NoSuchArchive'.*JapaneseVowels"):
        load_aeon("NoSuchArchive")
    with pytest.raises(ValueError, match="regression"):
        load_aeon("Covid3Month")


def test_array_dataset_refuses_masks_of_the_wrong_shape_or_type():
    x, y = torch.zeros(2, 3, 5), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="attention_mask must be a bool tensor"):
        ArrayDataset(x, y, attention_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="observed_mask must be a bool tensor"):
        ArrayDataset(x, y, observed_mask=torch.ones(2, 5))
    ArrayDataset(x, y, observed_mask=torch.ones(2, 3, 5, dtype=torch.bool))  # per channel is fine


# -- ccnn-train ----------------------------------------------------------------------------------


def test_task_data_errors_name_the_problem():
    from ccnn_hf.data.tasks import load_task_data

    with pytest.raises(UserError, match="aeon:Nope: aeon ships no classification archive"):
        load_task_data("aeon:Nope")
    with pytest.raises(UserError, match="--drop_rate applies to aeon:NAME"):
        load_task_data("digits", drop_rate=0.3)


@pytest.mark.parametrize("rate", ["1", "-0.2", "nan"])
def test_cli_refuses_a_drop_rate_outside_zero_one(rate, capsys):
    from ccnn_hf.training.args import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--dataset", "aeon:GunPoint", "--drop_rate", rate])
    assert "--drop_rate" in capsys.readouterr().err


def test_missing_values_is_a_ccnn_setting_not_a_timm_one(tmp_path):
    from ccnn_hf.training.train import run

    with pytest.raises(UserError, match="--missing_values chooses how a CCNN"):
        run(
            [
                "--dataset",
                "aeon:GunPoint",
                "--timm_model",
                "resnet18",
                "--missing_values",
                "zero_fill",
                *TINY,
                "--max_steps",
                "1",
                "--output_dir",
                str(tmp_path / "out"),
            ]
        )


def test_ccnn_train_on_japanese_vowels_with_dropped_points(tmp_path):
    from ccnn_hf.training.train import run
    from ccnn_hf.training.evaluate import accuracy
    from transformers import AutoModelForSequenceClassification

    results = run(
        [
            "--dataset",
            "aeon:JapaneseVowels",
            "--drop_rate",
            "0.3",
            *TINY,
            "--max_steps",
            "3",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    assert results["dataset"].startswith("aeon:JapaneseVowels (0.3 of time points dropped")
    assert results["num_labels"] == 9 and results["test_samples"] == 370
    # the evaluation passes the masks: garbage at unobserved and padded positions changes nothing
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    test = load_aeon("JapaneseVowels", drop_rate=0.3).test
    garbage = torch.where(test.observed_mask[:, None, :], test.inputs, torch.full_like(test.inputs, 1e4))
    clean, _ = accuracy(model, test.inputs, test.labels, False, 128, masks=test)
    dirty, _ = accuracy(model, garbage, test.labels, False, 128, masks=test)
    assert clean == dirty == results["evaluation"][0]["accuracy"]


# -- baselines ------------------------------------------------------------------------------------


def test_timm_baseline_gets_zero_fill_and_a_mask_channel(vowels_30):
    from ccnn_hf.data.tasks import TaskData
    from ccnn_hf.training.model import TimmBaseline, zero_fill_with_mask_channel

    d = vowels_30
    task = TaskData(
        d.name, "sequence", 1, 12, 9, d.label_names, d.base_resolution, None, d.mean, d.std, d.train, d.test
    )
    model = TimmBaseline("resnet18", task, binary=False).eval()
    assert model.model.conv1.in_channels == 13
    x, masks = d.test.inputs[:4], {k: v[:4] for k, v in d.test.masks().items()}
    garbage = torch.where(masks["observed_mask"][:, None, :], x, torch.full_like(x, float("nan")))
    with torch.no_grad():
        assert torch.equal(model(x, **masks).logits, model(garbage, **masks).logits)
    filled = zero_fill_with_mask_channel(garbage, masks["attention_mask"], masks["observed_mask"])
    assert filled.shape == (4, 13, 29)
    assert torch.equal(filled[:, 12], masks["observed_mask"].float())
    assert torch.equal(filled[:, :12], x)
    per_channel = torch.tensor([[[True, False], [True, True]]])  # [1, C=2, L=2]
    assert zero_fill_with_mask_channel(torch.ones(1, 2, 2), None, per_channel)[0, 2].tolist() == [1.0, 0.5]


def test_timm_baseline_on_data_without_masks_has_no_extra_channel():
    from ccnn_hf.data.tasks import load_task_data
    from ccnn_hf.training.model import TimmBaseline

    task = load_task_data("aeon:GunPoint")
    assert TimmBaseline("resnet18", task, binary=False).model.conv1.in_channels == 1


def test_interpolation_for_minirocket_recovers_a_linear_signal_and_resamples_the_real_length():
    n, length = 3, 10
    line = torch.arange(length, dtype=torch.float32).expand(n, 1, length).clone()
    real = torch.arange(length)[None, :] < torch.tensor([[10], [7], [4]])
    observed = real.clone()
    observed[:, 2] = observed[0, 5] = False
    split = ArrayDataset(
        torch.where(observed[:, None], line, torch.zeros(())),
        torch.zeros(n, dtype=torch.long),
        attention_mask=real,
        observed_mask=observed,
    )
    out = interpolate_missing(split, length)
    assert out.shape == (3, 1, 10)
    for i, size in enumerate((10, 7, 4)):  # the real part, stretched over the common length
        assert np.allclose(out[i, 0], np.linspace(0, size - 1, length))


def test_interpolation_holds_the_end_values_and_refuses_an_empty_channel():
    x = torch.tensor([[[0.0, 2.0, 4.0, 0.0]]])
    observed = torch.tensor([[False, True, True, False]])
    split = ArrayDataset(x, torch.zeros(1, dtype=torch.long), observed_mask=observed)
    assert interpolate_missing(split, 4)[0, 0].tolist() == [2.0, 2.0, 4.0, 4.0]
    empty = ArrayDataset(x, torch.zeros(1, dtype=torch.long), observed_mask=torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="series 0 channel 0 has no observed value"):
        interpolate_missing(empty, 4)


@pytest.mark.slow
def test_irregular_benchmark_smoke_run_writes_table_plot_and_json(tmp_path):
    import importlib.util
    import json

    from helpers import REPO

    spec = importlib.util.spec_from_file_location("bench_irregular", REPO / "benchmarks" / "bench_irregular.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    common = ["--tiny", "--datasets", "GunPoint", "--drop_rates", "0,0.5", "--seeds", "0", "--out", str(tmp_path)]
    for shard in ("0/2", "1/2"):  # two processes' halves of the jobs, merged by --report_only
        bench.main([*common, "--shard", shard])
    assert not (tmp_path / "irregular.md").exists()
    bench.main([*common, "--report_only"])
    report = json.loads((tmp_path / "irregular.json").read_text())
    assert sorted((r["model"], r["drop_rate"]) for r in report["runs"]) == sorted(
        (m, r) for m in bench.MODELS for r in (0.0, 0.5)
    )
    assert all(0 <= r["accuracy"] <= 1 for r in report["runs"])
    for run in report["runs"]:  # every neural model by a ccnn-train command on the same points
        args = run["ccnn_train_args"]
        assert (args is None) == (run["model"] == "minirocket")
        assert args is None or args[args.index("--drop_rate") + 1] == f"{run['drop_rate']:g}"
        assert args is None or args[:2] == ["--config", "timeseries"]  # the same recipe for every neural model
    table = (tmp_path / "irregular.md").read_text()
    assert "TINY" in table and "| GunPoint | MiniRocket" in table and "Goals (issue 23)" in table
    assert (tmp_path / "irregular.png").stat().st_size > 10_000


def test_minirocket_baseline_leaves_torch_thread_count_alone():
    """aeon sets numba's threads (torch's too, through one OpenMP runtime): the benchmark restores
    them, or the CCNN runs after MiniRocket would run with another thread count than asked."""
    import importlib.util

    from helpers import REPO

    spec = importlib.util.spec_from_file_location("bench_irregular", REPO / "benchmarks" / "bench_irregular.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert 0.5 < bench.run_minirocket("GunPoint", 0.3, 0, 0) <= 1.0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_minirocket_tests_each_split_with_one_fit():
    """The model cards' MiniRocket row: one accuracy per test split, in order, each the accuracy of
    that split alone."""
    from ccnn_hf.data.aeon_archive import load_aeon, minirocket_accuracies

    train = load_aeon("GunPoint", drop_rate=0.3).train
    tests = [load_aeon("GunPoint", drop_rate=rate).test for rate in (0.0, 0.7)]
    both = minirocket_accuracies(train, tests, 150)
    assert both == [minirocket_accuracies(train, [t], 150)[0] for t in tests]
    assert both[0] > 0.8 and both[0] != both[1]
