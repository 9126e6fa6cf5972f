"""Feature vectors of whole layers, and two things ZF measure with them: invariance (Fig. 5) and correspondence (§4.3).

Explained in the chapters "Feature invariance" (book/invariance, Fig. 5) and "§4.3 Correspondence"
(book/correspondence).

**Layers.** The paper numbers seven layers with features: 1-5 are the conv layers, 6 and 7 the fully
connected ones. Layer k's feature vector is the output of its ReLU, flattened: for 1-5 the rectified
conv map before pooling (the same map as ``zfviz.deconv.feature_map``), for 6-7 relu6 / relu7, with
dropout off (the network is run in eval mode). :func:`layer_features` computes it with one forward
pass that stops at the highest layer asked for.

**Invariance** (Fig. 5). "5 example images are translated, rotated and scaled by varying degrees
while looking at the changes in the feature vectors from the top and bottom layers of the model,
relative to the untransformed feature." :func:`transform` moves images (vertical shift in whole
pixels, zoom about the centre, rotation about the centre) and :func:`invariance` reports the raw
Euclidean distance of the layer features to those of the untransformed image, and P(true label).

**Correspondence** (§4.3). Mask the same part of several images of one class; for image i and
layer l, eps_i = x_i - x~_i (features of the original minus features of the masked image); the
score is the mean over pairs i != j of the fraction of dimensions in which sign(eps_i) and
sign(eps_j) differ (:func:`sign_change_score`; each pair's fraction: :func:`pair_sign_change`). Lower
than for randomly placed squares of the same size means the network relates the part across images.
See :func:`correspondence`.

Pixel regions use the data set's box convention ``(x0, y0, x1, y1)``, end-exclusive (``ClipArt.boxes``).
"""
from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import convs, stack, to_model
from ._checks import as_int, check_finite, check_image_size, check_images, check_model

__all__ = ["layer_features", "transform", "TRANSFORMS", "invariance", "Invariance", "pair_sign_change", "chance_purity",
           "sign_change_score", "part_squares", "random_squares", "mask_region", "correspondence", "top_norm_share",
           "dead_filters", "frequency_bands", "shift_variation", "neighbour_correlation", "projection_legibility",
           "Legibility"]

TRANSFORMS = ("translate", "scale", "rotate")


# ----------------------------------------------------------------------------------------------
# Layer features: one forward pass up to the highest layer asked for
# ----------------------------------------------------------------------------------------------

def _layer_ends(model: nn.Module) -> list[int]:
    """For the paper's layer k, ``ends[k - 1]``: how many children compute it (up to and with its ReLU)."""
    children = list(model.children())
    ends = [len(stack(model, k)) for k in range(1, len(convs(model)) + 1)]   # as zfviz.deconv defines 1-5
    # Fully connected layers with features: each Linear followed by a ReLU (fc6, fc7; fc8 gives the logits).
    ends += [i + 2 for i, m in enumerate(children[:-1])
             if isinstance(m, nn.Linear) and isinstance(children[i + 1], nn.ReLU)]
    return ends


def _check_layers(model: nn.Module, layers) -> list[int]:
    """``layers`` (an int or a sequence of ints) as a list of distinct layer numbers in 1..L."""
    n = len(_layer_ends(model))
    listed = [layers] if isinstance(layers, numbers.Integral) and not isinstance(layers, bool) else layers
    try:
        listed = list(listed)
    except TypeError:
        listed = None
    if not listed or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n
                         for k in listed):
        raise ValueError(f"layers must be a layer number or a non-empty list of them, ints in 1..{n} "
                         f"(1-5 the conv layers' rectified maps, 6-7 relu6/relu7); got {layers!r}")
    if len(set(listed)) != len(listed):
        raise ValueError(f"layers must not repeat a layer; got {layers!r}")
    return [int(k) for k in listed]


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


@contextmanager
def _eval_mode(model: nn.Module):
    """Dropout off while features are read; every module's own training flag is restored afterwards."""
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags.items():
            m.training = flag


