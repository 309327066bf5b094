"""Read ncnn models: the ``.param`` text graph and the ``.bin`` weights that go with it.

Only what the Real-ESRGAN files use is supported: Convolution weights stored as fp16 (tag
0x01306B47) or fp32 (tag 0), fp32 biases and PReLU slopes (untagged). ``read_weights``
insists on consuming the ``.bin`` exactly, so a misread layout fails loudly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np

PARAM_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0


@dataclass
class Layer:
    type: str
    name: str
    bottoms: List[str]
    tops: List[str]
    params: Dict[int, Union[int, float, List[float]]] = field(default_factory=dict)

    def get(self, key: int, default: Union[int, float, List[float]] = 0) -> Union[int, float, List[float]]:
        return self.params.get(key, default)


def _number(text: str) -> Union[int, float]:
    if any(c in text for c in ".eE") and not text.lstrip("-").isdigit():
        return float(text)
    return int(text)


def parse_param(path: Union[str, Path]) -> List[Layer]:
    """Parse a ``.param`` file into its layers, in file order."""
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    if not lines or int(lines[0][0]) != PARAM_MAGIC:
        raise ValueError(f"{path}: not an ncnn .param file (magic {PARAM_MAGIC} missing)")
    layer_count = int(lines[1][0])
    layers = []
    for parts in lines[2:]:
        ltype, name, nb, nt = parts[0], parts[1], int(parts[2]), int(parts[3])
        bottoms = parts[4 : 4 + nb]
        tops = parts[4 + nb : 4 + nb + nt]
        params: Dict[int, Union[int, float, List[float]]] = {}
        for kv in parts[4 + nb + nt :]:
            key_text, value = kv.split("=", 1)
            key = int(key_text)
            if key <= -23300:  # array parameter: -23300 - id = count,v1,v2,...
                values = value.split(",")
                params[-23300 - key] = [float(v) for v in values[1:]]
            else:
                params[key] = _number(value)
        layers.append(Layer(ltype, name, bottoms, tops, params))
    if len(layers) != layer_count:
        raise ValueError(f"{path}: header says {layer_count} layers, found {len(layers)}")
    return layers


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def raw_f32(self, count: int) -> np.ndarray:
        end = self.pos + 4 * count
        if end > len(self.data):
            raise ValueError("ncnn .bin ended early")
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos = end
        return arr

    def tagged(self, count: int) -> np.ndarray:
        (tag,) = struct.unpack_from("<I", self.data, self.pos)
        self.pos += 4
        if tag == TAG_FP16:
            nbytes = 2 * count
            arr = np.frombuffer(self.data, dtype="<f2", count=count, offset=self.pos).astype(np.float32)
            self.pos += (nbytes + 3) // 4 * 4  # fp16 data is padded to 4 bytes
            return arr
        if tag == TAG_FP32:
            return self.raw_f32(count)
        raise ValueError(f"unsupported ncnn weight tag 0x{tag:08x} (quantized models are not supported)")


def read_weights(param_path: Union[str, Path], bin_path: Union[str, Path]) -> List[Tuple[Layer, Dict[str, np.ndarray]]]:
    """The weighted layers of a model, in file order, with their arrays as float32.

    Convolution: ``weight`` (out, in, k, k) and ``bias`` (out,); PReLU: ``weight`` (slopes).
    """
    layers = parse_param(param_path)
    reader = _Reader(Path(bin_path).read_bytes())
    out: List[Tuple[Layer, Dict[str, np.ndarray]]] = []
    for layer in layers:
        if layer.type == "Convolution":
            cout = int(layer.get(0))
            k = int(layer.get(1))
            size = int(layer.get(6))
            if int(layer.get(11, k)) != k or int(layer.get(5)) not in (0, 1):
                raise ValueError(f"{layer.name}: only square kernels are supported")
            cin = size // (cout * k * k)
            if cin * cout * k * k != size:
                raise ValueError(f"{layer.name}: weight size {size} does not factor as out*in*k*k")
            arrays = {"weight": reader.tagged(size).reshape(cout, cin, k, k)}
            if int(layer.get(5)):
                arrays["bias"] = reader.raw_f32(cout)
            out.append((layer, arrays))
        elif layer.type == "PReLU":
            out.append((layer, {"weight": reader.raw_f32(int(layer.get(0)))}))
        elif layer.type in ("ConvolutionDepthWise", "Deconvolution", "InnerProduct", "BatchNorm", "Scale"):
            raise ValueError(f"{layer.name}: layer type {layer.type} is not supported by this converter")
    if reader.pos != len(reader.data):
        raise ValueError(f"{bin_path}: {len(reader.data) - reader.pos} bytes left unread: layout misread")
    return out
