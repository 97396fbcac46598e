"""Calling an app as an ASGI app, without a server: the pieces of one GET request."""


def asgi_scope(path_and_query: str) -> dict[str, object]:
    path, _, query = path_and_query.partition("?")
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"bench"), (b"user-agent", b"bench")], "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000)}


async def asgi_receive() -> dict[str, object]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def asgi_send(_message: object) -> None:
    pass
