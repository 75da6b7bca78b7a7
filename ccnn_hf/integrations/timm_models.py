"""timm integration: the 2D image CCNNs in timm's model registry (registered once timm and ccnn_hf are imported).

Models (``timm.list_models("ccnn*")``) and pretrained tags (``include_tags=True``)::

    ccnn_2d                       generic 2D CCNN; defaults = CCNN_{4,140} of the CIFAR-10 preset
    ccnn_2d_4_140.<tag>           CCNN_{4,140}
    ccnn_2d_6_380.<tag>           CCNN_{6,380}
    tags: cifar10 (default), cifar100, stl10, image (LRA Image: grayscale CIFAR-10),
          pathfinder (LRA Pathfinder as 32x32 images)
    released weights shipped in the package (``pretrained=True`` works offline):
    ccnn_2d_4_140.mnist, ccnn_2d_4_140.cifar10 (see ccnn_hf.integrations.released)

A tag selects a task preset of :data:`ccnn_hf.PRESETS` (``<task>_<blocks>_<hidden>``): its
architecture settings (input channels, classes, base resolution, kernel size, omega_0, mask
width, dropout) and its data config (input size, mean / std). Any :class:`ccnn_hf.CCNN` setting
can be overridden as a keyword of ``timm.create_model`` (also ``hidden``, ``blocks``,
``kernel_width``); timm's ``drop_rate`` is the blocks' ``dropout``. Released weights ship inside
the package (:data:`RELEASED`; loaded offline with ``pretrained=True``).

Input size. CCNN never downsamples and its kernels are continuous functions sampled on the
input's grid, so a model takes images of any size: an input twice the base resolution is read as
the same field of view sampled twice as finely. ``create_model(name, img_size=64)`` only sets the
*data* size: ``pretrained_cfg["input_size"]`` (and ``pool_size``), hence what
``timm.data.resolve_data_config`` / ``create_transform`` resize to. It is NOT the base
resolution: to declare a model native at 64 x 64 (kernels used 1:1 on a 64 x 64 grid), pass
``base_resolution=(64, 64)``.

Weights. The timm state dict is the :class:`~ccnn_hf.CCNN` state dict (``head.fc`` is the
classifier). :func:`checkpoint_filter_fn` also reads transformers checkpoints
(``ccnn.encoder.*`` + ``classifier.*``, or ``encoder.*`` of a bare ``CCNNModel``), so one
``model.safetensors`` and one Hub repo serve both libraries: ``save_pretrained`` /
``push_to_hub`` of a 2D image model writes timm's ``architecture``, ``model_args`` and
``pretrained_cfg`` into its ``config.json`` (see :func:`ccnn_hf.timm_config.timm_fields`), and
``timm.create_model("hf-hub:<repo>", pretrained=True)`` (or ``"local-dir:<folder>"``) rebuilds the
same network. Local files: ``create_model(name, pretrained=True, pretrained_cfg_overlay=dict(
file="model.safetensors", num_classes=N), **model_args)`` reads either format (give the file's
``num_classes``, otherwise timm drops its classifier); ``checkpoint_path=`` bypasses the filter
and so takes timm-format files only.

Scripting, compiling, exporting (tests/test_timm.py checks each):

* ``torch.compile`` works (default inductor backend; outputs match eager). Dynamo breaks the
  graph where kernel sizes are computed from parameter values (``.item()`` / ``bool`` on the
  learned mask width, which crops the kernel), so each conv's kernel sampling runs eagerly.
  Compiling takes tens of seconds on CPU.
* ``torch.jit.script`` does NOT work: TorchScript rejects the forward's keyword-only mask
  arguments, then the kernel generators' Python (``kernel_nets.py``: a tuple built by
  star-unpacking a shape), and the convs' data-dependent kernel sizes would follow.
* ``torch.export`` of the live model does NOT work: the number of kernel taps depends on parameter
  values, a data-dependent shape that export refuses, strict or not. Export a model frozen at one
  input size instead (:func:`ccnn_hf.freeze`: kernels as buffers; ``torch.export`` and ONNX work).
* FX (torchvision's ``create_feature_extractor``, timm's ``FeatureGraphNet`` /
  ``feature_cls="fx"``) works: the continuous convs and the head are registered as leaf modules
  (``register_notrace_module``), the input checks and :func:`ccnn_hf.ccnn.resolve_input_scale`
  as leaf functions (``register_notrace_function``), so ``resolution=`` stays a graph input.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from typing import Any

import torch

from ..ccnn import CCNN, CCNNHead, refuse_masks_in_graph, resolve_input_scale
from ..continuous_conv import SeparableContinuousConv
from ..presets import PRESETS, preset_model_kwargs
from ..settings import canonical, model_settings
from ..timm_config import TIMM_ARCHITECTURES, TIMM_GENERIC, architecture_size, pretrained_cfg
from ..validation import check_input, key_problems, refuse_checkpoint
from .released import RELEASES, WEIGHTS_DIR
from .state_dict_keys import to_core_keys

_logger = logging.getLogger(__name__)

try:
    from timm.layers import register_notrace_function, register_notrace_module
    from timm.models import (
        build_model_with_cfg,
        generate_default_cfgs,
        get_pretrained_cfg,
        is_model,
        model_entrypoint,
        register_model,
    )
except ImportError:  # timm is optional: without it nothing is registered
    build_model_with_cfg = None

__all__ = ["TAGS", "checkpoint_filter_fn", "ccnn_2d", "ccnn_2d_4_140", "ccnn_2d_6_380"]

# pretrained tag -> task of ccnn_hf.presets (the 2D image tasks)
TAGS = {
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "stl10": "stl10",
    "image": "image2d",
    "pathfinder": "pathfinder2d",
}

_SETTINGS = frozenset(s.name for s in model_settings())
_TAG_OF_TASK = {task: tag for tag, task in TAGS.items()}
# The architectures named after their size (tags select a task preset of that size): name -> size.
_SIZED = {name: architecture_size(name) for name in TIMM_ARCHITECTURES if name != TIMM_GENERIC}
_NOTES = (
    "Continuous kernels: runs at any input size, no downsampling (pool_size = input size).",
    "img_size= sets this config's input_size, not the model's base_resolution.",
)


def _timm_types(cfg: dict[str, Any]) -> dict[str, Any]:
    """A JSON pretrained cfg with timm's types (tuples for per-axis and per-channel values)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}


