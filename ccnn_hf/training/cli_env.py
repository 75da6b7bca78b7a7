"""Process settings for the command-line tools, applied before torch loads its OpenMP runtime.

OpenMP reads ``OMP_WAIT_POLICY`` once, when its library is loaded (at ``import torch``). With the
default (active) policy, worker threads spin while they wait for each other; on a machine shared
with other jobs every parallel region then waits for a descheduled spinning thread: the
``ccnn-train`` quickstart took 20 min instead of 1 with a load of 7-11 on 2 cores. ``PASSIVE``
threads sleep instead and cost little on a quiet machine. This module imports nothing heavy, so
``ccnn_hf/__init__.py`` can call it before anything imports torch.
"""

from __future__ import annotations

import os
import sys

__all__ = ["CLI_MODULES", "CLI_SCRIPTS", "prefer_passive_openmp", "running_cli"]

CLI_SCRIPTS = ("ccnn-train",)
CLI_MODULES = ("ccnn_hf.training.train",)


def running_cli(orig_argv: list[str] | None = None) -> bool:
    """Whether this process is one of the package's command-line tools (console script or ``-m``)."""
    argv = list(getattr(sys, "orig_argv", sys.argv) if orig_argv is None else orig_argv)
    if any(os.path.basename(a) in CLI_SCRIPTS for a in argv[:2]):
        return True
    return any(a == "-m" and b in CLI_MODULES for a, b in zip(argv, argv[1:]))


def prefer_passive_openmp(orig_argv: list[str] | None = None) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for a command-line tool, unless the user chose a policy or
    torch is already loaded (then it is too late). Returns True when it was set here."""
    if not running_cli(orig_argv) or "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
