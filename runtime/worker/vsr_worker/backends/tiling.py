"""Tile planning and the tiled, batched runner every backend sits behind.

A frame is cut into tiles of at most ``tile`` x ``tile`` input pixels that overlap by
``overlap`` pixels; each tile keeps only the part of its output at least ``overlap`` pixels
from any edge it shares with a neighbour. With ``overlap`` >= the model's receptive field the
stitched result equals the untiled one (up to float summation order). Tiles in one dimension
all have the same size (the last one is shifted back inside the frame), so tiles of several
frames batch together, and fixed-shape backends (Neuron) need padding only for frames smaller
than one tile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Span:
    start: int  # the tile: [start, start + size)
    size: int
    keep_lo: int  # the part of it written to the output: [keep_lo, keep_hi)
    keep_hi: int


def plan_axis(length: int, tile: int, overlap: int, fixed: bool = False) -> List[Span]:
    """Tiles along one axis of ``length`` pixels, each at most ``tile`` (``tile`` <= 0: one tile).

    ``fixed``: every tile is exactly ``tile`` long (fixed-shape backends); otherwise the fewest
    tiles that fit are used, all of the same size, so little work is spent on overlaps.
    """
    if tile <= 0 or length <= tile:
        return [Span(0, length, 0, length)]
    if tile <= 2 * overlap:
        raise ValueError(f"tile {tile} must be larger than twice the overlap {overlap}")
    size = tile
    if not fixed:
        n = 2
        while -(-(length + 2 * overlap * (n - 1)) // n) > tile:
            n += 1
        size = -(-(length + 2 * overlap * (n - 1)) // n)
    step = size - 2 * overlap
    starts = []
    pos = 0
    while pos + size < length:
        starts.append(pos)
        pos += step
    starts.append(length - size)
    spans = []
    for i, s in enumerate(starts):
        lo = 0 if i == 0 else s + overlap
        hi = length if i == len(starts) - 1 else s + size - overlap
        spans.append(Span(s, size, lo, hi))
    return spans


def plan_tiles(height: int, width: int, tile: int, overlap: int, fixed: bool = False) -> List[Tuple[Span, Span]]:
    rows, cols = plan_axis(height, tile, overlap, fixed), plan_axis(width, tile, overlap, fixed)
    return [(ys, xs) for ys in rows for xs in cols]


def pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Replicate-pad NCHW ``x`` at the bottom/right to ``height`` x ``width`` (fixed-shape backends)."""
    dh, dw = height - x.shape[-2], width - x.shape[-1]
    if dh < 0 or dw < 0:
        raise ValueError(f"tile {tuple(x.shape[-2:])} larger than the fixed shape {(height, width)}")
    if dh or dw:
        x = F.pad(x, (0, dw, 0, dh), mode="replicate")
    return x


def reflect_pad(x: torch.Tensor, pad: int) -> Tuple[torch.Tensor, int]:
    """Reflect-pad a frame batch by ``pad`` (less for tiny frames), as Real-ESRGAN's tools do."""
    pad = min(pad, x.shape[-2] - 1, x.shape[-1] - 1)
    if pad <= 0:
        return x, 0
    return F.pad(x, (pad, pad, pad, pad), mode="reflect"), pad


class TiledRunner:
    """Upscale frame batches through ``backend`` tile by tile, ``batch`` tiles at a time.

    ``backend.run(x)`` takes float NCHW in [0, 1] on the CPU and returns ``scale`` x the size.
    A backend with ``fixed_tile``/``fixed_batch`` set gets exactly that shape every call.
    ``auto_plan``: the backend's ``plan(frames, height, width, overlap)`` chooses tile and
    tiles per call for each batch of frames (cuda: from its free memory).
    """

    def __init__(
        self,
        backend,
        scale: int,
        tile: int,
        overlap: int,
        batch: int = 1,
        pre_pad: int = 0,
        auto_plan: bool = False,
    ) -> None:
        self.backend = backend
        self.scale = scale
        fixed = getattr(backend, "fixed_tile", None)
        self.tile = int(fixed) if fixed else int(tile)
        self.overlap = int(overlap)
        self.batch = int(getattr(backend, "fixed_batch", None) or batch)
        self.pre_pad = int(pre_pad)
        self._fixed = bool(fixed)
        # Concurrent callers the backend serves (ncnn: one per core, cuda: one per stream); others
        # run one call at a time. ``frames_per_call``: what each caller should hand over (None: any).
        self.parallel = int(getattr(backend, "parallel", 1))
        self.frames_per_call: Optional[int] = getattr(backend, "frames_per_call", None)
        self.auto_plan = bool(auto_plan and hasattr(backend, "plan"))
        if self.tile > 0 and self.tile <= 2 * self.overlap:
            raise ValueError(f"tile {self.tile} must be larger than twice the overlap {self.overlap}")

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        fixed: Optional[int] = getattr(self.backend, "fixed_tile", None)
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        if fixed:
            x = pad_to(x, fixed, fixed)
        if getattr(self.backend, "fixed_batch", None) and n < self.batch:
            x = torch.cat([x, x.new_zeros((self.batch - n, *x.shape[1:]))])
        y = self.backend.run(x)
        return y[:n, :, : h * self.scale, : w * self.scale]

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        s = self.scale
        x, pad = reflect_pad(frames, self.pre_pad)
        n, c, h, w = x.shape
        tile, batch = self.backend.plan(n, h, w, self.overlap) if self.auto_plan else (self.tile, self.batch)
        out = frames.new_empty((n, c, h * s, w * s))
        jobs = [(i, ys, xs) for i in range(n) for ys, xs in plan_tiles(h, w, tile, self.overlap, self._fixed)]
        for k in range(0, len(jobs), batch):
            group = jobs[k : k + batch]
            tiles = torch.stack(
                [x[i, :, ys.start : ys.start + ys.size, xs.start : xs.start + xs.size] for i, ys, xs in group]
            )
            y = self._run(tiles)
            for (i, ys, xs), out_tile in zip(group, y):
                oy, ox = (ys.keep_lo - ys.start) * s, (xs.keep_lo - xs.start) * s
                hh, ww = (ys.keep_hi - ys.keep_lo) * s, (xs.keep_hi - xs.keep_lo) * s
                out[i, :, ys.keep_lo * s : ys.keep_hi * s, xs.keep_lo * s : xs.keep_hi * s] = out_tile[
                    :, oy : oy + hh, ox : ox + ww
                ]
        if pad:
            out = out[:, :, pad * s : (h - pad) * s, pad * s : (w - pad) * s]
        return out
