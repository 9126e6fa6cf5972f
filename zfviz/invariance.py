"""Feature invariance, Zeiler & Fergus (2014) §4 and Fig. 5: move the image, see how far each layer's features move.

Explained in the chapter "Feature invariance" (book/invariance).

"Fig. 5 shows 5 example images being translated, rotated and scaled by varying degrees while looking at the
changes in the feature vectors from the top and bottom layers of the model, relative to the untransformed
feature. Small transformations have a dramatic effect in the first layer of the model, but a lesser impact at
the top feature layer, being quasi-linear for translation & scaling."

:func:`transform` moves images (vertical shift in whole pixels, zoom about the centre, rotation about the
centre; :data:`TRANSFORMS` names the three) and :func:`invariance` reports, per amount, the raw Euclidean
distance of the layer features (``zfviz.activations.layer_features``) to those of the untransformed image,
and P(true label), in an :class:`Invariance`.
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .activations import check_layers, run_layers
from ._checks import check_batch_size, check_fill_image, check_finite, check_images, check_model

__all__ = ["transform", "TRANSFORMS", "invariance", "Invariance"]

TRANSFORMS = ("translate", "scale", "rotate")


def _check_amount(kind: str, amount, height: int) -> float:
    if isinstance(amount, torch.Tensor) and amount.numel() == 1:
        amount = amount.item()
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or not math.isfinite(amount):
        raise ValueError(f"amount for {kind!r} must be a finite number, got {amount!r}")
    if kind == "translate" and (amount != round(amount) or abs(amount) >= height):
        raise ValueError(f"'translate' moves by whole pixels: amount must be an integer with |amount| < {height} "
                         f"(the image height); got {amount!r}")
    if kind == "scale" and not amount > 0:
        raise ValueError(f"'scale' is a zoom factor: amount must be > 0 (1 is the identity, the paper uses "
                         f"1..1.8); got {amount!r}")
    return float(amount)


def _shift_rows(images: torch.Tensor, k: int, fill: torch.Tensor) -> torch.Tensor:
    """Move every image down by k rows (up for k < 0); the k rows it uncovers take ``fill``'s values there."""
    out = torch.broadcast_to(fill, images.shape).clone()   # (N, C, H, W), fill everywhere to start
    height = images.shape[-2]
    if k >= 0:
        out[..., k:, :] = images[..., :height - k, :]
    else:
        out[..., :height + k, :] = images[..., -k:, :]
    return out                                        # (N, C, H, W)


