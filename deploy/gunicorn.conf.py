"""gunicorn settings for the moderation service: `gunicorn -c deploy/gunicorn.conf.py`."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

wsgi_app = "moderation.app:create_app()"
bind = os.environ.get("MODERATION_BIND", "127.0.0.1:8000")
# Requests are short and mostly wait on the database: a few threads per process.
workers = int(os.environ.get("MODERATION_WORKERS", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("MODERATION_THREADS", 4))
worker_class = "gthread"
timeout = 30
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so no slow leak grows without bound.
max_requests = 10_000
max_requests_jitter = 1_000
# The service logs one line per request itself, without query strings; gunicorn's access log
# would print them (they can hold a searched email address), so it stays off.
accesslog = None
errorlog = "-"
# Behind a reverse proxy: set MODERATION_TRUSTED_PROXY_HOPS; gunicorn itself trusts no header.
forwarded_allow_ips = ""


def child_exit(server: Any, worker: Any) -> None:
    """In Prometheus multiprocess mode (PROMETHEUS_MULTIPROC_DIR set, see docs/deployment.md),
    a worker's live values leave the sum when it exits; its counters stay counted."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
