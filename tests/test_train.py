"""``ccnn-train``: training, evaluation across resolutions, fine-tuning, resume, data sources, faults."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ccnn_hf.training.train import run
from ccnn_hf.training.checkpoints import latest_checkpoint
from ccnn_hf.training.errors import UserError
from helpers import reset_accelerate, write_tone_audiofolder

TINY = ["--hidden", "12", "--blocks", "2", "--kernel_hidden", "8", "--report_to", "none"]


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Every run builds its own Accelerator (mixed precision, process layout) as a new process would."""
    yield
    reset_accelerate()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    results = run(
        [
            "--dataset",
            "digits",
            "--hidden",
            "24",
            "--blocks",
            "2",
            "--kernel_hidden",
            "12",
            "--epochs",
            "10",
            "--warmup",
            "1",
            "--batch_size",
            "64",
            "--lr",
            "0.01",
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--eval_resolutions",
            "1x,2x",
        ]
    )
    reset_accelerate()
    return out, results


def accuracy_at(results: dict, setting: str, mode: str = "continuous") -> float:
    return next(r["accuracy"] for r in results["evaluation"] if r["setting"] == setting and r["mode"] == mode)


def test_training_on_8x8_digits_keeps_accuracy_at_16x16(digits_run):
    out, results = digits_run
    base, double = accuracy_at(results, "8x8"), accuracy_at(results, "16x16")
    assert base > 0.85
    assert double > base - 0.05  # continuous mode: the same weights on a twice finer grid
    assert accuracy_at(results, "16x16", "reference") < double  # the official fixed grid does worse
    files = set(os.listdir(out))
    assert {
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "README.md",
        "results.json",
        "accuracy_vs_resolution.png",
        "logs",
        "checkpoints",
    } <= files
    assert json.loads((out / "results.json").read_text())["preset"] == "cifar10_4_140"
    log = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert any("test_accuracy" in r for r in log) and all(np.isfinite(r.get("loss", 0)) for r in log)
    card = (out / "README.md").read_text()
    assert "model-index" in card and "16x16" in card
    assert "2206.03398" in card  # the card cites the CCNN paper


def test_the_output_folder_loads_in_transformers_and_reproduces_the_accuracy(digits_run):
    from transformers import AutoModelForImageClassification

    from ccnn_hf.data import load_builtin

    out, results = digits_run
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    test = load_builtin("digits").test
    with torch.no_grad():
        acc = (model(pixel_values=test.inputs).logits.argmax(-1) == test.labels).float().mean().item()
    assert abs(acc - accuracy_at(results, "8x8")) < 1e-6


def test_fine_tuning_at_another_resolution_with_a_label_subset(digits_run, tmp_path, capsys):
    checkpoint, _ = digits_run
    results = run(
        [
            "--init_from",
            str(checkpoint),
            "--dataset",
            "digits",
            "--image_size",
            "16",
            "--labels",
            "0,1,2,3,4",
            "--epochs",
            "5",
            "--warmup",
            "0.5",
            "--batch_size",
            "64",
            "--lr",
            "0.005",
            "--output_dir",
            str(tmp_path / "ft"),
            "--report_to",
            "none",
            "--eval_resolutions",
            "1x",
        ]
    )
    assert "re-initialising the classifier" in capsys.readouterr().out
    assert results["classifier_reinitialised"] and results["num_labels"] == 5
    assert results["checkpoint_base_resolution"] == [8, 8] and results["base_resolution"] == [16, 16]
    assert accuracy_at(results, "16x16") > 0.8


# Resume: 11 batches of 128 digits per epoch, dropout on, default settings otherwise (conv_impl "auto").
RESUME = [
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
]


class Crash(Exception):
    """Stands for a kill right after a checkpoint was written."""


def _uninterrupted(folder: Path, extra: list[str]) -> tuple[dict, str]:
    """The same run as the resumed ones, never interrupted: its weights and its log."""
    run([*RESUME, *extra, "--save_steps", "4", "--output_dir", str(folder)])
    reset_accelerate()
    return load_file(folder / "model.safetensors"), (folder / "logs" / "metrics.jsonl").read_text()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return _uninterrupted(tmp_path_factory.mktemp("whole") / "run", [])


