"""A live server and headless Chromium (Debian's) for tests of what a person sees.

The server runs the real app in a thread on an ephemeral loopback port, on a SQLite file of its
own (browser tests need committed data). Chromium is driven by Playwright, never downloaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import json
import os
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from moderation import create_app, schema
from moderation.web import caching

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


def live_server(
    tmp: Path, *, stale_while_revalidate: int | None = None, **overrides: object
) -> Iterator[LiveServer]:
    """The app with test settings (and ``overrides``); ``stale_while_revalidate`` replaces the
    Cache-Control constant while it serves."""
    from tests.helpers import settings_for_tests

    settings = settings_for_tests(database_url=f"sqlite:///{tmp / 'live.db'}", **overrides)
    app = create_app(settings)
    schema.upgrade(app.extensions["moderation.engine"])
    with pytest.MonkeyPatch.context() as patch:
        if stale_while_revalidate is not None:
            patch.setattr(caching, "STALE_WHILE_REVALIDATE", stale_while_revalidate)
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


@dataclasses.dataclass(frozen=True)
class HostPage:
    """How a blog's post page embeds the thread: ``mode`` script, include (the server-side
    fragment) or iframe; the page's language; the post's publication date; and more of the
    thread's query (``&comment=ID#comment-ID``: a permalink, iframe and include modes)."""

    mode: str = "script"
    lang: str = "en"
    published: str = ""
    query: str = ""


class Blog:
    """A blog's own server, on another origin than the service's: each post page (its path is
    the post's key) embeds the thread as its :class:`HostPage` says (script mode by default)."""

    def __init__(self) -> None:
        self.pages: dict[str, HostPage] = {}
        self.service = ""  # the service's address, once it runs
        self.url = ""

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        key = environ["PATH_INFO"]
        body = self.page(key, self.pages.get(key, HostPage())).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body]

    def page(self, key: str, host: HostPage) -> str:
        published = f"&published={quote(host.published)}" if host.published else ""
        thread = f"{self.service}/embed/blog/thread?post={quote(key)}&lang={host.lang}{published}"
        script = f'<script src="{self.service}/embed.js" async></script>'
        if host.mode == "script":
            embed = (
                f'<div id="comments" data-site="blog" data-post="{key}" data-title="Post {key}"'
                f' data-published="{host.published}"><p><a href="'
                f'{html.escape(thread)}&amp;page=1">Read and leave comments</a></p></div>{script}'
            )
        elif host.mode == "include":
            with urllib.request.urlopen(thread + host.query) as response:
                embed = f'<div id="comments">{response.read().decode()}</div>'
        else:
            embed = (
                f'<iframe src="{html.escape(thread + "&page=1" + host.query)}" title="Comments"'
                f' style="width:100%;border:0"></iframe>{script}'
            )
        return (
            f'<!doctype html><html lang="{host.lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Post {key}</title></head><body><main><h1>Post {key}</h1>"
            f"<p>The post's text.</p>{embed}</main></body></html>"
        )

    @classmethod
    def running(cls) -> Iterator[Blog]:
        """A module's blog fixture: ``yield from Blog.running()``."""
        require_browser()
        blog = cls()
        with serving(blog.wsgi) as blog.url:
            yield blog
