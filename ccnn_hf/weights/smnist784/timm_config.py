"""What timm needs to know about the CCNN family, in plain Python (no timm import).

The architecture names, the first conv and classifier, the papers, and :func:`timm_fields`: timm's
keys for a ``config.json`` shared with transformers. :mod:`ccnn_hf.integrations.timm_models` registers the models
with these; the transformers models write :func:`timm_fields` on save (so this module also travels
as remote code, next to ``modeling_ccnn.py``).
"""

from __future__ import annotations

from typing import Any, Sequence

from .presets import preset_model_kwargs
from .settings import defaults

__all__ = [
    "TIMM_ARCHITECTURES",
    "TIMM_FIRST_CONV",
    "TIMM_CLASSIFIER",
    "TIMM_PAPER_IDS",
    "TIMM_PAPER_NAME",
    "TIMM_ORIGIN_URL",
    "TIMM_GENERIC",
    "architecture_size",
    "pretrained_cfg",
    "timm_fields",
]

# timm architectures of 2D image CCNNs (registered by ccnn_hf.integrations.timm_models, one entry point each):
# name -> the preset whose settings are the architecture's defaults. The generic one takes any size;
# the others are named ccnn_2d_<blocks>_<hidden> after their preset's size.
TIMM_GENERIC = "ccnn_2d"
TIMM_ARCHITECTURES = {TIMM_GENERIC: "cifar10_4_140", "ccnn_2d_4_140": "cifar10_4_140", "ccnn_2d_6_380": "cifar10_6_380"}
TIMM_FIRST_CONV = "stem.conv.channel_mixer"
TIMM_CLASSIFIER = "head.fc"
TIMM_PAPER_IDS = ("arXiv:2206.03398", "arXiv:2301.10540")
TIMM_PAPER_NAME = (
    "Towards a General Purpose CNN for Long Range Dependencies in ND; "
    "Modelling Long Range Dependencies in ND: From Task-Specific to a General Purpose CNN"
)
TIMM_ORIGIN_URL = "https://github.com/david-knigge/ccnn"


def architecture_settings(architecture: str) -> dict[str, Any]:
    """Every CCNN setting of a registered timm architecture at its defaults."""
    return {**defaults(), **preset_model_kwargs(TIMM_ARCHITECTURES[architecture])}


def architecture_size(architecture: str) -> tuple[int, int]:
    """``(num_blocks, hidden_channels)`` of a registered architecture's preset."""
    settings = preset_model_kwargs(TIMM_ARCHITECTURES[architecture])
    return settings["num_blocks"], settings["hidden_channels"]


def pretrained_cfg(
    in_chans: int,
    size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    num_classes: int,
    description: str,
) -> dict[str, Any]:
    """timm's pretrained cfg of a CCNN (JSON types): its data at ``size`` (the base resolution; no
    crop, as the model runs at any size), its first conv and classifier, and the papers."""
    size = [int(r) for r in size]
    return dict(
        custom_load=False,
        input_size=[int(in_chans), *size],
        fixed_input_size=False,
        interpolation="bicubic",
        crop_pct=1.0,
        crop_mode="center",
        mean=list(mean),
        std=list(std),
        num_classes=int(num_classes),
        pool_size=size,
        first_conv=TIMM_FIRST_CONV,
        classifier=TIMM_CLASSIFIER,
        license="mit",
        description=description,
        origin_url=TIMM_ORIGIN_URL,
        paper_name=TIMM_PAPER_NAME,
        paper_ids=list(TIMM_PAPER_IDS),
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


def timm_fields(config: Any, num_classes: int | None = None) -> dict[str, Any]:
    """timm's keys for the ``config.json`` of a :class:`ccnn_hf.CCNNConfig` (empty unless a 2D image model).

    ``architecture`` is a registered ``ccnn_2d*`` name; ``model_args`` holds ``in_chans``,
    ``num_classes`` and every :class:`ccnn_hf.CCNN` setting that differs from the preset
    behind that architecture (:data:`TIMM_ARCHITECTURES`), so that
    ``timm.create_model("hf-hub:<repo>", pretrained=True)`` rebuilds exactly this network.
    ``pretrained_cfg`` describes the data: input size = ``base_resolution``, ``mean`` /
    ``std``, no crop. ``num_classes`` overrides ``num_labels`` (0 for a backbone).
    """
    if config.data_dim != 2 or config.modality != "image":
        return {}
    num_classes = config.num_labels if num_classes is None else int(num_classes)
    sized = f"ccnn_2d_{config.num_blocks}_{config.hidden_channels}"
    architecture = sized if sized in TIMM_ARCHITECTURES else TIMM_GENERIC
    base = architecture_settings(architecture)
    model_args: dict[str, Any] = dict(in_chans=config.num_channels, num_classes=num_classes)
    for key, value in config.ccnn_kwargs().items():
        if key not in ("in_chans", "num_classes") and _plain(value) != _plain(base[key]):
            model_args[key] = _plain(value)
    id2label = config.id2label or {}
    label_names = [id2label.get(i, f"LABEL_{i}") for i in range(num_classes)] if id2label else None
    description = f"CCNN_{{{config.num_blocks},{config.hidden_channels}}}" + (
        f" ({config.preset})" if config.preset else ""
    )
    fields = dict(
        architecture=architecture,
        num_classes=num_classes,
        num_features=config.hidden_channels,
        global_pool="avg",
        model_args=model_args,
        pretrained_cfg=pretrained_cfg(
            config.num_channels, config.base_resolution, config.mean, config.std, num_classes, description
        ),
    )
    if label_names:
        fields["label_names"] = label_names
    return fields
