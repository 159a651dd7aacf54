"""A live server and headless Chromium (Debian's) for tests of what a person sees.

The server runs the real app in a thread on an ephemeral loopback port, on a SQLite file of its
own (browser tests need committed data). Chromium is driven by Playwright, never downloaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from moderation import create_app, schema

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclasses.dataclass
class LiveServer:
    url: str
    app: Flask

    def session(self) -> Session:
        session: Session = self.app.extensions["moderation.sessionmaker"]()
        return session


def require_browser() -> None:
    """Skip on a machine without Chromium, except in CI, where its absence is a failure."""
    missing = [str(p) for p in (Path(CHROMIUM), AXE) if not p.exists()]
    if missing and not os.environ.get("CI"):
        pytest.skip(f"browser tests need {', '.join(missing)} (make install; apt install chromium)")
    assert not missing, f"CI must install {missing}"


def live_server(tmp: Path, **overrides: object) -> Iterator[LiveServer]:
    from tests.helpers import settings_for_tests

    settings = settings_for_tests(database_url=f"sqlite:///{tmp / 'live.db'}", **overrides)
    app = create_app(settings)
    schema.upgrade(app.extensions["moderation.engine"])
    try:
        with serving(app) as url:
            yield LiveServer(url, app)
    finally:
        app.extensions["moderation.engine"].dispose()


@contextlib.contextmanager
def serving(wsgi: Any) -> Iterator[str]:
    """Serve a WSGI app from a thread on an ephemeral loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Run axe-core (WCAG 2.0-2.2 A and AA rules) on the page; the context must bypass CSP."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => (await axe.run(document, {runOnly: {type: 'tag', values:
            ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})).violations
            .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))"""
    )
    violations: list[dict[str, Any]] = json.loads(json.dumps(result))
    return violations
