"""Split and merge speed on a >= 1 GB 1080p H.264 file, and end-to-end overhead on a clip.

Everything is measured side by side in one run, as ratios, because shared machines are
noisy:
  * split time and merge time against `ffmpeg -i IN -map 0 -c copy OUT` and against a plain
    copy of the same bytes (all with a warm page cache); each stage's process start-up
    (interpreter, imports, manifest: the ``startup`` its own record reports) separately;
  * on a short clip, `vsr-worker run` wall time / the sum of its upscale stages' model time.

Upscaling 1 GB of 1080p is out of reach on a CPU, so the merge is fed stand-in parts: each
segment's owned packets, stream-copied from its chunk (prepared untimed). It then remuxes
as many bytes as the source's video, plus the source's audio, exactly as a real merge does.

    python bench/bench_pipeline.py [--size-gb 1.0] [--repeat 3] [--keep]
Writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vsr_client.contract import Manifest, plan_segments  # noqa: E402
from vsr_worker import layout, storage  # noqa: E402
from vsr_worker.integrity import part_record  # noqa: E402
from vsr_worker.media.mp4 import mp4_options, rescale_exact  # noqa: E402
from vsr_worker.media.probe import probe  # noqa: E402

WORKER = [sys.executable, "-m", "vsr_worker"]


def sh(cmd: list[str]) -> float:
    """Wall time of ``cmd``, started with no dirty pages pending: otherwise whichever command
    runs after a large write pays for flushing it (seen: ffmpeg -c copy 0.8 s -> 2.8 s)."""
    os.sync()
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"{cmd} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def make_big_source(path: Path, size_gb: float) -> None:
    """10 s of high-bitrate 1080p25 with audio, looped by stream copy to the wanted size."""
    clip = path.with_name("clip.mp4")
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=25:duration=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=10:sample_rate=48000",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "4",
            "-g",
            "50",
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-shortest",
            str(clip),
        ],
        check=True,
    )
    loops = max(1, int(size_gb * 1e9 / clip.stat().st_size + 0.999))
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-stream_loop",
            str(loops - 1),
            "-i",
            str(clip),
            "-map",
            "0",
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
    )
    clip.unlink()


def write_manifest(src: Path, work: Path, out: Path, segment_time: float) -> str:
    info = probe(src)
    # keep_intermediates: the merge is timed as the join alone; deleting the job's segments
    # afterwards (what an inference job also does) is not part of what ffmpeg -c copy does.
    manifest = Manifest(
        keep_intermediates=True,
        job_id="bench",
        source=str(src),
        work=str(work),
        output=str(out),
        model="bicubic",
        plan=plan_segments(info.duration, segment_time),
    )
    uri = layout.manifest(str(work))
    storage.write_json(uri, manifest.model_dump(mode="json"))
    return uri


def chunks_as_parts(work: Path) -> None:
    """Stand-in parts for merge: each chunk's owned packets, stream-copied (not timed)."""
    index = storage.read_json(layout.split_index(str(work)))
    tb = Fraction(index["time_base"])
    for seg in index["segments"]:
        if not seg["chunk"]:
            storage.write_json(
                layout.part_info(str(work), seg["index"]), {"index": seg["index"], "frames": 0, "parts": []}
            )
            continue
        part = layout.checkpoint(str(work), seg["index"], 0)
        Path(part).parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with av.open(seg["chunk"]) as src, av.open(part, "w", format="mp4", options=mp4_options(tb)) as dst:
            vs = src.streams.video[0]
            out = dst.add_stream_from_template(vs)
            for pkt in src.demux(vs):
                if pkt.size == 0:
                    continue
                pts = rescale_exact(pkt.pts, Fraction(vs.time_base), tb)
                if (seg["pts_lo"] is None or pts >= seg["pts_lo"]) and (seg["pts_hi"] is None or pts < seg["pts_hi"]):
                    pkt.stream = out
                    dst.mux(pkt)
                    n += 1
        assert n == seg["frames"], (n, seg)
        record = part_record(0, part, Path(part), n, Path(part).name)  # what upscale stores beside a part
        storage.write_json(layout.checkpoint_info(str(work), seg["index"], 0), record)
        storage.write_json(
            layout.part_info(str(work), seg["index"]), {"index": seg["index"], "frames": seg["frames"], "parts": [part]}
        )


