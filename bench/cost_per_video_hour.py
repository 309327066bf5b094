"""Cost per hour of 25 fps video, from the measured figures in bench/results/, per accelerator.

    python bench/cost_per_video_hour.py [--gpu-instance NAME --gpu-price USD_PER_HOUR]

Measured rows: the CPU (``vsr-worker run`` end to end with default settings, from
vs_naive.json: the 960x540 clip at x4 and x2) and, once bench/bench_gpu.py has run on a GPU,
the GPU (end-to-end fps from gpu.json; give its instance and price). Estimated rows: inf1,
inf2 and g5 from models.json (MACs and an assumed utilisation; no Inferentia or GPU measured).
Beside them, the AWS sample this project replaces: H x W x fps x 3e-6 inf1.xlarge
instance-seconds per second of video (8.86 USD per hour of 960x540 video). Writes
bench/results/cost.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
VIDEO_FPS = 25.0
# On-demand list prices, USD per hour, us-east-1 (assumptions: check the current price list).
CPU_INSTANCE = ("c6a.large", 0.0765, "2 vCPU AMD EPYC, like the measuring machine")
INF1_PRICE = 0.228
SAMPLE_SECONDS_PER_PIXEL = 3e-6  # the AWS sample: inf1.xlarge seconds per (pixel x frame/s) of video


def row(source: str, instance: str, kind: str, fps: float, price: float | None, note: str = "") -> dict:
    per_second = VIDEO_FPS / fps
    out = {
        "source": source,
        "instance": instance,
        "kind": kind,
        "fps_per_instance": round(fps, 3),
        "instance_seconds_per_video_second": round(per_second, 2),
        "usd_per_hour_of_video": round(per_second * price, 2) if price else None,
    }
    if note:
        out["note"] = note
    return out


def sample_usd_per_hour(width: int, height: int) -> float:
    return round(width * height * VIDEO_FPS * SAMPLE_SECONDS_PER_PIXEL * INF1_PRICE, 2)


def cpu_rows(vs_naive: dict) -> list[dict]:
    rows = []
    name, price, about = CPU_INSTANCE
    for case in vs_naive.get("cases", []):
        if not case["clip"].startswith("960x540"):
            continue
        fps = case["source_frames"] / case["vsr"]["median_seconds"]
        instance = f"{name} ({about})"
        kind = "measured: vsr-worker run end to end, default settings (ncnn), 2 shared vCPUs"
        rows.append(row(f"540p x{case['scale']}", instance, kind, fps, price))
        kind = "estimate: the 540p measurement above / 4 (pixel count)"
        rows.append(row(f"1080p x{case['scale']}", instance, kind, fps / 4, price))
    return rows


def gpu_rows(gpu: dict, instance: str | None, price: float | None) -> list[dict]:
    if gpu.get("status") != "done":
        return []
    rows = []
    name = instance or gpu.get("host", {}).get("gpu", "GPU")
    for case in gpu.get("cases", {}).values():
        e2e = case.get("end_to_end", {})
        if "end_to_end_fps" in e2e:
            label = f"{case['input']} x{case['scale']}"
            rows.append(row(label, name, "measured: bench_gpu.py end to end", e2e["end_to_end_fps"], price))
    return rows


def estimate_rows(models: dict) -> list[dict]:
    rows = []
    prices = models.get("cost", {}).get("assumptions", {}).get("prices_usd_per_hour", {})
    for r in models.get("cost", {}).get("rows", []):
        if r.get("kind") == "estimate":
            rows.append(
                row(
                    r["resolution"],
                    r["instance"],
                    "ESTIMATE (MACs x assumed utilisation; decode/encode not counted)",
                    r["fps_per_instance"],
                    prices.get(r["instance"]),
                )
            )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| source | instance | kind | fps per instance | instance-s per video-s | USD per hour of video |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        usd = "–" if r["usd_per_hour_of_video"] is None else f"{r['usd_per_hour_of_video']:.2f}"
        lines.append(
            f"| {r['source']} | {r['instance']} | {r['kind']} | {r['fps_per_instance']} "
            f"| {r['instance_seconds_per_video_second']} | {usd} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-instance", help="instance type the GPU bench ran on (for its row)")
    parser.add_argument("--gpu-price", type=float, help="its on-demand price, USD per hour")
    parser.add_argument("--out", default=str(RESULTS / "cost.json"))
    args = parser.parse_args()

    def load(name: str) -> dict:
        path = RESULTS / name
        return json.loads(path.read_text()) if path.exists() else {}

    rows = cpu_rows(load("vs_naive.json"))
    rows += gpu_rows(load("gpu.json"), args.gpu_instance, args.gpu_price)
    rows += estimate_rows(load("models.json"))
    result = {
        "video_fps": VIDEO_FPS,
        "aws_sample_usd_per_hour": {
            "540p (960x540)": sample_usd_per_hour(960, 540),
            "1080p": sample_usd_per_hour(1920, 1080),
            "formula": "H x W x fps x 3e-6 inf1.xlarge instance-seconds per video-second x 0.228 USD/h",
        },
        "cpu_instance_price_assumed": {"instance": CPU_INSTANCE[0], "usd_per_hour": CPU_INSTANCE[1]},
        "gpu": "not measured (no GPU was available)" if load("gpu.json").get("status") != "done" else "measured",
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
