"""Lazy re-exports, so that importing a light module (configs, corpus reading, packing) does
not load TensorFlow through its package's `__init__`."""

import importlib


def lazy_exports(package: str, exports: dict):
    """Returns `(__getattr__, __dir__)` for a package re-exporting names lazily (PEP 562).

    Args:
      package: the package's `__name__`.
      exports: public name -> module path, relative to the package (".vocab") or absolute.
    """

    def __getattr__(name):
        if name in exports:
            return getattr(importlib.import_module(exports[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(exports) | set(importlib.import_module(package).__dict__))

    return __getattr__, __dir__
