"""How log lines look: text (the default) or JSON (``MECHA_LOG_FORMAT=json``), and which
per-request lines are shown only at DEBUG.

Text: ``2026-12-06T22:41:58.123 INFO mecha.serve: …`` (local time, milliseconds).
JSON: one object per line, ``{"ts": "2026-12-06T21:41:58.123Z", "level": "INFO",
"logger": "mecha.serve", "message": "…"}`` (``ts`` in RFC 3339, UTC), with ``event_id``,
``task_id`` and ``worker`` when the line is about one (``mecha.engine.log_context``) and
``exc`` holding a traceback's text. Both are formatted after the redactor has masked the
message and the traceback (``RedactingFilter`` on the handler).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import orjson

from mecha.engine.log_context import FIELDS
from mecha.errors import ConfigError

#: the variable naming the format, and the formats it may name
FORMAT_VARIABLE = "MECHA_LOG_FORMAT"
FORMATS = ("text", "json")
#: loggers that log every request at INFO (httpx: each health probe): shown at DEBUG
PER_REQUEST_LOGGERS = ("httpx", "httpcore")
#: the access log of `mecha serve` (uvicorn's), and the paths probes ask: shown at DEBUG
ACCESS_LOGGER = "uvicorn.access"
PROBE_PATHS = ("/health", "/metrics")


def log_format(environ: Mapping[str, str]) -> str:
    """The format ``MECHA_LOG_FORMAT`` names (text when unset); ConfigError if unknown."""
    chosen = environ.get(FORMAT_VARIABLE, "").strip().lower() or "text"
    if chosen not in FORMATS:
        raise ConfigError(
            f"{FORMAT_VARIABLE}={environ[FORMAT_VARIABLE]!r} is not a log format",
            hint=f"set {FORMAT_VARIABLE} to one of: {', '.join(FORMATS)} (or unset it: text)",
        )
    return chosen


def formatter(name: str) -> logging.Formatter:
    """The formatter for a format ``log_format`` returned."""
    return JsonFormatter() if name == "json" else LogFormatter()


class LogFormatter(logging.Formatter):
    """``<ISO-8601 local time with milliseconds> LEVEL logger: message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and what the line is about."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "ts": rfc3339(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, "")
            if value:
                line[name] = str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line).decode()


def rfc3339(record: logging.LogRecord) -> str:
    """When ``record`` was made, in RFC 3339 UTC with milliseconds: ``…T21:41:58.123Z``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class PerRequestAtDebug(logging.Filter):
    """Lines written per request become DEBUG lines, dropped unless DEBUG is on: the INFO
    lines of PER_REQUEST_LOGGERS (httpx: a worker's health probe), and the access log's
    lines for GET PROBE_PATHS (a load balancer's or a container's health check, a scrape).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not _per_request(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def _per_request(record: logging.LogRecord) -> bool:
    if record.name.split(".")[0] in PER_REQUEST_LOGGERS:
        return True
    if record.name != ACCESS_LOGGER:
        return False
    # uvicorn's access line: '%s - "%s %s HTTP/%s" %d' % (client, method, path, version, status)
    args = record.args
    if not isinstance(args, tuple) or len(args) < 3:
        return False
    method, path = args[1], str(args[2]).split("?", 1)[0]
    return method in ("GET", "HEAD") and path in PROBE_PATHS
