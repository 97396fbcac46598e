"""Structured logging: one JSON object per line, to the console, `LOG_DIR/app.log` and `LOG_DIR/error.log`.

Formatting is python-json-logger's orjson formatter (field renaming, extras, exceptions), extended with:
- the request context (`request_id`, and whatever the request path binds, e.g. `key_id`) read from a
  context variable, so every line logged while a request is served carries its id;
- redaction: secrets never reach a log line, whether passed as an extra field (`password`, `token`, ...)
  or embedded in text (`vw_...` API keys, `Bearer ...`, `password=...`, JWTs).

Every handler shares one formatter instance, which renders a record once and reuses the text for the
other handlers. uvicorn's and the libraries' loggers propagate to the root logger and so use it too.
"""

import logging
import logging.handlers
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from voltway.settings import Settings

# The per-request log context: a dict created by the request middleware, mutated by code serving the request
# (`bind_log_context`), read by the formatter. None outside a request.
request_context: ContextVar[dict[str, Any] | None] = ContextVar("voltway_request_context", default=None)

REDACTED = "[REDACTED]"
_SENSITIVE_KEY_PARTS = ("password", "passwd", "secret", "token", "authorization", "api_key", "apikey", "cookie")
_SENSITIVE_TEXT = re.compile(
    r"(?P<vwkey>\bvw_[A-Za-z0-9_\-]{6,})"
    r"|(?P<bearer>\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+)"
    r"|(?P<jwt>\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*)"
    r"|(?P<assign>\b(?:password|passwd|pwd|secret|secret_key|token|access_token|refresh_token|api_key|apikey"
    r"|x-api-key|authorization)[\"']?\s*[=:]\s*[\"']?)(?!(?:Bearer|Basic)\s)[^\s&\"',;}]+",
    re.IGNORECASE,
)
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5
_CACHE_ATTR = "_voltway_json"


def _redact_match(match: re.Match[str]) -> str:
    if match.group("vwkey"):
        return "vw_" + REDACTED
    if match.group("bearer"):
        return match.group("bearer").split(None, 1)[0] + " " + REDACTED
    if match.group("jwt"):
        return REDACTED
    return match.group("assign") + REDACTED


def _is_sensitive_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SENSITIVE_KEY_PARTS)


def redact(value: Any) -> Any:
    """Redact secrets in a value: sensitive keys of mappings, and secret-looking text anywhere."""
    if isinstance(value, str):
        return _SENSITIVE_TEXT.sub(_redact_match, value) if value else value
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _is_sensitive_key(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class JsonFormatter(OrjsonFormatter):
    """JSON lines with the request context added and secrets redacted."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            timestamp=True,
            # uvicorn's `color_message` duplicates the message with terminal escapes.
            reserved_attrs=[*RESERVED_ATTRS, "color_message", _CACHE_ATTR],
        )

    def format(self, record: logging.LogRecord) -> str:
        # Several handlers share this formatter: render each record once.
        cached = record.__dict__.get(_CACHE_ATTR)
        if cached is None:
            cached = super().format(record)
            setattr(record, _CACHE_ATTR, cached)
        return cached

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        context = request_context.get()
        if context:
            for key, value in context.items():
                log_data.setdefault(key, value)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return redact(log_data)


class TextFormatter(logging.Formatter):
    """A human-readable console format (LOG_JSON_CONSOLE=false), redacted like the JSON one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = request_context.get()
        if context and "request_id" in context:
            text += f" [request_id={context['request_id']}]"
        return redact(text)


def bind_log_context(**fields: Any) -> None:
    """Add fields (e.g. `key_id`, `user_id`) to every log line of the current request, including its access line."""
    context = request_context.get()
    if context is not None:
        context.update(fields)


# Loggers that install their own handlers or propagate oddly; they are reset to propagate to the root logger.
_ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "fastapi", "sqlalchemy", "alembic")
_configured: tuple[Any, ...] | None = None


def configure_logging(settings: Settings) -> None:
    """Install the JSON handlers on the root logger (idempotent for the same settings)."""
    global _configured
    key = (settings.log_level, str(settings.log_dir), settings.log_json_console)
    if _configured == key:
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_voltway", False)]:
        root.removeHandler(handler)
        handler.close()

    json_formatter = JsonFormatter()
    console = logging.StreamHandler()
    console.setFormatter(json_formatter if settings.log_json_console else TextFormatter())
    handlers: list[logging.Handler] = [console]
    log_dir = Path(settings.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    app_file = logging.handlers.RotatingFileHandler(
        log_dir / "app.log", maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
    )
    error_file = logging.handlers.RotatingFileHandler(
        log_dir / "error.log", maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
    )
    error_file.setLevel(logging.ERROR)
    for handler in (app_file, error_file):
        handler.setFormatter(json_formatter)
        handlers.append(handler)
    for handler in handlers:
        handler._voltway = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.log_level)

    for name in _ROUTED_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    # Our middleware writes the access line (with request id, route and duration); uvicorn's would duplicate it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # SQLAlchemy logs every statement at INFO when echo is on; keep it at WARNING unless asked for DEBUG.
    logging.getLogger("sqlalchemy").setLevel(logging.INFO if settings.log_level == "DEBUG" else logging.WARNING)
    _configured = key
