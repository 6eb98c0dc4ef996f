"""The pure helpers of the worker's agents."""

from __future__ import annotations

from collections.abc import Iterator

from mailpulse.streams.agents import take_slice


def _items_from(table: dict[bytes, bytes], start: bytes) -> Iterator[tuple[bytes, bytes]]:
    """What a RocksDB partition's ``items(start=...)`` yields: key order, from ``start`` included."""
    return iter([(k, v) for k, v in sorted(table.items()) if k >= start])


def test_take_slice_walks_a_table_in_slices_visiting_every_key_once() -> None:
    table = {f"k{i:04d}".encode(): b"v" for i in range(1234)}
    seen: list[bytes] = []
    start: bytes | None = b""
    slices = 0
    while start is not None:
        batch, start = take_slice(_items_from(table, start), 500)
        assert len(batch) <= 500
        seen.extend(k for k, _ in batch)
        slices += 1
    assert seen == sorted(table)
    assert slices == 3


def test_take_slice_of_an_exact_multiple_ends_without_an_empty_slice() -> None:
    table = {f"k{i}".encode(): b"v" for i in range(10)}
    batch, resume = take_slice(_items_from(table, b""), 10)
    assert len(batch) == 10 and resume is None
    assert take_slice(iter([]), 10) == ([], None)
