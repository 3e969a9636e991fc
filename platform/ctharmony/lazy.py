"""Lazy package faces: a package lists what it exports and imports each name's module on first use.

``import ctharmony.evaluate`` then stays light (no torch, Ray or pydicom) until a name is used.

Example:
    >>> __getattr__ = lazy_exports("ctharmony.stages", {"run_stages": "ctharmony.stages"})
    >>> __getattr__("run_stages").__name__
    'run_stages'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: ``exports`` maps a name to the module that defines it.

    A module given relative (``"metrics"``) is taken inside ``package``.
    """
    modules = {name: module if "." in module else f"{package}.{module}" for name, module in exports.items()}

    def __getattr__(name: str) -> Any:
        if name in modules:
            return getattr(importlib.import_module(modules[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
