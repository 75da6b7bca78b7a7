"""Named CCNN configurations: every task of the official experiments (CCNN_{4,140} and CCNN_{6,380}).

Names are ``<task>_<blocks>_<hidden>``. Values come from the commands of the official
``experiments/README.md`` (github.com/david-knigge/ccnn): omega_0 verbatim, mask width,
kernel size ("same" = as long as the input), dropout, and the training recipe (AdamW,
linear warm-up then cosine; ``weight_decay`` is the weight of the official L2-norm penalty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from .settings import named_values

__all__ = ["Preset", "PRESETS", "get_preset", "list_presets", "TASKS", "preset_model_kwargs"]

MNIST_STATS = ((0.1307,), (0.3081,))
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))
CIFAR100_STATS = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
STL10_STATS = ((0.44671097, 0.4398105, 0.4066468), (0.2603405, 0.25657743, 0.27126738))
LRA_GRAY_STATS = ((122.6 / 255.0,), (61.0 / 255.0,))
UNIT_STATS = ((0.0,), (1.0,))


@dataclass(frozen=True)
class Preset:
    """One named configuration.

    Attributes:
        name: ``<task>_<blocks>_<hidden>``.
        task: task key (``smnist``, ``cifar10``, ...).
        modality: ``"image"``, ``"sequence"``, ``"audio"`` or ``"tokens"``.
        model: keyword arguments of :class:`ccnn_hf.CCNN`.
        train: the official training recipe (lr, weight_decay, batch_size, epochs, warmup_epochs, grad_accum).
        mean, std: per-channel input normalisation the official data pipeline applied.
        params: parameter count of the official model (checked by the tests).
    """

    name: str
    task: str
    modality: str
    model: Mapping[str, Any]
    train: Mapping[str, Any]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    params: int
    description: str = field(default="", compare=False)


@dataclass(frozen=True)
class _Task:
    """What a task fixes: its data (modality, axes, channels, classes, base size or rate, statistics)."""

    modality: str
    data_dim: int
    in_chans: int
    num_classes: int
    base_resolution: tuple[int, ...]
    base_sampling_rate: float | None
    stats: tuple[tuple[float, ...], tuple[float, ...]]
    description: str
    length_semantics: str = "auto"  # "field_of_view" for images read as sequences (a longer one is finer)


_TASKS: dict[str, _Task] = {
    "smnist": _Task(
        "sequence",
        data_dim=1,
        in_chans=1,
        num_classes=10,
        base_resolution=(784,),
        base_sampling_rate=None,
        stats=MNIST_STATS,
        description="sequential MNIST (row-major, 784 steps)",
        length_semantics="field_of_view",
    ),
    "pmnist": _Task(
        "sequence",
        data_dim=1,
        in_chans=1,
        num_classes=10,
        base_resolution=(784,),
        base_sampling_rate=None,
        stats=MNIST_STATS,
        description="permuted sequential MNIST",
        length_semantics="field_of_view",
    ),
    "scifar10": _Task(
        "sequence",
        data_dim=1,
        in_chans=3,
        num_classes=10,
        base_resolution=(1024,),
        base_sampling_rate=None,
        stats=CIFAR10_STATS,
        description="sequential CIFAR-10 (3 channels x 1024 steps)",
        length_semantics="field_of_view",
    ),
    "sc_mfcc": _Task(
        "sequence",
        data_dim=1,
        in_chans=20,
        num_classes=10,
        base_resolution=(161,),
        base_sampling_rate=None,
        stats=UNIT_STATS,
        description="Speech Commands, 20 MFCCs x 161 frames",
    ),
    "sc_raw": _Task(
        "audio",
        data_dim=1,
        in_chans=1,
        num_classes=10,
        base_resolution=(16000,),
        base_sampling_rate=16000.0,
        stats=UNIT_STATS,
        description="Speech Commands raw waveform, 16 kHz",
    ),
    "cifar10": _Task(
        "image",
        data_dim=2,
        in_chans=3,
        num_classes=10,
        base_resolution=(32, 32),
        base_sampling_rate=None,
        stats=CIFAR10_STATS,
        description="CIFAR-10 images",
    ),
    "cifar100": _Task(
        "image",
        data_dim=2,
        in_chans=3,
        num_classes=100,
        base_resolution=(32, 32),
        base_sampling_rate=None,
        stats=CIFAR100_STATS,
        description="CIFAR-100 images",
    ),
    "stl10": _Task(
        "image",
        data_dim=2,
        in_chans=3,
        num_classes=10,
        base_resolution=(256, 256),
        base_sampling_rate=None,
        stats=STL10_STATS,
        description="STL-10 images resized to 256x256",
    ),
    "listops": _Task(
        "tokens",
        data_dim=1,
        in_chans=1,
        num_classes=10,
        base_resolution=(2048,),
        base_sampling_rate=1.0,
        stats=UNIT_STATS,
        description="LRA ListOps, raw token ids as floats",
    ),
    "text": _Task(
        "tokens",
        data_dim=1,
        in_chans=1,
        num_classes=1,
        base_resolution=(4096,),
        base_sampling_rate=1.0,
        stats=UNIT_STATS,
        description="LRA IMDB byte-level text, raw ids as floats (binary)",
    ),
    "image": _Task(
        "sequence",
        data_dim=1,
        in_chans=1,
        num_classes=10,
        base_resolution=(1024,),
        base_sampling_rate=None,
        stats=LRA_GRAY_STATS,
        description="LRA Image: grayscale CIFAR-10 as 1024 steps",
        length_semantics="field_of_view",
    ),
    "pathfinder": _Task(
        "sequence",
        data_dim=1,
        in_chans=1,
        num_classes=1,
        base_resolution=(1024,),
        base_sampling_rate=None,
        stats=UNIT_STATS,
        description="LRA Pathfinder 32x32 as 1024 steps (binary)",
        length_semantics="field_of_view",
    ),
    "image2d": _Task(
        "image",
        data_dim=2,
        in_chans=1,
        num_classes=10,
        base_resolution=(32, 32),
        base_sampling_rate=None,
        stats=LRA_GRAY_STATS,
        description="LRA Image as 2D grayscale CIFAR-10",
    ),
    "pathfinder2d": _Task(
        "image",
        data_dim=2,
        in_chans=1,
        num_classes=1,
        base_resolution=(32, 32),
        base_sampling_rate=None,
        stats=UNIT_STATS,
        description="LRA Pathfinder as 32x32 images (binary)",
    ),
}
TASKS = tuple(_TASKS)


def _recipe(
    *,
    lr: float,
    weight_decay: float,
    batch_size: int,
    epochs: int,
    warmup_epochs: int,
    grad_accum: int,
    augment: bool = False,
) -> Mapping[str, Any]:
    """The official training recipe of one preset; ``augment``: the official random crop and flip
    of its data (CIFAR's datamodules, ``datamodules/cifar10.py:76-80``)."""
    return MappingProxyType(
        dict(
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            epochs=epochs,
            warmup_epochs=warmup_epochs,
            grad_accum=grad_accum,
            augment=augment,
        )
    )


def _row(task: str, *, blocks: int, hidden: int, params: int, recipe: Mapping[str, Any], **model: Any) -> Preset:
    """The preset CCNN_{blocks,hidden} of ``task``; ``model``: its CCNN settings beyond the task's."""
    t = _TASKS[task]
    causal = t.data_dim == 1  # every official 1D task is causal with FFT; every 2D task centred and direct
    settings = dict(
        data_dim=t.data_dim,
        in_chans=t.in_chans,
        num_classes=t.num_classes,
        hidden_channels=hidden,
        num_blocks=blocks,
        kernel_net="magnet",
        kernel_layers=3,
        base_resolution=t.base_resolution,
        base_sampling_rate=t.base_sampling_rate,
        causal=causal,
        length_semantics=t.length_semantics,
        mask_threshold=0.1,
        use_fft=causal,
        **model,
    )
    mean, std = t.stats
    return Preset(
        f"{task}_{blocks}_{hidden}",
        task,
        t.modality,
        MappingProxyType(settings),
        recipe,
        mean,
        std,
        params,
        f"CCNN_{{{blocks},{hidden}}} for {t.description}",
    )


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        p.name: p
        for p in (
            _row(
                "smnist",
                blocks=4,
                hidden=140,
                params=198_769,
                kernel_hidden=32,
                omega_0=2976.4910261630357,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.1,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.01, weight_decay=1e-06, batch_size=100, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "smnist",
                blocks=6,
                hidden=380,
                params=1_993_091,
                kernel_hidden=64,
                omega_0=2976.4910261630357,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.1,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.01, weight_decay=1e-06, batch_size=100, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "pmnist",
                blocks=4,
                hidden=140,
                params=198_769,
                kernel_hidden=32,
                omega_0=2985.6332826938724,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.0,
                dropout_type="channel",
                dropout_in=0.2,
                recipe=_recipe(lr=0.02, weight_decay=0.0, batch_size=100, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "pmnist",
                blocks=6,
                hidden=380,
                params=1_993_091,
                kernel_hidden=64,
                omega_0=2985.633,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.0,
                dropout_type="channel",
                dropout_in=0.2,
                recipe=_recipe(lr=0.02, weight_decay=0.0, batch_size=100, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "scifar10",
                blocks=4,
                hidden=140,
                params=199_117,
                kernel_hidden=32,
                omega_0=2386.49,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.0,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.02, weight_decay=0.0, batch_size=50, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "scifar10",
                blocks=6,
                hidden=380,
                params=1_993_983,
                kernel_hidden=64,
                omega_0=4005.146,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.25,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.01, weight_decay=0.0, batch_size=50, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "sc_mfcc",
                blocks=4,
                hidden=140,
                params=202_075,
                kernel_hidden=32,
                omega_0=750.1822972936538,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.2,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.02, weight_decay=1e-06, batch_size=100, epochs=110, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "sc_mfcc",
                blocks=6,
                hidden=380,
                params=2_001_565,
                kernel_hidden=64,
                omega_0=1295.61,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.2,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.02, weight_decay=1e-06, batch_size=10, epochs=160, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "sc_raw",
                blocks=4,
                hidden=140,
                params=198_769,
                kernel_hidden=32,
                omega_0=1295.612417154228,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.2,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.02, weight_decay=1e-06, batch_size=20, epochs=160, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "sc_raw",
                blocks=6,
                hidden=380,
                params=1_993_091,
                kernel_hidden=64,
                omega_0=1295.61,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.2,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.02, weight_decay=1e-06, batch_size=40, epochs=160, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "cifar10",
                blocks=4,
                hidden=140,
                params=201_042,
                kernel_hidden=32,
                omega_0=4231.568793085858,
                kernel_size=33,
                mask_init=0.75,
                dropout=0.1,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(
                    lr=0.02, weight_decay=0.0001, batch_size=64, epochs=350, warmup_epochs=5, grad_accum=1, augment=True
                ),
            ),
            _row(
                "cifar10",
                blocks=6,
                hidden=380,
                params=1_999_366,
                kernel_hidden=64,
                omega_0=976.781,
                kernel_size=33,
                mask_init=0.075,
                dropout=0.15,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(
                    lr=0.01, weight_decay=0.0, batch_size=50, epochs=210, warmup_epochs=10, grad_accum=1, augment=True
                ),
            ),
            _row(
                "cifar100",
                blocks=4,
                hidden=140,
                params=213_732,
                kernel_hidden=32,
                omega_0=3521.5468260391735,
                kernel_size=33,
                mask_init=0.075,
                dropout=0.1,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(
                    lr=0.02,
                    weight_decay=0.0001,
                    batch_size=50,
                    epochs=210,
                    warmup_epochs=10,
                    grad_accum=1,
                    augment=True,
                ),
            ),
            _row(
                "cifar100",
                blocks=6,
                hidden=380,
                params=2_033_656,
                kernel_hidden=64,
                omega_0=679.142,
                kernel_size=31,
                mask_init=0.075,
                dropout=0.2,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(
                    lr=0.02, weight_decay=0.0, batch_size=50, epochs=210, warmup_epochs=10, grad_accum=1, augment=True
                ),
            ),
            _row(
                "stl10",
                blocks=4,
                hidden=140,
                params=201_042,
                kernel_hidden=32,
                omega_0=954.281,
                kernel_size=33,
                mask_init=0.075,
                dropout=0.1,
                dropout_type="element",
                dropout_in=0.0,
                recipe=_recipe(lr=0.02, weight_decay=0.0, batch_size=64, epochs=210, warmup_epochs=10, grad_accum=4),
            ),
            _row(
                "stl10",
                blocks=6,
                hidden=380,
                params=1_999_366,
                kernel_hidden=64,
                omega_0=954.281,
                kernel_size=31,
                mask_init=0.075,
                dropout=0.1,
                dropout_type="element",
                dropout_in=0.0,
                recipe=_recipe(lr=0.01, weight_decay=0.0, batch_size=48, epochs=210, warmup_epochs=10, grad_accum=2),
            ),
            _row(
                "listops",
                blocks=4,
                hidden=140,
                params=198_769,
                kernel_hidden=32,
                omega_0=784.655,
                kernel_size="same",
                mask_init=0.03,
                dropout=0.1,
                dropout_type="element",
                dropout_in=0.0,
                recipe=_recipe(lr=0.001, weight_decay=1e-06, batch_size=50, epochs=60, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "listops",
                blocks=6,
                hidden=380,
                params=1_851_331,
                kernel_hidden=32,
                omega_0=784.655,
                kernel_size="same",
                mask_init=0.03,
                dropout=0.25,
                dropout_type="element",
                dropout_in=0.0,
                recipe=_recipe(lr=0.001, weight_decay=0.0, batch_size=50, epochs=60, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "text",
                blocks=4,
                hidden=140,
                params=197_500,
                kernel_hidden=32,
                omega_0=2966.6045345584143,
                kernel_size="same",
                mask_init=0.015,
                dropout=0.2,
                dropout_type="element",
                dropout_in=0.0,
                recipe=_recipe(lr=0.001, weight_decay=1e-05, batch_size=50, epochs=60, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "text",
                blocks=6,
                hidden=380,
                params=1_989_662,
                kernel_hidden=64,
                omega_0=2966.605,
                kernel_size="same",
                mask_init=0.03,
                dropout=0.3,
                dropout_type="element",
                dropout_in=0.0,
                recipe=_recipe(lr=0.02, weight_decay=0.0, batch_size=25, epochs=60, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "image",
                blocks=4,
                hidden=140,
                params=198_769,
                kernel_hidden=32,
                omega_0=4005.146,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.1,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.01, weight_decay=0.0, batch_size=50, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "image",
                blocks=6,
                hidden=380,
                params=1_993_091,
                kernel_hidden=64,
                omega_0=4005.146,
                kernel_size="same",
                mask_init=0.075,
                dropout=0.1,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.01, weight_decay=0.0, batch_size=50, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "pathfinder",
                blocks=4,
                hidden=140,
                params=197_500,
                kernel_hidden=32,
                omega_0=2272.557,
                kernel_size="same",
                mask_init=0.4,
                dropout=0.2,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.01, weight_decay=0.0, batch_size=100, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "pathfinder",
                blocks=6,
                hidden=380,
                params=1_989_662,
                kernel_hidden=64,
                omega_0=2272.557,
                kernel_size="same",
                mask_init=0.4,
                dropout=0.1,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.01, weight_decay=1e-06, batch_size=100, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "image2d",
                blocks=4,
                hidden=140,
                params=200_694,
                kernel_hidden=32,
                omega_0=2085.433586112234,
                kernel_size=33,
                mask_init=0.075,
                dropout=0.2,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.02, weight_decay=1e-06, batch_size=50, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "image2d",
                blocks=6,
                hidden=380,
                params=1_998_474,
                kernel_hidden=64,
                omega_0=2306.081,
                kernel_size=33,
                mask_init=0.075,
                dropout=0.2,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.02, weight_decay=0.0, batch_size=50, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "pathfinder2d",
                blocks=4,
                hidden=140,
                params=199_425,
                kernel_hidden=32,
                omega_0=1239.138351528754,
                kernel_size=33,
                mask_init=0.225,
                dropout=0.1,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.01, weight_decay=0.0, batch_size=100, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
            _row(
                "pathfinder2d",
                blocks=6,
                hidden=380,
                params=1_995_045,
                kernel_hidden=64,
                omega_0=3908.323,
                kernel_size=33,
                mask_init=0.225,
                dropout=0.2,
                dropout_type="channel",
                dropout_in=0.0,
                recipe=_recipe(lr=0.01, weight_decay=0.0, batch_size=50, epochs=210, warmup_epochs=10, grad_accum=1),
            ),
        )
    }
)


def preset_model_kwargs(preset: str, **overrides: Any) -> dict[str, Any]:
    """The CCNN arguments of ``preset`` with ``overrides`` applied (any spelling of
    :data:`ccnn_hf.settings.ALIASES`, e.g. ``width`` / ``depth``); an unknown name raises
    :class:`ccnn_hf.settings.UnknownSettingError` (a TypeError and a ValueError).

    Changing ``data_dim`` without a ``base_resolution`` repeats the preset's first base size
    along every axis; ``kernel_size="same"`` then follows that resolution.
    """
    given = named_values(overrides, aliases=True)
    kwargs = {**get_preset(preset).model, **given}
    base = tuple(kwargs["base_resolution"])
    if len(base) != kwargs["data_dim"] and "base_resolution" not in given:
        kwargs["base_resolution"] = (base[0],) * kwargs["data_dim"]
        if not isinstance(kwargs["kernel_size"], str) and "kernel_size" not in given:
            size = kwargs["kernel_size"]
            kwargs["kernel_size"] = size if isinstance(size, int) else size[0]
    if "causal" not in given and kwargs["data_dim"] != 1:
        kwargs["causal"] = False
    return kwargs


def list_presets(task: str | None = None) -> list[str]:
    """Names of all presets (of one task if given)."""
    return [name for name, p in PRESETS.items() if task is None or p.task == task]


def get_preset(name: str) -> Preset:
    """Look up a preset by name, with a helpful error for unknown names."""
    try:
        return PRESETS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, PRESETS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown preset {name!r}.{hint} Available: {', '.join(PRESETS)}") from None
