"""Merge: join the upscaled parts without re-encoding and carry every other source stream.

Video packets come from the parts in order; audio, subtitle and data packets are copied
bit-exact from the source; both are interleaved by decode time. The result is written to
a temporary name and renamed (or uploaded) only when complete.

Nothing damaged is merged (vsr_worker.integrity): every part must match its record (size
before muxing starts; SHA-256, frame count and codec header on a thread beside the mux, all
before the result may be published), and while muxing, its timestamps must be the ones split
found for its segment. The merged file is read back before it is put in place: its video
timestamps must be the parts', frame for frame. A damaged part fails the
job with ``corrupt_intermediate`` and stays where it is, with everything else of the job, for
upscale's next attempt to make again.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, List, NamedTuple, Optional

import av

from vsr_client.codes import OUTPUT_FORMATS, ErrorCode, VsrError
from vsr_worker import errors, integrity, layout, storage
from vsr_worker.integrity import PtsDigest
from vsr_worker.media.mp4 import DISCARD_ALL, mp4_options, rescale_exact
from vsr_worker.media.probe import open_video, primary_video_stream
from vsr_worker.progress import ProgressWriter
from vsr_worker.stages.common import load_split_index, read_record
from vsr_worker.timings import Timings, process_age

if TYPE_CHECKING:
    from vsr_client.contract import Manifest  # or the light vsr_client.manifest_view.ManifestView

log = logging.getLogger(__name__)


def output_format(uri: str) -> str:
    """The container the output's extension names (callers refuse others; MP4 if one slips by)."""
    return OUTPUT_FORMATS.get(Path(uri).suffix.lower(), "mp4")


def run_merge(manifest: Manifest) -> dict:
    timings = Timings()
    age = process_age()
    if age is not None:
        timings.add("startup", age)
    done = _already_merged(manifest)
    if done is not None:
        log.info("job %s already merged into %s: nothing to do", manifest.job_id, done["output"])
        return done
    split = load_split_index(manifest)
    records = [r for seg in split["segments"] for r in _part_records(manifest, seg)]
    progress = ProgressWriter(manifest.work, "merge", total=split["frames"])
    output = manifest.output
    fmt = output_format(output)
    with contextlib.ExitStack() as stack:
        with timings.phase("storage"):
            src_path = stack.enter_context(storage.input_file(manifest.source))
            parts = [stack.enter_context(integrity.fetched(r.record["part"], r.label)) for r in records]  # once
        checks = stack.enter_context(_PartChecks(records, parts))
        try:
            written = _write(manifest, split, src_path, parts, checks, output, fmt, progress, timings)
        except _NeedsMatroska as exc:
            # MP4 cannot hold one of the source's streams (e.g. SubRip/ASS subtitles, PCM):
            # keep every stream and switch container rather than drop anything.
            output = storage.with_suffix(output, ".mkv")
            log.warning("%s; writing Matroska to %s instead", exc, output)
            written = _write(manifest, split, src_path, parts, checks, output, "matroska", progress, timings)
    result = {
        "output": output,
        "format": written["format"],
        "frames": written["frames"],
        "segments": len(split["segments"]),
        "streams": written["streams"],
        "warnings": written["warnings"],
    }
    with timings.phase("storage"):
        storage.write_json(layout.result(manifest.work), result)
        if manifest.task == "inference" and not manifest.keep_intermediates:
            # The result is safe: drop the segments and parts; manifest, progress and result stay.
            for prefix in (layout.split_dir(manifest.work), layout.upscaled_dir(manifest.work)):
                storage.remove_tree(prefix)
    progress.finish(timings=timings.to_json())
    return result


class _Part(NamedTuple):
    record: dict
    segment: dict
    label: str  # its key under the work prefix, for messages


def _part_records(manifest: Manifest, seg: dict) -> List[_Part]:
    """A segment's parts as upscale recorded them; the records must agree with split's index."""
    index = seg["index"]
    info_uri = layout.part_info(manifest.work, index)
    if not storage.exists(info_uri):
        raise VsrError(ErrorCode.STAGE_FAILED, f"segment {index} has not been upscaled")
    info_label = integrity.relative(manifest.work, info_uri)
    info = read_record(info_uri, info_label)
    if not isinstance(info, dict) or not isinstance(info.get("parts"), list) or info.get("frames") != seg["frames"]:
        raise errors.corrupt(f"{info_label} does not describe the {seg['frames']} frames split found")
    parts = []
    for number, uri in enumerate(info["parts"]):
        label = integrity.relative(manifest.work, layout.checkpoint(manifest.work, index, number))
        record_uri = layout.checkpoint_info(manifest.work, index, number)
        record = integrity.check_record(read_record(record_uri, label + " record"), label)
        if uri != record["part"] or record["number"] != number:
            raise errors.corrupt(f"{label}: its record describes another part")
        parts.append(_Part(record, seg, label))
    if sum(p.record["frames"] for p in parts) != seg["frames"]:
        raise errors.corrupt(f"the parts of segment {index} do not hold its {seg['frames']} frames")
    return parts


