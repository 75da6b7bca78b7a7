"""The test suites of the installed transformers and timm, taken from their PyPI sdists at test time.

The sdist of the *installed* version is downloaded once with ``pip download`` into
``.cache/upstream/`` (ignored by git; nothing from it is committed). Tests that need it skip,
saying why, when it cannot be had (offline, PyPI unreachable, download timeout);
``CCNN_HF_UPSTREAM_TESTS=0`` skips them without trying.

transformers' ``tests/test_modeling_common.py`` imports three test modules that its sdist does
not ship (``tests/exporters/test_export.py``, ``tests/generation/test_utils.py``,
``tests/utils/test_configuration_utils.py``); :data:`STAND_INS` provides what it takes from them:
empty mixins (so no upstream export or generation tests run: CCNN does not generate, and
tests/test_export.py covers export) and a ``config_common_kwargs`` of our own.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "upstream"
DOWNLOAD_TIMEOUT_S = 300
TRANSFORMERS_PACKAGE = "transformers_common_tests"  # where the two common test files are importable from
TRANSFORMERS_FILES = ("tests/test_modeling_common.py", "tests/test_configuration_common.py")

STAND_INS = {
    "exporters/test_export.py": '''
        """Stand-in: transformers' sdist does not ship tests/exporters/ (ccnn_hf's own export tests apply)."""


        class ExportTesterMixin:
            """No upstream export tests."""
        ''',
    "generation/test_utils.py": '''
        """Stand-in: transformers' sdist does not ship tests/generation/ (CCNN models do not generate)."""


        class GenerationTesterMixin:
            """No generation tests."""
        ''',
    "utils/test_configuration_utils.py": '''
        """Stand-in: transformers' sdist does not ship tests/utils/. Common config arguments, each set to a
        value other than its default, that every config must store as given."""

        config_common_kwargs = {
            "return_dict": False,
            "output_hidden_states": True,
            "dtype": "float16",
            "architectures": ["CCNNForImageClassification"],
            "id2label": {0: "first", 1: "second"},
            "label2id": {"first": 0, "second": 1},
            "problem_type": "regression",
        }
        ''',
}


def _skip(reason: str) -> None:
    pytest.skip(reason, allow_module_level=True)  # used at import time by test modules, and inside tests


def sdist(package: str) -> Path:
    """The sdist archive of the installed version of ``package`` (downloaded once), or skip the test."""
    version = importlib.metadata.version(package)
    archive = CACHE / f"{package}-{version}.tar.gz"
    if archive.is_file():
        return archive
    if os.environ.get("CCNN_HF_UPSTREAM_TESTS") == "0":
        _skip(f"CCNN_HF_UPSTREAM_TESTS=0: not fetching the {package} {version} sdist")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as download:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"{package}=={version}",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
            download,
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _skip(f"downloading the {package} {version} sdist from PyPI took over {DOWNLOAD_TIMEOUT_S} s")
        found = sorted(Path(download).glob(f"{package}-{version}.tar.gz"))
        if not found:
            reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no archive"]
            _skip(f"the {package} {version} sdist could not be had from PyPI: {reason[0]}")
        os.replace(found[0], archive)
    return archive


def extract(archive: Path, members: dict[str, Path]) -> None:
    """Write ``members`` (paths inside the sdist's top folder) to their target files."""
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        for member, target in members.items():
            source = tar.extractfile(f"{top}/{member}")
            if source is None:
                raise FileNotFoundError(f"{member} is not in {archive.name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())


def transformers_common_tests() -> tuple[ModuleType, ModuleType]:
    """transformers' ``test_modeling_common`` and ``test_configuration_common`` modules of the
    installed version (or skip)."""
    pytest.importorskip("parameterized", reason="transformers' common tests need `parameterized` (the [dev] extra)")
    with _cache_lock():  # pytest-xdist workers: one fetches and unpacks, the others wait and reuse
        archive = sdist("transformers")
        folder = CACHE / archive.name.removesuffix(".tar.gz")
        package = folder / TRANSFORMERS_PACKAGE
        if not all((package / Path(f).name).is_file() for f in TRANSFORMERS_FILES):
            staging = folder / f".{TRANSFORMERS_PACKAGE}.{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            extract(archive, {member: staging / Path(member).name for member in TRANSFORMERS_FILES})
            for relative, text in STAND_INS.items():
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                (staging / relative).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
            for directory in (staging, *{(staging / r).parent for r in STAND_INS}):
                (directory / "__init__.py").touch()
            shutil.rmtree(package, ignore_errors=True)
            os.replace(staging, package)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return (
        importlib.import_module(f"{TRANSFORMERS_PACKAGE}.test_modeling_common"),
        importlib.import_module(f"{TRANSFORMERS_PACKAGE}.test_configuration_common"),
    )


def timm_model_tests() -> Path:
    """Path of timm's ``tests/test_models.py`` of the installed version (or skip)."""
    with _cache_lock():
        archive = sdist("timm")
        target = CACHE / archive.name.removesuffix(".tar.gz") / "test_models.py"
        if not target.is_file():
            staging = target.with_name(f".test_models.{os.getpid()}.py")
            extract(archive, {"tests/test_models.py": staging})
            os.replace(staging, target)
    return target


def _cache_lock() -> FileLock:
    """The cache's lock: one process at a time fills it (parallel test workers start together)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    return FileLock(str(CACHE / ".lock"))
