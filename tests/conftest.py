"""Shared pytest configuration.

Hugging Face settings are fixed here at import time, before any test module imports
huggingface_hub (which reads them once, when first imported):

* ``HF_HOME`` is a fresh temporary directory, so the user's cache and token are never touched;
  the other cache-location and token variables are removed so they cannot point elsewhere.
* ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` are removed and ``HF_HUB_DISABLE_TELEMETRY=1``.
* ``HF_ENDPOINT`` points at a closed local port, so a Hub call made outside the ``local_hub``
  fixture fails at once instead of leaving the machine.

Under pytest-xdist each worker takes its share of the cores as torch threads, and slow tests are
collected first so that the workers finish together.

The ``local_hub`` fixture starts ``tests/hub_server.py`` and points huggingface_hub (and, through
the environment, any subprocess) at it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

_HF_HOME = tempfile.mkdtemp(prefix="ccnn-hf-home-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
for _var in (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "TRANSFORMERS_CACHE",
    "HF_ASSETS_CACHE",
    "HF_XET_CACHE",
    "HF_MODULES_CACHE",
    "HF_DATASETS_CACHE",
    "HF_TOKEN_PATH",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_ENABLE_HF_TRANSFER",
    "HUGGINGFACE_CO_STAGING",
):
    os.environ.pop(_var, None)
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
_DEAD_ENDPOINT = "http://127.0.0.1:9"  # nothing listens on the discard port: stray Hub calls fail fast
os.environ["HF_ENDPOINT"] = _DEAD_ENDPOINT
if "huggingface_hub" in sys.modules:
    warnings.warn("huggingface_hub was imported before tests/conftest.py: the HF_* settings above came too late")

# Under pytest-xdist (`-n auto`, the README's command) the workers share the cores: each gets its share
# of them as torch threads (and so does every subprocess it starts), instead of every worker taking all.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = max(1, (os.cpu_count() or 1) // _WORKERS)
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_THREADS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (stable otherwise): a parallel run then ends on short tests and its workers
    finish together, instead of one worker running a two-minute test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def local_hub() -> Iterator[str]:
    """URL of an in-memory Hub server that huggingface_hub, transformers and timm talk to.

    Sets ``HF_ENDPOINT``, ``HF_TOKEN=hf_test`` and ``HF_HUB_DISABLE_TELEMETRY=1`` in ``os.environ``
    so subprocesses started during the session use the server too; everything is restored after.
    """
    import huggingface_hub.constants as hf_constants
    from huggingface_hub import hf_api

    tests_dir = str(Path(__file__).resolve().parent)
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    from hub_server import serve

    server, url = serve()
    env = {"HF_ENDPOINT": url, "HF_TOKEN": "hf_test", "HF_HUB_DISABLE_TELEMETRY": "1"}
    saved_env = {name: os.environ.get(name) for name in env}
    saved = (hf_constants.ENDPOINT, hf_constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint)
    os.environ.update(env)
    hf_constants.ENDPOINT = url
    hf_constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
    hf_api.api.endpoint = url  # the instance behind huggingface_hub.create_repo & co. was built at import
    _forget_transformers_hf_api()  # transformers caches its own HfApi, built with the endpoint of its day
    try:
        yield url
    finally:
        hf_constants.ENDPOINT, hf_constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint = saved
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _forget_transformers_hf_api()
        server.shutdown()
        server.server_close()


def _forget_transformers_hf_api() -> None:
    hub = sys.modules.get("transformers.utils.hub")
    if hub is not None and hasattr(hub, "_hf_api"):
        hub._hf_api = None
