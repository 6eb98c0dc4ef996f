"""Local table bookkeeping: partitions ahead of their changelog are rebuilt, never trusted."""

from __future__ import annotations

from pathlib import Path

import rocksdict
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.streams.tables import ACKED_KEY, WRITTEN_KEY, discard_unacknowledged, murmur2, partition_of
from mailpulse.topics.contracts import EVENTS


def _db(path: Path, **items: bytes) -> None:
    db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
    for key, value in items.items():
        db[key.encode("latin-1")] = value
    db.close()


def test_a_partition_killed_between_its_local_write_and_the_changelog_ack_is_discarded(tmp_path: Path) -> None:
    written, acked = WRITTEN_KEY.decode("latin-1"), ACKED_KEY.decode("latin-1")
    _db(tmp_path / "messages-0.db", **{written: b"7", acked: b"7", "acme:m1": b"{}"})  # every batch acknowledged
    _db(tmp_path / "messages-1.db", **{written: b"8", acked: b"7", "acme:m2": b"{}"})  # last batch never acknowledged
    _db(tmp_path / "messages-2.db", **{written: b"9", "acme:m3": b"{}"})  # no batch ever acknowledged
    _db(tmp_path / "campaigns-3.db", **{"acme:c1": b"{}"})  # written by nothing of ours yet

    discarded = discard_unacknowledged(tmp_path)

    assert [p.name for p in discarded] == ["messages-1.db", "messages-2.db"]
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["campaigns-3.db", "messages-0.db"]


def test_a_missing_table_directory_discards_nothing(tmp_path: Path) -> None:
    assert discard_unacknowledged(tmp_path / "absent") == []


def test_partition_of_matches_kafkas_default_partitioner() -> None:
    # Where producers put a key is where the stores and the query router look for it.
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    for key in (b"acme-smartcq:m1", b"acme-supersend:c3", b"", b"x" * 100):
        assert partition_of(key) == partitioner(key, list(range(8)), list(range(8)))


@given(st.binary(max_size=300))
def test_murmur2_equals_aiokafkas_for_any_bytes(data: bytes) -> None:
    from aiokafka.partitioner import murmur2 as aiokafka_murmur2

    assert murmur2(data) == aiokafka_murmur2(data)


def test_stats_topics_have_as_many_partitions_as_the_stage_2_tables() -> None:
    # publish_stats sends a stage-2 key to the partition number it lives in, unhashed.
    from mailpulse.topics.contracts import CAMPAIGN_STATS, CAMPAIGNS, CONTACT_STATS

    assert CAMPAIGN_STATS.partitions == CONTACT_STATS.partitions == CAMPAIGNS.partitions == EVENTS.partitions


def _rocksdb_options_file(db_dir: Path) -> dict[str, str]:
    """What RocksDB itself recorded it opened a database with (its newest OPTIONS file)."""
    newest = sorted(db_dir.glob("OPTIONS-*"))[-1]
    pairs = (line.strip().partition("=") for line in newest.read_text().splitlines() if "=" in line)
    return {key: value for key, _, value in pairs}


def test_every_state_table_opens_its_rocksdb_with_the_configured_memory_options(tmp_path: Path) -> None:
    # Faust ignores an App-level rocksdb_options and would open each partition with its own
    # 2 GiB block cache and 64 MiB x 3 write buffers: the tables must carry the shared budget.
    from mailpulse.config import Config
    from mailpulse.streams.app import create_app
    from mailpulse.streams.faust_internals import store_db
    from mailpulse.streams.rocksdb_memory import WRITE_BUFFERS

    worker = {"data_dir": str(tmp_path), "rocksdb_write_buffer_mb": 3, "rocksdb_memory_mb": 192}
    streams = create_app(Config.model_validate({"kafka": {"bootstrap_servers": "127.0.0.1:9"}, "worker": worker}))
    for table in (streams.messages, streams.campaign_table, streams.contact_table):
        store = table.table.data
        store_db(store, 1).put(b"k", b"v")
        recorded = _rocksdb_options_file(Path(store.partition_path(1)))
        assert recorded["write_buffer_size"] == str(3 * 1024 * 1024)
        assert recorded["max_write_buffer_number"] == str(WRITE_BUFFERS)
        assert recorded["max_open_files"] == "256"
        assert recorded["cache_index_and_filter_blocks"] == "true"
    assert streams.memory is not None and streams.memory.capacity == 192 * 1024 * 1024


def test_rocksdb_memory_of_every_table_partition_stays_within_one_budget(tmp_path: Path) -> None:
    # 24 partitions written round robin, as the worker writes them: alone, each would keep two
    # memtables (48 MiB) and its own cache; under the shared budget, memtables and cached
    # blocks together stay within rocksdb_memory_mb.
    import os

    from mailpulse.config import Config
    from mailpulse.streams.app import create_app
    from mailpulse.streams.faust_internals import store_db

    budget_mb = 64
    worker = {"data_dir": str(tmp_path), "rocksdb_write_buffer_mb": 1, "rocksdb_memory_mb": budget_mb}
    streams = create_app(Config.model_validate({"kafka": {"bootstrap_servers": "127.0.0.1:9"}, "worker": worker}))
    memory = streams.memory
    assert memory is not None
    dbs = [
        store_db(t.table.data, p)
        for t in (streams.messages, streams.campaign_table, streams.contact_table)
        for p in range(8)
    ]
    value = os.urandom(1000)
    rounds = 4000  # 96 MB in all
    peak = 0
    for i in range(rounds):
        for db in dbs:
            db.put(b"%08d" % i, value)
        if i % 50 == 0:
            for db in dbs:  # reads go through the same cache
                assert db.get(b"%08d" % (i // 2)) == value
            peak = max(peak, memory.usage())
    assert rounds * len(dbs) * len(value) > memory.capacity
    assert memory.usage() > 0
    assert peak <= memory.capacity, f"peak {peak / 2**20:.1f} MiB against a {budget_mb} MiB budget"
    scrape = streams.metrics.render(
        ["mailpulse_stream_rocksdb_memory_bytes", "mailpulse_stream_rocksdb_memory_limit_bytes"]
    )
    assert b"mailpulse_stream_rocksdb_memory_limit_bytes 6.7108864e+07" in scrape
    assert b"mailpulse_stream_rocksdb_memory_bytes " in scrape
