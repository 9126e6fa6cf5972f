"""A live deconvnet explorer for Jupyter and Colab: pick a layer, a feature map and an image, see the projection.

Explained in the chapter "The deconvnet, step by step" (book/deconvnet).

The widget is a thin shell. Everything it shows comes from one pure function, :func:`deconv_view`, which the
chapter and the tests call directly; the widget only wires three sliders to it and draws the result with
:func:`show_view`. (Python callbacks need a running kernel: on the static web pages a widget does nothing.)
"""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from IPython.display import display
from torch import nn

from . import deconv
from .plotting import stretch

__all__ = ["deconv_view", "show_view", "draw_box", "deconv_explorer", "DeconvExplorer"]


def _check_index(index, dataset) -> int:
    n = len(dataset)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"index must be an int in 0..{n - 1} (the data set has {n} images); got {index!r}")
    return index


def _check_preprocess(preprocess) -> None:
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"preprocess must be callable (e.g. zfviz.data.Preprocess) or None; "
                        f"got {type(preprocess).__name__}")


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
        dict with ``"image"`` (3, H, W) in [0, 1]; ``"projection"`` (3, H, W), the projection of the unit at
        ``"position"`` (y, x), the map's first argmax, min-max stretched to [0, 1] (all zeros when the map is
        silent, i.e. ``"activation"`` is 0); ``"activation"`` (float) the map's maximum; ``"box"`` (y0, x0, y1, x1),
        end-exclusive, that unit's receptive field in the image; and ``"layer"``, ``"channel"``, ``"index"``,
        ``"label"`` as ints.
    """
    _check_preprocess(preprocess)
    _check_index(index, dataset)
    image, label = dataset[index]                                     # (3, H, W) in [0, 1]
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
    return {"image": image, "projection": stretch(projection), "position": position,
            "activation": float(chosen.max()), "box": deconv.receptive_field_box(model, layer, position,
                                                                                   tuple(image.shape[-2:])),
            "layer": layer, "channel": channel, "index": index, "label": int(label)}


def show_view(view: dict, classes=None, size: float = 2.6):
    """Draw a :func:`deconv_view` result: the image and the projection side by side, the receptive field boxed.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).
    ``view["image"]`` and ``view["projection"]`` are (3, H, W) in [0, 1]; ``classes`` (optional) names the labels.
    Returns the matplotlib figure (2 panels, ``2 * size`` inches wide).
    """
    keys = {"image", "projection", "box", "activation", "layer", "channel", "index", "label"}
    if not isinstance(view, dict) or not keys <= view.keys():
        raise TypeError("view must be the dict that zfviz.widgets.deconv_view returns")
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size + 0.35))
    name = classes[view["label"]] if classes is not None else f"label {view['label']}"
    titles = [f"image {view['index']} ({name})",
              f"layer {view['layer']}, map {view['channel']}: {view['activation']:.2f}"]
    for ax, picture, title in zip(axes, (view["image"], view["projection"]), titles):
        ax.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy())
        draw_box(ax, view["box"])
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def draw_box(ax, box, color: str = "#FFB000", lw: float = 1.5) -> None:
    """Outline an end-exclusive ``(y0, x0, y1, x1)`` pixel box (as ``receptive_field_box`` gives) on an image axis.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).
    """
    y0, x0, y1, x1 = box
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
