#!/usr/bin/env python
"""Convert an official CCNN checkpoint (github.com/david-knigge/ccnn) into a transformers/timm folder.

    python conversion/convert_original_ccnn.py --checkpoint model.ckpt --preset cifar10_4_140 --output out/
    python conversion/convert_original_ccnn.py --checkpoint model.safetensors --preset smnist_4_140 \\
        --output out/ --push_to_hub --hub_model_id org/ccnn-smnist

Reads a PyTorch Lightning ``.ckpt`` (``state_dict`` keys prefixed with ``network.``), a bare state
dict or a safetensors file, with or without the ``*.initialized`` buffers. Official checkpoints
carry no configuration: the preset supplies it, and every shape in the checkpoint is checked
against the preset (a mismatch is refused, naming the keys). The output folder holds
``model.safetensors``, ``config.json`` (reference mode; with timm's fields for 2D presets),
the processor config, a model card and ``results.json``; it loads with
``AutoModelFor...from_pretrained`` and, for 2D presets, ``timm.create_model(...,
pretrained_cfg_overlay=dict(file=...))``. The converter checks its own output: the converted
folder and the raw state dict run through the reference-mode core on a fixed input must agree.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ccnn_hf import CCNNConfig, build_ccnn, get_preset, load_original_state_dict
from ccnn_hf.model_card import make_model_card
from ccnn_hf.original import convert_original_state_dict, read_original_checkpoint
from ccnn_hf.training.checkpoints import write_json_atomic
from ccnn_hf.training.model import MODEL_CLASSES

TOLERANCE = 1e-5  # max |converted - raw| / max |raw| on the check input


def to_transformers_keys(core_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ccnn_hf core keys -> keys of the transformers classification heads."""
    return {(f"classifier.{k[len('head.fc.'):]}" if k.startswith("head.fc.") else f"ccnn.encoder.{k}"): v
            for k, v in core_state.items()}


def convert(checkpoint: str | Path, preset: str, output: str | Path, legacy_odd_fft: bool = False) -> dict:
    """Convert and verify; returns the facts written to ``results.json``."""
    output = Path(output)
    state = read_original_checkpoint(checkpoint)
    core = build_ccnn(preset, mode="reference", legacy_odd_fft=legacy_odd_fft, init_scheme="official")
    mapped = convert_original_state_dict(state, core)  # raises, naming keys, on any mismatch with the preset

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
    print(f"verification: max |converted - raw| = {difference:.3e} ({relative:.3e} of max |logit|) on a "
          f"{tuple(x.shape)} input")
    if relative > TOLERANCE:
        raise RuntimeError(f"converted model disagrees with the raw state dict: relative difference {relative:.3e}")
    base = "x".join(map(str, config.base_resolution)) if p.modality != "audio" else f"{config.base_sampling_rate / 1000:g} kHz"
    results = {
        "preset": preset, "dataset": p.task, "modality": p.modality, "mode": "reference", "base_setting": base,
        "params": sum(t.numel() for t in model.parameters()), "evaluation": [], "source_checkpoint": Path(checkpoint).name,
        "verification_max_abs_diff": difference, "legacy_odd_fft": legacy_odd_fft,
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
    parser.add_argument("--output", required=True, help="folder to write")
    parser.add_argument("--legacy_odd_fft", action="store_true", help="reproduce the official odd-length irfft bug "
                        "(Speech Commands MFCC weights)")
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_model_id")
    args = parser.parse_args(argv)
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    try:
        results = convert(args.checkpoint, args.preset, args.output, args.legacy_odd_fft)
    except (ValueError, FileNotFoundError) as error:
        print(f"convert_original_ccnn: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    timm_name = None
    if get_preset(args.preset).model["data_dim"] == 2:
        config = json.loads((Path(args.output) / "config.json").read_text())
        timm_name = config.get("architecture")
    card = make_model_card(results, args.hub_model_id or f"local/{Path(args.output).name}", timm_name=timm_name)
    card.save(Path(args.output) / "README.md")
    if args.push_to_hub:
        from huggingface_hub import HfApi

        HfApi().create_repo(args.hub_model_id, exist_ok=True)
        HfApi().upload_folder(repo_id=args.hub_model_id, folder_path=args.output,
                              commit_message=f"convert official CCNN checkpoint ({args.preset})")
        print(f"pushed to {args.hub_model_id}")


if __name__ == "__main__":
    main()
