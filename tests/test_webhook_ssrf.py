"""The SSRF guard: hostile destinations are refused, with a logged reason, before any connection.

Only loopback forms are actually tried against the canary; the other ranges are checked by the
guard alone, so no packet is ever sent towards them even if the guard were broken.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from moderation.events import Actor
from moderation.models import WebhookAttempt
from moderation.outbox import webhooks as wd
from moderation.webhooks import network
from moderation.webhooks.endpoints import create_endpoint, send_test_event
from tests.consumer import Consumer, running_consumer
from tests.helpers import settings_for_tests

STRICT = network.Policy(allow_http=True, timeout=1.0, connect_timeout=1.0)
T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def canary() -> Iterator[Consumer]:
    with running_consumer() as running:
        yield running


def loopback_forms(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",
        f"http://127.9.9.9:{port}/",
        f"http://localhost:{port}/",
        f"http://2130706433:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://0x7f.0.0.1:{port}/",
        f"http://0x7f000001:{port}/",
        f"http://127.1:{port}/",
        f"http://[::1]:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://[::ffff:7f00:1]:{port}/",
        f"http://[64:ff9b::7f00:1]:{port}/",
        f"http://[2002:7f00:1::]:{port}/",
        f"http://0.0.0.0:{port}/",
        f"http://[::]:{port}/",
        f"ftp://127.0.0.1:{port}/",
        f"gopher://127.0.0.1:{port}/",
        "file:///etc/passwd",
        f"//127.0.0.1:{port}/",
        f"http://user:pw@example.org:{port}/",
    ]


def test_loopback_in_every_form_is_refused_and_the_canary_sees_nothing(
    canary: Consumer, caplog: pytest.LogCaptureFixture
) -> None:
    for url in loopback_forms(canary.port):
        with pytest.raises(network.Refused) as refused:
            network.post(url, b"{}", {}, STRICT)
        assert refused.value.reason, url
    assert canary.connections == 0
    # The positive control: the same canary is reached once loopback is explicitly allowed.
    allowed = network.Policy(
        allow_http=True, allowed_networks=network.parse_networks("127.0.0.0/8")
    )
    assert network.post(canary.url, b"{}", {}, allowed).status_code == 200
    assert canary.connections == 1


def test_a_name_resolving_to_loopback_is_refused(canary: Consumer) -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "127.0.0.1"] if host == "mixed.example" else ["127.0.0.1"]

    for host in ("hooks.example", "mixed.example"):
        with pytest.raises(network.Refused, match="loopback"):
            network.post(f"http://{host}:{canary.port}/", b"{}", {}, STRICT, resolver=resolver)
    assert canary.connections == 0


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "CGNAT shared"),
        ("100.127.255.254", "CGNAT shared"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("192.0.2.1", "private"),
        ("198.18.0.1", "private"),
        ("::ffff:10.0.0.1", "IPv4-mapped form of a private"),
        ("::ffff:169.254.169.254", "IPv4-mapped form of a link-local"),
        ("64:ff9b::a9fe:a9fe", "NAT64 form of a link-local"),
        ("64:ff9b::a00:1", "NAT64 form of a private"),
        ("2002:a00:1::1", "6to4 form of a private"),
        ("2002:a9fe:a9fe::", "6to4 form of a link-local"),
        ("2001:db8::1", "private"),
        ("fec0::1", "site-local"),
    ],
)
def test_non_global_ranges_are_refused_with_their_reason(address: str, reason: str) -> None:
    with pytest.raises(network.Refused) as refused:
        network.check_address(ipaddress.ip_address(address), STRICT)
    assert reason in refused.value.reason


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_global_addresses_pass(address: str) -> None:
    network.check_address(ipaddress.ip_address(address), STRICT)


def test_https_only_unless_http_is_allowed() -> None:
    with pytest.raises(network.Refused, match="plain http"):
        network.check_url("http://hooks.example.org/", network.Policy())
    network.check_url("https://hooks.example.org/", network.Policy())


def test_the_checked_address_is_used_with_the_host_header_and_proxies_ignored(
    canary: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_consumer() as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        looked_up: list[str] = []

        def resolver(host: str, port: int) -> list[str]:
            looked_up.append(host)
            return ["127.0.0.1"]

        allowed = network.Policy(
            allow_http=True, allowed_networks=network.parse_networks("127.0.0.1/32")
        )
        url = f"http://hooks.example.test:{canary.port}/in"
        assert network.post(url, b"{}", {}, allowed, resolver=resolver).status_code == 200
        assert looked_up == ["hooks.example.test"]
        assert canary.received[0].headers["host"] == f"hooks.example.test:{canary.port}"
        assert proxy.connections == 0


@pytest.fixture
def factory(connection: Connection) -> sessionmaker[Session]:
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


def test_the_worker_logs_each_refusal_with_its_reason(
    session: Session,
    factory: sessionmaker[Session],
    canary: Consumer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    urls = [u for u in loopback_forms(canary.port) if u.startswith("http://") and "@" not in u]
    for url in urls:
        endpoint = create_endpoint(session, actor=Actor("test"), url=url, allow_http=True, now=T0)
        send_test_event(session, endpoint, now=T0)
    session.commit()
    settings = settings_for_tests(webhook_allow_http=True)
    with caplog.at_level(logging.WARNING, logger="moderation.outbox.webhooks"):
        assert wd.deliver_due(factory, settings, now=T0, limit=100) == len(urls)
    assert canary.connections == 0
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == len(urls)
    assert all(("address" in m or "IPv4 form" in m) for m in refusals), refusals
    errors = session.scalars(select(WebhookAttempt.error)).all()
    assert len(errors) == len(urls) and all(e and e.startswith("refused: ") for e in errors)


def test_a_consumer_that_trickles_its_answer_is_cut_off_at_the_total_timeout() -> None:
    """Each byte arriving within the socket timeout must not stretch the whole attempt."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 100:
                if stop.wait(0.2):
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(bytes([byte]))

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    policy = network.Policy(
        allow_http=True,
        allowed_networks=network.parse_networks("127.0.0.0/8"),
        timeout=1.0,
        connect_timeout=1.0,
    )
    started = time.monotonic()
    port = listener.getsockname()[1]
    result = network.post(f"http://127.0.0.1:{port}/hook", b"{}", {}, policy)
    took = time.monotonic() - started
    stop.set()
    server.join(timeout=5)
    listener.close()
    assert result.status_code is None and result.error is not None
    assert result.error.startswith("timed out"), result.error
    assert took < 1.5, took
