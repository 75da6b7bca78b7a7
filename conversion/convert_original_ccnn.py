#!/usr/bin/env python
"""Convert an official CCNN checkpoint (github.com/david-knigge/ccnn) into a transformers/timm folder.

    python conversion/convert_original_ccnn.py --checkpoint model.ckpt --preset cifar10_4_140 --output out/
    python conversion/convert_original_ccnn.py --checkpoint model.safetensors --preset smnist_4_140 \\
        --output out/ --push_to_hub --hub_model_id org/ccnn-smnist

Reads a PyTorch Lightning ``.ckpt`` (``state_dict`` keys prefixed with ``network.``), a bare state
dict or a safetensors file, with or without the ``*.initialized`` buffers. Official checkpoints
carry no configuration: the preset supplies it, and every shape in the checkpoint is checked
against the preset (a mismatch is refused, naming the keys). The output folder is written
atomically (a hidden staging folder beside it, renamed into place once verified); an existing
folder is only replaced with ``--overwrite``, and only when this converter wrote it (it holds
the ``results.json`` with ``source_checkpoint`` that every conversion writes). The folder holds
``model.safetensors``, ``config.json`` (reference mode; with timm's fields for 2D presets),
the processor config, a model card and ``results.json``; it loads with
``AutoModelFor...from_pretrained`` and, for 2D presets, ``timm.create_model(...,
pretrained_cfg_overlay=dict(file=...))``. The converter checks its own output: the converted
folder and the raw state dict run through the reference-mode core on a fixed input must agree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import torch

from ccnn_hf import CCNNConfig, build_ccnn, get_preset, load_original_state_dict
from ccnn_hf.training.model_card import make_model_card
from ccnn_hf.integrations.original import convert_original_state_dict, read_original_checkpoint
from ccnn_hf.training.files import remove, write_json_atomic
from ccnn_hf.modeling_ccnn import MODEL_CLASSES
from ccnn_hf.integrations.state_dict_keys import to_transformers_keys
from ccnn_hf.validation import refuse_checkpoint, value_problems

TOLERANCE = 1e-5  # max |converted - raw| / max |raw| on the check input


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse an ``output`` that is a file, or an existing non-empty folder unless ``overwrite`` is
    given and the folder is a conversion (ValueError naming the folder and what to do)."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} is a file; give a folder to write the model into")
    if not output.is_dir() or not any(output.iterdir()):
        return
    if not overwrite:
        raise ValueError(
            f"--output {output} already holds files; pass --overwrite to replace a folder this converter "
            "wrote, or choose a new folder"
        )
    if not _written_by_converter(output):
        raise ValueError(
            f"--output {output} was not written by this converter (no results.json with "
            "'source_checkpoint'); refusing to replace it, even with --overwrite"
        )


def _written_by_converter(folder: Path) -> bool:
    try:
        return "source_checkpoint" in json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _replace(staging: Path, output: Path) -> None:
    """Move the finished ``staging`` folder to ``output``, replacing an existing one; the old
    folder is put back if the move fails."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        output.rename(old)
    try:
        staging.rename(output)
    except OSError:
        if old is not None:
            old.rename(output)
        raise
    if old is not None:
        remove(old)  # a link is unlinked, never its target


def convert(
    checkpoint: str | Path,
    preset: str,
    output: str | Path,
    legacy_odd_fft: bool = False,
    overwrite: bool = False,
    hub_model_id: str | None = None,
) -> dict:
    """Convert, verify and write ``output`` atomically (see :func:`check_output`); returns the facts
    written to ``results.json``."""
    output = Path(output)
    check_output(output, overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.partial-{uuid.uuid4().hex[:12]}")
    staging.mkdir()
    try:
        results = _convert_into(checkpoint, preset, staging, legacy_odd_fft)
        timm_name = json.loads((staging / "config.json").read_text()).get("architecture")
        card = make_model_card(results, hub_model_id or str(output), timm_name=timm_name)  # loads as written
        card.save(staging / "README.md")
        _replace(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results


def _convert_into(checkpoint: str | Path, preset: str, output: Path, legacy_odd_fft: bool) -> dict:
    """Convert into the (staging) folder ``output`` and verify the result."""
    state = read_original_checkpoint(checkpoint)
    core = build_ccnn(preset, mode="reference", legacy_odd_fft=legacy_odd_fft, init_scheme="official")
    mapped = convert_original_state_dict(state, core)  # raises, naming keys, on any mismatch with the preset
    refuse_checkpoint(str(checkpoint), value_problems(mapped))  # NaN weights would "verify": NaN == NaN fails

    p = get_preset(preset)
    config = CCNNConfig.from_preset(preset, mode="reference", legacy_odd_fft=legacy_odd_fft, init_scheme="official")
    model = MODEL_CLASSES[p.modality](config).eval()
    model.load_state_dict(to_transformers_keys(mapped), strict=True)
    model.save_pretrained(output)

    reference = load_original_state_dict(core, state).eval()
    x = torch.randn(2, config.num_channels, *config.base_resolution, generator=torch.Generator().manual_seed(0))
    reloaded = type(model).from_pretrained(output).eval()
    with torch.no_grad():
        raw = reference(x)
        converted = reloaded(**{reloaded.main_input_name: x}).logits
    difference = (converted - raw).abs().max().item()
    relative = difference / max(raw.abs().max().item(), 1e-12)
    print(
        f"verification: max |converted - raw| = {difference:.3e} ({relative:.3e} of max |logit|) on a "
        f"{tuple(x.shape)} input"
    )
    if not relative <= TOLERANCE:  # NaN compares False: non-finite outputs never pass
        raise RuntimeError(f"converted model disagrees with the raw state dict: relative difference {relative:.3e}")
    base = (
        "x".join(map(str, config.base_resolution))
        if p.modality != "audio"
        else f"{config.base_sampling_rate / 1000:g} kHz"
    )
    results = {
        "preset": preset,
        "dataset": p.task,
        "modality": p.modality,
        "mode": "reference",
        "base_setting": base,
        "params": sum(t.numel() for t in model.parameters()),
        "evaluation": [],
        "source_checkpoint": Path(checkpoint).name,
        "verification_max_abs_diff": difference,
        "legacy_odd_fft": legacy_odd_fft,
        "description": f"official CCNN weights (`{preset}`) converted from the original code's checkpoint; "
        "reference mode reproduces the official outputs.",
        "recipe": "see the official experiments README (github.com/david-knigge/ccnn)",
    }
    write_json_atomic(output / "results.json", results)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help=".ckpt (Lightning), bare state dict, or .safetensors")
    parser.add_argument("--preset", required=True, help="the ccnn_hf preset the checkpoint was trained with")
    parser.add_argument("--output", required=True, help="folder to write (created; see --overwrite)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output folder that this converter wrote (any other folder is never replaced)",
    )
    parser.add_argument(
        "--legacy_odd_fft",
        action="store_true",
        help="reproduce the official odd-length irfft bug (Speech Commands MFCC weights)",
    )
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_model_id")
    args = parser.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    try:
        convert(args.checkpoint, args.preset, args.output, args.legacy_odd_fft, args.overwrite, args.hub_model_id)
    except (ValueError, OSError) as error:
        print(f"convert_original_ccnn: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.push_to_hub:
        from huggingface_hub import HfApi

        HfApi().create_repo(args.hub_model_id, exist_ok=True)
        HfApi().upload_folder(
            repo_id=args.hub_model_id,
            folder_path=args.output,
            commit_message=f"convert official CCNN checkpoint ({args.preset})",
        )
        print(f"pushed to {args.hub_model_id}")


if __name__ == "__main__":
    main()
