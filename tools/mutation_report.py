"""Summarise a mutmut run of the money modules (`make mutate`, docs/testing.md).

Reads mutmut 3.8's own results, the per-file `mutants/<source>.meta` JSON, for every module in
`[tool.mutmut] only_mutate`, and prints per module: killed (by a test), mypy (rejected by the type
check, `type_check_command`), survived, no tests, timeout, suspicious, skipped, not yet checked, and
the minutes its mutants took. The score is (killed + mypy) / (mutants checked - survivors documented
as equivalent); a mutant no test runs, a timeout and a crash count as not killed.

Equivalent survivors live in docs/mutation-equivalent.txt: one mutant name (or fnmatch pattern) per
line, then `# reason`. The report lists every survivor, marks the documented ones, and names entries
that no longer match a survivor (the mutant is killed now, or gone).

`--fail-under 90` exits 1 when the score is below 90 %; without it the report only informs.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EQUIVALENT = REPO / "docs" / "mutation-equivalent.txt"

# mutmut 3.8.1's exit code -> status (mutmut/stats.py: status_by_exit_code); anything else is suspicious.
STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    2: "interrupted",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    37: "mypy",
    -11: "segfault",
    -9: "segfault",
}
COLUMNS = ("killed", "mypy", "survived", "no tests", "timeout", "suspicious", "skipped", "not checked")
# Not in the score at all. A mutant with no tests counts as not killed; one mypy rejects as caught
# (`make test` runs mypy before any test, so such a mutant could never land).
NOT_RUN = {"skipped", "not checked"}


@dataclass
class Module:
    name: str
    status: dict[str, str] = field(default_factory=dict)  # mutant name -> status
    seconds: float = 0.0

    def counts(self) -> Counter[str]:
        return Counter(self.status.values())


def status_of(exit_code: int | None) -> str:
    return "not checked" if exit_code is None else STATUS.get(exit_code, "suspicious")


def load(repo: Path) -> list[Module]:
    """One Module per `only_mutate` file, from its .meta (empty when mutmut has not generated it)."""
    config = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["mutmut"]
    modules = []
    for source in config["only_mutate"]:
        module = Module(source.removeprefix("src/").removesuffix(".py").replace("/", "."))
        meta = repo / "mutants" / f"{source}.meta"
        if meta.exists():
            data = json.loads(meta.read_text())
            module.status = {name: status_of(code) for name, code in data["exit_code_by_key"].items()}
            module.seconds = sum(data["durations_by_key"].values())
        modules.append(module)
    return modules


def equivalents(path: Path) -> list[tuple[str, str]]:
    """(pattern, reason) pairs; blank lines and lines starting with # are skipped."""
    if not path.exists():
        return []
    pairs = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            pattern, _, reason = line.partition("#")
            pairs.append((pattern.strip(), reason.strip()))
    return pairs


def reason_for(name: str, pairs: list[tuple[str, str]]) -> str | None:
    return next((reason for pattern, reason in pairs if fnmatch.fnmatchcase(name, pattern)), None)


def score(counts: Counter[str], equivalent: int) -> tuple[int, int]:
    """(caught, denominator): killed by a test or by mypy, over the mutants checked less the
    documented equivalent survivors."""
    ran = sum(n for status, n in counts.items() if status not in NOT_RUN)
    return counts["killed"] + counts["mypy"], ran - equivalent


def percent(killed: int, denominator: int) -> str:
    return f"{killed / denominator:.1%}" if denominator else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--equivalent", type=Path, default=EQUIVALENT, help="documented equivalent survivors")
    parser.add_argument("--fail-under", type=float, metavar="PERCENT", help="exit 1 below this score")
    args = parser.parse_args(argv)

    modules = load(args.repo)
    if not any(m.status for m in modules):
        print("no mutmut results in mutants/: run `make mutate` first")
        return 2
    pairs = equivalents(args.equivalent)

    print(f"{'module':28} {'mutants':>7} " + " ".join(f"{c:>11}" for c in COLUMNS) + "   minutes   score")
    total: Counter[str] = Counter()
    total_equivalent = 0
    survivors: list[tuple[str, str, str | None]] = []  # (name, status, reason)
    for module in modules:
        counts = module.counts()
        total.update(counts)
        listed = [
            (name, status, reason_for(name, pairs))
            for name, status in module.status.items()
            if status in ("survived", "no tests", "suspicious")
        ]
        survivors += listed
        equivalent = sum(1 for _, status, reason in listed if status == "survived" and reason)
        total_equivalent += equivalent
        cells = " ".join(f"{counts[c]:>11}" for c in COLUMNS)
        print(
            f"{module.name.removeprefix('tollway.'):28} {len(module.status):>7} {cells}"
            f" {module.seconds / 60:>9.1f} {percent(*score(counts, equivalent)):>7}"
        )
    cells = " ".join(f"{total[c]:>11}" for c in COLUMNS)
    minutes = sum(m.seconds for m in modules) / 60
    killed, denominator = score(total, total_equivalent)
    print(f"{'all':28} {sum(total.values()):>7} {cells} {minutes:>9.1f} {percent(killed, denominator):>7}")
    print(
        f"\nscore = (killed + mypy) / (checked - equivalent) = {killed} / ({denominator + total_equivalent} - "
        f"{total_equivalent}) = {percent(killed, denominator)}"
        f"  (timeouts counted as killed: {percent(killed + total['timeout'], denominator)})"
    )
    if total["not checked"]:
        print(f"{total['not checked']} mutants not checked yet: the run was stopped or is still going")
    if extra := sum(n for status, n in total.items() if status not in COLUMNS):
        print(f"{extra} mutants in other states (segfault, interrupted): counted as not killed")

    print(f"\nsurvivors ({len(survivors)}; `mutmut show <name>` shows the change):")
    for name, status, reason in survivors:
        tag = "" if status == "survived" else f" [{status}]"
        print(f"  {name}{tag}" + (f"  # equivalent: {reason}" if reason else ""))
    names = [name for name, _, _ in survivors]
    stale = [p for p, _ in pairs if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if stale:
        print(f"\n{args.equivalent.name}: {len(stale)} entries match no survivor (killed now, or gone):")
        for pattern in stale:
            print(f"  {pattern}")

    if args.fail_under is not None and denominator and 100 * killed / denominator < args.fail_under:
        print(f"\nscore below {args.fail_under}%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
