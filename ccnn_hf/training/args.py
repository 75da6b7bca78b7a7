"""Command-line and config-file arguments of ``ccnn-train``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from ..data import BUILTIN_DATASETS
from ..presets import get_preset
from ..settings import MIN_SIZE, Setting, override_flags
from .errors import UserError

__all__ = ["build_parser", "parse_args", "parse_labels", "quickstart_notice", "quickstart_keeps", "MODEL_OVERRIDES"]

# CLI flag -> CCNNConfig field, for overriding the preset: the settings with a ``flag`` in ccnn_hf.settings.
MODEL_OVERRIDES = {flag: setting.field for flag, setting in override_flags().items()}


def _number(kind: type, low: float, inclusive: bool, below: float = math.inf) -> Callable[[str], int | float]:
    """An argparse ``type``: a finite ``kind`` above ``low`` (or at least ``low`` when ``inclusive``)
    and below ``below``."""
    bound = f">= {low:g}" if inclusive else (f">= {low + 1:g}" if kind is int else f"> {low:g}")
    bound += f" and < {below:g}" if below < math.inf else ""

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if not math.isfinite(value) or value < low or (value == low and not inclusive) or value >= below:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a finite number'} {bound}, got {text!r}"
            )
        return value

    convert.__name__ = f"{kind.__name__} {bound}"
    return convert


POSITIVE_INT, POSITIVE, NON_NEGATIVE, COUNT = (
    _number(int, 0, False),
    _number(float, 0, False),
    _number(float, 0, True),
    _number(int, 0, True),
)
SEED = _number(int, 0, True, below=2**32)  # what numpy accepts
IMAGE_SIZE = _number(int, MIN_SIZE, True)
DROP_RATE = _number(float, 0, True, below=1)


def kernel_size(text: str) -> str:
    """An argparse ``type``: ``same`` or a positive number of taps (kept as text, as the model options take it)."""
    return text if text == "same" else str(POSITIVE_INT(text))


kernel_size.__name__ = "'same' or int >= 1"


def boolean(text: str) -> bool:
    """An argparse ``type``: true/false (also yes/no, 1/0)."""
    value = text.strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


boolean.__name__ = "true or false"


def _flag_options(setting: Setting) -> dict[str, Any]:
    """argparse options of a model override flag (values are checked by the settings' rules later)."""
    if setting.choices is not None:
        return dict(choices=list(setting.choices), help=setting.help)
    if setting.type == "kernel_size":
        return dict(type=kernel_size, help=setting.help)
    if setting.type is bool:
        return dict(type=boolean, metavar="{true,false}", help=setting.help)
    return dict(type=setting.type, help=setting.help)


OUTPUT_GROUP = "output (these, --seed and --cpu keep the quickstart)"
# Given alone (without --config), the options of OUTPUT_GROUP and these keep the quickstart: none
# changes its data, model or recipe (quickstart_keeps).
QUICKSTART_ALSO_KEEPS = ("seed", "cpu")
DEFAULT_PRESET = "cifar10_4_140"


def _preset_epochs(name: str) -> str:
    return f"{get_preset(name).train['epochs']:g}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ccnn-train",
        description="Train a Continuous CNN with Accelerate and evaluate it across resolutions. "
        "Run directly, or under `accelerate launch` for several processes. Without arguments, or with "
        "only output options (the 'output' group below, --seed and --cpu), it runs the built-in "
        "quickstart (ccnn_hf/configs/quickstart.yaml: a 14k-parameter CCNN on 8x8 digits, 20 epochs, "
        "about a minute on a CPU). Any other option without --config trains the preset with its official "
        f"recipe ({DEFAULT_PRESET}: {_preset_epochs(DEFAULT_PRESET)} epochs) instead; the run prints its plan "
        "and estimated time at the start.",
    )
    p.add_argument(
        "--config",
        help="YAML or JSON file with any of these options (command-line flags win), or the name of a built-in "
        f"one: {', '.join(builtin_configs())} (ccnn_hf/configs/)",
    )
    g = p.add_argument_group("task")
    g.add_argument("--preset", default=DEFAULT_PRESET, help="CCNN preset (default: %(default)s)")
    g.add_argument(
        "--dataset",
        default="digits",
        help=f"built-in name ({', '.join(BUILTIN_DATASETS)}), aeon:NAME (a UCR/UEA archive shipped with aeon), "
        "imagefolder/audiofolder dir or zip, saved datasets folder, or Hub dataset id (default: %(default)s)",
    )
    g.add_argument("--dataset_config", help="Hub dataset configuration name")
    g.add_argument(
        "--dataset_option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option of a built-in dataset, e.g. n_train=2000 (repeatable)",
    )
    g.add_argument("--train_split", default="train", help="split to train on (default: %(default)s)")
    g.add_argument("--test_split", default="test", help="split to test on (default: %(default)s)")
    g.add_argument("--image_column", help="image column of an HF dataset")
    g.add_argument("--audio_column", help="audio column of an HF dataset")
    g.add_argument("--label_column", default="label", help="label column of an HF dataset (default: %(default)s)")
    g.add_argument("--image_size", type=IMAGE_SIZE, help="train on images resized to this size")
    g.add_argument("--sampling_rate", type=POSITIVE, help="train on audio resampled to this rate (Hz)")
    g.add_argument(
        "--train_resolutions",
        metavar="SET_OR_RANGE",
        help="multi-resolution training: each optimiser step at a setting drawn from this set (14,28) or "
        "range (14-28), rendered from the source data: image sides, or sampling rates in Hz for audio "
        "(the base setting, --image_size / --sampling_rate, stays what the model is saved and tested at)",
    )
    g.add_argument(
        "--augment",
        action="store_true",
        help="images: each training batch randomly cropped from its mirror-padded copy (padding 1/8 of "
        "the side: 4 px at 32x32) and flipped left-right with probability 1/2 (the official CIFAR-10 recipe; "
        "on by default where a CIFAR preset trains on CIFAR-10/100 data). Time series: each training series "
        "loses a random share (up to 30 %%) of its observed time points (random point dropout)",
    )
    g.add_argument("--no_augment", action="store_true", help="no augmentation, also where the preset's recipe has it")
    g.add_argument(
        "--clip_seconds",
        type=POSITIVE,
        default=1.0,
        help="audio clips are centre-cropped/padded to this (default: %(default)s)",
    )
    g.add_argument("--labels", help="comma-separated class indices to keep (renumbered in this order)")
    g.add_argument(
        "--max_samples", type=POSITIVE_INT, help="use at most this many samples per split (folders, HF datasets)"
    )
    g.add_argument(
        "--drop_rate",
        type=DROP_RATE,
        default=0.0,
        help="aeon:NAME archives: every series, train and test, "
        "independently loses this fraction of its time points (the irregular-sampling protocol; default 0)",
    )
    g.add_argument(
        "--drop_seed",
        type=SEED,
        default=0,
        help="seed of the dropped points, independent of --seed, so "
        "that every model compared sees the same points (default 0)",
    )
    g = p.add_argument_group("model (overrides of the preset)")
    for flag, setting in override_flags().items():
        g.add_argument(f"--{flag}", **_flag_options(setting))
    g.add_argument("--init_from", help="fine-tune from this folder or Hub id (transformers or timm format)")
    g.add_argument(
        "--timm_model",
        help="train this timm model (e.g. resnet18) instead, as a baseline with the same "
        "data, recipe and budget (the preset still supplies the recipe)",
    )
    g = p.add_argument_group("optimisation (defaults: the preset's official recipe)")
    g.add_argument(
        "--epochs",
        type=POSITIVE,
        help=f"training epochs (default: the preset's, e.g. {_preset_epochs(DEFAULT_PRESET)} for "
        f"{DEFAULT_PRESET}; the quickstart: 20)",
    )
    g.add_argument("--max_steps", type=POSITIVE_INT, help="stop after this many optimiser steps (overrides --epochs)")
    g.add_argument("--batch_size", type=POSITIVE_INT, help="per process")
    g.add_argument("--lr", type=POSITIVE)
    g.add_argument("--weight_decay", type=NON_NEGATIVE, help="weight of the official L2-norm penalty")
    g.add_argument("--warmup", type=NON_NEGATIVE, help="linear warm-up length in epochs")
    g.add_argument(
        "--time_limit",
        type=POSITIVE,
        help="training budget in seconds: after the first epoch the run is "
        "shortened to the epochs that fit (the schedule follows)",
    )
    g.add_argument("--grad_accum", type=POSITIVE_INT)
    g.add_argument(
        "--val_split",
        type=POSITIVE,
        help="the official evaluation protocol: hold out this fraction (0.1) or number (5000) of the training "
        "samples, stratified by class, the same for every seed; the weights of the best validation accuracy "
        "are tested and saved (default: off, the final weights)",
    )
    g.add_argument(
        "--patience",
        type=POSITIVE_INT,
        help="with --val_split: stop after this many epochs without a better validation accuracy "
        "(the budget stays a cap)",
    )
    g.add_argument(
        "--grad_clip", type=NON_NEGATIVE, default=0.0, help="max gradient norm (default 0: off, as official)"
    )
    g.add_argument("--seed", type=SEED, default=0, help="(default: %(default)s; keeps the quickstart)")
    g.add_argument(
        "--mixed_precision", choices=["no", "bf16", "fp16"], help="default: as `accelerate launch` says, else no"
    )
    g.add_argument(
        "--cpu", action="store_true", help="force the CPU (also for multi-process CPU runs; keeps the quickstart)"
    )
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training step on a GPU (CCNN: stem and blocks, one graph each, with CUDA "
        "graphs); the first steps pay for the compilation. On the CPU the steps stay eager and the run says so: "
        "compiled CCNN steps measured up to 1.27x slower than eager there, and at best 6 %% faster on the "
        "shortest sequences (benchmarks/results/training.md); "
        "CCNN_HF_COMPILE_CPU=1 compiles them anyway",
    )
    g.add_argument(
        "--gradient_checkpointing",
        action="store_true",
        help="keep only each block's input for the backward and recompute the rest "
        "(less memory for large inputs, about a third more compute per step)",
    )
    g = p.add_argument_group(OUTPUT_GROUP)
    g.add_argument(
        "--output_dir",
        default="runs/ccnn",
        help="folder of the model, results, logs and checkpoints "
        "(default: %(default)s; the quickstart: runs/quickstart)",
    )
    g.add_argument("--overwrite", action="store_true", help="replace a previous run in --output_dir")
    g.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    g.add_argument(
        "--resume_changed_data",
        action="store_true",
        help="with --resume: continue although the data differs from the run's (refused otherwise)",
    )
    g.add_argument("--save_steps", type=POSITIVE_INT, help="checkpoint every N optimiser steps (default: every epoch)")
    g.add_argument(
        "--save_total_limit", type=COUNT, default=2, help="checkpoints to keep (0: all; default: %(default)s)"
    )
    g.add_argument(
        "--test_every",
        type=POSITIVE_INT,
        default=1,
        help="test accuracy logged every N epochs (default 1; the final weights are always evaluated)",
    )
    g.add_argument(
        "--eval_resolutions",
        help="comma-separated: multiples ('0.5x,1x,2x') or sizes / Hz (default 0.5x,1x,2x; audio 1x,2x)",
    )
    g.add_argument(
        "--report_to",
        default="auto",
        choices=["auto", "tensorboard", "none"],
        help="'auto' (TensorBoard if installed), 'tensorboard' or 'none' (default: %(default)s)",
    )
    g.add_argument("--push_to_hub", action="store_true")
    g.add_argument("--hub_model_id", help="org/name of the Hub repo to push to")
    g.add_argument("--hub_private", action="store_true")
    return p


