"""Models for ``ccnn-train``: from a preset fitted to the data, or from a pretrained checkpoint."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..batch_norm import batch_norms, recalibrate_batch_norm
from ..configuration_ccnn import AUTO_MAP, CCNNConfig
from ..continuous_conv import SeparableContinuousConv
from ..data.tasks import TaskData, looks_like_path
from ..integrations.state_dict_keys import HF_CLASSIFIER, to_transformers_keys
from ..modeling_ccnn import MODEL_CLASSES, CCNNPreTrainedModel
from ..presets import get_preset
from ..settings import fine_tuning_flags
from ..validation import value_problems
from .args import MODEL_OVERRIDES
from .errors import UserError
from .masks import batch_masks, split_has_masks

__all__ = [
    "adapt_batch_norm",
    "build_model",
    "check_finite_state",
    "is_binary",
    "l2_norm_penalty",
    "MODEL_CLASSES",
    "TimmBaseline",
]

logger = logging.getLogger(__name__)

# Options that --init_from may change: they do not alter the checkpoint's tensors.
FINE_TUNING_OVERRIDES = fine_tuning_flags()


def is_binary(preset: str, task: TaskData) -> bool:
    """Official binary tasks (one logit, BCE) on two-class data."""
    return get_preset(preset).model["num_classes"] == 1 and task.num_classes == 2


def _label_fields(task: TaskData, binary: bool) -> dict:
    if binary:
        return dict(num_labels=1, id2label={0: task.label_names[1]}, problem_type="multi_label_classification")
    return dict(
        num_labels=task.num_classes,
        id2label=dict(enumerate(task.label_names)),
        problem_type="single_label_classification",
    )


def _kernel_size(preset: str, task: TaskData, requested: str | None, causal: bool | None):
    """The preset's kernel extent relative to its base input, carried over to the data's base size
    (odd for centred kernels; ``causal``: the override, None for the preset's)."""
    if requested is not None:
        return requested if requested == "same" else int(requested)
    model = get_preset(preset).model
    size = model["kernel_size"]
    if size == "same":
        return "same"
    taps = round((size - 1) * task.base_resolution[0] / model["base_resolution"][0]) + 1
    return taps if (model["causal"] if causal is None else causal) or taps % 2 else taps + 1


def _config_from_preset(args: argparse.Namespace, task: TaskData) -> CCNNConfig:
    preset = get_preset(args.preset)
    if preset.model["data_dim"] != task.data_dim:
        kind = {1: "sequence", 2: "image", 3: "volume"}
        raise UserError(
            f"dataset {task.name!r} holds {task.data_dim}D {task.modality} data but preset {args.preset!r} is a "
            f"{kind[preset.model['data_dim']]} ({preset.model['data_dim']}D) model; pick a "
            f"{kind[task.data_dim]} preset (or a sequence view of the data, e.g. digits_seq / smnist)"
        )
    overrides = {
        field: getattr(args, flag)
        for flag, field in MODEL_OVERRIDES.items()
        if getattr(args, flag) is not None and flag != "kernel_size"
    }
    return CCNNConfig.from_preset(
        args.preset,
        num_channels=task.in_channels,
        base_resolution=list(task.base_resolution),
        base_sampling_rate=task.sampling_rate if task.modality == "audio" else preset.model["base_sampling_rate"],
        kernel_size=_kernel_size(args.preset, task, args.kernel_size, args.causal),
        length_semantics=task.length_semantics,
        modality=task.modality,
        mean=list(task.mean),
        std=list(task.std),
        **_label_fields(task, is_binary(args.preset, task)),
        **overrides,
    )


def _resolve_checkpoint(source: str) -> Path:
    """A local model folder, or a Hub model id downloaded (``*.json`` and ``*.safetensors`` only).
    A value that looks like a path is never sent to the Hub."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            raise UserError(
                f"--init_from {source}: the folder lacks config.json or model.safetensors; give a folder "
                "written by ccnn-train or save_pretrained"
            )
        return path
    if path.exists():
        raise UserError(f"--init_from {source} is a file; give the model's folder or a Hub model id")
    if looks_like_path(source) or source.count("/") != 1:
        raise UserError(f"--init_from {source}: no such folder (a Hub model id has the form org/name)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(source, allow_patterns=["*.json", "*.safetensors"]))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as error:
        raise UserError(
            f"--init_from {source}: no local folder by that name, and the Hub model could not be "
            f"fetched ({_first_line(error)})"
        ) from None


def _first_line(error: Exception) -> str:
    """The first line of an error's message (at most 200 characters), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _config_from_checkpoint(folder: Path) -> CCNNConfig:
    import json

    try:
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"--init_from {folder}: config.json is unreadable ({error})") from None
    if not isinstance(raw, dict) or raw.get("model_type") != "ccnn":
        model_type = raw.get("model_type") if isinstance(raw, dict) else None
        raise UserError(f"--init_from {folder}: config.json is not a CCNN checkpoint (model_type {model_type!r})")
    try:
        config = CCNNConfig.from_pretrained(folder)
    except ValueError as error:
        raise UserError(f"--init_from {folder}: {error}") from None
    config.auto_map = dict(AUTO_MAP)  # the run's code, never what a foreign folder's config.json names
    return config


