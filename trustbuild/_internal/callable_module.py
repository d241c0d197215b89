"""Let a package also be called as the public API function of the same name.

``trustbuild.sign`` and ``trustbuild.attest`` are packages *and* the API calls
``trustbuild.sign(image, key)`` / ``trustbuild.attest(image, key, ...)``: Python sets a package
as an attribute of its parent once it is imported, so a plain function of that name in
``trustbuild/__init__.py`` would be replaced. The package module's class gets a ``__call__``
that forwards to ``trustbuild.api.<name>`` (imported on first call, so the lower layer does not
load the API at import time).
"""

from __future__ import annotations

import importlib
import sys
import types

__all__ = ["make_callable"]


def make_callable(module_name: str) -> None:
    """Make ``sys.modules[module_name]`` callable as ``trustbuild.api.<its last name part>``."""
    module = sys.modules[module_name]
    api_name = module_name.rpartition(".")[2]

    class _CallableModule(types.ModuleType):
        def __call__(self, *args: object, **kwargs: object) -> object:
            return getattr(importlib.import_module("trustbuild.api"), api_name)(*args, **kwargs)

    _CallableModule.__call__.__doc__ = f"The public API call ``trustbuild.api.{api_name}``."
    module.__class__ = _CallableModule