def _read_config(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"--config {path}: cannot read it ({error.strerror or error})") from None
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as error:  # yaml.YAMLError / json.JSONDecodeError: the file's own syntax
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"--config {path}: not valid {'YAML' if path.endswith(('.yaml', '.yml')) else 'JSON'} ({first})"
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"--config {path}: expected a mapping of option names to values")
    return data


def _config_value(action: argparse.Action, value: Any, where: str) -> Any:
    """``value`` from a config file, checked and converted as the command line would do it."""
    name = f"{where}: {action.dest}"
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise UserError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):  # a list of KEY=VALUE strings, or a mapping
        if isinstance(value, dict):
            return [f"{k}={json.dumps(v)}" for k, v in value.items()]
        return [str(v) for v in (value if isinstance(value, list) else [value])]
    if isinstance(value, (dict, list)):
        raise UserError(f"{name} must be a single value, got {value!r}")
    if action.type is not None:
        try:  # through str, as typed on a command line: 2.7 is no int, true is no number
            value = action.type(str(value))
        except (argparse.ArgumentTypeError, ValueError) as error:
            raise UserError(
                f"{name}: {error}"
                if isinstance(error, argparse.ArgumentTypeError)
                else f"{name}: expected {action.type.__name__}, got {value!r}"
            ) from None
    else:
        value = str(value)
    if action.choices is not None and value not in action.choices:
        raise UserError(f"{name} must be one of {', '.join(map(str, action.choices))}, got {value!r}")
    return value


CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUICKSTART = CONFIGS / "quickstart.yaml"


def builtin_configs() -> dict[str, Path]:
    """The configs shipped in ``ccnn_hf/configs/``, by name (``--config timeseries``)."""
    return {path.stem: path for path in sorted(CONFIGS.glob("*.yaml"))}


def config_path(value: str) -> str:
    """The file ``--config value`` reads: ``value`` itself, or the built-in config of that name
    when no such file exists."""
    builtin = builtin_configs()
    return str(builtin[value]) if value in builtin and not Path(value).exists() else value


def quickstart_keeps(parser: argparse.ArgumentParser) -> list[str]:
    """The options that, given without ``--config``, keep the quickstart: the output group's (where the
    run goes, how it reports and is evaluated), ``--seed`` and ``--cpu``: none changes the data, the model
    or the recipe."""
    group = next(g for g in parser._action_groups if g.title == OUTPUT_GROUP)
    return [a.dest for a in group._group_actions] + list(QUICKSTART_ALSO_KEEPS)


def given_options(argv: Sequence[str]) -> set[str]:
    """The options (their ``dest``) that ``argv`` gives, whatever their values."""
    probe = build_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS  # an option not given stays out of the namespace
    return set(vars(probe.parse_args(argv)))


def runs_quickstart(parser: argparse.ArgumentParser, given: set[str]) -> bool:
    """Whether the quickstart config fills in the options: no ``--config``, nothing but output options."""
    return given <= set(quickstart_keeps(parser))