def _cfg(preset_name: str) -> dict[str, Any]:
    """timm's pretrained cfg of a preset (no weights: data config and metadata)."""
    preset = PRESETS[preset_name]
    model = preset.model
    cfg = pretrained_cfg(
        model["in_chans"], model["base_resolution"], preset.mean, preset.std, model["num_classes"], preset.description
    )
    return {**_timm_types(cfg), "notes": _NOTES}


def _released() -> dict[str, dict]:
    """``"<architecture>.<tag>"`` -> config.json of each release shipped in this installation."""
    out = {}
    for release in RELEASES.values():
        folder = WEIGHTS_DIR / release.name
        if release.timm_name and (folder / "model.safetensors").exists():
            out[release.timm_name] = {
                **json.loads((folder / "config.json").read_text(encoding="utf-8")),
                "_file": str(folder / "model.safetensors"),
            }
    return out


RELEASED = _released()


def _released_cfg(config: dict) -> dict[str, Any]:
    """timm cfg of a packaged release: its own pretrained_cfg, loading the packaged file (offline)."""
    return {**_timm_types(config["pretrained_cfg"]), "file": config["_file"], "hf_hub_id": None, "notes": _NOTES}


def _preset_of(variant: str, tag: str | None) -> str:
    if tag in TAGS and variant in _SIZED:
        blocks, hidden = _SIZED[variant]
        return f"{TAGS[tag]}_{blocks}_{hidden}"
    return TIMM_ARCHITECTURES[variant]


