"""Split: stream-copy the GOPs covering each segment into a chunk, without re-encoding.

One pass over the source's video packets in decode order, holding at most two GOPs in
memory. A segment's chunk starts at the keyframe before its first owned frame (one GOP
earlier when it owns leading pictures of an open GOP, which reference the GOP before) and
ends at its last owned packet; upscale decodes the chunk and keeps only what it owns.
"""

from __future__ import annotations

import contextlib
import logging
import time
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import av

from vsr_client.codes import ErrorCode, VsrError
from vsr_worker import layout, storage
from vsr_worker.integrity import PtsDigest
from vsr_worker.media.mp4 import DISCARD_ALL, mp4_options
from vsr_worker.media.probe import VideoInfo, open_video, probe
from vsr_worker.progress import ProgressWriter
from vsr_worker.stages.common import Ownership
from vsr_worker.timings import Timings, process_age

if TYPE_CHECKING:
    from vsr_client.contract import Manifest  # or the light vsr_client.manifest_view.ManifestView

log = logging.getLogger(__name__)

_MATROSKA = "matroska"


def chunk_format(source_format: str) -> str:
    """MP4 keeps the stream's exact time base; Matroska sources (ms timestamps, no DTS)
    stay Matroska."""
    return _MATROSKA if _MATROSKA in source_format.split(",") else "mp4"


def _copy(packet: av.Packet) -> av.Packet:
    dup = av.Packet(packet)  # copies the payload
    dup.pts, dup.dts, dup.duration = packet.pts, packet.dts, packet.duration
    dup.is_keyframe = packet.is_keyframe
    dup.time_base = packet.time_base
    return dup


class _ChunkWriter:
    def __init__(self, uri: str, template: av.video.stream.VideoStream, fmt: str, timings: Timings):
        self._timings = timings
        self._ctx = storage.output_file(uri)
        self._path: Path = self._ctx.__enter__()
        opts = mp4_options(template.time_base) if fmt == "mp4" else {}
        self._out = av.open(str(self._path), "w", format=fmt, options=opts)
        self._stream = self._out.add_stream_from_template(template)
        self._stream.time_base = template.time_base
        self.packets = 0
        self.bytes = 0  # the finished chunk's size, recorded in the index for upscale to check
        self.muxing = 0.0  # seconds in mux(), added to the stage's timings on close
        self.written_of_last_gop = 0  # how many packets of the latest GOP it was given

    def mux(self, packet: av.Packet) -> None:
        packet.stream = self._stream
        started = time.perf_counter()  # inline: a with-block per packet costs more than the timing is worth
        self._out.mux(packet)
        self.muxing += time.perf_counter() - started
        self.packets += 1

    def close(self, ok: bool = True) -> None:
        with self._timings.phase("mux"):
            self._out.close()
        self._timings.add("mux", self.muxing)
        self.muxing = 0.0
        if ok:
            self.bytes = self._path.stat().st_size
            with self._timings.phase("storage"):
                self._ctx.__exit__(None, None, None)
        else:
            with contextlib.suppress(Exception):
                self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


# A write: (writer, first, stop) over one GOP's packet list.
_Write = Tuple[_ChunkWriter, int, int]


def _execute(writes: List[_Write], packets: List[av.Packet]) -> None:
    """Mux slices of one GOP into writers in order. Muxing consumes a packet, so each is
    muxed itself at its last use and copied for the uses before (most have only one)."""
    uses = [0] * len(packets)
    for _, first, stop in writes:
        for i in range(first, stop):
            uses[i] += 1
    for writer, first, stop in writes:
        for i in range(first, stop):
            uses[i] -= 1
            writer.mux(packets[i] if uses[i] == 0 else _copy(packets[i]))


def run_split(manifest: Manifest) -> dict:
    timings = Timings()
    age = process_age()
    if age is not None:
        timings.add("startup", age)
    with contextlib.ExitStack() as stack:
        with timings.phase("storage"):
            src = stack.enter_context(storage.input_file(manifest.source))
        with timings.phase("probe"):
            info = probe(src)
        container = stack.enter_context(open_video(src))
        return _split(manifest, info, container, timings)


