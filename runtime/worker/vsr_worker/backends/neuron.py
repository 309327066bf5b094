"""The ``neuron`` (Inf1, torch-neuron) and ``neuronx`` (Inf2/Trn1, torch-neuronx) backends.

A Neuron model is compiled for one fixed input shape, so this backend always receives
exactly ``batch`` tiles of ``tile`` x ``tile`` pixels (the TiledRunner pads). The compiled
module is saved under ``$VSR_MODEL_CACHE/compiled/`` (baked into the worker image by
``vsr-worker models --compile neuron``) and only loaded at run time: never compiled per
segment. On Inf1 ``torch.neuron.DataParallel`` spreads each batch over all NeuronCores.

This module must run on Python 3.10 with torch 1.13 (torch-neuron's last release). The
compiler is pluggable: ``kind="jit"`` uses ``torch.jit.trace`` through the same code path,
which is how the logic is tested on machines without Neuron hardware. The neuron and neuronx
paths themselves were NOT run on Inferentia hardware in this project.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

KINDS = ("neuron", "neuronx", "jit")


def _compiler(kind: str) -> Callable[[nn.Module, torch.Tensor], nn.Module]:
    if kind == "neuron":
        import torch_neuron  # noqa: F401  (registers torch.neuron)

        return lambda m, ex: torch.neuron.trace(m, example_inputs=[ex])  # type: ignore[attr-defined]
    if kind == "neuronx":
        import torch_neuronx

        def trace_neuronx(m: nn.Module, ex: torch.Tensor) -> nn.Module:
            traced = torch_neuronx.trace(m, ex)
            # Without lazy load, torch.jit.load puts the model on a NeuronCore at once, which
            # fails on the image-build machine; it must be set before torch.jit.save.
            torch_neuronx.lazy_load(traced)
            return traced

        return trace_neuronx
    if kind == "jit":
        return lambda m, ex: torch.jit.trace(m, ex, check_trace=False)
    raise ValueError(f"unknown compiler kind {kind!r}; expected one of {KINDS}")


def neuron_cores() -> int:
    """NeuronCores this process may use (inf1.xlarge: 4, inf2.xlarge: 2)."""
    value = os.environ.get("NEURON_RT_NUM_CORES") or os.environ.get("VSR_NEURON_CORES")
    return max(1, int(value)) if value else 1


def compiled_path(cache: Path, model: str, scale: int, kind: str, tile: int, batch: int) -> Path:
    version = torch.__version__.split("+")[0]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
    return cache / "compiled" / f"{safe}-x{scale}-{kind}-t{tile}-b{batch}-torch{version}.pt"


class NeuronBackend:
    """Fixed-shape traced module; ``fixed_tile``/``fixed_batch`` tell the runner to pad."""

    def __init__(
        self,
        module: nn.Module,
        model: str,
        scale: int,
        kind: str,
        tile: int,
        batch: int,
        cache: Path,
        compile_if_missing: bool = True,
        compiler: Optional[Callable[[nn.Module, torch.Tensor], nn.Module]] = None,
    ) -> None:
        self.name = kind
        self.kind = kind
        self.fixed_tile = int(tile)
        self.cores = neuron_cores() if kind == "neuron" else 1
        self.per_core_batch = int(batch)
        self.fixed_batch = self.per_core_batch * self.cores
        self.path = compiled_path(cache, model, scale, kind, self.fixed_tile, self.per_core_batch)
        self.compiled_now = False
        if not self.path.is_file():
            if not compile_if_missing:
                raise RuntimeError(f"no compiled {kind} model at {self.path}: run 'vsr-worker models --compile {kind}'")
            self.compile(module, compiler)
        traced = torch.jit.load(str(self.path))
        if kind == "neuron" and self.cores > 1:
            traced = torch.neuron.DataParallel(traced)  # type: ignore[attr-defined]
        self.module = traced

    def example(self) -> torch.Tensor:
        return torch.zeros(self.per_core_batch, 3, self.fixed_tile, self.fixed_tile)

    def compile(self, module: nn.Module, compiler: Optional[Callable] = None) -> Path:
        trace = compiler or _compiler(self.kind)
        with torch.no_grad():
            traced = trace(module.eval(), self.example())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".compiled.", dir=str(self.path.parent))
        os.close(fd)
        try:
            torch.jit.save(traced, tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.compiled_now = True
        return self.path

    def run(self, x: torch.Tensor) -> torch.Tensor:
        expect = (self.fixed_batch, 3, self.fixed_tile, self.fixed_tile)
        if tuple(x.shape) != expect:
            raise ValueError(f"{self.kind} model compiled for {expect}, got {tuple(x.shape)}")
        with torch.no_grad():
            return self.module(x.float().contiguous()).float()
