"""A seekable, read-only file over ranged reads, fetching only what is read, in blocks.

PyAV (FFmpeg's demuxers) reads a video's header through it: a faststart MP4 costs its first
blocks, one with the moov atom at the end costs the first blocks plus the tail. ``bytes_read``
counts every byte fetched.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable

# fetch(start, end_inclusive) -> bytes
RangeFetcher = Callable[[int, int], bytes]


class RangedReader(io.RawIOBase):
    def __init__(self, fetch: RangeFetcher, size: int, block_size: int = 64 * 1024, cache_blocks: int = 32) -> None:
        super().__init__()
        self._fetch = fetch
        self.size = size
        self.block_size = block_size
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_blocks = cache_blocks
        self._pos = 0
        self.bytes_read = 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _block(self, index: int) -> bytes:
        data = self._cache.get(index)
        if data is None:
            start = index * self.block_size
            end = min(start + self.block_size, self.size) - 1
            data = self._fetch(start, end)
            self.bytes_read += len(data)
            self.requests += 1
            self._cache[index] = data
            if len(self._cache) > self._cache_blocks:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        want = min(len(buffer), max(0, self.size - self._pos))
        got = 0
        view = memoryview(buffer)
        while got < want:
            index, offset = divmod(self._pos, self.block_size)
            block = self._block(index)
            n = min(want - got, len(block) - offset)
            if n <= 0:
                break
            view[got : got + n] = block[offset : offset + n]
            got += n
            self._pos += n
        return got

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self._pos
        buf = bytearray(max(0, min(size, self.size - self._pos)))
        n = self.readinto(buf)
        return bytes(buf[:n])
