"""Explorers for the static web pages: the deconvnet and occlusion explorers of ``zfviz.widgets``, precomputed.

Explained in the chapters "The deconvnet, step by step" (book/deconvnet) and "Occlusion sensitivity"
(book/occlusion).

The ipywidgets explorers need a running Python kernel; on the published book there is none. These build the
same views ahead of time, with the same pure functions (``zfviz.widgets.deconv_view`` and
``zfviz.occlusion.occlusion_probabilities``), and wrap them in a small self-contained HTML/JavaScript
component: the pictures are embedded as data URIs and a few lines of JavaScript switch between them, so the
page works offline, without a kernel and without any library. In a notebook the object displays itself
(``_repr_html_``); ``explorer.views`` holds what was precomputed, for tests and for readers.
"""
from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import occlusion
from .widgets import deconv_view

__all__ = ["StaticExplorer", "static_deconv_explorer", "static_occlusion_explorer", "picture_uri"]

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


def picture_uri(picture: torch.Tensor, fmt: str = "PNG", quality: int = 90) -> str:
    """A (3, H, W) picture in [0, 1] as a ``data:`` URI (PNG, lossless, or JPEG, ~5x smaller for noisy pictures).

    Explained in the chapter "The deconvnet, step by step" (the static explorer).
    """
    if not torch.is_tensor(picture) or picture.dim() != 3 or picture.shape[0] != 3:
        raise ValueError(f"picture must be a (3, H, W) tensor in [0, 1], got "
                         f"{tuple(picture.shape) if torch.is_tensor(picture) else type(picture).__name__}")
    if fmt not in ("PNG", "JPEG"):
        raise ValueError(f"fmt must be 'PNG' or 'JPEG', got {fmt!r}")
    pixels = (picture.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    # JPEG without chroma subsampling: projections are fine-grained colour, which 4:2:0 would smear.
    options = {"quality": quality, "subsampling": 0} if fmt == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_uri(uri: str) -> torch.Tensor:
    """Back from :func:`picture_uri` to a (3, H, W) float tensor in [0, 1] (for tests).

    Explained in the chapter "The deconvnet, step by step" (the static explorer)."""
    data = base64.b64decode(uri.split(",", 1)[1])
    pixels = np.array(Image.open(io.BytesIO(data)).convert("RGB"))
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255


class StaticExplorer:
    """A precomputed explorer: self-contained HTML (``_repr_html_``) and the data it shows (``views``).

    Explained in the chapters "The deconvnet, step by step" and "Occlusion sensitivity". Built by
    :func:`static_deconv_explorer` or :func:`static_occlusion_explorer`; ``html`` is the component,
    ``views`` a dict of what was precomputed, ``summary`` one line saying what.
    """

    def __init__(self, kind: str, name: str, html_text: str, views: dict, summary: str):
        self.kind, self.name, self.html, self.views, self.summary = kind, name, html_text, views, summary

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<StaticExplorer {self.kind} '{self.name}': {self.summary}>"

    @property
    def size_bytes(self) -> int:
        """Bytes the component adds to the page."""
        return len(self.html.encode("utf-8"))


def _check_name(name) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be a short lower-case id like 'deconv-1' (letters, digits, '-'; it names the "
                         f"HTML elements, so each explorer on a page needs its own), got {name!r}")
    return name


def _component(name: str, kind: str, data: dict, body: str, script: str) -> str:
    """The HTML of one explorer: its markup, its data as JSON, and its script, all scoped by ``name``."""
    # Inside <script> nothing is HTML-decoded; only "</" could end the element early, and "<\/" is valid JSON.
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (f'<div class="zfviz-explorer zfviz-{kind}" id="{name}" data-kind="{kind}" '
            f'style="font-family:sans-serif;font-size:14px;background:#fff;color:#111;padding:6px;'
            f'border:1px solid #ccc;border-radius:4px;max-width:640px">{body}'
            f'<script type="application/json" id="{name}-data">{payload}</script>'
            f'<script>(function(){{const root=document.getElementById("{name}");'
            f'const D=JSON.parse(document.getElementById("{name}-data").textContent);{script}}})();</script></div>')


_LABEL = 'style="margin-right:10px"'
_FIGURE = "position:relative;display:inline-block;margin:4px;width:224px;height:224px"
_IMG = "width:224px;height:224px;image-rendering:pixelated;display:block"
_BOX = "position:absolute;border:2px solid #FFB000;box-sizing:border-box;pointer-events:none"


def static_deconv_explorer(model: nn.Module, preprocess, dataset, indices, channels: dict, classes=None,
                           name: str = "deconv-explorer", quality: int = 90) -> StaticExplorer:
    """The deconvnet explorer for a page without a kernel: pick a layer, a feature map and an image.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).

    Args:
        model, preprocess, dataset: as :func:`zfviz.widgets.deconv_view` (e.g. the teaching ZFNet, its
            preprocess and ``zfviz.data.ClipArt("val")``).
        indices: the images offered, a list of indices into ``dataset`` (a few: every view is stored).
        channels: ``{layer: [feature maps]}`` offered for each conv layer 1-5.
        classes: optional class names for the image menu.
        name: the component's HTML id (unique on its page).
        quality: JPEG quality of the projections (images are PNG).
    Returns:
        :class:`StaticExplorer`; ``views[(layer, channel, index)]`` is ``deconv_view``'s dict less the tensors,
        plus ``"projection_uri"``; ``views["images"][index]`` is the image's URI.
    """
    name = _check_name(name)
    if not isinstance(channels, dict) or not channels:
        raise TypeError(f"channels must be a dict {{layer: [feature maps]}}, got {type(channels).__name__}")
    indices = list(indices)
    if not indices:
        raise ValueError("indices must name at least one image")
    layers = {layer: list(channels[layer]) for layer in sorted(channels)}
    for layer, maps in layers.items():
        if not maps:
            raise ValueError(f"channels[{layer}] is empty; give at least one feature map per layer")
    views = {"images": {}}
    data = {"layers": {str(layer): maps for layer, maps in layers.items()}, "images": [], "views": {}}
    for index in indices:
        label = None
        for layer, maps in layers.items():
            for channel in maps:
                v = deconv_view(model, preprocess, dataset, layer, channel, index)   # checks everything
                uri = picture_uri(v["projection"], "JPEG", quality)
                height, width = v["image"].shape[-2:]
                record = {"activation": round(v["activation"], 3), "position": list(v["position"]),
                          "box": [int(b) for b in v["box"]], "projection_uri": uri, "label": v["label"]}
                views[(layer, channel, index)] = record
                data["views"][f"{layer},{channel},{index}"] = {
                    "a": record["activation"], "p": record["position"], "u": uri,
                    "b": [record["box"][0] / height, record["box"][1] / width,
                          record["box"][2] / height, record["box"][3] / width]}
                if label is None:
                    label = v["label"]
                    views["images"][index] = picture_uri(v["image"], "PNG")
        data["images"].append({"index": index, "label": classes[label] if classes is not None else f"label {label}",
                               "u": views["images"][index]})
    body = (f'<div style="margin-bottom:4px"><label {_LABEL}>layer <select class="layer"></select></label>'
            f'<label {_LABEL}>feature map <select class="map"></select></label>'
            f'<label {_LABEL}>image <select class="image"></select></label></div>'
            f'<div><div style="{_FIGURE}"><img class="picture" alt="the input image" style="{_IMG}">'
            f'<div class="box" style="{_BOX}"></div></div>'
            f'<div style="{_FIGURE}"><img class="projection" alt="deconvnet projection of the strongest '
            f'activation of the chosen feature map" style="{_IMG}"><div class="box" style="{_BOX}"></div></div></div>'
            f'<div class="caption" aria-live="polite" style="margin-top:4px"></div>')
    script = r"""
const q = s => root.querySelector(s);
const layer = q(".layer"), map = q(".map"), image = q(".image");
const opt = (sel, value, text) => { const o = document.createElement("option"); o.value = value;
  o.textContent = text; sel.appendChild(o); };
Object.keys(D.layers).forEach(l => opt(layer, l, l));
D.images.forEach(im => opt(image, im.index, im.index + " (" + im.label + ")"));
function fillMaps() { map.innerHTML = ""; D.layers[layer.value].forEach(m => opt(map, m, m)); }
function show() {
  const v = D.views[layer.value + "," + map.value + "," + image.value];
  const im = D.images.find(i => String(i.index) === image.value);
  q(".picture").src = im.u; q(".projection").src = v.u;
  root.querySelectorAll(".box").forEach(b => { b.style.top = 100 * v.b[0] + "%";
    b.style.left = 100 * v.b[1] + "%"; b.style.height = 100 * (v.b[2] - v.b[0]) + "%";
    b.style.width = 100 * (v.b[3] - v.b[1]) + "%"; });
  q(".caption").textContent = "layer " + layer.value + ", feature map " + map.value + ", image " + image.value +
    " (" + im.label + "): strongest activation " + v.a.toFixed(2) + " at (" + v.p.join(", ") +
    "); the box is its receptive field";
  root.dataset.view = layer.value + "," + map.value + "," + image.value;
}
layer.addEventListener("change", () => { fillMaps(); show(); });
map.addEventListener("change", show); image.addEventListener("change", show);
fillMaps(); show();
"""
    summary = (f"{len(layers)} layers, {sum(len(m) for m in layers.values())} feature maps, "
               f"{len(indices)} images")
    return StaticExplorer("deconv", name, _component(name, "deconv", data, body, script), views, summary)


def _map_uri(values: torch.Tensor) -> str:
    """A (ny, nx) map in [0, 1] as a viridis PNG, one pixel per cell (the page scales it up, pixelated)."""
    import matplotlib
    rgb = torch.from_numpy(matplotlib.colormaps["viridis"](values.clamp(0, 1).numpy())[..., :3]).permute(2, 0, 1)
    return picture_uri(rgb.float(), "PNG")


def static_occlusion_explorer(model: nn.Module, images: torch.Tensor, targets, size: int, stride: int,
                              preprocess=None, classes=None, fill: float = 0.0,
                              name: str = "occlusion-explorer") -> StaticExplorer:
    """The occlusion explorer for a page without a kernel: move the grey square, read the class probabilities.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).

    Args:
        model: any classifier returning logits, in eval mode (e.g. the teaching ZFNet).
        images: (N, 3, H, W) in [0, 1] (the model's input after ``preprocess``; without it, the input itself).
        targets: N class indices, the class whose probability is mapped for each image.
        size, stride: the square's side and the step between positions, in pixels (the slider moves by a step).
        preprocess, fill: as :func:`zfviz.widgets.occlusion_view`; the square shows what the network sees
            (``preprocess.inverse`` of ``fill``: the mean image for the teaching ZFNet).
        classes: optional class names.
        name: the component's HTML id (unique on its page).
    Returns:
        :class:`StaticExplorer`; ``views[n]`` holds, for image n, ``"prob"`` (ny, nx) P(target) per position
        (``occlusion.occlusion_probabilities``, rounded to 1e-3), ``"top_class"`` and ``"top_prob"`` (ny, nx),
        ``"image_prob"``, ``"target"`` and the geometry.
    """
    name = _check_name(name)
    if not torch.is_tensor(images) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got "
                         f"{tuple(images.shape) if torch.is_tensor(images) else type(images).__name__}")
    targets = [int(t) for t in targets]
    if len(targets) != len(images):
        raise ValueError(f"targets must give one class per image: {len(images)} images, {len(targets)} targets")
    height, width = images.shape[-2:]
    views, data = {}, {"images": []}
    with torch.no_grad():
        x = preprocess(images) if preprocess is not None else images
        if preprocess is not None and callable(getattr(preprocess, "inverse", None)):
            patch = preprocess.inverse(torch.full_like(x[:1], float(fill)))[0].clamp(0, 1)
        else:
            patch = torch.full((3, height, width), 0.5)
    for n, (xi, target) in enumerate(zip(x, targets)):
        probs = occlusion.occlusion_probabilities(model, xi, size, stride, fill)        # (ny, nx, K); checks
        if not 0 <= target < probs.shape[-1]:
            raise ValueError(f"targets[{n}] must be a class in 0..{probs.shape[-1] - 1}, got {target}")
        with torch.no_grad():
            whole = model(xi.unsqueeze(0)).softmax(dim=1)[0]
        top_prob, top_class = probs.max(dim=-1)
        ny, nx = probs.shape[:2]
        view = {"prob": probs[..., target].round(decimals=3), "top_class": top_class,
                "top_prob": top_prob.round(decimals=3), "image_prob": round(float(whole[target]), 3),
                "target": target, "size": size, "stride": stride, "grid": (ny, nx)}
        views[n] = view
        if "classes" not in data:      # the class names, once the first map tells how many classes there are
            data["classes"] = list(classes) if classes is not None else [f"class {k}" for k in range(probs.shape[-1])]
        data["images"].append({
            "u": picture_uri(images[n].clamp(0, 1), "PNG"), "map": _map_uri(view["prob"]),
            "prob": view["prob"].flatten().tolist(), "top": top_class.flatten().tolist(),
            "topp": view["top_prob"].flatten().tolist(), "whole": view["image_prob"],
            "target": data["classes"][target], "ny": ny, "nx": nx})
    data.update({"size": size, "stride": stride, "height": height, "width": width, "patch": picture_uri(patch, "PNG")})
    body = (f'<div style="margin-bottom:4px"><label {_LABEL}>image <select class="image"></select></label>'
            f'<label {_LABEL}>square row <input type="range" class="row" min="0" value="0"></label>'
            f'<label {_LABEL}>column <input type="range" class="col" min="0" value="0"></label></div>'
            f'<div><div style="{_FIGURE}"><canvas class="picture" width="{width}" height="{height}" '
            f'role="img" aria-label="the image with the grey square; click to move the square" '
            f'style="{_IMG};cursor:crosshair"></canvas></div>'
            f'<div style="{_FIGURE}"><img class="map" alt="map of the probability of the true class for every '
            f'position of the square (viridis: dark low, yellow high)" style="{_IMG}">'
            f'<div class="box" style="{_BOX}"></div></div></div>'
            f'<div class="caption" aria-live="polite" style="margin-top:4px"></div>')
    script = r"""
const q = s => root.querySelector(s);
const image = q(".image"), row = q(".row"), col = q(".col"), canvas = q(".picture"), ctx = canvas.getContext("2d");
const patch = new Image(); patch.src = D.patch;
const pictures = D.images.map(im => { const p = new Image(); p.src = im.u; return p; });
D.images.forEach((im, n) => { const o = document.createElement("option"); o.value = n;
  o.textContent = n + " (" + im.target + ")"; image.appendChild(o); });
function setGrid() { const im = D.images[image.value]; row.max = im.ny - 1; col.max = im.nx - 1;
  q(".map").src = im.map; }
function show() {
  const im = D.images[image.value], i = +row.value, j = +col.value, k = i * im.nx + j;
  const y = i * D.stride, x = j * D.stride;
  ctx.drawImage(pictures[image.value], 0, 0);
  ctx.drawImage(patch, x, y, D.size, D.size, x, y, D.size, D.size);
  ctx.strokeStyle = "#FFB000"; ctx.lineWidth = 1; ctx.strokeRect(x + 0.5, y + 0.5, D.size - 1, D.size - 1);
  const b = q(".box");
  b.style.top = 100 * i / im.ny + "%"; b.style.left = 100 * j / im.nx + "%";
  b.style.height = 100 / im.ny + "%"; b.style.width = 100 / im.nx + "%";
  q(".caption").textContent = "square at pixel (" + y + ", " + x + "): P(" + im.target + ") = " +
    im.prob[k].toFixed(3) + " (" + im.whole.toFixed(3) + " without the square); most probable: " +
    D.classes[im.top[k]] + " (" + im.topp[k].toFixed(3) + ")";
  root.dataset.view = image.value + "," + i + "," + j;
}
canvas.addEventListener("click", e => { const r = canvas.getBoundingClientRect(), im = D.images[image.value];
  const px = (e.clientX - r.left) / r.width * D.width - D.size / 2;
  const py = (e.clientY - r.top) / r.height * D.height - D.size / 2;
  col.value = Math.max(0, Math.min(im.nx - 1, Math.round(px / D.stride)));
  row.value = Math.max(0, Math.min(im.ny - 1, Math.round(py / D.stride))); show(); });
image.addEventListener("change", () => { setGrid(); show(); });
row.addEventListener("input", show); col.addEventListener("input", show);
let loaded = 0; [patch, ...pictures].forEach(p => p.complete ? loaded++ : p.addEventListener("load", () => {
  if (++loaded === pictures.length + 1) show(); }));
setGrid(); if (loaded === pictures.length + 1) show();
"""
    summary = (f"{len(images)} images, a {size}-pixel square at stride {stride} "
               f"({views[0]['grid'][0]} x {views[0]['grid'][1]} positions each)")
    return StaticExplorer("occlusion", name, _component(name, "occlusion", data, body, script), views, summary)