def checkpoint_filter_fn(state_dict: dict, model: CCNN) -> dict:
    """Map a checkpoint onto the timm (plain :class:`~ccnn_hf.CCNN`) keys.

    Accepts timm / CCNN state dicts as they are, transformers ``CCNNForImageClassification``
    (``ccnn.encoder.*``, ``classifier.*``) and ``CCNNModel`` (``encoder.*``) state dicts, and
    training checkpoints wrapping one (``state_dict`` / ``model`` entries, ``module.`` prefixes).
    CCNN's stem cannot be adapted to another number of input channels (each channel has its own
    kernel generator outputs, so timm's channel summing does not apply): as timm does with input
    convs it cannot convert, the stem conv's channel-dependent tensors keep the model's own
    (random) initialisation, with a warning; everything else loads. A model without a state dict
    to take them from gets a ValueError naming both counts. A checkpoint with missing or
    unexpected tensors is refused with a ValueError naming them; only the classifier ``head.fc``
    may be absent, extra or resized (timm replaces it for another ``num_classes``). Wrongly typed
    tensors (an int32 weight) are refused by :meth:`ccnn_hf.CCNN.load_state_dict`.
    """
    out = to_core_keys(state_dict)
    bias = out.get("stem.conv.bias")
    in_chans = getattr(model, "in_chans", None)
    if bias is not None and in_chans is not None and bias.shape[0] != in_chans:
        message = (
            f"the checkpoint was trained on {bias.shape[0]} input channel(s) and the model has {in_chans}: "
            "CCNN weights cannot be adapted to another number of input channels"
        )
        if not isinstance(model, torch.nn.Module):
            raise ValueError(message)
        own = model.state_dict()
        for key in [k for k in out if k.startswith("stem.conv.") and k in own and out[k].shape != own[k].shape]:
            out[key] = own[key]
        _logger.warning(f"{message}; the stem conv's channel-dependent weights keep their random initialisation")
    if isinstance(model, CCNN):
        expected = model.state_dict()
        problems = key_problems(
            sorted(set(expected) - set(out)),
            sorted(set(out) - set(expected)),
            list(expected),
            new_heads=("head.fc",),
            extra_heads=("head.fc",),
        )
        refuse_checkpoint("the checkpoint", problems)  # dtypes: CCNN.load_state_dict
    return out


def _source_cfg(variant: str, pretrained_cfg: Any) -> dict[str, Any]:
    """The pretrained cfg that build_model_with_cfg will resolve (registry tag, dict or PretrainedCfg)."""
    if isinstance(pretrained_cfg, str) or not pretrained_cfg:
        name = f"{variant}.{pretrained_cfg}" if pretrained_cfg else variant
        cfg = get_pretrained_cfg(name)
        return cfg.to_dict() if cfg is not None else {}
    return dict(pretrained_cfg) if isinstance(pretrained_cfg, dict) else pretrained_cfg.to_dict()


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> CCNN:
    source = _source_cfg(variant, kwargs.get("pretrained_cfg"))
    preset = _preset_of(
        variant, kwargs.get("pretrained_cfg") if isinstance(kwargs.get("pretrained_cfg"), str) else source.get("tag")
    )
    if "drop_rate" in kwargs:  # timm's train.py: --drop
        kwargs.setdefault("dropout", kwargs.pop("drop_rate"))
    for name in ("drop_path_rate", "drop_block_rate"):
        if kwargs.pop(name, 0.0):
            raise ValueError(
                f"CCNN has no {name.replace('_rate', '').replace('_', ' ')}; pass {name}=0 or leave it out"
            )
    img_size = kwargs.pop("img_size", None)
    settings = {k: kwargs.pop(k) for k in list(kwargs) if canonical(k) in _SETTINGS}  # any spelling of a setting
    release = RELEASED.get(f"{variant}.{source.get('tag')}")
    if release is not None:  # a packaged release: rebuild exactly its network (user settings still win)
        settings = {
            **{
                k: tuple(v) if isinstance(v, list) else v
                for k, v in release["model_args"].items()
                if k not in ("in_chans", "num_classes")
            },
            **settings,
        }
    model_kwargs = preset_model_kwargs(preset, **settings)
    if model_kwargs["data_dim"] != 2:
        raise ValueError("the timm CCNNs are 2D image models (data_dim=2); build 1D / 3D CCNNs with ccnn_hf.build_ccnn")
    for name in ("in_chans", "num_classes"):  # from the pretrained cfg unless given (timm's convention)
        if name not in {canonical(k) for k in settings}:
            model_kwargs.pop(name)
    if img_size is not None:
        size = (int(img_size),) * 2 if isinstance(img_size, (int, float)) else tuple(int(s) for s in img_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"img_size must be an int or (height, width), got {img_size!r}")
        channels = model_kwargs.get("in_chans", (source.get("input_size") or (3,))[0])
        overlay = dict(input_size=(channels, *size), pool_size=size)
        kwargs["pretrained_cfg_overlay"] = {**overlay, **(kwargs.get("pretrained_cfg_overlay") or {})}
    num_blocks = model_kwargs["num_blocks"]
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)  # timm's factory kwargs
    with torch.device(device) if device is not None else nullcontext():
        model = build_model_with_cfg(
            CCNN,
            variant,
            pretrained,
            pretrained_filter_fn=checkpoint_filter_fn,
            feature_cfg=dict(flatten_sequential=True, out_indices=tuple(range(num_blocks + 1))),
            **model_kwargs,
            **kwargs,
        )
    if dtype is not None:
        model.to(dtype=dtype)
    # Record what differs from the architecture's defaults (e.g. a tag's preset), so that timm's
    # save_for_hf / push_to_hf_hub write model_args that rebuild this exact network.
    base = preset_model_kwargs(TIMM_ARCHITECTURES[variant])
    differences = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in model_kwargs.items()
        if k not in ("in_chans", "num_classes") and (k not in base or v != base[k])
    }
    model._model_args = {**getattr(model, "_model_args", {}), **differences}
    return model


