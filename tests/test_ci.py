"""CI's oldest-versions job (.ci/oldest) pins exactly the floors setup.py states."""

from __future__ import annotations

import re

from helpers import REPO


def release(version: str) -> tuple[int, ...]:
    """A version as numbers without trailing zeros (5.23 and 5.23.0 are one release)."""
    parts = [int(part) for part in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def test_the_oldest_job_pins_the_floors_of_setup_py():
    floors = dict(re.findall(r'"([A-Za-z][\w-]*)>=([\d.]+)', (REPO / "setup.py").read_text(encoding="utf-8")))
    pins = dict(
        line.split("==")
        for line in (REPO / ".ci" / "oldest.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert set(pins) == {"transformers", "huggingface-hub", "timm", "accelerate", "safetensors"}
    for name, version in pins.items():
        assert release(version) == release(floors[name]), (
            f".ci/oldest.txt pins {name}=={version}, setup.py allows {name}>={floors[name]}"
        )
