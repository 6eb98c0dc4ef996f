"""SpillingDict behaves as a dict whatever it keeps in memory, and holds at most its capacity there."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpulse.streams.spill import SpillingDict

operations = st.lists(
    st.tuples(st.sampled_from(["get", "set", "del", "list", "get_or_add"]), st.integers(0, 12), st.integers(0, 99)),
    max_size=80,
)


def _spill(path: Path, capacity: int) -> SpillingDict[list[int]]:
    return SpillingDict(path, capacity, lambda v: bytes(v), lambda b: list(b))


@settings(max_examples=60, deadline=None)
@given(operations, st.integers(1, 4))
def test_spilling_dict_answers_as_a_dict_does_under_any_operations(tmp_path_factory, ops, capacity):
    store, ref = _spill(tmp_path_factory.mktemp("spill") / "s", capacity), {}
    try:
        for op, k, v in ops:
            key = f"k{k}"
            if op == "get":
                value = store.get(key)
                assert value == ref.get(key)
                if value is not None:  # a value handed out is the live one: changing it changes the mapping
                    value.append(v)
                    ref[key] = [*ref[key], v]
            elif op == "set":
                store[key] = [v]
                ref[key] = [v]
            elif op == "get_or_add":
                assert store.get_or_add(key, lambda v=v: [v]) == ref.setdefault(key, [v])
            elif op == "del":
                if key in ref:
                    del store[key]
                    del ref[key]
                else:
                    assert key not in store
            else:
                assert sorted(store) == sorted(ref) and len(store) == len(ref)
            assert len(store.resident_keys()) <= capacity
    finally:
        store.close()


def test_a_closed_spill_leaves_no_files(tmp_path):
    store = _spill(tmp_path / "s", 2)
    for i in range(50):
        store[f"k{i}"] = [i]
    assert store.spills >= 48 and (tmp_path / "s").exists()
    store.close()
    assert not (tmp_path / "s").exists()


def test_a_spill_starts_empty_even_where_a_killed_worker_left_one(tmp_path):
    first = _spill(tmp_path / "s", 1)
    for i in range(10):
        first[f"k{i}"] = [i]
    del first  # killed: no close, files stay
    second = _spill(tmp_path / "s", 1)
    assert len(second) == 0 and list(second) == [] and second.get("k3") is None
    second.close()


def test_get_or_add_reads_a_spilled_value_back_once(tmp_path):
    store = _spill(tmp_path / "s", 1)
    try:
        store["a"] = [1]
        store["b"] = [2]  # "a" spilled
        assert store.get_or_add("a", lambda: [9]) == [1]
        assert store.loads == 1 and "a" in store.resident_keys()
        assert store.get_or_add("c", lambda: [3]) == [3] and len(store) == 3
    finally:
        store.close()
