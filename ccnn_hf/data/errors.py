"""The error type for problems with what a user gave: flags, config files, data, checkpoints,
the output folder, the disk.

``ccnn-train`` prints a :class:`UserError` as one line (``ccnn-train: error: ...``) and exits
with status 2, like argparse does for bad flags; every other exception is a bug and keeps its
traceback. A message names the input and says what to do. Defined here, below the trainer, so
that the data readers raise it too; :mod:`ccnn_hf.training.errors` adds the disk errors.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """A bad input, named with what to do about it (a ValueError, so ``except ValueError`` still sees it)."""
