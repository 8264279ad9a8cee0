"""The size and cycle targets of docs/architecture.md, measured by tools/arch_stats.py.

The layering itself is import-linter's (`make lint`); these are the figures it does not check.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOL = Path(__file__).resolve().parents[2] / "tools" / "arch_stats.py"


def _arch_stats() -> ModuleType:
    spec = importlib.util.spec_from_file_location("arch_stats", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("arch_stats", module)
    spec.loader.exec_module(module)
    return module


def test_the_source_tree_meets_the_architecture_targets() -> None:
    assert _arch_stats().problems() == []
