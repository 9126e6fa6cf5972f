"""Occlusion sensitivity, Zeiler & Fergus (2014) §4.2 and Fig. 7: slide a grey square over the image.

Explained in the chapter "Occlusion sensitivity" (book/occlusion).

"We systematically occlude different portions of the input image with a grey square, and monitor the output of
the classifier." For each position of the square the paper records (d) the probability of the correct class,
(e) the most probable class, and (b) the total activation of the strongest layer-5 feature map of the
unoccluded image, whose projection (c) shows what that map responds to. :func:`occlusion_map` gives (d);
:func:`occlusion_panels` gives (b) to (e) from the same forward passes.

Positions. The square has side ``size`` and its top-left corner at ``(i * stride, j * stride)``, for every
position where it lies wholly inside the image: ``ny = (H - size) // stride + 1`` rows and
``nx = (W - size) // stride + 1`` columns, in row-major order. Map cell ``(i, j)`` is the square whose centre
is pixel ``(i * stride + (size - 1) / 2, j * stride + (size - 1) / 2)``. (Captum's ``Occlusion`` adds one more row
and column, a square clipped at the edge, when ``stride`` does not divide ``H - size``; where it does, the grids are
the same, and Captum's attribution of a pixel is the mean over the squares covering it of P(unoccluded) - map.)

The square. ``fill`` is a value in the space of the image tensor the model takes, written into every channel.
For a network whose preprocessing subtracts the mean image (the paper's, and the book's teaching ZFNet),
``fill=0`` is the mean image there: the paper's "grey square".

Speed. The occluded copies run in batches of ``batch_size``. For a flat ``nn.Sequential`` whose first layers are
convolutions, ReLUs, max-pools and contrast normalisation (the ``zfviz.models`` nets), the square changes only a
small patch of those layers' maps: the unoccluded image's maps are computed once, and for each occluded copy
only the patch the square can reach is recomputed and pasted into them (exact up to float rounding), until the
patch would cover half of a map; the rest of the network runs on whole maps. Any other model runs whole.
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import deconv

__all__ = ["occlusion_map", "occlusion_probabilities", "occlusion_panels", "OcclusionPanels", "occlude",
           "occlusion_grid", "map_extent", "energy_under_square", "map_correlation"]


# ----------------------------------------------------------------------------------------------
# Validation: fail early, say what is allowed
# ----------------------------------------------------------------------------------------------

def _check_image(image) -> None:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor (3, H, W), got {type(image).__name__}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be one image (3, H, W), preprocessed as the model expects; got shape "
                         f"{tuple(image.shape)}. For a batch, call once per image; for (1, 3, H, W) use image[0]")
    if not image.is_floating_point():
        raise TypeError(f"image must be a float tensor (preprocessed as the model expects); got {image.dtype}")
    deconv._check_finite("image", image)


def _check_int(name: str, value, lo: int, hi: int | None = None, why: str = "") -> int:
    v = deconv._as_int(value)
    if v is None or v < lo or (hi is not None and v > hi):
        allowed = f"an int in {lo}..{hi}" if hi is not None else f"an int >= {lo}"
        raise ValueError(f"{name} must be {allowed}{why}; got {value!r}")
    return v


def _check_geometry(image: torch.Tensor, size, stride) -> tuple[int, int]:
    height, width = image.shape[-2:]
    size = _check_int("size", size, 1, min(height, width), f" (the occluder's side; the image is {height}x{width})")
    stride = _check_int("stride", stride, 1, why=" (pixels between neighbouring positions of the occluder)")
    return size, stride


def _check_fill(fill) -> float:
    if isinstance(fill, torch.Tensor) and fill.numel() == 1 and fill.is_floating_point():
        fill = fill.item()
    if isinstance(fill, bool) or not isinstance(fill, numbers.Real):
        raise TypeError(f"fill must be a real number (the occluder's value in the model's input space, every "
                        f"channel); got {fill!r}")
    if not math.isfinite(fill):
        raise ValueError(f"fill must be a finite number (the occluder's value in the model's input space, every "
                         f"channel; 0 is the mean image for mean-subtracted input); got {fill!r}")
    return float(fill)


def _check_batch_size(batch_size) -> int:
    return _check_int("batch_size", batch_size, 1, why=" (occluded copies per forward pass)")


def _check_target(target, logits: torch.Tensor) -> int:
    if logits.dim() != 2:
        raise ValueError(f"the model must return logits (N, num_classes); it returned shape {tuple(logits.shape)}")
    n = logits.shape[1]
    return _check_int("target", target, 0, n - 1, f" (the model has {n} classes)")


def _warn_if_training(model: nn.Module) -> None:
    # Dropout (and batch statistics) would make every occluded copy's output random, not just different.
    random = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
    if any(m.training and isinstance(m, random) for m in model.modules()):
        warnings.warn("the model is in training mode, so dropout/batch norm make the map random; "
                      "call model.eval() first", stacklevel=3)


def _device(model: nn.Module, image: torch.Tensor) -> torch.device:
    return deconv._device(model, image)


# ----------------------------------------------------------------------------------------------
# Positions and occluded copies
# ----------------------------------------------------------------------------------------------

def occlusion_grid(height: int, width: int, size: int, stride: int) -> tuple[int, int]:
    """The number of occluder positions ``(ny, nx)`` in an ``height`` x ``width`` image.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).
    ``ny = (height - size) // stride + 1``, likewise ``nx``: every top-left corner ``(i * stride, j * stride)``
    with the square wholly inside the image. A last strip narrower than ``stride`` is never covered on its own.
    """
    for name, v in (("height", height), ("width", width)):
        _check_int(name, v, 1)
    size = _check_int("size", size, 1, min(height, width), f" (the occluder's side; the image is {height}x{width})")
    stride = _check_int("stride", stride, 1)
    return (height - size) // stride + 1, (width - size) // stride + 1


def map_extent(shape: tuple[int, int], size: int, stride: int) -> tuple[float, float, float, float]:
    """Where an occlusion map (ny, nx) lies over its image: ``imshow(map, extent=map_extent(map.shape, size, stride))``.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion). Returns (left, right, bottom, top) in
    pixel coordinates: cell (i, j) is centred on its square's centre, (i * stride + (size - 1) / 2,
    j * stride + (size - 1) / 2), and is ``stride`` pixels wide.
    """
    yx = tuple(deconv._as_int(v) for v in shape) if isinstance(shape, (tuple, list, torch.Size)) else ()
    if len(yx) != 2 or None in yx or min(yx) < 1:
        raise ValueError(f"shape must be the map's (ny, nx), two ints >= 1 (occlusion_map(...).shape); got {shape!r}")
    size = _check_int("size", size, 1, why=" (the occluder's side)")
    stride = _check_int("stride", stride, 1, why=" (pixels between neighbouring positions of the occluder)")
    ny, nx = yx
    first = (size - 1) / 2 - stride / 2                       # the outer edge of the first cell
    return first, first + nx * stride, first + ny * stride, first


def energy_under_square(projection: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """Fig. 7 (c) on the occluder's grid: the share of a projection's energy each square position covers.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion), where it is set beside panel (b): if the
    deconvnet shows what a feature map responds to, the map should lose its activation where the square covers
    the projection's energy.

    Args:
        projection: (C, H, W) a deconvnet projection (``OcclusionPanels.projection``), or any image-sized signal.
        size, stride: the occluder's, as in :func:`occlusion_map`.
    Returns:
        (ny, nx) float64, cell (i, j) = sum of ``projection**2`` (over channels) inside the square with top-left
        corner ``(i * stride, j * stride)``, divided by the sum over the whole image: in [0, 1], on the grid of
        :func:`occlusion_map`.
    """
    if not isinstance(projection, torch.Tensor) or projection.dim() != 3 or not projection.is_floating_point():
        raise ValueError(f"projection must be a float tensor (C, H, W); got "
                         f"{tuple(projection.shape) if isinstance(projection, torch.Tensor) else type(projection).__name__}"
                         f"{' ' + str(projection.dtype) if isinstance(projection, torch.Tensor) else ''}")
    if not torch.isfinite(projection).all():
        raise ValueError("projection must be finite (no nan or inf)")
    height, width = projection.shape[-2:]
    occlusion_grid(height, width, size, stride)                           # validates size and stride
    energy = projection.detach().double().pow(2).sum(0)                   # (H, W)
    total = energy.sum()
    if not total > 0:
        raise ValueError("projection is zero everywhere: it has no energy to locate")
    window = F.avg_pool2d(energy[None, None], size, stride)[0, 0] * size * size    # sum inside each square
    return window / total


def map_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation between two maps on the same grid (e.g. Fig. 7 (b)'s drop and (c)'s energy).

    Explained in the chapter "Occlusion sensitivity" (book/occlusion). ``a`` and ``b`` of the same shape, at
    least 2 cells; returns a float in [-1, 1], ``nan`` when either map is constant.
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor (a map), got {type(t).__name__}")
    if a.shape != b.shape or a.numel() < 2:
        raise ValueError(f"a and b must be maps of the same shape with at least 2 cells; got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    pair = torch.stack([a.detach().double().flatten(), b.detach().double().flatten()])
    if (pair.std(dim=1) == 0).any():                                 # a constant map has no correlation
        return float("nan")
    return float(torch.corrcoef(pair)[0, 1])


def occlude(image: torch.Tensor, position: tuple[int, int], size: int, fill: float = 0.0) -> torch.Tensor:
    """A copy of ``image`` (3, H, W) with a ``size`` x ``size`` square of value ``fill`` at ``position`` = (y, x).

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).
    ``position`` is the square's top-left pixel; the square must lie inside the image. ``fill`` is in the
    image tensor's own space (every channel); the input is not modified.
    """
    _check_image(image)
    height, width = image.shape[-2:]
    size = _check_int("size", size, 1, min(height, width), f" (the occluder's side; the image is {height}x{width})")
    fill = _check_fill(fill)
    yx = tuple(deconv._as_int(v) for v in position) if isinstance(position, (tuple, list, torch.Tensor)) else ()
    if len(yx) != 2 or None in yx or not (0 <= yx[0] <= height - size and 0 <= yx[1] <= width - size):
        raise ValueError(f"position must be the square's top-left (y, x) with 0 <= y <= {height - size} and "
                         f"0 <= x <= {width - size} (a {size}-pixel square inside a {height}x{width} image); "
                         f"got {position!r}")
    out = image.clone()
    out[:, yx[0]:yx[0] + size, yx[1]:yx[1] + size] = fill
    return out


def _corners(ny: int, nx: int, stride: int, device) -> torch.Tensor:
    """Top-left (y, x) of every position, row-major: (ny * nx, 2)."""
    ys = torch.arange(ny, device=device) * stride
    xs = torch.arange(nx, device=device) * stride
    return torch.cartesian_prod(ys, xs).view(-1, 2)


def _occluded(image: torch.Tensor, corners: torch.Tensor, size: int, fill: float) -> torch.Tensor:
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


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


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
        return tuple(_pair(v) for v in (m.kernel_size, m.stride, m.padding, m.dilation))
    if _plain(m, (nn.MaxPool2d,)) and not m.return_indices:
        return tuple(_pair(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding, m.dilation))
    return None


def _sequential(model: nn.Module) -> bool:
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

class _Runner:
    """Forward passes of the unoccluded image and of occluded copies; for a flat Sequential, optionally the
    output of child ``keep`` (e.g. relu5) from the same pass."""

    def __init__(self, model: nn.Module, image: torch.Tensor, size: int, stride: int, fill: float,
                 keep: int | None = None):
        self.model, self.image, self.size, self.stride, self.fill, self.keep = model, image, size, stride, fill, keep
        self.ny, self.nx = (image.shape[1] - size) // stride + 1, (image.shape[2] - size) // stride + 1
        self.children = list(model.children()) if _sequential(model) else None
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
        corners = _corners(self.ny, self.nx, self.stride, self.image.device)
        for start in range(0, len(corners), batch_size):
            chunk = corners[start:start + batch_size]
            if self.children is None:
                yield self.model(_occluded(self.image, chunk, self.size, self.fill)), None
                continue
            if self.stages:
                x = _patched_front(self.stages, [tuple(c) for c in chunk.tolist()], self.size, self.fill,
                                   self.image, self.front_out)
            else:
                x = _occluded(self.image, chunk, self.size, self.fill)
            kept = x if self.keep is not None and self.keep == len(self.stages) - 1 else None
            for i in range(len(self.stages), len(self.children)):
                x = self.children[i](x)
                if i == self.keep:
                    kept = x
            yield x, kept


def _prepare(model, image, target, size, stride, fill, batch_size):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module returning logits (N, num_classes); "
                        f"got {type(model).__name__}")
    _check_image(image)
    size, stride = _check_geometry(image, size, stride)
    fill = _check_fill(fill)
    batch_size = _check_batch_size(batch_size)
    if _sequential(model):                          # its layers' geometry is known: check the image fits them all
        deconv._check_image_size(model, image, name="image")
    _warn_if_training(model)
    dtype = deconv._model_dtype(model) or image.dtype          # the dtype the occluded copies are computed in
    if abs(fill) > torch.finfo(dtype).max:
        raise ValueError(f"fill must be a finite number that fits the model's {dtype} (|fill| <= "
                         f"{torch.finfo(dtype).max:.4g}); got {fill!r}")
    return size, stride, fill, batch_size


@torch.no_grad()
def occlusion_map(model: nn.Module, image: torch.Tensor, target: int, size: int, stride: int,
                  fill: float = 0.0, batch_size: int = 64) -> torch.Tensor:
    """The probability of class ``target`` with a grey square at every position (ZF §4.2, Fig. 7d).

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).

    Args:
        model: any ``nn.Module`` mapping (N, 3, H, W) to logits (N, num_classes), e.g. the teaching ZFNet or
            ``zfviz.models.efficientnet_lite0()``. Used as it is: call ``model.eval()`` first (a warning says
            so when dropout or batch norm is in training mode). Not modified.
        image: (3, H, W) float, finite, already preprocessed: what the model takes; other float dtypes are converted
            to the model's (float16 exactly, float64 rounded to float32).
        target: the class whose probability is mapped, 0..num_classes-1.
        size: the square's side in pixels, 1..min(H, W).
        stride: pixels between neighbouring positions, >= 1.
        fill: the square's value in the image tensor's space, every channel. ``0.0`` is the mean image for a
            mean-subtracted input (the paper's grey square).
        batch_size: occluded copies per forward pass; the result does not depend on it (up to last-bit float
            rounding, as CPU kernels may sum in another order for another batch size), the speed does. 64 suits
            the teaching ZFNet on a CPU (about half the time per copy of one at a time); on a CPU a network
            with big maps, such as EfficientNet-Lite0 at 224 px, runs fastest with batch_size=1 (its maps
            outgrow the caches); a GPU wants large batches.
    Returns:
        (ny, nx) float on the image's device, ``ny = (H - size) // stride + 1`` (likewise nx): cell (i, j) is
        softmax(model(occluded copy))[target] with the square's top-left corner at (i * stride, j * stride).
        One forward pass of the unoccluded image (to check ``target``) plus ny * nx occluded ones, no gradients.
    """
    size, stride, fill, batch_size = _prepare(model, image, target, size, stride, fill, batch_size)
    run = _Runner(model, deconv._to_model(model, image, "image"), size, stride, fill)
    target = _check_target(target, run.logits)
    probs = [logits.softmax(dim=1)[:, target] for logits, _ in run.batches(batch_size)]
    return torch.cat(probs).view(run.ny, run.nx).to(image.device)


@torch.no_grad()
def occlusion_probabilities(model: nn.Module, image: torch.Tensor, size: int, stride: int, fill: float = 0.0,
                            batch_size: int = 64) -> torch.Tensor:
    """Every class's probability with the square at every position: panels (d) and (e) of Fig. 7 for any model.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).
    Arguments as in :func:`occlusion_map`, without ``target``. Returns (ny, nx, num_classes) float, the softmax
    of each occluded copy: ``[..., target]`` is :func:`occlusion_map`'s map and ``.argmax(-1)`` the most
    probable class per position (panel e), from the same forward passes.
    """
    size, stride, fill, batch_size = _prepare(model, image, 0, size, stride, fill, batch_size)
    run = _Runner(model, deconv._to_model(model, image, "image"), size, stride, fill)
    probs = torch.cat([logits.softmax(dim=1) for logits, _ in run.batches(batch_size)])
    return probs.view(run.ny, run.nx, -1).to(image.device)


class OcclusionPanels(NamedTuple):
    """The panels of ZF Fig. 7 for one image, as :func:`occlusion_panels` returns them.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).

    ``prob`` (ny, nx): P(target) per position (panel d, equal to :func:`occlusion_map`); ``top_class`` (ny, nx)
    long and ``top_prob`` (ny, nx): the most probable class and its probability per position (panel e);
    ``feature_channel``: the layer's strongest feature map in the unoccluded image (largest single activation);
    ``feature_position``: (y, x) of that activation in the map; ``feature_total`` (ny, nx): the map's summed
    activation per position (panel b); ``projection`` (3, H, W): the deconvnet projection of that activation
    (panel c, ``zfviz.deconv.project``); ``image_prob``: P(target) of the unoccluded image.
    """
    prob: torch.Tensor
    top_class: torch.Tensor
    top_prob: torch.Tensor
    feature_channel: int
    feature_position: tuple[int, int]
    feature_total: torch.Tensor
    projection: torch.Tensor
    image_prob: float


@torch.no_grad()
def occlusion_panels(model: nn.Module, image: torch.Tensor, target: int, size: int, stride: int,
                     fill: float = 0.0, layer: int = 5, batch_size: int = 64) -> OcclusionPanels:
    """All of ZF Fig. 7 (b)-(e) from one pass of occluded copies: probabilities, top class and a feature map's total.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).

    Args:
        model: a flat ``nn.Sequential`` conv network as ``zfviz.deconv.project`` takes (``zfviz.models.zfnet``,
            the teaching ZFNet); call ``model.eval()`` first. Not modified.
        image, target, size, stride, fill, batch_size: as in :func:`occlusion_map`.
        layer: the conv layer whose feature maps are watched, 1..5 (its rectified map relu{layer}, as in
            ``zfviz.deconv.feature_map``); 5 in the paper.
    Returns:
        :class:`OcclusionPanels`. The strongest map is the one with the largest single activation in the
        unoccluded image (first maximum on ties); its total activation under each occluder comes from the same
        forward pass as the probabilities.
    """
    size, stride, fill, batch_size = _prepare(model, image, target, size, stride, fill, batch_size)
    if not _sequential(model):
        raise ValueError(f"occlusion_panels needs a flat nn.Sequential conv network (e.g. zfviz.models.zfnet) "
                         f"to read layer {layer}'s feature maps; got a {type(model).__name__}. "
                         f"For any other model use occlusion_map")
    deconv._check_model(model)
    deconv._check_layer(model, layer)
    x = deconv._to_model(model, image, "image")
    deconv._check_images(model, x.unsqueeze(0), "image")
    keep = len(deconv._stack(model, layer)) - 1                        # index of relu{layer}
    run = _Runner(model, x, size, stride, fill, keep=keep)
    target = _check_target(target, run.logits)
    fmap = run.kept[0]                                                 # (C, h, w) of the unoccluded image
    channel = int(fmap.amax(dim=(1, 2)).argmax())
    flat = int(fmap[channel].flatten().argmax())                       # first maximum, as project takes it
    position = (flat // fmap.shape[2], flat % fmap.shape[2])
    probs, totals = [], []
    for logits, kept in run.batches(batch_size):
        probs.append(logits.softmax(dim=1))
        totals.append(kept[:, channel].sum(dim=(1, 2)))
    probs = torch.cat(probs)                                           # (ny * nx, K)
    top_prob, top_class = probs.max(dim=1)
    shape = (run.ny, run.nx)
    projection = deconv.project(model, x.unsqueeze(0), layer, channel, position)[0]
    dev = image.device
    return OcclusionPanels(probs[:, target].view(shape).to(dev), top_class.view(shape).to(dev),
                           top_prob.view(shape).to(dev), channel, position, torch.cat(totals).view(shape).to(dev),
                           projection.to(dev), float(run.logits.softmax(dim=1)[0, target]))