def _walk(model: nn.Module, x: torch.Tensor, layers: list[int], logits: bool):
    """Run one batch through the children; return {layer: (n, D)} features and the logits (n, K) or None."""
    children, ends = list(model.children()), _layer_ends(model)
    want = {ends[k - 1]: k for k in layers}            # after this many children, layer k is done
    stop = len(children) if logits else max(want)      # stop early: nothing above is needed
    features = {}
    for i, m in enumerate(children[:stop], start=1):
        if isinstance(m, nn.Linear) and x[0].numel() != m.in_features:
            raise ValueError(f"the images give {x[0].numel()} features where the first fully connected "
                             f"layer expects {m.in_features}: use the input size the network was built for "
                             f"({getattr(model, 'config', {}).get('input_size', '?')} pixels)")
        x = m(x)
        if i in want:
            features[want[i]] = x.flatten(1)           # (n, D): maps flattened channel-major
    return features, (x if logits else None)


@torch.no_grad()
def _run(model: nn.Module, images: torch.Tensor, layers: list[int], logits: bool, batch_size: int):
    """:func:`_walk` over batches, on the model's device; results on the images' device."""
    children, ends = list(model.named_children()), _layer_ends(model)
    check_image_size(model, images, children if logits else children[:max(ends[k - 1] for k in layers)],
                      what=f" for layer {max(layers)}" if not logits else "")
    feats, outs = {k: [] for k in layers}, []
    with _eval_mode(model):
        for batch in images.split(batch_size):
            f, out = _walk(model, to_model(model, batch), layers, logits)
            for k in layers:
                feats[k].append(f[k].to(images.device))
            if logits:
                outs.append(out.to(images.device))
    feats = {k: torch.cat(v) for k, v in feats.items()}
    return feats, (torch.cat(outs) if logits else None)


def layer_features(model: nn.Module, images: torch.Tensor, layers: int | Sequence[int],
                   batch_size: int = 64) -> torch.Tensor | dict[int, torch.Tensor]:
    """The flattened feature vector of the paper's layer(s): output of relu1..relu5, relu6, relu7.

    Explained in the chapter "Feature invariance" (book/invariance, Fig. 5); reused by
    "§4.3 Correspondence" and the linear probes of "§5 Experiments".

    Args:
        model: a flat network like ``zfviz.models.zfnet`` (conv part as ``zfviz.deconv`` walks it, then
            flatten, fc6, relu6, drop6, fc7, relu7, ...). It is run in eval mode, so dropout is off;
            its training flags are left as they were.
        images: (N, 3, H, W) float, preprocessed as the network expects (layers 6-7 need H = W = the
            input size it was built for).
        layers: one layer number in 1..7, or a list of them (all from one forward pass).
        batch_size: images per forward pass; the pass stops after the highest layer asked for.
    Returns:
        For an int, (N, D) with D = C*h*w of that layer (e.g. 96*110*110 for ZFNet's layer 1 at 224 px,
        ``feature_map(...).flatten(1)``), or 4096 for layers 6-7; for a list, ``{layer: (N, D_layer)}``.
        On the images' device, without gradient.
    """
    check_model(model)
    check_images(model, images)
    single = isinstance(layers, numbers.Integral) and not isinstance(layers, bool)
    listed = _check_layers(model, layers)
    _check_batch_size(batch_size)
    feats, _ = _run(model, images, listed, logits=False, batch_size=batch_size)
    return feats[listed[0]] if single else feats


# ----------------------------------------------------------------------------------------------
# Fig. 5: transformations and invariance
# ----------------------------------------------------------------------------------------------