class TimmBaseline(torch.nn.Module):
    """A timm model (e.g. ``resnet18``) behind the interface of the CCNN heads, so that
    ``ccnn-train --timm_model NAME`` trains a baseline with the same data, recipe and budget.
    Sequences ``[B, C, L]`` are fed as ``[B, C, 1, L]`` images.

    On data with padding or unobserved points (a task whose splits carry masks) it is the usual
    zero-fill baseline: unobserved and padded values are set to 0 and the observation mask (the
    share of channels observed at each point, 0 at padding) is appended as one more input channel.
    ``point_dropout``: the training series are augmented by random point dropout, so the mask channel
    is there even when the data itself is complete."""

    main_input_name = "inputs"

    def __init__(self, name: str, task: TaskData, binary: bool, point_dropout: bool = False) -> None:
        super().__init__()
        from types import SimpleNamespace

        import timm

        num_labels = 1 if binary else task.num_classes
        self.mask_channel = point_dropout or split_has_masks(task.train, task.test)
        in_chans = task.in_channels + int(self.mask_channel)
        try:
            self.model = timm.create_model(name, pretrained=False, num_classes=num_labels, in_chans=in_chans)
        except RuntimeError as error:  # timm's "Unknown model"
            raise UserError(f"--timm_model {name}: {error}") from None
        self.config = SimpleNamespace(
            num_labels=num_labels,
            mode="timm",
            base_resolution=list(task.base_resolution),
            base_sampling_rate=task.sampling_rate,
            problem_type="multi_label_classification" if binary else "single_label_classification",
        )
        self.name, self.data_dim = name, task.data_dim

    def forward(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        observed_mask: torch.Tensor | None = None,
        **_ignored,
    ):
        from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

        from ..modeling_ccnn import classification_loss

        if self.mask_channel:
            inputs = zero_fill_with_mask_channel(inputs, attention_mask, observed_mask)
        logits = self.model(inputs if self.data_dim == 2 else inputs.unsqueeze(2))
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits)

    def save_pretrained(self, folder) -> None:
        from timm.models import save_for_hf

        save_for_hf(self.model, folder, safe_serialization=True)


def zero_fill_with_mask_channel(
    inputs: torch.Tensor, attention_mask: torch.Tensor | None, observed_mask: torch.Tensor | None
) -> torch.Tensor:
    """``[B, C, *spatial]`` inputs with unobserved and padded values set to 0, followed by one
    channel holding the share of channels observed at each point (1 everywhere without masks):
    the input of a CCNN with ``missing_values="zero_fill"``, same checks and same channel."""
    from ..masking import prepare_masks, zero_fill_input

    return zero_fill_input(*prepare_masks(inputs, attention_mask, observed_mask))[0]


def build_model(
    args: argparse.Namespace, task: TaskData, say: Callable[[str], None] = logger.info, point_dropout: bool = False
) -> tuple[CCNNPreTrainedModel, dict]:
    """Build the model for ``task``; returns it and facts for the results (e.g. what was re-initialised).
    ``say`` reports what the user should know (ccnn-train passes ``accelerator.print``);
    ``point_dropout``: the training series are augmented by random point dropout (a timm baseline
    then takes the mask channel)."""
    if args.timm_model:
        if args.missing_values is not None:
            raise UserError(
                "--missing_values chooses how a CCNN treats missing points; the timm baseline always gets "
                "zero-fill plus a mask channel (drop --missing_values or --timm_model)"
            )
        baseline = TimmBaseline(args.timm_model, task, is_binary(args.preset, task), point_dropout)
        return baseline, {"timm_model": args.timm_model}
    model_cls = MODEL_CLASSES[task.modality]
    if not args.init_from:
        try:
            config = _config_from_preset(args, task)
        except UserError:
            raise
        except ValueError as error:  # the configuration's own validation of the overrides
            raise UserError(f"model options: {error}") from None
        return model_cls(config), {}

    fixed = [flag for flag in MODEL_OVERRIDES if flag not in FINE_TUNING_OVERRIDES and getattr(args, flag) is not None]
    if fixed:
        raise UserError(
            f"--init_from takes the architecture from {args.init_from}; drop "
            f"{', '.join('--' + f for f in fixed)} (with --init_from only "
            f"{', '.join('--' + f for f in FINE_TUNING_OVERRIDES)} apply)"
        )
    folder = _resolve_checkpoint(args.init_from)
    config = _config_from_checkpoint(folder)
    for flag in FINE_TUNING_OVERRIDES:
        if getattr(args, flag) is not None:
            setattr(config, MODEL_OVERRIDES[flag], getattr(args, flag))
    problems = []
    if config.data_dim != task.data_dim:
        problems.append(f"data_dim {config.data_dim} (data: {task.data_dim})")
    if config.num_channels != task.in_channels:
        problems.append(f"{config.num_channels} input channels (data: {task.in_channels})")
    if problems:
        raise UserError(
            f"--init_from {args.init_from} does not fit {task.name}: "
            + ", ".join(problems)
            + "; fine-tune on data like the checkpoint's, or train from a preset"
        )
    binary = task.num_classes == 2 and (config.num_labels == 1 or is_binary(args.preset, task))
    labels = _label_fields(task, binary)
    reinit = config.num_labels != labels["num_labels"]
    old_labels = config.num_labels
    for key, value in labels.items():
        setattr(config, key, value)
    config.label2id = {v: k for k, v in config.id2label.items()}
    config.modality = task.modality
    model = MODEL_CLASSES[task.modality](config)
    try:
        state = to_transformers_keys(load_file(folder / "model.safetensors"))
    except (OSError, SafetensorError) as error:
        raise UserError(f"--init_from {args.init_from}: model.safetensors is unreadable ({error})") from None
    problems = value_problems(state)
    if problems:
        raise UserError(f"--init_from {args.init_from}: model.safetensors is unusable: {'; '.join(problems)}")
    if reinit:
        state = {k: v for k, v in state.items() if not k.startswith(HF_CLASSIFIER)}
        say(
            f"re-initialising the classifier: {args.init_from} has {old_labels} labels, {task.name} has "
            f"{labels['num_labels']}"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (reinit and k.startswith(HF_CLASSIFIER))]
    if missing or unexpected:
        raise UserError(
            f"--init_from {args.init_from} does not match the model: missing {missing}, unexpected {unexpected}"
        )
    info = {
        "init_from": args.init_from,
        "classifier_reinitialised": reinit,
        "checkpoint_base_resolution": list(config.base_resolution),
        "checkpoint_base_sampling_rate": config.base_sampling_rate,
    }
    return model, info