def _warp(images: torch.Tensor, theta: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling by the affine map ``theta`` (2, 3) from output to input coordinates.

    Where the output samples outside the image, ``fill`` shows through: the weight each output pixel
    gives to real pixels is the same map applied to an image of ones, so the edge blends smoothly.
    """
    n, _, height, width = images.shape
    grid = F.affine_grid(theta.to(images).expand(n, 2, 3), (n, 1, height, width), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = F.grid_sample(torch.ones_like(images[:, :1]), grid, mode="bilinear",
                           padding_mode="zeros", align_corners=False)
    return warped + (1 - inside) * fill               # (N, C, H, W)


def transform(images: torch.Tensor, kind: str, amount: float, fill: float | torch.Tensor = 0.0) -> torch.Tensor:
    """One of Fig. 5's transformations, applied to every image: vertical shift, zoom or rotation about the centre.

    Explained in the chapter "Feature invariance" (book/invariance, Fig. 5).

    Args:
        images: (N, C, H, W) float.
        kind: ``"translate"``: move down by ``amount`` whole pixels (up if negative), exactly, by
            moving rows. ``"scale"``: zoom by the factor ``amount`` about the image centre, keeping the
            size (> 1 enlarges; the paper uses 1..1.8). ``"rotate"``: rotate by ``amount`` degrees
            counter-clockwise as displayed (90 is ``torch.rot90(images, 1, (2, 3))`` for square images).
            Scale and rotation resample bilinearly (``grid_sample``, deterministic on CPU).
        amount: see ``kind``. The identity (0 pixels, factor 1, a multiple of 360 degrees) returns an
            exact copy of the images.
        fill: what the area uncovered by the move shows (the rotated corners, the rows shifted in, a
            zoom below 1): a number, or a (C, H, W) / (N, C, H, W) image. 0 on preprocessed images is
            the data set's mean image, the network's "nothing here" (the same baseline as occlusion);
            on [0, 1] pixels pass the mean image, e.g. ``preprocess.mean``. Zooms >= 1 uncover nothing.
    Returns:
        (N, C, H, W), a new tensor.

    Why a fill and not a larger image: the paper shifts ImageNet photos, which extend beyond the crop;
    our composites have no pixels outside their frame, and rendering a larger image would enlarge
    the scene, not widen it. Reflection would mirror the object into view.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (N, C, H, W); got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    check_finite("images", images)
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown transformation kind {kind!r}; choose one of {TRANSFORMS}")
    amount = _check_amount(kind, amount, images.shape[-2])
    fill = check_fill_image(fill, images)
    identity = {"translate": amount == 0, "scale": amount == 1, "rotate": amount % 360 == 0}[kind]
    if identity:  # grid_sample's coordinate arithmetic is off by ~1e-7, so the identity would not be exact
        return images.clone()
    if kind == "translate":
        return _shift_rows(images, int(amount), fill)
    if kind == "scale":
        theta = torch.tensor([[1 / amount, 0.0, 0.0], [0.0, 1 / amount, 0.0]])   # output -> input: shrink
    else:
        a = math.radians(amount)
        # Output pixel (x, y) samples the input at R(-a)(x, y), y pointing down: counter-clockwise on screen.
        theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
    return _warp(images, theta, fill)


class Invariance(NamedTuple):
    """What :func:`invariance` measures, for A amounts and N images (ZF Fig. 5).

    Explained in the chapter "Feature invariance" (book/invariance, Fig. 5).
    ``amounts`` (A,); ``distance`` {layer: (A, N)} raw Euclidean distance ||f(T x) - f(x)|| between the
    layer's features of the transformed and the untransformed image; ``norm`` {layer: (N,)} ||f(x)||
    of the untransformed image (divide by it to compare layers of different size); ``prob`` (A, N)
    softmax probability of the true label; ``top`` (A, N) the predicted class.
    """
    amounts: torch.Tensor
    distance: dict
    norm: dict
    prob: torch.Tensor
    top: torch.Tensor


def _check_labels(labels, n: int, num_classes: int) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.shape != (n,) or labels.is_floating_point() or labels.dtype == torch.bool \
            or (n and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes):
        raise ValueError(f"labels must be {n} ints in 0..{num_classes - 1}, one per image; got {labels!r}")
    return labels.long()


@torch.no_grad()
def invariance(model: nn.Module, images: torch.Tensor, labels, kind: str, amounts: Sequence[float],
               layers: Sequence[int] = (1, 7), preprocess: nn.Module | None = None,
               batch_size: int = 64) -> Invariance:
    """Fig. 5: how far each layer's features and the output move as the images are transformed by more and more.

    Explained in the chapter "Feature invariance" (book/invariance, Fig. 5).

    Args:
        model: as in :func:`layer_features`; its last child gives the logits.
        images: (N, 3, H, W). Preprocessed (``preprocess=None``): transformed as they are, uncovered
            areas 0 (the mean image). With ``preprocess`` (e.g. ``zfviz.data.Preprocess``): pixels in
            [0, 1], transformed in pixel space with uncovered areas showing ``preprocess.mean`` (the
            same mean image, but now the object moves and the mean image stays), then preprocessed.
        labels: (N,) the true classes. kind, amounts: as in :func:`transform`, A amounts.
        layers: the paper's layers to compare (1 and 7 in Fig. 5).
        batch_size: images per forward pass.
    Returns:
        :class:`Invariance`. Distances are raw Euclidean, as in the paper; ``norm`` gives the scale.
        The untransformed image is the reference whether or not ``amounts`` contains the identity.
    """
    check_model(model)
    check_images(model, images)
    layers = check_layers(model, layers)
    check_batch_size(batch_size, "images")
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown transformation kind {kind!r}; choose one of {TRANSFORMS}")
    if isinstance(amounts, (str, bytes)) or not hasattr(amounts, "__iter__"):
        raise ValueError(f"amounts must be a list of amounts for {kind!r} (e.g. [0, 10, 20]); got {amounts!r}")
    amounts = [_check_amount(kind, a, images.shape[-2]) for a in amounts]
    if not amounts:
        raise ValueError("amounts must hold at least one amount")
    if preprocess is not None and not isinstance(preprocess, nn.Module):
        raise TypeError(f"preprocess must be an nn.Module such as zfviz.data.Preprocess, "
                        f"got {type(preprocess).__name__}")
    fill = preprocess.mean if preprocess is not None else 0.0
    prep = preprocess if preprocess is not None else nn.Identity()
    n = len(images)
    # The reference first, then every amount: one stack (1 + A) * N, run in batches.
    copies = torch.cat([images] + [transform(images, kind, a, fill) for a in amounts])
    feats, logits = run_layers(model, prep(copies), layers, logits=True, batch_size=batch_size)
    labels = _check_labels(labels, n, logits.shape[1]).to(logits.device)
    ref = {k: f[:n] for k, f in feats.items()}
    distance = {k: (f[n:].view(len(amounts), n, -1) - ref[k]).norm(dim=2) for k, f in feats.items()}
    prob = logits[n:].softmax(dim=1).view(len(amounts), n, -1)                         # (A, N, K)
    prob = prob.gather(2, labels.view(1, n, 1).expand(len(amounts), n, 1))[..., 0]     # (A, N)
    top = logits[n:].argmax(dim=1).view(len(amounts), n)
    return Invariance(torch.tensor(amounts), distance, {k: r.norm(dim=1) for k, r in ref.items()}, prob, top)
