"""Email deliverability against a real DNS server on loopback (dnslib), bounded in time."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import AAAA, MX, NS, QTYPE, RCODE, RR, A, DNSRecord
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from moderation import deliverability, metrics
from moderation.deliverability import (
    DeliverabilityChecker,
    lookup,
    make_resolver,
    resolver_works,
    site_canaries,
)
from moderation.models import CommentStatus
from moderation.spam import MailDomain
from tests.helpers import (
    ORIGIN,
    POST_KEY,
    SUBMIT,
    comment_json,
    good_token,
    json_of,
    make_app,
    make_site,
    run_command,
    stored,
)

# Global (not private) addresses: email-validator ignores private ones for the A fallback.
MAIL_IP = "93.184.216.34"
SITE_HOST = ORIGIN.removeprefix("https://")


class LoopbackDNS:
    """A tiny authoritative server for a handful of test domains on 127.0.0.1, UDP."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # so the serving loop notices when it should stop
        self.port: int = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.stopping = False
        self.mode = "working"
        self.queries = 0
        self.asked: list[str] = []

    def answer(self, request: DNSRecord) -> DNSRecord | None:
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        reply = request.reply()
        self.queries += 1
        self.asked.append(name)
        # A broken resolver: NXDOMAIN or SERVFAIL for every name, or no answer at all.
        if self.mode == "silent" or name.endswith("silent.org"):
            return None  # a server that never answers
        if self.mode in ("nxdomain", "servfail"):
            reply.header.rcode = RCODE.NXDOMAIN if self.mode == "nxdomain" else RCODE.SERVFAIL
            return reply
        if name == "" and qtype == "NS":  # the root zone: a canary every resolver can answer
            reply.add_answer(RR(".", QTYPE.NS, rdata=NS("a.root-servers.net"), ttl=60))
        elif name == SITE_HOST and qtype == "A":
            reply.add_answer(RR(name, QTYPE.A, rdata=A(MAIL_IP), ttl=60))
        elif name.endswith("nowhere.org"):
            reply.header.rcode = RCODE.NXDOMAIN
        elif name == "has-mx.org" and qtype == "MX":
            reply.add_answer(RR(name, QTYPE.MX, rdata=MX("mail.has-mx.org", 10), ttl=60))
        elif name in ("mail.has-mx.org", "a-only.org") and qtype == "A":
            reply.add_answer(RR(name, QTYPE.A, rdata=A(MAIL_IP), ttl=60))
        elif name == "a-only.org" and qtype == "AAAA":
            reply.add_answer(RR(name, QTYPE.AAAA, rdata=AAAA("2606:2800:220:1::1"), ttl=60))
        elif name == "null-mx.org" and qtype == "MX":
            reply.add_answer(RR(name, QTYPE.MX, rdata=MX(".", 0), ttl=60))
        # Anything else: NOERROR with no answer.
        return reply

    def serve(self) -> None:
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                reply = self.answer(DNSRecord.parse(data))
            except Exception:  # a malformed packet: ignore it, as a real server would
                continue
            if reply is not None:
                self.sock.sendto(reply.pack(), peer)

    def __enter__(self) -> LoopbackDNS:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def dns_server() -> Iterator[LoopbackDNS]:
    with LoopbackDNS() as server:
        yield server


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("has-mx.org", MailDomain.ACCEPTS),
        ("a-only.org", MailDomain.ACCEPTS),
        ("null-mx.org", MailDomain.NO_MAIL),
        ("nowhere.org", MailDomain.NO_MAIL),
        ("nothing-at-all.org", MailDomain.NO_MAIL),  # exists, but no MX and no address
        ("silent.org", MailDomain.UNKNOWN),
    ],
)
def test_lookups_against_a_real_server(
    dns_server: LoopbackDNS, domain: str, expected: MailDomain
) -> None:
    resolver = make_resolver(f"127.0.0.1:{dns_server.port}", timeout=0.3)
    assert lookup(domain, resolver) is expected


