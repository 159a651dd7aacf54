"""Email deliverability against a real DNS server on loopback (dnslib), bounded in time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from dnslib import AAAA, MX, QTYPE, RCODE, RR, A, DNSRecord
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from moderation.deliverability import DeliverabilityChecker, lookup, make_resolver
from moderation.models import CommentStatus
from moderation.spam import MailDomain
from tests.helpers import (
    POST_KEY,
    SUBMIT,
    comment_json,
    good_token,
    json_of,
    make_app,
    make_site,
    stored,
)

# Global (not private) addresses: email-validator ignores private ones for the A fallback.
MAIL_IP = "93.184.216.34"


class LoopbackDNS:
    """A tiny authoritative server for a handful of test domains on 127.0.0.1, UDP."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # so the serving loop notices when it should stop
        self.port: int = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.stopping = False

    def answer(self, request: DNSRecord) -> DNSRecord | None:
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        reply = request.reply()
        if name.endswith("silent.org"):
            return None  # a server that never answers
        if name.endswith("nowhere.org"):
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
