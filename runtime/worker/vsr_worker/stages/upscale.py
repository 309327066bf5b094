"""Upscale: decode one segment's chunk, keep the frames it owns, upscale, encode.

Output frames carry the source's exact timestamps (encoder time base = source time base).
Decode, inference and encode run in threads joined by bounded queues: the decode thread also
converts frames to RGB tensors, the inference threads convert their results back to YUV
frames, and the encode thread only encodes. A backend that serves concurrent callers (ncnn:
one per core; cuda: one per CUDA stream) gets that many inference threads, each on its own
frames, whose results are put back in order: no thread waits for another between frames.
Where the time went (start-up, model load, each thread's phases and busy fraction) is stored
with the segment's record (``vsr_worker.timings``).

Spot-safe: the frames are encoded into checkpoint parts of ``VSR_CHECKPOINT_FRAMES``
frames, each stored (with a small JSON record after it: frames, size, SHA-256, codec header;
see vsr_worker.integrity) as soon as it is complete. A restarted attempt checks the stored
parts, decodes past the frames of those that are intact and carries on; a damaged or missing
part is made again, with every part after it. Because part boundaries and encoder settings
are fixed, the result is identical to an uninterrupted run.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

import av
import torch

from vsr_client.contract import ErrorCode, Manifest, VsrError
from vsr_client.jobgraph import THREADS_ENV
from vsr_worker import errors, integrity, layout, storage
from vsr_worker.backends import make_runner
from vsr_worker.media.encode import add_video_encoder
from vsr_worker.media.frames import ColorSpec, frame_to_tensor, tensor_to_frame
from vsr_worker.media.mp4 import mp4_options, rescale_exact
from vsr_worker.media.probe import primary_video_stream
from vsr_worker.media.still import png_bytes
from vsr_worker.pipeline import ThreadedSink, threaded
from vsr_worker.progress import ProgressWriter
from vsr_worker.stages.common import load_split_index, read_record
from vsr_worker.timings import Timings, process_age

log = logging.getLogger(__name__)

# Fault injection for tests of spot reclaim: exit abruptly after storing this many parts.
FAULT_ENV = "VSR_FAULT_EXIT_AFTER_PARTS"


def worker_threads() -> int:
    return max(1, int(os.environ.get(THREADS_ENV) or os.cpu_count() or 1))


def batch_size(preferred: Optional[int] = None) -> int:
    """Frames per inference call: VSR_BATCH, else what the backend prefers, else 4."""
    return max(1, int(os.environ.get("VSR_BATCH") or preferred or 4))


def checkpoint_frames() -> int:
    return max(1, int(os.environ.get("VSR_CHECKPOINT_FRAMES", "240")))


# Upscaled YUV frames waiting for the encoder (12 MB each at 3840x2160, 8-bit).
ENCODE_QUEUE = 8


# One runner per model, scale, device and VSR_* settings per process: a worker given several
# segments loads its model once.
_RUNNERS: Dict[Tuple[Any, ...], Any] = {}
_startup_reported = False


def _runner(manifest: Manifest, timings: Timings) -> Any:
    settings = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("VSR_")))
    key = (manifest.model, manifest.scale, manifest.device, settings)
    if key not in _RUNNERS:
        # Before the backend exists: the ncnn backend then lowers torch's own threads to 1,
        # and that must hold for every later segment of this process too.
        torch.set_num_threads(worker_threads())
        with timings.phase("model_load"):
            # Tiled, batched inference on the manifest's backend (docs/models.md); same contract as a model.
            _RUNNERS[key] = make_runner(manifest.model, manifest.scale, manifest.device, workers=worker_threads())
    return _RUNNERS[key]


def run_upscale(manifest: Manifest, index: int) -> dict:
    global _startup_reported
    timings = Timings()
    if not _startup_reported:  # paid once per process, by its first segment
        _startup_reported = True
        age = process_age()
        if age is not None:
            timings.add("startup", age)
    split = load_split_index(manifest)
    segments = split["segments"]
    if not 0 <= index < len(segments):
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"segment index {index} outside 0..{len(segments) - 1}")
    seg = segments[index]
    info_uri = layout.part_info(manifest.work, index)
    done_parts = _stored_parts(manifest.work, index)
    if storage.exists(info_uri):
        done = _done_record(info_uri, index)
        if (
            done is not None
            and done.get("frames") == seg["frames"]
            and done.get("parts") == [p["part"] for p in done_parts]
        ):
            log.info("segment %d already upscaled (%d frames, parts intact): skipping", index, seg["frames"])
            return done
        storage.remove(info_uri)  # its parts are damaged or gone: this attempt makes them again
    progress = ProgressWriter(manifest.work, "upscale", index, total=seg["frames"])
    result: dict = {"index": index, "frames": 0, "parts": []}
    if seg["frames"]:
        started = time.perf_counter()
        upscaler = _SegmentUpscaler(manifest, seg, Fraction(split["time_base"]), progress, done_parts, timings)
        parts = upscaler.run()
        frames = sum(p["frames"] for p in parts)
        if frames != seg["frames"]:
            raise VsrError(
                ErrorCode.STAGE_FAILED,
                f"segment {index}: decoded {frames} owned frames, split counted {seg['frames']}",
            )
        result = {
            "index": index,
            "frames": frames,
            "parts": [p["part"] for p in parts],
            "resumed_parts": len(done_parts),
            # Seconds in the model per inference thread (they run side by side).
            "model_seconds": round(timings.seconds.get("inference", 0.0) / timings.pool_sizes.get("inference", 1), 4),
            "stage_seconds": round(time.perf_counter() - started, 4),
            "timings": timings.to_json(),
        }
    storage.write_json(info_uri, result)
    progress.finish(timings=timings.to_json())
    return result


def _done_record(uri: str, index: int) -> Optional[dict]:
    try:
        done = read_record(uri, f"upscaled/seg_{index:05d}.json")
    except VsrError as exc:
        log.warning("%s: making the segment again", exc.message)
        return None
    return done if isinstance(done, dict) else None


def _stored_parts(work: str, index: int) -> List[dict]:
    """Intact checkpoint parts a previous attempt stored, in order, up to the first gap.

    The first damaged part (content, size, frames or codec header differ from its record, or
    the record itself is damaged) and every part after it are deleted, to be made again.
    """
    parts: List[dict] = []
    for number in itertools.count():
        info_uri = layout.checkpoint_info(work, index, number)
        if not storage.exists(info_uri):
            break
        part_uri = layout.checkpoint(work, index, number)
        label = integrity.relative(work, part_uri)
        try:
            record = integrity.check_record(read_record(info_uri, label + " record"), label)
            if record["part"] != part_uri or record["number"] != number:
                raise errors.corrupt(f"{label}: its record describes another part")
            with integrity.fetched(part_uri, label) as path:
                integrity.check_part(record, path, label)
        except VsrError as exc:
            if exc.code != ErrorCode.CORRUPT_INTERMEDIATE:
                raise
            log.warning("%s: making it again", exc.message)
            break
        parts.append(record)
    _discard_parts(work, index, first=len(parts))
    return parts


_PART_NUMBER = re.compile(r"p(\d{5})\.")


def _discard_parts(work: str, index: int, first: int) -> None:
    """Delete the parts numbered ``first`` and up, their records and any temp files of theirs."""
    for uri in storage.list_prefix(layout.checkpoint_dir(work, index)):
        match = _PART_NUMBER.search(uri.rsplit("/", 1)[-1])
        if match and int(match.group(1)) >= first:
            storage.remove(uri)


def _owned_frames(
    container: av.container.InputContainer, tb: Fraction, lo: Optional[int], hi: Optional[int]
) -> Iterator[av.VideoFrame]:
    """Decoded frames whose pts, in the source's time base ``tb``, lies in ``[lo, hi)``.

    Each yielded frame's pts is set in ``tb`` (the chunk's container may use another).
    """
    vs = primary_video_stream(container)
    vs.thread_type = "AUTO"
    chunk_tb = Fraction(vs.time_base)
    try:
        for frame in container.decode(vs):
            if frame.pts is None:
                raise VsrError(ErrorCode.CORRUPT_INPUT, "decoded frame without a timestamp")
            pts = rescale_exact(frame.pts, chunk_tb, tb)
            if (lo is None or pts >= lo) and (hi is None or pts < hi):
                frame.pts = pts
                yield frame
    except av.error.FFmpegError as exc:
        if errors.is_no_space(exc):
            raise
        # The chunk has the size split wrote, and split copies the source's packets as they
        # are: a frame that does not decode is the source's.
        raise VsrError(ErrorCode.CORRUPT_INPUT, f"the video cannot be decoded: {exc.strerror}") from None


@contextlib.contextmanager
def _open_chunk(manifest: Manifest, seg: dict) -> Iterator[av.container.InputContainer]:
    """The segment's chunk, checked against what split recorded: damaged is corrupt_intermediate."""
    label = integrity.relative(manifest.work, seg["chunk"])
    with contextlib.ExitStack() as stack:
        path = stack.enter_context(integrity.fetched(seg["chunk"], label))
        integrity.check_chunk(seg, path, label)
        try:
            container = stack.enter_context(av.open(str(path)))
            primary_video_stream(container)
        except (av.error.FFmpegError, LookupError) as exc:
            if errors.is_no_space(exc):
                raise
            raise errors.corrupt(f"{label} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
        yield container


def _batches(frames: Iterator[av.VideoFrame], size: int) -> Iterator[list]:
    batch: list = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _PartWriter:
    """One checkpoint part: an encoder and an MP4 that is stored whole or not at all."""

    def __init__(
        self,
        uri: str,
        manifest: Manifest,
        source: av.VideoFrame,
        spec: ColorSpec,
        tb: Fraction,
        rate: Any,
        timings: Timings,
    ) -> None:
        """``source``: a decoded source frame, for the output size and colour tags."""
        self.uri = uri
        self.frames = 0
        self._timings = timings
        self._ctx = storage.output_file(uri)
        self._path = self._ctx.__enter__()
        self._out = av.open(str(self._path), "w", format="mp4", options=mp4_options(tb))
        self._enc = add_video_encoder(
            self._out,
            manifest.encode,
            source.width * manifest.scale,
            source.height * manifest.scale,
            tb,
            rate,
            spec,
            color_primaries=int(source.color_primaries or 2),
            color_trc=int(source.color_trc or 2),
        )

    @property
    def pix_fmt(self) -> str:
        return self._enc.codec_context.pix_fmt

    def encode(self, frame: Optional[av.VideoFrame]) -> None:
        with self._timings.phase("encode", "encode"):
            packets = self._enc.encode(frame)
        with self._timings.phase("mux", "encode"):
            for packet in packets:
                self._out.mux(packet)
        if frame is not None:
            self.frames += 1

    def finish(self, number: int, label: str) -> dict:
        """Flush, close and store the part; its record is taken from the file as written."""
        try:
            self.encode(None)
            with self._timings.phase("mux", "encode"):
                self._out.close()
            with self._timings.phase("verify", "encode"):
                record = integrity.part_record(number, self.uri, self._path, self.frames, label)
        except BaseException:
            self.abort()  # nothing of the part is stored, its temp file goes
            raise
        with self._timings.phase("storage", "encode"):
            self._ctx.__exit__(None, None, None)
        return record

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._out.close()
        with contextlib.suppress(Exception):
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


class _SegmentUpscaler:
    def __init__(
        self,
        manifest: Manifest,
        seg: dict,
        tb: Fraction,
        progress: ProgressWriter,
        done_parts: List[dict],
        timings: Timings,
    ) -> None:
        self.manifest, self.seg, self.tb, self.progress = manifest, seg, tb, progress
        self.timings = timings
        self.parts = list(done_parts)
        self._writer: Optional[_PartWriter] = None
        self._per_part = checkpoint_frames()
        self._fault_after = int(os.environ.get(FAULT_ENV) or 0)
        self._stored_here = 0
        self._new_part: Callable[[], _PartWriter]
        self._spec: Optional[ColorSpec] = None
        self._pix_fmt = ""

    def run(self) -> List[dict]:
        index = self.seg["index"]
        skip = sum(p["frames"] for p in self.parts)
        if self.parts:
            log.info("segment %d: resuming after %d stored part(s), skipping %d frame(s)", index, len(self.parts), skip)
            self.progress.advance(skip)
        if skip >= self.seg["frames"]:
            return self.parts
        model = _runner(self.manifest, self.timings)
        backend = getattr(getattr(model, "backend", None), "name", type(model).__name__)
        log.info("segment %d: model %s on backend %s", index, self.manifest.model, backend)
        with contextlib.ExitStack() as stack:
            with self.timings.phase("storage"):
                src = stack.enter_context(_open_chunk(self.manifest, self.seg))
            with self.timings.pipeline():
                self._pipeline(model, src, skip)
        return self.parts

    def _decode(self, frames: Iterator[av.VideoFrame]) -> Iterator[Tuple[av.VideoFrame, torch.Tensor]]:
        """Runs in the decode thread: decoded frames and their RGB tensors."""
        spec: Optional[ColorSpec] = None
        for frame in self.timings.timed(frames, "decode", "decode"):
            with self.timings.phase("colour_in", "decode"):
                spec = spec or ColorSpec.of(frame)
                tensor = frame_to_tensor(frame, spec)
            yield frame, tensor

    def _pipeline(self, model: Any, src: av.container.InputContainer, skip: int) -> None:
        index = self.seg["index"]
        rate = primary_video_stream(src).average_rate
        owned = _owned_frames(src, self.tb, self.seg["pts_lo"], self.seg["pts_hi"])
        # Skipped frames (a resumed attempt) are decoded only.
        decoded = threaded(self._decode(itertools.islice(owned, skip, None)), maxsize=8)
        sink: Optional[ThreadedSink] = None
        pool: Optional[ThreadPoolExecutor] = None
        try:
            head = next(decoded, None)
            if head is None:
                return
            first = head[0]
            spec = self._spec = ColorSpec.of(first)
            self._new_part = lambda: _PartWriter(
                layout.checkpoint(self.manifest.work, index, len(self.parts)),
                self.manifest,
                first,
                spec,
                self.tb,
                rate,
                self.timings,
            )
            with self.timings.phase("encode", "encode"):
                self._writer = self._new_part()
            self._pix_fmt = self._writer.pix_fmt
            workers = max(1, model.parallel)
            per_call = batch_size(model.frames_per_call)
            self.timings.pool_sizes["inference"] = workers
            sink = ThreadedSink(self._encode, maxsize=ENCODE_QUEUE)
            pool = ThreadPoolExecutor(workers, thread_name_prefix="inference")
            window: Deque[Future] = collections.deque()
            for number, batch in enumerate(_batches(itertools.chain([head], decoded), per_call)):
                window.append(pool.submit(self._infer, model, batch, number == 0))
                if len(window) > 2 * workers:  # enough queued that no inference thread idles
                    self._emit(window.popleft(), sink)
            while window:
                self._emit(window.popleft(), sink)
            sink.put(None)
            sink.close()
        finally:
            # Stop the inference, encoder and decoder threads before the containers they use
            # close: PyAV objects used after close crash the process (seen with a full disk).
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if sink is not None:
                sink.abort()
            decoded.close()
            if self._writer is not None:
                self._writer.abort()

    def _infer(self, model: Any, batch: list, first: bool) -> List[av.VideoFrame]:
        """Runs in an inference thread: the batch upscaled, as frames ready to encode."""
        assert self._spec is not None
        with torch.inference_mode():
            x = torch.stack([tensor for _, tensor in batch])
            with self.timings.phase("inference", "inference"):
                y = model(x)
            if first:
                self._debug_samples(batch, y)  # before y is scaled in place below
            out = []
            with self.timings.phase("colour_out", "inference"):
                for (src_frame, _), img in zip(batch, y):
                    frame = tensor_to_frame(img, self._spec, self._pix_fmt, consume=True)
                    frame.pts = src_frame.pts
                    frame.time_base = self.tb
                    out.append(frame)
            return out

    def _emit(self, result: "Future[List[av.VideoFrame]]", sink: ThreadedSink) -> None:
        """Hand a batch's upscaled frames to the encode thread, in order."""
        frames = result.result()
        for frame in frames:
            sink.put(frame)
        self.progress.advance(len(frames))

    def _encode(self, frame: Optional[av.VideoFrame]) -> None:
        """Runs in the encoder thread: frames into the current part; a full part is stored."""
        if frame is None:
            if self._writer is not None and self._writer.frames:
                self._store_part()
            return
        if self._writer is None:
            with self.timings.phase("encode", "encode"):
                self._writer = self._new_part()
        assert self._writer is not None
        self._writer.encode(frame)
        if self._writer.frames >= self._per_part:
            self._store_part()

    def _store_part(self) -> None:
        assert self._writer is not None
        writer, self._writer = self._writer, None
        number = len(self.parts)
        record = writer.finish(number, integrity.relative(self.manifest.work, writer.uri))
        with self.timings.phase("storage", "encode"):
            storage.write_json(layout.checkpoint_info(self.manifest.work, self.seg["index"], number), record)
        self.parts.append(record)
        self._stored_here += 1
        if self._fault_after and self._stored_here >= self._fault_after:
            log.warning("fault injection (%s): exiting after %d stored part(s)", FAULT_ENV, self._stored_here)
            logging.shutdown()
            os._exit(137)

    def _debug_samples(self, batch: list, upscaled: torch.Tensor) -> None:
        """task=debug: the segment's first frame before and after, as PNG."""
        if self.manifest.task != "debug":
            return
        index = self.seg["index"]
        before = batch[0][0].to_ndarray(format="rgb24")
        after = upscaled[0].detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        for name, image in (("before", before), ("after", after)):
            storage.write_bytes(layout.debug(self.manifest.work, f"seg_{index:05d}_{name}.png"), png_bytes(image))
