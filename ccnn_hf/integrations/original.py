"""Load state dicts of the official CCNN code (github.com/david-knigge/ccnn) into :class:`CCNN`.

Official key -> ccnn_hf key::

    conv1.*                     stem.conv.*        norm1.*              stem.norm.*
    blocks.i.conv1.*            blocks.i.conv.*    blocks.i.norm1.*     blocks.i.norm.*
    blocks.i.linear1.*          blocks.i.linear.*  out_norm.*           norm.*
    out_layer.{weight,bias}     head.fc.*  (1x1 conv weight reshaped to a linear one)
    <conv>.Kernel.*             <conv>.kernel_net.*
    <conv>.mask_width_param     <conv>.mask_width

The official buffers ``train_length``, ``initialized``, ``mask_mean_param`` and
``mask_threshold`` are configuration here; they are checked against the model, never
loaded. Checkpoints written before May 2025 lack ``initialized``: their generator weights
already carry the Chang re-weighting, so nothing is re-scaled (the official code's own bug
was to re-scale them a second time). A checkpoint saved before its first forward
(``initialized`` false, ``train_length`` 0) gets the re-weighting applied once here.
"""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path
from typing import Mapping

import torch

from ..ccnn import CCNN
from ..continuous_conv import SeparableContinuousConv

__all__ = [
    "load_original_state_dict",
    "convert_original_state_dict",
    "read_original_checkpoint",
    "OFFICIAL_BUFFERS",
    "LIGHTNING_SAFE_GLOBALS",
]

OFFICIAL_BUFFERS = ("train_length", "initialized", "mask_mean_param", "mask_threshold")
_RENAMES = [
    (r"^conv1\.", "stem.conv."),
    (r"^norm1\.", "stem.norm."),
    (r"^blocks\.(\d+)\.conv1\.", r"blocks.\1.conv."),
    (r"^blocks\.(\d+)\.norm1\.", r"blocks.\1.norm."),
    (r"^blocks\.(\d+)\.linear1\.", r"blocks.\1.linear."),
    (r"^out_norm\.", "norm."),
    (r"^out_layer\.", "head.fc."),
    (r"\.Kernel\.", ".kernel_net."),
    (r"\.mask_width_param$", ".mask_width"),
]


