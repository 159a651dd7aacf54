"""How workers share outbox rows: a short transaction leases due rows to one worker (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), the slow work (HTTP, SMTP) runs with
no transaction open, and the outcome is written only while the lease is still the worker's. A
worker that dies leaves a lease that expires, and another takes the row over: at least once.
Failures wait longer each time (with jitter, so retries of one outage spread out), then give up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import socket
import uuid
from collections.abc import Iterable, Iterator
from typing import Protocol

from sqlalchemy import ColumnElement, or_
from sqlalchemy.orm import InstrumentedAttribute


class Leased(Protocol):
    """An outbox row a worker can lease (webhook deliveries, outgoing mail)."""

    lease_owner: str | None
    lease_expires_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class RetrySchedule:
    """The waits after the 1st, 2nd, ... failed attempt; after the last, the row has failed."""

    waits: tuple[dt.timedelta, ...]
    jitter: float = 0.2

    @property
    def max_attempts(self) -> int:
        return len(self.waits) + 1

    def backoff(self, attempts: int, rng: random.Random) -> dt.timedelta:
        """How long to wait after ``attempts`` failed attempts, give or take the jitter."""
        wait = self.waits[min(attempts, len(self.waits)) - 1]
        return wait * (1 + rng.uniform(-self.jitter, self.jitter))

    def __iter__(self) -> Iterator[dt.timedelta]:
        return iter(self.waits)

    def __len__(self) -> int:
        return len(self.waits)


def worker_name() -> str:
    """A lease owner's name: which host and process, and which worker in it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def lease_free(
    expires_at: InstrumentedAttribute[dt.datetime | None], now: dt.datetime
) -> ColumnElement[bool]:
    """The condition that a row is leased to nobody, or its lease has run out."""
    return or_(expires_at.is_(None), expires_at < now)


def take_leases(rows: Iterable[Leased], owner: str, *, until: dt.datetime) -> None:
    for row in rows:
        row.lease_owner = owner
        row.lease_expires_at = until


def holds_lease(row: Leased, owner: str) -> bool:
    """Whether ``owner`` still holds the row (its lease did not run out and pass to another)."""
    return row.lease_owner == owner


def release(row: Leased) -> None:
    row.lease_owner = None
    row.lease_expires_at = None