def quickstart_notice(argv: Sequence[str] | None = None) -> str | None:
    """Why the quickstart does not run, for command lines that give other options without ``--config``
    (None for the quickstart and for config files): those runs train the preset's official recipe."""
    parser = build_parser()
    given = given_options(_command_line(argv))
    if "config" in given or runs_quickstart(parser, given):
        return None
    dropped = " ".join(f"--{name}" for name in sorted(given - set(quickstart_keeps(parser))))
    return (
        f"note: not the quickstart: {dropped} given without --config, so the preset and its official recipe "
        "set every option not given (only the output options of --help, --seed and --cpu keep the quickstart; "
        f"add --config {QUICKSTART} to start from it)"
    )


def _command_line(argv: Sequence[str] | None) -> list[str]:
    import sys

    return list(sys.argv[1:] if argv is None else argv)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse flags; values from ``--config`` fill in whatever the command line leaves unset (checked
    as if typed as flags). Without any argument, or with only output options (:func:`quickstart_keeps`),
    the built-in quickstart config fills them in (small CCNN on 8x8 digits); its ``overwrite`` then
    applies to its own folder only (not with ``--output_dir`` or ``--resume``)."""
    parser = build_parser()
    argv = _command_line(argv)
    args = parser.parse_args(argv)
    given = given_options(argv)
    quickstart = runs_quickstart(parser, given)
    if quickstart:
        args.config = str(QUICKSTART)
    if args.config:
        args.config = config_path(args.config)
        actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
        # --no_X negates --X: the one given on the command line wins over the other from the file
        opposites = {d: f"no_{d}" for d in actions if f"no_{d}" in actions}
        opposites.update({v: k for k, v in opposites.items()})
        for key, value in _read_config(args.config).items():
            key = str(key).replace("-", "_")
            if key not in actions:
                raise UserError(f"--config {args.config}: unknown option {key!r}")
            if value is None or key in given or opposites.get(key) in given:
                continue  # unset in the file, or given on the command line (itself or its opposite, any value)
            if quickstart and key == "overwrite" and given & {"output_dir", "resume"}:
                continue  # the quickstart replaces its own runs/quickstart, never a folder named by the user
            setattr(args, key, _config_value(actions[key], value, f"--config {args.config}"))
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id org/name")
    if args.hub_model_id:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(args.hub_model_id)
        except HFValidationError as error:
            parser.error(f"--hub_model_id {args.hub_model_id!r}: {str(error).splitlines()[0]}")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    if args.resume_changed_data and not args.resume:
        parser.error("--resume_changed_data applies to --resume")
    if args.augment and args.no_augment:
        parser.error("--augment and --no_augment exclude each other")
    if args.patience is not None and args.val_split is None:
        parser.error("--patience needs --val_split (the validation split it watches)")
    if args.compile and args.gradient_checkpointing:
        parser.error(
            "--gradient_checkpointing and --compile exclude each other (a compiled block cannot count "
            "its recomputation, which must not update BatchNorm statistics twice)"
        )
    return args


def parse_labels(text: str | None) -> list[int] | None:
    """``"3,1,2"`` -> ``[3, 1, 2]``; refuses non-integers, negatives and repeated classes."""
    if text is None:
        return None
    items = [t.strip() for t in str(text).split(",")]
    try:
        labels = [int(t) for t in items]
    except ValueError:
        raise UserError(f"--labels {text!r}: expected comma-separated class indices such as 0,1,2") from None
    repeated = sorted({v for v in labels if labels.count(v) > 1})
    if repeated:
        raise UserError(f"--labels {text!r} names class(es) {repeated} more than once; name each class once")
    return labels


def dataset_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``["n_train=200", "resolution=14"]`` -> ``{"n_train": 200, "resolution": 14}`` (JSON values when they parse)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--dataset_option expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options