def _assert_same_weights(expected: dict, folder: Path) -> None:
    got = load_file(folder / "model.safetensors")
    assert expected.keys() == got.keys()
    different = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not different, f"{len(different)} of {len(expected)} tensors differ, e.g. {different[:3]}"


@pytest.mark.parametrize(
    ("save_steps", "crash_at", "position"),
    [
        (11, 11, "epoch boundary"),  # the checkpoint closes epoch 0: the resumed run starts epoch 1 afresh
        (4, 8, "mid-epoch 0"),  # 8 of 11 batches done: the resumed run skips them in epoch 0's order
        # 1 batch of epoch 1 done: the skipped-batch loader must use epoch 1's order (accelerate's
        # checkpoints: also run against the oldest allowed accelerate, marker hub)
        pytest.param(4, 12, "mid-epoch 1", marks=pytest.mark.hub),
    ],
)
def test_resume_after_a_crash_is_bit_identical(uninterrupted, tmp_path, monkeypatch, save_steps, crash_at, position):
    import ccnn_hf.training.train as train

    expected, expected_log = uninterrupted
    out = tmp_path / "run"
    real_save = train.save_checkpoint

    def save_then_crash(accelerator, root, step, state, keep):
        real_save(accelerator, root, step, state, keep)
        if step == crash_at:
            raise Crash(position)

    monkeypatch.setattr(train, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        run([*RESUME, "--save_steps", str(save_steps), "--output_dir", str(out)])
    assert not (out / "model.safetensors").exists() and not (out / "results.json").exists()
    reset_accelerate()
    monkeypatch.setattr(train, "save_checkpoint", real_save)
    run([*RESUME, "--save_steps", str(save_steps), "--output_dir", str(out), "--resume"])
    _assert_same_weights(expected, out)
    losses = [json.loads(line).get("loss") for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert losses == [json.loads(line).get("loss") for line in expected_log.splitlines()]  # each step logged once


def test_augmented_run_resumes_with_the_same_crops(uninterrupted, tmp_path, monkeypatch):
    """--augment draws its crops and flips from the run's seed and the micro-batch, so a run resumed
    mid-epoch 1 ends with the uninterrupted augmented run's weights, which differ from the plain run's."""
    import ccnn_hf.training.train as train

    expected, _ = _uninterrupted(tmp_path / "whole", ["--augment"])
    assert any(not torch.equal(expected[k], uninterrupted[0][k]) for k in expected)  # augmentation took effect
    out, real_save = tmp_path / "run", train.save_checkpoint

    def save_then_crash(accelerator, root, step, state, keep):
        real_save(accelerator, root, step, state, keep)
        if step == 12:
            raise Crash("mid-epoch 1")

    monkeypatch.setattr(train, "save_checkpoint", save_then_crash)
    with pytest.raises(Crash):
        run([*RESUME, "--augment", "--save_steps", "4", "--output_dir", str(out)])
    reset_accelerate()
    monkeypatch.setattr(train, "save_checkpoint", real_save)
    run([*RESUME, "--augment", "--save_steps", "4", "--output_dir", str(out), "--resume"])
    _assert_same_weights(expected, out)
    assert "random crop and flip" in json.loads((out / "results.json").read_text())["recipe"]


def test_augment_refuses_data_that_are_neither_images_nor_series(tmp_path):
    folder = write_tone_audiofolder(tmp_path / "speech")
    with pytest.raises(UserError, match="--augment applies to images .* and time series .* is audio data"):
        run(["--dataset", str(folder), *TINY, "--augment", "--max_steps", "1", "--output_dir", str(tmp_path / "run")])


def test_resume_after_sigkill_ends_with_the_same_weights(tmp_path):
    """A real SIGKILL of a separate process, resumed in another process, against an uninterrupted
    run in a third one (same thread count: another one changes the float reduction order), all with
    the default conv_impl="auto" (a cost model of the shapes: every process picks the same paths)."""
    args = [sys.executable, "-m", "ccnn_hf.training.train", *RESUME, "--save_steps", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(args + ["--output_dir", str(tmp_path / "whole")], env=env, capture_output=True, timeout=600)
    assert whole.returncode == 0, whole.stderr.decode()[-2000:]
    expected = load_file(tmp_path / "whole" / "model.safetensors")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        args + ["--output_dir", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while (
        latest_checkpoint(killed / "checkpoints") is None
        or latest_checkpoint(killed / "checkpoints").name < "step_00000008"
    ):
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "model.safetensors").exists()
    resumed = subprocess.run(
        args + ["--output_dir", str(killed), "--resume"], env=env, capture_output=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert b"resumed from" in resumed.stdout
    _assert_same_weights(expected, killed)


def test_gradient_checkpointing_trains_the_same_model(uninterrupted, tmp_path):
    expected, _ = uninterrupted
    got, log = _uninterrupted(tmp_path / "checkpointed", ["--gradient_checkpointing"])
    assert expected.keys() == got.keys()
    for name in expected:  # recomputed activations round differently, never by more than this
        torch.testing.assert_close(got[name], expected[name], rtol=1e-3, atol=1e-5, msg=name)
    # The saved model's BatchNorm statistics are re-estimated after training (adapt_batch_norm); the
    # last training checkpoint holds those the training steps left: each batch counted once.
    _uninterrupted(tmp_path / "plain", [])  # (the fixture's run folder is not at hand)
    plain, checkpointed = (sorted((tmp_path / p / "checkpoints").glob("step_*"))[-1] for p in ("plain", "checkpointed"))
    assert plain.name == checkpointed.name
    during, during_checkpointed = (load_file(p / "model.safetensors") for p in (plain, checkpointed))
    buffers = [k for k in during if "running_" in k or k.endswith("num_batches_tracked")]
    assert buffers and all(torch.equal(during_checkpointed[k], during[k]) for k in buffers if "batches" in k)
    for name in buffers:
        torch.testing.assert_close(during_checkpointed[name], during[name], rtol=1e-3, atol=1e-5, msg=name)


def test_a_compiled_run_evaluates_and_saves(tmp_path, monkeypatch):
    """--compile trains the compiled stem and blocks, then adapts the BatchNorm statistics and
    evaluates at every resolution eagerly (update_bn's cumulative average cannot be traced, and
    each evaluation size and batch would be one more graph, past torch's recompile limit). The
    graphs are traced as ccnn-train traces them; only the code generation is skipped (backend
    "eager"), which decides none of this."""
    compile_module, compile_function = torch.nn.Module.compile, torch.compile
    monkeypatch.setattr(
        torch.nn.Module, "compile", lambda self, **kw: compile_module(self, **{**kw, "backend": "eager", "mode": None})
    )
    # the penalty is compiled as a function
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile_function(fn, **{**kw, "backend": "eager"}))
    monkeypatch.setenv("CCNN_HF_COMPILE_CPU", "1")  # the CPU is what a test has
    torch._dynamo.reset()
    argv = ["--dataset", "digits", *TINY, "--max_steps", "3", "--batch_size", "16", "--output_dir", str(tmp_path)]
    results = run([*argv, "--compile", "--eval_resolutions", "6,8,10,12,16"])
    torch._dynamo.reset()
    assert {r["setting"] for r in results["evaluation"]} == {f"{n}x{n}" for n in (6, 8, 10, 12, 16)}
    assert (tmp_path / "model.safetensors").exists()


def test_compile_on_the_cpu_trains_eagerly_and_says_why(tmp_path, monkeypatch, capsys):
    """Compiled CCNN steps are slower than eager ones on the CPU (benchmarks/results/training.md):
    --compile leaves them eager there (nothing compiled, the penalty not either) and says so."""
    import ccnn_hf.training.train as train

    monkeypatch.delenv("CCNN_HF_COMPILE_CPU", raising=False)
    monkeypatch.setattr(train, "compile_for_training", lambda *a: pytest.fail("compiled on the CPU"))
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("the penalty compiled on the CPU"))
    argv = ["--dataset", "digits", *TINY, "--max_steps", "2", "--batch_size", "16", "--eval_resolutions", "1x"]
    run([*argv, "--compile", "--output_dir", str(tmp_path / "compile")])
    assert "stay eager on the CPU" in capsys.readouterr().out
    # the run records what was asked, so the same command line can --resume it
    marker = json.loads((tmp_path / "compile" / ".ccnn-run.json").read_text())
    assert marker["status"] == "complete" and marker["options"]["compile"] is True
    reset_accelerate()
    run([*argv, "--compile", "--output_dir", str(tmp_path / "compile"), "--resume"])


def test_incomplete_checkpoints_are_never_picked(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "step_00000004").mkdir(parents=True)
    (root / "step_00000004" / "trainer_state.json").write_text("{}")
    (root / "step_00000008").mkdir()  # crashed before trainer_state.json was written
    (root / ".tmp-step_00000012").mkdir()
    assert latest_checkpoint(root).name == "step_00000004"


def _run_fails(argv, capsys, message):
    from ccnn_hf.training.train import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code != 0
    text = capsys.readouterr().err + str(exit_info.value)
    assert message in text, text


def test_bad_input_is_named(tmp_path, capsys):
    out = ["--output_dir", str(tmp_path / "x"), *TINY, "--max_steps", "1"]
    _run_fails(["--preset", "cifar10_4_14", *out], capsys, "unknown preset")
    _run_fails(["--dataset", "imagenet-1k-on-mars", *out], capsys, "unknown dataset")
    _run_fails(["--dataset", "digits", "--preset", "smnist_4_140", *out], capsys, "holds 2D image data")
    _run_fails(["--dataset", "digits", "--labels", "3,12", *out], capsys, "outside the dataset's classes")
    _run_fails(["--gradient_checkpointing", "--compile", *out], capsys, "exclude each other")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "results.json").write_text("{}")
    _run_fails(
        ["--dataset", "digits", "--output_dir", str(tmp_path / "taken"), *TINY], capsys, "holds no ccnn-train run"
    )


def _png(value: int, size=(10, 10), mode="L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((*size, 3) if mode == "RGB" else size, value, dtype=np.uint8), mode=mode).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def test_imagefolder_zip(tmp_path):
    archive = tmp_path / "shapes.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for split, count in (("train", 12), ("test", 4)):
            for label, value in (("dark", 30), ("light", 220)):
                for i in range(count):
                    z.writestr(f"{split}/{label}/{i}.png", _png(value + i, mode="RGB"))
    results = run(
        [
            "--dataset",
            str(archive),
            *TINY,
            "--max_steps",
            "2",
            "--batch_size",
            "8",
            "--output_dir",
            str(tmp_path / "out"),
            "--eval_resolutions",
            "1x,2x",
        ]
    )
    assert results["labels"] == ["dark", "light"] and results["base_resolution"] == [10, 10]
    assert {r["setting"] for r in results["evaluation"]} == {"10x10", "20x20"}


def test_hf_dataset_with_custom_columns(tmp_path):
    import datasets

    rng = np.random.default_rng(0)
    images = [Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8)) for _ in range(24)]
    features = datasets.Features({"picture": datasets.Image(), "kind": datasets.ClassLabel(names=["a", "b", "c"])})
    split = datasets.Dataset.from_dict({"picture": images, "kind": [i % 3 for i in range(24)]}, features=features)
    datasets.DatasetDict({"train": split, "test": split.select(range(6))}).save_to_disk(tmp_path / "saved")
    results = run(
        [
            "--dataset",
            str(tmp_path / "saved"),
            "--image_column",
            "picture",
            "--label_column",
            "kind",
            *TINY,
            "--max_steps",
            "2",
            "--batch_size",
            "8",
            "--output_dir",
            str(tmp_path / "out"),
            "--eval_resolutions",
            "1x",
        ]
    )
    assert results["labels"] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="no label column 'label'"):
        run(
            [
                "--dataset",
                str(tmp_path / "saved"),
                "--image_column",
                "picture",
                *TINY,
                "--max_steps",
                "1",
                "--output_dir",
                str(tmp_path / "out2"),
            ]
        )


