"""Live explorers for Jupyter and Colab: the deconvnet (pick a layer, a feature map and an image, see the
projection) and occlusion sensitivity (slide a grey square over an image, see the class probability).

Explained in the chapters "The deconvnet, step by step" (book/deconvnet) and "Occlusion sensitivity"
(book/occlusion).

Each widget is a thin shell. Everything it shows comes from one pure function, :func:`deconv_view` or
:func:`occlusion_view`, which the chapters and the tests call directly; the widget only wires sliders to it and
draws the result. (Python callbacks need a running kernel: on the static web pages a widget does nothing.)
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import math
import numbers
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage
from torch import nn

from . import deconv, layers, occlusion
from ._checks import check_fill, check_image, check_occluder, check_target
from .plotting import stretch_symmetric

__all__ = ["deconv_view", "show_view", "draw_box", "deconv_explorer", "DeconvExplorer",
           "occlusion_view", "OcclusionView", "show_occlusion", "occlusion_explorer", "OcclusionExplorer"]


def _check_index(index, dataset) -> int:
    n = len(dataset)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"index must be an int in 0..{n - 1} (the data set has {n} images); got {index!r}")
    return index


def _check_preprocess(preprocess) -> None:
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"preprocess must be callable (e.g. zfviz.data.Preprocess) or None; "
                        f"got {type(preprocess).__name__}")


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


def _check_classes(classes, needed: int) -> None:
    """``classes`` (or None) must name classes 0..needed-1."""
    if classes is None:
        return
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise TypeError(f"classes must be a list of class names (or None); got {type(classes).__name__}")
    if len(classes) < needed:
        raise ValueError(f"classes must name every class the figure shows: it has {len(classes)} names, "
                         f"but class {needed - 1} is shown")


def _check_size(size) -> float:
    if isinstance(size, bool) or not isinstance(size, numbers.Real) or not 0 < size < math.inf:
        raise ValueError(f"size must be a figure height in inches, a number > 0; got {size!r}")
    return float(size)


def deconv_view(model: nn.Module, preprocess, dataset, layer: int, channel: int, index: int) -> dict:
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
        dict with ``"image"`` (3, H, W) in [0, 1]; ``"projection"`` (3, F, F) in [0, 1], the deconvnet projection
        of the unit at ``"position"`` (y, x), the map's first argmax, cropped to that unit's whole receptive field
        (F pixels a side, :func:`zfviz.deconv.field_crop`) and stretched symmetrically about zero
        (:func:`zfviz.plotting.stretch_symmetric`: zero is 0.5 grey, also all of it when the map is silent, i.e.
        ``"activation"`` is 0); ``"patch"`` (3, F, F), the image inside the same field (white past its border);
        ``"activation"`` (float) the map's maximum; ``"box"`` (y0, x0, y1, x1), end-exclusive, that unit's
        receptive field in the image (clipped to it); and ``"layer"``, ``"channel"``, ``"index"``, ``"label"`` as ints.
    """
    _check_preprocess(preprocess)
    _check_index(index, dataset)
    image, label = dataset[index]                                     # (3, H, W) in [0, 1]
    _check_picture(f"dataset[{index}][0]", image, pixels=preprocess is not None)
    x = image.unsqueeze(0)                                            # (1, 3, H, W)
    with torch.no_grad():
        x = preprocess(x) if preprocess is not None else x
    fmap = deconv.feature_map(model, x, layer)                        # (1, C, h, w); checks model and layer
    n_maps = fmap.shape[1]
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < n_maps:
        raise ValueError(f"channel must be an int in 0..{n_maps - 1} (layer {layer} has {n_maps} feature maps); "
                         f"got {channel!r}")
    chosen = fmap[0, channel]                                         # (h, w)
    flat = int(chosen.flatten().argmax())                            # first maximum, as project takes it
    position = (flat // chosen.shape[1], flat % chosen.shape[1])
    projection = deconv.project(model, x, layer, channel, position)[0]   # (3, H, W)
    crop = deconv.field_crop(projection, model, layer, position)          # (3, F, F)
    return {"image": image, "projection": stretch_symmetric(crop), "position": position,
            "patch": deconv.field_crop(image, model, layer, position, fill=1.0),
            "activation": float(chosen.max()), "box": deconv.receptive_field_box(model, layer, position,
                                                                                   tuple(image.shape[-2:])),
            "layer": layer, "channel": channel, "index": index, "label": int(label)}


def show_view(view: dict, classes=None, size: float = 2.6):
    """Draw a :func:`deconv_view` result: the image with the unit's receptive field boxed, the patch inside
    the field, and the projection cropped to it (zero grey), side by side.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).
    ``view["image"]`` (3, H, W), ``view["patch"]`` and ``view["projection"]`` (3, F, F), all in [0, 1];
    ``classes`` (optional) names the labels. Returns the matplotlib figure (3 panels, ``3 * size`` inches wide).
    """
    keys = {"image", "patch", "projection", "box", "activation", "layer", "channel", "index", "label"}
    if not isinstance(view, dict) or not keys <= view.keys():
        raise TypeError("view must be the dict that zfviz.widgets.deconv_view returns")
    _check_classes(classes, int(view["label"]) + 1)
    size = _check_size(size)
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size + 0.35))
    name = classes[view["label"]] if classes is not None else f"label {view['label']}"
    side = view["patch"].shape[-1]
    titles = [f"image {view['index']} ({name})", f"patch ({side} px field)",
              f"layer {view['layer']}, map {view['channel']}: {view['activation']:.2f}"]
    for ax, picture, title in zip(axes, (view["image"], view["patch"], view["projection"]), titles):
        ax.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="lanczos")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    draw_box(axes[0], view["box"])
    fig.tight_layout()
    return fig


