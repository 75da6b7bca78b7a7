"""ccnn-train's recipe against the official code's: the learning-rate schedule, the penalty on the
forward's kernels, the logged loss, the validation protocol (held-out split, best-validation
weights, early stopping), CIFAR augmentation and fixed normalisation constants."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from ccnn_hf.training.train import WarmupCosine
from helpers import reset_accelerate


def _official_lrs(warmup: int, total: int) -> list[float]:
    """The official schedule (``optim.py``): LinearLR from 1e-8 chained with CosineAnnealingLR(last_epoch=-warmup)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1.0)
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1e-8, end_factor=1.0, total_iters=warmup)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup, last_epoch=-warmup)
    chained = torch.optim.lr_scheduler.ChainedScheduler([ramp, cosine])
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()" and the like
        for _ in range(total):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            chained.step()
    return lrs


@pytest.mark.parametrize(("warmup", "total"), [(1, 5), (10, 50), (3, 7), (100, 2100), (10, 210)])
def test_the_schedule_is_the_official_chained_warm_up_and_cosine(warmup, total):
    schedule = WarmupCosine(warmup, total)
    ours = [schedule(step) for step in range(total)]
    official = torch.tensor(_official_lrs(warmup, total), dtype=torch.float64)
    torch.testing.assert_close(torch.tensor(ours, dtype=torch.float64), official, rtol=1e-12, atol=1e-15)
    assert ours[-1] == pytest.approx(0.0, abs=1e-15)  # the cosine reaches 0 on the last step


def test_the_official_schedule_peaks_above_the_nominal_lr_as_the_official_code_does():
    schedule = WarmupCosine(100, 2100)  # sMNIST: 10 of 210 epochs
    assert max(schedule(step) for step in range(2100)) == pytest.approx(
        2 / (1 + torch.cos(torch.tensor(torch.pi * 99 / 2000)).item())
    )
    assert 1.006 < max(schedule(step) for step in range(2100)) < 1.0065


def test_a_warm_up_as_long_as_the_run_keeps_a_finite_bounded_schedule():
    """Where the official formula would divide by zero (a warm-up of half the run), the plain one runs."""
    for warmup, total in ((11, 21), (20, 21), (30, 30), (0, 10), (0, 1), (1, 1), (0, 2)):
        values = [WarmupCosine(warmup, total)(step) for step in range(total + 3)]
        assert all(0 <= v <= 1.0 + 1e-12 for v in values[:total]) and values[0] <= 1.0


# -- the official evaluation protocol (--val_split, --patience) ------------------------------------------

