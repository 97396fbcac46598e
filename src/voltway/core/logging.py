"""Structured logging: one JSON object per line, to the console, `LOG_DIR/app.log` and `LOG_DIR/error.log`.

Formatting is a small orjson formatter (python-json-logger does the same with generic machinery that cost
twice as much per line on the access-log hot path). Each line has timestamp, level, logger, message, plus:
- the request context (`request_id`, and whatever the request path binds, e.g. `key_id`) read from a
  context variable, so every line logged while a request is served carries its id;
- redaction: secrets never reach a log line, whether passed as an extra field (`password`, `token`, ...)
  or embedded in text (`vw_...` API keys, `Bearer ...`, `password=...`, JWTs).

Every handler shares one formatter instance, which renders a record once and reuses the text for the
other handlers. uvicorn's and the libraries' loggers propagate to the root logger and so use it too.
"""

import logging
import logging.handlers
import os
import re
import sys
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

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


_key_verdicts: dict[str, bool] = {}


def _is_sensitive_key(key: str) -> bool:
    verdict = _key_verdicts.get(key)
    if verdict is None:
        lowered = key.lower()
        verdict = any(part in lowered for part in _SENSITIVE_KEY_PARTS)
        if len(_key_verdicts) < 10_000:  # field names are few; never grow without bound
            _key_verdicts[key] = verdict
    return verdict


def _may_hold_secret(text: str) -> bool:
    """A cheap pre-check (plain substring tests) so that ordinary lines skip the redaction regex."""
    lowered = text.lower()
    return (
        "vw_" in lowered or "bearer" in lowered or "basic" in lowered or "eyj" in lowered or "pass" in lowered
        or "pwd" in lowered or "secret" in lowered or "token" in lowered or "key" in lowered or "auth" in lowered
    )


