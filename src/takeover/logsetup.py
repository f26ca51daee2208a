"""Logging for every process (server, agent, keeper): structlog, readable or JSON lines.

Its own module so that an agent starting does not import the server to configure its logs.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog


def configure_logging(level: str, log_format: str) -> None:
    """structlog to stderr: readable lines for people, one JSON object a line for collectors."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,  # e.g. failover_id and instance_id in a failover
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    for name in _HEADER_DUMPERS:
        logging.getLogger(name).addFilter(_REDACT)


class RedactBearer(logging.Filter):
    """At debug level, websockets (through uvicorn's logger on the server) prints every header of
    a handshake, an agent's ``Authorization: Bearer <node token>`` among them: the token becomes
    ``[redacted]``. A filter on a logger sees only what is logged on that very logger."""

    _BEARER = re.compile(r"(?i)(authorization:?\s*bearer\s+)\S+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._BEARER.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACT = RedactBearer()
_HEADER_DUMPERS = ("uvicorn.error", "websockets.server", "websockets.client", "httpx", "httpcore.http11")
