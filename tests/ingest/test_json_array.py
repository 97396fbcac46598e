"""A bare JSON array read in orjson batches (`json_array.py`, then ijson for what it leaves) gives what ijson
alone gives: the same elements, and for a broken input the same error after whole elements only.

Hypothesis writes arrays of objects with texts full of the cut's own characters (`}`, `,`, `{`), nesting,
non-ASCII, integers on both sides of 64 bits and floats, in compact and indented layouts, and breaks some of
them (cut short, a stray character, text after the array). The batches are made tiny so that nearly every
cut falls inside an element.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import ijson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voltway.ingest import json_array
from voltway.ingest.ocm_stream import Rewindable, element_batches


class MemorySource:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    async def read(self, size: int) -> bytes:
        chunk = self.data[self.offset : self.offset + size]
        self.offset += len(chunk)
        return chunk


def started(data: bytes) -> Rewindable:
    stream = Rewindable(MemorySource(data))
    stream.rewind()  # served from its start, as after the reader has found where the array is
    return stream


def first_line(exc: Exception) -> str:
    """The error's first line, its letters only: ijson shows it as text or as bytes (quotes escaped), and then
    an excerpt of its buffer."""
    return re.sub(r"[^A-Za-z ]", "", str(exc).removeprefix("b'").replace("\\n", "\n").splitlines()[0])


def after_space(text: str, position: int) -> int:
    return WHITESPACE.match(text, position).end()  # type: ignore[union-attr]  # \s* always matches


def leading_elements(data: bytes) -> list[Any]:
    """The elements `json` decodes one by one from the array's start, up to the first it cannot."""
    text, decoder, elements = data.decode(errors="replace"), json.JSONDecoder(), []
    position = after_space(text, 0) + 1
    while True:
        try:
            element, position = decoder.raw_decode(text, after_space(text, position))
        except json.JSONDecodeError:
            return elements
        elements.append(element)
        position = after_space(text, position)
        if not text.startswith(",", position):
            return elements
        position += 1


async def collected(batches: AsyncIterator[list[Any]]) -> tuple[list[Any], str | None]:
    """The elements read, and the error that stopped the reading (None: none)."""
    elements: list[Any] = []
    try:
        async for batch in batches:
            elements.extend(batch)
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        return elements, first_line(exc)
    return elements, None


async def by_ijson(data: bytes) -> AsyncIterator[list[Any]]:
    async for element in ijson.items_async(started(data), "item", use_float=True):
        yield [element]


def both(data: bytes) -> tuple[tuple[list[Any], str | None], tuple[list[Any], str | None]]:
    """What the reader's batches read, and what ijson alone reads."""
    return asyncio.run(collected(element_batches(started(data), "item"))), asyncio.run(collected(by_ijson(data)))


IJSON_OVERFLOW = "parse error integer overflow"
WHITESPACE = re.compile(r"\s*")


def beyond_64_bits(value: Any) -> bool:
    if isinstance(value, dict):
        return any(beyond_64_bits(v) for v in value.values())
    if isinstance(value, list):
        return any(beyond_64_bits(v) for v in value)
    return type(value) is int and not -(2**63) <= value < 2**63


TEXT = st.text(alphabet=st.sampled_from('}{,][": \\\n\tabcé€😀0123'), max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3))
ARRAYS = st.lists(st.dictionaries(TEXT, VALUES, max_size=4), max_size=12)
LAYOUTS = st.sampled_from([
    {"separators": (",", ":")},
    {"indent": 2},
    {"indent": None, "ensure_ascii": False},
])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    ARRAYS,
    LAYOUTS,
    st.sampled_from([8, 40, 200, 4096]),
    st.sampled_from(["whole", "cut short", "stray character", "text after"]),
    st.integers(min_value=0, max_value=10**6),
)
def test_batches_read_what_ijson_reads(
    elements: list[Any], layout: dict[str, Any], batch_bytes: int, damage: str, where: int
) -> None:
    data = json.dumps(elements, **layout).encode()
    at = where % (len(data) + 1)
    if damage == "cut short":
        data = data[:at]
    elif damage == "stray character":
        data = data[:at] + b"@" + data[at:]
    elif damage == "text after":
        data += b" []"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_array, "BATCH_BYTES", batch_bytes)
        batches, alone = both(data)
    (read, error), (read_alone, error_alone) = batches, alone
    assert error == error_alone
    if damage == "whole":  # ijson, and so the reader, reject integers beyond 64 bits
        assert error == (IJSON_OVERFLOW if beyond_64_bits(elements) else None)
    if error is None:
        assert read == read_alone == json.loads(data)
    else:
        # Whole elements before the error, none from it on. ijson alone loses those that share its buffer
        # (64 KB) with the error: the batches lose fewer, so neither count is fixed.
        assert read == leading_elements(data)[: len(read)]


def test_a_large_array_is_decoded_by_orjson_to_its_end() -> None:
    elements = [{"ID": i, "Title": f"Site {i}, {{north}}", "Connections": [{"ID": i}, {"ID": -i}]} for i in range(5000)]
    data = json.dumps(elements, indent=1).encode()

    async def read() -> tuple[list[Any], bool]:
        batches = json_array.ArrayBatches(started(data))
        decoded = [element async for batch in batches for element in batch]
        return decoded, batches.finished

    assert asyncio.run(read()) == (elements, True)


def test_an_element_larger_than_the_pending_bound_is_left_to_ijson(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_array, "BATCH_BYTES", 16)
    monkeypatch.setattr(json_array, "MAX_PENDING_BYTES", 200)
    elements = [{"ID": 1}, {"ID": 2, "Connections": [{"ID": i, "Comments": "x" * 20} for i in range(20)]}, {"ID": 3}]
    data = json.dumps(elements).encode()

    async def read() -> tuple[list[Any], list[Any], bool]:
        stream = started(data)
        batches = json_array.ArrayBatches(stream)
        decoded = [element async for batch in batches for element in batch]
        rest = [element async for element in ijson.items_async(stream, "item", use_float=True)]
        return decoded, rest, batches.finished

    decoded, rest, finished = asyncio.run(read())
    assert (decoded, rest, finished) == ([{"ID": 1}], elements[1:], False)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (b'[{"ID": 1}, {"ID": 2}, {"ID": 3', "premature EOF"),
        (b'[{"ID": 1}, {"ID": 2}, {"ID": 18446744073709551616}]', "integer overflow"),
        (b'[{"ID": 1}, {"ID": 2}, {"ID": -9223372036854775809}]', "integer overflow"),
        (b'[{"ID": 1}, {"ID": 2}, {"ID": 1e400}]', "numeric floating point overflow"),
        (b'[{"ID": 1}, {"ID": 2}] {}', "trailing garbage"),
    ],
)
def test_what_orjson_would_read_otherwise_is_left_to_ijson(
    text: bytes, error: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_array, "BATCH_BYTES", 8)
    (elements, message), (_, alone) = both(text)
    assert message == alone
    assert error in message
    assert elements == [{"ID": 1}, {"ID": 2}][: len(elements)]