def redact(value: Any) -> Any:
    """Redact secrets in a value: sensitive keys of mappings, and secret-looking text anywhere."""
    if isinstance(value, str):
        return _SENSITIVE_TEXT.sub(_redact_match, value) if _may_hold_secret(value) else value
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _is_sensitive_key(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


# Fields the formatter and the request middleware fill with values that cannot hold a secret.
_SAFE_FIELDS = frozenset(
    {"level", "logger", "timestamp", "request_id", "method", "route", "status", "duration_ms", "client", "slow"}
)


# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName", "color_message", _CACHE_ATTR  # uvicorn's color_message repeats the message
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, message, the request context, the extra fields,
    and `exception` (the traceback) when there is one; secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        # Several handlers share this formatter: render each record once.
        cached = record.__dict__.get(_CACHE_ATTR)
        if cached is not None:
            return cached
        data: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = request_context.get()
        if context:
            data.update(context)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        line = render(data)
        record.__dict__[_CACHE_ATTR] = line
        return line


def render(data: dict[str, Any]) -> str:
    """The JSON line of a log entry, secrets redacted."""
    for key, value in data.items():
        if key not in _SAFE_FIELDS:
            data[key] = REDACTED if _is_sensitive_key(key) else redact(value)
    return orjson.dumps(data, default=str).decode()


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


class _BatchedLines(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes whole lines into a large buffer: WARNING and above are flushed at once, other lines when the batch
    would pass `BATCH_CHARS` or within `FLUSH_INTERVAL` seconds (the flusher thread). One `write` syscall then
    carries many access lines instead of one each, and every syscall holds whole lines only, so the lines of
    several worker processes sharing a pipe or a file never interleave mid-line."""

    BATCH_CHARS = 4096  # PIPE_BUF: a pipe receives a write up to this size in one piece
    _pending = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record) + "\n", record.levelno)
        except Exception:  # noqa: BLE001  (logging must never break the caller: the stdlib convention)
            self.handleError(record)

    def write_line(self, line: str, level: int) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._before_write(len(line))
            if self._pending + len(line) > self.BATCH_CHARS:
                self.stream.flush()
                self._pending = 0
            self.stream.write(line)
            self._pending += len(line)
            if level >= logging.WARNING:
                self.stream.flush()
                self._pending = 0

    def _before_write(self, size: int) -> None:
        """Hook for rotation."""

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()
            self._pending = 0


class ConsoleHandler(_BatchedLines):
    """JSON lines to standard error, through a buffer of its own (Python's stderr flushes every line)."""

    def __init__(self) -> None:
        stream: TextIO
        try:
            stream = open(sys.stderr.fileno(), "w", buffering=1 << 16, encoding="utf-8", closefd=False)  # noqa: SIM115
        except (AttributeError, OSError, ValueError):  # no real file descriptor (an embedding host)
            stream = sys.stderr
        super().__init__(stream)

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self.stream is not None and self.stream is not sys.stderr:
                self.stream.flush()
                self.stream.close()  # our own buffer only: closefd=False leaves standard error open
            self.stream = None  # type: ignore[assignment]
        super().close()


class LogFile(_BatchedLines, logging.handlers.RotatingFileHandler):
    """A JSON-lines file rotated at `MAX_BYTES`, keeping `BACKUP_COUNT` old files. It tracks its size in memory:
    the standard handler stats the file twice and seeks to its end for every record. Several worker processes
    may share the file: each counts what it wrote since it opened it, so with N workers a file can grow to
    about N x MAX_BYTES before one of them rotates it; no line is lost or split."""

    def __init__(self, path: Path) -> None:
        logging.handlers.RotatingFileHandler.__init__(
            self, path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
        )

    def _open(self) -> Any:
        stream = open(self.baseFilename, self.mode, buffering=1 << 16, encoding=self.encoding)  # noqa: SIM115
        self._size = os.fstat(stream.fileno()).st_size
        self._pending = 0
        return stream

    def _before_write(self, size: int) -> None:
        if self._size + size > self.maxBytes > 0:
            self._rotate_or_follow()
        self._size += size

    def _rotate_or_follow(self) -> None:
        """Rotate, unless another worker process writing the same file has rotated it already: then write on
        into the new file (never into a backup that a later rotation deletes)."""
        self.stream.flush()
        mine = os.fstat(self.stream.fileno())
        try:
            current = os.stat(self.baseFilename)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
            self.doRollover()  # reopens: _open() sets the size
        else:
            self.stream.close()
            self.stream = self._open()
        if self._size + 1 > self.maxBytes:  # the followed file is full too
            self.doRollover()


FLUSH_INTERVAL = 0.5
_flusher: threading.Thread | None = None


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_INTERVAL)
        for handler in list(logging.getLogger().handlers):
            if isinstance(handler, _BatchedLines):
                handler.flush()


def _start_flusher() -> None:
    global _flusher
    if _flusher is None:
        _flusher = threading.Thread(target=_flush_forever, name="voltway-log-flusher", daemon=True)
        _flusher.start()


def log_line(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    """Log one entry without building a LogRecord: the JSON line goes straight to VoltWay's JSON handlers.

    For the hottest line, the access line of every request: same fields, redaction, destinations and level
    rules as `logger.log(level, message, extra=fields)`, at a fifth of the cost (no record, no stack walk,
    no per-handler dispatch). Other handlers on the root logger (a text console, a test's log capture) get an
    ordinary record. The caller has checked `logger.isEnabledFor(level)`.
    """
    record: logging.LogRecord | None = None
    line: str | None = None
    for handler in logging.getLogger().handlers:
        if level < handler.level:
            continue
        if isinstance(handler, _BatchedLines) and isinstance(handler.formatter, JsonFormatter):
            if line is None:
                data = {"timestamp": datetime.now(UTC), "level": logging.getLevelName(level), "logger": logger.name,
                        "message": message}
                context = request_context.get()
                if context:
                    data.update(context)
                data.update(fields)
                line = render(data) + "\n"
            handler.write_line(line, level)
        else:
            if record is None:
                record = logger.makeRecord(logger.name, level, __file__, 0, message, (), None, extra=fields)
            handler.handle(record)


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
    console = ConsoleHandler()
    console.setFormatter(json_formatter if settings.log_json_console else TextFormatter())
    log_dir = Path(settings.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    app_file = LogFile(log_dir / "app.log")
    error_file = LogFile(log_dir / "error.log")
    error_file.setLevel(logging.ERROR)
    app_file.setFormatter(json_formatter)
    error_file.setFormatter(json_formatter)
    handlers: list[logging.Handler] = [console, app_file, error_file]
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
    _start_flusher()
    _configured = key
