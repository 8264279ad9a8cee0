"""Latency (p50 and p99) against concurrency for every system, buffered and streamed: one PNG.

    bench/.venv-litellm/bin/python bench/plot.py RESULTS.json OUT.png

Needs matplotlib, which is installed into the bench venv (`make bench-venv`), never into Tollway's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(source: str, target: str) -> None:
    results = json.loads(Path(source).read_text())
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=False)
    for ax, stream in zip(axes, (False, True), strict=True):
        for name in results["systems"]:
            rows = sorted(
                (r for r in results["runs"].get(name, []) if r["stream"] == stream and r.get("latency_ms")),
                key=lambda r: r["concurrency"],
            )
            if not rows:
                continue
            xs = [r["concurrency"] for r in rows]
            (line,) = ax.plot(xs, [r["latency_ms"]["p50"] for r in rows], marker="o", label=f"{name} p50")
            ax.plot(
                xs,
                [r["latency_ms"]["p99"] for r in rows],
                marker="x",
                linestyle="--",
                color=line.get_color(),
                label=f"{name} p99",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrency (connections)")
        ax.set_ylabel("latency (ms)")
        ax.set_title("streamed (full response)" if stream else "buffered")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    meta = results["meta"]
    fig.suptitle(f"{meta['host']} {meta['started']} ({meta['mode']}, load before {meta['load_before'][0]})")
    fig.tight_layout()
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
