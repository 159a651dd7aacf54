"""The XSS corpus through the real pipeline, in headless Chromium, with a positive control.

Payloads of the vendored corpora (tests/data/xss) are submitted through the public API as a
comment's author name and body, and as a post's title, approved through the moderation API, and
rendered: by embed.js on a blog page (the thread inserted with innerHTML), and as the standalone
thread page (the server-rendered fragment, parsed as HTML); then every approved body is edited by a
moderator to another payload and rendered again, in both modes and in the moderators' queue.
Hooks installed before any page script record:

* calls of alert, confirm, prompt and print (overridden in every frame), and any real dialog;
* every script Chromium compiles from a page's markup (Debugger.scriptParsed): inline scripts
  and event handler attributes, and what eval, Function or a timer compiles from them, whether
  or not it calls anything;
* every request to an origin other than the service and the blog page, and every popup.

Each element then gets synthetic mouse, pointer, focus, key, clipboard, drag and animation events,
a click, and the accesskey chords found. Pass: nothing recorded. Pages are rendered with CSP
bypassed, so the markup is tested, not the standalone page's Content-Security-Policy.

The positive control renders the same payloads unsanitised (raw in the same contexts: author
name, body and title, one frame each) with the same hooks; it must record at least
MIN_CONTROL_EXECUTIONS executions, by at least a fifth of the payloads, or the run is void: most
payloads fire in no context, so a test without the control could pass vacuously.

`make test` takes a sample of the corpus (SAMPLE_STRIDE), `make soak` all of it. The test does not
depend on the database, so it runs on SQLite only.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from moderation.sites import create_site
from tests.browser import LiveServer, live_server, require_browser, serving
from tests.helpers import PASSWORD, csrf_from, make_moderator, make_token
from tests.xss_corpus import Payload, counts, payloads

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        bool(os.environ.get("MODERATION_TEST_DATABASE_URL")),
        reason="the XSS corpus test does not depend on the database: it runs on SQLite only",
    ),
]

SITE = "xss"
PER_THREAD = 100  # comments per rendered thread
PER_FRAMES_PAGE = 50  # title pages (or control documents) per page of iframes
MIN_CONTROL_EXECUTIONS = 250
# What counts as an execution of payload code (requests and popups are findings, not these).
EXECUTIONS = {"alert", "confirm", "prompt", "print", "canary", "script"} | {
    f"dialog:{kind}" for kind in ("alert", "confirm", "prompt", "beforeunload")
}
# Submitting a payload costs three API calls (name and body, title, edit), some 20 ms each on
# this 2-core machine, so `make test` takes every SAMPLE_STRIDE-th payload (every source is
# represented) and `make soak` (XSS_CORPUS=full) all of them. Every payload goes through the
# sanitiser itself in tests/test_sanitising.py.
SAMPLE_STRIDE = 4
CORPUS = payloads() if os.environ.get("XSS_CORPUS") == "full" else payloads()[::SAMPLE_STRIDE]
SETTLE_SECONDS = 0.2
READY_TIMEOUT_MS = 15_000
REFLECT_STRIDE = 4  # of the sample: the echo test needs a page for each six payloads
EVENT_TYPES = [
    "mouseover", "mouseenter", "mousemove", "mousedown", "mouseup", "dblclick", "contextmenu",
    "auxclick", "mouseout", "mouseleave", "mousewheel", "wheel", "pointerover", "pointerenter",
    "pointerdown", "pointermove", "pointerup", "pointerout", "pointerleave", "pointerrawupdate",
    "focus", "focusin", "blur", "focusout", "keydown", "keypress", "keyup", "beforeinput",
    "input", "change", "select", "selectstart", "invalid", "toggle", "beforetoggle", "scroll",
    "scrollend", "copy", "cut", "paste", "beforecopy", "beforecut", "drag", "dragstart",
    "dragend", "dragenter", "dragover", "dragleave", "dragexit", "drop", "touchstart",
    "touchend", "touchmove", "animationstart", "animationiteration", "animationend",
    "transitionstart", "transitionrun", "transitionend", "webkitanimationstart",
    "webkittransitionend", "show", "close", "search", "begin", "end", "repeat", "load", "error",
    "loadstart", "canplay", "play", "playing", "pause", "ended", "timeupdate", "cuechange",
]  # fmt: skip
WINDOW_EVENT_TYPES = [
    "hashchange", "popstate", "message", "resize", "scroll", "pageshow", "pagehide",
    "beforeprint", "afterprint", "online", "offline", "storage", "focus", "blur", "load",
    "orientationchange", "unhandledrejection", "languagechange",
]  # fmt: skip

# Installed in every frame before any of its scripts: the recording hooks, and a guard that keeps
# ordinary links and forms from leaving the page (a comment may link anywhere; following it is the
# reader's choice, not an execution). javascript: URLs are left to run, so they are caught.
HOOKS = """
(() => {
  const record = (kind, detail) => {
    let where = "";
    try {
      const event = window.event;
      const node = event && event.target && event.target.nodeType ? event.target
        : document.currentScript;
      const item = node && node.closest ? node.closest("[data-cm-id]") : null;
      where = item ? item.getAttribute("data-cm-id") : "";
    } catch (error) {}
    try { window.__xssRecord(kind, String(detail).slice(0, 200), where); } catch (error) {}
  };
  for (const name of ["alert", "confirm", "prompt", "print"]) {
    Object.defineProperty(window, name, {
      value: function (detail) { record(name, detail); return null; },
      writable: true, configurable: true,
    });
  }
  window.__xssCanary = (detail) => record("canary", detail);
  addEventListener("click", (event) => {
    const link = event.target && event.target.closest ? event.target.closest("a[href]") : null;
    if (link && /^(https?|mailto):/i.test(link.href)) { event.preventDefault(); }
  }, true);
  addEventListener("submit", (event) => {
    if (!/^javascript:/i.test(event.target.action || "")) { event.preventDefault(); }
  }, true);
})();
//# sourceURL=xss-hooks.js
"""

FIRE_EVENTS = """
([types, windowTypes]) => {
  const form = document.getElementById("cm-form");
  const elements = [document.documentElement, document.body, ...document.querySelectorAll("*")]
    .filter((el) => el && !(form && form.contains(el)));
  const keys = new Set();
  for (const el of elements) {
    if (el.hasAttribute && el.hasAttribute("accesskey")) { keys.add(el.getAttribute("accesskey")); }
    try { if (el.focus) { el.focus(); } } catch (error) {}
    for (const type of types) {
      try { el.dispatchEvent(new Event(type, {bubbles: true, cancelable: true})); } catch (error) {}
    }
    try {
      if (typeof el.click === "function") { el.click(); }
      else { el.dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true})); }
    } catch (error) {}
  }
  for (const type of windowTypes) {
    try { window.dispatchEvent(new Event(type)); } catch (error) {}
  }
  return [elements.length, [...keys].filter((k) => k && k.length === 1)];
}
"""


@dataclasses.dataclass
class Finding:
    kind: str
    detail: str
    where: str
    url: str


@dataclasses.dataclass
class Recorder:
    """What the hooks saw, for one browser context."""

    allowed_origins: set[str]
    findings: list[Finding] = dataclasses.field(default_factory=list)
    scripts: dict[str, list[tuple[str, str]]] = dataclasses.field(default_factory=dict)

    def add(self, kind: str, detail: str, where: str = "", url: str = "") -> None:
        self.findings.append(Finding(kind, detail, where, url))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Blog:
    """The blog's own server on loopback (another origin than the service): serves the test's
    pages by path. A real server, not a routed fake: Chromium lets only loopback or secure pages
    reach a loopback service."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.url = ""  # set once it is served

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        page = self.pages.get(environ["PATH_INFO"])
        if page is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not here"]
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [page.encode()]

    def add(self, path: str, page: str) -> str:
        self.pages[path] = page
        return f"{self.url}{path}"