def draw_box(ax, box, color: str = "#FFB000", lw: float = 1.5) -> None:
    """Outline an end-exclusive ``(y0, x0, y1, x1)`` pixel box (as ``receptive_field_box`` gives) on an image axis.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).
    """
    try:
        y0, x0, y1, x1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be 4 numbers (y0, x0, y1, x1); got {box!r}") from None
    if not all(math.isfinite(v) for v in (y0, x0, y1, x1)) or y1 < y0 or x1 < x0:
        raise ValueError(f"box must be (y0, x0, y1, x1), finite, with y0 <= y1 and x0 <= x1; got {box!r}")
    ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color=color, lw=lw))


class DeconvExplorer(widgets.VBox):
    """Three sliders (layer, feature map, image) above an output area that shows :func:`show_view`.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet). Build it with
    :func:`deconv_explorer`. Attributes: ``layer``, ``channel``, ``index`` (the ``IntSlider`` controls),
    ``output`` (an ``ipywidgets.Output``) and ``view`` (the last :func:`deconv_view` dict shown).
    Changing the layer resets the feature-map slider's range to that layer's 0..C-1.
    """

    def __init__(self, model, preprocess, dataset, layer: int = 1, channel: int = 0, index: int = 0):
        deconv_view(model, preprocess, dataset, layer, channel, index)    # validates every argument up front
        self._args, self._busy, self.view = (model, preprocess, dataset), False, None
        self._widths = [m.out_channels for m in model.children() if isinstance(m, nn.Conv2d)]
        self._classes = getattr(dataset, "classes", None)
        style = {"description_width": "90px"}
        self.layer = widgets.IntSlider(value=layer, min=1, max=len(self._widths), description="layer", style=style)
        self.channel = widgets.IntSlider(value=channel, min=0, max=self._widths[layer - 1] - 1,
                                         description="feature map", style=style)
        self.index = widgets.IntSlider(value=index, min=0, max=len(dataset) - 1, description="image", style=style)
        self.output = widgets.Output()
        super().__init__([widgets.HBox([self.layer, self.channel]), self.index, self.output])
        self.layer.observe(self._on_layer, names="value")
        self.channel.observe(self.refresh, names="value")
        self.index.observe(self.refresh, names="value")
        self.refresh()

    def _on_layer(self, change=None) -> None:
        self._busy = True                      # one refresh, not one per changed trait
        try:
            top = self._widths[self.layer.value - 1] - 1
            self.channel.value = min(self.channel.value, top)
            self.channel.max = top
        finally:
            self._busy = False
        self.refresh()

    def refresh(self, change=None) -> None:
        """Recompute the view for the sliders' current values and redraw it."""
        if self._busy:
            return
        self.view = deconv_view(*self._args, self.layer.value, self.channel.value, self.index.value)
        fig = show_view(self.view, self._classes)
        self.output.clear_output(wait=True)
        with self.output:
            display(fig)
        plt.close(fig)


