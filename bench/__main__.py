"""Run the benchmarks and write the Markdown results to bench/results/.

A section is a module with ``run() -> str``, listed in SECTIONS. ``python -m bench`` runs them all
and writes bench/results/latest.md and a dated copy, headed by the machine it ran on;
``python -m bench bench.harness`` runs one and writes only bench/results/harness.md.
"""

from __future__ import annotations

import importlib
import os
import platform
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

SECTIONS = [
    "bench.harness",
    "bench.peer",
    "bench.submission_cost",
    "bench.spam_pipeline",
    "bench.spam_corpus",
    "bench.webhooks",
]
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def main() -> None:
    wanted = sys.argv[1:] or SECTIONS
    started = datetime.now(UTC)
    RESULTS.mkdir(exist_ok=True)
    sections = []
    for name in wanted:
        print(f"--- {name}", flush=True)
        section = importlib.import_module(name).run()
        (RESULTS / f"{name.removeprefix('bench.')}.md").write_text(section + "\n")
        sections.append(section)
        print(section, flush=True)
    if wanted != SECTIONS:
        return
    minutes = (datetime.now(UTC) - started).total_seconds() / 60
    report = (
        f"# Benchmark results\n\n{started:%Y-%m-%d %H:%M} UTC on {machine()}; "
        f"`make bench` took {minutes:.1f} minutes.\n\n" + "\n\n".join(sections) + "\n"
    )
    (RESULTS / "latest.md").write_text(report)
    (RESULTS / f"{started:%Y-%m-%dT%H%MZ}.md").write_text(report)


if __name__ == "__main__":
    main()
