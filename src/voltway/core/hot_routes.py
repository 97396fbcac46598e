"""Hot routes: a few GET routes answered without FastAPI's routing, dependency solving and wrappers.

FastAPI's handling of a request around its endpoint (matching it through the included routers, building the
request, solving the dependencies, its exception and exit-stack middleware) costs a seventh to a fifth of an
uncached radius search: as much as shaping its fifty rows (bench/README.md, eighth session). `HotRoutes` sends a GET for
one of its exact paths straight to the route's endpoint, which takes the `Request` alone and returns a
`Response`. The FastAPI route stays the same object: it documents the operation in OpenAPI, answers every
other method, and labels the request's metrics and access line (it is put in the scope as routing would).
An exception is answered by the app's exception handler for it, as Starlette's exception middleware would.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send


def include_hot_router(
    app: FastAPI, router: APIRouter, hot: Iterable[Callable[..., Any]], *, prefix: str
) -> dict[str, APIRoute]:
    """`app.include_router(router, prefix=prefix)`, and the routes of the `hot` endpoints by full path, for
    `HotRoutes`. Checked: a hot route takes the Request alone and the app and router add no dependencies, since
    nothing on the hot path would solve one (an API key check, a rate limit)."""
    if app.router.dependencies:
        raise TypeError("the app has dependencies, which hot routes would skip")
    app.include_router(router, prefix=prefix)
    endpoints = list(hot)
    table = {}
    for route in router.routes:
        if not isinstance(route, APIRoute) or route.endpoint not in endpoints:
            continue
        dependant = route.dependant
        if dependant.dependencies or dependant.path_params or dependant.query_params or dependant.body_params:
            raise TypeError(f"{route.name}: a hot route's endpoint takes the Request alone")
        if "GET" not in route.methods:
            raise TypeError(f"{route.name}: hot routes answer GET requests")
        table[prefix + route.path] = route
    if len(table) != len(endpoints):
        raise LookupError("an endpoint given as hot is not a route of this router")
    return table


class HotRoutes:
    def __init__(self, app: ASGIApp, *, routes: Mapping[str, APIRoute]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            handler = _exception_handler(scope["app"].exception_handlers, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


def _exception_handler(handlers: Mapping[Any, Any], exc: Exception) -> Any:
    """The handler registered for the nearest class of `exc`, as Starlette looks it up (VoltWay registers async
    handlers by class only; a handler by status code would not be consulted)."""
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
