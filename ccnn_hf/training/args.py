"""Command-line and config-file arguments of ``ccnn-train``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from ..factory import ALIASES

__all__ = ["build_parser", "parse_args", "MODEL_OVERRIDES"]

# CLI flag -> CCNNConfig field, for overriding the preset (short flags spelled as build_ccnn's aliases).
MODEL_OVERRIDES = {flag: ALIASES.get(flag, flag) for flag in (
    "hidden", "blocks", "kernel_hidden", "kernel_size", "omega_0", "mask_init", "dropout", "dropout_in", "conv_impl",
    "init_scheme")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ccnn-train",
        description="Train a Continuous CNN with Accelerate and evaluate it across resolutions. "
        "Run directly, or under `accelerate launch` for several processes. Without arguments it runs "
        "the built-in quickstart (ccnn_hf/configs/quickstart.yaml: a small CCNN on 8x8 digits).",
    )
    p.add_argument("--config", help="YAML or JSON file with any of these options (command-line flags win)")
    g = p.add_argument_group("task")
    g.add_argument("--preset", default="cifar10_4_140", help="CCNN preset (default: %(default)s)")
    g.add_argument("--dataset", default="digits", help="built-in name, imagefolder/audiofolder dir or zip, saved "
                   "datasets folder, or Hub dataset id (default: %(default)s)")
    g.add_argument("--dataset_config", help="Hub dataset configuration name")
    g.add_argument("--dataset_option", action="append", default=[], metavar="KEY=VALUE",
                   help="option of a built-in dataset, e.g. n_train=2000 (repeatable)")
    g.add_argument("--train_split", default="train")
    g.add_argument("--test_split", default="test")
    g.add_argument("--image_column", help="image column of an HF dataset")
    g.add_argument("--audio_column", help="audio column of an HF dataset")
    g.add_argument("--label_column", default="label")
    g.add_argument("--image_size", type=int, help="train on images resized to this size")
    g.add_argument("--sampling_rate", type=float, help="train on audio resampled to this rate (Hz)")
    g.add_argument("--clip_seconds", type=float, default=1.0, help="audio clips are centre-cropped/padded to this")
    g.add_argument("--labels", help="comma-separated class indices to keep (renumbered in this order)")
    g.add_argument("--max_samples", type=int, help="use at most this many samples per split (folders, HF datasets)")
    g = p.add_argument_group("model (overrides of the preset)")
    g.add_argument("--hidden", type=int)
    g.add_argument("--blocks", type=int)
    g.add_argument("--kernel_hidden", type=int)
    g.add_argument("--kernel_size", help="taps at the base resolution, or 'same'")
    g.add_argument("--omega_0", type=float)
    g.add_argument("--mask_init", type=float)
    g.add_argument("--dropout", type=float)
    g.add_argument("--dropout_in", type=float)
    g.add_argument("--conv_impl", choices=["auto", "fft", "direct"])
    g.add_argument("--init_scheme", choices=["unit_variance", "official"])
    g.add_argument("--init_from", help="fine-tune from this folder or Hub id (transformers or timm format)")
    g.add_argument("--timm_model", help="train this timm model (e.g. resnet18) instead, as a baseline with the same "
                   "data, recipe and budget (the preset still supplies the recipe)")
    g = p.add_argument_group("optimisation (defaults: the preset's official recipe)")
    g.add_argument("--epochs", type=float)
    g.add_argument("--max_steps", type=int, help="stop after this many optimiser steps (overrides --epochs)")
    g.add_argument("--batch_size", type=int, help="per process")
    g.add_argument("--lr", type=float)
    g.add_argument("--weight_decay", type=float, help="weight of the official L2-norm penalty")
    g.add_argument("--warmup", type=float, help="linear warm-up length in epochs")
    g.add_argument("--time_limit", type=float, help="training budget in seconds: after the first epoch the run is "
                   "shortened to the epochs that fit (the schedule follows)")
    g.add_argument("--grad_accum", type=int)
    g.add_argument("--grad_clip", type=float, default=0.0, help="max gradient norm (0: off, as official)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--mixed_precision", choices=["no", "bf16", "fp16"],
                   help="default: as `accelerate launch` says, else no")
    g.add_argument("--cpu", action="store_true", help="force the CPU (also for multi-process CPU runs)")
    g.add_argument("--compile", action="store_true", help="torch.compile the training step (CCNN: stem and blocks, "
                   "one graph each; CUDA graphs on GPU); the first steps pay for the compilation")
    g = p.add_argument_group("output")
    g.add_argument("--output_dir", default="runs/ccnn")
    g.add_argument("--overwrite", action="store_true", help="replace a previous run in --output_dir")
    g.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    g.add_argument("--save_steps", type=int, help="checkpoint every N optimiser steps (default: every epoch)")
    g.add_argument("--save_total_limit", type=int, default=2)
    g.add_argument("--eval_resolutions", help="comma-separated: multiples ('0.5x,1x,2x') or sizes / Hz "
                   "(default 0.5x,1x,2x; audio 1x,2x)")
    g.add_argument("--report_to", default="auto", help="'auto' (TensorBoard if installed), 'tensorboard' or 'none'")
    g.add_argument("--push_to_hub", action="store_true")
    g.add_argument("--hub_model_id", help="org/name of the Hub repo to push to")
    g.add_argument("--hub_private", action="store_true")
    return p


def _read_config(path: str) -> dict[str, Any]:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values")
    return data


QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse flags; values from ``--config`` fill in whatever the command line leaves unset.
    Without any argument the built-in quickstart config runs (small CCNN on 8x8 digits)."""
    import sys

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv or ["--config", str(QUICKSTART)])
    if args.config:
        defaults = {a.dest: a.default for a in parser._actions}
        valid = set(defaults) - {"help", "config"}
        for key, value in _read_config(args.config).items():
            key = key.replace("-", "_")
            if key not in valid:
                parser.error(f"{args.config}: unknown option {key!r}")
            if getattr(args, key) == defaults[key]:
                setattr(args, key, value)
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id org/name")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    return args


def dataset_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``["n_train=200", "resolution=14"]`` -> ``{"n_train": 200, "resolution": 14}`` (JSON values when they parse)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--dataset_option expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options
