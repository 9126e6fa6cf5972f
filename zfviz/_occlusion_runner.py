"""The engine behind ``zfviz.occlusion``: the outputs of every occluded copy, batch by batch, fast.

Explained (what it computes, not how) in the chapter "Occlusion sensitivity" (book/occlusion); the speed-up is
measured by ``benchmarks/bench_occlusion.py``.

For a flat ``nn.Sequential`` whose first layers are convolutions, ReLUs, max-pools and contrast normalisation
(the ``zfviz.models`` nets), the square changes only a small patch of those layers' maps: the unoccluded image's
maps are computed once, and for each occluded copy only the patch the square can reach is recomputed and pasted
into them (exact up to float rounding), until the patch would cover half of a map; the rest of the network runs
on whole maps. Any other model runs whole on every copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from . import layers

__all__ = ["Runner", "corners", "occluded", "is_sequential"]


def corners(ny: int, nx: int, stride: int, device) -> torch.Tensor:
    """Top-left (y, x) of every position, row-major: (ny * nx, 2)."""
    ys = torch.arange(ny, device=device) * stride
    xs = torch.arange(nx, device=device) * stride
    return torch.cartesian_prod(ys, xs).view(-1, 2)


def occluded(image: torch.Tensor, corners: torch.Tensor, size: int, fill: float) -> torch.Tensor:
    """Copies of ``image`` (3, H, W), one per corner (n, 2), each with its square set to ``fill``: (n, 3, H, W)."""
    rows = torch.arange(image.shape[1], device=image.device)
    cols = torch.arange(image.shape[2], device=image.device)
    in_y = (rows >= corners[:, :1]) & (rows < corners[:, :1] + size)             # (n, H)
    in_x = (cols >= corners[:, 1:]) & (cols < corners[:, 1:] + size)             # (n, W)
    inside = (in_y[:, :, None] & in_x[:, None, :]).unsqueeze(1)                  # (n, 1, H, W)
    return torch.where(inside, torch.tensor(fill, dtype=image.dtype, device=image.device), image)


# ----------------------------------------------------------------------------------------------
# Recomputing only the patch the square reaches (flat Sequential nets)
# ----------------------------------------------------------------------------------------------

_POINTWISE = (nn.ReLU, nn.LocalResponseNorm, nn.Identity)   # LRN mixes channels only, not positions
_AREA = 0.5   # stop patching once the patch would cover this fraction of a map: whole maps are then cheaper


@dataclass
class _Stage:
    """One windowed module (Conv2d or MaxPool2d) of the patched front, or a pointwise one (``window`` None)."""
    module: nn.Module
    window: tuple | None = None        # per axis (y, x): (kernel, stride, padding, dilation)
    span: tuple[int, int] = (0, 0)     # side of the input window an output patch needs
    margin: tuple[int, int] = (0, 0)   # rows/cols of padding added before the base input (top, left)
    base: torch.Tensor | None = None   # the unoccluded input of this module, padded: (1, C, Hp, Wp)
    in_size: tuple[int, int] = (0, 0)  # (H, W) of the module's input


def _plain(m: nn.Module, kinds) -> bool:
    """One of ``kinds`` whose forward is PyTorch's own (a subclass may pad or act differently) and with no hooks
    (the patching calls the functional forms, or the module on patches)."""
    return (isinstance(m, kinds) and any(type(m).forward is k.forward for k in kinds)
            and not (m._forward_hooks or m._forward_pre_hooks))


def _pointwise(m: nn.Module) -> bool:
    return _plain(m, _POINTWISE) and not getattr(m, "inplace", False)


def _windowed(m: nn.Module) -> tuple | None:
    """(kernel, stride, padding, dilation), each (y, x), when the module is a conv/pool the patching understands."""
    if _plain(m, (nn.Conv2d,)) and m.padding_mode == "zeros" and not isinstance(m.padding, str):
        return tuple(layers.pair(v) for v in (m.kernel_size, m.stride, m.padding, m.dilation))
    if _plain(m, (nn.MaxPool2d,)) and not m.return_indices:
        return tuple(layers.pair(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding, m.dilation))
    return None


def is_sequential(model: nn.Module) -> bool:
    """True when model(x) is its children applied in order, so a forward pass can be split between them."""
    return isinstance(model, nn.Sequential) and type(model).forward is nn.Sequential.forward


def _first(lo: int, window) -> int:
    """First output index whose window reaches input index ``lo`` (along one axis)."""
    k, s, p, d = window
    return -((d * (k - 1) - p - lo) // s)                              # ceil((lo + p - d(k-1)) / s)


def _plan(model: nn.Sequential, base: list[torch.Tensor], size: int, last_corner: tuple[int, int],
          stop: int) -> list[_Stage]:
    """The patched front: children[0:len(plan)], never past child ``stop``.

    ``base[i]`` is child i's input for the unoccluded image; ``last_corner`` the square's last top-left (y, x)."""
    stages, length = [], (size, size)
    lows, highs = (0, 0), last_corner                                  # the square's extreme corners
    for i, m in enumerate(list(model.children())[:stop]):
        if _pointwise(m):
            stages.append(_Stage(m))
            continue
        window = _windowed(m)
        if window is None or base[i].dim() != 4:
            break
        k, s, p, d = window                                            # each (y, x)
        out_size = base[i + 1].shape[-2:]
        new = tuple((length[a] - 1 + d[a] * (k[a] - 1)) // s[a] + 1 for a in range(2))
        if new[0] * new[1] > _AREA * out_size[0] * out_size[1]:
            break
        span = tuple((new[a] - 1) * s[a] + d[a] * (k[a] - 1) + 1 for a in range(2))
        lows = tuple(_first(lows[a], (k[a], s[a], p[a], d[a])) for a in range(2))
        highs = tuple(_first(highs[a], (k[a], s[a], p[a], d[a])) for a in range(2))
        in_size = tuple(base[i].shape[-2:])
        # Padding before and after the base input, enough for every position's window.
        before = tuple(max(0, -(lows[a] * s[a] - p[a])) for a in range(2))
        after = tuple(max(0, highs[a] * s[a] - p[a] + span[a] - in_size[a]) for a in range(2))
        # Conv pads with zeros; max-pooling ignores what lies outside the map (-inf), as PyTorch does,
        # including a ceil-mode window that hangs over the edge.
        value = 0.0 if isinstance(m, nn.Conv2d) else float("-inf")
        padded = F.pad(base[i], (before[1], after[1], before[0], after[0]), value=value)
        stages.append(_Stage(m, tuple(zip(k, s, p, d)), span, before, padded, in_size))
        length = new
    if not any(st.window is not None for st in stages):
        return []                                                      # pointwise modules alone gain nothing
    return stages


def _paste(dst: torch.Tensor, dst_lo: tuple[int, int], src: torch.Tensor, src_lo: tuple[int, int],
           valid: tuple[int, int]) -> None:
    """Copy the part of ``src`` (C, h, w) at map coordinates ``src_lo`` that lies inside both the map
    (0..valid) and ``dst`` (C, h', w') at ``dst_lo``; everything else in ``dst`` stays."""
    y0 = max(src_lo[0], dst_lo[0], 0)
    x0 = max(src_lo[1], dst_lo[1], 0)
    y1 = min(src_lo[0] + src.shape[-2], dst_lo[0] + dst.shape[-2], valid[0])
    x1 = min(src_lo[1] + src.shape[-1], dst_lo[1] + dst.shape[-1], valid[1])
    if y1 > y0 and x1 > x0:
        dst[:, y0 - dst_lo[0]:y1 - dst_lo[0], x0 - dst_lo[1]:x1 - dst_lo[1]] = \
            src[:, y0 - src_lo[0]:y1 - src_lo[0], x0 - src_lo[1]:x1 - src_lo[1]]


def _patched_front(stages: list[_Stage], corners: list[tuple[int, int]], size: int, fill: float,
                   image: torch.Tensor, out_base: torch.Tensor) -> torch.Tensor:
    """The front's output for every occluded copy: (n, C, h, w), the base maps with each copy's patch pasted in."""
    n = len(corners)
    patch = torch.full((n, image.shape[0], size, size), fill, dtype=image.dtype, device=image.device)
    lows = list(corners)                                               # each copy's patch, top-left in map coords
    for st in stages:
        if st.window is None:
            patch = st.module(patch)                                   # pointwise: the patch stays where it is
            continue
        firsts = [tuple(_first(lo[a], st.window[a]) for a in range(2)) for lo in lows]
        starts = [tuple(f[a] * st.window[a][1] - st.window[a][2] for a in range(2)) for f in firsts]
        (my, mx), (sy, sx) = st.margin, st.span
        windows = torch.stack([st.base[0, :, y + my:y + my + sy, x + mx:x + mx + sx] for y, x in starts])
        for w, start, p, lo in zip(windows, starts, patch, lows):
            _paste(w, start, p, lo, st.in_size)                        # this copy's changed input
        k, s, _, d = zip(*st.window)
        if isinstance(st.module, nn.Conv2d):
            m = st.module
            patch = F.conv2d(windows, m.weight, m.bias, s, 0, d, m.groups)
        else:
            patch = F.max_pool2d(windows, k, s, 0, d)
        lows = firsts
    out = out_base.expand(n, *out_base.shape[1:]).clone()
    for o, p, lo in zip(out, patch, lows):
        _paste(o, (0, 0), p, lo, out_base.shape[-2:])
    return out


# ----------------------------------------------------------------------------------------------
# The engine: every occluded copy's outputs, batch by batch
# ----------------------------------------------------------------------------------------------

class Runner:
    """Forward passes of the unoccluded image and of occluded copies; for a flat Sequential, optionally the
    output of child ``keep`` (e.g. relu5) from the same pass."""

    def __init__(self, model: nn.Module, image: torch.Tensor, size: int, stride: int, fill: float,
                 keep: int | None = None):
        self.model, self.image, self.size, self.stride, self.fill, self.keep = model, image, size, stride, fill, keep
        self.ny, self.nx = (image.shape[1] - size) // stride + 1, (image.shape[2] - size) // stride + 1
        self.children = list(model.children()) if is_sequential(model) else None
        x, self.kept = image.unsqueeze(0), None
        if self.children is None:
            self.logits, self.kept, self.stages = model(x), None, []
            return
        inputs = []                                                    # the unoccluded input of every child
        for i, m in enumerate(self.children):
            inputs.append(x.clone() if getattr(m, "inplace", False) else x)   # kept as it was before m ran
            x = m(x)
            if i == keep:
                self.kept = x
        inputs.append(x)
        self.logits = x
        last = ((self.ny - 1) * stride, (self.nx - 1) * stride)
        stop = len(self.children) if keep is None else keep + 1
        self.stages = _plan(model, inputs, size, last, stop)
        self.front_out = inputs[len(self.stages)]                      # unoccluded output of the patched front

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """(logits (n, K), kept output (n, ...) or None) for positions in row-major order, n <= batch_size."""
        tops = corners(self.ny, self.nx, self.stride, self.image.device)
        for start in range(0, len(tops), batch_size):
            chunk = tops[start:start + batch_size]
            if self.children is None:
                yield self.model(occluded(self.image, chunk, self.size, self.fill)), None
                continue
            if self.stages:
                x = _patched_front(self.stages, [tuple(c) for c in chunk.tolist()], self.size, self.fill,
                                   self.image, self.front_out)
            else:
                x = occluded(self.image, chunk, self.size, self.fill)
            kept = x if self.keep is not None and self.keep == len(self.stages) - 1 else None
            for i in range(len(self.stages), len(self.children)):
                x = self.children[i](x)
                if i == self.keep:
                    kept = x
            yield x, kept
