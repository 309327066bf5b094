"""Bad input gets one clear error line, a distinct exit code, and leaves nothing behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.worker_cli import run_worker
from vsr_client.contract import ExitCode


def _audio_only(d: Path) -> Path:
    p = d / "audio.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(p)], check=True
    )
    return p


def _truncated(d: Path, faststart: bool, make_case) -> Path:
    src = make_case("cfr25")
    p = d / f"truncated-{faststart}.mp4"
    if faststart:
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c", "copy", "-movflags", "+faststart", str(p)], check=True
        )
        data = p.read_bytes()
    else:
        data = src.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _garbled_frames(d: Path, make_case) -> Path:
    """Container intact, frame data damaged: only decoding (in upscale) finds it."""
    data = bytearray(make_case("cfr25").read_bytes())
    start = data.find(b"mdat") + 3000
    data[start : start + 4000] = bytes(b ^ 0xFF for b in data[start : start + 4000])
    p = d / "garbled.mp4"
    p.write_bytes(bytes(data))
    return p


BAD_INPUTS = {
    # name: (make input, extra args, exit code, error code)
    "text_file": (
        lambda d, mc: (d / "notes.txt").write_text("not a video\n" * 50) and d / "notes.txt",
        [],
        ExitCode.DATA,
        "not_a_video",
    ),
    "audio_only": (lambda d, mc: _audio_only(d), [], ExitCode.DATA, "audio_only"),
    "zero_bytes": (
        lambda d, mc: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4",
        [],
        ExitCode.DATA,
        "empty_input",
    ),
    "missing": (lambda d, mc: d / "nope.mp4", [], ExitCode.NO_INPUT, "input_not_found"),
    "truncated_moov_at_end": (lambda d, mc: _truncated(d, False, mc), [], ExitCode.DATA, "corrupt_input"),
    "truncated_faststart": (
        lambda d, mc: _truncated(d, True, mc),
        ["--segment-time", "1"],
        ExitCode.DATA,
        "corrupt_input",
    ),
    "garbled_frames": (_garbled_frames, ["--segment-time", "1", "--model", "bicubic"], ExitCode.DATA, "corrupt_input"),
    "scale_3": (lambda d, mc: mc("cfr25"), ["--scale", "3"], ExitCode.USAGE, "invalid_scale"),
    "segment_time_zero": (lambda d, mc: mc("cfr25"), ["--segment-time", "0"], ExitCode.USAGE, "invalid_segment_time"),
    "segment_time_negative": (
        lambda d, mc: mc("cfr25"),
        ["--segment-time", "-2"],
        ExitCode.USAGE,
        "invalid_segment_time",
    ),
    "unknown_model": (lambda d, mc: mc("cfr25"), ["--model", "no-such-model"], ExitCode.USAGE, "invalid_model"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_cleanly(case, tmp_path, make_case):
    make, extra, exit_code, error_code = BAD_INPUTS[case]
    src = make(tmp_path, make_case)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "result.mp4"
    proc = run_worker("run", str(src), "-o", str(out), "-q", *extra, cwd=tmp_path)
    assert proc.returncode == int(exit_code), proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"vsr-worker: error [{error_code}]: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(out_dir.iterdir()) == []  # no output, no temp file, no work directory


def test_existing_output_is_not_replaced_without_overwrite(tmp_path, make_case):
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"keep me")
    proc = run_worker("run", str(make_case("cfr25")), "-o", str(out), "-q", cwd=tmp_path)
    assert proc.returncode == int(ExitCode.USAGE)
    assert "[output_exists]" in proc.stderr
    assert out.read_bytes() == b"keep me"


def test_usage_errors_are_one_line_with_usage_exit_code(tmp_path):
    proc = run_worker("run", "x.mp4", cwd=tmp_path)  # -o missing
    assert proc.returncode == int(ExitCode.USAGE)
    assert proc.stderr.strip().splitlines()[-1].startswith("vsr-worker: error [invalid_argument]:")


@pytest.mark.parametrize("name", ["out.avi", "out.webm", "out"])
def test_run_refuses_an_output_extension_that_names_no_supported_container(name, tmp_path, make_case):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = run_worker("run", str(make_case("cfr25")), "-o", str(out_dir / name), "-q", cwd=tmp_path)
    assert proc.returncode == int(ExitCode.USAGE), proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("vsr-worker: error [invalid_argument]: output ") and ".mp4, .mov, .mkv" in last
    assert list(out_dir.iterdir()) == []
