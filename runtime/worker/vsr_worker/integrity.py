"""Integrity records of the intermediates, and the checks made before anything trusts them.

Split records, per segment, its chunk's size and a digest of the timestamps of the frames
the segment owns. Upscale records, per checkpoint part, its size, SHA-256, frame count and
codec header (the hash of its extradata: SPS/PPS), taken from the finished file before it
is stored. Upscale's resume re-checks stored parts and makes a damaged one again; merge
checks every part before muxing and the merged file before it is put in place. A check that
fails is ``corrupt_intermediate`` (exit 74) and names the file relative to the job's work
prefix (no server paths).

Chunks carry a size, not a hash: a chunk can be most of the source (a gigabyte), and hashing
it would add a fifth to split's time; a truncated or swapped chunk changes its size, and one
that fails to open cannot be the source's fault (split wrote it).
"""

from __future__ import annotations

import contextlib
import hashlib
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Optional

import av

from vsr_client.codes import ErrorCode, VsrError
from vsr_worker import errors, storage
from vsr_worker.media.probe import primary_video_stream

_MASK = (1 << 64) - 1
PART_FIELDS = ("number", "frames", "part", "bytes", "sha256", "codec_header")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PtsDigest:
    """An order-free digest of a set of timestamps (a sum of 64-bit hashes).

    Split adds the pts of the frames a segment owns in decode order; merge adds the pts of
    the packets it takes from the parts in theirs: equal digests mean the same frames.
    """

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def add(self, pts: int) -> None:
        h = hashlib.blake2b(int(pts).to_bytes(8, "little", signed=True), digest_size=8).digest()
        self.value = (self.value + int.from_bytes(h, "little")) & _MASK

    def hex(self) -> str:
        return f"{self.value:016x}"


def relative(work: str, uri: str) -> str:
    """``uri`` as a key under the job's work prefix (what error messages name)."""
    prefix = work.rstrip("/") + "/"
    return uri[len(prefix) :] if uri.startswith(prefix) else Path(uri).name


@contextlib.contextmanager
def fetched(uri: str, label: str) -> Iterator[Path]:
    """A stored intermediate as a local path for the block; a missing one is corrupt."""
    with contextlib.ExitStack() as stack:
        try:
            path = stack.enter_context(storage.input_file(uri))
        except VsrError as exc:
            if exc.code != ErrorCode.INPUT_NOT_FOUND:
                raise
            raise errors.corrupt(f"{label} is missing") from None
        yield path


def _header(path: Path, label: str) -> tuple[int, str]:
    """(frames from the container's index, SHA-256 of the codec header) of a stored part."""
    try:
        with av.open(str(path)) as container:
            stream = primary_video_stream(container)
            frames = int(stream.frames or 0)
            extradata = bytes(stream.codec_context.extradata or b"")
    except LookupError:
        raise errors.corrupt(f"{label} holds no video stream") from None
    except av.error.FFmpegError as exc:
        if errors.is_no_space(exc):
            raise
        raise errors.corrupt(f"{label} cannot be read: {exc.strerror}") from None
    return frames, hashlib.sha256(extradata).hexdigest()


def part_record(number: int, uri: str, path: Path, frames: int, label: str) -> dict:
    """The sidecar of a finished part, from the file as written (before it is stored)."""
    stored_frames, codec_header = _header(path, label)
    if stored_frames != frames:  # the muxer lost packets (a write that failed quietly)
        raise VsrError(ErrorCode.STAGE_FAILED, f"{label}: encoded {frames} frames, the file holds {stored_frames}")
    return {
        "number": number,
        "frames": frames,
        "part": uri,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "codec_header": codec_header,
    }


def check_record(record: object, label: str) -> dict:
    """A part's sidecar as read back: a JSON object with every field."""
    if not isinstance(record, dict) or any(k not in record for k in PART_FIELDS):
        missing = [k for k in PART_FIELDS if not isinstance(record, dict) or k not in record]
        raise errors.corrupt(f"{label}: record lacks {', '.join(missing)}")
    return record


def check_part(record: dict, path: Path, label: str) -> None:
    """The part at ``path`` is the one its sidecar describes: size, hash, frames, codec header."""
    size = path.stat().st_size
    if size != record["bytes"]:
        raise errors.corrupt(f"{label} is {size} bytes, {record['bytes']} were stored")
    if sha256_file(path) != record["sha256"]:
        raise errors.corrupt(f"{label} does not match its SHA-256")
    frames, codec_header = _header(path, label)
    if frames != record["frames"]:
        raise errors.corrupt(f"{label} holds {frames} frames, its record says {record['frames']}")
    if codec_header != record["codec_header"]:
        raise errors.corrupt(f"{label} has another codec header than its record")


def check_chunk(seg: dict, path: Path, label: str) -> None:
    """A split chunk has the size split wrote (indexes of older jobs carry no size)."""
    expected: Optional[int] = seg.get("chunk_bytes")
    size = path.stat().st_size
    if expected is not None and size != expected:
        raise errors.corrupt(f"{label} is {size} bytes, split wrote {expected}")


def rescale_round(pts: int, src: Fraction, dst: Fraction) -> int:
    """``pts`` from time base ``src`` into ``dst``, rounded like FFmpeg's av_rescale_q."""
    value = Fraction(pts) * src / dst
    floor = value.numerator // value.denominator
    rest = value - floor
    return floor + (1 if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and value > 0) else 0)


def check_output_pts(actual: Iterable[int], expected: Iterable[int], label: str, shift_ok: bool = False) -> None:
    """The merged file's video timestamps are exactly those of the parts, frame for frame.

    ``shift_ok``: one constant offset for the whole video is allowed. The Matroska muxer moves
    every stream of a file by the same amount when one would start below zero (AAC priming in
    an MP4 source's audio), which keeps A/V sync; MP4 keeps exact times through its edit list.
    """
    got, want = sorted(actual), sorted(expected)
    if len(got) != len(want):
        raise VsrError(ErrorCode.STAGE_FAILED, f"{label} holds {len(got)} video frames, the parts {len(want)}")
    if shift_ok and got:
        offset = got[0] - want[0]
        want = [w + offset for w in want]
    for g, w in zip(got, want):
        if g != w:
            raise VsrError(ErrorCode.STAGE_FAILED, f"{label}: a frame has timestamp {g}, expected {w}")
