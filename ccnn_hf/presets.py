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

__all__ = ["Preset", "PRESETS", "get_preset", "list_presets", "TASKS"]

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


# task: (modality, data_dim, in_channels, classes, base_resolution, base_sampling_rate, stats, description)
_TASKS: dict[str, tuple] = {
    "smnist": ("sequence", 1, 1, 10, (784,), None, MNIST_STATS, "sequential MNIST (row-major, 784 steps)"),
    "pmnist": ("sequence", 1, 1, 10, (784,), None, MNIST_STATS, "permuted sequential MNIST"),
    "scifar10": ("sequence", 1, 3, 10, (1024,), None, CIFAR10_STATS, "sequential CIFAR-10 (3 channels x 1024 steps)"),
    "sc_mfcc": ("sequence", 1, 20, 10, (161,), None, UNIT_STATS, "Speech Commands, 20 MFCCs x 161 frames"),
    "sc_raw": ("audio", 1, 1, 10, (16000,), 16000.0, UNIT_STATS, "Speech Commands raw waveform, 16 kHz"),
    "cifar10": ("image", 2, 3, 10, (32, 32), None, CIFAR10_STATS, "CIFAR-10 images"),
    "cifar100": ("image", 2, 3, 100, (32, 32), None, CIFAR100_STATS, "CIFAR-100 images"),
    "stl10": ("image", 2, 3, 10, (256, 256), None, STL10_STATS, "STL-10 images resized to 256x256"),
    "listops": ("tokens", 1, 1, 10, (2048,), 1.0, UNIT_STATS, "LRA ListOps, raw token ids as floats"),
    "text": ("tokens", 1, 1, 1, (4096,), 1.0, UNIT_STATS, "LRA IMDB byte-level text, raw ids as floats (binary)"),
    "image": ("sequence", 1, 1, 10, (1024,), None, LRA_GRAY_STATS, "LRA Image: grayscale CIFAR-10 as 1024 steps"),
    "pathfinder": ("sequence", 1, 1, 1, (1024,), None, UNIT_STATS, "LRA Pathfinder 32x32 as 1024 steps (binary)"),
    "image2d": ("image", 2, 1, 10, (32, 32), None, LRA_GRAY_STATS, "LRA Image as 2D grayscale CIFAR-10"),
    "pathfinder2d": ("image", 2, 1, 1, (32, 32), None, UNIT_STATS, "LRA Pathfinder as 32x32 images (binary)"),
}
TASKS = tuple(_TASKS)