def deconv_explorer(model: nn.Module, preprocess, dataset, layer: int = 1, channel: int = 0,
                    index: int = 0) -> DeconvExplorer:
    """A live widget: pick layer (1..5), feature map (0..C-1) and image (0..len-1); see the deconvnet projection.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).
    Arguments as in :func:`deconv_view` (images (3, H, W) in [0, 1]); ``layer``, ``channel``, ``index`` are the
    starting values; bad ones raise ValueError naming the allowed range, as in :func:`deconv_view`. Needs a running
    kernel (Jupyter, Colab); display the returned widget as a cell's last line.
    """
    return DeconvExplorer(model, preprocess, dataset, layer, channel, index)



# ----------------------------------------------------------------------------------------------
# Occlusion sensitivity (ZF §4.2, Fig. 7)
# ----------------------------------------------------------------------------------------------

COARSE_POSITIONS = 100   # a coarse preview has at most this many positions: ~0.1 s for the teaching ZFNet


@dataclass
class OcclusionView:
    """What one view of the occlusion explorer shows, as :func:`occlusion_view` returns it.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).
    ``image`` (3, H, W) in [0, 1]: the picture with the square at ``position`` (y, x, its top-left pixel), as the
    network sees it; ``prob_map`` (ny, nx): P(target) per position at stride ``map_stride`` (``stride``, or a
    multiple of it when ``coarse``); ``prob``, ``top_class``, ``top_prob``: P(target), the most probable class and
    its probability with the square at ``position``; ``image_prob``: P(target) without a square; ``size``,
    ``stride``, ``target``, ``fill`` as asked; ``num_classes``: how many classes the model has (None when not
    known). ``extent`` places the map over the image for ``imshow``.
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
        coarse: map at the smallest multiple of ``stride`` that has at most ``COARSE_POSITIONS`` (100) positions:
            a quick preview while a slider moves.
        preprocess: maps (N, 3, H, W) in [0, 1] to the model's input (``zfviz.data.Preprocess``), or None.
        cache: a dict the caller keeps between calls (the explorer does): a map already computed for this model
            input (the preprocessed image's values, not the object), these weights and train/eval modes, and this
            (size, stride, fill, target) is reused, so moving the square costs one forward pass. One cache may
            serve many images and models; editing an image or the weights in place makes a fresh map. (A model
            whose output changes other than through its parameters, buffers or modes needs a fresh cache.)
    Returns:
        :class:`OcclusionView`. ``image`` is ``preprocess.inverse`` of the occluded input clipped to [0, 1]
        (without ``preprocess``: the occluded input clipped; without an ``inverse``: the square painted grey 0.5).
    """
    if not isinstance(coarse, bool):
        raise TypeError(f"coarse must be True or False; got {coarse!r}")
    if cache is not None and not isinstance(cache, dict):
        raise TypeError(f"cache must be a dict kept by the caller between calls, or None; got {type(cache).__name__}")
    check_image(image)
    _check_preprocess(preprocess)
    _check_picture("image", image, pixels=preprocess is not None)
    with torch.no_grad():
        x = preprocess(image.unsqueeze(0))[0] if preprocess is not None else image   # (3, H, W) the model's input
    size, stride = check_occluder(x, size, stride)
    fill = check_fill(fill)
    if not math.isfinite(fill):
        raise ValueError(f"fill must be a finite number (the occluder's value in the model's input space); got {fill}")
    occluded = occlusion.occlude(x, position, size, fill)                 # checks the position
    device = layers.model_device(model, x)
    with torch.no_grad():
        probs = model(occluded.unsqueeze(0).to(device)).softmax(dim=1)    # (1, K): the one pass a move costs
    target = check_target(target, probs)
    map_stride = _coarse_stride(*x.shape[-2:], size, stride) if coarse else stride
    key = None if cache is None else (_model_key(model), _tensor_key(x), size, map_stride, fill, target)
    if cache is None or key not in cache:
        prob_map = occlusion.occlusion_map(model, x, target, size, map_stride, fill)
        with torch.no_grad():
            image_prob = float(model(x.unsqueeze(0).to(device)).softmax(dim=1)[0, target])
        if cache is not None:
            # The entry holds the model: while it lives, no other object can get the id the key holds.
            cache[key] = (prob_map, image_prob, model)
    else:
        prob_map, image_prob, _ = cache[key]
    with torch.no_grad():
        if preprocess is None:
            picture = occluded.clamp(0, 1)
        elif callable(getattr(preprocess, "inverse", None)):
            picture = preprocess.inverse(occluded.unsqueeze(0))[0].clamp(0, 1)
        else:
            picture = occlusion.occlude(image, position, size, 0.5).clamp(0, 1)
    top_prob, top_class = probs[0].max(dim=0)
    y, x_ = (int(v) for v in position)
    return OcclusionView(picture.cpu(), prob_map.cpu(), map_stride, (y, x_), float(probs[0, target]),
                         int(top_class), float(top_prob), image_prob, size, stride, target, fill,
                         map_stride != stride, probs.shape[1])


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


