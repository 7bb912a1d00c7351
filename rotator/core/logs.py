"""Logging set-up: readable lines on a terminal, JSON lines everywhere else (cron, Lambda, files).

stdlib logging plus a small formatter instead of structlog: it costs nothing at import, which matters on
the Lambda cold start. Structured fields travel in `extra={"fields": {...}}`.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import IO, Any

from rotator.core.timestamps import format_timestamp

LOGGER_NAME = "rotator"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": format_timestamp(record.created, milliseconds=True),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            payload["error"] = f"{type(error).__name__}: {error}"
        return json.dumps(payload, default=str)


class TextFormatter(logging.Formatter):
    """`LEVEL message key=value ...` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname:<7} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line += f" error={type(error).__name__}: {error}"
        return line


def configure_logging(level: int = logging.INFO, stream: IO[str] | None = None, json_lines: bool | None = None) -> None:
    """Attach one handler to the `rotator` logger; JSON unless the stream is a terminal."""
    target = stream if stream is not None else sys.stderr
    use_json = (not _is_tty(target)) if json_lines is None else json_lines
    handler = logging.StreamHandler(target)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = True


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