# (task, blocks, hidden, kernel_hidden, omega_0, kernel_size, mask_init, dropout, dropout_type, dropout_in,
#  lr, weight_decay, batch_size, epochs, warmup_epochs, grad_accum, params)
_ROWS = [
    ("smnist", 4, 140, 32, 2976.4910261630357, "same", 0.075, 0.1, "channel", 0.0, 0.01, 1e-6, 100, 210, 10, 1, 198_769),
    ("smnist", 6, 380, 64, 2976.4910261630357, "same", 0.075, 0.1, "channel", 0.0, 0.01, 1e-6, 100, 210, 10, 1, 1_993_091),
    ("pmnist", 4, 140, 32, 2985.6332826938724, "same", 0.075, 0.0, "channel", 0.2, 0.02, 0.0, 100, 210, 10, 1, 198_769),
    ("pmnist", 6, 380, 64, 2985.633, "same", 0.075, 0.0, "channel", 0.2, 0.02, 0.0, 100, 210, 10, 1, 1_993_091),
    ("scifar10", 4, 140, 32, 2386.49, "same", 0.075, 0.0, "channel", 0.0, 0.02, 0.0, 50, 210, 10, 1, 199_117),
    ("scifar10", 6, 380, 64, 4005.146, "same", 0.075, 0.25, "channel", 0.0, 0.01, 0.0, 50, 210, 10, 1, 1_993_983),
    ("sc_mfcc", 4, 140, 32, 750.1822972936538, "same", 0.075, 0.2, "channel", 0.0, 0.02, 1e-6, 100, 110, 10, 1, 202_075),
    ("sc_mfcc", 6, 380, 64, 1295.61, "same", 0.075, 0.2, "channel", 0.0, 0.02, 1e-6, 10, 160, 10, 1, 2_001_565),
    ("sc_raw", 4, 140, 32, 1295.612417154228, "same", 0.075, 0.2, "channel", 0.0, 0.02, 1e-6, 20, 160, 10, 1, 198_769),
    ("sc_raw", 6, 380, 64, 1295.61, "same", 0.075, 0.2, "channel", 0.0, 0.02, 1e-6, 40, 160, 10, 1, 1_993_091),
    ("cifar10", 4, 140, 32, 4231.568793085858, 33, 0.75, 0.1, "channel", 0.0, 0.02, 1e-4, 64, 350, 5, 1, 201_042),
    ("cifar10", 6, 380, 64, 976.781, 33, 0.075, 0.15, "channel", 0.0, 0.01, 0.0, 50, 210, 10, 1, 1_999_366),
    ("cifar100", 4, 140, 32, 3521.5468260391735, 33, 0.075, 0.1, "channel", 0.0, 0.02, 1e-4, 50, 210, 10, 1, 213_732),
    ("cifar100", 6, 380, 64, 679.142, 31, 0.075, 0.2, "channel", 0.0, 0.02, 0.0, 50, 210, 10, 1, 2_033_656),
    ("stl10", 4, 140, 32, 954.281, 33, 0.075, 0.1, "element", 0.0, 0.02, 0.0, 64, 210, 10, 4, 201_042),
    ("stl10", 6, 380, 64, 954.281, 31, 0.075, 0.1, "element", 0.0, 0.01, 0.0, 48, 210, 10, 2, 1_999_366),
    ("listops", 4, 140, 32, 784.655, "same", 0.03, 0.1, "element", 0.0, 0.001, 1e-6, 50, 60, 10, 1, 198_769),
    ("listops", 6, 380, 32, 784.655, "same", 0.03, 0.25, "element", 0.0, 0.001, 0.0, 50, 60, 10, 1, 1_851_331),
    ("text", 4, 140, 32, 2966.6045345584143, "same", 0.015, 0.2, "element", 0.0, 0.001, 1e-5, 50, 60, 10, 1, 197_500),
    ("text", 6, 380, 64, 2966.605, "same", 0.03, 0.3, "element", 0.0, 0.02, 0.0, 25, 60, 10, 1, 1_989_662),
    ("image", 4, 140, 32, 4005.146, "same", 0.075, 0.1, "channel", 0.0, 0.01, 0.0, 50, 210, 10, 1, 198_769),
    ("image", 6, 380, 64, 4005.146, "same", 0.075, 0.1, "channel", 0.0, 0.01, 0.0, 50, 210, 10, 1, 1_993_091),
    ("pathfinder", 4, 140, 32, 2272.557, "same", 0.4, 0.2, "channel", 0.0, 0.01, 0.0, 100, 210, 10, 1, 197_500),
    ("pathfinder", 6, 380, 64, 2272.557, "same", 0.4, 0.1, "channel", 0.0, 0.01, 1e-6, 100, 210, 10, 1, 1_989_662),
    ("image2d", 4, 140, 32, 2085.433586112234, 33, 0.075, 0.2, "channel", 0.0, 0.02, 1e-6, 50, 210, 10, 1, 200_694),
    ("image2d", 6, 380, 64, 2306.081, 33, 0.075, 0.2, "channel", 0.0, 0.02, 0.0, 50, 210, 10, 1, 1_998_474),
    ("pathfinder2d", 4, 140, 32, 1239.138351528754, 33, 0.225, 0.1, "channel", 0.0, 0.01, 0.0, 100, 210, 10, 1, 199_425),
    ("pathfinder2d", 6, 380, 64, 3908.323, 33, 0.225, 0.2, "channel", 0.0, 0.01, 0.0, 50, 210, 10, 1, 1_995_045),
]


def _make(row: tuple) -> Preset:
    (task, blocks, hidden, k_hidden, omega_0, k_size, mask_init, dropout, dropout_type, dropout_in,
     lr, wd, batch, epochs, warmup, accum, params) = row
    modality, data_dim, in_ch, classes, base_res, base_rate, (mean, std), description = _TASKS[task]
    causal = data_dim == 1  # every official 1D task is causal with FFT; every 2D task centred and direct
    model = dict(
        data_dim=data_dim, in_chans=in_ch, num_classes=classes, hidden_channels=hidden, num_blocks=blocks,
        kernel_net="magnet", kernel_hidden=k_hidden, kernel_layers=3, omega_0=omega_0,
        kernel_size=k_size, base_resolution=base_res, base_sampling_rate=base_rate, causal=causal,
        mask_init=mask_init, mask_threshold=0.1, dropout=dropout, dropout_type=dropout_type,
        dropout_in=dropout_in, use_fft=causal,
    )
    train = dict(lr=lr, weight_decay=wd, batch_size=batch, epochs=epochs, warmup_epochs=warmup, grad_accum=accum)
    name = f"{task}_{blocks}_{hidden}"
    return Preset(name, task, modality, MappingProxyType(model), MappingProxyType(train), mean, std, params,
                  f"CCNN_{{{blocks},{hidden}}} for {description}")


PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in map(_make, _ROWS)})


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
