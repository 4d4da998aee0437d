"""structlog set up once for every entry point: JSON in clusters, a readable console on a terminal.

The stdlib loggers (kopf, aiohttp) go through the same processors and renderer, so a process
writes one format: kopf's per-object lines carry `object` (apiVersion, kind, namespace, name,
uid), aiohttp's access lines `request`, `status`, `size`, `seconds`, and liveness probes' access
lines are DEBUG.

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


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stdlib side (kopf, aiohttp): also writes to sys.stderr as it is at call time."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_PROBES = frozenset({"/healthz", "/livez", "/readyz"})


class _ProbesAtDebug(logging.Filter):
    """Liveness probes hit kopf's endpoint every few seconds: their access lines are DEBUG."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        words = str(getattr(record, "first_request_line", "")).split(" ")  # GET /healthz HTTP/1.1
        path = words[1].split("?")[0] if len(words) > 1 else ""
        if record.name == "aiohttp.access" and path in _PROBES:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.level <= logging.DEBUG
        return True


# aiohttp's access-log extras worth a field each (the rest repeat the message).
_ACCESS_FIELDS = {
    "first_request_line": "request",
    "response_status": "status",
    "response_size": "size",
    "request_time": "seconds",
}


def _stdlib_fields(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Structured fields from a stdlib record: kopf's object reference, aiohttp's request."""
    record = event.get("_record")
    if record is None:
        return event
    event["logger"] = record.name
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, dict):  # kopf's ObjectLogger: apiVersion, kind, namespace, name, uid
        event["object"] = {k: v for k, v in ref.items() if v}
    for attr, key in _ACCESS_FIELDS.items():
        if record.name == "aiohttp.access" and hasattr(record, attr):
            event[key] = getattr(record, attr)
    return event


def configure(*, json: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog, and route the stdlib root logger (kopf, aiohttp) through it, so
    every line is one JSON object (or one console line on a terminal)."""
    global _configured
    use_json = (not sys.stderr.isatty()) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    tail: list[Any] = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_stdlib_fields, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *tail,
                renderer,
            ],
        )
    )
    handler.addFilter(_ProbesAtDebug(logging.getLevelName(level)))
    root = logging.getLogger()
    # Replace only our own handler: test runners attach theirs to the root logger too.
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _StderrHandler)]
    root.addHandler(handler)
    root.setLevel(level)
    _configured = True


def get_logger(name: str | None = None, **context: Any) -> Any:
    """A bound structlog logger; configures defaults on first use."""
    if not _configured:
        configure()
    return structlog.get_logger(name).bind(**context)
