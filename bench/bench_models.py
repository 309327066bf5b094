"""Model benchmark: conversion fidelity, CPU inference speed (torch vs ncnn), cost model.

    .venv/bin/python bench/bench_models.py [--quick]

Prints a report and writes bench/results/models.json. Takes a few minutes on 2 cores.

1. Fidelity: every converted model, PyTorch vs the ncnn CPU runtime on the same reflect-padded
   8-bit image, PSNR on 8-bit RGB (the conversion proof; >= 80 dB required).
2. Quality: the demo sample, downscaled 2x then upscaled 2x by each model, PSNR/SSIM vs the
   original (synthetic content: stripes, rings, a checkerboard; GAN-trained models are not
   optimised for PSNR, so reported as measured).
3. Speed: frames/s of pure inference (the tiled runner with its default settings, frames
   already in memory) for realesr-animevideov3 x2 and x4 at 480x270 and 960x540 input, cpu
   (torch fp32) and ncnn backends measured side by side in one run (each in a fresh process,
   one after the other for every configuration; median of the repetitions after a warm-up).
4. Cost model: instance-seconds per second of 25 fps video and USD per hour of video on
   inf1.xlarge, inf2.xlarge and g5.xlarge. Those figures are ESTIMATES from MACs and an
   assumed sustained throughput (stated in the JSON), not measurements: no GPU or Inferentia
   was available. The CPU line is derived from the speed measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vsr_worker.backends import make_runner
from vsr_worker.models import MODELS, load_model
from vsr_worker.models.ncnn_reference import reference_image, run_ncnn

RESULTS = Path(__file__).resolve().parent / "results" / "models.json"
PAD = 10
FPS_VIDEO = 25.0

# List prices, USD per hour, on-demand, us-east-1 (assumption: check the current price list).
PRICES = {"inf1.xlarge": 0.228, "inf2.xlarge": 0.7582, "g5.xlarge": 1.006}
# Split and merge run on the stack's CPU environment (stack.settings.CpuEnvironmentSettings).
CPU_STAGE_INSTANCE, CPU_STAGE_PRICE = "c6i.large", 0.085
PIPELINE = Path(__file__).resolve().parent / "results" / "pipeline.json"
# ASSUMED for the CPU stages: source bitrate per resolution (Mbit/s), output bytes per source
# byte (x2, CRF 18), S3 throughput of one small instance, and the instance start-up a job pays
# when the CPU environment has scaled to zero (one split and one merge host per video here).
SOURCE_MBPS = {"540p": 3.0, "1080p": 8.0}
OUTPUT_PER_SOURCE_BYTE = 3.0
S3_MB_PER_S = 100.0
STARTUP_S = 180.0
# Assumed sustained multiply-accumulates per second for these small 3x3 conv networks:
# a fraction of the accelerator's fp16/bf16 peak. ESTIMATES until measured on the hardware.
ACCEL = {
    "inf1.xlarge": {"peak_tflops_fp16": 64.0, "utilisation": 0.15, "note": "4 NeuronCores v1, torch-neuron, bf16"},
    "inf2.xlarge": {"peak_tflops_fp16": 190.0, "utilisation": 0.20, "note": "2 NeuronCores v2, torch-neuronx, bf16"},
    "g5.xlarge": {"peak_tflops_fp16": 70.0, "utilisation": 0.30, "note": "NVIDIA A10G, fp16 tensor cores"},
}
TILE_OVERHEAD = 1.10  # extra pixels computed for reflect padding and tile overlaps (measured plans: ~1.04-1.15)
REFERENCE = "AWS sample: H*W*fps*3e-6 inf1.xlarge instance-seconds per second of video"


def fidelity(size: int) -> list:
    rows = []
    cases = [
        ("realesr-animevideov3", 4, "realesr-animevideov3-x4", size),
        ("realesr-animevideov3", 2, "realesr-animevideov3-x2", size),
        ("realesrgan-x4plus-anime", 4, "realesrgan-x4plus-anime", size),
        ("realesrgan-x4plus", 4, "realesrgan-x4plus", max(16, size // 2)),
    ]
    for name, scale, stem, s in cases:
        x = torch.from_numpy(reference_image(s, s)).float().div(255)[None]
        xp = F.pad(x, (PAD,) * 4, mode="reflect")
        with torch.inference_mode():
            ours = load_model(name, scale)(xp)[0].numpy()
        theirs = run_ncnn(stem, xp[0].numpy(), os.cpu_count() or 1)
        c = PAD * scale
        qa = np.round(np.clip(ours[:, c:-c, c:-c], 0, 1) * 255)
        qb = np.round(np.clip(theirs[:, c:-c, c:-c], 0, 1) * 255)
        mse = float(np.mean((qa - qb) ** 2))
        psnr = float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
        rows.append(
            {
                "model": name,
                "scale": scale,
                "ncnn_file": stem,
                "input": f"{s}x{s}",
                "psnr_db": round(psnr, 2) if np.isfinite(psnr) else None,  # None: identical 8-bit output
                "max_abs_diff_8bit": int(np.abs(qa - qb).max()),
                "pass": bool(psnr >= 80.0),
            }
        )
        print(f"  {name:26s} x{scale}  {s}x{s}  PSNR {psnr:6.2f} dB  max |diff| {int(np.abs(qa - qb).max())} LSB")
    return rows


def _time_one(dev: str, scale: int, w: int, h: int, reps: int) -> list:
    """Seconds per frame of the tiled runner (run in a fresh process per backend)."""
    runner = make_runner("realesr-animevideov3", scale, dev)
    x = torch.rand(1, 3, h, w)
    runner(x)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        runner(x)
        times.append(time.perf_counter() - t0)
    return times


def speed(sizes: list, reps: int) -> list:
    """Each backend in its own process (two OpenMP runtimes in one process disturb each other),
    one after the other for every configuration, so both see the same machine."""
    rows = []
    for w, h in sizes:
        for scale in (2, 4):
            times = {}
            for dev in ("cpu", "ncnn"):
                cmd = [sys.executable, __file__, "--one", dev, str(scale), str(w), str(h), str(reps)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                times[dev] = json.loads(out.strip().splitlines()[-1])
            fps = {dev: 1.0 / float(np.median(t)) for dev, t in times.items()}
            rows.append(
                {
                    "model": "realesr-animevideov3",
                    "scale": scale,
                    "input": f"{w}x{h}",
                    "fps_cpu_torch_fp32": round(fps["cpu"], 3),
                    "fps_ncnn_cpu": round(fps["ncnn"], 3),
                    "ncnn_speedup": round(fps["ncnn"] / fps["cpu"], 2),
                    "reps": reps,
                    "seconds_cpu": [round(t, 3) for t in times["cpu"]],
                    "seconds_ncnn": [round(t, 3) for t in times["ncnn"]],
                }
            )
            print(
                f"  x{scale} {w}x{h}: cpu(torch) {fps['cpu']:.3f} fps   ncnn {fps['ncnn']:.3f} fps"
                f"   ncnn/cpu {fps['ncnn'] / fps['cpu']:.2f}x"
            )
    return rows


def _ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM over RGB channels (Gaussian window 11, sigma 1.5, images in [0, 1])."""
    g = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = (g[:, None] * g[None, :] / g.sum() ** 2).expand(3, 1, 11, 11)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=3)

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def quality(frames: int) -> list:
    """Downscale the demo sample (2x area), upscale x2 with each model, compare with the original."""
    import tempfile

    import av

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from make_sample_video import make_sample

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "sample.mp4")
        make_sample(path, 320, 180, seconds=1.0)
        with av.open(path) as c:
            imgs = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), c.decode(video=0))]
    hr = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
    lr = F.interpolate(hr, scale_factor=0.5, mode="area")
    rows = []
    for name in ("bicubic", "realesr-animevideov3", "realesrgan-x4plus-anime", "realesrgan-x4plus"):
        with torch.inference_mode():
            sr = make_runner(name, 2, "cpu")(lr)
        sr8, hr8 = torch.round(sr * 255) / 255, torch.round(hr * 255) / 255
        mse = float(((sr8 - hr8) ** 2).mean())
        row = {"model": name, "psnr_db": round(10 * np.log10(1.0 / mse), 2), "ssim": round(_ssim(sr8, hr8), 4)}
        rows.append(row)
        print(f"  {name:26s} x2  PSNR {row['psnr_db']:6.2f} dB  SSIM {row['ssim']:.4f}")
    return rows