TINY = ["--dataset", "digits", "--hidden", "12", "--blocks", "2", "--kernel_hidden", "8", "--report_to", "none"]
VALIDATED = [
    *TINY,
    "--batch_size",
    "128",
    "--eval_resolutions",
    "1x",
    "--val_split",
    "0.2",
]  # 1 150 train: 8 steps an epoch


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Every run builds its own Accelerator, as a new process would."""
    yield
    reset_accelerate()


def test_the_validation_split_is_stratified_fixed_and_disjoint():
    from ccnn_hf.data.tasks import load_task_data
    from ccnn_hf.training.splits import hold_out, validation_size

    task = load_task_data("digits")
    size = validation_size(0.2, len(task.train))
    kept, validation = hold_out(task, size)
    again, same = hold_out(load_task_data("digits"), size)
    assert len(validation) == size and len(kept.train) + size == len(task.train)
    assert torch.equal(validation.inputs, same.inputs) and torch.equal(kept.train.inputs, again.train.inputs)
    rows = {tuple(x.flatten().tolist()) for x in task.train.inputs}
    assert len(rows) == len(task.train)  # (digits has no duplicate images: rows identify samples)
    held = {tuple(x.flatten().tolist()) for x in validation.inputs}
    assert held.isdisjoint(tuple(x.flatten().tolist()) for x in kept.train.inputs) and held <= rows
    expected = torch.bincount(task.train.labels).double() * size / len(task.train)
    assert (torch.bincount(validation.labels, minlength=10).double() - expected).abs().max() <= 1.0  # stratified
    assert validation_size(500, 1000) == 500 and validation_size(0.001, 100) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--patience", "3"], "--patience needs --val_split"),
        (["--val_split", "2.5"], "--val_split 2.5: expected a fraction below 1"),
        (["--val_split", "5000"], "--val_split 5000 holds out 5000 of the 1437 training samples"),
    ],
)
def test_bad_validation_options_are_named(tmp_path, capsys, argv, message):
    from ccnn_hf.training.train import main

    with pytest.raises(SystemExit) as stop:
        main([*TINY, "--max_steps", "1", "--output_dir", str(tmp_path / "run"), *argv])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def _scripted_validation(monkeypatch, accuracies: list[float]) -> None:
    """The validation accuracy of each validation in turn is scripted (the test accuracy stays real)."""
    import ccnn_hf.training.train as train

    real, script = train.accuracy, iter(accuracies)

    def accuracy(model, inputs, labels, binary, batch_size, masks=None, **kwargs):
        acc, loss = real(model, inputs, labels, binary, batch_size, masks=masks, **kwargs)
        return (next(script), loss) if len(labels) == 287 else (acc, loss)  # the 20 % held out of 1 437

    monkeypatch.setattr(train, "accuracy", accuracy)


def test_the_best_validation_weights_are_tested_and_patience_stops_the_run(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from ccnn_hf.training.train import run

    _scripted_validation(monkeypatch, [0.5, 0.7, 0.6, 0.65, 0.9])  # best after epoch 2, patience 2: stop after 4
    out = tmp_path / "run"
    results = run([*VALIDATED, "--epochs", "8", "--patience", "2", "--save_total_limit", "0", "--output_dir", str(out)])
    selection = results["selection"]
    assert results["steps"] == 32 and selection["stopped_early"] and selection["steps_trained"] == 32
    assert (selection["selected_step"], selection["selected_epoch"], selection["validation_accuracy"]) == (16, 2, 0.7)
    assert selection["validation_samples"] == 287 and results["train_samples"] == 1437 - 287
    assert (
        "the best-validation weights (step 16, 70.00 % on 287 held-out training samples; stopped early"
        in (results["recipe"])
    )
    assert "best-validation weights (step 16" in (out / "README.md").read_text()  # the model card
    log = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_accuracy"] for r in log if "val_accuracy" in r] == [0.5, 0.7, 0.6, 0.65]
    saved, at_step_16 = (
        load_file(out / "model.safetensors"),
        load_file(out / "checkpoints" / "step_00000016" / "model.safetensors"),
    )
    last = load_file(out / "checkpoints" / "step_00000032" / "model.safetensors")
    weights = [k for k in saved if "running" not in k and "num_batches" not in k]  # BN statistics are re-estimated
    assert all(torch.equal(saved[k], at_step_16[k]) for k in weights)
    assert any(not torch.equal(saved[k], last[k]) for k in weights)


class Crash(Exception):
    """Stands for a kill right after a checkpoint was written."""


@pytest.mark.parametrize(("crash_at", "position"), [(16, "epoch boundary"), (20, "mid-epoch"), (24, "last step")])
def test_a_resumed_validated_run_selects_and_logs_what_an_uninterrupted_one_does(
    tmp_path, monkeypatch, crash_at, position
):
    import ccnn_hf.training.train as train
    from safetensors.torch import load_file

    argv = [*VALIDATED, "--epochs", "3", "--dropout", "0.1", "--save_steps", "4", "--patience", "5"]
    whole = train.run([*argv, "--output_dir", str(tmp_path / "whole")])
    reset_accelerate()
    out, real_save = tmp_path / "run", train.save_checkpoint

    def save_then_crash(accelerator, root, step, state, keep):
        real_save(accelerator, root, step, state, keep)
        if step == crash_at:
            raise Crash(position)

    monkeypatch.setattr(train, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        train.run([*argv, "--output_dir", str(out)])
    reset_accelerate()
    monkeypatch.setattr(train, "save_checkpoint", real_save)
    resumed = train.run([*argv, "--output_dir", str(out), "--resume"])
    assert resumed["selection"] == whole["selection"]
    expected, got = load_file(tmp_path / "whole" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert (out / "logs" / "metrics.jsonl").read_text() == (tmp_path / "whole" / "logs" / "metrics.jsonl").read_text()


# -- the penalty reuses the forward's kernels ---------------------------------------------------------


def _penalty_and_grads(model, x, labels, fresh: bool) -> tuple[torch.Tensor, dict]:
    """The official penalty after a training forward, its value and the gradients of (loss + penalty)."""
    from torch.nn import functional as F

    from ccnn_hf.training.model import l2_norm_penalty

    model.zero_grad()
    torch.manual_seed(1)  # the same dropout masks
    loss = F.cross_entropy(model(x), labels)
    if fresh:  # what the penalty was before: every kernel sampled again
        for conv in model.continuous_convs():
            conv._last_kernel = type(conv._last_kernel)()
    penalty = l2_norm_penalty(model)
    (loss + 1e-3 * penalty).backward()
    return penalty.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("preset", ["cifar10_4_140", "smnist_4_140"])  # centred 2D, causal 1D
def test_the_penalty_reuses_the_forward_kernels_with_the_same_value_and_gradients(monkeypatch, preset):
    import copy

    from ccnn_hf import build_ccnn
    from ccnn_hf.continuous_conv import SeparableContinuousConv
    from ccnn_hf.training.model import l2_norm_penalty

    torch.manual_seed(0)
    model = build_ccnn(preset, hidden=16, blocks=2, kernel_hidden=8, num_classes=4).train().double()
    base = next(iter(model.continuous_convs())).base_resolution
    channels = next(iter(model.continuous_convs())).in_channels
    x, labels = torch.randn(4, channels, *base, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    expected, expected_grads = _penalty_and_grads(model, x, labels, fresh=True)
    samples = []
    real = SeparableContinuousConv._sample_kernel
    monkeypatch.setattr(
        SeparableContinuousConv, "_sample_kernel", lambda self, plan: samples.append(1) or real(self, plan)
    )
    got, grads = _penalty_and_grads(model, x, labels, fresh=False)
    convs = len(list(model.continuous_convs()))
    assert len(samples) == convs  # the forward's samples only: the penalty sampled none
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        # the kernel is float32: its two gradients (conv, penalty) are summed there before the generator
        scale = expected_grads[name].abs().max().item()
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-5, atol=1e-6 * scale)
    with torch.no_grad():  # an optimiser step without a new forward: the penalty samples the new kernels
        for conv in model.continuous_convs():
            conv.mask_width.mul_(0.9)
    model(x)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(1e-3)
    samples.clear()
    after = l2_norm_penalty(model)
    assert len(samples) == convs
    for conv in model.continuous_convs():
        conv._last_kernel = type(conv._last_kernel)()
    torch.testing.assert_close(after, l2_norm_penalty(model))
    model(x)
    copy.deepcopy(model)  # a kernel kept for the penalty never blocks a copy of the model


def test_the_logged_loss_is_the_cross_entropy_and_the_penalty_is_logged_beside_it(tmp_path):
    """As the official code logs it: a penalty of weight 1 (over 100 here) never enters "loss"."""
    from ccnn_hf.training.train import run

    out = tmp_path / "run"
    run(
        [*TINY, "--batch_size", "128", "--max_steps", "3", "--weight_decay", "1", "--lr", "1e-9"]
        + ["--eval_resolutions", "1x", "--output_dir", str(out)]
    )
    steps = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if "lr" in r]
    assert len(steps) == 3 and all(r["penalty"] > 5 for r in steps)
    assert all(abs(r["loss"] - 2.3) < 0.5 for r in steps)  # ten classes at chance: ln 10


# -- known datasets: the official normalisation constants and CIFAR augmentation --------------------------


def _image_zip(path, size: int, mode: str = "RGB"):
    """An imagefolder zip of noise pictures, two classes, 16 train and 4 test images each."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for split, count in (("train", 16), ("test", 4)):
            for label in ("a", "b"):
                for i in range(count):
                    pixels = rng.integers(0, 256, (size, size, 3 if mode == "RGB" else 1), dtype=np.uint8)
                    buffer = io.BytesIO()
                    Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode).save(buffer, "PNG")
                    archive.writestr(f"{split}/{label}/{i}.png", buffer.getvalue())
    return path


