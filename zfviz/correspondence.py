"""Correspondence, Zeiler & Fergus (2014) §4.3 and Table 1: mask the same part of several images, compare the changes.

Explained in the chapter "§4.3 Correspondence" (book/correspondence).

"Deep models differ from many existing recognition approaches in that there is no explicit mechanism for
establishing correspondence between specific object parts in different images (e.g. faces have a particular
spatial configuration of the eyes and nose). However, an intriguing possibility is that deep models might be
implicitly computing them." ZF mask the same part of 5 images of dogs; for image i and layer l,
eps_i = x_i - x~_i (features of the original minus features of the masked image); the score is the mean over
pairs i != j of the fraction of dimensions in which sign(eps_i) and sign(eps_j) differ
(:func:`sign_change_score`; each pair's fraction: :func:`pair_sign_change`). Lower than for randomly placed
squares of the same size (:func:`random_squares`) means the network relates the part across images.

:func:`part_squares` puts a square at the same place of each object's box, :func:`mask_region` covers it, and
:func:`correspondence` runs the whole experiment (features from ``zfviz.activations``), under either convention
for a change of 0 or both from one forward pass.

Pixel regions use the data set's box convention ``(x0, y0, x1, y1)``, end-exclusive (``ClipArt.boxes``).
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch
from torch import nn

from .activations import check_layers, run_layers
from ._checks import check_batch_size, check_fill_image, check_finite, check_images, check_model

__all__ = ["pair_sign_change", "sign_change_score", "part_squares", "random_squares", "mask_region", "correspondence"]


def pair_sign_change(eps: torch.Tensor, ignore_zeros: bool = False) -> torch.Tensor:
    """Per pair of images, the fraction of dimensions where the signs of their feature changes differ.

    Explained in the chapter "§4.3 Correspondence" (book/correspondence): the terms
    H(sign(eps_i), sign(eps_j)) of the paper's Delta_l, one per unordered pair, so that a chapter can
    give the spread over pairs (Table 1's +-) beside the mean. :func:`sign_change_score` is their mean.

    Args:
        eps: (N, D), N >= 2: per image, original features minus masked features.
        ignore_zeros: what a zero change counts as (see :func:`sign_change_score`). ``False``: sign takes
            values -1, 0, +1, compared as they are over all D dimensions. ``True``: per pair, only the
            dimensions where both changes are non-zero count.
    Returns:
        (N(N-1)/2,) float64, the pairs (i, j), i < j, in the order of ``torch.triu_indices(N, N, 1)``:
        (0, 1), (0, 2), ..., (1, 2), ..., on eps's device. Each in [0, 1]; ``nan`` with ``ignore_zeros=True`` for a pair
        that shares no non-zero dimension.
    """
    if not isinstance(eps, torch.Tensor) or eps.dim() != 2 or eps.shape[0] < 2 or eps.shape[1] < 1:
        raise ValueError(f"eps must be a tensor (N, D) with N >= 2 images and D >= 1 dimensions; got "
                         f"{tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__}")
    if not isinstance(ignore_zeros, bool):
        raise TypeError(f"ignore_zeros must be True or False, got {ignore_zeros!r}")
    if eps.dtype == torch.bool or eps.is_complex():
        raise TypeError(f"eps must be a real-valued tensor (feature changes), got {eps.dtype}")
    check_finite("eps", eps)
    s = torch.sign(eps).double()
    pos, neg = (s > 0).double(), (s < 0).double()                     # (N, D) one-hot codes of the sign
    same = pos @ pos.T + neg @ neg.T                                  # (N, N) dims with the same non-zero sign
    if ignore_zeros:
        counted = (s != 0).double() @ (s != 0).double().T             # dims where both changed
    else:
        zero = 1 - pos - neg
        same = same + zero @ zero.T                                   # 0 vs 0 agrees
        counted = torch.full_like(same, float(eps.shape[1]))
    i, j = torch.triu_indices(len(s), len(s), offset=1, device=s.device)
    counted, differ = counted[i, j], (counted - same)[i, j]           # (pairs,)
    return torch.where(counted > 0, differ / counted.clamp(min=1), torch.full_like(counted, math.nan))


def sign_change_score(eps: torch.Tensor, ignore_zeros: bool = False) -> float:
    """Mean over pairs of images of the fraction of dimensions where the signs of their feature changes differ.

    Explained in the chapter "§4.3 Correspondence" (book/correspondence): the paper's
    Delta_l = mean_{i != j} H(sign(eps_i), sign(eps_j)), H the normalised Hamming distance.

    Args:
        eps: (N, D), N >= 2: per image, original features minus masked features.
        ignore_zeros: what a zero change counts as. After a ReLU many dimensions are 0 before and after
            masking, so eps is exactly 0 there; the paper does not say how it treated them.
            ``False`` (default): sign takes values -1, 0, +1 and H compares them as they are, so 0 vs 0
            agrees and 0 vs +-1 differs; H is over all D dimensions. ``True``: for each pair only
            the dimensions where both changes are non-zero count; a pair with none is left out of the mean.
    Returns:
        The mean over the N(N-1)/2 unordered pairs (the same as over ordered pairs i != j, H being
        symmetric) of :func:`pair_sign_change`: 0 when all images change the same way, 1 when every sign
        differs. ``nan`` with ``ignore_zeros=True`` when no pair shares a non-zero dimension.
    """
    pairs = pair_sign_change(eps, ignore_zeros)
    keep = ~pairs.isnan()
    return float(pairs[keep].mean()) if keep.any() else float("nan")


def _check_boxes(boxes, n: int | None = None, name: str = "boxes") -> torch.Tensor:
    boxes = torch.as_tensor(boxes)
    if (boxes.dim() != 2 or boxes.shape[1] != 4 or (n is not None and len(boxes) != n) or boxes.is_floating_point()
            or boxes.is_complex() or boxes.dtype == torch.bool):
        raise ValueError(f"{name} must be an integer tensor ({n if n is not None else 'N'}, 4) of "
                         f"(x0, y0, x1, y1), end-exclusive, as ClipArt.boxes; got {tuple(boxes.shape)} {boxes.dtype}")
    if (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any():
        raise ValueError(f"{name} must have x1 > x0 and y1 > y0 in every row; got {boxes.tolist()}")
    return boxes.long()


def part_squares(boxes, where: tuple[float, float], side: float) -> torch.Tensor:
    """A square per image at the same place relative to each object's box: "the same part" of each object.

    Explained in the chapter "§4.3 Correspondence" (book/correspondence).

    Args:
        boxes: (N, 4) integer (x0, y0, x1, y1), end-exclusive, e.g. ``ClipArt.boxes``.
        where: (u, v) the square's centre as a fraction of the box's width and height from its
            top-left corner: (0.5, 0.5) the middle, (0.3, 0.25) up and to the left.
        side: the square's side as a fraction of sqrt(box width * box height), so it scales with the object.
    Returns:
        (N, 4) integer squares (x0, y0, x1, y1), end-exclusive, at least 1 pixel; they may reach past the
        image, which :func:`mask_region` clips. Only renders that show the object the same way round
        (same flip, similar rotation) put the same part at the same place in the box.
    """
    boxes = _check_boxes(boxes)
    if (not isinstance(where, (tuple, list)) or len(where) != 2
            or not all(isinstance(w, numbers.Real) and not isinstance(w, bool) and 0 <= w <= 1 for w in where)):
        raise ValueError(f"where must be (u, v), fractions in [0, 1] of the box's width and height; got {where!r}")
    if isinstance(side, bool) or not isinstance(side, numbers.Real) or not 0 < side < math.inf:
        raise ValueError(f"side must be a finite fraction > 0 of the box's size, got {side!r}")
    x0, y0, x1, y1 = boxes.double().unbind(1)
    cx, cy = x0 + where[0] * (x1 - x0), y0 + where[1] * (y1 - y0)
    s = (side * ((x1 - x0) * (y1 - y0)).sqrt()).round().clamp(min=1)
    left, top = (cx - s / 2).round(), (cy - s / 2).round()
    return torch.stack([left, top, left + s, top + s], dim=1).long()


def random_squares(squares, bounds, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's control: per image, a square the size of ``squares[i]`` at a random place inside ``bounds[i]``.

    Explained in the chapter "§4.3 Correspondence" (book/correspondence).
    ``squares`` and ``bounds`` (N, 4) integer (x0, y0, x1, y1), end-exclusive; ``bounds`` is where the
    square must lie entirely (the whole image, (0, 0, W, H), or the object's box). Positions are uniform
    over the allowed top-left corners, drawn from ``generator`` (seed it for reproducible squares).
    Returns (N, 4).
    """
    squares = _check_boxes(squares, name="squares")
    bounds = _check_boxes(bounds, len(squares), name="bounds")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator (torch.Generator().manual_seed(0)) or None, "
                        f"got {type(generator).__name__}")
    w, h = squares[:, 2] - squares[:, 0], squares[:, 3] - squares[:, 1]
    room_x, room_y = bounds[:, 2] - bounds[:, 0] - w, bounds[:, 3] - bounds[:, 1] - h
    if (room_x < 0).any() or (room_y < 0).any():
        raise ValueError("every square must fit inside its bounds; got squares "
                         f"{squares.tolist()} for bounds {bounds.tolist()}")
    u = torch.rand(len(squares), 2, generator=generator, dtype=torch.float64)
    x0 = bounds[:, 0] + (u[:, 0] * (room_x + 1)).long().clamp(max=room_x)   # uniform over 0..room
    y0 = bounds[:, 1] + (u[:, 1] * (room_y + 1)).long().clamp(max=room_y)
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=1)


def mask_region(images: torch.Tensor, regions, fill: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Cover one region per image with ``fill``: a box (the paper's masked part) or any boolean mask.

    Explained in the chapter "§4.3 Correspondence" (book/correspondence).

    Args:
        images: (N, C, H, W) float, e.g. preprocessed, where fill 0 is the mean image.
        regions: (N, 4) integer boxes (x0, y0, x1, y1), end-exclusive, clipped to the image; or
            (N, H, W) bool masks, e.g. ``ClipArt.masks`` to cover whole objects.
        fill: a number, or a (C, H, W) / (N, C, H, W) image whose pixels show through the region.
    Returns:
        (N, C, H, W), a new tensor; outside the regions it equals ``images`` exactly.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (N, C, H, W); got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    check_finite("images", images)
    n, _, height, width = images.shape
    regions = torch.as_tensor(regions)
    if regions.dtype == torch.bool:
        if regions.shape != (n, height, width):
            raise ValueError(f"regions given as masks must be bool ({n}, {height}, {width}), one per image; got "
                             f"{tuple(regions.shape)}")
        masks = regions
    else:
        boxes = _check_boxes(regions, n, name="regions")
        ys, xs = torch.arange(height).view(1, -1, 1), torch.arange(width).view(1, 1, -1)
        b = boxes.view(n, 4, 1, 1)
        masks = (xs >= b[:, 0]) & (xs < b[:, 2]) & (ys >= b[:, 1]) & (ys < b[:, 3])   # (N, H, W)
    fill = check_fill_image(fill, images)
    return torch.where(masks.to(images.device).unsqueeze(1), fill, images)


def _check_conventions(ignore_zeros) -> list[bool]:
    """``ignore_zeros``: a bool, or a non-empty tuple/list of distinct bools (both conventions from one pass)."""
    listed = list(ignore_zeros) if isinstance(ignore_zeros, (tuple, list)) else [ignore_zeros]
    if not listed or not all(isinstance(v, bool) for v in listed) or len(set(listed)) != len(listed):
        raise TypeError(f"ignore_zeros must be True or False, or a tuple of both such as (False, True) to score "
                        f"the same features each way; got {ignore_zeros!r}")
    return listed


@torch.no_grad()
def correspondence(model: nn.Module, images: torch.Tensor, parts: dict, layers: Sequence[int] = (5, 7),
                   fill: float | torch.Tensor = 0.0, ignore_zeros: bool | Sequence[bool] = False,
                   batch_size: int = 64) -> dict:
    """§4.3: the sign-change score of each masked part at each layer (lower: the part is related across images).

    Explained in the chapter "§4.3 Correspondence" (book/correspondence).

    Args:
        model: as in ``zfviz.activations.layer_features``.
        images: (N, 3, H, W), N >= 2 preprocessed images of one class (the paper: 5 dogs facing the camera).
        parts: {name: (N, 4) boxes (x0, y0, x1, y1), one per image}, e.g. from :func:`part_squares`,
            and the control from :func:`random_squares` (several seeds give a less noisy control).
        layers: the paper's layers (5 and 7 in the paper). fill: what a masked region shows (0 = the
            mean image on preprocessed input).
        ignore_zeros: what a change of 0 counts as, see :func:`sign_change_score`; or a tuple of both,
            ``(False, True)``, to score the same features (one forward pass) both ways.
        batch_size: images per forward pass.
    Returns:
        ``{name: {layer: Delta}}`` with Delta = ``sign_change_score(eps, ignore_zeros)``, eps (N, D) the layer's
        features of the original images minus those of the masked ones (layer 5: relu5's map, before pooling).
        For a tuple ``ignore_zeros``: ``{convention: {name: {layer: Delta}}}``, one entry per convention.
    """
    check_model(model)
    check_images(model, images)
    layers = check_layers(model, layers)
    check_batch_size(batch_size, "images")
    conventions = _check_conventions(ignore_zeros)
    if len(images) < 2:
        raise ValueError(f"correspondence compares pairs of images: pass N >= 2 images, got {len(images)}")
    if not isinstance(parts, dict) or not parts:
        raise ValueError("parts must be a non-empty dict {name: (N, 4) boxes}")
    masked = [mask_region(images, regions, fill) for regions in parts.values()]
    feats, _ = run_layers(model, torch.cat([images, *masked]), layers, logits=False, batch_size=batch_size)
    n = len(images)
    eps = {name: {k: f[:n] - f[p * n:(p + 1) * n] for k, f in feats.items()} for p, name in enumerate(parts, start=1)}
    scores = {ignore: {name: {k: sign_change_score(e, ignore) for k, e in by_layer.items()}
                       for name, by_layer in eps.items()} for ignore in conventions}
    return scores if isinstance(ignore_zeros, (tuple, list)) else scores[ignore_zeros]
