"""A self-hosted comment moderation service.

Production serving: ``gunicorn "moderation.app:create_app()"``. Importing the package loads
nothing else (no Flask), so domain modules such as ``moderation.spam`` stay cheap to import;
``moderation:create_app()``, the address earlier deployments serve, still works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moderation.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from moderation.app import create_app

        return create_app
    raise AttributeError(f"module 'moderation' has no attribute {name!r}")
