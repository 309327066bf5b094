"""Every kind of source through split -> upscale[N] -> merge, checked with ffprobe/ffmpeg.

For each case: same frame count and per-frame timestamps as the source, scale x the size,
every other stream bit-exact with its language, and each output frame is the source frame
with the same index (the left-half grey level encodes it).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests import oracle
from tests.media_factory import CASES
from tests.pipeline_runner import run_inline

_results: dict[str, tuple[Path, Path, dict]] = {}


@pytest.fixture(scope="module")
def upscaled(make_case, tmp_path_factory):
    def get(name: str) -> tuple[Path, Path, dict]:
        if name not in _results:
            spec = CASES[name]
            src = make_case(name)
            work = tmp_path_factory.mktemp(f"work-{name}")
            result = run_inline(src, work / "out.mp4", work / "job", scale=spec.scale, segment_time=spec.segment_time)
            _results[name] = (src, Path(result["output"]), result)
        return _results[name]

    return get


def _video(streams: list[dict]) -> dict:
    return next(s for s in streams if s["codec_type"] == "video")


@pytest.mark.parametrize("name", list(CASES))
def test_every_frame_keeps_its_timestamp(upscaled, name):
    src, out, _ = upscaled(name)
    src_times = oracle.video_frame_times(src)
    out_times = oracle.video_frame_times(out)
    assert len(out_times) == len(src_times) > 0
    assert out_times == src_times


@pytest.mark.parametrize("name", list(CASES))
def test_output_is_scale_times_the_input(upscaled, name):
    src, out, _ = upscaled(name)
    spec = CASES[name]
    s, o = _video(oracle.streams(src)), _video(oracle.streams(out))
    assert (o["width"], o["height"]) == (s["width"] * spec.scale, s["height"] * spec.scale)
    assert o["codec_name"] == "h264"
    expected_fmt = "yuv420p10le" if "10" in s["pix_fmt"] else "yuv420p"
    assert o["pix_fmt"] == expected_fmt


@pytest.mark.parametrize("name", list(CASES))
def test_other_streams_are_copied_bit_exact(upscaled, name):
    src, out, _ = upscaled(name)
    s_streams, o_streams = oracle.streams(src), oracle.streams(out)
    assert [s["codec_type"] for s in o_streams] == [s["codec_type"] for s in s_streams]
    for s, o in zip(s_streams, o_streams):
        assert s.get("tags", {}).get("language") == o.get("tags", {}).get("language")
        if s["codec_type"] == "video":
            continue
        assert o["codec_name"] == s["codec_name"]
        assert oracle.packet_hashes(out, o["index"]) == oracle.packet_hashes(src, s["index"])


@pytest.mark.parametrize("name", list(CASES))
def test_no_frame_lost_or_duplicated_at_segment_boundaries(upscaled, name):
    src, out, _ = upscaled(name)
    s, o = _video(oracle.streams(src)), _video(oracle.streams(out))
    src_codes = oracle.frame_codes(oracle.gray_frames(src, s["width"], s["height"]))
    out_codes = oracle.frame_codes(oracle.gray_frames(out, o["width"], o["height"]))
    # The source's codes step by at least 20 levels frame to frame, so a lost, repeated or
    # reordered frame cannot hide within the tolerance below.
    assert len(set(src_codes[:200])) == min(len(src_codes), 200)
    assert min(abs(a - b) for a, b in itertools.pairwise(src_codes)) >= 20
    assert len(out_codes) == len(src_codes)
    worst = max(abs(a - b) for a, b in zip(out_codes, src_codes))
    assert worst <= 3, f"frame index code off by {worst}"


def test_several_segments_were_planned(upscaled):
    """The matrix really exercises segment boundaries (not one segment per video)."""
    counts = {name: upscaled(name)[2]["segments"] for name in ("cfr25", "long_gop", "vfr")}
    assert all(c >= 3 for c in counts.values()), counts


def test_rotation_is_kept(upscaled):
    _, out, _ = upscaled("rotated")
    side = _video(oracle.streams(out)).get("side_data_list", [])
    assert any(abs(d.get("rotation", 0)) == 90 for d in side), side


def test_matroska_only_streams_switch_the_container_instead_of_dropping(upscaled):
    _, out, result = upscaled("mkv_srt")
    assert out.suffix == ".mkv" and result["format"] == "matroska"
    assert [s["codec_name"] for s in oracle.streams(out)] == ["h264", "aac", "subrip"]


def test_output_is_faststart_mp4(upscaled):
    _, out, _ = upscaled("cfr25")
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


def test_long_gop_chunks_start_at_the_covering_keyframe(upscaled):
    """With one GOP for the whole video, every chunk starts at frame 0 and stops at its last frame."""
    _, _, result = upscaled("long_gop")
    assert result["frames"] == 125


def test_inference_job_leaves_no_intermediates_and_merge_is_idempotent(make_case, tmp_path):
    from vsr_worker import cli

    work = tmp_path / "job"
    result = run_inline(make_case("no_audio"), tmp_path / "out.mp4", work, segment_time=2.0)
    assert sorted(p.name for p in work.iterdir()) == ["manifest.json", "progress", "result.json"]
    out = Path(result["output"])
    before = (out.stat().st_mtime_ns, out.read_bytes())
    assert cli.main(["merge", "--manifest", str(work / "manifest.json")]) == 0  # a retried merge
    assert (out.stat().st_mtime_ns, out.read_bytes()) == before


def test_small_checkpoints_give_the_same_frames(make_case, tmp_path, monkeypatch):
    """Parts of 7 frames (several per segment) join into the same frame-exact result."""
    monkeypatch.setenv("VSR_CHECKPOINT_FRAMES", "7")
    src = make_case("ntsc_bframes")
    work = tmp_path / "job"
    result = run_inline(src, tmp_path / "out.mp4", work, segment_time=2.0)
    assert oracle.video_frame_times(Path(result["output"])) == oracle.video_frame_times(src)