class _OcclusionFigure:
    """Two panels kept between updates (the explorer redraws by changing data, not by building a new figure):
    the image with the square outlined, and the P(target) map over the same pixel grid."""

    def __init__(self, fig, classes=None):
        self.fig, self.classes = fig, classes
        self.axes = fig.subplots(1, 2)
        for ax in self.axes:
            ax.set_xticks([])
            ax.set_yticks([])
        self.picture = self.map = None

    def _name(self, k: int) -> str:
        return self.classes[k] if self.classes is not None else f"class {k}"

    def update(self, view: OcclusionView):
        if not isinstance(view, OcclusionView):
            raise TypeError("view must be the OcclusionView that zfviz.widgets.occlusion_view returns")
        _check_classes(self.classes, max(view.target, view.top_class) + 1)
        height, width = view.image.shape[-2:]
        y, x = view.position
        centre = (x + (view.size - 1) / 2, y + (view.size - 1) / 2)
        left, right = self.axes
        if self.picture is None:
            self.picture = left.imshow(view.image.permute(1, 2, 0).numpy())
            self.square = plt.Rectangle((0, 0), 1, 1, fill=False, color="#FFB000", lw=1.5)
            left.add_patch(self.square)
            # The image, faint, under the map: which part of the object each cell's square covers.
            self.under = right.imshow(view.image.mean(0).numpy(), cmap="gray", vmin=0, vmax=1, alpha=0.4)
            self.map = right.imshow(view.prob_map.numpy(), extent=view.extent, vmin=0, vmax=1, cmap="viridis",
                                    interpolation="nearest", alpha=0.85)
            (self.marker,) = right.plot([0], [0], "+", color="#FE6100", ms=10, mew=2)
            self.fig.colorbar(self.map, ax=right, fraction=0.046, pad=0.04)
        else:
            self.picture.set_data(view.image.permute(1, 2, 0).numpy())
            self.under.set_data(view.image.mean(0).numpy())
            self.map.set_data(view.prob_map.numpy())
            self.map.set_extent(view.extent)
        self.square.set_bounds(x - 0.5, y - 0.5, view.size, view.size)
        self.marker.set_data([centre[0]], [centre[1]])
        right.set_xlim(-0.5, width - 0.5)
        right.set_ylim(height - 0.5, -0.5)
        left.set_title(f"P({self._name(view.target)}) = {view.prob:.2f}\n"
                       f"top: {self._name(view.top_class)} {view.top_prob:.2f}", fontsize=8)
        right.set_title(f"P({self._name(view.target)}), square {view.size}, stride {view.map_stride}"
                        f"{' (coarse)' if view.coarse else ''}\nno square: {view.image_prob:.2f}", fontsize=8)
        return self.fig


def show_occlusion(view: OcclusionView, classes=None, size: float = 2.6):
    """Draw an :func:`occlusion_view` result: the image with the square outlined, and the P(target) map on the
    same pixel grid (each cell at its square's centre; + marks the current square).

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).
    ``classes`` (optional) names the classes. Returns the matplotlib figure (2 panels, about ``2 * size`` inches wide).
    """
    size = _check_size(size)
    fig = plt.figure(figsize=(2 * size + 0.5, size + 0.6), layout="constrained")
    try:
        _OcclusionFigure(fig, classes).update(view)
    except (TypeError, ValueError):
        plt.close(fig)
        raise
    return fig