class _PartChecks:
    """Every part against its record (size, SHA-256, frame count, codec header).

    Sizes are compared before anything is muxed; the hashes and headers are checked on a
    thread beside the mux (hashlib and FFmpeg let go of the GIL), which hides most of their
    cost. Nothing is published before every check has passed: ``wait`` runs before the
    merged file is read back and put in place. A mux that fails on a damaged part reports
    the damage (``corrupt_intermediate``), not the demuxer's complaint about it.
    """

    def __init__(self, records: List[_Part], paths: List[Path]) -> None:
        self.records = records
        for record, path in zip(records, paths):
            size = path.stat().st_size
            if size != record.record["bytes"]:
                raise errors.corrupt(f"{record.label} is {size} bytes, {record.record['bytes']} were stored")
        workers = max(1, min(len(paths), (os.cpu_count() or 2) - 1))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
        self._checks = [
            self._pool.submit(integrity.check_part, r.record, path, r.label) for r, path in zip(records, paths)
        ]

    def wait(self) -> None:
        """Raise the first damaged part's error, in part order."""
        for check in self._checks:
            check.result()

    def __enter__(self) -> "_PartChecks":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _already_merged(manifest: Manifest) -> Optional[dict]:
    """A retried merge whose result is complete returns it instead of redoing the work."""
    uri = layout.result(manifest.work)
    if not storage.exists(uri):
        return None
    result = storage.read_json(uri)
    return result if storage.exists(result["output"]) else None


class _NeedsMatroska(Exception):
    pass


def _write(
    manifest: Manifest,
    split: dict,
    src_path: Path,
    parts: list,
    checks: _PartChecks,
    output: str,
    fmt: str,
    progress: ProgressWriter,
    timings: Timings,
) -> dict:
    probe = split["probe"]
    with open_video(src_path) as source:
        src_video = source.streams[probe["video_index"]]
        others = [s for s in source.streams if s.index != src_video.index]
        try:
            frames = _mux(split, source, src_video, others, parts, checks, output, fmt, progress, timings)
        except _NeedsMatroska:
            raise
        except Exception:
            checks.wait()  # a damaged part explains the failure better than what it caused
            raise
    return {"format": fmt, "frames": frames, "streams": 1 + len(others), "warnings": []}


def _mux(
    split: dict,
    source: av.container.InputContainer,
    src_video: av.stream.Stream,
    others: list,
    parts: list,
    checks: _PartChecks,
    output: str,
    fmt: str,
    progress: ProgressWriter,
    timings: Timings,
) -> int:
    """The merged file, checked and then put in place; returns its frame count."""
    tb = Fraction(split["time_base"])
    probe = split["probe"]
    with contextlib.ExitStack() as stack:
        part_containers = [stack.enter_context(av.open(str(p))) for p in parts]
        _check_joinable(part_containers)
        with storage.output_file(output) as tmp:
            opts = {}
            if fmt in ("mp4", "mov"):
                counts = [s.frames for s in others]
                samples = split["frames"] + sum(counts) if all(counts) else None
                opts = mp4_options(tb, faststart=True, samples=samples, tracks=1 + len(others))
            with av.open(str(tmp), "w", format=fmt, options=opts) as out:
                try:
                    v_out, mapping = _add_streams(out, source, src_video, others, part_containers[0], probe)
                    out.start_encoding()
                except (av.error.FFmpegError, ValueError) as exc:
                    if fmt != "matroska":
                        raise _NeedsMatroska(f"{fmt} cannot hold the source's streams ({exc})") from None
                    raise VsrError(ErrorCode.UNSUPPORTED_CODEC, f"cannot write the source's streams: {exc}") from None
                taken = _TakenFrames(checks.records, tb)
                packets = heapq.merge(
                    _video_packets(part_containers, v_out, taken), _source_packets(source, others, mapping)
                )
                clock = time.perf_counter
                demuxing = muxing = 0.0
                mark = clock()
                for _, _, packet, target in packets:  # timed inline: a with-block per packet costs more
                    muxed = clock()
                    packet.stream = target
                    out.mux(packet)
                    demuxing, muxing, mark = demuxing + muxed - mark, muxing + clock() - muxed, clock()
                    if target is v_out:
                        progress.advance()
                timings.add("demux", demuxing)
                closing = clock()
            timings.add("mux", muxing + time.perf_counter() - closing)  # with the trailer
            taken.finish()
            frames = len(taken.pts)
            if frames != split["frames"]:
                raise VsrError(ErrorCode.STAGE_FAILED, f"merged {frames} frames, source has {split['frames']}")
            with timings.phase("verify"):
                checks.wait()  # every part intact: only now may the result be put in place
                _check_output(tmp, taken.pts, tb, fmt)
            stored = time.perf_counter()
        timings.add("storage", time.perf_counter() - stored)  # rename or upload
    return frames


