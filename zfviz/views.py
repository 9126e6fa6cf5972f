"""What one view of an explorer shows, computed by pure functions: nothing is drawn, displayed or stored.

Explained in the chapters "The deconvnet, step by step" (book/deconvnet) and "Occlusion sensitivity"
(book/occlusion).

Two kinds of explorer show these views: the live ones of ``zfviz.widgets`` (ipywidgets; a kernel recomputes the
view when a slider moves) and the precomputed ones of ``zfviz.static`` (the published book, without a kernel).
Both import this module, and it imports neither of them, nor ipywidgets or IPython: the static pages build
where no widget library is installed. The chapters and the tests call :func:`deconv_view` and
:func:`occlusion_view` directly. Each returns a frozen dataclass, read by attribute (``view.box``) or, as the
chapters do, by name (``view["box"]``).
"""
from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass, fields

import torch
from torch import nn

from . import deconv, layers, occlusion
from ._checks import (check_channel, check_fill, check_image, check_image_size, check_images, check_layer,
                      check_model, check_occluder, check_preprocess, check_target)
from .plotting import stretch_symmetric

__all__ = ["deconv_view", "DeconvView", "occlusion_view", "OcclusionView", "COARSE_POSITIONS"]

COARSE_POSITIONS = 100   # a coarse preview has at most this many positions: ~0.1 s for the teaching ZFNet


class _ByName:
    """``view["box"]`` reads field ``box``: the chapters index a view by name (a deconvnet view was a dict)."""

    def keys(self) -> tuple[str, ...]:
        """The field names, in order (so ``dict(view)`` gives the fields as a dict)."""
        return tuple(f.name for f in fields(self))

    def __getitem__(self, name: str):
        if name not in self.keys():
            raise KeyError(name)
        return getattr(self, name)

    def __contains__(self, name) -> bool:
        return name in self.keys()

    def __iter__(self):
        return iter(self.keys())


# ----------------------------------------------------------------------------------------------
# Checks that only the views need (the shared ones are in zfviz._checks)
# ----------------------------------------------------------------------------------------------

def _check_index(index, dataset) -> int:
    n = len(dataset)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"index must be an int in 0..{n - 1} (the data set has {n} images); got {index!r}")
    return index


def _check_picture(name: str, image, pixels: bool) -> None:
    """A finite float tensor (3, H, W); in [0, 1] when ``pixels`` (it goes through ``preprocess`` or is shown)."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (3, H, W); got {type(image).__name__}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"{name} must be one image (3, H, W); got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"{name} must be a float tensor{' of pixels in [0, 1]' if pixels else ''}; got dtype "
                        f"{image.dtype}" + (". Convert 0-255 pixels with image.float() / 255" if pixels else ""))
    lo, hi = torch.stack([image.detach().min(), image.detach().max()]).float().tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if pixels and (lo < -1e-3 or hi > 1 + 1e-3):
        raise ValueError(f"{name} must be pixels in [0, 1] (it goes through preprocess); got values in "
                         f"[{lo:.4g}, {hi:.4g}]" + (" (0-255 pixels? divide by 255)" if 0 <= lo and hi <= 255 else ""))


# ----------------------------------------------------------------------------------------------
# The deconvnet (ZF §2.1, Fig. 1)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeconvView(_ByName):
    """What one view of the deconvnet explorer shows, as :func:`deconv_view` returns it.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).
    ``image`` (3, H, W) in [0, 1]; ``projection`` (3, F, F) in [0, 1], the deconvnet projection of the unit at
    ``position`` (y, x), the map's first argmax, cropped to that unit's whole receptive field (F pixels a side,
    :func:`zfviz.deconv.field_crop`) and stretched symmetrically about zero
    (:func:`zfviz.plotting.stretch_symmetric`: zero is 0.5 grey, also all of it when the map is silent, i.e.
    ``activation`` is 0); ``patch`` (3, F, F), the image inside the same field (white past its border);
    ``activation`` (float) the map's maximum; ``box`` that unit's receptive field in the image (clipped to
    it), a :class:`zfviz.layers.Box` ``(x0, y0, x1, y1)``, end-exclusive; ``layer``, ``channel``, ``index``, ``label`` as ints.
    Read a field as ``view.box`` or ``view["box"]``.
    """
    image: torch.Tensor
    projection: torch.Tensor
    position: tuple[int, int]
    patch: torch.Tensor
    activation: float
    box: layers.Box
    layer: int
    channel: int
    index: int
    label: int


def _dataset_input(dataset, index, preprocess) -> tuple[torch.Tensor, int, torch.Tensor]:
    """Image ``index`` (3, H, W), its label, and the network's input (1, 3, H, W) made from it."""
    check_preprocess(preprocess)
    _check_index(index, dataset)
    image, label = dataset[index]                                     # (3, H, W) in [0, 1]
    _check_picture(f"dataset[{index}][0]", image, pixels=preprocess is not None)
    x = image.unsqueeze(0)                                            # (1, 3, H, W)
    with torch.no_grad():
        x = preprocess(x) if preprocess is not None else x
    return image, label, x