def _split(manifest: Manifest, info: VideoInfo, container: av.container.InputContainer, timings: Timings) -> dict:
    vs = container.streams[info.video_index]
    for other in container.streams:
        if other is not vs:
            other.discard = DISCARD_ALL  # the demuxer skips their data
    tb = Fraction(vs.time_base)
    fmt = chunk_format(container.format.name)
    ext = "mkv" if fmt == _MATROSKA else "mp4"
    plan = manifest.plan
    progress = ProgressWriter(manifest.work, "split", total=info.frames or None)

    owned = [0] * plan.count
    digests = [PtsDigest() for _ in range(plan.count)]  # of the owned frames' pts (merge checks them)
    chunk_packets: Dict[int, int] = {}
    chunk_bytes: Dict[int, int] = {}
    writers: Dict[int, _ChunkWriter] = {}
    own: Optional[Ownership] = None
    prev_gop: List[av.Packet] = []
    gop: List[av.Packet] = []
    pending: List[_Write] = []  # writes of prev_gop's packets not yet executed
    total = 0

    def close(seg: int) -> None:
        writer = writers.pop(seg)
        writer.close()
        chunk_packets[seg], chunk_bytes[seg] = writer.packets, writer.bytes

    def flush_gop() -> None:
        """Plan the writes of ``gop``; execute every write of ``prev_gop``, now all known."""
        nonlocal own, pending
        if own is None:
            own = Ownership(plan=plan, t0=min(p.pts for p in gop), time_base=tb)
        owners = [own.owner(p.pts) for p in gop]
        key_pts = gop[0].pts if gop[0].is_keyframe else None
        prev_writes: List[_Write] = []
        cur_writes: List[_Write] = []
        for seg in sorted(set(owners)):
            last = max(i for i, o in enumerate(owners) if o == seg)
            w = writers.get(seg)
            if w is None:
                w = writers[seg] = _ChunkWriter(layout.chunk(manifest.work, seg, ext), vs, fmt, timings)
                leads = key_pts is not None and any(o == seg and p.pts < key_pts for o, p in zip(owners, gop))
                if leads and prev_gop:  # open GOP: leading pictures reference the previous GOP
                    prev_writes.append((w, 0, len(prev_gop)))
            else:  # complete the GOP it was cut in
                prev_writes.append((w, w.written_of_last_gop, len(prev_gop)))
            cur_writes.append((w, 0, last + 1))
            w.written_of_last_gop = last + 1
            owned[seg] += owners.count(seg)
        for seg, packet in zip(owners, gop):
            digests[seg].add(packet.pts)
        _execute(pending + prev_writes, prev_gop)
        for seg in [s for s in writers if s not in owners]:
            close(seg)
        pending = cur_writes

    try:
        for packet in timings.timed(container.demux(vs), "demux"):
            if packet.size == 0:
                continue
            if packet.pts is None:
                raise VsrError(
                    ErrorCode.UNSUPPORTED_CODEC,
                    "video packets carry no timestamps (raw elementary stream?): remux into MP4 or MKV first",
                )
            if packet.is_keyframe and gop:
                flush_gop()
                prev_gop, gop = gop, []
            gop.append(packet)
            total += 1
            progress.advance()
        if not gop:
            raise VsrError(ErrorCode.CORRUPT_INPUT, "video stream holds no packets")
        flush_gop()
        _execute(pending, gop)
        for seg in list(writers):
            close(seg)
    except av.error.FFmpegError as exc:
        raise VsrError(ErrorCode.CORRUPT_INPUT, f"video stream is damaged: {exc.strerror}") from None
    finally:
        for w in writers.values():
            w.close(ok=False)

    if info.frames and total < info.frames:
        raise VsrError(ErrorCode.CORRUPT_INPUT, f"input is truncated: {total} of {info.frames} video frames present")

    assert own is not None
    segments = []
    for i in range(plan.count):
        lo, hi = own.pts_bounds(i)
        segments.append(
            {
                "index": i,
                "chunk": layout.chunk(manifest.work, i, ext) if owned[i] else None,
                "chunk_packets": chunk_packets.get(i, 0),
                "chunk_bytes": chunk_bytes.get(i, 0),
                "pts_digest": digests[i].hex(),
                "frames": owned[i],
                "pts_lo": lo,
                "pts_hi": hi,
            }
        )
    index = {
        "job_id": manifest.job_id,
        "source": manifest.source,
        "probe": info.to_json(),
        "t0": own.t0,
        "time_base": str(tb),
        "frames": total,
        "segments": segments,
    }
    with timings.phase("storage"):
        if manifest.task == "debug":
            storage.write_json(layout.debug(manifest.work, "probe.json"), info.to_json())
        storage.write_json(layout.split_index(manifest.work), index)
    progress.finish(timings=timings.to_json())
    log.info("split %s: %d frames into %d segments", manifest.source, total, plan.count)
    return index
