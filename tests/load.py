"""The load clients of the load and fault tests, and the privacy scan of what they read.

Each client is a thread with one keep-alive connection that reads, submits and moderates in a
mix. Every submission has its own author email, client address (X-Forwarded-For, the servers
trust one proxy hop) and body marker, so a scan of every public response can tell whether any
of them leaked: an email or a client address anywhere, or the text of a comment that was never
approved.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SLUG = "load"
ORIGIN = "https://load.example"
MARKER = re.compile(r"marker-\d{2}-\d{6}")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
CLIENT_NETWORK = "198.51.100."


@dataclass
class Exchange:
    """One request that failed (409, someone else moderated first, is no failure)."""

    method: str
    path: str
    status: int  # 0: no HTTP response at all (connection refused, reset, timed out)
    started: float
    seconds: float
    headers: dict[str, str]
    body: bytes


@dataclass
class Mix:
    """Shares of reads and submissions; the rest are moderation actions."""

    reads: float = 0.7
    submits: float = 0.2


@dataclass
class Shared:
    """What the clients share: submitted ids waiting for a moderator."""

    pending: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client(threading.Thread):
    """One client: requests in the mix until ``stop`` is set or ``seconds`` have passed since
    it was first served (a cold worker on a busy machine may take seconds to load the app)."""

    def __init__(
        self,
        address: str,
        token: str,
        seed: int,
        shared: Shared,
        *,
        seconds: float,
        mix: Mix | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.address, self.token, self.seed = address, token, seed
        self.random = random.Random(seed)
        self.shared, self.seconds, self.mix = shared, seconds, mix or Mix()
        self.stop_event = stop or threading.Event()
        self.client_address = f"{CLIENT_NETWORK}{seed + 1}"
        self.statuses: Counter[int] = Counter()
        self.accepted: dict[str, str] = {}  # comment id -> body marker
        self.unanswered: set[str] = set()  # markers of submissions without a 202 or a 4xx
        self.emails: set[str] = set()
        self.moderated: list[str] = []
        self.failures: list[Exchange] = []
        self.slowest = 0.0
        self.timeline: list[tuple[float, int]] = []  # (started, status) of every request
        self.served = False  # answered with a success at least once
        # The privacy scan: what the public responses showed.
        self.seen_markers: set[str] = set()
        self.seen_emails: set[str] = set()
        self.seen_addresses: set[str] = set()
        self.connection = http.client.HTTPConnection(self.address, timeout=30)
        self.sequence = 0

    def request(
        self, method: str, path: str, body: object = None, *, public: bool = True
    ) -> tuple[int, bytes]:
        headers = {"Origin": ORIGIN, "X-Forwarded-For": self.client_address}
        if not public:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            self.connection.request(method, path, body=payload, headers=headers)
            response = self.connection.getresponse()
            status, data = response.status, response.read()
            response_headers = {k.lower(): v for k, v in response.getheaders()}
        except (OSError, http.client.HTTPException) as error:
            self.connection.close()  # reconnects on the next request
            status, data, response_headers = 0, repr(error).encode(), {}
        seconds = time.monotonic() - started
        self.slowest = max(self.slowest, seconds)
        self.statuses[status] += 1
        self.timeline.append((started, status))
        self.served |= 200 <= status < 300
        if public:
            self.scan(data + repr(response_headers).encode())
        if status == 0 or (status >= 400 and status != 409):
            self.failures.append(
                Exchange(method, path, status, started, seconds, response_headers, data)
            )
        return status, data

    def scan(self, data: bytes) -> None:
        text = data.decode("utf-8", errors="replace")
        self.seen_markers.update(MARKER.findall(text))
        self.seen_emails.update(EMAIL.findall(text))
        if CLIENT_NETWORK in text:
            self.seen_addresses.add(text[text.index(CLIENT_NETWORK) :][:20])

    def read(self) -> None:
        post = f"/post/{self.random.randrange(5)}/"
        path = self.random.choice(
            [
                f"/embed/{SLUG}/thread?post={post}",
                f"/api/v1/sites/{SLUG}/comments?post={post}",
                f"/api/v1/sites/{SLUG}/comments?post={post}",
                f"/embed/{SLUG}/thread?post={post}",
                f"/api/v1/sites/{SLUG}/feed.atom",
                f"/api/v1/sites/{SLUG}/counts?post=/post/0/&post=/post/1/&post={post}",
            ]
        )
        self.request("GET", path)

    def submit(self) -> None:
        self.sequence += 1
        marker = f"marker-{self.seed:02d}-{self.sequence:06d}"
        email = f"author.{self.seed}.{self.sequence}@example.com"
        self.emails.add(email)
        status, data = self.request(
            "POST",
            f"/api/v1/sites/{SLUG}/comments",
            {"post": f"/post/{self.random.randrange(5)}/", "author_name": "Load",
             "author_email": email, "body": f"{marker} says hello"},
        )  # fmt: skip
        if status == 202:
            comment_id = json.loads(data)["id"]
            self.accepted[comment_id] = marker
            with self.shared.lock:
                self.shared.pending.append(comment_id)
        elif status == 0 or status >= 500:
            self.unanswered.add(marker)

    def moderate(self) -> None:
        # Each comment is taken off the list once chosen, so it gets one decision: a second
        # (say approve after reject) would be a legitimate reversal, with its own audit row, and
        # the fault test counts exactly one per 200. Moderators racing on one comment are
        # tests/test_concurrency.py's subject.
        with self.shared.lock:
            if not self.shared.pending:
                return
            comment_id = self.shared.pending.pop(self.random.randrange(len(self.shared.pending)))
        action = self.random.choice(["approve", "reject", "spam"])
        status, _ = self.request(
            "POST", f"/api/v1/moderation/comments/{comment_id}/{action}", public=False
        )
        if status == 200:
            self.moderated.append(comment_id)

    def run(self) -> None:
        stop = float("inf")
        while time.monotonic() < stop and not self.stop_event.is_set():
            roll = self.random.random()
            if roll < self.mix.reads:
                self.read()
            elif roll < self.mix.reads + self.mix.submits:
                self.submit()
            else:
                self.moderate()
            if stop == float("inf") and self.served:
                stop = time.monotonic() + self.seconds
        self.connection.close()


def run_clients(clients: list[Client]) -> None:
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=client.seconds + 180)
        assert not client.is_alive(), "a client hung"


def scan_for_leaks(clients: list[Client], hidden_markers: set[str]) -> None:
    """Assert that no public response showed an author email, a client address or the text of a
    comment that was never approved."""
    emails = set().union(*(c.emails for c in clients))
    seen_emails = set().union(*(c.seen_emails for c in clients))
    assert not seen_emails & emails, "an author email in a public response"
    addresses = set().union(*(c.seen_addresses for c in clients))
    assert not addresses, f"a client address in a public response: {sorted(addresses)[:3]}"
    markers = set().union(*(c.seen_markers for c in clients))
    assert not markers & hidden_markers, "the text of an unapproved comment in a public response"


def record(section: str, **figures: object) -> None:
    """Append figures for the soak report (bench/soak.py) when SOAK_RECORD names a file."""
    target = os.environ.get("SOAK_RECORD")
    if target:
        with Path(target).open("a") as output:
            output.write(json.dumps({"section": section, **figures}) + "\n")