def test_a_silent_server_costs_no_more_than_the_bound(dns_server: LoopbackDNS) -> None:
    checker = DeliverabilityChecker(
        make_resolver(f"127.0.0.1:{dns_server.port}", timeout=5.0), bound=0.5
    )
    try:
        started = time.monotonic()
        assert checker.check("silent.org") is MailDomain.UNKNOWN
        assert time.monotonic() - started < 1.0
    finally:
        checker.close()


def dns_client(
    engine: Engine, connection: Connection, server: LoopbackDNS, timeout_ms: int = 900
) -> FlaskClient:
    app = make_app(
        engine,
        connection,
        check_deliverability=True,
        dns_nameserver=f"127.0.0.1:{server.port}",
        dns_timeout_ms=timeout_ms,
    )
    return app.test_client()


@pytest.mark.parametrize("domain", ["has-mx.org", "a-only.org"])
def test_deliverable_domains_are_accepted(
    session: Session,
    engine: Engine,
    connection: Connection,
    dns_server: LoopbackDNS,
    domain: str,
) -> None:
    make_site(session)
    client = dns_client(engine, connection, dns_server)
    data = comment_json(author_email=f"ada@{domain}", form_token=good_token())
    response = client.post(SUBMIT, json=data)
    assert response.status_code == 202
    comment = stored(client.application, json_of(response)["id"])
    assert comment.status is CommentStatus.PENDING and comment.signals == []


@pytest.mark.parametrize("domain", ["null-mx.org", "nowhere.org"])
def test_domains_that_take_no_mail_are_refused_naming_the_field(
    session: Session,
    engine: Engine,
    connection: Connection,
    dns_server: LoopbackDNS,
    domain: str,
) -> None:
    make_site(session)
    client = dns_client(engine, connection, dns_server)
    response = client.post(SUBMIT, json=comment_json(author_email=f"ada@{domain}"))
    assert response.status_code == 422
    error = json_of(response)["error"]
    assert error["code"] == "validation_failed"
    assert "does not accept email" in error["fields"]["author_email"]
    assert domain not in str(error)  # no address in any message

    form = {"author_name": "Ada", "author_email": f"ada@{domain}", "body": "Hello"}
    page = client.post(f"/embed/luac/thread?post={POST_KEY}", data=form)
    assert page.status_code == 422
    assert "does not accept email" in page.get_data(as_text=True)


