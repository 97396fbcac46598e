"""The elements of a bare JSON array, decoded 64 KB at a time by orjson instead of one event at a time.

ijson's C backend builds every element from parser events: 2.7 of the ~8 s that parsing 300,000 stations
took; orjson decodes the same text in a third of that (64 KB at a time: 1.6-2.3 s on a host where ijson took
5.7 s; 256 KB or 1 MB took longer and held more). It decodes whole JSON texts only, so the text is cut at
the last `}` `,` `{` of what has been read and `[` + the part before it + `]` is decoded. A cut inside an
element (between two connections, or inside a string) leaves that text unbalanced, so orjson fails at its
very end, and the cut before is tried. Text that orjson decodes is exactly a run of whole elements.

Everything else is left to ijson, so that an input's outcome is the one ijson gives: where orjson fails other
than at the end of a cut (malformed or truncated JSON, numbers it does not take, the end of the array
followed by more text), the undecoded rest is handed back to the stream, behind a `[`, and `ArrayBatches`
stops with `finished` false: the caller reads the rest with ijson, which reports the error with its record
and byte. A run of 19 digits anywhere in the text goes to ijson too: ijson rejects integers beyond 64 bits
("integer overflow"), which orjson reads.
"""

import re
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

BATCH_BYTES = 64 * 1024
# An element that no cut ends within this much text is left to ijson (which streams it in constant memory); each
# read until then searches all of it again.
MAX_PENDING_BYTES = 1024 * 1024
# Cuts tried per batch before more text is read: each failed one costs a decode of the batch.
CUTS_TRIED = 8
_CUT = re.compile(rb"\}\s*,\s*\{")
_DIGITS_AS_NUL = bytes(0 if 0x30 <= byte <= 0x39 else byte for byte in range(256))
_LONG_NUMBER = bytes(19)  # -2**63 - 1 has 19 digits


class PushbackSource(Protocol):
    async def read(self, size: int) -> bytes: ...

    def unread(self, data: bytes) -> None: ...


def _last_cut(text: bytes, end: int) -> re.Match[bytes] | None:
    """The last `}` `,` `{` ending before `end`, searched in growing windows from the end."""
    window = 16 * 1024
    while True:
        start = max(0, end - window)
        found = None
        for found in _CUT.finditer(text, start, end):
            pass
        if found is not None or start == 0:
            return found
        window *= 8


class _LeftToIjson(Exception):
    """Text orjson may read otherwise than ijson, or not at all."""


def _decodable(text: bytes) -> bytes:
    """`text`, unless it holds a run of 19 digits: an integer beyond 64 bits, which ijson rejects and orjson
    reads (see the module doc)."""
    if text.translate(_DIGITS_AS_NUL).find(_LONG_NUMBER) >= 0:
        raise _LeftToIjson
    return text


class ArrayBatches:
    """Lists of the elements of the JSON array `source` starts with (after whitespace); see the module doc."""

    def __init__(self, source: PushbackSource) -> None:
        self.source = source
        self.finished = False  # the whole array was decoded, up to the end of the input

    async def __aiter__(self) -> AsyncIterator[list[Any]]:
        pending = await self.source.read(BATCH_BYTES)
        start = pending.find(b"[")
        if start < 0 or pending[:start].strip(b" \t\r\n\xef\xbb\xbf"):  # not an array (or a long way off)
            self.source.unread(pending)
            return
        pending = pending[start + 1 :]
        try:
            while data := await self.source.read(BATCH_BYTES):
                pending += data
                if len(pending) < BATCH_BYTES:
                    continue
                batch, pending = _whole_elements(_decodable(pending))
                if batch:
                    yield batch
                elif len(pending) > MAX_PENDING_BYTES:
                    raise _LeftToIjson
            # The end of the input: the last elements, the closing bracket and whitespace.
            last = orjson.loads(b"[" + _decodable(pending))
        except (_LeftToIjson, orjson.JSONDecodeError):
            self.source.unread(b"[" + pending)
            return
        self.finished = True
        yield last


def _whole_elements(pending: bytes) -> tuple[list[Any], bytes]:
    """The elements before the last cut that decodes, and the text after it."""
    end = len(pending)
    for _ in range(CUTS_TRIED):
        cut = _last_cut(pending, end)
        if cut is None:
            break
        try:
            return orjson.loads(b"[" + pending[: cut.start() + 1] + b"]"), pending[cut.end() - 1 :]
        except orjson.JSONDecodeError as exc:
            if exc.pos < len(exc.doc) - 1:  # not at the cut: an error of the text itself
                raise _LeftToIjson from None
        end = cut.start()
    return [], pending
