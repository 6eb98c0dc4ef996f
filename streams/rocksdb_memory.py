"""One RocksDB memory budget per worker, whatever the number of table partitions it opens.

Each RocksDB instance left to itself has its own block cache and memtables, so a
worker's RocksDB memory grew with the partitions it owned (3 tables x 8
partitions x (cache + 2 write buffers), plus the contact spills). Here, as in
Kafka Streams' bounded-memory ``RocksDBConfigSetter``, every instance of the
worker shares one LRU block cache of ``worker.rocksdb_memory_mb``, the memtables
are charged to that cache through one ``WriteBufferManager`` (at most half of
it), and index and filter blocks live in the cache instead of beside it. The
cache's usage is exported (``mailpulse_stream_rocksdb_memory_bytes``).
"""

from __future__ import annotations

import rocksdict

__all__ = ["MemoryBudget"]

MIB = 1 << 20
#: Memtables of one instance before writes wait for a flush.
WRITE_BUFFERS = 2
#: Target size of an SST file (Faust's default; the tables are small).
TARGET_FILE_SIZE = 64 * MIB
MAX_OPEN_FILES = 256
BLOOM_BITS_PER_KEY = 10


class MemoryBudget:
    """The cache and write-buffer manager every RocksDB instance of one worker shares."""

    def __init__(self, memory_mb: int, write_buffer_mb: int) -> None:
        self.capacity = memory_mb * MIB
        self.write_buffer_size = write_buffer_mb * MIB
        self.cache = rocksdict.Cache(self.capacity)
        self.write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            self.capacity // 2, False, self.cache
        )

    def options(self) -> rocksdict.Options:
        """Options for one more instance under this budget (raw bytes keys and values)."""
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(MAX_OPEN_FILES)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(WRITE_BUFFERS)
        options.set_target_file_size_base(TARGET_FILE_SIZE)
        options.set_write_buffer_manager(self.write_buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(self.cache)
        # Full (not block-based) filters: a miss, such as a new key, is answered without reading a block.
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, False)
        # Index and filter blocks count against the cache too (else they grow with the data).
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options

    def usage(self) -> int:
        """Bytes held in the cache now, memtables included."""
        return int(self.cache.get_usage())
