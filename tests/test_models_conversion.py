"""The ncnn -> PyTorch conversion, proven against the ncnn CPU runtime (the `ncnn` wheel)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vsr_worker.models import load_model
from vsr_worker.models.convert import ncnn_files, state_dict_from_ncnn, weights_path
from vsr_worker.models.ncnn_format import parse_param, read_weights
from vsr_worker.models.ncnn_reference import reference_image, run_ncnn
from vsr_worker.models.rrdbnet import realesrgan_x4plus_anime
from vsr_worker.models.srvgg import realesr_animevideov3

ncnn = pytest.importorskip("ncnn")
PAD = 10  # the wheel's wrapper reflect-pads 10 px before inference


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VSR_MODEL_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


def _psnr8(a: np.ndarray, b: np.ndarray) -> float:
    qa = np.round(np.clip(a, 0, 1) * 255)
    qb = np.round(np.clip(b, 0, 1) * 255)
    mse = float(np.mean((qa - qb) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _torch_vs_ncnn(model: torch.nn.Module, stem: str, scale: int, h: int = 32, w: int = 32) -> float:
    x = torch.from_numpy(reference_image(h, w)).float().div(255)[None]
    xp = F.pad(x, (PAD, PAD, PAD, PAD), mode="reflect")
    with torch.inference_mode():
        ours = model(xp)[0].numpy()
    theirs = run_ncnn(stem, xp[0].numpy())
    assert theirs.shape == ours.shape == (3, (h + 2 * PAD) * scale, (w + 2 * PAD) * scale)
    crop = (slice(None), slice(PAD * scale, -PAD * scale), slice(PAD * scale, -PAD * scale))
    return _psnr8(ours[crop], theirs[crop])


def test_param_parse_and_exact_bin_layout():
    param, binary = ncnn_files("realesr-animevideov3-x4")
    layers = parse_param(param)
    assert len(layers) == 40
    assert [ly.type for ly in layers][-3:] == ["PixelShuffle", "Interp", "BinaryOp"]
    weighted = read_weights(param, binary)  # raises unless every byte of the .bin is consumed
    assert [ly.type for ly, _ in weighted].count("Convolution") == 18
    assert weighted[0][1]["weight"].shape == (64, 3, 3, 3)
    assert weighted[-1][1]["weight"].shape == (48, 64, 3, 3)
    # The x2 file is the x4 network (identical weights) followed by a bicubic resize.
    digests = {
        hashlib.sha256(ncnn_files(s)[1].read_bytes()).hexdigest()
        for s in ("realesr-animevideov3-x2", "realesr-animevideov3-x4")
    }
    assert len(digests) == 1
    assert parse_param(ncnn_files("realesr-animevideov3-x2")[0])[-1].type == "Interp"


def test_bin_layout_mistakes_are_detected(tmp_path):
    param, binary = ncnn_files("realesr-animevideov3-x4")
    data = binary.read_bytes()
    extra = tmp_path / "extra.bin"
    extra.write_bytes(data + b"\0\0\0\0")
    with pytest.raises(ValueError, match="left unread"):
        read_weights(param, extra)
    short = tmp_path / "short.bin"
    short.write_bytes(data[:-8])
    with pytest.raises(ValueError):
        read_weights(param, short)
    with pytest.raises(ValueError, match="weighted layers"):  # wrong architecture for the file
        state_dict_from_ncnn(realesrgan_x4plus_anime(), param, binary)


def test_animevideov3_x4_matches_ncnn_runtime():
    model = load_model("realesr-animevideov3", 4)
    assert weights_path("realesr-animevideov3-x4").is_file()  # converted on first use
    psnr = _torch_vs_ncnn(model, "realesr-animevideov3-x4", 4)
    assert psnr >= 80.0, psnr


def test_animevideov3_x2_route_matches_upstream_x2_file():
    model = load_model("realesr-animevideov3", 2)
    psnr = _torch_vs_ncnn(model, "realesr-animevideov3-x2", 2)
    assert psnr >= 80.0, psnr


def test_x4plus_anime_matches_ncnn_runtime():
    model = load_model("realesrgan-x4plus-anime", 4)
    psnr = _torch_vs_ncnn(model, "realesrgan-x4plus-anime", 4, 16, 16)
    assert psnr >= 80.0, psnr


def test_a_one_percent_error_in_one_layer_fails_the_threshold():
    """The 80 dB bar is discriminating: 1 % off in a single convolution falls well below it."""
    net = realesr_animevideov3().eval()
    param, binary = ncnn_files("realesr-animevideov3-x4")
    state = state_dict_from_ncnn(net, param, binary)
    state["body.10.weight"] = state["body.10.weight"] * 1.01
    net.load_state_dict(state)
    psnr = _torch_vs_ncnn(torch.nn.Sequential(net, torch.nn.Hardtanh(0, 1)), "realesr-animevideov3-x4", 4)
    assert psnr < 70.0, psnr
