"""structlog set up once: JSON lines by default, a console renderer on a TTY.

Request ids travel in a context variable (bound by
`app.observability.context.RequestContext`), so every line of a request, and
of the generation it starts, carries one. Prompts and generated text are
never passed to a logger unless SLUICE_LOG_CONTENT is on; callers check
`settings.log_content` themselves. Credentials are never logged: a last
processor masks any field whose name says it holds one, whatever the caller
passed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

_configured = False
REDACTED = "[redacted]"
SECRET_FIELDS = frozenset(
    {"authorization", "api_key", "api_keys", "key", "token", "secret", "password", "cookie"}
)


class StderrLogger:
    """Writes each line to whatever `sys.stderr` is at that moment, so a test
    that swaps it (pytest's capsys) sees the real server's lines."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _stderr_logger(*args: object) -> StderrLogger:
    return StderrLogger()


def _orjson_text(obj: object, **kwargs: Any) -> str:
    # Strategy: orjson renders a line in about a third of the stdlib's time; a
    # stream logs four lines, so it shows in time to first token.
    return orjson.dumps(obj, **kwargs).decode()


def redact_secrets(
    logger: object, method: str, event: MutableMapping[str, object]
) -> MutableMapping[str, object]:
    for name in SECRET_FIELDS.intersection(event):
        event[name] = REDACTED
    return event


def configure_logging(
    *, json: bool | None = None, level: int = logging.INFO, force: bool = False
) -> None:
    """Once per process; `force` reconfigures (tests that parse the lines want JSON)."""
    global _configured
    if _configured and not force:
        return
    _configured = True
    render_json = not sys.stderr.isatty() if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=_orjson_text)
        if render_json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )
