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

Speed. The occluded copies run in batches of ``batch_size``, through ``zfviz._occlusion_runner``: for the flat
``zfviz.models`` nets it recomputes only the patch of the first layers' maps that the square reaches (exact up
to float rounding); any other model runs whole.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import _occlusion_runner, deconv, layers
from ._checks import (as_int, check_batch_size, check_fill, check_image, check_image_size, check_images, check_int,
                      check_layer, check_model, check_occluder, check_target, warn_if_training)

__all__ = ["occlusion_map", "occlusion_probabilities", "occlusion_panels", "OcclusionPanels", "occlude",
           "occlusion_grid", "map_extent", "energy_under_square", "map_correlation", "fig7_bc", "Fig7BC",
           "mask_share"]


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
        check_int(name, v, 1)
    size = check_int("size", size, 1, min(height, width), f" (the occluder's side; the image is {height}x{width})")
    stride = check_int("stride", stride, 1)
    return (height - size) // stride + 1, (width - size) // stride + 1


def map_extent(shape: tuple[int, int], size: int, stride: int) -> tuple[float, float, float, float]:
    """Where an occlusion map (ny, nx) lies over its image: ``imshow(map, extent=map_extent(map.shape, size, stride))``.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion). Returns (left, right, bottom, top) in
    pixel coordinates: cell (i, j) is centred on its square's centre, (i * stride + (size - 1) / 2,
    j * stride + (size - 1) / 2), and is ``stride`` pixels wide.
    """
    yx = tuple(as_int(v) for v in shape) if isinstance(shape, (tuple, list, torch.Size)) else ()
    if len(yx) != 2 or None in yx or min(yx) < 1:
        raise ValueError(f"shape must be the map's (ny, nx), two ints >= 1 (occlusion_map(...).shape); got {shape!r}")
    size = check_int("size", size, 1, why=" (the occluder's side)")
    stride = check_int("stride", stride, 1, why=" (pixels between neighbouring positions of the occluder)")
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
    check_image(image)
    height, width = image.shape[-2:]
    size = check_int("size", size, 1, min(height, width), f" (the occluder's side; the image is {height}x{width})")
    fill = check_fill(fill)
    yx = tuple(as_int(v) for v in position) if isinstance(position, (tuple, list, torch.Tensor)) else ()
    if len(yx) != 2 or None in yx or not (0 <= yx[0] <= height - size and 0 <= yx[1] <= width - size):
        raise ValueError(f"position must be the square's top-left (y, x) with 0 <= y <= {height - size} and "
                         f"0 <= x <= {width - size} (a {size}-pixel square inside a {height}x{width} image); "
                         f"got {position!r}")
    out = image.clone()
    out[:, yx[0]:yx[0] + size, yx[1]:yx[1] + size] = fill
    return out


def _prepare(model, image, target, size, stride, fill, batch_size):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module returning logits (N, num_classes); "
                        f"got {type(model).__name__}")
    check_image(image)
    size, stride = check_occluder(image, size, stride)
    fill = check_fill(fill)
    batch_size = check_batch_size(batch_size)
    if _occlusion_runner.is_sequential(model):                          # its layers' geometry is known: check the image fits them all
        check_image_size(model, image, name="image")
    warn_if_training(model)
    dtype = layers.model_dtype(model) or image.dtype          # the dtype the occluded copies are computed in
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
            ``zfviz.pretrained.efficientnet_lite0()``. Used as it is: call ``model.eval()`` first (a warning says
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
    run = _occlusion_runner.Runner(model, layers.to_model(model, image, "image"), size, stride, fill)
    target = check_target(target, run.logits)
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
    run = _occlusion_runner.Runner(model, layers.to_model(model, image, "image"), size, stride, fill)
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
    if not _occlusion_runner.is_sequential(model):
        raise ValueError(f"occlusion_panels needs a flat nn.Sequential conv network (e.g. zfviz.models.zfnet) "
                         f"to read layer {layer}'s feature maps; got a {type(model).__name__}. "
                         f"For any other model use occlusion_map")
    check_model(model)
    check_layer(model, layer)
    x = layers.to_model(model, image, "image")
    check_images(model, x.unsqueeze(0), "image")
    keep = len(layers.stack(model, layer)) - 1                        # index of relu{layer}
    run = _occlusion_runner.Runner(model, x, size, stride, fill, keep=keep)
    target = check_target(target, run.logits)
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


class Fig7BC(NamedTuple):
    """Panels (b) and (c) of ZF Fig. 7 on the occluder's grid, as :func:`fig7_bc` returns them.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion). ``drop`` (ny, nx) float64: the watched map's
    total activation without the square minus with it (panel b as a loss); ``energy`` (ny, nx) float64: the share
    of the map's projection (panel c) under each square (:func:`energy_under_square`); ``total``: the map's total
    activation in the unoccluded image.
    """
    drop: torch.Tensor
    energy: torch.Tensor
    total: float


def fig7_bc(model: nn.Module, image: torch.Tensor, panels: OcclusionPanels, size: int, stride: int,
            layer: int = 5) -> Fig7BC:
    """Panel (b) as a drop and panel (c) as energy under the square, ready to correlate (:func:`map_correlation`).

    Explained in the chapter "Occlusion sensitivity" (book/occlusion), which tests the paper's reading of Fig. 7:
    where the square covers what the projection shows, the map loses its activation. ``image`` (3, H, W) and
    ``panels`` from :func:`occlusion_panels` with the same ``size``, ``stride`` and ``layer``.
    """
    if not isinstance(panels, OcclusionPanels):
        raise TypeError(f"panels must be what occlusion_panels returns, got {type(panels).__name__}")
    check_image(image)
    fmap = deconv.feature_map(model, image[None], layer)[0, panels.feature_channel]     # (h, w)
    total = float(fmap.sum())
    drop = total - panels.feature_total.double()
    energy = energy_under_square(panels.projection, size, stride)
    if drop.shape != energy.shape:
        raise ValueError(f"panels are on a {tuple(drop.shape)} grid, but size={size}, stride={stride} give "
                         f"{tuple(energy.shape)}: pass the size and stride occlusion_panels was called with")
    return Fig7BC(drop, energy, total)


def mask_share(mask: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """The share of each square position that lies on the object: (ny, nx) float64 in [0, 1].

    Explained in the chapter "Occlusion sensitivity" (book/occlusion), the control for :func:`fig7_bc`: does the
    drop follow the projection, or merely the object? ``mask`` (H, W) bool, e.g. ``ClipArt.masks[i]``.
    """
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (H, W); got "
                         f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    occlusion_grid(mask.shape[0], mask.shape[1], size, stride)                 # validates size and stride
    return F.avg_pool2d(mask.double()[None, None], size, stride)[0, 0]
