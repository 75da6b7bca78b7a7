"""transformers models of the CCNN family: a thin layer over the plain-PyTorch :class:`CCNN`.

``CCNNModel`` (features), ``CCNNForImageClassification`` (``pixel_values``, 2D or 3D),
``CCNNForSequenceClassification`` (float sequences ``[B, C, L]`` or token ids) and
``CCNNForAudioClassification`` (raw waveforms with their sampling rate).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
    SequenceClassifierOutput,
)

from .ccnn import CCNN, CCNNBlock, Sampling
from .checkpointing import updates_stats_once
from .configuration_ccnn import CCNNConfig
from .continuous_conv import SeparableContinuousConv
from .timm_config import timm_fields
from .validation import dtype_problems, key_problems, refuse_checkpoint, value_problems

logger = logging.getLogger(__name__)

__all__ = [
    "CCNNPreTrainedModel",
    "CCNNLayer",
    "CCNNModel",
    "CCNNForImageClassification",
    "CCNNForSequenceClassification",
    "CCNNForAudioClassification",
    "MODEL_CLASSES",
]


class CCNNPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading conventions shared by the CCNN models.

    The backbone initialises itself when built (explicit, for its base resolution); the
    transformers init only fills tensors that a checkpoint did not provide. Loading is strict:
    ``from_pretrained`` refuses a checkpoint with missing, unexpected or wrongly typed tensors
    (a whole new classifier excepted), naming them. ``forward`` takes only the arguments it
    names: anything else raises a TypeError. Every model takes ``attention_mask`` (padding),
    ``observed_mask`` (missing values) and ``timestamps`` (irregular sampling), with the
    semantics of :mod:`ccnn_hf.masking`.
    """

    config_class = CCNNConfig
    config: CCNNConfig
    base_model_prefix = "ccnn"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["CCNNLayer"]
    # Generator weights hold sine frequencies of up to ~1e5 rad per unit: bf16 would ruin them.
    _keep_in_fp32_modules_strict = ["kernel_net"]
    # Modules outside the backbone that a checkpoint may lack as a whole (a backbone checkpoint gets
    # new ones), and the one it may bring when this model has none (a classifier loaded as a backbone;
    # a token embedding is never dropped: the model would read raw ids instead).
    _new_modules_allowed = ("classifier", "embed_tokens")
    _extra_modules_allowed = ("classifier",)

    def __init__(self, config: CCNNConfig, *inputs, **kwargs) -> None:
        config.validate_ccnn()  # also fields set after construction: from_pretrained(path, hidden_channels=...)
        super().__init__(config, *inputs, **kwargs)

    @staticmethod
    def _load_pretrained_model(model, state_dict, checkpoint_files, load_config, expected_keys=None):
        """transformers' loading, after refusing tensors of another kind than the model's (an int32
        weight would be cast to float without a word), named with their files. The one private hook
        left: transformers resolves the checkpoint files (Hub, cache, shards, variants) and hands them
        over only here, and after loading neither the stored kinds nor the file of a corrupt header
        can be told any more."""
        expected = {key: tensor.dtype for key, tensor in model.state_dict().items()}
        for source, stored in _stored_dtypes(state_dict, checkpoint_files):
            stored = _to_model_keys(stored, expected, model.base_model_prefix)
            refuse_checkpoint(source, dtype_problems(stored, expected))
        return PreTrainedModel._load_pretrained_model(model, state_dict, checkpoint_files, load_config, expected_keys)

    @classmethod
    def from_pretrained(cls, *args, output_loading_info: bool = False, **kwargs):
        """transformers' ``from_pretrained``, then its loading report read: a checkpoint with missing or
        unexpected tensors (except a whole new or extra head, see :func:`ccnn_hf.validation.key_problems`),
        or, with ``ignore_mismatched_sizes=True``, tensors of another shape outside the head, is refused
        with a ValueError naming them, unless ``output_loading_info=True`` asks for the report instead:
        then the model loads, with a warning naming the tensors, and the report is returned. A CCNN
        never runs on weights the checkpoint did not hold without being told so. NaN or infinite values and
        impossible mask widths are always refused (:func:`~ccnn_hf.validation.value_problems`), and files
        and tensor kinds are checked before anything loads (:meth:`_load_pretrained_model`)."""
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        name = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        source = f"the checkpoint of {name}"
        problems = key_problems(
            info["missing_keys"],
            info["unexpected_keys"],
            list(model.state_dict()),
            model._new_modules_allowed,
            model._extra_modules_allowed,
        )
        # ignore_mismatched_sizes=True re-initialises whatever has another shape: meant for a new head only.
        reshaped = sorted(
            f"{key} (stored {tuple(stored)}, the model's {tuple(expected)})"
            for key, stored, expected in info["mismatched_keys"]
            if not any(key.startswith(head + ".") for head in model._new_modules_allowed)
        )
        if reshaped:
            problems.append(
                "tensors of another shape outside the head, which ignore_mismatched_sizes=True would re-initialise: "
                + ", ".join(reshaped)
            )
        if problems and output_loading_info:
            logger.warning(
                f"{source} does not match the model (loaded as asked by output_loading_info=True; "
                "the tensors below keep their initialisation): " + "; ".join(problems)
            )
        else:
            refuse_checkpoint(source, problems)
        refuse_checkpoint(source, value_problems(model.state_dict()))  # the same rule as CCNN.load_state_dict
        return (model, info) if output_loading_info else model

    def default_processor(self):
        """The processor matching this model's config: images get a :class:`CCNNImageProcessor`,
        audio a :class:`CCNNFeatureExtractor`; other inputs need none (None)."""
        config = self.config
        if config.modality == "image" and config.data_dim == 2:
            from .image_processing_ccnn import CCNNImageProcessor

            return CCNNImageProcessor(**CCNNImageProcessor.model_settings(config.to_dict()))
        if config.modality == "audio":
            from .feature_extraction_ccnn import CCNNFeatureExtractor

            return CCNNFeatureExtractor(
                sampling_rate=int(config.base_sampling_rate or 16000), mean=config.mean[0], std=config.std[0]
            )
        return None

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as transformers does, plus the default processor config when the folder has none."""
        super().save_pretrained(save_directory, *args, **kwargs)
        processor = self.default_processor()
        folder = Path(save_directory)
        # One folder / Hub repo for transformers and timm: 2D image configs also carry timm's keys
        # (transformers keeps them as extra attributes; timm.create_model("hf-hub:...") reads them).
        timm_keys = timm_fields(self.config, None if hasattr(self, "classifier") else 0)
        if timm_keys and kwargs.get("is_main_process", True) and (folder / "config.json").is_file():
            import json

            saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            fields = {**saved, **timm_keys, **_processor_pointer(processor, saved.get("auto_map", {}))}
            (folder / "config.json").write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if (
            processor is not None
            and kwargs.get("is_main_process", True)
            and not (folder / "preprocessor_config.json").exists()
        ):
            processor.save_pretrained(folder)
        elif timm_keys and kwargs.get("is_main_process", True):
            from .image_processing_ccnn import warn_if_auto_reads_another_processor

            warn_if_auto_reads_another_processor(folder)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, SeparableContinuousConv):
            module.reset_parameters()
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight)
            module.weight.mul_(self.config.initializer_factor)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.initializer_factor)
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.kernel_size == (1,) * (
            module.weight.ndim - 2
        ):
            nn.init.kaiming_normal_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            module.reset_parameters()


def _stored_dtypes(state_dict: dict | None, checkpoint_files: list[str] | None):
    """(source, {key: dtype}) of a given state dict or of each checkpoint file (headers only;
    safetensors names its dtypes "F32", "I32"...)."""
    if state_dict is not None:
        yield "the state dict", {key: tensor.dtype for key, tensor in state_dict.items()}
        return
    for file in checkpoint_files or []:
        yield file, _file_dtypes(file)


def _file_dtypes(file: str) -> dict:
    """{key: dtype} of a checkpoint file, read without its data; a ValueError naming the file when
    it is corrupt, truncated, or a pickle holding more than tensors (never unpickled)."""
    if file.endswith(".safetensors"):
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(file, framework="pt") as handle:
                return {key: handle.get_slice(key).get_dtype() for key in handle.keys()}
        except SafetensorError as error:
            raise ValueError(f"{file} is not a readable safetensors file (corrupt or truncated?): {error}") from None
    try:  # a pickle: tensors only (weights_only), data left on disk (meta)
        loaded = torch.load(file, map_location="meta", weights_only=True)
    except pickle.UnpicklingError as error:
        lines = str(error).strip().splitlines()
        detail = next((line for line in lines if "GLOBAL" in line), lines[0] if lines else "")
        raise ValueError(
            f"{file} holds objects other than tensors; refusing to unpickle it. Details: {detail}"
        ) from None
    return {key: tensor.dtype for key, tensor in loaded.items() if isinstance(tensor, torch.Tensor)}


def _to_model_keys(stored: dict, expected: dict, prefix: str) -> dict:
    """Checkpoint keys as the model names them (with or without the base-model prefix)."""

    def rename(key: str) -> str:
        if key in expected:
            return key
        return key[len(prefix) + 1 :] if key.startswith(prefix + ".") else f"{prefix}.{key}"

    return {rename(key): dtype for key, dtype in stored.items()}


def _processor_pointer(processor, auto_map: dict[str, str]) -> dict:
    """``config.json`` keys naming the image processor (``image_processor_type``, ``auto_map``).

    timm's ``pretrained_cfg`` in a local folder's ``config.json`` makes transformers look for the image
    processor in ``config.json`` instead of ``preprocessor_config.json``; these keys name the processor
    class there (registered in-process, or remote code where ccnn_hf is not installed). Up to 5.24 the
    class then reads ``preprocessor_config.json``; from 5.25 it is built from ``config.json``, which
    :meth:`CCNNImageProcessor.from_dict` reads as the model's processor (the one saved beside it).
    """
    if processor is None:
        return {}
    name = type(processor).__name__
    return {
        "image_processor_type": name,
        "auto_map": {**auto_map, "AutoImageProcessor": f"{type(processor).__module__.rsplit('.', 1)[-1]}.{name}"},
    }


def _mark_initialized(module: nn.Module) -> None:
    """Keep transformers' post-construction init away from modules that initialised themselves.

    On the meta device (``from_pretrained``) nothing is marked, so tensors missing from a
    checkpoint still get :meth:`CCNNPreTrainedModel._init_weights`.
    """
    if not any(p.is_meta for p in module.parameters()):
        for m in module.modules():
            m._is_hf_initialized = True


class CCNNLayer(CCNNBlock, GradientCheckpointingLayer):
    """A CCNN block that transformers' activation checkpointing checkpoints (same weights and keys).

    Whatever checkpoint function transformers installs, the recomputation in backward leaves the
    block's BatchNorm running statistics as the forward set them (:mod:`ccnn_hf.checkpointing`)."""

    @property
    def _gradient_checkpointing_func(self) -> Callable[..., Any]:
        checkpoint = self.__dict__.get("_checkpoint_func")
        if checkpoint is None:  # (the attribute protocol: hasattr and getattr expect AttributeError)
            raise AttributeError(f"{type(self).__name__} has no checkpoint function: activation checkpointing is off")
        return partial(_checkpoint_once, self, checkpoint)

    @_gradient_checkpointing_func.setter
    def _gradient_checkpointing_func(self, checkpoint: Callable[..., Any]) -> None:
        if isinstance(checkpoint, partial) and checkpoint.func is _checkpoint_once:  # our own getter's value back
            checkpoint = checkpoint.args[1]
        self.__dict__["_checkpoint_func"] = checkpoint

    @_gradient_checkpointing_func.deleter
    def _gradient_checkpointing_func(self) -> None:  # (unittest.mock.patch.object deletes before restoring)
        self.__dict__.pop("_checkpoint_func", None)


