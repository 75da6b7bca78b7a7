"""Small shared helpers for the test-suite (no fixtures here; see conftest.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """Location of the optional ``shared/`` folder beside the checkout (override: CCNN_HF_SHARED)."""
    return Path(os.environ.get("CCNN_HF_SHARED", REPO.parent / "shared"))


def require_shared(*parts: str) -> Path:
    """Path inside ``shared/``; skips the test cleanly when that file is not on this machine."""
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (the shared data folder is optional)")
    return path


def assert_grad_checkpointing_matches(model: torch.nn.Module, x: torch.Tensor, seed: int, **tolerance) -> torch.Tensor:
    """``model`` (in train mode, dropout included) gives the same outputs and gradients with
    ``set_grad_checkpointing()`` as without; returns the checkpointed output."""
    torch.manual_seed(seed)
    ref = model(x)
    ref.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing()
    torch.manual_seed(seed)
    out = model(x)
    out.sum().backward()
    torch.testing.assert_close(out, ref)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], msg=n, **tolerance)
    return out