def test_known_datasets_are_recognised_by_name_channels_and_size():
    from ccnn_hf.data.tasks import known_dataset

    for name in ("cifar10_imagefolder", "CIFAR-10", "uoft-cs/cifar10", "cifar10_40k"):
        assert known_dataset(name, 3, (32, 32)) == "cifar10"
    assert known_dataset("cifar-100", 3, (32, 32)) == "cifar100" and known_dataset("mnist", 1, (28, 28)) == "mnist"
    assert known_dataset("cifar10", 1, (32, 32)) is None and known_dataset("cifar10", 3, (64, 64)) is None
    assert known_dataset("fashion_mnist", 1, (28, 28)) is None and known_dataset("shapes", 3, (32, 32)) is None


def test_a_cifar_folder_gets_the_official_constants_and_the_presets_augmentation(tmp_path):
    from ccnn_hf.presets import CIFAR10_STATS
    from ccnn_hf.training.train import run
    from ccnn_hf.data.tasks import load_task_data

    cifar, other = _image_zip(tmp_path / "cifar10_small.zip", 32), _image_zip(tmp_path / "noise.zip", 32)
    task = load_task_data(str(cifar))
    assert (task.mean, task.std) == CIFAR10_STATS and task.known == "cifar10"
    assert abs(load_task_data(str(other)).mean[0] - 0.5) < 0.05  # noise: the data's own statistics
    common = [*TINY[2:], "--max_steps", "1", "--batch_size", "8", "--eval_resolutions", "1x"]
    recipe = {}
    for name, data, extra in (
        ("preset", cifar, []),
        ("off", cifar, ["--no_augment"]),
        ("other", other, []),
        ("asked", other, ["--augment"]),
    ):
        reset_accelerate()
        results = run(["--dataset", str(data), *common, *extra, "--output_dir", str(tmp_path / name)])
        recipe[name] = results["recipe"]
    assert "random crop and flip (the preset's recipe)" in recipe["preset"]
    assert "random crop" not in recipe["off"] and "random crop" not in recipe["other"]
    assert "random crop and flip (--augment)" in recipe["asked"]


