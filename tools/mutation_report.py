"""Summarise a mutmut run of the money modules (`make mutate`, docs/testing.md).

Reads `mutmut results --all true`, prints per-module counts and the score (killed, timeouts
included: a mutant that hangs is caught, by its timeout), and lists every survivor with the
reason written for it in docs/mutation-survivors.txt. A survivor without a reason is a gap in
the tests (or a reason still to write): the report says so and exits 1.

docs/mutation-survivors.txt: one line per pattern, `<fnmatch pattern over mutant names>  # why`.
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REASONS = REPO / "docs" / "mutation-survivors.txt"
KILLED = {"killed", "timeout"}
SURVIVED = {"survived", "no tests"}
TARGET = 0.95


def results(mutmut: str) -> dict[str, str]:
    """Mutant name → status, as mutmut reports it."""
    out = subprocess.run(
        [mutmut, "results", "--all", "true"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    statuses: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name.startswith("tollway."):
            statuses[name] = status.strip()
    return statuses


def reasons(path: Path = REASONS) -> list[tuple[str, str]]:
    """(pattern, reason) pairs; blank lines and lines starting with # are skipped."""
    if not path.exists():
        return []
    pairs = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, why = line.partition("#")
        pairs.append((pattern.strip(), why.strip()))
    return pairs


def module_of(name: str) -> str:
    return name.split(".x", 1)[0].split(".xǁ", 1)[0]


def function_of(name: str) -> str:
    return name.rsplit("__mutmut_", 1)[0]


def explain(name: str, pairs: list[tuple[str, str]]) -> str | None:
    return next((why for pattern, why in pairs if fnmatch.fnmatchcase(name, pattern)), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutmut", default=str(Path(sys.executable).with_name("mutmut")))
    parser.add_argument("--survivors", action="store_true", help="list every survivor, explained or not")
    args = parser.parse_args(argv)

    statuses = results(args.mutmut)
    if not statuses:
        print("no mutmut results: run `make mutate` first")
        return 1
    pairs = reasons()
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in statuses.items():
        by_module[module_of(name)][status] += 1

    columns = ("killed", "timeout", "survived", "no tests", "not checked", "other")
    print(f"{'module':32} {'mutants':>8} " + " ".join(f"{c:>11}" for c in columns) + f" {'score':>7}")
    total: Counter[str] = Counter()
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        print(_row(module, counts, columns))
    print(_row("all money modules", total, columns))

    survivors = sorted(n for n, s in statuses.items() if s in SURVIVED)
    unexplained = [n for n in survivors if explain(n, pairs) is None]
    checked = sum(v for k, v in total.items() if k != "not checked")
    killed = sum(total[k] for k in KILLED)
    score = killed / checked if checked else 0.0
    print(
        f"\nscore: {killed} of {checked} mutants killed = {score:.1%} (target {TARGET:.0%}); "
        f"{len(survivors)} survivors, {len(survivors) - len(unexplained)} explained in {REASONS.relative_to(REPO)}"
    )
    if args.survivors:
        by_function: dict[str, list[str]] = defaultdict(list)
        for name in survivors:
            by_function[function_of(name)].append(name)
        for function, names in sorted(by_function.items()):
            why = explain(names[0], pairs) or "UNEXPLAINED"
            print(f"  {function} ({len(names)}): {why}")
    if unexplained:
        print(f"\n{len(unexplained)} survivors have no reason yet (`mutmut show <name>` shows the change):")
        for name in unexplained:
            print(f"  {name}: {statuses[name]}")
    return 0 if score >= TARGET and not unexplained else 1


def _row(label: str, counts: Counter[str], columns: tuple[str, ...]) -> str:
    known = sum(counts[c] for c in columns[:-1])
    cells = [counts[c] for c in columns[:-1]] + [sum(counts.values()) - known]
    checked = sum(counts.values()) - counts["not checked"]
    score = (counts["killed"] + counts["timeout"]) / checked if checked else 0.0
    return f"{label:32} {sum(counts.values()):>8} " + " ".join(f"{c:>11}" for c in cells) + f" {score:>7.1%}"


if __name__ == "__main__":
    sys.exit(main())
