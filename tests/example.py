"""The example project, for the tests that are about it (``test_example_project``, ``test_demo_shop``).

``example_project/`` is no part of the tests' import path: :func:`imported` puts it on ``sys.path``
only while a test module needs it (through a module-scoped fixture of that module) and takes its
modules out of ``sys.modules`` again afterwards, so that no other test can import ``demo``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "example_project"


def _from_example(module: ModuleType | None) -> bool:
    return Path(getattr(module, "__file__", None) or "/").resolve().is_relative_to(EXAMPLE)


@contextmanager
def imported(name: str) -> Iterator[ModuleType]:
    """Module ``name`` of the example project (``"demo.shop"``), importable while the block runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLE))
        try:
            yield importlib.import_module(name)
        finally:
            for loaded in [n for n, module in sys.modules.items() if _from_example(module)]:
                del sys.modules[loaded]