class Harness:
    """One browser context with the hooks installed; requests to any origin but the service's
    and the blog's are recorded and refused."""

    def __init__(self, browser: Any, server: LiveServer, blog: Blog) -> None:
        self.server = server
        self.recorder = Recorder({server.url, blog.url})
        self.context = browser.new_context(bypass_csp=True)
        self.context.expose_binding("__xssRecord", self._binding)
        self.context.add_init_script(HOOKS)
        self.context.route(lambda url: not self._allowed(url), self._refuse)
        # Navigations to these URLs go out as the no-JS form's POST, with these fields.
        self.posts: dict[str, dict[str, str]] = {}
        self.context.route(lambda url: url in self.posts, self._post)
        self.context.on("request", self._request)
        self.page = self.context.new_page()
        self.context.on("page", lambda page: self.recorder.add("popup", page.url))
        self.page.on("dialog", self._dialog)
        self.page.on("websocket", lambda ws: self.recorder.add("websocket", ws.url))
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.on("Debugger.scriptParsed", self._script)
        self.cdp.send("Debugger.enable")
        self.timings: collections.defaultdict[str, float] = collections.defaultdict(float)

    def close(self) -> None:
        self.context.close()

    def get(self, url: str) -> str:
        """A page's HTML fetched with the context's cookies (no rendering, no hooks)."""
        response = self.context.request.get(url)
        assert response.ok, url
        text: str = response.text()
        return text

    def _allowed(self, url: str) -> bool:
        return url.startswith(LOCAL_SCHEMES) or origin(url) in self.recorder.allowed_origins

    def _binding(self, source: dict[str, Any], kind: str, detail: str, where: str) -> None:
        frame = source["frame"]
        self.recorder.add(kind, detail, where or frame_label(frame), frame.url)

    def _dialog(self, dialog: Any) -> None:
        self.recorder.add(f"dialog:{dialog.type}", dialog.message, "", self.page.url)
        dialog.dismiss()

    def _request(self, request: Any) -> None:
        if not self._allowed(request.url):
            self.recorder.add("request", request.url, frame_label(request.frame), request.url)

    def _refuse(self, route: Any) -> None:
        route.abort()

    def _post(self, route: Any) -> None:
        headers = {**route.request.headers, "content-type": "application/x-www-form-urlencoded"}
        body = urlencode(self.posts[route.request.url])
        route.continue_(method="POST", post_data=body, headers=headers)

    def _script(self, event: dict[str, Any]) -> None:
        """A script compiled from a page's markup has that document's URL (an inline script or
        event handler), or was compiled by code that has (eval, Function, a timer's string).
        Playwright's own scripts and ours have none or a known one."""
        aux = event.get("executionContextAuxData") or {}
        stack = (event.get("stackTrace") or {}).get("callFrames", [])
        urls = [event.get("url", ""), *(frame.get("url", "") for frame in stack)]
        if aux.get("type") == "isolated" or not any(u and not self._ours(u) for u in urls):
            return
        frame = aux.get("frameId", "")
        self.recorder.scripts.setdefault(frame, []).append((urls[0], event["scriptId"]))

    def _ours(self, url: str) -> bool:
        """The hooks, embed.js and the service's static scripts."""
        service = self.server.url
        return url in OURS or url.startswith((f"{service}/embed.js", f"{service}/static/"))

    def script_source(self, script_id: str) -> str:
        try:
            source: str = self.cdp.send("Debugger.getScriptSource", {"scriptId": script_id})[
                "scriptSource"
            ]
        except Exception:  # the frame may be gone
            return "?"
        return source[:200]

    def frame_names(self) -> dict[str, str]:
        """CDP frame id -> the name attribute of its top-level iframe (or "" for the page)."""
        tree = self.cdp.send("Page.getFrameTree")["frameTree"]
        names: dict[str, str] = {}

        def walk(node: dict[str, Any], label: str, depth: int) -> None:
            frame = node["frame"]
            if depth == 1:
                label = frame.get("name", "")
            names[frame["id"]] = label
            for child in node.get("childFrames", []):
                walk(child, label, depth + 1)

        walk(tree, "", 0)
        return names

    def render(self, url: str, *, ready: str = "true") -> int:
        """Load ``url``, wait for ``ready``, fire every event in every frame; the element count."""
        started = time.monotonic()
        self.page.goto(url, wait_until="load")
        try:
            self.page.wait_for_function(ready, timeout=READY_TIMEOUT_MS)
        except PlaywrightTimeout:
            self.recorder.add("incomplete", f"not ready: {ready}", "", url)
        loaded = time.monotonic()
        fired = 0
        for frame in list(self.page.frames):
            if not frame.url.startswith(SCRIPTABLE):
                continue  # an error page (a refused view-source: frame) never answers
            try:
                count, keys = frame.evaluate(FIRE_EVENTS, [EVENT_TYPES, WINDOW_EVENT_TYPES])
            except Exception:  # a frame that navigated away or was removed meanwhile
                continue
            fired += count
            for key in keys:
                self.page.keyboard.press(f"Alt+Shift+{key}")
        events = time.monotonic()
        time.sleep(SETTLE_SECONDS)
        self._collect_scripts()
        self.timings["load"] += loaded - started
        self.timings["events"] += events - loaded
        self.timings["settle"] += time.monotonic() - events
        return fired

    def _collect_scripts(self) -> None:
        """Turn the compiled scripts of this page into findings, labelled by their frame."""
        if not self.recorder.scripts:
            return
        names = self.frame_names()
        for frame, scripts in self.recorder.scripts.items():
            for url, script_id in scripts:
                self.recorder.add(
                    "script", self.script_source(script_id), names.get(frame, ""), url
                )
        self.recorder.scripts.clear()


