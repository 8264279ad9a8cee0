"""What a benchmark run writes: the summary (overhead against the upstream, max throughput), the
ratios between systems, the Markdown tables of docs/benchmarks.md and the PNG plot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from systems import HERE, LITELLM_VENV, TOLLWAY_SYSTEMS


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Overheads against `direct` at the same concurrency and mode; max throughput at < 1 % errors."""
    runs = results["runs"]
    direct = {(r["stream"], r["concurrency"]): r for r in runs.get("direct", []) if "latency_ms" in r}
    summary: dict[str, Any] = {}
    for name, rows in runs.items():
        entry: dict[str, Any] = {"max_rps": {}, "overhead_ms": {}, "ttfb_overhead_ms": {}}
        for stream in (False, True):
            mode = "stream" if stream else "buffered"
            good = [r for r in rows if r["stream"] == stream and "rps" in r and r["error_rate"] < 0.01]
            entry["max_rps"][mode] = max((r["rps"] for r in good), default=None)
            for row in rows:
                if row["stream"] != stream or "latency_ms" not in row or row["latency_ms"]["p50"] is None:
                    continue
                base = direct.get((stream, row["concurrency"]))
                if base is None or base["latency_ms"]["p50"] is None:
                    continue
                key = f"{mode}@{row['concurrency']}"
                entry["overhead_ms"][key] = {
                    q: round(row["latency_ms"][q] - base["latency_ms"][q], 3) for q in ("p50", "p95", "p99")
                }
                if (
                    stream
                    and row.get("ttfb_ms")
                    and base.get("ttfb_ms")
                    and row["ttfb_ms"]["p50"] is not None
                ):
                    entry["ttfb_overhead_ms"][key] = {
                        q: round(row["ttfb_ms"][q] - base["ttfb_ms"][q], 3) for q in ("p50", "p95", "p99")
                    }
        summary[name] = entry
    return summary


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Run `{meta['started']}` on `{meta['host']}` ({meta['cpus']} CPUs, {meta['python']}), mode `{meta['mode']}`, "
        f"{meta['duration_s']} s per point; load average before {meta['load_before']}, after {meta['load_after']}. "
        f"Upstream: {meta['upstream']}.",
        "",
        "| system | mode | conc. | RPS | errors | p50 ms | p95 ms | p99 ms | overhead p50/p95/p99 ms | TTFB p50 ms | TTFB overhead p50/p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    summary = results["summary"]
    for stream in (False, True):
        mode = "stream" if stream else "buffered"
        for concurrency in meta["concurrency"]:
            for name in results["systems"]:
                if results["skipped"].get(name):
                    continue
                row = next(
                    (
                        r
                        for r in results["runs"].get(name, [])
                        if r["stream"] == stream and r["concurrency"] == concurrency
                    ),
                    None,
                )
                if row is None:
                    continue
                if "latency_ms" not in row:
                    lines.append(f"| {name} | {mode} | {concurrency} | failed | | | | | | | |")
                    continue
                lat = row["latency_ms"]
                over = summary[name]["overhead_ms"].get(f"{mode}@{concurrency}")
                ttfb_over = summary[name]["ttfb_overhead_ms"].get(f"{mode}@{concurrency}")
                ttfb = (row.get("ttfb_ms") or {}).get("p50")
                lines.append(
                    f"| {name} | {mode} | {concurrency} | {row['rps']:.0f} | {row['error_rate'] * 100:.1f}% | "
                    f"{_f(lat['p50'])} | {_f(lat['p95'])} | {_f(lat['p99'])} | "
                    + (
                        f"{_f(over['p50'])} / {_f(over['p95'])} / {_f(over['p99'])}"
                        if over and name != "direct"
                        else ""
                    )
                    + f" | {_f(ttfb)} | "
                    + (
                        f"{_f(ttfb_over['p50'])} / {_f(ttfb_over['p99'])}"
                        if ttfb_over and name != "direct"
                        else ""
                    )
                    + " |"
                )
    lines += [
        "",
        "| system | max RPS buffered (< 1 % errors) | max RPS stream | RSS after run (MiB) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in results["systems"]:
        if results["skipped"].get(name):
            lines.append(f"| {name} | skipped: {results['skipped'][name]} | | |")
            continue
        rps = summary[name]["max_rps"]
        lines.append(
            f"| {name} | {_f(rps['buffered'], 0)} | {_f(rps['stream'], 0)} | {_f(results['rss_mib'].get(name), 0)} |"
        )
    ratios = results.get("ratios") or {}
    if ratios:
        lines += ["", "Ratios (same run): " + "; ".join(f"{k} = {v}" for k, v in ratios.items()) + "."]
    lines += _money_lines(results.get("checks") or {})
    return "\n".join(lines) + "\n"


def _money_lines(checks: dict[str, Any]) -> list[str]:
    """The money check of each Tollway system, read from its database after it stopped (bench/money_check.py)."""
    if not checks:
        return []
    lines = ["", "Money after the run (the stopped server's database, bench/money_check.py):", ""]
    for name, check in checks.items():
        off = [f"{problem}: {value}" for problem, value in check["problems"].items()]
        if not check["graceful"]:
            off.append(f"did not stop on SIGTERM (exit code {check['exit_code']})")
        verdict = "**FAILED**: " + "; ".join(off) if off else "exact"
        figures = (
            f"{check.get('charged nano')} nano-USD charged by {check.get('settle entries')} settlements for "
            f"{check.get('usage rows')} usage rows; {check.get('per-call holds')} per-call holds; "
            f"{check.get('leases taken')} leases of {check.get('leased nano')} nano-USD, "
            f"{check.get('paid from leases nano')} paid from them, {check.get('returned nano')} returned"
        )
        lines.append(f"- {name}: {verdict} ({figures})")
    return lines


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ratios(summary: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}

    def rps(name: str, mode: str) -> float | None:
        value = summary.get(name, {}).get("max_rps", {}).get(mode)
        return float(value) if value else None

    for mode in ("buffered", "stream"):
        for ours in TOLLWAY_SYSTEMS:
            # A leased (or two-worker) system is also set against the same Tollway without.
            without = [ours.rsplit("-", 1)[0]] if ours.endswith(("-leases", "-2workers")) else []
            for theirs in ("passthrough", "passthrough-aiohttp", "litellm-pg", "litellm-nodb", *without):
                a, b = rps(ours, mode), rps(theirs, mode)
                if a and b:
                    out[f"{ours}/{theirs} max RPS {mode}"] = round(a / b, 2)
    return out


def write_doc(doc: Path, text: str) -> None:
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    current = doc.read_text() if doc.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in current:
        current += f"\n{begin}\n{end}\n"
    head, _, rest = current.partition(begin)
    _, _, after = rest.partition(end)
    doc.write_text(f"{head}{begin}\n{text}{end}{after}")


def plot(json_path: Path, png_path: Path) -> str | None:
    """Draw with matplotlib from the LiteLLM venv (not a Tollway dependency), or this Python if it has it."""
    for python in (LITELLM_VENV / "bin" / "python", Path(sys.executable)):
        if not python.exists():
            continue
        done = subprocess.run(
            [str(python), str(HERE / "plot.py"), str(json_path), str(png_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return None
        last = done.stderr.strip().splitlines()[-1:] or ["?"]
    return f"no plot: {last[0]}"
