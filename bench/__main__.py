"""Run every benchmark scenario and write the Markdown results to bench/results/."""

from __future__ import annotations

import importlib
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

SCENARIOS = ["bench.queue", "bench.webhooks", "bench.spam_pipeline"]
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    wanted = sys.argv[1:] or SCENARIOS
    sections = []
    for name in wanted:
        module = importlib.import_module(name)
        print(f"--- {name}", flush=True)
        sections.append(module.run())
    machine = f"{platform.node()}, {platform.machine()}, Python {platform.python_version()}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = f"# Benchmark results\n\n{stamp} on {machine}\n\n" + "\n\n".join(sections) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
