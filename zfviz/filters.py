"""What the filters learned, Zeiler & Fergus (2014) Fig. 6 and §4: statistics of filters and of their pictures.

Explained in the chapters "Architecture selection" (book/architecture), "Training ZFNet" (book/training) and
"What each layer sees" (book/visualisation).

**Fig. 6, §4.1.** Krizhevsky et al.'s first-layer filters "are a mix of extremely high and low frequency
information, with little coverage of the mid frequencies", some are dead, and the second layer "shows aliasing
artifacts caused by the large stride 4 used in the 1st layer convolutions"; in Fig. 6(a) one filter dominates
without renormalisation. The measurements: :func:`frequency_bands` (the spectrum's low / mid / high shares),
:func:`dead_filters`, :func:`shift_variation` (aliasing) and :func:`top_norm_share` (dominance), in the chapters
"Architecture selection" and "Training ZFNet".

**§4, Fig. 2.** "[I]nstead of showing the single strongest activation for a given feature map, we show the top 9
activations. Projecting each separately down to pixel space reveals the different structures that excite a given
feature map, hence showing its invariance to input deformations." The chapter "What each layer sees" asks
whether our pictures can be read and what the top 9 share: :func:`projection_legibility` (does a projection's
energy lie on the object and its edges, is it smooth), with
:func:`neighbour_correlation` (how smooth a filter or a projection is: about 0 for noise, near 1 for strokes),
and :func:`chance_purity` (how class-pure 9 images drawn at random are: the chance level of a map's top-9 purity).
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .activations import layer_features
from .layers import convs, to_model
from ._checks import as_int, check_finite, check_image_size, check_int, check_layer, check_model, check_real

__all__ = ["top_norm_share", "dead_filters", "frequency_bands", "shift_variation", "neighbour_correlation",
           "projection_legibility", "Legibility", "chance_purity"]


def _check_weight(weight, min_side: int = 1) -> None:
    """Conv filters (C_out, C_in, kh, kw), float and finite; each side at least ``min_side``."""
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4 or min(weight.shape[-2:]) < min_side:
        raise ValueError(f"weight must be conv filters (C_out, C_in, k, k)"
                         f"{f' with k >= {min_side}' if min_side > 1 else ''}; got "
                         f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a float tensor (conv filters), got {weight.dtype}")
    check_finite("weight", weight)


# ----------------------------------------------------------------------------------------------
# Fig. 6: first-layer filters (who dominates, who is dead, which frequencies) and aliasing
# ----------------------------------------------------------------------------------------------

def top_norm_share(weight: torch.Tensor, k: int) -> float:
    """Share of the layer's total filter norm held by its ``k`` largest filters (Fig. 6a: "a few dominate").

    Explained in the chapter "Training ZFNet" (filter renormalisation) and "Architecture selection".
    ``weight`` (C_out, C_in, kh, kw); a filter's norm is the L2 norm of its weights. With C equal
    filters the share is k / C; a layer where k filters dominate approaches 1.
    """
    _check_weight(weight)
    k = check_int("k", k, 1, len(weight), " (the number of filters)")
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
    threshold = check_real("threshold", threshold, " in (0, 1)")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    check_image_size(conv, images, [("conv", conv)])
    x = to_model(conv, images)
    response = torch.zeros(conv.out_channels, device=x.device, dtype=x.dtype)
    for s in range(0, len(x), 64):
        response += F.relu(conv(x[s:s + 64])).mean(dim=(2, 3)).sum(0)
    # A filter with no response at all is dead even when every filter is (then the maximum is 0 too).
    return ((response < threshold * response.max()) | (response == 0)).to(images.device)


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
    _check_weight(weight)
    if isinstance(edges, (str, bytes)) or not hasattr(edges, "__iter__") or any(
            isinstance(e, bool) or not isinstance(e, (numbers.Real, torch.Tensor)) for e in edges):
        raise ValueError(f"edges must be increasing numbers in (0, 0.5] cycles per pixel; got {edges!r}")
    edges = [float(e) for e in edges]
    if not edges or any(not 0 < e <= 0.5 for e in edges) or edges != sorted(set(edges)):
        raise ValueError(f"edges must be increasing numbers in (0, 0.5] cycles per pixel; got {edges}")
    size = check_int("size", size, max(weight.shape[-2:]), why=" (the FFT size, at least the filter size)")
    power = torch.fft.fft2(weight.detach().double(), s=(size, size)).abs().pow(2).sum(1)    # (C, size, size)
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    radius = (f.view(-1, 1) ** 2 + f.view(1, -1) ** 2).sqrt()                            # cycles per pixel
    band = torch.bucketize(radius, torch.tensor(edges, dtype=torch.float64), right=True)   # 0..len(edges)
    shares = torch.stack([power[:, band == b].sum(1) for b in range(len(edges) + 1)], dim=1)
    return (shares / shares.sum(1, keepdim=True).clamp_min(1e-300)).float()


def _check_windows(images, shifts, preprocess) -> list[int]:
    """The images, shifts and preprocess of :func:`shift_variation`, checked; the shifts as ints."""
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
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"preprocess must be an nn.Module such as zfviz.data.Preprocess, "
                        f"got {type(preprocess).__name__}")
    return ints


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
    check_model(model)
    check_layer(model, layer)
    shifts = _check_windows(images, shifts, preprocess)
    height, width = images.shape[-2:]
    size = check_int("size", size, 1, why=" (the network's input size)")
    if height < size or width < size + max(shifts):
        raise ValueError(f"each window (size {size!r}) shifted by up to {max(shifts)} pixels must fit in the "
                         f"{height}x{width} images: need height >= size and width >= size + max(shifts)")
    top = (height - size) // 2
    prep = preprocess if preprocess is not None else nn.Identity()

    channels = convs(model)[layer - 1].out_channels

    def pooled(d):   # relu{layer}'s map (zfviz.deconv.feature_map), flattened, then averaged over positions
        window = prep(images[:, :, top:top + size, d:d + size])
        return layer_features(model, window, layer, batch_size=len(window)).view(len(window), channels, -1).mean(2)

    reference = pooled(0)
    return torch.stack([1 - F.cosine_similarity(pooled(d), reference, dim=1) for d in shifts])


# ----------------------------------------------------------------------------------------------
# §4, What each layer sees: smoothness, legibility of a projection, the chance level of a map's purity
# ----------------------------------------------------------------------------------------------

def neighbour_correlation(weight: torch.Tensor) -> torch.Tensor:
    """How smooth each filter is: the correlation of horizontally and vertically adjacent weights.

    Explained in the chapters "Training ZFNet" (why the first layer did not learn) and "What each layer sees"
    (book/visualisation: the smoothness of the filters and of the projections).
    ``weight`` (C_out, C_in, k, k). Each input channel of a filter has its mean subtracted; the Pearson
    correlation of the pairs (w[.., i, j], w[.., i, j+1]) and that of (w[.., i, j], w[.., i+1, j]) are
    taken over the filter's channels and averaged. Returns (C_out,) float in [-1, 1]: about 0 for white
    noise (a random start), near 1 for smooth edges and colour blobs. An all-zero filter gives 0.
    """
    _check_weight(weight, min_side=2)
    w = weight.detach().double()
    w = w - w.mean(dim=(2, 3), keepdim=True)

    def corr(a, b):
        return (a * b).sum((1, 2, 3)) / (a.pow(2).sum((1, 2, 3)) * b.pow(2).sum((1, 2, 3))).sqrt().clamp_min(1e-300)

    return ((corr(w[..., :, 1:], w[..., :, :-1]) + corr(w[..., 1:, :], w[..., :-1, :])) / 2).float()


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


def _check_legibility(projections, images, masks, boxes) -> list[tuple[int, int, int, int]]:
    """The arguments of :func:`projection_legibility`, checked; the boxes as tuples of ints."""
    for name, t, dims in (("projections", projections, 4), ("images", images, 4), ("masks", masks, 3)):
        if not isinstance(t, torch.Tensor) or t.dim() != dims:
            raise ValueError(f"{name} must be a {dims}-d tensor; got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    n, h, w = len(projections), *projections.shape[-2:]
    if images.shape != projections.shape or masks.shape != (n, h, w):
        raise ValueError(f"projections (N, 3, H, W), images of the same shape and masks (N, H, W) must match; got "
                         f"{tuple(projections.shape)}, {tuple(images.shape)} and {tuple(masks.shape)}")
    boxes = [tuple(int(v) for v in b) for b in boxes]
    if len(boxes) != n or any(len(b) != 4 or not (0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h) for b in boxes):
        raise ValueError(f"boxes must be {n} boxes (x0, y0, x1, y1) inside the {h}x{w} image; got {boxes!r}")
    check_finite("projections", projections)
    return boxes


def projection_legibility(projections: torch.Tensor, images: torch.Tensor, masks: torch.Tensor,
                          boxes) -> Legibility:
    """Two numbers per projection that say whether it shows structure its unit could see (issue: pictures
    that are noise score about 1 and about 0).

    Explained in the chapter "What each layer sees" (book/visualisation).

    Args:
        projections: (N, 3, H, W) deconvnet projections (each of one unit).
        images: (N, 3, H, W) the images, pixels in [0, 1].
        masks: (N, H, W) bool, the object of each image (``ClipArt.masks``).
        boxes: N receptive-field boxes ``(x0, y0, x1, y1)`` (:func:`zfviz.deconv.receptive_field_box`);
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
    boxes, n = _check_legibility(projections, images, masks, boxes), len(projections)
    energy = projections.detach().double().abs().sum(1)                      # (N, H, W)
    edges = _edge_strength(images.detach().double())
    ratio, corr = torch.full((n,), math.nan, dtype=torch.float64), torch.full((n,), math.nan, dtype=torch.float64)
    smooth = torch.full((n,), math.nan, dtype=torch.float64)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
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
    k = check_int("k", k, 1, sum(sizes), " (images drawn from the data set)")
    at_most = []                                          # number of draws whose largest class count is <= m
    for m in range(k + 1):
        poly = [1] + [0] * k                              # integer coefficients of x^0..x^k: exact
        for n in sizes:
            term = [math.comb(n, j) for j in range(min(m, n) + 1)]
            poly = [sum(poly[i - j] * t for j, t in enumerate(term) if j <= i) for i in range(k + 1)]
        at_most.append(poly[k])
    counts = [at_most[0]] + [at_most[m] - at_most[m - 1] for m in range(1, k + 1)]
    return torch.tensor([c / math.comb(sum(sizes), k) for c in counts], dtype=torch.float64)
