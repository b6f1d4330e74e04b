"""structlog set-up: JSON lines in distributed mode, key-value on a terminal."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\d)")
# API keys (``yj_<id>_<secret>``) and bearer tokens, wherever they appear in text.
_KEY = re.compile(r"\byj_[A-Za-z0-9]+_[A-Za-z0-9_\-]{8,}")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
# A village's acknowledgement link (/v1/warnings/ack/<token>) is a credential: whoever has it can
# acknowledge the warning. Its first characters stay, to correlate a line with a delivery.
_ACK_LINK = re.compile(r"(/v1/warnings/ack/)([A-Za-z0-9_\-]{0,6})[A-Za-z0-9_\-]*")
_SECRET_KEYS = {"key", "api_key", "authorization", "token", "password", "phone", "secret"}


def redact_text(text: str) -> str:
    """Mask personal phone numbers, API keys, bearer tokens and acknowledgement links' tokens
    in free text."""
    text = _KEY.sub("yj_***", text)
    text = _ACK_LINK.sub(r"\1\2***", text)
    text = _BEARER.sub(r"\1***", text)
    return _PHONE.sub(r"\1****\2", text)


def _redact_value(name: str, value: Any, depth: int = 0) -> Any:
    if name.lower() in _SECRET_KEYS and value:
        return "***"
    if isinstance(value, str):
        return redact_text(value)
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_redact_value("", v, depth + 1) for v in value]
    return value


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask personal phone numbers and secrets wherever they appear in a log line, nested values
    and rendered exceptions included."""
    for name, value in list(event_dict.items()):
        event_dict[name] = _redact_value(name, value)
    return event_dict


class _RedactingFilter(logging.Filter):
    """The same masking for lines logged through the standard library (kombu, uvicorn, ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = redact_text(message), None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def configure_logging(log_format: str = "auto", level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Exceptions are rendered first, so their text is masked too.
            structlog.processors.format_exc_info,
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    _configure_stdlib(renderer if use_json else None, level.upper())
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _RedactingFilter) for f in handler.filters):
            handler.addFilter(_RedactingFilter())
    # uvicorn's start and stop lines are routine: the runtime logs its own, and `yingji up`
    # prints a banner; its errors still come through.
    for noisy in ("amqp", "kombu", "uvicorn.access", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("kombu.connection").addFilter(_routine_kombu)


def _configure_stdlib(json_renderer: Any, level: str) -> None:
    """The root logger's handler. In JSON mode every record of the standard library (uvicorn's
    "Exception in ASGI application", kombu, …) comes out as one JSON line like structlog's, its
    traceback inside as ``exception``; on a terminal, ``<logger> <message>`` as before."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OWN_HANDLER, False)]:
        root.removeHandler(old)
    if json_renderer is None:
        if not root.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
            setattr(handler, _OWN_HANDLER, True)
            root.addHandler(handler)
        root.setLevel(level)
        return
    # Another handler writing plain text to the terminal would repeat each line unformatted.
    for plain in [h for h in root.handlers if _plain_stderr(h)]:
        root.removeHandler(plain)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redact,
                json_renderer,
            ],
        )
    )
    setattr(handler, _OWN_HANDLER, True)
    root.addHandler(handler)
    root.setLevel(level)


_OWN_HANDLER = "_yingji_handler"


def _plain_stderr(handler: logging.Handler) -> bool:
    """A handler of ``logging.basicConfig`` (or alike) on stderr, not ours and not a test's."""
    return (
        type(handler) is logging.StreamHandler
        and getattr(handler, "stream", None) in (sys.stderr, sys.__stderr__)
        and not getattr(handler, _OWN_HANDLER, False)
    )


def _routine_kombu(record: logging.LogRecord) -> bool:
    """Drop kombu's warning that memory:// has no hostname (it is said on every connection)."""
    return not str(record.msg).startswith("No hostname was supplied")


def get_logger(service: str, **bound: Any) -> Any:
    """A logger that carries the service name on every line."""
    return structlog.get_logger().bind(service=service, **bound)
