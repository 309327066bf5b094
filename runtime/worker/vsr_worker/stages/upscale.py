"""Upscale: decode one segment's chunk, keep the frames it owns, upscale, encode.

Output frames carry the source's exact timestamps (encoder time base = source time base).
Decode, inference and encode run in three threads joined by bounded queues.
"""

from __future__ import annotations

import logging
import os
import time
from fractions import Fraction
from typing import Iterator, Optional

import av
import torch

from vsr_client.contract import ErrorCode, Manifest, VsrError
from vsr_worker import layout, storage
from vsr_worker.backends import make_runner
from vsr_worker.media.encode import add_video_encoder
from vsr_worker.media.frames import ColorSpec, frame_to_tensor, tensor_to_frame
from vsr_worker.media.mp4 import mp4_options, rescale_exact
from vsr_worker.media.probe import primary_video_stream
from vsr_worker.pipeline import ThreadedSink, threaded
from vsr_worker.progress import ProgressWriter
from vsr_worker.stages.common import load_split_index

log = logging.getLogger(__name__)


def worker_threads() -> int:
    return max(1, int(os.environ.get("VSR_THREADS") or os.cpu_count() or 1))


def batch_size() -> int:
    return max(1, int(os.environ.get("VSR_BATCH", "4")))


def run_upscale(manifest: Manifest, index: int) -> dict:
    split = load_split_index(manifest)
    segments = split["segments"]
    if not 0 <= index < len(segments):
        raise VsrError(ErrorCode.INVALID_ARGUMENT, f"segment index {index} outside 0..{len(segments) - 1}")
    seg = segments[index]
    info_uri = layout.part_info(manifest.work, index)
    if storage.exists(info_uri) and storage.exists(layout.part(manifest.work, index)):
        done = storage.read_json(info_uri)
        if done.get("frames") == seg["frames"]:
            log.info("segment %d already upscaled (%d frames): skipping", index, seg["frames"])
            return done
    progress = ProgressWriter(manifest.work, "upscale", index, total=seg["frames"])
    if seg["frames"] == 0:
        result = {"index": index, "frames": 0, "part": None}
    else:
        torch.set_num_threads(worker_threads())
        started = time.perf_counter()
        frames, model_seconds = _upscale_chunk(manifest, seg, Fraction(split["time_base"]), progress)
        timings = {"model_seconds": round(model_seconds, 4), "stage_seconds": round(time.perf_counter() - started, 4)}
        if frames != seg["frames"]:
            raise VsrError(
                ErrorCode.STAGE_FAILED,
                f"segment {index}: decoded {frames} owned frames, split counted {seg['frames']}",
            )
        result = {"index": index, "frames": frames, "part": layout.part(manifest.work, index), **timings}
    storage.write_json(info_uri, result)
    progress.finish()
    return result


def _owned_frames(
    container: av.container.InputContainer, tb: Fraction, lo: Optional[int], hi: Optional[int]
) -> Iterator[av.VideoFrame]:
    """Decoded frames whose pts, in the source's time base ``tb``, lies in ``[lo, hi)``.

    Each yielded frame's pts is set in ``tb`` (the chunk's container may use another).
    """
    vs = primary_video_stream(container)
    vs.thread_type = "AUTO"
    chunk_tb = Fraction(vs.time_base)
    for frame in container.decode(vs):
        if frame.pts is None:
            raise VsrError(ErrorCode.CORRUPT_INPUT, "decoded frame without a timestamp")
        pts = rescale_exact(frame.pts, chunk_tb, tb)
        if (lo is None or pts >= lo) and (hi is None or pts < hi):
            frame.pts = pts
            yield frame


def _batches(frames: Iterator[av.VideoFrame], size: int) -> Iterator[list]:
    batch: list = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _upscale_chunk(manifest: Manifest, seg: dict, tb: Fraction, progress: ProgressWriter) -> tuple[int, float]:
    """Upscale the frames ``seg`` owns into its part; returns (frames, seconds in the model)."""
    # Tiled, batched inference on the manifest's backend (docs/models.md); same contract as a model.
    model = make_runner(manifest.model, manifest.scale, manifest.device)
    scale = manifest.scale
    count = 0
    model_seconds = 0.0
    with storage.input_file(seg["chunk"]) as chunk_path, av.open(str(chunk_path)) as src:
        vs = primary_video_stream(src)
        rate = vs.average_rate
        with storage.output_file(layout.part(manifest.work, seg["index"])) as part_path:  # noqa: SIM117
            with av.open(str(part_path), "w", format="mp4", options=mp4_options(tb)) as out:
                decoded = threaded(_owned_frames(src, tb, seg["pts_lo"], seg["pts_hi"]), maxsize=8)
                first = next(decoded, None)
                if first is None:
                    return 0, 0.0
                spec = ColorSpec.of(first)
                enc = add_video_encoder(
                    out,
                    manifest.encode,
                    first.width * scale,
                    first.height * scale,
                    tb,
                    rate,
                    spec,
                    color_primaries=int(first.color_primaries or 2),
                    color_trc=int(first.color_trc or 2),
                )

                def encode(frame: Optional[av.VideoFrame]) -> None:
                    for packet in enc.encode(frame):
                        out.mux(packet)

                sink = ThreadedSink(encode, maxsize=8)

                def all_frames() -> Iterator[av.VideoFrame]:
                    yield first
                    yield from decoded

                with torch.inference_mode():
                    for batch in _batches(all_frames(), batch_size()):
                        x = torch.stack([frame_to_tensor(f, spec) for f in batch])
                        t = time.perf_counter()
                        y = model(x)
                        model_seconds += time.perf_counter() - t
                        for src_frame, img in zip(batch, y):
                            out_frame = tensor_to_frame(img, spec, enc.codec_context.pix_fmt)
                            out_frame.pts = src_frame.pts
                            out_frame.time_base = tb
                            sink.put(out_frame)
                        count += len(batch)
                        progress.advance(len(batch))
                sink.put(None)  # flush the encoder
                sink.close()
    return count, model_seconds
