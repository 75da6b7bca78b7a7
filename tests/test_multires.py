"""The resize baseline and multi-resolution training (``--train_resolutions``) of ``ccnn-train``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_train import TINY, Crash, _assert_same_weights

from ccnn_hf.training.train import run
from ccnn_hf.data.tasks import load_task_data
from ccnn_hf.training.errors import UserError
from ccnn_hf.training.resolutions import ResolutionSchedule, parse_train_resolutions, resample_audio, to_base
from helpers import reset_accelerate, write_tone_audiofolder


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Every run builds its own Accelerator, as a new process would."""
    yield
    reset_accelerate()


def test_the_schedule_is_a_function_of_seed_and_step_and_covers_the_set():
    schedule = ResolutionSchedule([8, 12, 16], seed=3)
    drawn = [schedule(step) for step in range(300)]
    assert drawn == [ResolutionSchedule([8, 12, 16], seed=3)(step) for step in range(300)]
    assert [schedule(step) for step in range(299, -1, -1)] == drawn[::-1]  # no state: any step, any order
    assert set(drawn) == {8, 12, 16} and all(70 < drawn.count(v) < 130 for v in (8, 12, 16))
    assert drawn != [ResolutionSchedule([8, 12, 16], seed=4)(step) for step in range(300)]


def test_train_resolutions_are_parsed_as_a_set_or_a_range():
    digits = load_task_data("digits")
    assert parse_train_resolutions("16,8,8", digits) == [8, 16]
    assert parse_train_resolutions("8-11", digits) == [8, 9, 10, 11]
    with pytest.raises(UserError, match="--train_resolutions 8,big: expected whole sizes"):
        parse_train_resolutions("8,big", digits)
    with pytest.raises(UserError, match="--train_resolutions: digits_seq .* has no source to render"):
        parse_train_resolutions("64,256", load_task_data("digits_seq"))


def test_training_samples_are_rendered_from_the_source_pictures():
    digits = load_task_data("digits")
    index = torch.tensor([5, 0, 17])
    torch.testing.assert_close(digits.render_train(8, index), digits.train.inputs[index])  # the base: as stored
    big = digits.render_train(16, index)
    assert big.shape == (3, 1, 16, 16)
    torch.testing.assert_close(torch.nn.functional.avg_pool2d(big, 2), digits.train.inputs[index], atol=0.6, rtol=0)


def test_the_resize_baseline_brings_other_resolutions_back_to_the_base():
    digits = load_task_data("digits")
    resized = to_base(digits, digits.render_test((16, 16), None), None)
    assert resized.inputs.shape == digits.test.inputs.shape and torch.equal(resized.labels, digits.test.labels)
    assert torch.corrcoef(torch.stack([resized.inputs.flatten(), digits.test.inputs.flatten()]))[0, 1] > 0.95
    tone = lambda rate: torch.tensor(np.sin(2 * np.pi * 440 * np.arange(rate) / rate), dtype=torch.float32)  # noqa: E731
    down = resample_audio(((tone(8000) - 0.1) / 0.5)[None, None], 0.1, 0.5, 8000, 4000, 4000)
    assert down.shape == (1, 1, 4000)
    torch.testing.assert_close(down[0, 0, 100:-100] * 0.5 + 0.1, tone(4000)[100:-100], atol=2e-3, rtol=0)


def test_a_multi_resolution_run_trains_and_reports_the_resize_baseline(tmp_path):
    out = tmp_path / "run"
    results = run(
        [
            "--dataset",
            "digits",
            *TINY,
            "--batch_size",
            "64",
            "--max_steps",
            "6",
            "--train_resolutions",
            "8,16",
            "--output_dir",
            str(out),
        ]
    )
    assert results["train_resolutions"] == [8, 16] and "drawn from [8, 16]" in results["recipe"]
    saved = json.loads((out / "results.json").read_text())
    modes = {(r["setting"], r["mode"]) for r in saved["evaluation"]}
    assert modes == {(s, m) for s in ("4x4", "8x8", "16x16") for m in ("continuous", "reference", "resize")}
    at_base = {r["mode"]: r["accuracy"] for r in saved["evaluation"] if r["setting"] == "8x8"}
    assert at_base["resize"] == at_base["continuous"]  # resizing to the base leaves base inputs as they are
    assert (
        "| evaluated at | continuous mode | reference mode | resized to the base |" in (out / "README.md").read_text()
    )


def test_a_timm_baseline_is_also_evaluated_on_resized_inputs(tmp_path):
    results = run(
        [
            "--dataset",
            "digits",
            "--timm_model",
            "resnet10t",
            "--max_steps",
            "1",
            "--batch_size",
            "16",
            "--report_to",
            "none",
            "--eval_resolutions",
            "1x,2x",
            "--output_dir",
            str(tmp_path / "timm"),
        ]
    )
    assert {(r["setting"], r["mode"]) for r in results["evaluation"]} == {
        (s, m) for s in ("8x8", "16x16") for m in ("timm", "resize")
    }


MULTI = [
    "--dataset",
    "digits",
    *TINY,
    "--dropout",
    "0.1",
    "--batch_size",
    "128",
    "--epochs",
    "2",
    "--eval_resolutions",
    "1x",
    "--train_resolutions",
    "6-12",
    "--save_steps",
    "4",
]


def test_resume_with_multi_resolution_training_is_bit_identical(tmp_path, monkeypatch):
    import ccnn_hf.training.train as train

    run([*MULTI, "--output_dir", str(tmp_path / "whole")])
    reset_accelerate()
    expected = load_file(tmp_path / "whole" / "model.safetensors")
    real_save = train.save_checkpoint

    def save_then_crash(accelerator, root, step, state, keep):
        real_save(accelerator, root, step, state, keep)
        if step == 12:  # one batch into epoch 1
            raise Crash("mid-epoch 1")

    monkeypatch.setattr(train, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        run([*MULTI, "--output_dir", str(tmp_path / "resumed")])
    reset_accelerate()
    monkeypatch.setattr(train, "save_checkpoint", real_save)
    run([*MULTI, "--output_dir", str(tmp_path / "resumed"), "--resume"])
    _assert_same_weights(expected, tmp_path / "resumed")


def test_audio_trains_at_several_sampling_rates_and_is_resampled_for_the_baseline(tmp_path):
    root = write_tone_audiofolder(tmp_path / "speech")
    task = load_task_data(str(root), sampling_rate=4000)
    resampled = to_base(task, task.render_test(None, 8000), 8000)
    assert resampled.inputs.shape == task.test.inputs.shape
    torch.testing.assert_close(resampled.inputs[..., 50:-50], task.test.inputs[..., 50:-50], atol=0.05, rtol=0)
    assert task.render_train(2000, torch.tensor([1, 3])).shape == (2, 1, 2000)
    results = run(
        [
            "--dataset",
            str(root),
            "--preset",
            "sc_raw_4_140",
            *TINY,
            "--sampling_rate",
            "4000",
            "--train_resolutions",
            "2000,4000,8000",
            "--max_steps",
            "3",
            "--batch_size",
            "4",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    assert results["train_resolutions"] == [2000, 4000, 8000]
    assert {(r["setting"], r["mode"]) for r in results["evaluation"]} == {
        (s, m) for s in ("4 kHz", "8 kHz") for m in ("continuous", "reference", "resize")
    }