def bench_split_merge(tmp: Path, size_gb: float, repeat: int, segment_time: float) -> dict:
    src = tmp / "big.mp4"
    make_big_source(src, size_gb)
    size = src.stat().st_size
    subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    kinds = ("copy", "ffmpeg_copy", "split", "ffmpeg_copy_before_merge", "merge")
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    ffmpeg_copy = ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-map", "0", "-c", "copy"]
    startup: dict[str, list[float]] = {"split": [], "merge": []}
    for r in range(repeat):
        dst = tmp / "copy.mp4"
        times["copy"].append(sh(["cp", str(src), str(dst)]))
        dst.unlink()
        times["ffmpeg_copy"].append(sh([*ffmpeg_copy, str(dst)]))
        dst.unlink()
        work = tmp / f"work{r}"
        uri = write_manifest(src, work, tmp / "merged.mp4", segment_time)
        times["split"].append(sh([*WORKER, "split", "--manifest", uri]))
        chunks_as_parts(work)
        # Preparing the parts wrote a gigabyte into memory that had not been used for a while,
        # and in this VM the next gigabyte written costs ~0.5 s more than one written where a
        # file was just deleted (seen for ffmpeg and merge alike). So each timed writer follows
        # a deleted 1 GB file, and merge is compared with the ffmpeg run just before it.
        sh([*ffmpeg_copy, str(dst)])
        dst.unlink()
        times["ffmpeg_copy_before_merge"].append(sh([*ffmpeg_copy, str(dst)]))
        dst.unlink()
        times["merge"].append(sh([*WORKER, "merge", "--manifest", uri]))
        for stage in startup:
            record = storage.read_json(layout.progress(str(work), stage))
            startup[stage].append(record["timings"]["seconds"]["startup"])
        merged = probe(tmp / "merged.mp4")
        assert merged.frames == probe(src).frames, "merge lost frames"
        shutil.rmtree(work)
        (tmp / "merged.mp4").unlink()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "source_bytes": size,
        "source": "1920x1080 25 fps H.264 (x264 ultrafast qp 4, closed GOP 2 s) + AAC, faststart MP4",
        "segment_time": segment_time,
        "repeat": repeat,
        "seconds_median": {k: round(v, 3) for k, v in med.items()},
        "seconds_all": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "startup_seconds_median": {k: round(statistics.median(v), 3) for k, v in startup.items()},
        "split_vs_ffmpeg_copy": round(med["split"] / med["ffmpeg_copy"], 2),
        "merge_vs_ffmpeg_copy": round(med["merge"] / med["ffmpeg_copy_before_merge"], 2),
        "split_vs_copy": round(med["split"] / med["copy"], 2),
        "merge_vs_copy": round(med["merge"] / med["copy"], 2),
        "throughput_MBps": {k: round(size / v / 1e6, 1) for k, v in med.items()},
    }


def bench_end_to_end(tmp: Path, model: str) -> dict:
    clip = tmp / "e2e.mp4"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_sample_video.py"), str(clip), "--seconds", "4"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    work = tmp / "e2e-work"
    wall = sh(
        [
            *WORKER,
            "run",
            str(clip),
            "-o",
            str(tmp / "e2e-out.mp4"),
            "--segment-time",
            "1",
            "--model",
            model,
            "--work-dir",
            str(work),
            "-q",
            "-y",
        ]
    )
    parts = [storage.read_json(str(p)) for p in sorted((work / "upscaled").glob("*.json"))]
    model_s = sum(p.get("model_seconds", 0.0) for p in parts)
    stage_s = sum(p.get("stage_seconds", 0.0) for p in parts)
    return {
        "clip": "320x180 25 fps, 4 s, x2, segment_time 1 s",
        "model": model,
        "wall_seconds": round(wall, 3),
        "model_seconds_sum": round(model_s, 3),
        "upscale_stage_seconds_sum": round(stage_s, 3),
        "run_vs_model_time": round(wall / model_s, 2) if model_s else None,
        "upscale_stage_vs_model_time": round(stage_s / model_s, 2) if model_s else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--segment-time", type=float, default=60.0)
    parser.add_argument("--model", default="bicubic")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "pipeline.json"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vsr-bench-"))
    try:
        result = {
            "host": {
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0],
            },
            "split_merge": bench_split_merge(tmp, args.size_gb, args.repeat, args.segment_time),
            "end_to_end": bench_end_to_end(tmp, args.model),
        }
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