def test_a_server_that_never_answers_never_blocks_the_comment(
    session: Session, engine: Engine, connection: Connection, dns_server: LoopbackDNS
) -> None:
    make_site(session)
    client = dns_client(engine, connection, dns_server, timeout_ms=600)
    started = time.monotonic()
    response = client.post(
        SUBMIT, json=comment_json(author_email="ada@silent.org", form_token=good_token())
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert elapsed < 1.5, f"the submission waited {elapsed:.2f} s"
    comment = stored(client.application, json_of(response)["id"])
    assert comment.status is CommentStatus.PENDING and comment.signals == []


def resolver_down_count() -> float:
    [family] = metrics.RESOLVER_DOWN.collect()
    return sum(s.value for s in family.samples if s.name.endswith("_total"))


@pytest.mark.parametrize("mode", ["nxdomain", "servfail", "silent"])
def test_a_broken_resolver_turns_nobody_away_and_is_logged_once(
    session: Session,
    engine: Engine,
    connection: Connection,
    dns_server: LoopbackDNS,
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    """A resolver that answers NXDOMAIN (or SERVFAIL, or nothing) for every name refused every
    address with 422: it resolves none of its canaries, so every answer is unknown."""
    make_site(session)
    client = dns_client(engine, connection, dns_server, timeout_ms=600)
    dns_server.mode = mode
    caplog.set_level(logging.INFO, logger="moderation.deliverability")
    before = resolver_down_count()
    statuses = []
    for n, domain in enumerate(["nowhere.org", "has-mx.org", "null-mx.org"]):
        data = comment_json(
            author_email=f"ada{n}@{domain}", form_token=good_token(), body=f"Comment {n}."
        )
        response = client.post(SUBMIT, json=data)
        statuses.append(response.status_code)
        comment = stored(client.application, json_of(response)["id"])
        assert comment.status is CommentStatus.PENDING
        assert "deliverability" not in {signal["check"] for signal in comment.signals}
    assert statuses == [202, 202, 202]
    # Once the outage is known, no commenter waits for the resolver: their domains go unasked.
    assert "nowhere.org" in dns_server.asked
    assert not {"has-mx.org", "null-mx.org"} & set(dns_server.asked)
    assert resolver_down_count() - before == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "DNS resolver is not working" in warnings[0]


def test_a_resolver_that_works_again_refuses_what_takes_no_mail_again(
    session: Session,
    engine: Engine,
    connection: Connection,
    dns_server: LoopbackDNS,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_site(session)
    client = dns_client(engine, connection, dns_server)
    monkeypatch.setattr(deliverability, "RECHECK_SECONDS", 0.0)
    caplog.set_level(logging.INFO, logger="moderation.deliverability")
    dns_server.mode = "nxdomain"
    down = client.post(SUBMIT, json=comment_json(author_email="ada@nowhere.org"))
    assert down.status_code == 202
    dns_server.mode = "working"
    up = client.post(SUBMIT, json=comment_json(author_email="bea@nowhere.org", body="Again."))
    assert up.status_code == 422
    assert "does not accept email" in json_of(up)["error"]["fields"]["author_email"]
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 2 and "answers again" in said[1]


def test_a_recent_real_answer_proves_the_resolver_without_canaries(
    dns_server: LoopbackDNS,
) -> None:
    checker = DeliverabilityChecker(
        make_resolver(f"127.0.0.1:{dns_server.port}", timeout=0.5), bound=0.6
    )
    asked: list[str] = []

    def canaries() -> tuple[str, ...]:
        asked.append("site")
        return (SITE_HOST,)

    try:
        assert checker.check("nowhere.org", canaries) is MailDomain.NO_MAIL
        assert asked == ["site"]  # nothing proved the resolver yet: the canaries were asked
        assert checker.check("has-mx.org", canaries) is MailDomain.ACCEPTS
        assert checker.check("null-mx.org", canaries) is MailDomain.NO_MAIL
        assert asked == ["site"]  # a real answer a moment ago proves it
        assert not checker.broken
    finally:
        checker.close()


def test_the_sites_own_domain_is_a_canary_when_the_root_is_not_answered(
    dns_server: LoopbackDNS,
) -> None:
    resolver = make_resolver(f"127.0.0.1:{dns_server.port}", timeout=0.3)
    assert resolver_works(resolver, (SITE_HOST,))
    assert resolver_works(resolver, ())  # the root
    dns_server.mode = "nxdomain"
    resolver = make_resolver(f"127.0.0.1:{dns_server.port}", timeout=0.3)
    assert not resolver_works(resolver, (SITE_HOST,))
    assert site_canaries(
        [ORIGIN, "http://localhost:8000", "http://127.0.0.1", "https://[::1]:8443", "http://[",
         "https://intranet", ORIGIN + ":443"]
    ) == (SITE_HOST,)  # fmt: skip


def test_moderation_check_says_when_the_resolver_does_not_work(
    tmp_path: Path, dns_server: LoopbackDNS
) -> None:
    env = {
        "MODERATION_CHECK_DELIVERABILITY": "true",
        "MODERATION_DNS_NAMESERVER": f"127.0.0.1:{dns_server.port}",
        "MODERATION_DNS_TIMEOUT_MS": "300",
    }
    run_command(tmp_path, "db", "upgrade")
    run_command(tmp_path, "site", "add", "luac", "--name", "Blog", "--origin", ORIGIN)
    working = run_command(tmp_path, "check", env=env)
    assert working.returncode == 0, working.stderr
    assert f"ok: the DNS resolver answers (tried ., {SITE_HOST})" in working.stdout
    for mode in ("nxdomain", "servfail", "silent"):
        dns_server.mode = mode
        broken = run_command(tmp_path, "check", env=env)
        assert broken.returncode == 1, mode
        assert f"problem: the DNS resolver resolves none of ., {SITE_HOST}" in broken.stderr
        assert "none is refused for its domain" in broken.stderr