def _check_fill(fill, images: torch.Tensor) -> torch.Tensor:
    """``fill`` as a tensor that broadcasts against images (N, C, H, W): a number, (C, H, W) or (N, C, H, W)."""
    if isinstance(fill, numbers.Real) and not isinstance(fill, bool):
        if not math.isfinite(fill):
            raise ValueError(f"fill must be a finite number or image (0 is the mean image on preprocessed input); "
                             f"got {fill!r}")
        return images.new_tensor(float(fill))
    if isinstance(fill, torch.Tensor) and fill.is_floating_point():
        try:
            torch.broadcast_shapes(fill.shape, images.shape)
        except RuntimeError:
            pass
        else:
            check_finite("fill", fill)
            return fill.to(images)
    shape = tuple(images.shape)
    raise ValueError(f"fill must be a number or a float tensor that broadcasts to the images {shape}, e.g. "
                     f"{shape[1:]} (a mean image); got {fill if not isinstance(fill, torch.Tensor) else fill.shape!r}")


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
    fill = _check_fill(fill, images)
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
    layers = _check_layers(model, layers)
    _check_batch_size(batch_size)
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
    feats, logits = _run(model, prep(copies), layers, logits=True, batch_size=batch_size)
    labels = _check_labels(labels, n, logits.shape[1]).to(logits.device)
    ref = {k: f[:n] for k, f in feats.items()}
    distance = {k: (f[n:].view(len(amounts), n, -1) - ref[k]).norm(dim=2) for k, f in feats.items()}
    prob = logits[n:].softmax(dim=1).view(len(amounts), n, -1)                         # (A, N, K)
    prob = prob.gather(2, labels.view(1, n, 1).expand(len(amounts), n, 1))[..., 0]     # (A, N)
    top = logits[n:].argmax(dim=1).view(len(amounts), n)
    return Invariance(torch.tensor(amounts), distance, {k: r.norm(dim=1) for k, r in ref.items()}, prob, top)


# ----------------------------------------------------------------------------------------------
# §4.3: correspondence
# ----------------------------------------------------------------------------------------------

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
    fill = _check_fill(fill, images)
    return torch.where(masks.to(images.device).unsqueeze(1), fill, images)


@torch.no_grad()
def correspondence(model: nn.Module, images: torch.Tensor, parts: dict, layers: Sequence[int] = (5, 7),
                   fill: float | torch.Tensor = 0.0, ignore_zeros: bool = False,
                   batch_size: int = 64) -> dict[str, dict[int, float]]:
    """§4.3: the sign-change score of each masked part at each layer (lower: the part is related across images).

    Explained in the chapter "§4.3 Correspondence" (book/correspondence).

    Args:
        model: as in :func:`layer_features`.
        images: (N, 3, H, W), N >= 2 preprocessed images of one class (the paper: 5 dogs facing the camera).
        parts: {name: (N, 4) boxes (x0, y0, x1, y1), one per image}, e.g. from :func:`part_squares`,
            and the control from :func:`random_squares` (several seeds give a less noisy control).
        layers: the paper's layers (5 and 7 in the paper). fill: what a masked region shows (0 = the
            mean image on preprocessed input). ignore_zeros: see :func:`sign_change_score`.
        batch_size: images per forward pass.
    Returns:
        ``{name: {layer: Delta}}`` with Delta = ``sign_change_score(eps)``, eps (N, D) the layer's features
        of the original images minus those of the masked ones (layer 5: relu5's map, before pooling).
    """
    check_model(model)
    check_images(model, images)
    layers = _check_layers(model, layers)
    _check_batch_size(batch_size)
    if len(images) < 2:
        raise ValueError(f"correspondence compares pairs of images: pass N >= 2 images, got {len(images)}")
    if not isinstance(parts, dict) or not parts:
        raise ValueError("parts must be a non-empty dict {name: (N, 4) boxes}")
    masked = [mask_region(images, regions, fill) for regions in parts.values()]
    feats, _ = _run(model, torch.cat([images, *masked]), layers, logits=False, batch_size=batch_size)
    n = len(images)
    scores = {}
    for p, name in enumerate(parts, start=1):
        scores[name] = {k: sign_change_score(f[:n] - f[p * n:(p + 1) * n], ignore_zeros) for k, f in feats.items()}
    return scores


# ----------------------------------------------------------------------------------------------
# First-layer filters: who dominates, who is dead (Fig. 6)
# ----------------------------------------------------------------------------------------------

