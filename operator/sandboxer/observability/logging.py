"""structlog set up once for every entry point: JSON in clusters, a readable console on a terminal.

Messages follow Kubernetes style: capitalised, past tense, naming the object through key/values
("Created StatefulSet", sandbox=..., owner=...). Keys that may hold secrets are masked before
rendering, so a token handed to a log call by mistake never reaches the output.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = frozenset({"token", "password", "secret", "authorization", "api_key", "credentials"})
_configured = False


class _StderrLogger:
    """Writes to whatever sys.stderr is at call time (pytest and the CLI swap it)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _stderr_logger(*_: Any) -> _StderrLogger:
    return _StderrLogger()


def _mask_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in _SECRET_KEYS or key.lower().endswith(("_token", "_secret", "_password")):
            event[key] = "***"
    return event


def configure(*, json: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger (kopf logs through it)."""
    global _configured
    use_json = (not sys.stderr.isatty()) if json is None else json
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    _configured = True


def get_logger(name: str | None = None, **context: Any) -> Any:
    """A bound structlog logger; configures defaults on first use."""
    if not _configured:
        configure()
    return structlog.get_logger(name).bind(**context)
