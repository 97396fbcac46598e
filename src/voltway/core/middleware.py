"""The request middleware: one pure ASGI class (no BaseHTTPMiddleware and its per-request task and queues).

For every HTTP request it
- keeps a valid incoming `X-Request-ID` (else generates one), puts it in the log context of the request and in
  the response headers, with `X-Process-Time` (seconds until the response headers);
- counts the request by method, route *template* and status, times it, tracks requests in progress;
- writes one JSON access line, at WARNING (and counted) when slower than `SLOW_REQUEST_THRESHOLD`;
- turns an unhandled exception into a logged traceback and a 500 in the error model, without internals.

Hot-path care (bench/middleware_overhead.py measures it): labelled metric children and route templates are
looked up once and cached; request ids come from a counter; the access line is built only when its level is
enabled and goes straight to the JSON handlers (`core.logging.log_line`); probes and scrapes log at DEBUG.
"""

import itertools
import logging
import os
import re
import time
from typing import Any

from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voltway.core.errors import error_response
from voltway.core.logging import log_line, request_context
from voltway.core.metrics import (
    HTTP_EXCEPTIONS,
    HTTP_IN_PROGRESS,
    HTTP_LATENCY,
    HTTP_REQUESTS,
    HTTP_SLOW_REQUESTS,
    UNMATCHED_ROUTE,
)

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._\-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Load-balancer probes and Prometheus scrapes: counted like any request, but their access lines are DEBUG.
QUIET_ROUTES = frozenset({"/health", "/health/ready", "/api/v1/health", "/metrics"})

access_logger = logging.getLogger("voltway.access")
error_logger = logging.getLogger("voltway.errors")


_ID_PREFIX = os.urandom(8).hex()  # per process (workers are spawned, each imports this module afresh)
_id_counter = itertools.count()


def new_request_id() -> str:
    """32 hex characters, unique across processes and restarts: a random process prefix and a counter
    (a random id per request would cost a getrandom() syscall on the hot path)."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def _incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            return value.decode("ascii") if _VALID_REQUEST_ID.fullmatch(value) else None
    return None


def _full_template(route: Any, scope: Scope) -> str:
    """`route.path` with the prefixes it was included under (FastAPI routes know only their router's prefix)."""
    path = getattr(route, "path", None)
    regex = getattr(route, "path_regex", None)
    if path is None or regex is None:
        return UNMATCHED_ROUTE
    request_path: str = scope["path"]
    for start, char in enumerate(request_path):
        if char == "/" and regex.match(request_path[start:]):
            return request_path[:start] + path
    return path


def _endpoint_template(endpoint: Any, scope: Scope) -> str:
    for route in getattr(scope.get("app"), "routes", ()):
        if isinstance(route, Mount) and route.app is endpoint:
            return route.path.rstrip("/") + "/{path}"  # e.g. static files: one label for the whole mount
        if isinstance(route, Route) and route.endpoint is endpoint:
            return route.path
    return UNMATCHED_ROUTE


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, slow_request_threshold: float) -> None:
        self.app = app
        self.slow_threshold = slow_request_threshold
        self._templates: dict[int, str] = {}
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._in_progress = {m: HTTP_IN_PROGRESS.labels(m) for m in (*_METHODS, "OTHER")}

    def _route_template(self, scope: Scope) -> str:
        """The matched route's path template (`/api/v1/stations/{station_id}`), computed once per route."""
        route = scope.get("route")
        if route is not None:
            template = self._templates.get(id(route))
            if template is None:
                template = self._templates[id(route)] = _full_template(route, scope)
            return template
        # Plain Starlette routes and mounts (openapi.json, static files) only leave their endpoint in the scope.
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED_ROUTE
        template = self._templates.get(id(endpoint))
        if template is None:
            template = self._templates[id(endpoint)] = _endpoint_template(endpoint, scope)
        return template

    def _metric_children(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (HTTP_REQUESTS.labels(method, route, str(status)), HTTP_LATENCY.labels(method, route))
            self._children[key] = children
        return children

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                request_id = _incoming_request_id(scope["headers"]) or new_request_id()
                token = request_context.set({"request_id": request_id})
                try:
                    await self.app(scope, receive, send)
                finally:
                    request_context.reset(token)
                return
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        request_id = _incoming_request_id(scope["headers"]) or new_request_id()
        request_id_bytes = request_id.encode("ascii")
        context: dict[str, Any] = {"request_id": request_id}
        token = request_context.set(context)
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        in_progress = self._in_progress[method]
        in_progress.inc()
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id_bytes))
                headers.append((b"x-process-time", b"%.6f" % (time.perf_counter() - started)))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:  # the last line of defence: log the traceback, answer 500, hide internals
            HTTP_EXCEPTIONS.labels(type(exc).__name__).inc()
            error_logger.exception("unhandled %s", type(exc).__name__, extra={"path": scope["path"]})
            status = 500
            if not response_started:
                response = error_response(
                    500, "internal_error", "internal server error", {"request_id": request_id}
                )
                await response(scope, receive, send_with_headers)
        finally:
            duration = time.perf_counter() - started
            in_progress.dec()
            route = self._route_template(scope)
            requests, latency = self._metric_children(method, route, status)
            requests.inc()
            latency.observe(duration)
            slow = duration > self.slow_threshold
            if slow:
                HTTP_SLOW_REQUESTS.labels(method, route).inc()
            if slow:
                level = logging.WARNING
            elif route in QUIET_ROUTES and status < 500:
                level = logging.DEBUG  # probes and scrapes every few seconds would drown the access log
            else:
                level = logging.INFO
            if access_logger.isEnabledFor(level):
                client = scope.get("client")
                log_line(
                    access_logger,
                    level,
                    f"{scope['method']} {scope['path']} {status} {duration * 1000:.1f} ms{' (slow)' if slow else ''}",
                    {
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(duration * 1000, 3),
                        "client": client[0] if client else None,
                        "slow": slow,
                    },
                )
            request_context.reset(token)
