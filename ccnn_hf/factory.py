"""Build CCNN models from named presets with overrides."""
from __future__ import annotations

import inspect
from typing import Any

from .ccnn import CCNN
from .presets import get_preset

__all__ = ["build_ccnn", "preset_model_kwargs", "ALIASES"]

# Friendly spellings accepted by build_ccnn, the transformers config and the CLI.
ALIASES = {
    "hidden": "hidden_channels",
    "width": "hidden_channels",
    "blocks": "num_blocks",
    "depth": "num_blocks",
    "in_channels": "in_chans",
    "out_channels": "num_classes",
    "num_labels": "num_classes",
    "kernel_width": "kernel_hidden",
}
_CCNN_ARGS = tuple(p for p in inspect.signature(CCNN.__init__).parameters if p != "self")


def preset_model_kwargs(preset: str, **overrides: Any) -> dict[str, Any]:
    """The CCNN constructor arguments of ``preset`` with ``overrides`` applied.

    Changing ``data_dim`` without a ``base_resolution`` repeats the preset's first base size
    along every axis; ``kernel_size="same"`` then follows that resolution.
    """
    kwargs = dict(get_preset(preset).model)
    for key, value in overrides.items():
        key = ALIASES.get(key, key)
        if key not in _CCNN_ARGS:
            raise ValueError(f"unknown CCNN setting {key!r}; valid settings: {', '.join(_CCNN_ARGS)}")
        kwargs[key] = value
    base = tuple(kwargs["base_resolution"])
    if len(base) != kwargs["data_dim"] and "base_resolution" not in overrides:
        kwargs["base_resolution"] = (base[0],) * kwargs["data_dim"]
        if not isinstance(kwargs["kernel_size"], str) and "kernel_size" not in overrides:
            kwargs["kernel_size"] = kwargs["kernel_size"] if isinstance(kwargs["kernel_size"], int) else kwargs["kernel_size"][0]
    if "causal" not in overrides and kwargs["data_dim"] != 1:
        kwargs["causal"] = False
    return kwargs


def build_ccnn(preset: str, *, mode: str = "continuous", **overrides: Any) -> CCNN:
    """Build the CCNN of a named preset (see :data:`ccnn_hf.PRESETS`).

    Args:
        preset: e.g. ``"cifar10_4_140"`` or ``"smnist_6_380"``.
        mode: ``"continuous"`` (kernels follow the input resolution) or ``"reference"``
            (the official behaviour; use it for converted official weights).
        **overrides: any :class:`~ccnn_hf.CCNN` argument (also ``hidden``, ``blocks``,
            ``in_channels``, ``out_channels``/``num_labels``, ``kernel_width``).
    """
    return CCNN(**preset_model_kwargs(preset, mode=mode, **overrides))