def top_norm_share(weight: torch.Tensor, k: int) -> float:
    """Share of the layer's total filter norm held by its ``k`` largest filters (Fig. 6a: "a few dominate").

    Explained in the chapter "Training ZFNet" (filter renormalisation) and "Architecture selection".
    ``weight`` (C_out, C_in, kh, kw); a filter's norm is the L2 norm of its weights. With C equal
    filters the share is k / C; a layer where k filters dominate approaches 1.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise ValueError(f"weight must be a conv weight (C_out, C_in, kh, kw); got "
                         f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a float tensor (a conv layer's weight), got {weight.dtype}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(weight):
        raise ValueError(f"k must be an int in [1, {len(weight)}] (the number of filters), got {k!r}")
    check_finite("weight", weight)
    norms = weight.detach().float().flatten(1).norm(dim=1)
    if not norms.sum() > 0:
        raise ValueError("weight must have a filter that is not all zero: the share of a total norm of 0 is undefined")
    return (norms.topk(k).values.sum() / norms.sum()).item()


@torch.no_grad()
def dead_filters(conv: nn.Conv2d, images: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
    """Which filters of a conv layer are "dead": they (almost) never respond on real images.

    Explained in the chapter "Training ZFNet" (filter renormalisation) and "Architecture selection".
    A filter's response is its rectified output ``relu(conv(images))`` averaged over images and
    positions; a filter is dead when its response is below ``threshold`` times that of the layer's
    most responsive filter. Relative, so the verdict does not depend on the layer's overall scale.

    Args:
        conv: the layer (for layer 1: ``model.conv1``).
        images: (N, C_in, H, W), preprocessed as the network's input (for layer 1).
        threshold: in (0, 1).
    Returns:
        (C_out,) bool, True for a dead filter.
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != conv.in_channels:
        raise ValueError(f"images must be (N, {conv.in_channels}, H, W); got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if len(images) == 0:
        raise ValueError(f"images must hold at least one image (N >= 1); got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a float tensor (preprocessed as the network's input); got {images.dtype}")
    check_finite("images", images)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number in (0, 1), got {threshold!r}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    check_image_size(conv, images, [("conv", conv)])
    x = to_model(conv, images)
    response = torch.zeros(conv.out_channels, device=x.device, dtype=x.dtype)
    for s in range(0, len(x), 64):
        response += F.relu(conv(x[s:s + 64])).mean(dim=(2, 3)).sum(0)
    # A filter with no response at all is dead even when every filter is (then the maximum is 0 too).
    return ((response < threshold * response.max()) | (response == 0)).to(images.device)


def neighbour_correlation(weight: torch.Tensor) -> torch.Tensor:
    """How smooth each filter is: the correlation of horizontally and vertically adjacent weights.

    Explained in the chapter "Training ZFNet" (why the first layer did not learn) and "§4 Visualisation".
    ``weight`` (C_out, C_in, k, k). Each input channel of a filter has its mean subtracted; the Pearson
    correlation of the pairs (w[.., i, j], w[.., i, j+1]) and that of (w[.., i, j], w[.., i+1, j]) are
    taken over the filter's channels and averaged. Returns (C_out,) float in [-1, 1]: about 0 for white
    noise (a random start), near 1 for smooth edges and colour blobs. An all-zero filter gives 0.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4 or min(weight.shape[-2:]) < 2:
        raise ValueError(f"weight must be conv filters (C_out, C_in, k, k) with k >= 2; got "
                         f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a float tensor (conv filters), got {weight.dtype}")
    check_finite("weight", weight)
    w = weight.detach().double()
    w = w - w.mean(dim=(2, 3), keepdim=True)

    def corr(a, b):
        return (a * b).sum((1, 2, 3)) / (a.pow(2).sum((1, 2, 3)) * b.pow(2).sum((1, 2, 3))).sqrt().clamp_min(1e-300)

    return ((corr(w[..., :, 1:], w[..., :, :-1]) + corr(w[..., 1:, :], w[..., :-1, :])) / 2).float()


def frequency_bands(weight: torch.Tensor, edges: Sequence[float] = (1 / 6, 1 / 3), size: int = 64) -> torch.Tensor:
    """Share of each filter's spectral power in low / mid / high spatial-frequency bands (Fig. 6: "a mix of
    extremely high and low frequency information, with little coverage of the mid frequencies").

    Explained in the chapter "Architecture selection" (book/architecture).

    Args:
        weight: first-layer filters (C_out, C_in, k, k); frequencies are in cycles per input pixel, so filters
            of different sizes (AlexNet's 11x11, ZFNet's 7x7) compare directly.
        edges: increasing band edges in cycles per pixel, each in (0, 0.5]; the default splits the radial
            frequency 0..0.5 (Nyquist) into thirds: low < 1/6 <= mid < 1/3 <= high (the corners of the
            spectrum, up to 0.71, count as high).
        size: the FFT size (the filter is zero-padded to size x size; larger is a finer radial sampling).
    Returns:
        (C_out, len(edges) + 1) float, each row summing to 1: the power |FFT|^2, summed over input channels,
        split by radial frequency. The mean (DC) of a filter is power at frequency 0, i.e. "low". A filter
        that is all zero (a dead one) has no power to split: its row is all zero.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise ValueError(f"weight must be conv filters (C_out, C_in, k, k); got "
                         f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a float tensor (conv filters), got {weight.dtype}")
    check_finite("weight", weight)
    if isinstance(edges, (str, bytes)) or not hasattr(edges, "__iter__") or any(
            isinstance(e, bool) or not isinstance(e, (numbers.Real, torch.Tensor)) for e in edges):
        raise ValueError(f"edges must be increasing numbers in (0, 0.5] cycles per pixel; got {edges!r}")
    edges = [float(e) for e in edges]
    if not edges or any(not 0 < e <= 0.5 for e in edges) or edges != sorted(set(edges)):
        raise ValueError(f"edges must be increasing numbers in (0, 0.5] cycles per pixel; got {edges}")
    if isinstance(size, bool) or not isinstance(size, int) or size < max(weight.shape[-2:]):
        raise ValueError(f"size must be an int >= the filter size {max(weight.shape[-2:])}, got {size!r}")
    power = torch.fft.fft2(weight.detach().double(), s=(size, size)).abs().pow(2).sum(1)    # (C, size, size)
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    radius = (f.view(-1, 1) ** 2 + f.view(1, -1) ** 2).sqrt()                            # cycles per pixel
    band = torch.bucketize(radius, torch.tensor(edges, dtype=torch.float64), right=True)   # 0..len(edges)
    shares = torch.stack([power[:, band == b].sum(1) for b in range(len(edges) + 1)], dim=1)
    return (shares / shares.sum(1, keepdim=True).clamp_min(1e-300)).float()


@torch.no_grad()
def shift_variation(model: nn.Module, images: torch.Tensor, layer: int, size: int, shifts: Sequence[int],
                    preprocess: nn.Module | None = None) -> torch.Tensor:
    """How much a layer's position-averaged features change when the scene moves by less than the layer's stride:
    a measure of aliasing (Fig. 6: "aliasing artifacts caused by the large stride 4 used in the 1st layer").

    Explained in the chapter "Architecture selection" (book/architecture).
    For each shift d, the ``size`` x ``size`` window of ``images`` starting d pixels to the right (vertically
    centred) goes through the network; layer ``layer``'s rectified maps (as ``zfviz.deconv.feature_map``) are
    averaged over positions, and compared with those of the window at d = 0 by 1 - cosine similarity.
    Averaging over positions removes the shift itself; what remains depends on where the content falls between
    the layer's samples, which an alias-free layer would not care about.

    Args:
        model: a flat zfviz network. images: (N, 3, H, W) pixels in [0, 1] (or preprocessed, with
            ``preprocess=None``), W >= size + max(shifts), H >= size. layer: 1..5.
        size: the network's input size. shifts: pixel offsets >= 0 (0 gives 0).
        preprocess: applied to each window (e.g. the network's ``Preprocess``).
    Returns:
        (len(shifts), N): 1 - cos(pooled features at shift d, pooled features at shift 0).
    """
    from .deconv import feature_map
    check_model(model)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W); got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a float tensor (pixels in [0, 1] or preprocessed); got {images.dtype}")
    check_finite("images", images)
    listed = list(shifts) if hasattr(shifts, "__iter__") and not isinstance(shifts, (str, bytes)) else None
    ints = None if listed is None else [as_int(d) for d in listed]
    if not ints or None in ints or min(ints) < 0:
        raise ValueError(f"shifts must be pixel offsets, ints >= 0 (whole pixels), at least one; got {shifts!r}")
    shifts = ints
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"preprocess must be an nn.Module such as zfviz.data.Preprocess, "
                        f"got {type(preprocess).__name__}")
    height, width = images.shape[-2:]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1 (the network's input size), got {size!r}")
    if height < size or width < size + max(shifts):
        raise ValueError(f"each window (size {size!r}) shifted by up to {max(shifts)} pixels must fit in the "
                         f"{height}x{width} images: need height >= size and width >= size + max(shifts)")
    top = (height - size) // 2
    prep = preprocess if preprocess is not None else nn.Identity()

    def pooled(d):
        return feature_map(model, prep(images[:, :, top:top + size, d:d + size]), layer).mean(dim=(2, 3))

    reference = pooled(0)
    return torch.stack([1 - F.cosine_similarity(pooled(d), reference, dim=1) for d in shifts])


# ----------------------------------------------------------------------------------------------
# How readable a projection is: does its energy lie on what the unit could see?
# ----------------------------------------------------------------------------------------------

class Legibility(NamedTuple):
    """Per projection (N,): see :func:`projection_legibility` (explained in the chapter "What each layer sees")."""
    object_ratio: torch.Tensor       # share of |p| on the object / share of the field the object covers
    edge_correlation: torch.Tensor   # Pearson correlation of |p| with the image's edge strength
    smoothness: torch.Tensor         # neighbour correlation of the projection itself: 0 speckle, near 1 smooth


def _edge_strength(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) pixels -> (N, H, W): Sobel gradient magnitude of the grey image (zero-padded border)."""
    grey = images.mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=grey.dtype, device=grey.device)
    gx = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kx.view(1, 1, 3, 3))
    gy = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kx.t().reshape(1, 1, 3, 3))
    return (gx.pow(2) + gy.pow(2)).sqrt()[:, 0]


def projection_legibility(projections: torch.Tensor, images: torch.Tensor, masks: torch.Tensor,
                          boxes) -> Legibility:
    """Two numbers per projection that say whether it shows structure its unit could see (issue: pictures
    that are noise score about 1 and about 0).

    Explained in the chapter "What each layer sees" (book/visualisation).

    Args:
        projections: (N, 3, H, W) deconvnet projections (each of one unit).
        images: (N, 3, H, W) the images, pixels in [0, 1].
        masks: (N, H, W) bool, the object of each image (``ClipArt.masks``).
        boxes: N receptive-field boxes ``(y0, x0, y1, x1)`` (:func:`zfviz.deconv.receptive_field_box`);
            both measures look only inside the unit's field.
    Returns:
        :class:`Legibility`: ``object_ratio`` (N,), the share of the projection's magnitude |p| (summed over
        colours) that lies on the object, divided by the share of the field the object covers (1: no
        preference; NaN where the field holds no object or no projection); ``edge_correlation`` (N,), the
        Pearson correlation, over the field's pixels, of |p| with the image's edge strength (Sobel gradient
        magnitude of the grey image): near 0 for noise, positive for a projection that traces the patch's
        edges and outlines (NaN where either is constant); ``smoothness`` (N,), :func:`neighbour_correlation`
        of the projection inside the field, as of a filter: about 0 for speckle (a projection through random
        layer-1 filters), near 1 for strokes and regions a reader can see (NaN for an all-zero projection).
    """
    for name, t, dims in (("projections", projections, 4), ("images", images, 4), ("masks", masks, 3)):
        if not isinstance(t, torch.Tensor) or t.dim() != dims:
            raise ValueError(f"{name} must be a {dims}-d tensor; got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    n, h, w = len(projections), *projections.shape[-2:]
    if images.shape != projections.shape or masks.shape != (n, h, w):
        raise ValueError(f"projections (N, 3, H, W), images of the same shape and masks (N, H, W) must match; got "
                         f"{tuple(projections.shape)}, {tuple(images.shape)} and {tuple(masks.shape)}")
    boxes = [tuple(int(v) for v in b) for b in boxes]
    if len(boxes) != n or any(len(b) != 4 or not (0 <= b[0] < b[2] <= h and 0 <= b[1] < b[3] <= w) for b in boxes):
        raise ValueError(f"boxes must be {n} boxes (y0, x0, y1, x1) inside the {h}x{w} image; got {boxes!r}")
    check_finite("projections", projections)
    energy = projections.detach().double().abs().sum(1)                      # (N, H, W)
    edges = _edge_strength(images.detach().double())
    ratio, corr = torch.full((n,), math.nan, dtype=torch.float64), torch.full((n,), math.nan, dtype=torch.float64)
    smooth = torch.full((n,), math.nan, dtype=torch.float64)
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        e, m, g = energy[i, y0:y1, x0:x1], masks[i, y0:y1, x0:x1].double(), edges[i, y0:y1, x0:x1]
        if e.sum() > 0 and m.sum() > 0:
            ratio[i] = ((e * m).sum() / e.sum()) / m.mean()
        a, b = e - e.mean(), g - g.mean()
        denom = (a.pow(2).sum() * b.pow(2).sum()).sqrt()
        if denom > 0:
            corr[i] = (a * b).sum() / denom
        field = projections[i, :, y0:y1, x0:x1].detach().double()
        if field.abs().sum() > 0 and min(field.shape[-2:]) >= 2:
            smooth[i] = neighbour_correlation(field[None])[0]
    return Legibility(ratio.float(), corr.float(), smooth.float())


# ----------------------------------------------------------------------------------------------
# The chance level of a feature map's class purity
# ----------------------------------------------------------------------------------------------

def chance_purity(class_sizes: Sequence[int], k: int) -> torch.Tensor:
    """How class-pure k images drawn at random are: the chance level of a feature map's top-k purity.

    Explained in the chapter "What each layer sees" (book/visualisation): a map's purity is the largest
    number of its top k images that share one class; this is what k random images of the data set give.

    Args:
        class_sizes: the number of images of each class in the data set (ints >= 0).
        k: images drawn at random, without replacement (1 <= k <= the data set's size).
    Returns:
        (k + 1,) float64: entry m is the probability that the largest number of the k images from one class
        is m. Exact, by counting: the draws whose every class has at most m images are the coefficient of
        x^k in the product over classes of sum_{j <= m} C(n_c, j) x^j.
    """
    sizes = [as_int(n) for n in class_sizes] if isinstance(class_sizes, (list, tuple, torch.Tensor)) else [None]
    if not sizes or None in sizes or min(sizes) < 0:
        raise ValueError(f"class_sizes must be a non-empty list of ints >= 0 (images per class); got {class_sizes!r}")
    k = as_int(k)
    if k is None or not 1 <= k <= sum(sizes):
        raise ValueError(f"k must be an int in 1..{sum(sizes)} (images drawn from the data set); got {k!r}")
    at_most = []                                          # number of draws whose largest class count is <= m
    for m in range(k + 1):
        poly = [1] + [0] * k                              # integer coefficients of x^0..x^k: exact
        for n in sizes:
            term = [math.comb(n, j) for j in range(min(m, n) + 1)]
            poly = [sum(poly[i - j] * t for j, t in enumerate(term) if j <= i) for i in range(k + 1)]
        at_most.append(poly[k])
    counts = [at_most[0]] + [at_most[m] - at_most[m - 1] for m in range(1, k + 1)]
    return torch.tensor([c / math.comb(sum(sizes), k) for c in counts], dtype=torch.float64)


