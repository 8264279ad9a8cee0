"""Venice API conformance: Venice's OpenAPI document's requests sent to a real Tollway, answers checked
against the document (tests/contract/venice_run.py). Prints the coverage table and the figures.

    PYTHONPATH=src:. python tools/venice_conformance.py           # table + figures
    PYTHONPATH=src:. python tools/venice_conformance.py --write   # also docs/venice-conformance.json

It starts its own server (embedded models of catalog/default.yaml, SQLite in a temporary directory).
tests/contract/test_venice_conformance.py runs the same requests in `make test`, checks the published
figures (docs/venice-conformance.json, quoted in the README) are the ones it measures, and holds the
list of operations known to fail (XFAIL) to what still fails.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from tests.contract.venice_run import Answer, figures, spec_version  # noqa: E402
from tests.contract.venice_server import FIGURES_PATH, conformance_run  # noqa: E402


def table(served: set[str], answers: list[Answer]) -> str:
    by_operation: dict[str, list[Answer]] = defaultdict(list)
    for answer in answers:
        by_operation[answer.operation].append(answer)
    from tests.contract.venice_spec import operations

    lines = [f"{'operation':<42} {'served':<6} {'valid':>7}  first problem"]
    for op in operations():
        got = by_operation.get(op.name, [])
        valid = f"{sum(a.ok for a in got)}/{len(got)}" if got else "-"
        problem = next((f"[{a.label} → {a.status}] {a.failures[0]}" for a in got if not a.ok), "")
        lines.append(f"{op.name:<42} {'yes' if op.name in served else 'no':<6} {valid:>7}  {problem[:110]}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()

        def progress(answer: Answer) -> None:
            if "-v" in argv:
                print(
                    f"{time.monotonic() - started:7.1f}s {answer.status} {answer.operation} [{answer.label}]",
                    flush=True,
                )

        served, answers = conformance_run(Path(tmp), progress)
    print(table(served, answers))
    result = {"spec_version": spec_version(), **figures(served, answers)}
    print(json.dumps(result, indent=2))
    if "--write" in argv:
        FIGURES_PATH.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {FIGURES_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