def test_two_processes_run_the_schedule_once_per_optimiser_step(tmp_path):
    """accelerate steps a prepared scheduler once per process and step by default: with two processes
    the cosine reached 0 halfway and the second half trained at lr 0. The validation of the main
    process is shared with the other (its stop decision too)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += [
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "ccnn_hf.training.train",
    ]
    command += ["--cpu", *TINY, "--max_steps", "6", "--warmup", "0", "--batch_size", "16", "--lr", "0.01"]
    command += ["--eval_resolutions", "1x", "--val_split", "0.1", "--output_dir", str(out)]  # (validated: no hang)
    result = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    records = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    logged = [r["lr"] for r in records if "lr" in r]
    schedule = WarmupCosine(0, 6)
    assert logged == pytest.approx([0.01 * schedule(step) for step in range(1, 7)])  # the lr of the next step
    assert json.loads((out / "results.json").read_text())["selection"]["selected_step"] == 6


def test_multi_resolution_batches_render_the_samples_that_stayed_in_training():
    """--train_resolutions renders a batch from the source pictures by training index: after the
    split those indices count the samples left, and must render those samples."""
    from ccnn_hf.data.tasks import load_task_data
    from ccnn_hf.training.splits import hold_out

    task = load_task_data("mnist", options={"resolution": 14})
    kept, _ = hold_out(task, 500)
    index = torch.tensor([0, 5, 100, 3000])
    torch.testing.assert_close(kept.render_train(14, index), kept.train.inputs[index], rtol=0, atol=0)


def test_a_diverged_sample_is_named_by_its_index_in_the_data_as_loaded(tmp_path, monkeypatch):
    import re

    from ccnn_hf.modeling_ccnn import CCNNForImageClassification
    from ccnn_hf.training.train import run
    from ccnn_hf.data.tasks import load_task_data
    from ccnn_hf.training.splits import hold_out, validation_size
    from ccnn_hf.training.errors import UserError

    real_forward, calls = CCNNForImageClassification.forward, {"n": 0}

    def forward(self, pixel_values=None, labels=None, **kwargs):  # the third batch's second sample diverges
        output = real_forward(self, pixel_values=pixel_values, labels=labels, **kwargs)
        calls["n"] += 1 if self.training else 0
        if self.training and calls["n"] == 3:
            output.logits[1, 0] = float("inf")
            output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(CCNNForImageClassification, "forward", forward)
    with pytest.raises(UserError) as error:
        run([*VALIDATED, "--max_steps", "5", "--output_dir", str(tmp_path / "run")])
    task = load_task_data("digits")
    kept, _ = hold_out(task, validation_size(0.2, len(task.train)))
    order = torch.randperm(len(kept.train), generator=torch.Generator().manual_seed(0))  # epoch 0 of seed 0
    expected = int(kept.train_source_index[order[2 * 128 + 1]])
    assert re.search(rf"digits training sample\(s\) \[{expected}\]", str(error.value)), str(error.value)
    assert torch.equal(task.train.inputs[expected], kept.train.inputs[order[2 * 128 + 1]])


def test_a_tie_in_validation_accuracy_goes_to_the_lower_loss():
    """Small validation splits saturate (27 series at 100 %): equal accuracy with a lower loss is better."""
    from ccnn_hf.training.selection import Selection

    selection = Selection(patience=2)
    assert selection.update(10, 1, 1.0, 0.12) and not selection.update(20, 2, 1.0, 0.2)
    assert selection.update(30, 3, 1.0, 0.05) and (selection.best_step, selection.epochs_since_best) == (30, 0)
    assert not selection.update(40, 4, 0.9, 0.01) and not selection.update(50, 5, 1.0, None) and selection.stop
    assert selection.update(60, 6, 1.0 + 1e-9, 9.0)  # a higher accuracy wins whatever its loss