def _rename(key: str) -> str:
    for pattern, repl in _RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def _strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state_dict and all(k.startswith("network.") for k in state_dict):
        return {k[len("network.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def convert_original_state_dict(state_dict: Mapping[str, torch.Tensor], model: CCNN) -> dict[str, torch.Tensor]:
    """Map an official state dict onto ``model``'s keys, checking the official buffers.

    Raises:
        ValueError: naming every offending key when buffers disagree with the model
            (kernel grid length, causal mask centre, threshold), keys are missing or
            unexpected, or shapes differ.
    """
    if not isinstance(model, CCNN):
        raise TypeError(f"expected a ccnn_hf.CCNN, got {type(model).__name__}")
    official = _strip_prefix(state_dict)
    convs = {name: m for name, m in model.named_modules() if isinstance(m, SeparableContinuousConv)}
    converted: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for key, value in official.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf in OFFICIAL_BUFFERS:
            conv = convs.get(_rename(prefix + ".").rstrip("."))
            if conv is None:
                problems.append(f"unexpected key {key!r}")
            else:
                problems += _check_buffer(key, leaf, value, conv, official.get(f"{prefix}.initialized"))
            continue
        new_key = _rename(key)
        if new_key == "head.fc.weight":
            value = value.reshape(value.shape[0], -1)
        converted[new_key] = value

    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    problems += [f"missing key {k!r}" for k in missing] + [f"unexpected key {k!r}" for k in unexpected]
    for k in sorted(set(expected) & set(converted)):
        if tuple(expected[k].shape) != tuple(converted[k].shape):
            problems.append(
                f"shape mismatch for {k!r}: checkpoint {tuple(converted[k].shape)}, model {tuple(expected[k].shape)}"
            )
    if problems:
        raise ValueError("official state dict does not match the model:\n  " + "\n  ".join(problems))

    for name, conv in convs.items():  # checkpoints saved before their first forward
        initialized = official.get(_official_conv_name(name) + ".initialized")
        if initialized is not None and not bool(initialized.flatten()[0]):
            key = f"{name}.kernel_net.output_linear.weight"
            converted[key] = converted[key] * math.sqrt(1.0 / conv.base_taps())
    return converted


def _official_conv_name(name: str) -> str:
    name = re.sub(r"^stem\.conv$", "conv1", name)
    return re.sub(r"^blocks\.(\d+)\.conv$", r"blocks.\1.conv1", name)


def _check_buffer(
    key: str, leaf: str, value: torch.Tensor, conv: SeparableContinuousConv, initialized: torch.Tensor | None
) -> list[str]:
    if leaf == "train_length":
        length = int(value.flatten()[0])
        fresh = initialized is not None and not bool(initialized.flatten()[0]) and length == 0
        if not fresh and any(k != length for k in conv.kernel_size):
            return [
                f"{key} = {length} but the model's kernel grid has {conv.kernel_size} taps "
                f"(build the model with kernel_size={length} or the matching base_resolution)"
            ]
    elif leaf == "mask_mean_param":
        expected = 1.0 if conv.causal else 0.0
        if value.numel() != conv.data_dim or not torch.allclose(
            value.float(), torch.full_like(value.float(), expected)
        ):
            return [
                f"{key} = {value.tolist()} but the model is {'causal' if conv.causal else 'centred'} "
                f"with data_dim={conv.data_dim} (expects {[expected] * conv.data_dim})"
            ]
    elif leaf == "mask_threshold":
        if not math.isclose(float(value.flatten()[0]), conv.mask_threshold, rel_tol=1e-6):
            return [f"{key} = {float(value.flatten()[0])} but the model uses mask_threshold={conv.mask_threshold}"]
    return []


def load_original_state_dict(model: CCNN, state_dict: Mapping[str, torch.Tensor]) -> CCNN:
    """Load an official CCNN state dict (with or without the Lightning ``network.`` prefix and
    the ``*.initialized`` buffers) into a reference-mode ``model``; strict about everything else."""
    if getattr(model, "mode", None) != "reference":
        raise ValueError(
            "official weights reproduce the official outputs only in reference mode: "
            "build the model with mode='reference'"
        )
    model.load_state_dict(convert_original_state_dict(state_dict, model), strict=True)
    return model


def _lightning_safe_globals() -> list:
    """The non-tensor types a PyTorch Lightning ``.ckpt`` holds, and nothing more."""
    import collections

    import numpy as np

    core = getattr(np, "_core", None) or np.core
    types = [
        collections.OrderedDict,
        collections.defaultdict,
        collections.Counter,
        core.multiarray.scalar,
        np.dtype,
        type(np.dtype(np.float32)),
        type(np.dtype(np.float64)),
        type(np.dtype(np.int64)),
    ]
    return types


LIGHTNING_SAFE_GLOBALS = _lightning_safe_globals()


def read_original_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The network state dict of an official checkpoint: a Lightning ``.ckpt`` (``state_dict``
    with ``network.`` keys), a bare state dict saved with ``torch.save``, or a ``.safetensors`` file.

    Pickled files are read with ``torch.load(weights_only=True)`` and an allow-list of the types
    Lightning writes (:data:`LIGHTNING_SAFE_GLOBALS`); anything else is refused, never unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes); the checkpoint was not written completely")
    data = _read_safetensors(path) if path.suffix == ".safetensors" else _read_pickled(path)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(
            f"{path} holds no state dict (expected a Lightning checkpoint with 'state_dict', "
            "or a non-empty mapping of parameter names to tensors)"
        )
    sparse = sorted(k for k, v in data.items() if v.layout != torch.strided)
    if sparse:
        raise ValueError(
            f"{path} holds sparse tensors ({', '.join(sparse[:5])}); official CCNN checkpoints hold dense tensors only"
        )
    return dict(data)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file's tensors, or a ValueError naming a file that is not one (truncated, garbled)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except SafetensorError as error:
        raise ValueError(f"{path} is not a readable safetensors file ({_first_line(error)})") from None


def _read_pickled(path: Path):
    """A ``torch.save`` file read with ``weights_only=True`` and the Lightning allow-list; a ValueError
    for a file that needs other types (never unpickled) or is no ``torch.save`` file at all."""
    try:
        with torch.serialization.safe_globals(LIGHTNING_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise ValueError(f"{path} is not a readable PyTorch checkpoint ({_first_line(error)})") from None
        raise ValueError(
            f"{path} needs types outside the allow-list of what PyTorch Lightning checkpoints hold "
            f"(tensors, containers, numbers, strings, numpy scalars); refusing to unpickle it. "
            f"Details: {_first_line(error)}"
        ) from None
    except Exception as error:  # torch's own errors for a truncated archive, a text file, a foreign format
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint: truncated, or not written by torch.save "
            f"({type(error).__name__}: {_first_line(error)})"
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
