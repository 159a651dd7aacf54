"""Run every benchmark scenario and write the Markdown results to bench/results/.

A scenario is a module with ``run() -> str`` returning a Markdown section; add its name to
SCENARIOS. ``python -m bench bench.embed`` runs one. Each section is also kept in
bench/results/<scenario>.md, so running one scenario does not lose the others' figures.
"""

from __future__ import annotations

import importlib
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

SCENARIOS = ["bench.queue", "bench.webhooks", "bench.embed", "bench.spam_pipeline"]
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    wanted = sys.argv[1:] or SCENARIOS
    sections = []
    for name in wanted:
        module = importlib.import_module(name)
        print(f"--- {name}", flush=True)
        section = module.run()
        sections.append(section)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name.removeprefix('bench.')}.md").write_text(section + "\n")
    machine = f"{platform.node()}, {platform.machine()}, Python {platform.python_version()}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = f"# Benchmark results\n\n{stamp} on {machine}\n\n" + "\n\n".join(sections) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
