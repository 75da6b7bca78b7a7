"""Accuracy across resolutions (or sampling rates), in continuous mode, with the kernel grid
held fixed at the base resolution as the official code does ("reference" behaviour), and with the
input resized or resampled to the base setting first ("resize": what a user of a fixed-resolution
model does)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..data import ArrayDataset
from .files import atomic_file
from ..data.tasks import EvalPoint, TaskData
from .masks import batch_masks
from .resolutions import to_base

__all__ = ["evaluate_points", "accuracy", "plot_accuracy"]


@torch.no_grad()
def accuracy(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    binary: bool,
    batch_size: int,
    masks: ArrayDataset | None = None,
    **kwargs,
) -> tuple[float, float | None]:
    """Accuracy and mean loss of ``model`` (a transformers CCNN head) on a test split (the loss is
    None when some output is not finite: JSON has no NaN); ``masks`` is the split whose padding /
    observation masks go with ``inputs`` (:mod:`.masks`)."""
    model.eval()
    device = next(model.parameters()).device
    correct, loss_sum = 0, 0.0
    for start in range(0, len(inputs), batch_size):
        x = inputs[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        extra = batch_masks(masks, slice(start, start + batch_size), device) if masks is not None else {}
        logits = model(**{model.main_input_name: x}, **kwargs, **extra).logits.float()
        if binary:
            loss_sum += torch.nn.functional.binary_cross_entropy_with_logits(
                logits[:, 0], y.float(), reduction="sum"
            ).item()
            correct += ((logits[:, 0] > 0).long() == y).sum().item()
        else:
            loss_sum += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(-1) == y).sum().item()
    loss = loss_sum / max(len(inputs), 1)
    return correct / max(len(inputs), 1), loss if math.isfinite(loss) else None


def evaluate_points(
    model: torch.nn.Module, task: TaskData, points: list[EvalPoint], binary: bool, batch_size: int
) -> list[dict]:
    """Evaluate every point in continuous mode, with the grid fixed at the base ("reference") and
    on the input resized or resampled to the base ("resize"); a timm baseline is fed the point's
    input as it is ("timm") and resized ("resize"). At the base itself "resize" is the unchanged input."""
    timm = model.config.mode == "timm"
    base_kwargs = (
        {"sampling_rate": task.sampling_rate} if task.modality == "audio" else {"resolution": task.base_resolution}
    )
    resize_kwargs = {"sampling_rate": task.sampling_rate} if task.modality == "audio" and not timm else {}
    rows = []
    for point in points:
        continuous = {"sampling_rate": point.sampling_rate} if point.sampling_rate else {}
        modes = (
            [("timm", point.data, {})]
            if timm
            else [("continuous", point.data, continuous), ("reference", point.data, base_kwargs)]
        )
        if task.modality != "tokens":
            at_base = point.data is task.test
            modes.append(
                ("resize", point.data if at_base else to_base(task, point.data, point.sampling_rate), resize_kwargs)
            )
        for mode, data, kwargs in modes:
            acc, loss = accuracy(model, data.inputs, data.labels, binary, batch_size, masks=data, **kwargs)
            rows.append(
                {
                    "setting": point.label,
                    "resolution": list(point.resolution) if point.resolution else None,
                    "sampling_rate": point.sampling_rate,
                    "mode": mode,
                    "accuracy": acc,
                    "loss": loss,
                    "samples": len(data.labels),
                }
            )
    return rows


def plot_accuracy(rows: list[dict], path: Path, title: str) -> None:
    """Accuracy against resolution (or sampling rate) for every mode measured, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    labels = {"timm": "timm model, input as it is", "resize": "input resized to the base"}
    for mode, style in (("continuous", "o-"), ("reference", "s--"), ("timm", "^:"), ("resize", "d-.")):
        values = [
            next((r["accuracy"] for r in rows if r["setting"] == s and r["mode"] == mode), None) for s in settings
        ]
        if None in values:
            continue
        ax.plot(range(len(settings)), [100 * v for v in values], style, label=labels.get(mode, f"{mode} mode"))
    ax.set_xticks(range(len(settings)), settings)
    ax.set_xlabel("evaluation sampling rate" if rows and rows[0]["sampling_rate"] else "evaluation resolution")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    try:
        with atomic_file(path) as handle:
            fig.savefig(handle, format="png")
    finally:
        plt.close(fig)
