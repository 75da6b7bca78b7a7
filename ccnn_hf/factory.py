"""Build CCNN models from named presets with overrides."""

from __future__ import annotations

from typing import Any

from .ccnn import CCNN
from .presets import preset_model_kwargs
from .settings import ALIASES

__all__ = ["build_ccnn", "preset_model_kwargs", "ALIASES"]


def build_ccnn(preset: str, *, mode: str = "continuous", **overrides: Any) -> CCNN:
    """Build the CCNN of a named preset (see :data:`ccnn_hf.PRESETS`).

    Args:
        preset: e.g. ``"cifar10_4_140"`` or ``"smnist_6_380"``.
        mode: ``"continuous"`` (kernels follow the input resolution) or ``"reference"``
            (the official behaviour; use it for converted official weights).
        **overrides: any :class:`~ccnn_hf.CCNN` setting, also under the aliases of
            :data:`ccnn_hf.settings.ALIASES` (``hidden`` / ``width``, ``blocks`` / ``depth``,
            ``in_channels``, ``out_channels`` / ``num_labels``, ``kernel_width``).
    """
    return CCNN(**preset_model_kwargs(preset, mode=mode, **overrides))
