"""`make soak`: the long load runs (a minute on SQLite, and on PostgreSQL with two app processes)
and the fault runs (PostgreSQL stopped for a while under load, a database that never answers, a
full disk under SQLite), then a Markdown report in bench/results/soak.md.

The runs are the suite's own tests (tests/test_load.py, tests/test_faults.py) with longer
phases; each appends its figures to a file named by SOAK_RECORD, which this module turns into
the report. ``python -m bench.soak [POSTGRESQL_URL]``: without a URL the PostgreSQL load run is
left out (the fault runs start a PostgreSQL server of their own).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "bench" / "results" / "soak.md"
LOAD_SECONDS = os.environ.get("LOAD_SECONDS", "60")
FAULT_SECONDS = os.environ.get("FAULT_SECONDS", "15")


def run_tests(label: str, database_url: str, tests: list[str], record: Path) -> bool:
    env = {
        **os.environ,
        "MODERATION_TEST_DATABASE_URL": database_url,
        "LOAD_SECONDS": LOAD_SECONDS,
        "FAULT_SECONDS": FAULT_SECONDS,
        "SOAK_RECORD": str(record),
    }
    print(f"--- {label}: {' '.join(tests)}", flush=True)
    command = [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", *tests]
    return subprocess.run(command, cwd=ROOT, env=env).returncode == 0


def statuses(figures: dict[str, Any]) -> str:
    return ", ".join(f"{status}: {count:,}" for status, count in figures["statuses"].items())


def render(records: list[dict[str, Any]], results: dict[str, bool]) -> str:
    machine = f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Soak: load and faults\n\n{stamp} on {machine}\n"]
    lines += [f"- {label}: **{'passed' if ok else 'FAILED'}**" for label, ok in results.items()]
    loads = [r for r in records if r["section"] == "load"]
    if loads:
        lines += [
            "\n## Load without loss\n",
            "16 clients, 70% reads (thread fragment, comments JSON, feed, counts), 20% "
            "submissions, 10% moderation actions. Every 202 stored once, every action one audit "
            "row and one event, no email, client address or unapproved text in any public "
            "response.\n",
            "| database | seconds | requests | by status | accepted | moderated "
            "| peak RSS per worker (MiB) |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['database']} | {r['seconds']:g} | {r['requests']:,} | {statuses(r)} "
            f"| {r['accepted']:,} | {r['moderated']:,} | {', '.join(map(str, r['rss_peak_mib']))} |"
            for r in loads
        ]
    for r in records:
        if r["section"] == "postgresql outage":
            lines += [
                "\n## PostgreSQL stopped under load\n",
                f"8 clients (50% reads, 35% submissions, 15% moderation) against gunicorn with 2 "
                f"workers; the server stopped (`pg_ctl stop -m immediate`) for {r['seconds']:g} s "
                f"after {r['seconds']:g} s of service, then started again, and the load went on "
                f"for {r['seconds']:g} s.\n",
                f"- requests: {r['requests']:,} ({statuses(r)})",
                f"- during the outage: {r['unavailable']:,} answers, every one 503 with "
                "`Retry-After` (the JSON error on the API, the error page on the embed), the "
                f"slowest after {r['slowest_503_seconds']} s; slowest request of the run "
                f"{r['slowest_seconds']} s",
                f"- `/readyz` 200 again {r['ready_after_restart_seconds']} s after the restart, "
                "same worker processes (no restart of the app)",
                f"- commits whose answer the outage cut off (stored, client saw 503): "
                f"{r['unacknowledged_commits']}; no 202 lost, nothing half-written",
            ]
        elif r["section"] == "hung database":
            lines += [
                "\n## A database that never answers\n",
                f"A request answered 503 after {r['seconds']} s (the connect timeout), once.",
            ]
        elif r["section"] == "sqlite disk full":
            lines += [
                "\n## SQLite on a full disk\n",
                f"Writes refused with {r['refused_status']} `storage_full` and `Retry-After`, "
                f"reads served; after space was freed writes resumed; {r['stored']} comments "
                "stored, each with its event, `PRAGMA integrity_check` ok.",
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    postgresql = sys.argv[1] if len(sys.argv) > 1 else ""
    with tempfile.TemporaryDirectory() as directory:
        record = Path(directory) / "soak.jsonl"
        record.touch()
        results = {
            "SQLite load": run_tests("SQLite load", "", ["tests/test_load.py"], record),
        }
        if postgresql:
            results["PostgreSQL load"] = run_tests(
                "PostgreSQL load", postgresql, ["tests/test_load.py"], record
            )
        results["faults"] = run_tests("faults", "", ["tests/test_faults.py"], record)
        records = [json.loads(line) for line in record.read_text().splitlines()]
    report = render(records, results)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(report)
    print(report)
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
