"""GPU speed of the cuda backend: model-only and end-to-end frames per second, and efficiency.

    python bench/bench_gpu.py [--out FILE] [--no-compile]     (a GPU host: one run, about 5 minutes)
    python bench/bench_gpu.py --device cpu --smoke            (the same code path, tiny, on a CPU)

realesr-animevideov3, 540p -> 2160p (x4) and 1080p -> 2160p (x2):

1. model fps: the tiled runner (fp16, channels-last, frames planned from free memory, pinned
   copies) on frames already in memory, one caller and two callers at once (the upscale
   stage's two inference threads); and the bare network on the GPU (no copies), the ceiling;
2. torch.compile of the network (max-autotune-no-cudagraphs), in a child process with a time
   limit: its fps and compile seconds, to decide whether VSR_TORCH_COMPILE is worth it;
3. end-to-end: ``vsr-worker run`` with default settings (device auto -> cuda) on a generated
   25 fps clip with audio; fps = frames / wall seconds, the upscale stage's own fps, the busy
   fraction of its threads, and whether the output is frame-exact (ffprobe);
   efficiency = end-to-end fps / model fps;
4. encode ceilings at 3840x2160: libx264 (CRF 18, preset medium, all cores) and, when the
   bundled PyAV build has it and the driver opens it, h264_nvenc; which hardware codecs the
   PyAV build lists (NVENC/NVDEC).

Anchor: Real-ESRGAN's published realesr-animevideov3 speed on a V100 (x4 model, 1080p input
10 fps, 720p 22.6 fps; README_animevideo of xinntao/Real-ESRGAN). On a host without a CUDA GPU
it writes a ``"status": "no CUDA GPU"`` record (with the codec list) and exits 0. Results go
into bench/results/gpu.json, rewritten after every section so a cut-short run keeps what it
measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "gpu.json"
MODEL = "realesr-animevideov3"
ANCHOR = {
    "source": "xinntao/Real-ESRGAN docs/anime_video_model.md (README_animevideo): realesr-animevideov3 x4, V100",
    "fps_1080p_input": 10.0,
    "fps_720p_input": 22.6,
}
# (name, width, height, scale, clip seconds) on a GPU; --smoke shrinks them.
CASES = [("540p_x4", 960, 540, 4, 10.0), ("1080p_x2", 1920, 1080, 2, 5.0)]
SMOKE_CASES = [("36p_x4", 64, 36, 4, 0.4), ("54p_x2", 96, 54, 2, 0.4)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny frames and clips: check the script itself")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement")
    parser.add_argument("--seconds", type=float, default=8.0, help="timing window per model measurement")
    parser.add_argument("--out", default=str(RESULTS))
    return parser


class Report:
    """The JSON record, written out after every section."""

    def __init__(self, path: Path, data: dict) -> None:
        self.path, self.data = path, data
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)


def hardware_codecs() -> dict:
    import av

    names = sorted(av.codecs_available)
    return {
        "pyav": av.__version__,
        "nvenc_encoders": [n for n in names if n.endswith("_nvenc")],
        "nvdec_cuvid_decoders": [n for n in names if n.endswith("_cuvid")],
    }


def host(device: str) -> dict:
    import torch

    info: dict = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "device": device,
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=round(props.total_memory / 2**30, 1))
    return info


def rate(fn: Callable[[], int], seconds: float, sync: Callable[[], None]) -> float:
    """Frames per second of ``fn`` (returns frames done per call) over at least ``seconds``."""
    fn()  # warm-up: cuDNN autotuning, allocator
    sync()
    frames, started = 0, time.perf_counter()
    while True:
        frames += fn()
        sync()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return frames / elapsed


def model_fps(device: str, width: int, height: int, scale: int, seconds: float) -> dict:
    import torch

    from vsr_worker.backends import make_runner

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    runner = make_runner(MODEL, scale, device, workers=2)
    frames = torch.rand(4, 3, height, width)

    def one_caller() -> int:
        runner(frames)
        return len(frames)

    def two_callers() -> int:
        threads = [threading.Thread(target=runner, args=(frames,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return 2 * len(frames)

    out = {
        "runner_fps_one_caller": round(rate(one_caller, seconds, sync), 2),
        "runner_fps_two_callers": round(rate(two_callers, seconds, sync), 2),
        "parallel_callers": runner.parallel,
    }
    backend = runner.backend
    if hasattr(backend, "plan"):
        tile, per_call = backend.plan(len(frames), height + 20, width + 20, runner.overlap)
        out["plan"] = {"tile": tile, "frames_or_tiles_per_call": per_call}
        out["bytes_per_input_pixel"] = round(backend.bytes_per_pixel, 1)
    module = getattr(backend, "module", None)
    if module is not None:  # the bare network on the device: no copies, no tiling, no padding
        x = frames.to(backend.device, dtype=backend.dtype).contiguous(memory_format=torch.channels_last)

        def bare() -> int:
            with torch.inference_mode():
                module(x)
            return len(frames)

        out["network_fps"] = round(rate(bare, seconds, sync), 2)
    return out


def compiled_fps(device: str, width: int, height: int, scale: int, seconds: float, limit: float) -> dict:
    """torch.compile in a child process (compiling can take minutes; the limit bounds it)."""
    cmd = [sys.executable, __file__, "--compiled-child", device, str(width), str(height), str(scale), str(seconds)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"error": f"not done within {limit:.0f} s"}
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _compiled_child(device: str, width: int, height: int, scale: int, seconds: float) -> None:
    import torch

    from vsr_worker.models import load_model

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    dtype = torch.float16 if device == "cuda" else torch.float32
    net = load_model(MODEL, scale).to(device, dtype=dtype, memory_format=torch.channels_last)
    x = torch.rand(4, 3, height, width, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    compiled = torch.compile(net, mode="max-autotune-no-cudagraphs", dynamic=False)
    started = time.perf_counter()
    with torch.inference_mode():
        compiled(x)
        sync()
        compile_seconds = time.perf_counter() - started

        def call() -> int:
            compiled(x)
            return len(x)

        fps = rate(call, seconds, sync)
    print(json.dumps({"network_fps": round(fps, 2), "compile_seconds": round(compile_seconds, 1)}))


def make_clip(path: Path, width: int, height: int, seconds: float) -> None:
    video = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={seconds}"]
    audio = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}:sample_rate=48000"]
    codecs = ["-c:v", "libx264", "-preset", "fast", "-crf", "16", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *video, *audio, *codecs, str(path)], check=True)


def frame_times(path: Path) -> list:
    entries = ["-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0"]
    out = subprocess.run(
        ["ffprobe", "-v", "error", *entries, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(float(v) for v in out.split())


def end_to_end(tmp: Path, device: str, width: int, height: int, scale: int, seconds: float) -> dict:
    clip, out, work = tmp / f"clip{height}.mp4", tmp / f"out{height}.mp4", tmp / f"work{height}"
    make_clip(clip, width, height, seconds)
    cmd = [sys.executable, "-m", "vsr_worker", "run", str(clip), "-o", str(out), "--scale", str(scale)]
    cmd += ["--work-dir", str(work), "-q", "-y"]
    if device == "cpu":
        cmd += ["--device", "cpu"]  # the smoke run: the same path, on the CPU
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    breakdown = json.loads((work / "timings.json").read_text())
    upscale = [s for s in breakdown["stages"] if s["stage"] == "upscale"]
    source, result = frame_times(clip), frame_times(out)
    frames = len(source)
    pipeline = sum(s.get("pipeline_seconds", 0.0) for s in upscale)
    return {
        "frames": frames,
        "wall_seconds": round(wall, 2),
        "end_to_end_fps": round(frames / wall, 2),
        "upscale_stage_fps": round(frames / pipeline, 2) if pipeline else None,
        "frame_exact": result == source,
        "phase_seconds": breakdown["phase_seconds"],
        "upscale_busy_fraction": breakdown.get("upscale_busy_fraction"),
        "stage_process_seconds": breakdown["stage_process_seconds"],
    }


def encode_fps(codec: str, width: int, height: int, frames: int) -> dict:
    """Frames per second of one encoder alone, fed ready YUV frames."""
    import av
    import numpy as np

    try:
        with av.open(os.devnull, "w", format="mp4") as out:
            options = {"crf": "18", "preset": "medium"} if codec == "libx264" else {"preset": "p4", "cq": "19"}
            stream = out.add_stream(codec, rate=25, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.time_base = Fraction(1, 25)
            stream.codec_context.thread_count = 0
            yy, xx = np.mgrid[0:height, 0:width]
            pictures = []
            for i in range(8):
                rgb = np.stack([(xx + 7 * i) % 256, (yy + 3 * i) % 256, (xx + yy) % 256], -1).astype(np.uint8)
                pictures.append(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
            started = time.perf_counter()
            for i in range(frames):
                frame = pictures[i % len(pictures)]
                frame.pts = i
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
            return {"fps": round(frames / (time.perf_counter() - started), 2)}
    except Exception as exc:  # e.g. NVENC listed by the build but no driver/GPU to open it
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--compiled-child"]:
        device, width, height, scale, seconds = argv[1:6]
        _compiled_child(device, int(width), int(height), int(scale), float(seconds))
        return 0
    args = build_parser().parse_args(argv)
    import torch

    codecs = hardware_codecs()
    if args.device == "cuda" and not torch.cuda.is_available():
        Report(
            Path(args.out),
            {
                "status": "no CUDA GPU",
                "message": "torch sees no CUDA GPU on this host: nothing measured",
                "host": host("cpu"),
                "codecs": codecs,
                "anchor": ANCHOR,
            },
        )
        print(json.dumps({"status": "no CUDA GPU", "codecs": codecs}))
        return 0
    seconds = 0.5 if args.smoke else args.seconds
    report = Report(
        Path(args.out),
        {"status": "running", "host": host(args.device), "codecs": codecs, "anchor": ANCHOR, "cases": {}},
    )
    cases = SMOKE_CASES if args.smoke else CASES
    with tempfile.TemporaryDirectory(prefix="vsr-bench-gpu-") as tmpdir:
        tmp = Path(tmpdir)
        for name, width, height, scale, clip_seconds in cases:
            case: dict = {"input": f"{width}x{height}", "scale": scale, "output": f"{width * scale}x{height * scale}"}
            report.data["cases"][name] = case
            case["model"] = model_fps(args.device, width, height, scale, seconds)
            report.save()
            if not args.no_compile and not args.smoke:
                case["compiled"] = compiled_fps(args.device, width, height, scale, seconds, limit=150)
                report.save()
            case["end_to_end"] = e2e = end_to_end(tmp, args.device, width, height, scale, clip_seconds)
            best_model = max(case["model"]["runner_fps_one_caller"], case["model"]["runner_fps_two_callers"])
            if "end_to_end_fps" in e2e:
                e2e["efficiency"] = round(e2e["end_to_end_fps"] / best_model, 3)
                if e2e["upscale_stage_fps"]:
                    e2e["upscale_stage_efficiency"] = round(e2e["upscale_stage_fps"] / best_model, 3)
            report.save()
        w, h, n = (128, 72, 10) if args.smoke else (3840, 2160, 60)
        report.data["encode_fps_at_output_size"] = {
            "size": f"{w}x{h}",
            "libx264_medium_all_cores": encode_fps("libx264", w, h, n),
            "h264_nvenc": encode_fps("h264_nvenc", w, h, n)
            if "h264_nvenc" in codecs["nvenc_encoders"]
            else {"error": "not in this PyAV build"},
        }
    report.data["status"] = "done"
    report.save()
    print(json.dumps(report.data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