if build_model_with_cfg is not None:
    for _module in (SeparableContinuousConv, CCNNHead):  # data-dependent shapes / ndim-dependent pooling
        register_notrace_module(_module)
    for _function in (check_input, resolve_input_scale, refuse_masks_in_graph):
        register_notrace_function(_function)

    default_cfgs = generate_default_cfgs(
        {
            TIMM_GENERIC: _cfg(TIMM_ARCHITECTURES[TIMM_GENERIC]),
            **{
                f"{architecture}.{tag}": _cfg(f"{task}_{blocks}_{hidden}")
                for architecture, (blocks, hidden) in _SIZED.items()
                for tag, task in TAGS.items()
            },
            **{name: _released_cfg(config) for name, config in RELEASED.items()},  # shipped weights, offline
        }
    )
    # timm makes the first tag with weights an architecture's default, and create_model takes
    # in_chans / num_classes from the default: a shipped 1-channel release must not turn plain
    # ``create_model("ccnn_2d")`` into a grey-scale binary model. Pin the presets' defaults.
    for _arch in TIMM_ARCHITECTURES:
        _tag = "" if _arch == TIMM_GENERIC else _TAG_OF_TASK[PRESETS[TIMM_ARCHITECTURES[_arch]].task]
        default_cfgs[_arch].tags.remove(_tag)
        default_cfgs[_arch].tags.appendleft(_tag)

    def _register(fn):
        """register_model, once: importing twice (or reloading) leaves the registry alone."""
        if is_model(fn.__name__) and getattr(model_entrypoint(fn.__name__), "__module__", None) == fn.__module__:
            return fn
        return register_model(fn)
else:

    def _register(fn):
        return fn


@_register
def ccnn_2d(pretrained: bool = False, **kwargs: Any) -> CCNN:
    """2D CCNN; defaults: CCNN_{4,140} of the CIFAR-10 preset. Override any CCNN setting."""
    return _create("ccnn_2d", pretrained, **kwargs)


@_register
def ccnn_2d_4_140(pretrained: bool = False, **kwargs: Any) -> CCNN:
    """CCNN_{4,140}; the tag selects the task preset (cifar10, cifar100, stl10, image, pathfinder)."""
    return _create("ccnn_2d_4_140", pretrained, **kwargs)


@_register
def ccnn_2d_6_380(pretrained: bool = False, **kwargs: Any) -> CCNN:
    """CCNN_{6,380}; the tag selects the task preset (cifar10, cifar100, stl10, image, pathfinder)."""
    return _create("ccnn_2d_6_380", pretrained, **kwargs)
