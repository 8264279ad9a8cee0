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


def test_only_the_admission_module_moves_money() -> None:
    """One charge path: the ledger's hold, settle and release are called from core/admission.py alone."""
    import re

    source = TOOL.parents[1] / "src" / "tollway"
    call = re.compile(r"\bledger\.(reserve|settle|release)\(")
    callers = sorted(
        str(path.relative_to(source))
        for path in source.rglob("*.py")
        if call.search(path.read_text()) and path.name != "ledger.py"
    )
    assert callers == ["core/admission.py"]
