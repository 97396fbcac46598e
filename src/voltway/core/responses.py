"""JSON rendered by orjson, for handlers that build their body by hand on hot paths."""

from typing import Any

import orjson
from starlette.responses import JSONResponse


def json_bytes(content: Any) -> bytes:
    """`content` as JSON, as `FastJSONResponse` renders it (for bodies stored or sent without a response)."""
    return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json_bytes(content)