def test_audiofolder_trains_at_one_rate_and_evaluates_at_another(tmp_path):
    root = write_tone_audiofolder(tmp_path / "speech")
    results = run(
        [
            "--dataset",
            str(root),
            "--preset",
            "sc_raw_4_140",
            *TINY,
            "--sampling_rate",
            "4000",
            "--max_steps",
            "2",
            "--batch_size",
            "4",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    assert results["base_sampling_rate"] == 4000 and results["modality"] == "audio"
    from ccnn_hf.data.tasks import load_task_data

    task = load_task_data(str(root), sampling_rate=4000)
    assert 0.5 < task.train.inputs.std().item() < 2.0  # standardised, as the official raw pipeline did
    assert {r["setting"] for r in results["evaluation"]} == {"4 kHz", "8 kHz"}
    from transformers import AutoFeatureExtractor

    assert AutoFeatureExtractor.from_pretrained(tmp_path / "out").sampling_rate == 4000


def test_sequences_binary_tasks_and_a_yaml_config(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "dataset: digits_seq\npreset: smnist_4_140\nmax_steps: 2\nbatch_size: 16\n"
        "hidden: 12\nblocks: 1\nkernel_hidden: 8\nreport_to: none\n"
    )
    results = run(["--config", str(config), "--output_dir", str(tmp_path / "seq")])
    assert results["modality"] == "sequence" and results["base_resolution"] == [64]
    binary = run(
        [
            "--dataset",
            "pathfinder",
            "--dataset_option",
            "n_train=32",
            "--dataset_option",
            "n_test=16",
            "--preset",
            "pathfinder2d_4_140",
            *TINY,
            "--max_steps",
            "2",
            "--batch_size",
            "8",
            "--output_dir",
            str(tmp_path / "pf"),
            "--eval_resolutions",
            "1x",
        ]
    )
    assert binary["num_labels"] == 1  # the official binary task: one logit, BCE


def test_bf16_mixed_precision(tmp_path):
    results = run(
        [
            "--dataset",
            "digits",
            *TINY,
            "--max_steps",
            "3",
            "--batch_size",
            "16",
            "--mixed_precision",
            "bf16",
            "--output_dir",
            str(tmp_path / "bf16"),
            "--eval_resolutions",
            "1x",
        ]
    )
    assert "bf16" in results["recipe"]
    assert np.isfinite(results["evaluation"][0]["loss"])


@pytest.mark.hub
def test_push_to_hub(local_hub, tmp_path):
    from huggingface_hub import HfApi
    from transformers import AutoModelForImageClassification

    run(
        [
            "--dataset",
            "digits",
            *TINY,
            "--max_steps",
            "2",
            "--batch_size",
            "16",
            "--output_dir",
            str(tmp_path / "out"),
            "--eval_resolutions",
            "1x",
            "--push_to_hub",
            "--hub_model_id",
            "ccnn-org/digits-tiny",
        ]
    )
    files = set(HfApi().list_repo_files("ccnn-org/digits-tiny"))
    assert {"model.safetensors", "config.json", "README.md", "results.json", "accuracy_vs_resolution.png"} <= files
    assert not any(f.startswith("checkpoints/") for f in files)
    assert AutoModelForImageClassification.from_pretrained("ccnn-org/digits-tiny").config.num_labels == 10


def test_two_processes_with_accelerate_launch(tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "ccnn_hf.training.train",
        "--cpu",
        "--dataset",
        "digits",
        *TINY,
        "--max_steps",
        "4",
        "--batch_size",
        "16",
        "--save_steps",
        "2",
        "--output_dir",
        str(out),
        "--eval_resolutions",
        "1x",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert "x 2 processes" in results["recipe"]
    assert (out / "checkpoints" / "step_00000004" / "trainer_state.json").exists()


def test_a_timm_baseline_is_trained_by_the_same_command(tmp_path):
    results = run(
        [
            "--dataset",
            "digits_seq",
            "--preset",
            "smnist_4_140",
            "--timm_model",
            "resnet10t",
            "--max_steps",
            "2",
            "--batch_size",
            "16",
            "--output_dir",
            str(tmp_path / "baseline"),
            "--report_to",
            "none",
            "--eval_resolutions",
            "1x",
            "--gradient_checkpointing",  # timm's own switch
        ]
    )
    assert results["timm_model"] == "resnet10t" and {r["mode"] for r in results["evaluation"]} == {"timm", "resize"}
    assert results["time_per_epoch_s"] > 0 and (tmp_path / "baseline" / "model.safetensors").exists()


def test_time_limit_pays_the_warm_up_once():
    """--time_limit counts the first epoch's warm-up batches (a compilation, say) once and the rest of
    the run at the pace of the batches after them; a short epoch falls back to the first epoch's time."""
    from types import SimpleNamespace

    from ccnn_hf.training.train import WARM_BATCHES, Trainer

    # 100 batches: 5 warm-up batches took 30 s, the other 95 took 9.5 s (0.1 s each)
    trainer = SimpleNamespace(warm_time=30.0, loader=range(100))
    assert WARM_BATCHES == 5
    assert Trainer._epochs_fit(trainer, 139.5, 39.5, 100) == 11  # the first epoch, then 10 of 10 s each
    assert Trainer._epochs_fit(trainer, 20.0, 39.5, 100) == 1  # never less than the epoch already run
    # resumed after 50 batches: 5 warm-up batches in 30 s, 45 more in 4.5 s
    assert Trainer._epochs_fit(trainer, 134.5, 34.5, 50) == 11
    assert Trainer._epochs_fit(SimpleNamespace(warm_time=3.0, loader=range(8)), 41.0, 4.0, 8) == 10  # 41 // 4
    assert Trainer._epochs_fit(SimpleNamespace(warm_time=None, loader=range(100)), 41.0, 2.0, 50) == 10


def test_a_run_resumed_after_its_first_epoch_keeps_the_time_budget(tmp_path, monkeypatch):
    """The first epoch's last step fits the run to --time_limit before its checkpoint is written, so
    a run killed in epoch 1 and resumed trains as many steps as an uninterrupted one."""
    import ccnn_hf.training.train as train

    monkeypatch.setattr(train.Trainer, "_epochs_fit", lambda self, budget, first, ran: 2)  # "2 epochs fit"
    argv = ["--dataset", "digits", *TINY, "--batch_size", "128", "--epochs", "4", "--time_limit", "100"]
    argv += ["--eval_resolutions", "1x", "--output_dir", str(tmp_path / "run")]
    real_batch = train.Trainer._batch

    def crash_in_epoch_1(self, x, y, index):
        if self.epoch == 1 and self.batches_in_epoch == 2:
            raise Crash("epoch 1")
        return real_batch(self, x, y, index)

    monkeypatch.setattr(train.Trainer, "_batch", crash_in_epoch_1)
    with pytest.raises(Crash):
        run(argv)
    reset_accelerate()
    monkeypatch.setattr(train.Trainer, "_batch", real_batch)
    assert run([*argv, "--resume"])["steps"] == 2 * 11  # 11 batches of 128 digits per epoch


def test_test_every_logs_the_test_accuracy_of_every_nth_epoch(tmp_path):
    out = tmp_path / "run"
    run(
        ["--dataset", "digits", *TINY, "--batch_size", "256", "--epochs", "5", "--test_every", "2"]
        + ["--eval_resolutions", "1x", "--output_dir", str(out)]
    )
    log = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    # the last epoch ends the run (its weights get the final evaluation instead)
    assert [r["epoch"] for r in log if "test_accuracy" in r] == [2, 4]
