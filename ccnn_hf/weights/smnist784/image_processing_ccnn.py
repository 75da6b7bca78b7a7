"""Image processor of CCNN models: rescale and normalise, no forced resize (any resolution works)."""

from __future__ import annotations

import json
import logging
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms.v2 import functional as tvF
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling
from transformers.processing_utils import ImagesKwargs, Unpack

from .validation import normalisation_problems

__all__ = ["CCNNImageProcessor"]

logger = logging.getLogger(__name__)


class CCNNImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    num_channels (`int`, *optional*, defaults to `self.num_channels`):
        Channels the model reads: 1 converts colour images to grayscale, 3 repeats grayscale ones.
    """

    num_channels: int


class CCNNImageProcessor(TorchvisionBackend):
    """Rescales to [0, 1] and normalises with the preset's mean/std. Images keep their size by
    default: a continuous CCNN samples its kernels on whatever grid the image has. Set
    ``do_resize=True`` and ``size={"height": h, "width": w}`` to resize anyway (bicubic).
    A batch of differently sized images cannot be stacked into one tensor: process them one by
    one, or resize.

    A CCNN model's processor is determined by its config (:meth:`model_settings`: ``mean``, ``std``,
    ``num_channels``); ``save_pretrained`` of a model writes that processor. A 2D image folder's
    ``config.json`` also carries timm's ``pretrained_cfg``, and transformers >= 5.25 then reads a
    *local* folder's image processor from ``config.json`` rather than ``preprocessor_config.json``
    (as for a timm checkpoint): :meth:`from_dict` recognises a model config and builds the model's
    processor from it, so ``AutoImageProcessor`` and ``pipeline`` give the same processor on every
    transformers version. A processor saved with other settings into such a folder is read back by
    ``CCNNImageProcessor.from_pretrained`` (always ``preprocessor_config.json``)."""

    valid_kwargs = CCNNImageProcessorKwargs
    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BICUBIC
    image_mean = [0.4914, 0.4822, 0.4465]
    image_std = [0.247, 0.243, 0.261]
    size = None
    do_resize = False
    do_rescale = True
    do_normalize = True
    num_channels = 3

    def __init__(self, **kwargs: Unpack[CCNNImageProcessorKwargs]) -> None:
        super().__init__(**kwargs)
        mean, std = (self._per_channel(v) for v in (self.image_mean, self.image_std))
        problems = normalisation_problems(mean, std, self.num_channels, ("image_mean", "image_std"))
        if problems:  # a zero or NaN std would turn every pixel into inf / NaN
            raise ValueError("invalid CCNNImageProcessor: " + "; ".join(problems))

    @staticmethod
    def model_settings(config: Mapping[str, Any]) -> dict[str, Any]:
        """The processor settings of a CCNN model config (``CCNNConfig.to_dict()`` or its ``config.json``)."""
        return dict(
            image_mean=list(config["mean"]), image_std=list(config["std"]), num_channels=int(config["num_channels"])
        )

    @classmethod
    def from_dict(cls, image_processor_dict: dict[str, Any], **kwargs: Any):
        """transformers' ``from_dict``; given a CCNN model config (``model_type`` ``"ccnn"``, what
        transformers >= 5.25 hands over for a local folder with timm's keys), the model's processor."""
        if image_processor_dict.get("model_type") == "ccnn":
            pointer = {k: v for k, v in image_processor_dict.get("auto_map", {}).items() if k == "AutoImageProcessor"}
            image_processor_dict = {
                **cls.model_settings(image_processor_dict),
                **({"auto_map": pointer} if pointer else {}),
            }
        return super().from_dict(image_processor_dict, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """transformers' ``save_pretrained``, with a warning when the folder's model config gives
        another processor (see :func:`warn_if_auto_reads_another_processor`)."""
        saved = super().save_pretrained(save_directory, *args, **kwargs)
        warn_if_auto_reads_another_processor(save_directory)
        return saved

    def _per_channel(self, value):
        """A mean / std as a list (one number stands for every channel)."""
        if isinstance(value, numbers.Real):
            return [value] * self.num_channels
        return list(value) if isinstance(value, tuple) else value

    def _standardize_kwargs(self, **kwargs):
        # A processor without resizing has no size; only validate one when resizing is asked for.
        if not kwargs.get("do_resize"):
            kwargs["size"] = None
        return super()._standardize_kwargs(**kwargs)

    def _preprocess(
        self,
        images: list[torch.Tensor],
        do_resize,
        size,
        resample,
        do_rescale,
        rescale_factor,
        do_normalize,
        image_mean,
        image_std,
        return_tensors,
        num_channels: int = 3,
        **kwargs,
    ) -> BatchFeature:
        processed = []
        for image in images:  # [C, H, W]
            if do_resize:
                image = self.resize(image, size=size, resample=resample)
            if num_channels == 1 and image.shape[0] == 3:
                image = tvF.rgb_to_grayscale(image)
            elif num_channels == 3 and image.shape[0] == 1:
                image = image.repeat(3, 1, 1)
            processed.append(
                self.rescale_and_normalize(
                    image.unsqueeze(0), do_rescale, rescale_factor, do_normalize, image_mean, image_std
                )[0]
            )
        if return_tensors and len({tuple(p.shape) for p in processed}) > 1:
            sizes = sorted({tuple(p.shape[-2:]) for p in processed})
            raise ValueError(
                f"images of different sizes {sizes} cannot be batched into one tensor; process them "
                "separately or pass do_resize=True with a size"
            )
        return BatchFeature(data={"pixel_values": processed}, tensor_type=return_tensors)


def warn_if_auto_reads_another_processor(folder) -> None:
    """Warn when a folder's ``preprocessor_config.json`` differs from the processor of its CCNN
    ``config.json`` with timm's keys: transformers >= 5.25 builds ``AutoImageProcessor`` and
    ``pipeline``'s processor of such a local folder from ``config.json`` (:meth:`CCNNImageProcessor.from_dict`)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        saved = json.loads((folder / "preprocessor_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if config.get("model_type") != "ccnn" or "pretrained_cfg" not in config or "image_mean" not in saved:
        return
    mine = CCNNImageProcessor.from_dict(saved).to_dict()
    derived = CCNNImageProcessor.from_dict(config).to_dict()
    differ = sorted(k for k in mine.keys() | derived.keys() if k != "auto_map" and mine.get(k) != derived.get(k))
    if differ:
        logger.warning(
            f"{folder}: preprocessor_config.json differs from the model's processor in {', '.join(differ)}; "
            "transformers >= 5.25 builds AutoImageProcessor and pipeline of this local folder from config.json "
            "(mean, std, num_channels), so load this processor with CCNNImageProcessor.from_pretrained"
        )
