"""Keep `make mutate`'s results between clones: mutmut 3's own incremental state, committed.

A full mutation run of the money modules takes hours on two cores, longer than a working session,
and `mutants/` lives only in one checkout. mutmut already re-tests only what changed: per source file
it keeps each mutant's verdict beside the hash of its function (`mutants/<source>.meta`) and, in
`mutants/mutmut-stats.json`, which tests cover which function and the fingerprint of its config.
A function whose code changed, a new test, or a changed test config get their mutants run again;
everything else keeps its verdict. This tool saves those files into tools/mutation-cache.tar.gz and
puts them back into a fresh `mutants/`, so the next `make mutate` goes on where the last one stopped.

    python tools/mutation_cache.py save      # after a run (make mutate does it)
    python tools/mutation_cache.py restore   # before one, only when mutants/ has no results yet

`make mutate FRESH=1` ignores the cache and checks every mutant again.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MUTANTS = REPO / "mutants"
CACHE = REPO / "tools" / "mutation-cache.tar.gz"


def _state_files() -> list[Path]:
    files = sorted(MUTANTS.rglob("*.meta"))
    stats = MUTANTS / "mutmut-stats.json"
    return [*files, stats] if stats.exists() else files


def save() -> int:
    files = _state_files()
    if not files:
        print("mutants/ holds no results: nothing to save", file=sys.stderr)
        return 1
    with tarfile.open(CACHE, "w:gz", compresslevel=9) as archive:
        for path in files:
            archive.add(path, arcname=str(path.relative_to(MUTANTS)))
    print(f"saved {len(files)} files of mutmut state to {CACHE.relative_to(REPO)}")
    return 0


def restore() -> int:
    if _state_files():
        print("mutants/ already holds results: kept them (the cache is not restored over them)")
        return 0
    if not CACHE.exists():
        print("no mutation cache: every mutant will be checked")
        return 0
    with tarfile.open(CACHE, "r:gz") as archive:
        archive.extractall(MUTANTS, filter="data")
        count = len(archive.getnames())
    print(f"restored {count} files of mutmut state from {CACHE.relative_to(REPO)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["save", "restore"])
    return save() if parser.parse_args().action == "save" else restore()


if __name__ == "__main__":
    sys.exit(main())
