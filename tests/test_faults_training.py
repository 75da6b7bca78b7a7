"""Bad inputs and faults for ``ccnn-train`` and its data loading, table-driven.

Every case asserts the exact kind of outcome: argparse's usage error (exit status 2, the flag
named), a :class:`UserError` whose message names the input (``main`` prints it as one line and
exits with 2), or a verified correct result. Runs are in-process and tiny (8x8 digits, a
12-channel model); data files are generated in ``tmp_path``.
"""

from __future__ import annotations

import errno
import io
import json
import pickle
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from ccnn_hf.training.train import main, run
from ccnn_hf.training.errors import UserError
from helpers import reset_accelerate

TINY = [
    "--hidden",
    "12",
    "--blocks",
    "1",
    "--kernel_hidden",
    "8",
    "--report_to",
    "none",
    "--batch_size",
    "64",
    "--eval_resolutions",
    "1x",
]


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Every run builds its own Accelerator, as a new process would."""
    yield
    reset_accelerate()


# -- data builders ------------------------------------------------------------------------------------


def _png(value: int, mode: str = "L", size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    shape = (*size, 3) if mode == "RGB" else size
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(buffer, "PNG")
    return buffer.getvalue()


def _wav(freq: float, rate: int = 8000) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    t = np.arange(rate // 2) / rate
    soundfile.write(
        buffer, (0.3 * np.sin(2 * np.pi * freq * t) * 2**15).astype(np.int16), rate, format="WAV", subtype="PCM_16"
    )
    return buffer.getvalue()


def image_folder(
    root: Path,
    *,
    modes: dict[str, str] | None = None,
    broken: dict[str, bytes] | None = None,
    sizes: dict[str, tuple[int, int]] | None = None,
    splits=("train", "test"),
) -> Path:
    """``root/split/label/i.png``, 2 classes; ``modes``/``broken``/``sizes`` change single files by relative path."""
    for split in splits:
        for label, value in (("dark", 40), ("light", 200)):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(6 if split == "train" else 2):
                name = f"{split}/{label}/{i}.png"
                data = (broken or {}).get(name) or _png(
                    value + i, (modes or {}).get(name, "L"), (sizes or {}).get(name, (8, 8))
                )
                (root / name).write_bytes(data)
    return root


def audio_folder(root: Path, broken: dict[str, bytes] | None = None) -> Path:
    for split in ("train", "test"):
        for label, freq in (("low", 300.0), ("high", 1500.0)):
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(4 if split == "train" else 2):
                name = f"{split}/{label}/{i}.wav"
                (root / name).write_bytes((broken or {}).get(name) or _wav(freq + 20 * i))
    return root


def hf_saved(root: Path, labels: list[int], class_names: list[str] | None = None, test_rows: int = 4) -> Path:
    import datasets

    images = [Image.fromarray(np.full((8, 8), 30 * (i % 5), dtype=np.uint8)) for i in range(len(labels))]
    label_feature = datasets.ClassLabel(names=class_names) if class_names else datasets.Value("int64")
    features = datasets.Features({"image": datasets.Image(), "label": label_feature})
    split = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    test = (
        split.select(range(test_rows))
        if test_rows
        else datasets.Dataset.from_dict({"image": [], "label": []}, features=features)
    )
    datasets.DatasetDict({"train": split, "test": test}).save_to_disk(root)
    return root


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- the table --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """``argv(tmp)`` run in-process must fail: ``kind`` "usage" (argparse, exit 2, stderr holds
    ``match``) or "user" (UserError whose message matches the regex ``match``)."""

    id: str
    argv: Callable[[Path], list[str]]
    kind: str
    match: str


def digits(*extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", str(tmp / "out"), *extra]


def init(source: str | Callable[[Path], Path], *extra: str) -> Callable[[Path], list[str]]:
    """Fine-tune from ``source`` (no architecture flags: --init_from takes the checkpoint's)."""
    return lambda tmp: [
        "--dataset",
        "digits",
        "--init_from",
        str(source(tmp) if callable(source) else source),
        "--report_to",
        "none",
        "--max_steps",
        "1",
        "--output_dir",
        str(tmp / "out"),
        *extra,
    ]


def on(dataset: Callable[[Path], Path], *extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: [
        "--dataset",
        str(dataset(tmp)),
        *TINY,
        "--max_steps",
        "1",
        "--output_dir",
        str(tmp / "out"),
        *extra,
    ]


def with_config(text: str, name: str = "run.yaml") -> Callable[[Path], list[str]]:
    return lambda tmp: ["--config", str(write(tmp / name, text)), "--output_dir", str(tmp / "out")]


ALL_ONE_PIXEL = {
    f"{split}/{label}/{i}.png": (1, 1) for split in ("train", "test") for label in ("dark", "light") for i in range(6)
}
CORRUPT_PNG = b"\x89PNG\r\n\x1a\nthis is not an image"

CASES = [
    # numbers that used to mean something else ("0 = unset", "-3 = one step") or nothing at all
    Case(
        "max_steps_zero", digits("--max_steps", "0"), "usage", "argument --max_steps: expected an integer >= 1, got '0'"
    ),
    Case("max_steps_negative", digits("--max_steps", "-5"), "usage", "argument --max_steps"),
    Case("epochs_negative", digits("--epochs", "-3"), "usage", "argument --epochs: expected a finite number > 0"),
    Case("epochs_zero", digits("--epochs", "0"), "usage", "argument --epochs"),
    Case("epochs_nan", digits("--epochs", "nan"), "usage", "argument --epochs"),
    Case("epochs_inf", digits("--epochs", "inf"), "usage", "argument --epochs"),
    Case("epochs_word", digits("--epochs", "abc"), "usage", "argument --epochs: expected a number, got 'abc'"),
    Case("batch_size_zero", digits("--batch_size", "0"), "usage", "argument --batch_size"),
    Case("lr_zero", digits("--lr", "0"), "usage", "argument --lr"),
    Case("lr_nan", digits("--lr", "nan"), "usage", "argument --lr"),
    Case("warmup_negative", digits("--warmup", "-1"), "usage", "argument --warmup: expected a finite number >= 0"),
    Case("grad_accum_zero", digits("--grad_accum", "0"), "usage", "argument --grad_accum"),
    Case("grad_clip_negative", digits("--grad_clip", "-1"), "usage", "argument --grad_clip"),
    Case("save_steps_zero", digits("--save_steps", "0"), "usage", "argument --save_steps"),
    Case("max_samples_zero", digits("--max_samples", "0"), "usage", "argument --max_samples"),
    Case("image_size_zero", digits("--image_size", "0"), "usage", "argument --image_size"),
    Case("sampling_rate_negative", digits("--sampling_rate", "-8000"), "usage", "argument --sampling_rate"),
    Case("time_limit_zero", digits("--time_limit", "0"), "usage", "argument --time_limit"),
    Case(
        "seed_negative", digits("--seed", "-1"), "usage", "argument --seed: expected an integer >= 0 and < 4.29497e+09"
    ),
    Case("seed_too_large", digits("--seed", str(2**32)), "usage", "argument --seed"),
    Case("report_to_unknown", digits("--report_to", "wandb"), "usage", "argument --report_to: invalid choice: 'wandb'"),
    Case("kernel_size_word", digits("--kernel_size", "big"), "usage", "argument --kernel_size: expected an integer"),
    Case(
        "hub_model_id_invalid",
        digits("--push_to_hub", "--hub_model_id", "my org/my model"),
        "usage",
        "--hub_model_id 'my org/my model'",
    ),
    Case("resume_and_overwrite", digits("--resume", "--overwrite"), "usage", "--resume and --overwrite exclude"),
    Case("push_without_repo", digits("--push_to_hub"), "usage", "--push_to_hub needs --hub_model_id"),
    Case(
        "resume_changed_data_alone",
        digits("--resume_changed_data"),
        "usage",
        "--resume_changed_data applies to --resume",
    ),
    # labels
    Case(
        "labels_repeated", digits("--labels", "1,1"), "user", r"--labels '1,1' names class\(es\) \[1\] more than once"
    ),
    Case("labels_not_numbers", digits("--labels", "one,two"), "user", r"--labels 'one,two': expected comma-separated"),
    Case("labels_outside", digits("--labels", "3,12"), "user", r"--labels \[12\] outside the dataset's classes 0..9"),
    Case("labels_single_class", digits("--labels", "3"), "user", r"digits has 1 class\(es\).*at least two"),
    # config files: checked as if typed as flags
    Case(
        "yaml_epochs_word",
        with_config("dataset: digits\nepochs: abc\n"),
        "user",
        r"--config .*run.yaml: epochs: expected a number, got 'abc'",
    ),
    Case(
        "yaml_max_steps_fraction",
        with_config("dataset: digits\nmax_steps: 2.7\n"),
        "user",
        r"run.yaml: max_steps: expected an integer",
    ),
    Case("yaml_hidden_bool", with_config("dataset: digits\nhidden: true\n"), "user", r"run.yaml: hidden: expected int"),
    Case(
        "yaml_unknown_option", with_config("dataset: digits\nepoch: 3\n"), "user", r"run.yaml: unknown option 'epoch'"
    ),
    Case("yaml_not_a_mapping", with_config("- dataset\n- digits\n"), "user", r"run.yaml: expected a mapping"),
    Case("yaml_syntax", with_config("dataset: [digits\n"), "user", r"run.yaml: not valid YAML"),
    Case(
        "yaml_flag_not_bool",
        with_config("dataset: digits\noverwrite: 'yes'\n"),
        "user",
        r"run.yaml: overwrite must be true or false",
    ),
    Case(
        "json_bad_choice",
        with_config('{"dataset": "digits", "conv_impl": "fast"}', "run.json"),
        "user",
        r"run.json: conv_impl must be one of auto, fft, direct",
    ),
    Case("json_syntax", with_config('{"dataset": "digits",}', "run.json"), "user", r"run.json: not valid JSON"),
    Case(
        "config_missing", lambda tmp: ["--config", str(tmp / "nope.yaml")], "user", r"--config .*nope.yaml: cannot read"
    ),
    # datasets
    Case(
        "dataset_unknown_name",
        digits("--dataset", "imagenet-1k-on-mars"),
        "user",
        "unknown dataset 'imagenet-1k-on-mars'",
    ),
    Case(
        "dataset_missing_absolute",
        digits("--dataset", "/nonexistent/ccnn/data"),
        "user",
        "--dataset /nonexistent/ccnn/data: no such file or folder",
    ),
    Case(
        "dataset_missing_relative", digits("--dataset", "./data/train"), "user", "--dataset ./data/train: no such file"
    ),
    Case("dataset_missing_zip", digits("--dataset", "shapes.zip"), "user", "--dataset shapes.zip: no such file"),
    Case(
        "dataset_option_unknown",
        digits("--dataset_option", "n_trian=3"),
        "user",
        r"--dataset_option: digits does not take option\(s\) \['n_trian'\]",
    ),
    Case("dataset_option_no_value", digits("--dataset_option", "n_test"), "user", "--dataset_option expects KEY=VALUE"),
    Case(
        "dataset_option_too_large",
        digits("--dataset_option", "n_test=5000"),
        "user",
        "--dataset_option: n_test must be between 1 and 1796, got 5000",
    ),
    Case(
        "dataset_option_word",
        digits("--dataset_option", "n_test=abc"),
        "user",
        "--dataset_option: digits option n_test must be a positive integer, got 'abc'",
    ),
    Case(
        "dataset_option_fraction",
        digits("--dataset_option", "n_test=1.5"),
        "user",
        "--dataset_option: digits option n_test must be a positive integer, got 1.5",
    ),
    Case(
        "dataset_option_negative",
        digits("--dataset", "mnist1d", "--preset", "smnist_4_140", "--dataset_option", "n_train=-5"),
        "user",
        "mnist1d option n_train must be a positive integer",
    ),
    Case(
        "dataset_option_on_folder",
        on(lambda t: image_folder(t / "imgs"), "--dataset_option", "n_test=3"),
        "user",
        "--dataset_option applies to the built-in datasets",
    ),
    Case(
        "image_corrupt",
        on(lambda t: image_folder(t / "imgs", broken={"train/dark/3.png": b"not an image"})),
        "user",
        r"imgs/train/dark/3.png is not a readable image",
    ),
    Case(
        "image_truncated",
        on(lambda t: image_folder(t / "imgs", broken={"test/light/1.png": _png(9)[:40]})),
        "user",
        r"imgs/test/light/1.png is not a readable image",
    ),
    Case(
        "image_corrupt_in_zip",
        on(lambda t: _zipped(image_folder(t / "imgs", broken={"train/light/0.png": CORRUPT_PNG}))),
        "user",
        r"train/light/0.png in .*imgs.zip is not a readable image",
    ),
    Case(
        "image_sizes_differ",
        on(lambda t: image_folder(t / "imgs", sizes={"train/dark/2.png": (9, 8)})),
        "user",
        r"train images have different sizes .*pass --image_size",
    ),
    Case(
        "image_no_test_split",
        on(lambda t: image_folder(t / "imgs", splits=("train",))),
        "user",
        r"no split 'test'; found \['train'\]",
    ),
    Case(
        "image_folder_empty",
        on(lambda t: (t / "empty").mkdir() or t / "empty"),
        "user",
        "no files in the imagefolder/audiofolder layout",
    ),
    Case(
        "dataset_is_a_plain_file",
        on(lambda t: write(t / "data.txt", "hello")),
        "user",
        "is neither a directory nor a zip archive",
    ),
    Case(
        "audio_corrupt",
        on(
            lambda t: audio_folder(t / "speech", broken={"train/low/2.wav": b"RIFF0000WAVEjunk"}),
            "--preset",
            "sc_raw_4_140",
        ),
        "user",
        r"speech/train/low/2.wav is not readable audio",
    ),
    Case(
        "audio_empty_clip",
        on(
            lambda t: audio_folder(t / "speech", broken={"test/high/0.wav": _wav(300.0)[:44]}),
            "--preset",
            "sc_raw_4_140",
        ),
        "user",
        r"speech/test/high/0.wav holds no audio samples",
    ),
    Case(
        "hf_label_minus_one",
        on(lambda t: hf_saved(t / "hf", [0, 1, -1, 0, 1, 0])),
        "user",
        r"train row 2: label -1 in column 'label' marks an unlabelled sample",
    ),
    Case(
        "hf_classlabel_minus_one",
        on(lambda t: hf_saved(t / "hf", [0, 1, 0, 1, -1, 0], ["a", "b"])),
        "user",
        r"train row 4: label -1 .* unlabelled",
    ),
    Case(
        "hf_no_label_column",
        on(lambda t: hf_saved(t / "hf", [0, 1, 0, 1]), "--label_column", "kind"),
        "user",
        r"no label column 'kind'; columns are \['image', 'label'\]",
    ),
    Case(
        "hf_no_split",
        on(lambda t: hf_saved(t / "hf", [0, 1, 0, 1]), "--test_split", "validation"),
        "user",
        r"no split 'validation'",
    ),
    Case(
        "hf_saved_empty_split",
        on(lambda t: hf_saved(t / "hf", [0, 1, 0, 1], test_rows=0)),
        "user",
        r"--dataset .*hf: datasets could not read this saved dataset \(IndexError.*an empty split causes this",
    ),
    Case(
        "no_test_samples_left",
        on(lambda t: hf_saved(t / "hf", [0, 0, 1, 2, 1, 2], ["a", "b", "c"], test_rows=2), "--labels", "1,2"),
        "user",
        r"hf has no test samples \(after --labels",
    ),
    Case(
        "image_size_on_sequences",
        digits("--dataset", "digits_seq", "--preset", "smnist_4_140", "--image_size", "16"),
        "user",
        "--image_size applies to image data; digits_seq is sequence data",
    ),
    Case("preset_for_other_data", digits("--preset", "smnist_4_140"), "user", "holds 2D image data but preset"),
    Case("preset_unknown", digits("--preset", "cifar10_4_14"), "user", "--preset: unknown preset 'cifar10_4_14'"),
    Case("timm_model_unknown", digits("--timm_model", "resnet-9000"), "user", "--timm_model resnet-9000"),
    Case("model_option_invalid", digits("--hidden", "0"), "user", "model options: .*hidden"),
    Case("eval_resolution_word", digits("--eval_resolutions", "1x,big"), "user", "--eval_resolutions big: expected"),
    Case(
        "eval_resolution_zero", digits("--eval_resolutions", "0x"), "user", "--eval_resolutions 0x: expected a positive"
    ),
    Case(
        "eval_resolution_impossible",
        digits("--dataset", "digits_seq", "--preset", "smnist_4_140", "--eval_resolutions", "50"),
        "user",
        "--eval_resolutions 50: digits_seq: sequence length 50 is not the square",
    ),
    Case(
        "eval_resolution_not_a_resampling",
        digits("--dataset", "digits_seq", "--preset", "smnist_4_140", "--eval_resolutions", "256"),
        "user",
        "--eval_resolutions 256: digits_seq: length 256 would be a 16x16 image read row by row, "
        "which is not a resampling",
    ),
    Case(
        "class_only_in_test_split",
        on(lambda t: _with_file(image_folder(t / "imgs"), "test/odd/0.png", _png(120))),
        "user",
        r"imgs: class\(es\) \['odd'\] occur only in the test split; a model cannot learn them",
    ),
    # sizes below the smallest a CCNN runs at (2 per axis)
    Case("image_size_one", digits("--image_size", "1"), "usage", "argument --image_size: expected an integer >= 2"),
    Case(
        "eval_resolution_below_two",
        digits("--eval_resolutions", "0.001x"),
        "user",
        r"--eval_resolutions 0\.001x: that is 0x0, below the smallest size a CCNN runs at \(2 per axis\)",
    ),
    Case("eval_size_one", digits("--eval_resolutions", "1"), "user", r"--eval_resolutions 1: that is 1x1, below"),
    Case(
        "train_resolution_one",
        digits("--train_resolutions", "1,8"),
        "user",
        r"--train_resolutions 1,8: expected sizes >= 2",
    ),
    Case(
        "images_of_one_pixel",
        on(lambda t: image_folder(t / "imgs", sizes=ALL_ONE_PIXEL)),
        "user",
        r"imgs samples are 1x1, below the smallest size a CCNN runs at \(2 per axis\): pass a larger --image_size",
    ),
    # fine-tuning sources
    Case("init_from_mistyped_folder", init("./my-cnn"), "user", "--init_from ./my-cnn: no such folder"),
    Case("init_from_bare_name", init("my-cnn"), "user", "--init_from my-cnn: no such folder"),
    Case(
        "init_from_folder_without_model",
        init(lambda t: (t / "m").mkdir() or t / "m"),
        "user",
        "the folder lacks config.json or model.safetensors",
    ),
    Case("init_from_a_file", init(lambda t: write(t / "m.txt", "x")), "user", "m.txt is a file"),
    Case(
        "init_from_not_a_ccnn",
        init(
            lambda t: (
                write(t / "bert" / "config.json", '{"model_type": "bert"}').parent
                if write(t / "bert" / "model.safetensors", "x")
                else None
            )
        ),
        "user",
        "config.json is not a CCNN checkpoint \\(model_type 'bert'\\)",
    ),
    Case(
        "init_from_hub_unreachable",
        init("someone/ccnn-that-is-not-there"),
        "user",
        "--init_from someone/ccnn-that-is-not-there: no local folder by that name, and the Hub model could not",
    ),
    Case(
        "init_from_with_architecture",
        digits("--init_from", "runs/x", "--hidden", "16"),
        "user",
        "--init_from takes the architecture from runs/x; drop --hidden",
    ),
    # output folders
    Case(
        "output_dir_is_a_file",
        lambda tmp: digits("--output_dir", str(write(tmp / "taken", "x")))(tmp),
        "user",
        "--output_dir .*taken is a file",
    ),
    Case(
        "output_dir_under_a_file",
        lambda tmp: digits("--output_dir", str(write(tmp / "f", "x") / "run"))(tmp),
        "user",
        "a part of that path is a file",
    ),
    Case(
        "output_dir_foreign_files",
        lambda tmp: digits("--output_dir", str(write(tmp / "mine" / "notes.txt", "x").parent))(tmp),
        "user",
        "is not empty and holds no ccnn-train run",
    ),
    Case(
        "overwrite_foreign_files",
        lambda tmp: digits("--overwrite", "--output_dir", str(write(tmp / "mine" / "notes.txt", "x").parent))(tmp),
        "user",
        "holds no ccnn-train run .*nothing there is deleted",
    ),
    Case("resume_nothing", digits("--resume"), "user", "--resume: .*out holds no ccnn-train run"),
    # planted symbolic links: nothing is written through them
    Case(
        "lock_is_a_planted_link",
        lambda tmp: digits()(_link(tmp / "out" / ".ccnn-run.lock", write(tmp / "victim.txt", "IMPORTANT\n"))),
        "user",
        r"out/\.ccnn-run\.lock is a symbolic link \(to .*victim\.txt\); files are never written through links",
    ),
    Case(
        "marker_is_a_planted_link",
        lambda tmp: digits()(_link(tmp / "out" / ".ccnn-run.json", write(tmp / "victim.json", "{}"))),
        "user",
        r"out/\.ccnn-run\.json is a symbolic link",
    ),
    Case(
        "output_dir_is_a_link",
        lambda tmp: digits()(_link(tmp / "out", _folder(tmp / "elsewhere"))),
        "user",
        r"--output_dir .*out is a symbolic link \(to .*elsewhere\); a run writes only into a real folder",
    ),
]


def _with_file(root: Path, name: str, data: bytes) -> Path:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(data)
    return root


def _link(link: Path, target: Path) -> Path:
    """``link`` made a symbolic link to ``target``; returns the test's tmp folder (two levels up)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return target.parent


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _zipped(folder: Path) -> Path:
    archive = folder.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.rglob("*.png")):
            z.writestr(str(path.relative_to(folder)), path.read_bytes())
    shutil.rmtree(folder)
    return archive


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_naming_it(case: Case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = case.argv(tmp_path)
    if case.kind == "usage":
        with pytest.raises(SystemExit) as exit_info:
            run(argv)
        assert exit_info.value.code == 2
        assert case.match in capsys.readouterr().err
    else:
        with pytest.raises(UserError, match=case.match):
            run(argv)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_output_dir_dot_with_overwrite_never_deletes_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "thesis.tex", "years of work")
    with pytest.raises(UserError, match="--output_dir . is not empty and holds no ccnn-train run"):
        run(["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", ".", "--overwrite"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


# -- faults around a finished run -------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, list[str]]:
    """A complete tiny run (2 steps, a checkpoint after each) and the flags that made it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    argv = ["--dataset", "digits", *TINY, "--max_steps", "2", "--save_steps", "1", "--dropout", "0.1"]
    run([*argv, "--output_dir", str(out)])
    reset_accelerate()
    return out, argv


def _copy(finished, tmp_path: Path) -> tuple[Path, list[str]]:
    source, argv = finished
    out = tmp_path / "run"
    shutil.copytree(source, out)
    return out, [*argv, "--output_dir", str(out)]


def test_a_finished_run_is_not_replaced_without_a_flag(finished, tmp_path):
    out, argv = _copy(finished, tmp_path)
    with pytest.raises(UserError, match="holds another run; pass --overwrite to replace it or --resume"):
        run(argv)


def test_overwrite_deletes_only_the_runs_own_files(finished, tmp_path):
    out, argv = _copy(finished, tmp_path)
    write(out / "my_notes.md", "keep me")
    (out / "plots").mkdir()
    run([*argv, "--overwrite", "--max_steps", "1"])
    assert (out / "my_notes.md").read_text() == "keep me" and (out / "plots").is_dir()
    assert json.loads((out / "results.json").read_text())["steps"] == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000001"]  # the old steps are gone
    assert len((out / "logs" / "metrics.jsonl").read_text().splitlines()) == 1


def test_overwrite_never_replaces_a_users_file_named_like_a_run_file(finished, tmp_path):
    """A README.md that no run wrote (say, notes beside a timm baseline's run, which writes no card)
    is kept; the run stops with the trained model kept and says how to finish."""
    out, argv = _copy(finished, tmp_path)
    marker = json.loads((out / ".ccnn-run.json").read_text())
    marker["files"].remove("README.md")
    (out / ".ccnn-run.json").write_text(json.dumps(marker))
    write(out / "README.md", "my notes")
    with pytest.raises(
        UserError, match=r"run holds README\.md, which no ccnn-train run there wrote; nothing was replaced"
    ):
        run([*argv, "--overwrite"])
    assert (out / "README.md").read_text() == "my notes"
    assert (out / ".tmp-model" / "model.safetensors").is_file()
    (out / "README.md").rename(tmp_path / "notes.md")
    reset_accelerate()
    run([*argv, "--resume"])
    assert (out / "results.json").is_file() and (out / "README.md").read_text() != "my notes"


def test_overwrite_never_follows_a_tampered_marker_out_of_the_folder(finished, tmp_path):
    out, argv = _copy(finished, tmp_path)
    victim = write(tmp_path / "precious.txt", "keep me")
    marker = json.loads((out / ".ccnn-run.json").read_text())
    marker["files"] += ["../precious.txt", "/etc/hostname", ".."]
    (out / ".ccnn-run.json").write_text(json.dumps(marker))
    run([*argv, "--overwrite", "--max_steps", "1"])
    assert victim.read_text() == "keep me"


def test_resume_without_a_checkpoint_stops(finished, tmp_path):
    out, argv = _copy(finished, tmp_path)
    shutil.rmtree(out / "checkpoints")
    before = (out / "results.json").read_bytes()
    with pytest.raises(UserError, match="--resume: .* has no complete checkpoint to resume from; pass --overwrite"):
        run([*argv, "--resume"])
    assert (out / "results.json").read_bytes() == before


def test_resume_with_another_architecture_names_the_option(finished, tmp_path):
    out, argv = _copy(finished, tmp_path)
    with pytest.raises(UserError, match=r"--resume with other options .*--hidden 16 \(the run has 12\)"):
        run([*argv, "--resume", "--hidden", "16"])


def test_resume_with_a_checkpoint_of_another_model_is_refused(finished, tmp_path):
    out, argv = _copy(finished, tmp_path)
    marker = json.loads((out / ".ccnn-run.json").read_text())
    marker["options"]["hidden"] = 16  # the marker no longer tells: loading the tensors does
    (out / ".ccnn-run.json").write_text(json.dumps(marker))
    with pytest.raises(UserError, match="cannot resume from checkpoint .*step_00000002: it does not fit the model"):
        run([*argv, "--resume", "--hidden", "16"])


@pytest.mark.parametrize(
    "content",
    [b"\x00garbage", pickle.dumps({"torch_manual_seed": __import__("os").getcwd}, protocol=2)],
    ids=["garbage", "pickle_with_a_function"],
)
def test_tampered_random_states_are_refused_not_skipped(finished, tmp_path, content):
    out, argv = _copy(finished, tmp_path)
    (out / "checkpoints" / "step_00000002" / "random_states_0.pkl").write_bytes(content)
    with pytest.raises(UserError, match="random_states_0.pkl is unreadable or tampered.*delete that checkpoint folder"):
        run([*argv, "--resume"])


def test_corrupt_trainer_state_is_named(finished, tmp_path):
    out, argv = _copy(finished, tmp_path)
    (out / "checkpoints" / "step_00000002" / "trainer_state.json").write_text('{"step": ')
    with pytest.raises(UserError, match="step_00000002: trainer_state.json is unreadable"):
        run([*argv, "--resume"])


def test_corrupt_marker_is_named(finished, tmp_path):
    out, argv = _copy(finished, tmp_path)
    (out / ".ccnn-run.json").write_text("{")
    with pytest.raises(UserError, match=r"\.ccnn-run\.json is unreadable"):
        run([*argv, "--overwrite"])
    assert (out / "model.safetensors").exists()


def test_a_second_run_on_a_locked_folder_is_refused(finished, tmp_path):
    import fcntl

    out, argv = _copy(finished, tmp_path)
    with open(out / ".ccnn-run.lock", "a+") as held:  # another run holds the folder
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UserError, match="is in use by another ccnn-train run"):
            run([*argv, "--overwrite"])
    assert (out / "model.safetensors").exists() and (out / "results.json").exists()


def test_a_planted_lock_link_leaves_its_target_untouched(tmp_path):
    victim = write(tmp_path / "victim.txt", "IMPORTANT\n")
    _link(tmp_path / "d" / ".ccnn-run.lock", Path("../victim.txt"))
    with pytest.raises(UserError, match=r"d/\.ccnn-run\.lock is a symbolic link"):
        run(["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", str(tmp_path / "d")])
    assert victim.read_text() == "IMPORTANT\n"


def test_links_planted_at_temporary_and_log_names_are_never_written_through(tmp_path):
    """The old fixed temporary names (``.name.tmp-PID``, ``.tmp-model``, the plot's and card's) and
    a finished run's own names, planted as links by someone who can write into the folder before
    a --resume: every target stays as it was, and every file lands in the folder."""
    import os

    out = tmp_path / "out"
    argv = ["--dataset", "digits", *TINY, "--max_steps", "2", "--save_steps", "1", "--output_dir", str(out)]
    run(argv)
    reset_accelerate()
    shutil.rmtree(out / "checkpoints" / "step_00000002")  # resumed from step 1, it saves step 2 again
    victims = tmp_path / "victims"
    victims.mkdir()
    pid = os.getpid()
    for name in ("results.json", ".ccnn-run.json", "metrics.jsonl"):
        folder = out / "logs" if name == "metrics.jsonl" else out
        (folder / f".{name}.tmp-{pid}").symlink_to(write(victims / name, "keep"))
    (out / "logs" / ".metrics.jsonl.tmp").symlink_to(write(victims / "log", "keep"))
    (out / ".README.md.tmp").symlink_to(write(victims / "card", "keep"))
    (out / ".accuracy_vs_resolution.png.tmp.png").symlink_to(write(victims / "plot", "keep"))
    (out / ".tmp-model").symlink_to(_folder(victims / "model"))
    write(victims / "model" / "config.json", "keep")
    (out / "checkpoints" / ".tmp-step_00000002").symlink_to(_folder(victims / "checkpoint"))
    run([*argv, "--resume"])
    assert all(p.read_text() == "keep" for p in victims.rglob("*") if p.is_file())
    assert sorted(p.name for p in victims.rglob("*")) == sorted(
        ["results.json", ".ccnn-run.json", "metrics.jsonl", "log", "card", "plot", "model", "config.json", "checkpoint"]
    )
    assert json.loads((out / "results.json").read_text())["steps"] == 2
    assert (out / "checkpoints" / "step_00000002" / "trainer_state.json").is_file()


@pytest.mark.parametrize("planted", ["checkpoints", "logs", "metrics"])
def test_a_planted_subfolder_or_log_link_is_refused_on_resume(finished, tmp_path, planted):
    out, argv = _copy(finished, tmp_path)
    elsewhere = _folder(tmp_path / "elsewhere")
    if planted == "metrics":
        (out / "logs" / "metrics.jsonl").unlink()
        (out / "logs" / "metrics.jsonl").symlink_to(write(elsewhere / "victim.txt", "keep"))
        name = r"logs/metrics\.jsonl"
    else:
        shutil.copytree(out / planted, elsewhere / planted)
        shutil.rmtree(out / planted)
        (out / planted).symlink_to(elsewhere / planted)
        name = planted
    with pytest.raises(UserError, match=rf"run/{name} is a symbolic link"):
        run([*argv, "--resume"])
    assert all(p.is_symlink() or "victim" not in p.name or p.read_text() == "keep" for p in elsewhere.rglob("*"))


def test_the_lock_is_removed_when_a_run_ends(tmp_path, monkeypatch):
    import ccnn_hf.training.train

    out = tmp_path / "out"
    argv = ["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", str(out)]
    run(argv)
    assert not (out / ".ccnn-run.lock").exists()

    def diverges(self):
        assert (out / ".ccnn-run.lock").read_text().startswith("pid ")  # held while the run works
        raise UserError("training stopped")

    monkeypatch.setattr(ccnn_hf.training.train.Trainer, "train", diverges)
    reset_accelerate()
    with pytest.raises(UserError, match="training stopped"):  # a run that fails removes it too
        run([*argv, "--overwrite"])
    assert not (out / ".ccnn-run.lock").exists()


def test_a_lock_taken_on_a_file_removed_meanwhile_is_taken_again(tmp_path, monkeypatch):
    """Run A ends and removes its lock file between run B's open and flock: B must not hold a
    lock on the removed file (a run C would create and lock a new one beside it)."""
    import fcntl
    import os

    from ccnn_hf.training.output import acquire_lock

    real_flock, calls = fcntl.flock, []

    def ending_run_removes_the_file(fd, operation):
        calls.append(fd)
        if len(calls) == 1:
            (tmp_path / ".ccnn-run.lock").unlink()
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", ending_run_removes_the_file)
    lock = acquire_lock(tmp_path)
    assert len(calls) == 2
    assert os.fstat(lock.fd).st_ino == os.stat(tmp_path / ".ccnn-run.lock").st_ino
    with pytest.raises(UserError, match="is in use by another ccnn-train run"):
        acquire_lock(tmp_path)
    lock.close()
    assert not (tmp_path / ".ccnn-run.lock").exists()


def test_init_from_writes_the_projects_own_auto_map(finished, tmp_path):
    """A foreign folder's auto_map (code the new run does not carry) must not reach the new config.json."""
    source, _ = finished
    folder = tmp_path / "foreign"
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    own = config["auto_map"]
    config["auto_map"] = {**own, "AutoModel": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    run(
        ["--dataset", "digits", "--init_from", str(folder), "--report_to", "none", "--max_steps", "1"]
        + ["--output_dir", str(out), "--eval_resolutions", "1x"]
    )
    assert json.loads((out / "config.json").read_text())["auto_map"] == own


def test_init_from_nan_weights_is_refused_naming_the_tensor(finished, tmp_path):
    from safetensors.torch import load_file, save_file

    source, _ = finished
    folder = tmp_path / "nan"
    shutil.copytree(source, folder)
    state = load_file(folder / "model.safetensors")
    state["classifier.bias"] = torch.full_like(state["classifier.bias"], float("nan"))
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(
        UserError, match=r"--init_from .*nan: model\.safetensors is unusable: classifier\.bias holds NaN"
    ):
        run(
            ["--dataset", "digits", "--init_from", str(folder), "--report_to", "none", "--max_steps", "1"]
            + ["--output_dir", str(tmp_path / "out")]
        )


def _grown(root: Path, extra: int) -> Path:
    """``root``'s image folder with ``extra`` more training images per class."""
    for label, value in (("dark", 40), ("light", 200)):
        for i in range(extra):
            (root / "train" / label / f"new{i}.png").write_bytes(_png(value - 20 + 3 * i))
    return root


def test_resume_on_changed_data_is_refused_naming_the_change(tmp_path):
    data = image_folder(tmp_path / "imgs")
    out = tmp_path / "out"
    argv = ["--dataset", str(data), *TINY, "--max_steps", "4", "--save_steps", "1", "--output_dir", str(out)]
    run(argv)
    reset_accelerate()
    shutil.rmtree(out / "checkpoints" / "step_00000004")  # as if killed after step 3
    before = (out / "model.safetensors").read_bytes()
    _grown(data, 6)
    with pytest.raises(
        UserError,
        match=r"--resume: the data differs from the run's .*\(train samples 12 -> 24\); resume on the run's data, "
        r"start a new run \(--overwrite\), or pass --resume_changed_data",
    ):
        run([*argv, "--resume"])
    assert (out / "model.safetensors").read_bytes() == before
    (data / "train" / "dark" / "new0.png").unlink()
    (data / "train" / "light" / "new0.png").unlink()
    for i in range(1, 6):  # back to 12 training images, one of them different
        (data / "train" / "dark" / f"new{i}.png").unlink()
        (data / "train" / "light" / f"new{i}.png").unlink()
    (data / "train" / "dark" / "0.png").write_bytes(_png(90))
    reset_accelerate()
    with pytest.raises(
        UserError, match=r"\(the train samples' contents; the test samples' contents\)"
    ):  # normalised with the train statistics
        run([*argv, "--resume"])
    reset_accelerate()
    results = run([*argv, "--resume", "--resume_changed_data"])  # said explicitly: continues on the new data
    assert results["steps"] == 4 and results["train_samples"] == 12


def test_resuming_a_finished_run_changes_nothing(finished, tmp_path):
    from safetensors.torch import load_file

    out, argv = _copy(finished, tmp_path)
    before = load_file(out / "model.safetensors")
    log = (out / "logs" / "metrics.jsonl").read_text()
    run([*argv, "--resume"])
    after = load_file(out / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (out / "logs" / "metrics.jsonl").read_text() == log


# -- disk and interrupted writes ----------------------------------------------------------------------


def test_full_disk_while_saving_the_model_is_one_clear_error(tmp_path, monkeypatch):
    import transformers.modeling_utils

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", no_space)
    out = tmp_path / "out"
    with pytest.raises(UserError, match="could not write the trained model to .*out: No space left on device"):
        run(["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", str(out)])
    assert not (out / "model.safetensors").exists() and not (out / "results.json").exists()


def test_full_disk_reported_by_cpp_while_checkpointing_is_one_clear_error(tmp_path, monkeypatch):
    import accelerate.utils.other
    import shutil as shutil_module

    def cpp_failure(*args, **kwargs):
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(accelerate.utils.other, "safe_save_file", cpp_failure)
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: shutil_module._ntuple_diskusage(100, 100, 0))
    with pytest.raises(UserError, match="could not write the checkpoint of step 1 to .*: the disk is full"):
        run(["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", str(tmp_path / "out")])


def test_a_runtime_error_with_free_disk_space_stays_a_bug(tmp_path, monkeypatch):
    import accelerate.utils.other

    def bug(*args, **kwargs):
        raise RuntimeError("an actual bug")

    monkeypatch.setattr(accelerate.utils.other, "safe_save_file", bug)
    with pytest.raises(RuntimeError, match="an actual bug") as info:
        run(["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", str(tmp_path / "out")])
    assert not isinstance(info.value, UserError)


class Interrupted(BaseException):
    """A kill in the middle of writing the model."""


def test_an_interrupted_model_write_never_leaves_a_complete_looking_folder(tmp_path, monkeypatch):
    import transformers.modeling_utils

    real = transformers.modeling_utils.safe_save_file

    def half_then_killed(tensors, filename, *args, **kwargs):
        Path(filename).write_bytes(b"half a model")
        raise Interrupted

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", half_then_killed)
    out = tmp_path / "out"
    argv = ["--dataset", "digits", *TINY, "--max_steps", "2", "--output_dir", str(out)]
    with pytest.raises(Interrupted):
        run(argv)
    assert not (out / "model.safetensors").exists() and not (out / "results.json").exists()
    assert json.loads((out / ".ccnn-run.json").read_text())["status"] == "running"
    reset_accelerate()
    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", real)
    run([*argv, "--resume"])  # the checkpoint of the last step is complete: resuming only writes the model
    assert json.loads((out / ".ccnn-run.json").read_text())["status"] == "complete"
    from transformers import AutoModelForImageClassification

    assert AutoModelForImageClassification.from_pretrained(out).config.num_labels == 10


# -- non-finite data and losses -----------------------------------------------------------------------


def _with_nan_sample(monkeypatch, index: int) -> None:
    import ccnn_hf.training.train as train

    real = train.load_task_data

    def poisoned(*args, **kwargs):
        task = real(*args, **kwargs)
        task.train.inputs[index, 0, 3, 3] = float("nan")
        return task

    monkeypatch.setattr(train, "load_task_data", poisoned)


def test_a_nan_sample_is_named_before_training(tmp_path, monkeypatch):
    _with_nan_sample(monkeypatch, 17)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"digits train sample\(s\) \[17\] hold non-finite values"):
        run(["--dataset", "digits", *TINY, "--max_steps", "2", "--output_dir", str(out)])
    assert not out.exists()


def _nan_at_third_batch(monkeypatch) -> None:
    """The third training batch's loss is NaN and its second sample's logits infinite."""
    from ccnn_hf.modeling_ccnn import CCNNForImageClassification

    real_forward = CCNNForImageClassification.forward
    calls = {"n": 0}

    def forward(self, pixel_values=None, labels=None, **kwargs):
        output = real_forward(self, pixel_values=pixel_values, labels=labels, **kwargs)
        calls["n"] += 1
        if self.training and calls["n"] == 3:
            output.logits[1, 0] = float("inf")
            output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(CCNNForImageClassification, "forward", forward)


def test_a_non_finite_loss_stops_the_run_naming_step_and_samples(tmp_path, monkeypatch):
    _nan_at_third_batch(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(
        UserError,
        match=r"training stopped at step 3 \(epoch 0\): the loss is nan; non-finite outputs "
        r"for digits training sample\(s\) \[\d+\].*last checkpoint: step_00000002",
    ):
        run(["--dataset", "digits", *TINY, "--max_steps", "5", "--save_steps", "2", "--output_dir", str(out)])
    assert not (out / "model.safetensors").exists() and not (out / "results.json").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002"]


def test_losses_read_back_in_groups_stop_before_the_next_checkpoint(tmp_path, monkeypatch):
    # on an accelerator the losses are read every few steps: the step that diverged is still named,
    # and the checkpoint due after it is not written
    import ccnn_hf.training.train as train

    monkeypatch.setattr(train, "loss_sync_steps", lambda device: 8)
    _nan_at_third_batch(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(
        UserError, match=r"training stopped at step 3 \(epoch 0\): the loss is nan; non-finite outputs for digits"
    ):
        run(["--dataset", "digits", *TINY, "--max_steps", "9", "--save_steps", "2", "--output_dir", str(out)])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002"]


@pytest.mark.parametrize("budget", [[], ["--time_limit", "1000"]], ids=["epochs", "time_limit"])
def test_losses_read_back_in_groups_log_every_step_as_read_one_by_one(tmp_path, monkeypatch, budget):
    # --time_limit reads the pending losses back at the warm-up batches and before fitting the budget
    import ccnn_hf.training.train as train

    args = ["--dataset", "digits", *TINY, "--epochs", "2", "--save_steps", "5", *budget]
    run([*args, "--output_dir", str(tmp_path / "each")])
    monkeypatch.setattr(train, "loss_sync_steps", lambda device: 4)
    run([*args, "--output_dir", str(tmp_path / "grouped")])
    logs = [(tmp_path / name / "logs" / "metrics.jsonl").read_text() for name in ("each", "grouped")]
    records = [json.loads(line) for line in logs[1].splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 45))  # 22 steps per epoch
    assert logs[0] == logs[1]  # same records, same order (each epoch's test after its steps)


def test_a_model_with_non_finite_statistics_is_never_saved(tmp_path, monkeypatch):
    import ccnn_hf.training.train as train

    def poison(model, dataset, batch_size):
        next(b for n, b in model.named_buffers() if "running_var" in n).fill_(float("nan"))
        return 0

    monkeypatch.setattr(train, "adapt_batch_norm", poison)
    with pytest.raises(UserError, match="non-finite weights or statistics .*running_var.*nothing was saved"):
        run(["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "model.safetensors").exists()


# -- verified correct results -----------------------------------------------------------------------


def test_max_steps_one_runs_exactly_one_step(tmp_path):
    results = run(["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", str(tmp_path / "out")])
    assert results["steps"] == 1
    assert [json.loads(r)["step"] for r in (tmp_path / "out" / "logs" / "metrics.jsonl").read_text().splitlines()] == [
        1
    ]


def test_an_image_folder_is_rgb_when_any_image_has_colour(tmp_path):
    from ccnn_hf.data.tasks import load_task_data

    folder = image_folder(tmp_path / "imgs", modes={"train/light/5.png": "RGB"})  # the first files are all grey
    task = load_task_data(str(folder))
    assert task.in_channels == 3 and task.train.inputs.shape[1] == 3 and task.test.inputs.shape[1] == 3
    assert load_task_data(str(image_folder(tmp_path / "grey"))).in_channels == 1


def test_a_short_run_scales_the_presets_warm_up(tmp_path, capsys):
    run(["--dataset", "digits", *TINY, "--epochs", "35", "--max_steps", "40", "--output_dir", str(tmp_path / "out")])
    assert "warm-up: 1 steps, the preset's 5 of 350 epochs scaled to this run's 40 steps" in capsys.readouterr().out
    lrs = [
        json.loads(r)["lr"]
        for r in (tmp_path / "out" / "logs" / "metrics.jsonl").read_text().splitlines()
        if "lr" in json.loads(r)
    ]
    assert max(lrs) > 0.9 * 0.01  # the preset's peak learning rate is reached


def test_a_warm_up_as_long_as_the_run_is_warned_about(tmp_path, capsys):
    run(["--dataset", "digits", *TINY, "--max_steps", "2", "--warmup", "1", "--output_dir", str(tmp_path / "out")])
    assert "warning: --warmup 1 epochs is 22 steps, as long as the whole run (2 steps)" in capsys.readouterr().out


def test_skipped_evaluation_points_are_reported_with_the_reason(tmp_path, capsys):
    results = run(
        [
            "--dataset",
            "digits_seq",
            "--preset",
            "smnist_4_140",
            *TINY[:-2],
            "--max_steps",
            "1",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    notes = [
        f"at {f} skipped: digits_seq: sequence length {n} is not the square of an image side"
        for f, n in (("0.5x", 32), ("2x", 128))
    ]
    printed = capsys.readouterr().out
    assert results["skipped_evaluations"] == notes and all(f"evaluation {n}" in printed for n in notes)
    assert {r["setting"] for r in results["evaluation"]} == {"64"}


def test_the_card_and_the_log_name_the_real_output_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", "runs/quick"])
    folder = (tmp_path / "runs" / "quick").resolve()
    assert f"saved to {folder}" in capsys.readouterr().out
    card = (folder / "README.md").read_text()
    assert f'from_pretrained("{folder}")' in card and "local/" not in card


def test_main_prints_one_line_and_exits_2_for_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--dataset", "digits", *TINY, "--labels", "1,1", "--output_dir", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ccnn-train: error: --labels '1,1'") and err.count("\n") == 1 and "Traceback" not in err


def test_main_keeps_the_traceback_of_a_bug(tmp_path, monkeypatch):
    import ccnn_hf.training.train as train

    def bug(*args, **kwargs):
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr(train, "build_model", bug)
    with pytest.raises(KeyError, match="a bug"):
        main(["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", str(tmp_path / "out")])


def test_spoken_digits_without_espeak_is_one_clear_error(tmp_path, monkeypatch):
    import ccnn_hf.data.spoken as spoken

    monkeypatch.setattr(spoken.shutil, "which", lambda name: None)
    spoken.espeak_version.cache_clear()
    with pytest.raises(
        UserError, match="--dataset spoken_digits: the spoken_digits dataset needs the espeak-ng program"
    ):
        run(
            [
                "--dataset",
                "spoken_digits",
                "--preset",
                "sc_raw_4_140",
                *TINY,
                "--max_steps",
                "1",
                "--dataset_option",
                "n_train=10",
                "--output_dir",
                str(tmp_path / "out"),
            ]
        )
    spoken.espeak_version.cache_clear()


def test_a_config_may_give_dataset_options_as_a_mapping(tmp_path):
    from ccnn_hf.training.args import dataset_options, parse_args

    config = write(tmp_path / "run.yaml", "dataset: mnist1d\ndataset_option: {n_train: 200, length: 40}\n")
    args = parse_args(["--config", str(config)])
    assert dataset_options(args.dataset_option) == {"n_train": 200, "length": 40}


def test_a_lock_left_by_a_run_that_failed_at_once_does_not_block_the_folder(tmp_path):
    out = tmp_path / "out"
    write(out / ".ccnn-run.lock", "pid 12345\n")  # no marker: the run failed before it wrote anything
    results = run(["--dataset", "digits", *TINY, "--max_steps", "1", "--output_dir", str(out)])
    assert results["steps"] == 1


def test_a_failed_push_says_the_run_is_saved(tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    def offline(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(HfApi, "create_repo", offline)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"the run is saved in .*out, but pushing it to org/model failed"):
        run(
            [
                "--dataset",
                "digits",
                *TINY,
                "--max_steps",
                "1",
                "--output_dir",
                str(out),
                "--push_to_hub",
                "--hub_model_id",
                "org/model",
            ]
        )
    assert json.loads((out / ".ccnn-run.json").read_text())["status"] == "complete"
    assert (out / "results.json").exists()


def test_resume_of_a_run_written_before_an_option_existed(finished, tmp_path):
    """A marker without an option added to ccnn-train later (here --augment, --test_every) counts it
    at its default: the run resumes, and asking for another value is still refused."""
    out, argv = _copy(finished, tmp_path)
    marker = json.loads((out / ".ccnn-run.json").read_text())
    for option in ("augment", "test_every"):
        del marker["options"][option]
    (out / ".ccnn-run.json").write_text(json.dumps(marker))
    with pytest.raises(UserError, match=r"--resume with other options .*--augment True \(the run has False\)"):
        run([*argv, "--resume", "--augment"])
    run([*argv, "--resume"])
    assert json.loads((out / "results.json").read_text())["steps"] == 2


def test_sixteen_bit_greyscale_pngs_are_scaled_not_clipped(tmp_path):
    """A 16-bit PNG (PIL mode I;16) reads as the 8-bit picture it shows: 65535 is white, 32896 mid-grey
    (PIL's convert("L") clipped every value above 255 to white, and the run trained on blank images)."""
    from ccnn_hf.data.tasks import load_task_data

    def folder(root: Path, dtype, scale: int) -> Path:
        rng = np.random.default_rng(0)
        for split in ("train", "test"):
            for label in ("a", "b"):
                (root / split / label).mkdir(parents=True)
                for i in range(3):
                    pixels = rng.integers(0, 256, (8, 8))
                    Image.fromarray((pixels * scale).astype(dtype)).save(root / split / label / f"{i}.png")
        return root

    wide = load_task_data(str(folder(tmp_path / "wide", np.uint16, 257)))
    narrow = load_task_data(str(folder(tmp_path / "narrow", np.uint8, 1)))
    with Image.open(next((tmp_path / "wide").rglob("*.png"))) as image:
        assert image.mode == "I;16"
    assert wide.mean == narrow.mean and 0.3 < wide.mean[0] < 0.7
    assert torch.equal(wide.train.inputs, narrow.train.inputs)
    assert torch.equal(wide.test.inputs, narrow.test.inputs)


def test_a_non_finite_test_loss_is_recorded_as_null_not_nan():
    """results.json and metrics.jsonl are JSON, which has no NaN: a test split on which the model
    gives a non-finite output gets loss None (null); the accuracy is still counted."""
    from types import SimpleNamespace

    from ccnn_hf.training.evaluate import accuracy

    class Head(torch.nn.Module):
        main_input_name = "pixel_values"

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, pixel_values):
            logits = torch.stack([pixel_values.flatten(1).sum(1), -pixel_values.flatten(1).sum(1)], dim=1)
            return SimpleNamespace(logits=logits * self.scale)

    x = torch.ones(4, 1, 2, 2)
    x[3, 0, 0, 0] = float("inf")
    acc, loss = accuracy(Head(), x, torch.tensor([0, 0, 1, 0]), False, 2)
    assert acc == 0.75 and loss is None
    acc, loss = accuracy(Head(), x[:3], torch.tensor([0, 0, 1]), False, 2)
    assert loss is not None and abs(acc - 2 / 3) < 1e-9


# == issue 27: faults that ended in a traceback ======================================================
# Each row breaks one thing (the disk, a checkpoint file, the data, the user's patience) and states
# the outcome: "user" a UserError matching ``match`` (main prints it as one line, exit status 2),
# "main" the exit status and one stderr line of ``main``, "ok" a run that succeeds with a correct result.


@dataclass(frozen=True)
class Fault:
    id: str
    setup: Callable[[Path, pytest.MonkeyPatch, tuple[Path, list[str]]], list[str]]  # -> argv
    kind: str
    match: str
    check: Callable[..., None] | None = None  # "ok": (tmp, results); "main": (tmp, argv)


def _fail_opening(monkeypatch, name: str, code: int) -> None:
    """Opening any file called ``name`` fails with ``code``, through open(), Path.open and os.open."""
    import builtins
    import os

    def failing(real):
        def wrapper(file, *args, **kwargs):
            if Path(os.fsdecode(file)).name == name:
                raise OSError(code, os.strerror(code), str(file))
            return real(file, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", failing(builtins.open))
    monkeypatch.setattr(os, "open", failing(os.open))
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: failing(io.open)(self, *a, **k))


def _fresh(tmp: Path, *extra: str) -> list[str]:
    return [
        "--dataset",
        "digits",
        *TINY,
        "--max_steps",
        "2",
        "--save_steps",
        "1",
        "--output_dir",
        str(tmp / "out"),
        *extra,
    ]


def lock_fails(code: int):
    def setup(tmp, monkeypatch, finished):
        (tmp / "out").mkdir()  # the folder exists: only the lock file cannot be created
        _fail_opening(monkeypatch, ".ccnn-run.lock", code)
        return _fresh(tmp)

    return setup


def metrics_log_fails(code: int):
    def setup(tmp, monkeypatch, finished):
        _fail_opening(monkeypatch, "metrics.jsonl", code)
        return _fresh(tmp)

    return setup


def checkpoint_write_fails(message: str):
    def setup(tmp, monkeypatch, finished):
        import accelerate.utils.other
        from safetensors import SafetensorError

        def native_failure(*args, **kwargs):
            raise SafetensorError(message)

        monkeypatch.setattr(accelerate.utils.other, "safe_save_file", native_failure)
        return _fresh(tmp)

    return setup


def damaged_checkpoint(name: str, damage: Callable[[bytes], bytes]):
    """``--resume`` of a copy of the finished run whose newest checkpoint's ``name`` went through ``damage``."""

    def setup(tmp, monkeypatch, finished):
        out, argv = _copy(finished, tmp)
        path = out / "checkpoints" / "step_00000002" / name
        path.write_bytes(damage(path.read_bytes()))
        return [*argv, "--resume"]

    return setup


class _Code:
    """A pickle that would run a command when unpickled."""

    def __reduce__(self):
        return __import__("os").system, ("echo unpickled > /dev/null",)


def _malicious_optimizer(data: bytes) -> bytes:
    buffer = io.BytesIO()
    torch.save({"state": {}, "param_groups": [], "hook": _Code()}, buffer)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def bomb_in_image_folder(tmp, monkeypatch, finished):
    folder = image_folder(tmp / "imgs", broken={"train/dark/2.png": _png_claiming(20000, 20000)})
    return on(lambda t: folder)(tmp)


def poisoned_cache(tmp, monkeypatch, finished):
    """A generated dataset's cache file replaced by one that lacks the arrays it should hold."""
    from ccnn_hf.data import load_builtin

    monkeypatch.setenv("CCNN_HF_CACHE", str(tmp / "cache"))
    load_builtin("mnist1d", n_train=64, n_test=16)
    (cached,) = (tmp / "cache").glob("mnist1d-*.npz")
    np.savez(cached, train_signals=np.zeros((3, 72), dtype=np.float32))
    return [
        "--dataset",
        "mnist1d",
        "--preset",
        "smnist_4_140",
        *TINY[:-2],
        "--max_steps",
        "1",
        "--dataset_option",
        "n_train=64",
        "--dataset_option",
        "n_test=16",
        "--output_dir",
        str(tmp / "out"),
    ]


def check_poisoned_cache(tmp: Path, results: dict) -> None:
    from ccnn_hf.data import load_builtin

    assert results["train_samples"] == 64 and results["test_samples"] == 16
    (cached,) = (tmp / "cache").glob("mnist1d-*.npz")
    with np.load(cached) as stored:  # rebuilt, so that the next load is complete again
        assert sorted(stored.files) == ["test_labels", "test_signals", "train_labels", "train_signals"]
    assert load_builtin("mnist1d", n_train=64, n_test=16).train.inputs.shape == (64, 1, 40)


def interrupted_after_step(step: int):
    """Ctrl-C right after the checkpoint of ``step`` is written."""

    def setup(tmp, monkeypatch, finished):
        import ccnn_hf.training.train as train

        real = train.save_checkpoint

        def save_then_interrupt(accelerator, root, at, state, keep):
            folder = real(accelerator, root, at, state, keep)
            if at == step:
                raise KeyboardInterrupt
            return folder

        monkeypatch.setattr(train, "save_checkpoint", save_then_interrupt)
        return _fresh(tmp, "--max_steps", "4")

    return setup


def interrupted_again_while_resuming(tmp, monkeypatch, finished):
    """Ctrl-C after step 2, then again after step 3 of the --resume that continues it."""
    argv = interrupted_after_step(2)(tmp, monkeypatch, finished)
    with pytest.raises(KeyboardInterrupt):
        run(argv)
    reset_accelerate()
    interrupted_after_step(3)(tmp, monkeypatch, finished)
    return [*argv, "--resume"]


def _resumes_to_the_end(argv: list[str], steps: int) -> None:
    """The command the interrupted run's message gives, run: it finishes the run."""
    assert run([*argv, "--resume"])["steps"] == steps


def with_memory(available: int, argv: Callable[[Path], list[str]]):
    """``argv`` on a machine with ``available`` bytes of memory free (so that the refusals do not
    depend on the machine running the tests)."""

    def setup(tmp, monkeypatch, finished):
        import ccnn_hf.data.memory as memory

        monkeypatch.setattr(memory, "available_memory", lambda device=None: available)
        return argv(tmp)

    return setup


GB, MB = 10**9, 10**6


def _evaluated_at(results: dict, settings: set[str], skipped: str) -> None:
    assert {r["setting"] for r in results["evaluation"]} == settings
    assert [note.split("; choose")[0] for note in results["skipped_evaluations"]] == [skipped]


NOT_FREE_SPACE = r"(?!.*free some space)"  # a read-only or forbidden place is not a full disk
FAULTS = [
    Fault(
        "lock_on_read_only_file_system",
        lock_fails(errno.EROFS),
        "user",
        NOT_FREE_SPACE + r"could not write the run's lock file to .*out: Read-only file system \(the file system "
        r"is mounted read-only; choose another --output_dir\)",
    ),
    Fault(
        "lock_in_immutable_folder",
        lock_fails(errno.EPERM),
        "user",
        NOT_FREE_SPACE + r"lock file to .*out: Operation not permitted \(the folder or file is read-only or immutable",
    ),
    Fault(
        "lock_in_forbidden_folder",
        lock_fails(errno.EACCES),
        "user",
        NOT_FREE_SPACE + r"lock file to .*out: Permission denied \(the folder or file is read-only or immutable",
    ),
    Fault(
        "metrics_log_disk_full",
        metrics_log_fails(errno.ENOSPC),
        "user",
        r"could not write the metrics log to .*out/logs: No space left on device \(free some space",
    ),
    Fault(
        "metrics_log_quota",
        metrics_log_fails(errno.EDQUOT),
        "user",
        r"could not write the metrics log to .*logs: Disk quota exceeded \(free some space",
    ),
    Fault(
        "checkpoint_disk_full_safetensors",
        checkpoint_write_fails("Error while serializing: I/O error: No space left on device (os error 28)"),
        "user",
        r"could not write the checkpoint of step 1 to .*checkpoints: No space left on device \(free some space",
    ),
    Fault(
        "checkpoint_read_only_safetensors",
        checkpoint_write_fails("Error while serializing: I/O error: Read-only file system (os error 30)"),
        "user",
        NOT_FREE_SPACE + r"checkpoint of step 1 to .*checkpoints: Read-only file system \(the file system is mounted",
    ),
    Fault(
        "resume_zero_byte_optimizer",
        damaged_checkpoint("optimizer.bin", lambda data: b""),
        "user",
        r"cannot resume from checkpoint .*step_00000002: optimizer.bin is empty \(0 bytes\): the checkpoint is "
        r"truncated.*delete that checkpoint folder",
    ),
    Fault(
        "resume_truncated_optimizer",
        damaged_checkpoint("optimizer.bin", lambda data: data[: len(data) // 2]),
        "user",
        r"^(?!.*does not fit the model)cannot resume from checkpoint .*step_00000002: optimizer.bin is truncated "
        r"or corrupt",
    ),
    Fault(
        "resume_zero_byte_model",
        damaged_checkpoint("model.safetensors", lambda data: b""),
        "user",
        r"step_00000002: model.safetensors is empty \(0 bytes\)",
    ),
    Fault(
        "resume_truncated_model",
        damaged_checkpoint("model.safetensors", lambda data: data[: len(data) // 2]),
        "user",
        r"step_00000002: model.safetensors is truncated or corrupt \(SafetensorError",
    ),
    Fault(
        "resume_malicious_optimizer",
        damaged_checkpoint("optimizer.bin", _malicious_optimizer),
        "user",
        r"step_00000002: optimizer.bin holds objects other than tensors, which the safe loader refuses; it was "
        r"not loaded",
    ),
    Fault(
        "decompression_bomb_png",
        bomb_in_image_folder,
        "user",
        r"imgs/train/dark/2.png is refused as a possible decompression bomb \(Image size \(400000000 pixels\)",
    ),
    Fault("dataset_cache_missing_arrays", poisoned_cache, "ok", "", check_poisoned_cache),
    Fault(
        "image_size_beyond_memory",
        with_memory(16 * GB, digits("--image_size", "100000")),
        "user",
        r"^--image_size 100000: the 1797 digits images at 100000x100000 would take at least 144 TB, more than "
        r"the 16 GB of memory available; choose a smaller size$",
    ),
    Fault(
        "image_size_beyond_memory_image_folder",
        with_memory(16 * GB, on(lambda t: image_folder(t / "imgs"), "--image_size", "100000")),
        "user",
        r"^--image_size 100000: 16 images at 100000x100000 would take at least 1.28 TB",
    ),
    Fault(
        "eval_resolution_beyond_memory",
        with_memory(16 * GB, digits("--eval_resolutions", "1x,100000")),
        "user",
        r"^--eval_resolutions 100000: the test set at 100000x100000 \(360 samples\) would take at least 28.8 TB, "
        r"more than the 16 GB of memory available",
    ),
    Fault(
        "train_resolution_beyond_memory",
        with_memory(16 * GB, digits("--train_resolutions", "8,100000")),
        "user",
        r"^--train_resolutions 8,100000: one training sample at 100000 \(100000x100000 values\) would take at "
        r"least 80 GB",
    ),
    Fault(
        "eval_activations_beyond_memory",  # the test set at 200x200 fits (115 MB), a batch of 128 through the model not
        with_memory(200 * MB, digits("--eval_resolutions", "1x,200")),
        "user",
        r"^--eval_resolutions 200x200: evaluating a batch of 128 at 200x200 with this model would take at least "
        r"266 MB, more than the 200 MB of memory available",
    ),
    Fault(
        "default_eval_point_beyond_memory_is_skipped",  # 2x (16x16): 1.7 MB for a batch of 128; 1x: 0.43 MB
        with_memory(
            MB, lambda tmp: ["--dataset", "digits", *TINY[:-2], "--max_steps", "1", "--output_dir", str(tmp / "out")]
        ),
        "ok",
        "",
        lambda tmp, results: _evaluated_at(
            results,
            {"4x4", "8x8"},
            "at 16x16 skipped: evaluating a batch of 128 at "
            "16x16 with this model would take at least 1.7 MB, more than the 1 MB of memory available",
        ),
    ),
    Fault(
        "train_activations_beyond_memory",
        with_memory(100 * MB, digits("--train_resolutions", "8,100")),
        "user",
        r"^--train_resolutions 100: a training step of 64 at 100x100 with this model would take at least 125 MB",
    ),
    Fault(
        "ctrl_c",
        interrupted_after_step(2),
        "main",
        r"^ccnn-train: interrupted; the run can continue from its last checkpoint .*out/checkpoints/step_00000002: "
        r"run the same command with --resume \(--output_dir .*out\)$",
        lambda tmp, argv: _resumes_to_the_end(argv, 4),
    ),
    Fault(
        "ctrl_c_while_resuming",
        interrupted_again_while_resuming,
        "main",
        r"^ccnn-train: interrupted; the run can continue from its last checkpoint .*out/checkpoints/step_00000003: "
        r"run the same command again$",
        lambda tmp, argv: _resumes_to_the_end(argv, 4),
    ),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_faults_end_in_one_clear_line_or_a_correct_result(fault: Fault, finished, tmp_path, monkeypatch, capsys):
    argv = fault.setup(tmp_path, monkeypatch, finished)
    if fault.kind == "user":
        with pytest.raises(UserError, match=fault.match):
            run(argv)
    elif fault.kind == "main":
        capsys.readouterr()
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 130
        err = capsys.readouterr().err
        assert err.endswith("\n") and re.search(fault.match, re.split(r"[\r\n]", err.rstrip("\n"))[-1])
        if fault.check:
            reset_accelerate()
            fault.check(tmp_path, argv)
    else:
        fault.check(tmp_path, run(argv))
