"""Run code after a library is imported, without importing it: how the layers stay lazy.

``import ccnn_hf`` imports torch alone. The transformers and timm layers must still be known to
their library (transformers' Auto classes, timm's registry) whether that library is imported
before or after ccnn_hf. :class:`AfterImport`, a finder at the front of ``sys.meta_path``, finds
no module itself: for the modules of a watched package it lets the other finders find the spec
and wraps its loader, so that the package's callbacks run once its *outermost* import has run,
i.e. when none of its modules is left half-initialised (transformers' modules import each other
mid-way: ``modeling_layers`` imports ``AutoModel`` before defining its own classes).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import threading
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from types import ModuleType

# optional library -> the ccnn_hf extra that installs it
OPTIONAL = {"transformers": "hf", "timm": "timm", "torchvision": "hf"}


def import_optional(name: str) -> bool:
    """Import module ``name``; False when an optional library it needs is missing (any other error propagates)."""
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in OPTIONAL:
            raise
        return False
    return True


class _RunThenCall(importlib.abc.Loader):
    """The loader of a watched module: runs the module with its own loader, then tells the finder."""

    def __init__(self, loader: importlib.abc.Loader, finder: AfterImport, package: str) -> None:
        self._loader = loader
        self._finder = finder
        self._package = package

    def __getattr__(self, name: str):
        return getattr(self._loader, name)  # get_code, get_source, is_package, ... (runpy, inspect)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._loader  # the module keeps its own loader (resources, source)
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._finder.run(self._package, lambda: self._loader.exec_module(module))


class AfterImport(importlib.abc.MetaPathFinder):
    """Calls each watched package's callbacks after every outermost import of one of its modules."""

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[[], None]]] = {}
        self._local = threading.local()

    def watch(self, package: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` now if ``package`` is imported, and after each later outermost import in it."""
        self._callbacks.setdefault(package, []).append(callback)
        if package in sys.modules:
            callback()

    def _package(self, name: str) -> str | None:
        return next((p for p in self._callbacks if name == p or name.startswith(p + ".")), None)

    def find_spec(self, name: str, path=None, target: ModuleType | None = None) -> ModuleSpec | None:
        """The spec the other finders give a watched module, its loader wrapped; None for any other module."""
        package = self._package(name)
        finding = self._local.__dict__.setdefault("finding", set())
        if package is None or name in finding:
            return None
        finding.add(name)
        try:
            spec = next(
                (
                    found
                    for finder in sys.meta_path
                    if finder is not self and hasattr(finder, "find_spec")
                    for found in [finder.find_spec(name, path, target)]
                    if found is not None
                ),
                None,
            )
        finally:
            finding.discard(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _RunThenCall(spec.loader, self, package)
        return spec

    def run(self, package: str, execute: Callable[[], None]) -> None:
        """Execute a module of ``package``; once no module of it is still running, call its callbacks."""
        depth = self._local.__dict__.setdefault("depth", {})
        depth[package] = depth.get(package, 0) + 1
        try:
            execute()
        finally:
            depth[package] -= 1
        if depth[package] == 0:
            for callback in self._callbacks[package]:
                callback()


def after_import(package: str, callback: Callable[[], None]) -> None:
    """Call ``callback()`` once ``package`` (a package or module name) is imported: now, or after its import."""
    finder = next((f for f in sys.meta_path if isinstance(f, AfterImport)), None)
    if finder is None:
        finder = AfterImport()
        sys.meta_path.insert(0, finder)
    finder.watch(package, callback)
