"""Live explorers for Jupyter and Colab: the deconvnet (pick a layer, a feature map and an image, see the
projection) and occlusion sensitivity (slide a grey square over an image, see the class probability).

Explained in the chapters "The deconvnet, step by step" (book/deconvnet) and "Occlusion sensitivity"
(book/occlusion).

Each widget is a thin shell. Everything it shows comes from one pure function of ``zfviz.views``,
:func:`deconv_view` or :func:`occlusion_view` (importable from here too), which the chapters, the static pages
(``zfviz.static``) and the tests call directly; the widget only wires sliders to it and draws the result.
(Python callbacks need a running kernel: on the static web pages a widget does nothing.)
"""
from __future__ import annotations

import asyncio
import io
import math
import numbers
import warnings
from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage
from torch import nn

from . import layers
# The pure functions live in zfviz.views (the static pages use them without ipywidgets); they stay importable
# from here, where the chapters have always found them (the occlusion chapter reads COARSE_POSITIONS here).
from .plotting import draw_box  # noqa: F401 (re-exported: the chapters called widgets.draw_box)
from .views import COARSE_POSITIONS, DeconvView, OcclusionView, deconv_view, occlusion_view  # noqa: F401

__all__ = ["deconv_view", "DeconvView", "show_view", "draw_box", "deconv_explorer", "DeconvExplorer",
           "occlusion_view", "OcclusionView", "show_occlusion", "occlusion_explorer", "OcclusionExplorer"]

_DEFAULT_INCHES = 2.6   # the panels' height when the caller gives none
_VIEW_KEYS = ("image", "patch", "projection", "box", "activation", "layer", "channel", "index", "label")


def _check_classes(classes, needed: int) -> None:
    """``classes`` (or None) must name classes 0..needed-1."""
    if classes is None:
        return
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise TypeError(f"classes must be a list of class names (or None); got {type(classes).__name__}")
    if len(classes) < needed:
        raise ValueError(f"classes must name every class the figure shows: it has {len(classes)} names, "
                         f"but class {needed - 1} is shown")


def _panel_inches(inches, size, function: str) -> float:
    """The panels' height in inches: ``inches``, or ``size``, its old name, with a DeprecationWarning (in the
    occlusion views ``size`` is the square's side in pixels, so one name meant two units)."""
    name = "inches"
    if size is not None:
        if inches is not None:
            raise TypeError(f"{function}() takes the panel height as inches=...; size=... is its old name: "
                            f"give one of them")
        warnings.warn(f"{function}(size=...) is deprecated; use inches=... (the panels' height in inches)",
                      DeprecationWarning, stacklevel=3)
        inches, name = size, "size"
    inches = _DEFAULT_INCHES if inches is None else inches
    if isinstance(inches, bool) or not isinstance(inches, numbers.Real) or not 0 < inches < math.inf:
        raise ValueError(f"{name} must be a figure height in inches, a number > 0; got {inches!r}")
    return float(inches)


def show_view(view: DeconvView, classes=None, inches: float | None = None, *, size: float | None = None):
    """Draw a :func:`deconv_view` result: the image with the unit's receptive field boxed, the patch inside
    the field, and the projection cropped to it (zero grey), side by side.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).
    ``view.image`` (3, H, W), ``view.patch`` and ``view.projection`` (3, F, F), all in [0, 1] (a dict with the
    same keys will do); ``classes`` (optional) names the labels; ``inches`` the panels' height (default 2.6;
    ``size`` is its deprecated old name). Returns the matplotlib figure (3 panels, ``3 * inches`` inches wide).
    """
    if not (isinstance(view, DeconvView) or (isinstance(view, dict) and set(_VIEW_KEYS) <= view.keys())):
        raise TypeError("view must be the DeconvView that zfviz.views.deconv_view (or zfviz.widgets.deconv_view) "
                        "returns")
    _check_classes(classes, int(view["label"]) + 1)
    inches = _panel_inches(inches, size, "show_view")
    fig, axes = plt.subplots(1, 3, figsize=(3 * inches, inches + 0.35))
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


class DeconvExplorer(widgets.VBox):
    """Three sliders (layer, feature map, image) above an output area that shows :func:`show_view`.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet). Build it with
    :func:`deconv_explorer`. Attributes: ``layer``, ``channel``, ``index`` (the ``IntSlider`` controls),
    ``output`` (an ``ipywidgets.Output``) and ``view`` (the last :class:`DeconvView` shown).
    Changing the layer resets the feature-map slider's range to that layer's 0..C-1.
    """

    def __init__(self, model, preprocess, dataset, layer: int = 1, channel: int = 0, index: int = 0):
        deconv_view(model, preprocess, dataset, layer, channel, index)    # validates every argument up front
        self._args, self._busy, self.view = (model, preprocess, dataset), False, None
        self._widths = [m.out_channels for m in layers.convs(model)]
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


def show_occlusion(view: OcclusionView, classes=None, inches: float | None = None, *, size: float | None = None):
    """Draw an :func:`occlusion_view` result: the image with the square outlined, and the P(target) map on the
    same pixel grid (each cell at its square's centre; + marks the current square).

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).
    ``classes`` (optional) names the classes; ``inches`` the panels' height (default 2.6; ``size``, its deprecated
    old name, is the square's side in pixels in ``view``). Returns the matplotlib figure (2 panels, about
    ``2 * inches`` inches wide).
    """
    inches = _panel_inches(inches, size, "show_occlusion")
    fig = plt.figure(figsize=(2 * inches + 0.5, inches + 0.6), layout="constrained")
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
