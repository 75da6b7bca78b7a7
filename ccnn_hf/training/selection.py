"""``ccnn-train --val_split``: the official evaluation protocol. A validation split is held out of
the training data; the weights of the best validation accuracy are kept (as Lightning's
``ModelCheckpoint(monitor="val/acc")`` in the official code; ties go to the lower validation loss)
and tested at the end; ``--patience`` stops a run after that many validated epochs without
improvement (Lightning's ``EarlyStopping``), the budget (``--epochs`` / ``--max_steps`` /
``--time_limit``) staying a cap.

The best weights are one safetensors file in the run's ``checkpoints/`` folder, written atomically
(:func:`ccnn_hf.training.files.atomic_file`) with the step, epoch and validation accuracy in its metadata.
The tracking state travels in every training checkpoint, so a resumed run selects exactly what an
uninterrupted one selects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .files import atomic_file
from .errors import UserError

__all__ = ["Selection", "BEST_WEIGHTS", "save_best", "load_best"]

BEST_WEIGHTS = "best_validation.safetensors"


@dataclass
class Selection:
    """The best validation accuracy so far, where it was reached, and the epochs since."""

    patience: int | None
    best_accuracy: float | None = None
    best_loss: float | None = None
    best_step: int | None = None
    best_epoch: float | None = None  # epochs trained (a fraction when a run ended mid-epoch)
    epochs_since_best: int = 0
    validated_step: int | None = None

    def update(self, step: int, epoch: int, accuracy: float, loss: float | None) -> bool:
        """Record a validation of the weights at ``step``; returns whether they are the new best: a
        higher accuracy (the official checkpointing's criterion), or the same with a lower loss. The
        tie-break matters on small validation splits, where accuracy saturates: 27 held-out series
        of JapaneseVowels reach 100 % after 4 epochs, and without it nothing later could count as better."""
        self.validated_step = step
        tie = accuracy == self.best_accuracy and loss is not None and (self.best_loss is None or loss < self.best_loss)
        if self.best_accuracy is None or accuracy > self.best_accuracy or tie:
            self.best_accuracy, self.best_loss, self.best_step, self.best_epoch = accuracy, loss, step, epoch
            self.epochs_since_best = 0
            return True
        self.epochs_since_best += 1
        return False

    @property
    def stop(self) -> bool:
        """Whether ``--patience`` validated epochs passed without improvement."""
        return self.patience is not None and self.epochs_since_best >= self.patience

    def state(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict, patience: int | None) -> "Selection":
        return cls(**{**state, "patience": patience})


def save_best(model: torch.nn.Module, folder: Path, selection: Selection) -> None:
    """Write ``model``'s weights and buffers as the best-validation weights (atomically)."""
    from safetensors.torch import save

    tensors = {name: t.detach().cpu().clone().contiguous() for name, t in model.state_dict().items()}
    metadata = {"step": str(selection.best_step), "epoch": str(selection.best_epoch)}
    with atomic_file(folder / BEST_WEIGHTS) as handle:
        handle.write(save(tensors, metadata={**metadata, "validation_accuracy": repr(selection.best_accuracy)}))


def load_best(model: torch.nn.Module, folder: Path, selection: Selection) -> None:
    """Load the best-validation weights into ``model``; refused when the file is missing or holds
    the weights of another step than the run selected."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = folder / BEST_WEIGHTS
    try:
        with safe_open(str(path), "pt") as handle:
            step = (handle.metadata() or {}).get("step")
        tensors = load_file(str(path))
    except (OSError, ValueError, RuntimeError) as error:  # missing, truncated or not safetensors
        raise UserError(f"the best-validation weights {path} are unreadable ({error}); run again with --overwrite")
    if step != str(selection.best_step):
        raise UserError(
            f"{path} holds the weights of step {step}, the run selected step {selection.best_step}; "
            "run again with --overwrite"
        )
    model.load_state_dict(tensors)
