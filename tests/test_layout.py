"""The package layout: the top folder of ``ccnn_hf/`` is the model that travels with saved weights,
and imports go downward only (core <- data <- integrations <- training)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.hub

PACKAGE = Path(__file__).resolve().parents[1] / "ccnn_hf"
# Layers, lowest first: a module may import its own layer and the ones below it.
LAYERS = ("core", "data", "integrations", "training")


def _top_modules() -> set[str]:
    return {path.name for path in PACKAGE.glob("*.py")} - {"__init__.py"}


def _remote_code_files() -> set[str]:
    """The files transformers' remote-code copier takes for the modules a saved config names."""
    from transformers.dynamic_module_utils import get_relative_import_files

    from ccnn_hf.configuration_ccnn import AUTO_MAP

    hub_files = {reference.split(".")[0] + ".py" for reference in AUTO_MAP.values()}
    hub_files |= {"feature_extraction_ccnn.py", "image_processing_ccnn.py"}  # the processors' own auto_map
    copied = set(hub_files)
    for name in hub_files:
        copied |= {Path(path).name for path in get_relative_import_files(str(PACKAGE / name))}
    return copied


def test_the_top_folder_is_exactly_what_a_saved_folder_copies():
    assert _remote_code_files() == _top_modules()


def test_a_saved_folder_carries_the_top_folder_and_nothing_else(tmp_path):
    from ccnn_hf import CCNNConfig, CCNNForImageClassification

    config = CCNNConfig.from_preset("cifar10_4_140", hidden_channels=8, num_blocks=1, kernel_hidden=8)
    CCNNForImageClassification(config).save_pretrained(tmp_path)
    assert {path.name for path in tmp_path.glob("*.py")} == _top_modules()


def _layer(parts: tuple[str, ...]) -> str:
    """The layer of a module or package given by its path parts under ``ccnn_hf``."""
    return parts[0] if parts and parts[0] in LAYERS else "core"


def _imports(path: Path) -> list[tuple[str, ...]]:
    """Targets (path parts under ``ccnn_hf``) of the package imports in ``path``, relative or absolute."""
    package = path.relative_to(PACKAGE).with_suffix("").parts[:-1]  # a module's (or __init__'s) folder
    targets = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets += [tuple(a.name.split("."))[1:] for a in node.names if a.name.split(".")[0] == "ccnn_hf"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
            elif (node.module or "").split(".")[0] == "ccnn_hf":
                base = ()
            else:
                continue
            module = tuple(node.module.split(".")) if node.module else ()
            module = module[1:] if not node.level else module  # drop the absolute "ccnn_hf"
            targets += [base + module] if module else [base + (alias.name,) for alias in node.names]
    return targets


def test_imports_go_downward_only():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "weights" or relative == Path("__init__.py"):
            continue  # the release copies; the package's own front door imports every layer
        source = _layer(relative.with_suffix("").parts)
        for target in _imports(path):
            if LAYERS.index(_layer(target)) > LAYERS.index(source):
                upward.append(f"{relative} imports {'.'.join(target)}")
    assert not upward


# Libraries that read dataset files: only the readers in data/ (and the processors of the top folder,
# which transformers hands images and waveforms) may import them.
_FILE_READERS = {"zipfile", "PIL", "soundfile", "datasets", "aeon"}


def test_every_dataset_reader_lives_in_data():
    outside = []
    for layer in ("integrations", "training"):
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom) and not node.level
                    else []
                )
                outside += [
                    f"{path.relative_to(PACKAGE)} imports {n}" for n in names if n.split(".")[0] in _FILE_READERS
                ]
    assert not outside
