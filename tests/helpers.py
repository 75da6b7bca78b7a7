"""Small shared helpers for the test-suite (no fixtures here; see conftest.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

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