OURS = {"xss-hooks.js"}
LOCAL_SCHEMES = ("data:", "blob:", "about:", "javascript:")
SCRIPTABLE = ("http://", "https://", "about:", "data:")


def frame_label(frame: Any) -> str:
    """The name of the page's iframe that holds ``frame`` (the payload's frame), or ""."""
    while frame is not None and frame.parent_frame is not None:
        if frame.parent_frame.parent_frame is None:
            return str(frame.name)
        frame = frame.parent_frame
    return ""


# The service and the blog ---------------------------------------------------------------------


@dataclasses.dataclass
class Corpus:
    """What was submitted and approved: threads of comments, posts titled with a payload."""

    threads: dict[str, list[tuple[str, str, Payload]]]  # post key -> (comment id, name, payload)
    titles: dict[str, Payload]  # post key -> the payload that is its title
    refused: dict[str, int]  # field -> payloads the validation refused in it
    seconds: float  # how long submitting and approving took


@pytest.fixture(scope="module")
def blog() -> Iterator[Blog]:
    require_browser()
    blog = Blog()
    with serving(blog.wsgi) as blog.url:
        yield blog


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, blog: Blog) -> Iterator[LiveServer]:
    for server in live_server(
        tmp_path_factory.mktemp("xss"),
        public_max_age=0,
        public_stale_while_revalidate=0,
        embed_page_size=PER_THREAD,
    ):
        with server.session() as session:
            create_site(session, slug=SITE, name="XSS blog", origins=[blog.url])
            session.commit()
        yield server