def _checkpoint_once(layer: nn.Module, checkpoint: Callable[..., Any], function: Callable[..., Any], *args, **kwargs):
    """``checkpoint(function, ...)`` with ``layer``'s BatchNorm statistics updated by the first call only."""
    return checkpoint(updates_stats_once(layer, function), *args, **kwargs)


class CCNNEncoder(CCNN):
    """The plain-PyTorch :class:`CCNN` backbone with :class:`CCNNLayer` blocks."""

    block_class = CCNNLayer


class CCNNModel(CCNNPreTrainedModel):
    """The CCNN backbone: returns the final features, their global mean and every block's output."""

    def __init__(self, config: CCNNConfig) -> None:
        super().__init__(config)
        self.encoder = CCNNEncoder(**config.ccnn_kwargs())
        _mark_initialized(self.encoder)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        resolution: int | Sequence[int] | None = None,
        sampling_rate: float | torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        observed_mask: torch.Tensor | None = None,
        timestamps: torch.Tensor | None = None,
    ) -> BaseModelOutputWithPoolingAndNoAttention | tuple:
        """
        Args:
            pixel_values / input_values: ``[B, C, *spatial]`` input (images and volumes, or
                sequences and waveforms).
            resolution: grid size the input corresponds to, when its shape does not say it.
            sampling_rate: the input's sampling rate (rate-defined models such as audio).
            attention_mask: ``[B, *spatial]``, 1 = real, 0 = padding (pooling skips padding).
            observed_mask: ``[B, *spatial]`` or ``[B, C, *spatial]``, 1 = observed.
            timestamps: ``[B, L]`` observation times in base-rate samples (1D); the features
                are then on the regular grid the observations are binned onto.
        """
        x = pixel_values if pixel_values is not None else input_values
        if x is None:
            raise ValueError("pass pixel_values (images/volumes) or input_values (sequences/audio)")
        features, hidden, valid = self.encoder.encode_masked(
            x, Sampling(resolution, sampling_rate, attention_mask, observed_mask, timestamps)
        )
        pooled = self.encoder.head.pool(features, valid)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        hidden_states = tuple(hidden) if output_hidden_states else None
        if not (return_dict if return_dict is not None else self.config.return_dict):
            return tuple(v for v in (features, pooled, hidden_states) if v is not None)
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=features, pooler_output=pooled, hidden_states=hidden_states
        )


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, config: CCNNConfig) -> torch.Tensor:
    """Loss by ``config.problem_type`` (inferred on first use as transformers does), with checks.

    ``multi_label_classification`` with one label is the binary single-logit task (BCE).
    """
    num_labels = logits.shape[-1]
    if config.problem_type is None:
        if num_labels == 1 and labels.is_floating_point():
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int, torch.int16, torch.uint8, torch.bool) and num_labels > 1:
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    batch = logits.shape[0]
    if config.problem_type == "single_label_classification":
        if labels.is_floating_point() or labels.shape != (batch,):
            raise ValueError(
                f"single-label classification needs integer labels of shape ({batch},), "
                f"got {labels.dtype} {tuple(labels.shape)}"
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_labels):
            raise ValueError(
                f"labels must lie in [0, {num_labels - 1}], got values from {int(labels.min())} to {int(labels.max())}"
            )
        return F.cross_entropy(logits, labels.long())
    if config.problem_type == "multi_label_classification":
        if labels.shape == (batch,) and num_labels == 1:
            labels = labels.view(batch, 1)
        if labels.shape != logits.shape:
            raise ValueError(f"multi-label targets must have shape {tuple(logits.shape)}, got {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < 0 or labels.max() > 1):
            raise ValueError("multi-label / binary targets must lie in [0, 1]")
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    if config.problem_type == "regression":
        if labels.numel() != logits.numel():
            raise ValueError(f"regression targets must have {logits.numel()} values, got shape {tuple(labels.shape)}")
        return F.mse_loss(
            logits.view(-1) if num_labels == 1 else logits,
            labels.to(logits.dtype).view_as(logits.view(-1) if num_labels == 1 else logits),
        )
    raise ValueError(f"unsupported problem_type {config.problem_type!r}")


class _CCNNClassifier(CCNNPreTrainedModel):
    """Backbone + global mean + linear classifier (``num_labels=0``: no classifier)."""

    def __init__(self, config: CCNNConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.ccnn = CCNNModel(config)
        self.classifier = (
            nn.Linear(config.hidden_channels, config.num_labels) if config.num_labels > 0 else nn.Identity()
        )
        if config.num_labels > 0:
            self.ccnn.encoder.init_classifier(self.classifier)
            with torch.no_grad():
                self.classifier.weight.mul_(config.initializer_factor)
            _mark_initialized(self.classifier)
        self.post_init()

    def _one_channel(self, values: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` series / mono waveforms of a one-channel 1D model as ``[B, 1, L]`` (the
        layout of transformers' audio extractors and collators); other inputs unchanged."""
        if isinstance(values, torch.Tensor) and values.ndim == 2 and self.config.num_channels == 1:
            return values.unsqueeze(1)
        return values

    def _classify(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None,
        sampling: Sampling,
        output_hidden_states: bool | None,
        return_dict: bool | None,
        output_cls: type,
    ):
        outputs = self.ccnn(
            input_values=x, output_hidden_states=output_hidden_states, return_dict=True, **sampling.as_kwargs()
        )
        logits = self.classifier(outputs.pooler_output)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        if not (return_dict if return_dict is not None else self.config.return_dict):
            out = (logits,) + ((outputs.hidden_states,) if outputs.hidden_states is not None else ())
            return ((loss,) + out) if loss is not None else out
        return output_cls(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class CCNNForImageClassification(_CCNNClassifier):
    """CCNN image (2D) or volume (3D) classifier on ``pixel_values [B, C, H, W(, D)]`` of any size."""

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        resolution: int | Sequence[int] | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        observed_mask: torch.Tensor | None = None,
    ) -> ImageClassifierOutputWithNoAttention | tuple:
        """``observed_mask`` (``[B, H, W]`` or ``[B, C, H, W]``): missing pixels;
        ``attention_mask`` (``[B, H, W]``): padding (see :mod:`ccnn_hf.masking`)."""
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return self._classify(
            pixel_values,
            labels,
            Sampling(resolution, attention_mask=attention_mask, observed_mask=observed_mask),
            output_hidden_states,
            return_dict,
            ImageClassifierOutputWithNoAttention,
        )


class CCNNForSequenceClassification(_CCNNClassifier):
    """CCNN sequence classifier on float sequences ``input_values [B, C, L]`` (``[B, L]`` with one
    channel, as :class:`CCNNFeatureExtractor` and transformers' collators give them) or token ids
    ``input_ids [B, L]`` (raw ids as floats in one channel, as the official LRA models read them,
    or through a token embedding when ``config.use_token_embedding``)."""

    main_input_name = "input_values"
    input_modalities = ("text",)

    def __init__(self, config: CCNNConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.num_channels) if config.use_token_embedding else None
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        sampling_rate: float | None = None,
        resolution: int | Sequence[int] | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        observed_mask: torch.Tensor | None = None,
        timestamps: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput | tuple:
        """``attention_mask`` ``[B, L]`` (padding), ``observed_mask`` ``[B, L]`` / ``[B, C, L]``
        (missing values), ``timestamps`` ``[B, L]`` (irregular sampling): see :mod:`ccnn_hf.masking`."""
        if (input_values is None) == (input_ids is None):
            raise ValueError("pass exactly one of input_values (float [B, C, L]) or input_ids (integer [B, L])")
        if input_ids is not None:
            if not isinstance(input_ids, torch.Tensor):
                raise TypeError(
                    f"input_ids must be a torch.Tensor of integer token ids, got {type(input_ids).__name__}"
                )
            if input_ids.ndim != 2 or input_ids.is_floating_point():
                raise ValueError(
                    f"input_ids must be integer token ids of shape [B, L], got {input_ids.dtype} "
                    f"{tuple(input_ids.shape)}"
                )
            if self.embed_tokens is not None:
                input_values = self.embed_tokens(input_ids).transpose(1, 2)
            else:
                input_values = input_ids.unsqueeze(1).float()
        return self._classify(
            self._one_channel(input_values),
            labels,
            Sampling(resolution, sampling_rate, attention_mask, observed_mask, timestamps),
            output_hidden_states,
            return_dict,
            SequenceClassifierOutput,
        )


class CCNNForAudioClassification(_CCNNClassifier):
    """CCNN audio classifier on raw waveforms ``input_values [B, L]`` or ``[B, C, L]``.

    ``sampling_rate`` (from :class:`CCNNFeatureExtractor`) tells the model the rate of the
    audio: in continuous mode a model trained at 16 kHz samples its kernels on a coarser grid
    for 8 kHz audio; nothing is resampled.
    """

    main_input_name = "input_values"
    input_modalities = ("audio",)

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        sampling_rate: float | torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        attention_mask: torch.Tensor | None = None,
        observed_mask: torch.Tensor | None = None,
        timestamps: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput | tuple:
        """``attention_mask`` ``[B, L]`` (padding of a batch of clips), ``observed_mask``,
        ``timestamps``: see :mod:`ccnn_hf.masking`."""
        if input_values is None:
            raise ValueError("input_values is required")
        return self._classify(
            self._one_channel(input_values),
            labels,
            Sampling(None, sampling_rate, attention_mask, observed_mask, timestamps),
            output_hidden_states,
            return_dict,
            SequenceClassifierOutput,
        )


# modality of a CCNNConfig -> the classification model that reads it
MODEL_CLASSES: dict[str, type[CCNNPreTrainedModel]] = {
    "image": CCNNForImageClassification,
    "sequence": CCNNForSequenceClassification,
    "tokens": CCNNForSequenceClassification,
    "audio": CCNNForAudioClassification,
}
