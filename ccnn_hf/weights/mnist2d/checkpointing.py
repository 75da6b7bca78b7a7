"""Activation checkpointing that leaves BatchNorm's running statistics as one forward sets them.

A checkpointed block runs its forward twice: once in the forward pass and again in the backward
pass to rebuild the activations it did not keep. A train-mode BatchNorm inside it would update its
running mean and variance (and ``num_batches_tracked``) on both calls, so a model trained with
checkpointing would evaluate with different statistics than the same model trained without.
:func:`updates_stats_once` wraps the function handed to any checkpoint implementation (torch's
reentrant or not, transformers' ``_gradient_checkpointing_func``) so that only its first call
touches the statistics; the recomputation normalises with the same batch statistics and
leaves the running statistics where the forward put them (the update is not skipped, only made
with momentum 0: checkpointing checks that the recomputation saves the same tensors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from .batch_norm import batch_norms


@contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Within the block, BatchNorms in ``module`` compute exactly as usual (the same saved tensors,
    which checkpointing compares) with momentum 0, so that their running mean and variance keep
    their values, and their ``num_batches_tracked`` is put back afterwards. The running buffers
    are not copied back: the BatchNorm backward holds them and checks they were not modified."""
    norms = [m for m in batch_norms(module) if m.track_running_stats]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, (momentum, count) in zip(norms, saved):
            norm.momentum = momentum
            if count is not None:
                norm.num_batches_tracked.copy_(count)


def updates_stats_once(module: nn.Module, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a forward of ``module``) for a checkpoint: its first call runs unchanged, every
    later call (the recomputation in backward) runs under :func:`frozen_running_stats`."""
    calls = 0

    def run(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return function(*args, **kwargs)
        with frozen_running_stats(module):
            return function(*args, **kwargs)

    return run