@pytest.fixture(scope="module")
def api(server: LiveServer, blog: Blog) -> Api:
    with server.session() as session:
        token = make_token(session, make_moderator(session))
    return Api(server, blog, token)


class Api:
    """The public API as the blog's page uses it, the moderation API as an integration does."""

    def __init__(self, server: LiveServer, blog: Blog, token: str) -> None:
        self.base = server.url
        self.blog = blog
        self.http = requests.Session()
        self.token = token

    def submit(self, **fields: str) -> requests.Response:
        return self.http.post(
            f"{self.base}/api/v1/sites/{SITE}/comments",
            json=fields,
            headers={"Origin": self.blog.url},
            timeout=30,
        )

    def moderate(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.http.post(
            f"{self.base}/api/v1/moderation/{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )

    def approve(self, ids: list[str]) -> None:
        for batch in chunks(ids, 200):
            response = self.moderate("bulk", {"ids": batch, "action": "approve"})
            assert response.status_code == 200, response.text
            for refused in response.json()["refused"]:  # filed as spam: restore, then approve
                for action in ("restore", "approve"):
                    again = self.moderate(f"comments/{refused}/{action}", {})
                    assert again.status_code == 200, again.text


def refused_fields(response: requests.Response) -> set[str]:
    assert response.status_code in (202, 422), response.text
    return set(response.json()["error"]["fields"]) if response.status_code == 422 else set()


def submit_corpus(api: Api, corpus: tuple[Payload, ...]) -> Corpus:
    """Each payload as an author name and a body (PER_THREAD comments a thread), and as the title
    of a post of its own; a field the validation refuses falls back to plain text, counted."""
    started = time.monotonic()
    threads: dict[str, list[tuple[str, str, Payload]]] = {}
    titles: dict[str, Payload] = {}
    refused = {"author_name": 0, "body": 0, "post_title": 0}
    pending: list[str] = []
    for index, payload in enumerate(corpus):
        key = f"/xss/thread-{index // PER_THREAD}/"
        fields = {
            "post": key,
            "post_url": f"{api.blog.url}{key}",
            "post_title": f"Thread {index // PER_THREAD}",
            "author_name": payload.text,
            "author_email": f"reader{index}@example.com",
            "body": payload.text,
        }
        response = api.submit(**fields)
        if "author_name" in refused_fields(response):
            refused["author_name"] += 1
            fields["author_name"] = f"Reader {index}"
            response = api.submit(**fields)
        if "body" in refused_fields(response):
            refused["body"] += 1
        else:
            assert response.status_code == 202, response.text
            pending.append(response.json()["id"])
            name = fields["author_name"].strip()  # as the validation keeps it
            threads.setdefault(key, []).append((pending[-1], name, payload))

        title_key = f"/xss/title-{index}/"
        response = api.submit(
            post=title_key,
            post_url=f"{api.blog.url}{title_key}",
            post_title=payload.text,
            author_name=f"Reader {index}",
            author_email=f"titles{index}@example.com",
            body=f"On the post titled with payload {index}.",
        )
        if "post_title" in refused_fields(response):
            refused["post_title"] += 1
        else:
            pending.append(response.json()["id"])
            titles[title_key] = payload
    api.approve(pending)
    return Corpus(threads, titles, refused, time.monotonic() - started)


@pytest.fixture(scope="module")
def corpus(api: Api) -> Corpus:
    return submit_corpus(api, CORPUS)


def host_page(server: LiveServer, key: str) -> str:
    """The blog's post page with the script embed."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A post</title></head>'
        f'<body><main><h1>A post</h1><div id="comments" data-site="{SITE}" data-post="{key}">'
        f'<p><a href="{server.url}/embed/{SITE}/thread?post={quote(key)}&amp;page=1">Comments</a>'
        f'</p></div><script src="{server.url}/embed.js"></script></main></body></html>'
    )


def frames_page(sources: list[tuple[str, str]], *, sandbox: bool = False) -> str:
    """A page of iframes, each named so a finding can be traced to its payload. The control's
    frames are sandboxed without allow-top-navigation, so no payload can take the page away."""
    attribute = ' sandbox="allow-scripts allow-same-origin allow-forms allow-modals"'
    frames = "".join(
        f'<iframe name="{html.escape(name)}" src="{html.escape(src)}"'
        f"{attribute if sandbox else ''}></iframe>"
        for name, src in sources
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Frames</title></head>'
        f"<body>{frames}</body></html>"
    )


def control_document(blog: Blog, payload: Payload) -> str:
    """The thread page's contexts with the payload inserted raw: no escaping, no sanitiser."""
    raw = payload.text
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Comments on {raw}</title></head>'
        f'<body><p class="cm-back"><a href="{blog.url}/post/">Back to {raw}</a></p>'
        '<ol class="cm-comments"><li class="cm-comment"><article class="cm-article">'
        f'<header class="cm-meta"><span class="cm-author">{raw}</span></header>'
        f'<div class="cm-body">{raw}</div></article></li></ol></body></html>'
    )


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def describe(findings: list[Finding], labels: dict[str, str]) -> str:
    return "\n".join(
        f"{f.kind} in {labels.get(f.where, f.where) or '?'} at {f.url}: {f.detail[:120]!r}"
        for f in findings[:20]
    )


SHOWN = """() => [...document.querySelectorAll('.cm-comments > .cm-comment')].map((li) => [
    li.getAttribute('data-cm-id'), li.querySelector('.cm-author').textContent])"""


def render_threads(harness: Harness, server: LiveServer, blog: Blog, corpus: Corpus) -> int:
    """Every thread by embed.js on the blog's page and as the standalone page; every comment
    must be there with its author's name intact, so the payloads really reached the page."""
    elements = 0
    for key, comments in corpus.threads.items():
        ready = f"document.querySelectorAll('.cm-comments > .cm-comment').length >= {len(comments)}"
        for url in (
            blog.add(key, host_page(server, key)),
            f"{server.url}/embed/{SITE}/thread?post={quote(key)}&page=1",
        ):
            elements += harness.render(url, ready=ready)
            shown = dict(harness.page.evaluate(SHOWN))
            for comment_id, name, _ in comments:
                if shown.get(comment_id) != name:
                    harness.recorder.add(
                        "mangled", f"name shown: {shown.get(comment_id)!r}", comment_id, url
                    )
    return elements


QUEUE_SHOWN = """() => [...document.querySelectorAll('.queue-item')].map((li) => [
    li.id.replace('queue-', ''), li.querySelector('.queue-title a').textContent])"""


def render_queue(harness: Harness, server: LiveServer, corpus: Corpus) -> int:
    """The moderators' queue of each thread's comments, as a logged-in moderator sees it."""
    login = f"{server.url}/moderate/login"
    form = {"login": "editor", "password": PASSWORD, "csrf_token": csrf_from(harness.get(login))}
    assert harness.context.request.post(login, form=form, max_redirects=0).status == 303
    elements = 0
    for key, comments in corpus.threads.items():
        url = f"{server.url}/moderate/?status=approved&site={SITE}&post={quote(key)}&limit=200"
        ready = f"document.querySelectorAll('.queue-item').length >= {len(comments)}"
        elements += harness.render(url, ready=ready)
        shown = dict(harness.page.evaluate(QUEUE_SHOWN))
        for comment_id, name, _ in comments:
            if shown.get(comment_id) != name:
                harness.recorder.add(
                    "mangled", f"queue shows {shown.get(comment_id)!r}", comment_id, url
                )
    return elements


def render_titles(harness: Harness, server: LiveServer, blog: Blog, corpus: Corpus) -> int:
    """Every post titled with a payload: its standalone page, PER_FRAMES_PAGE to a page."""
    elements = 0
    sources = [
        (key, f"{server.url}/embed/{SITE}/thread?post={quote(key)}&page=1") for key in corpus.titles
    ]
    for number, batch in enumerate(chunks(sources, PER_FRAMES_PAGE)):
        elements += harness.render(blog.add(f"/xss/titles/{number}", frames_page(batch)))
        for frame in harness.page.main_frame.child_frames:
            back = frame.evaluate("() => document.querySelector('.cm-back a')?.textContent")
            if corpus.titles[frame.name].text.strip() not in (back or ""):
                harness.recorder.add("mangled", f"title shown: {back!r}", frame.name, frame.url)
    return elements


def test_corpus_size_and_sources() -> None:
    """The corpora are vendored in full: well over 1,000 distinct payloads."""
    found = counts()
    vendored = sum(n for source, n in found.items() if not source.startswith("derived/"))
    assert vendored > 1000, found
    assert all(n > 0 for n in found.values()), found


def test_no_payload_executes_anywhere(
    browser: Any, server: LiveServer, blog: Blog, api: Api, corpus: Corpus
) -> None:
    started = time.monotonic()
    labels = {
        comment_id: f"{payload.source}: {payload.text[:60]!r}"
        for comments in corpus.threads.values()
        for comment_id, _, payload in comments
    }
    labels.update({key: f"title {p.source}: {p.text[:60]!r}" for key, p in corpus.titles.items()})
    harness = Harness(browser, server, blog)
    try:
        elements = render_threads(harness, server, blog, corpus)
        elements += render_titles(harness, server, blog, corpus)
        edits_started = time.monotonic()
        # Moderators edit every approved comment's text to another payload; render again.
        edited = [c for comments in corpus.threads.values() for c in comments]
        refused = 0
        for number, (comment_id, _, _) in enumerate(edited):
            other = edited[(number + len(edited) // 2) % len(edited)][2]
            response = api.moderate(f"comments/{comment_id}/edit", {"body": other.text})
            assert response.status_code in (200, 422), response.text
            refused += response.status_code == 422
            labels[comment_id] += f", edited to {other.source}: {other.text[:60]!r}"
        harness.timings["edit via the API"] += time.monotonic() - edits_started
        elements += render_threads(harness, server, blog, corpus)
        elements += render_queue(harness, server, corpus)
    finally:
        harness.close()
    timings = {name: round(seconds, 1) for name, seconds in harness.timings.items()}
    print(
        f"\nXSS corpus: {len(CORPUS)} payloads ({counts()}), refused {corpus.refused}; "
        f"{len(edited)} comments in {len(corpus.threads)} threads, {len(corpus.titles)} titles, "
        f"{len(edited) - refused} edits; {elements} elements given events; "
        f"{len(harness.recorder.findings)} findings; {time.monotonic() - started:.1f}s "
        f"(submitting took {corpus.seconds:.1f}s; {timings})"
    )
    assert refused < 0.1 * len(edited)
    assert not harness.recorder.findings, describe(harness.recorder.findings, labels)


REFLECTED_FIELDS = ("author_name", "author_email", "body", "post_title", "post_url", "parent_id")
REFLECTED = """() => [...document.querySelectorAll('#cm-form input[name], #cm-form textarea')]
    .filter((el) => el.name !== 'form_token' && el.name !== 'website')
    .map((el) => [el.name, el.tagName === 'TEXTAREA' ? el.value : el.getAttribute('value')])"""


def test_no_payload_executes_in_the_no_js_form_echo(
    browser: Any, server: LiveServer, blog: Blog
) -> None:
    """A cross-site page can post the no-JavaScript form; the error page echoes every field
    (a reflected context: attribute values and a textarea). Each post carries six payloads and a
    bad email address, to a post that does not exist yet, so every field is echoed."""
    sample = CORPUS[::REFLECT_STRIDE]
    harness = Harness(browser, server, blog)
    sent: dict[str, dict[str, str]] = {}
    try:
        for number, start in enumerate(range(0, len(sample), len(REFLECTED_FIELDS))):
            key = f"/xss/echo-{number}/"
            url = f"{server.url}/embed/{SITE}/thread?post={quote(key)}&page=1"
            fields = {
                name: sample[(start + offset) % len(sample)].text
                for offset, name in enumerate(REFLECTED_FIELDS)
            }
            harness.posts[url] = sent[url] = fields
        sources = [(url, url) for url in sent]
        for number, batch in enumerate(chunks(sources, PER_FRAMES_PAGE)):
            harness.render(blog.add(f"/xss/echo-page/{number}", frames_page(batch)))
            for frame in harness.page.main_frame.child_frames:
                shown = dict(frame.evaluate(REFLECTED))
                for name, text in sent[frame.name].items():
                    if "\r" not in text and "\x00" not in text and shown.get(name) != text:
                        harness.recorder.add("mangled", f"{name} echoed as {shown.get(name)!r}")
    finally:
        harness.close()
    print(f"\nNo-JS form echo: {len(sample)} payloads in {len(sent)} posts")
    assert not harness.recorder.findings, describe(harness.recorder.findings, {})


def test_positive_control_executes(browser: Any, server: LiveServer, blog: Blog) -> None:
    """The same hooks on the raw payloads must see executions, or the corpus test is void."""
    started = time.monotonic()
    harness = Harness(browser, server, blog)
    try:
        sources = [
            (f"payload {index}", blog.add(f"/xss/control/{index}", control_document(blog, p)))
            for index, p in enumerate(CORPUS)
        ]
        for number, batch in enumerate(chunks(sources, PER_FRAMES_PAGE)):
            harness.render(
                blog.add(f"/xss/control-page/{number}", frames_page(batch, sandbox=True))
            )
    finally:
        harness.close()
    executions = [f for f in harness.recorder.findings if f.kind in EXECUTIONS]
    executed = {f.where for f in executions if f.where.startswith("payload ")}
    kinds = collections.Counter(f.kind for f in harness.recorder.findings)
    print(
        f"\nPositive control: {len(executions)} executions recorded, by {len(executed)} of "
        f"{len(CORPUS)} payloads, rendered unsanitised ({json.dumps(kinds)}); "
        f"{time.monotonic() - started:.1f}s"
    )
    assert len(executions) >= MIN_CONTROL_EXECUTIONS, kinds
    assert len(executed) >= len(CORPUS) // 5, (len(executed), kinds)
