"""timm's own model tests (``tests/test_models.py`` of the installed timm's sdist) on every ``ccnn*`` model.

Run in a fresh interpreter that imports ccnn_hf first (``-p ccnn_hf``), because the test file
lists the registered models when it is imported. TorchScript tests are left out: CCNN does not
support TorchScript (see the README). timm's per-test time limits (120-360 s) are raised through
its own ``TIMEOUT`` variable so that a loaded machine cannot fail a test by being slow.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from upstream import REPO, timm_model_tests

pytestmark = pytest.mark.hub  # also run against the oldest allowed versions (.ci/oldest)

SELECTION = "ccnn and not torchscript"
PER_TEST_TIMEOUT_S = 900


@pytest.mark.slow
def test_timm_model_suite_passes_for_every_ccnn_model():
    test_file = timm_model_tests()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "TIMEOUT": str(PER_TEST_TIMEOUT_S),
    }
    env.pop("GITHUB_ACTIONS", None)  # timm trims its model lists on GitHub's runners
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "ccnn_hf",
        "-p",
        "no:cacheprovider",
        "-q",
        "-p",
        "no:warnings",
        str(test_file),
        "-k",
        SELECTION,
    ]
    result = subprocess.run(command, cwd=test_file.parent, env=env, capture_output=True, text=True, timeout=1800)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 30 and "failed" not in summary and "error" not in summary, summary