def enable_activation_checkpointing(model: torch.nn.Module) -> str:
    """``--gradient_checkpointing``: each block keeps only its input for the backward and recomputes
    the rest (transformers' switch for a CCNN head, timm's for a baseline); returns what it covers."""
    if isinstance(model, TimmBaseline):
        model.model.set_grad_checkpointing(True)
        return f"{model.name} (timm's set_grad_checkpointing)"
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return f"{model.config.num_blocks} CCNN blocks"


def check_finite_state(model: torch.nn.Module) -> None:
    """Refuse a model whose weights or buffers (BatchNorm statistics) hold NaN or inf: it is never saved."""
    bad = [
        name
        for name, t in list(model.named_parameters()) + list(model.named_buffers())
        if t.is_floating_point() and not torch.isfinite(t).all()
    ]
    if bad:
        raise UserError(
            f"training produced non-finite weights or statistics ({', '.join(bad[:5])}); nothing was "
            "saved: lower --lr or set --grad_clip, and check the data"
        )


def adapt_batch_norm(model: torch.nn.Module, dataset, batch_size: int, max_samples: int = 2048) -> int:
    """Re-estimate every BatchNorm's running statistics with the final weights ("precise BN")
    on up to ``max_samples`` of ``dataset``, with :func:`ccnn_hf.batch_norm.recalibrate_batch_norm`;
    returns the number of samples seen (0 for a model without BatchNorm).

    The momentum average lags behind weights that still move. It matters most when fine-tuning
    at a new resolution: a channel that answered fine detail loses orders of magnitude of variance
    on 2x upsampled images within a few dozen steps, the average still remembers the old variance,
    and eval mode mis-scales that channel (measured: 42 % instead of 82 % on 16x16 digits).

    The samples are a fixed random draw from the whole split, in random order (its own generator,
    seed 0): folders and archives list their samples class by class, so their first 2 048 would hold
    a few classes only (CIFAR-10's first 4 000 images are all airplanes), and batches in file order
    would each hold one class; both mis-scale the statistics that training batches see."""
    if not batch_norms(model):
        return 0
    count = min(len(dataset), max_samples)
    chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:count]  # mixed batches
    masks = batch_masks(dataset, chosen, torch.device("cpu"))
    return recalibrate_batch_norm(model, dataset.inputs[chosen], batch_size, **masks)


def l2_norm_penalty(model: torch.nn.Module) -> torch.Tensor:
    """The official CCNN regulariser: sum of the (unsquared) L2 norms of every parameter outside the
    kernel generators plus the L2 norm of every conv's masked kernel on its base grid (the kernel the
    training forward just sampled there, when it did: :meth:`SeparableContinuousConv.penalty_kernel`)."""
    total = torch.zeros((), device=next(model.parameters()).device)
    for name, param in model.named_parameters():
        if ".kernel_net." not in f".{name}":
            total = total + param.norm()
    for module in model.modules():
        if isinstance(module, SeparableContinuousConv):
            total = total + module.penalty_kernel().norm()
    return total