class _TakenFrames:
    """Checks each video packet merge takes from the parts against its segment, as it goes."""

    def __init__(self, parts: List[_Part], tb: Fraction) -> None:
        self.parts, self.tb = parts, tb
        self.counts = [0] * len(parts)
        self.digests: Dict[int, PtsDigest] = {}
        self.pts: List[int] = []  # in the source's time base

    def take(self, number: int, pts: Optional[int]) -> None:
        """``pts``: the packet's, in the source's time base (``_video_packets`` converts)."""
        part = self.parts[number]
        if pts is None:
            raise errors.corrupt(f"{part.label} has a frame without a timestamp")
        lo, hi = part.segment["pts_lo"], part.segment["pts_hi"]
        if (lo is not None and pts < lo) or (hi is not None and pts >= hi):
            raise errors.corrupt(f"{part.label} holds a frame of another segment (at {float(pts * self.tb):.3f} s)")
        self.counts[number] += 1
        self.digests.setdefault(part.segment["index"], PtsDigest()).add(pts)
        self.pts.append(pts)

    def finish(self) -> None:
        for count, part in zip(self.counts, self.parts):
            if count != part.record["frames"]:
                raise errors.corrupt(f"{part.label} holds {count} frames, its record says {part.record['frames']}")
        for seg in {p.segment["index"]: p.segment for p in self.parts}.values():
            want = seg.get("pts_digest")  # indexes of older jobs have none
            if want is not None and self.digests[seg["index"]].hex() != want:
                raise errors.corrupt(f"the parts of segment {seg['index']} do not hold the frames split found")


def _check_output(path: Path, taken: List[int], tb: Fraction, fmt: str) -> None:
    """The merged file holds exactly the parts' frames, each at its timestamp."""
    with av.open(str(path)) as container:
        video = primary_video_stream(container)
        for stream in container.streams:
            if stream is not video:
                stream.discard = DISCARD_ALL
        out_tb = Fraction(video.time_base)
        actual = [p.pts for p in container.demux(video) if p.size]
    expected = taken if out_tb == tb else [integrity.rescale_round(pts, tb, out_tb) for pts in taken]
    integrity.check_output_pts(actual, expected, "the merged output", shift_ok=fmt == "matroska")


def _add_streams(out, source, src_video, others: list, part, probe: dict) -> tuple:
    """Output streams: the upscaled video (from a part) then every other source stream."""
    out.metadata.update(dict(source.metadata))
    v_out = out.add_stream_from_template(primary_video_stream(part))
    v_out.time_base = src_video.time_base
    v_out.metadata.update(dict(src_video.metadata))
    _copy_disposition(src_video, v_out)
    if probe.get("rotation"):
        v_out.set_display_rotation(probe["rotation"])
    mapping = {}
    for s in others:
        o = out.add_stream_from_template(s)
        o.time_base = s.time_base
        o.metadata.update(dict(s.metadata))
        _copy_disposition(s, o)
        mapping[s.index] = o
    return v_out, mapping


def _copy_disposition(src: av.stream.Stream, dst: av.stream.Stream) -> None:
    try:
        dst.disposition = src.disposition
    except (AttributeError, TypeError, ValueError):  # older PyAV: read-only
        pass


def _decode_time(packet: av.Packet, num: int, den: int) -> float:
    """Seconds, as a float (``num/den``: the stream's time base, read once per stream rather
    than as a Fraction per packet): only the interleaving order depends on it."""
    ts = packet.dts if packet.dts is not None else packet.pts
    return (ts or 0) * num / den


def _video_packets(parts: list, target: av.stream.Stream, taken: _TakenFrames) -> Iterator[tuple]:
    seq = 0
    for number, part in enumerate(parts):
        vs = primary_video_stream(part)
        tb = Fraction(vs.time_base)
        same_tb = tb == taken.tb  # upscale writes parts in the source's time base: no Fractions per packet
        for packet in part.demux(vs):
            if packet.size == 0:
                continue
            pts = packet.pts
            taken.take(number, pts if same_tb or pts is None else rescale_exact(pts, tb, taken.tb))
            seq += 1
            yield _decode_time(packet, tb.numerator, tb.denominator), seq, packet, target


def _source_packets(source: av.container.InputContainer, streams: list, mapping: dict) -> Iterator[tuple]:
    if not streams:
        return
    seq = 0
    for stream in source.streams:
        if stream not in streams:
            stream.discard = DISCARD_ALL  # the demuxer then skips the source's video data
    bases = {s.index: Fraction(s.time_base) for s in streams}
    for packet in source.demux(*streams):
        if packet.size == 0:
            continue
        seq += 1
        tb = bases[packet.stream.index]
        # Ties go to video (sequence numbers start lower there), a stable choice.
        yield _decode_time(packet, tb.numerator, tb.denominator), (1 << 62) + seq, packet, mapping[packet.stream.index]


def _check_joinable(parts: list) -> None:
    """Parts join without re-encoding only if their codec headers (SPS/PPS) are identical."""
    first: Optional[bytes] = None
    for i, part in enumerate(parts):
        cc = primary_video_stream(part).codec_context
        extradata = bytes(cc.extradata or b"")
        if first is None:
            first = extradata
        elif extradata != first:
            raise VsrError(
                ErrorCode.STAGE_FAILED, f"upscaled part {i} was encoded with different settings and cannot be joined"
            )