class OcclusionExplorer(widgets.VBox):
    """Four sliders (square size, stride, y, x) above the picture that :func:`show_occlusion` draws.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion). Build it with :func:`occlusion_explorer`.
    Attributes: ``size``, ``stride``, ``y``, ``x`` (``IntSlider``), ``picture`` (an ``ipywidgets.Image`` holding
    the PNG), ``view`` (the last :class:`OcclusionView` shown) and ``cache`` (maps computed so far). Moving the
    square costs one forward pass (the map comes from ``cache``). Changing size or stride shows a coarse map at
    once and the full one ``refine_delay`` seconds after the slider stops (in a running kernel; elsewhere at
    once); the y and x ranges follow the size.
    """

    def __init__(self, model, image, target: int, size: int = 16, stride: int = 4, position=(0, 0),
                 fill: float = 0.0, preprocess=None, classes=None, refine_delay: float = 0.3):
        if (isinstance(refine_delay, bool) or not isinstance(refine_delay, numbers.Real)
                or not 0 <= refine_delay < math.inf):
            raise ValueError(f"refine_delay must be a number of seconds >= 0; got {refine_delay!r}")
        _check_classes(classes, 0)
        self.cache: dict = {}
        # Validates every argument up front, and fills the cache with the starting map.
        self.view = occlusion_view(model, image, target, size, stride, position, fill, False, preprocess, self.cache)
        _check_classes(classes, self.view.num_classes)
        self._args = (model, image, self.view.target)
        self._fill, self._preprocess, self._delay = self.view.fill, preprocess, float(refine_delay)
        self._busy, self._pending, self._timer = False, False, None
        height, width = image.shape[-2:]
        self._hw = (height, width)
        style = {"description_width": "60px"}
        side = min(height, width)
        self.size = widgets.IntSlider(value=self.view.size, min=1, max=side, description="square", style=style)
        self.stride = widgets.IntSlider(value=self.view.stride, min=1, max=side, description="stride", style=style)
        self.y = widgets.IntSlider(value=self.view.position[0], min=0, max=height - self.view.size,
                                   description="y", style=style)
        self.x = widgets.IntSlider(value=self.view.position[1], min=0, max=width - self.view.size,
                                   description="x", style=style)
        self.picture = widgets.Image(format="png")
        fig = Figure(figsize=(5.7, 3.0), dpi=80, layout="constrained")   # not pyplot's: nothing to close
        self._canvas = FigureCanvasAgg(fig)
        self._figure = _OcclusionFigure(fig, classes)
        super().__init__([widgets.HBox([self.size, self.stride]), widgets.HBox([self.y, self.x]), self.picture])
        self.size.observe(self._on_geometry, names="value")
        self.stride.observe(self._on_geometry, names="value")
        self.y.observe(self.refresh, names="value")
        self.x.observe(self.refresh, names="value")
        self._draw()

    def _draw(self) -> None:
        fig = self._figure.update(self.view)
        self._canvas.draw()
        # Lay out once (constrained layout doubles the cost of each draw); the panels keep their places.
        fig.set_layout_engine("none")
        buf = io.BytesIO()
        # Fast PNG compression: encoding at matplotlib's default level costs as much as drawing.
        PILImage.fromarray(np.asarray(self._canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
        self.picture.value = buf.getvalue()

    def _on_geometry(self, change=None) -> None:
        self._busy = True                      # one refresh, not one per changed trait
        try:
            for slider, side in zip((self.y, self.x), self._hw):
                top = side - self.size.value
                slider.value = min(slider.value, top)
                slider.max = top
        finally:
            self._busy = False
        loop = None
        if self._delay > 0:
            try:
                loop = asyncio.get_running_loop()   # a kernel's event loop: refine once the slider rests
            except RuntimeError:
                pass
        if loop is None:
            self.refine()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._pending = True
        self.refresh()
        self._timer = loop.call_later(self._delay, self.refine)

    def refresh(self, change=None) -> None:
        """Recompute the view for the sliders' current values (coarse while a refinement is pending) and redraw."""
        if self._busy:
            return
        self.view = occlusion_view(*self._args, self.size.value, self.stride.value, (self.y.value, self.x.value),
                                   self._fill, self._pending, self._preprocess, self.cache)
        self._draw()

    def refine(self) -> None:
        """Show the full-resolution map now (cancelling a scheduled refinement)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._pending = None, False
        self.refresh()


def occlusion_explorer(model: nn.Module, image: torch.Tensor, target: int, size: int = 16, stride: int = 4,
                       position=(0, 0), fill: float = 0.0, preprocess=None, classes=None,
                       refine_delay: float = 0.3) -> OcclusionExplorer:
    """A live widget: slide a square over ``image`` and see P(target), the top class and the occlusion map.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).
    Arguments as in :func:`occlusion_view` (``size``, ``stride``, ``position`` are the starting values; ``image``
    in [0, 1] with ``preprocess``, e.g. ``occlusion_explorer(model, image, label, preprocess=preprocess,
    classes=val.classes)`` for the teaching ZFNet); ``classes`` names the classes in the titles;
    ``refine_delay``: seconds of rest before a coarse map is refined. Bad values raise as in
    :func:`occlusion_view`. Needs a running kernel; display the returned widget as a cell's last line.
    """
    return OcclusionExplorer(model, image, target, size, stride, position, fill, preprocess, classes, refine_delay)