def cpu_stages_cost(label: str) -> dict:
    """Split + merge per hour of video: measured local throughput (bench_pipeline.py), assumed
    bytes, S3 rate and start-up; on the CPU instance vs on each accelerator instance (where
    they ran before the stack had a CPU environment)."""
    rates = json.loads(PIPELINE.read_text())["split_merge"]["throughput_MBps"]
    source_mb = SOURCE_MBPS[label] * 3600 / 8
    output_mb = source_mb * OUTPUT_PER_SOURCE_BYTE
    # split: source in, segments (~source) out; merge: parts (~output) in, output out.
    split_s = source_mb / rates["split"] + 2 * source_mb / S3_MB_PER_S
    merge_s = output_mb / rates["merge"] + 2 * output_mb / S3_MB_PER_S
    instance_s = split_s + merge_s + 2 * STARTUP_S
    prices = {CPU_STAGE_INSTANCE: CPU_STAGE_PRICE, **PRICES}
    return {
        "resolution": label,
        "source_mb_per_video_hour": round(source_mb),
        "instance_seconds_per_video_hour": round(instance_s),
        "usd_per_video_hour": {k: round(instance_s / 3600 * v, 4) for k, v in prices.items()},
    }


def cost(speed_rows: list) -> dict:
    macs = MODELS["realesr-animevideov3"].macs_per_pixel
    out = {"assumptions": {}, "rows": []}
    out["assumptions"] = {
        "video_fps": FPS_VIDEO,
        "resolution_means": "input (source) resolution; x2 and x4 cost the same for realesr-animevideov3",
        "model": "realesr-animevideov3",
        "macs_per_input_pixel": macs,
        "tile_overhead": TILE_OVERHEAD,
        "prices_usd_per_hour": PRICES,
        "accelerators": ACCEL,
        "sustained_macs_per_s": "peak_tflops_fp16 / 2 * 1e12 * utilisation",
        "estimates": "GPU and Neuron rows are ESTIMATES (not run on the hardware)",
        "reference": REFERENCE,
        "decode_encode": "not included: decode/encode run on the CPU cores beside the accelerator",
        "cpu_stages": {
            "instance": CPU_STAGE_INSTANCE,
            "price_usd_per_hour": CPU_STAGE_PRICE,
            "measured": f"split/merge throughput of {PIPELINE.name} (this machine, 2 vCPUs, 1080p H.264)",
            "assumed": {
                "source_mbit_per_s": SOURCE_MBPS,
                "output_bytes_per_source_byte": OUTPUT_PER_SOURCE_BYTE,
                "s3_mb_per_s": S3_MB_PER_S,
                "startup_s_per_host": STARTUP_S,
            },
        },
    }
    out["cpu_stages"] = [cpu_stages_cost(label) for label in SOURCE_MBPS]
    for label, (w, h) in {"540p": (960, 540), "1080p": (1920, 1080)}.items():
        macs_frame = macs * w * h * TILE_OVERHEAD
        ref_inst_s = h * w * FPS_VIDEO * 3e-6
        for inst, acc in ACCEL.items():
            sustained = acc["peak_tflops_fp16"] / 2 * 1e12 * acc["utilisation"]
            fps = sustained / macs_frame
            inst_s = FPS_VIDEO / fps
            usd_h = inst_s * PRICES[inst]
            row = {
                "resolution": label,
                "instance": inst,
                "kind": "estimate",
                "fps_per_instance": round(fps, 2),
                "instance_seconds_per_video_second": round(inst_s, 3),
                "usd_per_hour_of_video": round(usd_h, 3),
            }
            if inst == "inf1.xlarge":
                row["reference_usd_per_hour"] = round(ref_inst_s * PRICES[inst], 2)
                row["cheaper_than_reference"] = round(ref_inst_s / inst_s, 1)
            out["rows"].append(row)
        measured = [r for r in speed_rows if r["input"] == "960x540" and r["scale"] == 2]
        if measured:
            best = max(measured[0]["fps_cpu_torch_fp32"], measured[0]["fps_ncnn_cpu"])
            fps = best * (960 * 540) / (w * h)  # same work per pixel
            out["rows"].append(
                {
                    "resolution": label,
                    "instance": "this machine (2 CPU cores)",
                    "kind": "measured at 960x540 (scaled by pixel count for 1080p)",
                    "fps_per_instance": round(fps, 3),
                    "instance_seconds_per_video_second": round(FPS_VIDEO / fps, 1),
                }
            )
    for r in out["rows"]:
        extra = (
            f"  (reference {r['reference_usd_per_hour']} USD/h: {r['cheaper_than_reference']}x cheaper)"
            if ("reference_usd_per_hour" in r)
            else ""
        )
        usd = f"{r['usd_per_hour_of_video']:8.3f} USD/h" if "usd_per_hour_of_video" in r else " " * 14
        print(
            f"  {r['resolution']:5s} {r['instance']:27s} {r['kind'][:8]:8s} {r['fps_per_instance']:8.2f} fps "
            f"{r['instance_seconds_per_video_second']:9.3f} inst-s/s {usd}{extra}"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, one repetition")
    parser.add_argument(
        "--cost-only", action="store_true", help="recompute the cost model from the speed rows in models.json"
    )
    parser.add_argument("--one", nargs=5, metavar=("DEV", "SCALE", "W", "H", "REPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        dev, scale, w, h, reps = args.one
        print(json.dumps(_time_one(dev, int(scale), int(w), int(h), int(reps))))
        return 0
    if args.cost_only:
        result = json.loads(RESULTS.read_text())
        result["cost"] = cost(result["speed"])
        print(json.dumps(result["cost"]["cpu_stages"], indent=2))
        RESULTS.with_suffix(".json.tmp").write_text(json.dumps(result, indent=2) + "\n")
        os.replace(RESULTS.with_suffix(".json.tmp"), RESULTS)
        return 0
    sizes = [(480, 270)] if args.quick else [(480, 270), (960, 540)]
    reps = 1 if args.quick else 2
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(f"models bench: torch {torch.__version__}, {os.cpu_count()} cores, load average {load}")
    print("fidelity (PyTorch vs ncnn CPU runtime, 8-bit RGB):")
    fid = fidelity(24 if args.quick else 48)
    print("quality: demo sample (320x180, synthetic pattern) area-downscaled x2, upscaled x2, vs original:")
    qual = quality(2 if args.quick else 4)
    print("pure inference speed, realesr-animevideov3 (frames/s):")
    spd = speed(sizes, reps)
    print("cost model (25 fps video; GPU/Neuron rows are estimates):")
    cst = cost(spd)
    result = {
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "cores": os.cpu_count(),
            "load_average_at_start": load,
            "load_average_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "fidelity": fid,
        "quality": {
            "content": "scripts/make_sample_video.py frames (synthetic stripes/rings/checkerboard, 320x180), "
            "area-downscaled to 160x90, upscaled x2; PSNR/SSIM on 8-bit RGB vs the original. Not natural video.",
            "rows": qual,
        },
        "speed": spd,
        "cost": cst,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, RESULTS)
    print(f"wrote {RESULTS}")
    return 0 if all(r["pass"] for r in fid) else 1


if __name__ == "__main__":
    sys.exit(main())
