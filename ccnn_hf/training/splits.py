"""The training side of a task: its validation split (``--val_split``), and samples that carry
their index so that a bad one can be named."""

from __future__ import annotations

from dataclasses import replace

import torch

from ..data import ArrayDataset
from ..data.tasks import TaskData
from .errors import UserError

__all__ = ["IndexedDataset", "hold_out", "validation_size", "stratified_indices", "VALIDATION_SEED"]

VALIDATION_SEED = 0  # the held-out samples are the same for every --seed and model, so that runs compare on one split


class IndexedDataset(torch.utils.data.Dataset):
    """A split whose items carry their dataset index, so that a bad sample can be named."""

    def __init__(self, split: ArrayDataset) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        x, y = self.split[index]
        return x, y, index


def validation_size(spec: float, train_samples: int) -> int:
    """Samples ``--val_split`` holds out of ``train_samples``: a fraction below 1 (rounded, at
    least one) or a whole count; refused when nothing would be left to train on."""
    size = max(1, round(spec * train_samples)) if spec < 1 else int(spec)
    if spec >= 1 and spec != int(spec):
        raise UserError(f"--val_split {spec:g}: expected a fraction below 1 (0.1) or a whole number of samples (5000)")
    if size >= train_samples:
        raise UserError(
            f"--val_split {spec:g} holds out {size} of the {train_samples} training samples, leaving none to "
            "train on; pass a smaller fraction or count"
        )
    return size


def stratified_indices(labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """``size`` sorted indices drawn at random (``seed``), each class in proportion to its count
    (classes placed by the quantile of each sample's random rank within its class); a class with a
    single sample keeps it for training."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    shuffled = labels[order]
    counts = torch.bincount(shuffled)
    grouped = torch.argsort(shuffled, stable=True)  # positions in ``order``, class by class
    rank = torch.empty(len(labels), dtype=torch.float64)
    rank[grouped] = (torch.arange(len(labels)) - (torch.cumsum(counts, 0) - counts)[shuffled[grouped]]).double()
    quantile = (rank + 0.5) / counts[shuffled].double()
    quantile[counts[shuffled] < 2] = float("inf")
    return torch.sort(order[torch.argsort(quantile, stable=True)[:size]]).values


def hold_out(task: TaskData, size: int, seed: int = VALIDATION_SEED) -> tuple[TaskData, ArrayDataset]:
    """Split ``size`` stratified samples (drawn with ``seed``) off ``task``'s training split: the
    task that trains on the rest, and the held-out validation split (masks included)."""
    chosen = stratified_indices(task.train.labels, size, seed)
    keep = torch.ones(len(task.train), dtype=torch.bool)
    keep[chosen] = False
    kept = torch.nonzero(keep).flatten()  # new training index -> index in task.train
    render_train = (
        (lambda setting, indices: task.render_train(setting, kept[indices])) if task.render_train is not None else None
    )
    kept_task = replace(task, train=task.train.subset(kept), render_train=render_train, train_source_index=kept)
    return kept_task, task.train.subset(chosen)