def _check_unit(model: nn.Module, x: torch.Tensor, layer, channel) -> None:
    # The checks zfviz.deconv.feature_map makes, in its order, then the channel's: the messages a caller saw
    # when the view read the map in a pass of its own, before the layer's stack is looked up below.
    check_model(model)
    check_images(model, x)
    check_layer(model, layer)
    check_image_size(model, x, layers.named_stack(model, layer), what=f" for layer {layer}")
    check_channel(model, layer, channel)


def deconv_view(model: nn.Module, preprocess, dataset, layer: int, channel: int, index: int) -> DeconvView:
    """Everything one view of the explorer shows: image ``index``, its strongest unit in map ``channel`` of ``layer``,
    that unit's deconvnet projection and its receptive field. A pure function: nothing is drawn or stored.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).

    Args:
        model: a flat conv network as :func:`zfviz.deconv.project` takes (e.g. the teaching ZFNet); not modified.
        preprocess: maps images (N, 3, H, W) in [0, 1] to the network's input (``zfviz.data.Preprocess``), or None.
        dataset: yields ``(image (3, H, W) in [0, 1], label)`` pairs, e.g. ``zfviz.data.ClipArt("val")``.
        layer: the paper's conv layer, 1..5 (its rectified map, relu{layer}).
        channel: feature map of that layer, 0..C-1.
        index: image of the data set, 0..len(dataset)-1.
    Returns:
        :class:`DeconvView` (its fields: ``image``, ``projection``, ``position``, ``patch``, ``activation``,
        ``box``, ``layer``, ``channel``, ``index``, ``label``), read as ``view.box`` or ``view["box"]``. One
        forward pass to the layer gives both the map and the projection.
    """
    image, label, x = _dataset_input(dataset, index, preprocess)
    _check_unit(model, x, layer, channel)
    fmap, projection = deconv.map_and_projection(model, x, layer, channel)
    projection = projection[0]                                        # (3, H, W)
    chosen = fmap[0, channel]                                         # (h, w)
    flat = int(chosen.flatten().argmax())                             # the first maximum, as project takes it
    position = (flat // chosen.shape[1], flat % chosen.shape[1])
    crop = deconv.field_crop(projection, model, layer, position)     # (3, F, F)
    patch = deconv.field_crop(image, model, layer, position, fill=1.0)
    box = deconv.receptive_field_box(model, layer, position, tuple(image.shape[-2:]))
    return DeconvView(image, stretch_symmetric(crop), position, patch, float(chosen.max()), box,
                      layer, channel, index, int(label))


# ----------------------------------------------------------------------------------------------
# Occlusion sensitivity (ZF §4.2, Fig. 7)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OcclusionView(_ByName):
    """What one view of the occlusion explorer shows, as :func:`occlusion_view` returns it.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).
    ``image`` (3, H, W) in [0, 1]: the picture with the square at ``position`` (y, x, its top-left pixel), as the
    network sees it; ``prob_map`` (ny, nx): P(target) per position at stride ``map_stride`` (``stride``, or a
    multiple of it when ``coarse``); ``prob``, ``top_class``, ``top_prob``: P(target), the most probable class and
    its probability with the square at ``position``; ``image_prob``: P(target) without a square; ``size``,
    ``stride``, ``target``, ``fill`` as asked; ``num_classes``: how many classes the model has (None when not
    known). ``extent`` places the map over the image for ``imshow``. Read a field as ``view.prob`` or
    ``view["prob"]``.
    """
    image: torch.Tensor
    prob_map: torch.Tensor
    map_stride: int
    position: tuple[int, int]
    prob: float
    top_class: int
    top_prob: float
    image_prob: float
    size: int
    stride: int
    target: int
    fill: float
    coarse: bool
    num_classes: int | None = None

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) in pixels for ``imshow(prob_map, extent=...)``: cell (i, j) centred on the
        centre of its square, (i * map_stride + (size - 1) / 2, j * map_stride + (size - 1) / 2)."""
        return occlusion.map_extent(tuple(self.prob_map.shape), self.size, self.map_stride)


def _coarse_stride(height: int, width: int, size: int, stride: int) -> int:
    """The smallest multiple of ``stride`` that leaves at most COARSE_POSITIONS positions."""
    k = 1
    while math.prod(occlusion.occlusion_grid(height, width, size, stride * k)) > COARSE_POSITIONS:
        k += 1
    return stride * k


def _tensor_key(t: torch.Tensor) -> tuple:
    """The values of a tensor (not the object: ids are reused, tensors are edited in place): shape, dtype, digest."""
    raw = t.detach().reshape(-1).cpu().contiguous().view(torch.uint8).numpy()
    return tuple(t.shape), str(t.dtype), hashlib.blake2b(raw, digest_size=16).hexdigest()


def _model_key(model: nn.Module) -> tuple:
    """The model object (the cache entry keeps it alive, so its id is not reused) and the state its output depends
    on: a CRC-32 of every parameter and buffer (about 1 ms for the teaching ZFNet's 7.5 MB), their shapes and
    dtypes, and each module's train/eval mode."""
    tensors = [*model.parameters(), *model.buffers()]
    crc = 0
    for t in tensors:
        crc = zlib.crc32(t.detach().reshape(-1).cpu().contiguous().view(torch.uint8).numpy(), crc)
    return (id(model), crc, tuple((tuple(t.shape), str(t.dtype)) for t in tensors),
            tuple(m.training for m in model.modules()))


def _occlusion_input(image, coarse, cache, preprocess) -> torch.Tensor:
    """The model's input (3, H, W) made from ``image``, after checking the arguments that do not need it."""
    if not isinstance(coarse, bool):
        raise TypeError(f"coarse must be True or False; got {coarse!r}")
    if cache is not None and not isinstance(cache, dict):
        raise TypeError(f"cache must be a dict kept by the caller between calls, or None; got {type(cache).__name__}")
    check_image(image)
    check_preprocess(preprocess)
    _check_picture("image", image, pixels=preprocess is not None)
    with torch.no_grad():
        return preprocess(image.unsqueeze(0))[0] if preprocess is not None else image


def _probabilities(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """softmax of the model's logits for one input (3, H, W): (1, K), on the model's device."""
    with torch.no_grad():
        return model(x.unsqueeze(0).to(device)).softmax(dim=1)


def _map_and_image_prob(model, x, target, size, map_stride, fill, cache, device) -> tuple[torch.Tensor, float]:
    """The P(target) map and P(target) without a square: from ``cache`` when this model state, input and geometry
    were mapped before (so moving the square costs one forward pass), else computed and stored there."""
    key = None if cache is None else (_model_key(model), _tensor_key(x), size, map_stride, fill, target)
    if cache is not None and key in cache:
        prob_map, image_prob, _ = cache[key]
        return prob_map, image_prob
    prob_map = occlusion.occlusion_map(model, x, target, size, map_stride, fill)
    image_prob = float(_probabilities(model, x, device)[0, target])
    if cache is not None:
        # The entry holds the model: while it lives, no other object can get the id the key holds.
        cache[key] = (prob_map, image_prob, model)
    return prob_map, image_prob


def _occluded_picture(image, occluded, position, size, preprocess) -> torch.Tensor:
    """What the network sees, as a picture in [0, 1]: the occluded input back through ``preprocess.inverse``."""
    with torch.no_grad():
        if preprocess is None:
            return occluded.clamp(0, 1)
        if callable(getattr(preprocess, "inverse", None)):
            return preprocess.inverse(occluded.unsqueeze(0))[0].clamp(0, 1)
        return occlusion.occlude(image, position, size, 0.5).clamp(0, 1)   # no inverse: a grey square


def occlusion_view(model: nn.Module, image: torch.Tensor, target: int, size: int, stride: int,
                   position: tuple[int, int], fill: float = 0.0, coarse: bool = False, preprocess=None,
                   cache: dict | None = None) -> OcclusionView:
    """Everything one view of the occlusion explorer shows: the image with a square at ``position``, the
    probabilities there, and the P(target) map of ``zfviz.occlusion.occlusion_map``. Nothing is drawn.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).

    Args:
        model: any ``nn.Module`` returning logits, in eval mode (e.g. the teaching ZFNet); not modified.
        image: (3, H, W); in [0, 1] when ``preprocess`` is given, else the model's input itself.
        target: the class whose probability is mapped, 0..num_classes-1.
        size, stride: the square's side (1..min(H, W)) and the map's step (>= 1), in pixels.
        position: (y, x), the square's top-left pixel, 0..H-size and 0..W-size (need not lie on the map's grid).
        fill: the square's value in the model's input space (0.0: the mean image for the teaching ZFNet).
        coarse: map at the smallest multiple of ``stride`` that has at most ``COARSE_POSITIONS`` (100) positions.
        preprocess: maps (N, 3, H, W) in [0, 1] to the model's input (``zfviz.data.Preprocess``), or None.
        cache: a dict the caller keeps between calls: a map already computed for this model input (its values),
            these weights and modes, and this (size, stride, fill, target) is reused. Editing an image or the
            weights in place makes a fresh map; a model whose output changes otherwise needs a fresh cache.
    Returns:
        :class:`OcclusionView`. ``image`` is ``preprocess.inverse`` of the occluded input clipped to [0, 1]
        (without ``preprocess``: the occluded input clipped; without an ``inverse``: the square painted grey 0.5).
    """
    x = _occlusion_input(image, coarse, cache, preprocess)                 # (3, H, W) the model's input
    size, stride = check_occluder(x, size, stride)
    fill = check_fill(fill)                                                # a finite float
    occluded = occlusion.occlude(x, position, size, fill)                  # checks the position
    device = layers.model_device(model, x)
    probs = _probabilities(model, occluded, device)                        # (1, K): the one pass a move costs
    target = check_target(target, probs)
    map_stride = _coarse_stride(*x.shape[-2:], size, stride) if coarse else stride
    prob_map, image_prob = _map_and_image_prob(model, x, target, size, map_stride, fill, cache, device)
    picture = _occluded_picture(image, occluded, position, size, preprocess)
    top_prob, top_class = probs[0].max(dim=0)
    y, x_ = (int(v) for v in position)
    return OcclusionView(picture.cpu(), prob_map.cpu(), map_stride, (y, x_), float(probs[0, target]),
                         int(top_class), float(top_prob), image_prob, size, stride, target, fill,
                         map_stride != stride, probs.shape[1])
