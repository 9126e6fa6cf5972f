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
import binascii
import html
import io
import json
import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import occlusion
from ._checks import check_int, check_real, show
from .widgets import deconv_view

__all__ = ["StaticExplorer", "static_deconv_explorer", "static_occlusion_explorer", "picture_uri", "decode_uri"]

_NAME = re.compile(r"[a-z][a-z0-9-]{0,40}")            # used with fullmatch: no trailing newline slips through
_URI = re.compile(r"data:image/(png|jpeg);base64,([A-Za-z0-9+/]*={0,2})")
# Pictures must lie in [0, 1]; a little overshoot (resampling) is clipped, more means the wrong tensor was passed
# (the network's preprocessed input, or 0..255 pixels).
_SLACK = 0.05


# ----------------------------------------------------------------------------------------------
# Validation: fail early, name the argument, say what is allowed
# ----------------------------------------------------------------------------------------------

def _check_ints(name: str, values, lo: int, hi: int | None = None, why: str = "") -> list[int]:
    """A list of ints from a list, tuple, range, 1-D tensor or array of integers (NumPy and tensor ints too)."""
    if isinstance(values, (torch.Tensor, np.ndarray)):
        if values.ndim != 1:
            raise ValueError(f"{name} must be a list of ints{why} (a 1-D tensor will do); got shape "
                             f"{tuple(values.shape)}")
        values = values.tolist()
    elif isinstance(values, (str, bytes, dict, set, frozenset)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of ints{why}; got {show(values)} ({type(values).__name__})")
    return [check_int(f"{name}[{k}]", v, lo, hi, why) for k, v in enumerate(values)]


def _check_distinct(name: str, values: list) -> None:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{name} must not repeat a value (each is one menu entry); {repeated} given more than once")


def _check_quality(quality) -> int:
    return check_int("quality", quality, 1, 100, " (JPEG quality: 1 worst, 100 best; 90 is the default)")


def _check_pixels(name: str, pictures: torch.Tensor) -> None:
    """``pictures`` (any shape) holds finite floats in [0, 1], up to ``_SLACK``."""
    if not pictures.is_floating_point():
        raise TypeError(f"{name} must be a float tensor with values in [0, 1]; got dtype {pictures.dtype}"
                        + (" (for 0..255 pixels, divide by 255)" if pictures.dtype == torch.uint8 else ""))
    if pictures.numel() == 0:
        return
    finite = torch.isfinite(pictures)
    if not bool(finite.all()):
        bad = pictures.detach()[~finite]
        raise ValueError(f"{name} must hold finite values in [0, 1]; it has {bad.numel()} non-finite ones "
                         f"(first: {float(bad[0])})")
    lo, hi = float(pictures.min()), float(pictures.max())
    if lo < -_SLACK or hi > 1 + _SLACK:
        raise ValueError(f"{name} must hold pixel values in [0, 1] (the picture, not the network's preprocessed "
                         f"input); got values in [{lo:.4g}, {hi:.4g}]")


def _check_preprocess(preprocess) -> None:
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"preprocess must be callable (e.g. zfviz.data.Preprocess) or None; "
                        f"got {show(preprocess)} ({type(preprocess).__name__})")


def _check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {show(model)} ({type(model).__name__})")


def _check_classes(classes) -> list[str] | None:
    """``classes`` as a list of str (one name per class), or None. The names may hold anything: they are escaped."""
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise TypeError(f"classes must be a list of class names (str), one per class, or None; "
                        f"got {show(classes)} ({type(classes).__name__})")
    for k, c in enumerate(classes):
        if not isinstance(c, str):
            raise TypeError(f"classes[{k}] must be a str (a class name); got {show(c)} ({type(c).__name__})")
    return [str(c) for c in classes]


def picture_uri(picture: torch.Tensor, fmt: str = "PNG", quality: int = 90) -> str:
    """A (3, H, W) picture in [0, 1] as a ``data:`` URI (PNG, lossless, or JPEG, ~5x smaller for noisy pictures).

    Explained in the chapter "The deconvnet, step by step" (the static explorer).
    ``picture`` must be a float tensor of finite values in [0, 1] (overshoots up to 0.05 are clipped; anything
    else raises ValueError), H, W >= 1; ``fmt`` 'PNG' or 'JPEG'; ``quality`` (JPEG only) an int in 1..100.
    """
    if not torch.is_tensor(picture):
        raise TypeError(f"picture must be a (3, H, W) tensor in [0, 1], got {show(picture)} "
                        f"({type(picture).__name__})")
    if picture.dim() != 3 or picture.shape[0] != 3 or picture.shape[1] < 1 or picture.shape[2] < 1:
        raise ValueError(f"picture must be a (3, H, W) tensor in [0, 1] with H, W >= 1, got {tuple(picture.shape)}")
    _check_pixels("picture", picture)
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be 'PNG' or 'JPEG', got {show(fmt)} ({type(fmt).__name__})")
    if fmt not in ("PNG", "JPEG"):
        raise ValueError(f"fmt must be 'PNG' or 'JPEG', got {fmt!r}")
    quality = _check_quality(quality)
    pixels = (picture.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    # JPEG without chroma subsampling: projections are fine-grained colour, which 4:2:0 would smear.
    options = {"quality": quality, "subsampling": 0} if fmt == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_uri(uri: str) -> torch.Tensor:
    """Back from :func:`picture_uri` to a (3, H, W) float tensor in [0, 1] (for tests).

    Explained in the chapter "The deconvnet, step by step" (the static explorer).
    ``uri`` must be ``data:image/png;base64,...`` or ``data:image/jpeg;base64,...`` holding a picture of that
    format; anything else raises ValueError (TypeError for a non-str)."""
    if not isinstance(uri, str):
        raise TypeError(f"uri must be a str, a data: URI as picture_uri writes; got {show(uri)} "
                        f"({type(uri).__name__})")
    found = _URI.fullmatch(uri)
    if not found:
        raise ValueError(f"uri must be 'data:image/png;base64,...' or 'data:image/jpeg;base64,...' (standard "
                         f"base64, nothing after it), as picture_uri writes; got {show(uri)}")
    kind, payload = found.groups()
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as error:
        raise ValueError(f"uri's base64 is damaged ({error}); got {show(uri)}") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.format != kind.upper():
                raise ValueError(f"uri says image/{kind} but holds a {img.format} picture; got {show(uri)}")
            pixels = np.array(img.convert("RGB"))
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:   # PIL's "cannot identify", truncated
        raise ValueError(f"uri does not hold a readable {kind.upper()} picture ({error}); got {show(uri)}") from None
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
    allowed = ("a short lower-case id like 'deconv-1' (a letter, then up to 40 letters, digits or '-'; it names the "
               "HTML elements, so each explorer on a page needs its own)")
    if not isinstance(name, str):
        raise TypeError(f"name must be {allowed}, got {show(name)} ({type(name).__name__})")
    if not _NAME.fullmatch(name):
        raise ValueError(f"name must be {allowed}, got {show(name)}")
    return name


# Characters that JSON leaves as they are but that mean something to an HTML parser inside <script> ("</script>",
# "<!--") or ended a JavaScript string before ES2019 (U+2028, U+2029): written as \u escapes, which JSON.parse reads
# back as the same characters (Django's json_script does the same).
_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                   0x2028: "\\u2028", 0x2029: "\\u2029"}


def _script_json(value) -> str:
    """``value`` as one line of strict JSON (no NaN or Infinity) that is safe inside a <script> element."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError as error:
        raise ValueError(f"the explorer's data holds a non-finite number ({error}); JSON cannot carry NaN or "
                         f"infinity, and the page's explorer would not start") from None
    return text.translate(_SCRIPT_ESCAPES)


def _component(name: str, kind: str, data: dict, body: str, script: str) -> str:
    """The HTML of one explorer: its markup, its data as JSON, and its script, all scoped by ``name``.

    Every text that comes from the caller (class names, above all) travels in the JSON and reaches the page
    through ``textContent``, never as markup; ``name`` and ``kind`` are escaped for the attribute and the script
    as well, though ``_check_name`` already keeps them to [a-z0-9-]."""
    attr_name, attr_kind = html.escape(name, quote=True), html.escape(kind, quote=True)
    js_name, js_data = _script_json(name), _script_json(f"{name}-data")
    return (f'<div class="zfviz-explorer zfviz-{attr_kind}" id="{attr_name}" data-kind="{attr_kind}" '
            f'style="font-family:sans-serif;font-size:14px;background:#fff;color:#111;padding:6px;'
            f'border:1px solid #ccc;border-radius:4px;max-width:640px">{body}'
            f'<script type="application/json" id="{attr_name}-data">{_script_json(data)}</script>'
            f'<script>(function(){{const root=document.getElementById({js_name});'
            f'const D=JSON.parse(document.getElementById({js_data}).textContent);{script}}})();</script></div>')


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
        indices: the images offered, distinct indices into ``dataset`` (a few: every view is stored); NumPy
            and tensor integers are taken as ints. Each image must be (3, H, W), finite, in [0, 1].
        channels: ``{layer: [feature maps]}`` offered for each conv layer 1-5, each list non-empty and distinct.
        classes: optional class names for the image menu, a list of str covering every label shown. Any text
            is allowed (ImageFolder's are directory names): it reaches the page as text, never as markup.
        name: the component's HTML id (unique on its page): a lower-case letter, then letters, digits, '-'.
        quality: JPEG quality of the projections, 1..100 (images are PNG).
    Returns:
        :class:`StaticExplorer`; ``views[(layer, channel, index)]`` is ``deconv_view``'s dict less the tensors,
        plus ``"projection_uri"``; ``views["images"][index]`` is the image's URI.
    Raises:
        TypeError for an argument of the wrong type, ValueError for a bad value (each naming the argument and
        what is allowed), before anything is computed; ValueError if the model gives NaN or infinity.
    """
    name = _check_name(name)
    quality = _check_quality(quality)
    _check_model(model)
    _check_preprocess(preprocess)
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(f"dataset must be indexable and have a length, yielding (image, label) pairs (e.g. "
                        f"zfviz.data.ClipArt('val')); got {show(dataset)} ({type(dataset).__name__})")
    n_images = len(dataset)
    if n_images == 0:
        raise ValueError("dataset is empty; the explorer needs at least one image")
    indices = _check_ints("indices", indices, 0, n_images - 1, f" (images of the data set, which has {n_images})")
    if not indices:
        raise ValueError("indices must name at least one image")
    _check_distinct("indices", indices)
    if not isinstance(channels, dict):
        raise TypeError(f"channels must be a dict {{layer: [feature maps]}}, got {show(channels)} "
                        f"({type(channels).__name__})")
    if not channels:
        raise ValueError("channels must be a dict {layer: [feature maps]} naming at least one layer, got {}")
    layers = {}
    for key, maps in channels.items():
        layer = check_int(f"channels key {show(key)}", key, 1, why=" (a conv layer number)")
        layers[layer] = _check_ints(f"channels[{layer}]", maps, 0, why=" (feature maps of that layer)")
        if not layers[layer]:
            raise ValueError(f"channels[{layer}] is empty; give at least one feature map per layer")
        _check_distinct(f"channels[{layer}]", layers[layer])
    layers = dict(sorted(layers.items()))
    classes = _check_classes(classes)
    for index in indices:            # the images and labels, before any view is computed
        item = dataset[index]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(f"dataset[{index}] must be an (image, label) pair; got {show(item)}")
        image, label = item
        where = f"dataset[{index}]'s image"
        if not torch.is_tensor(image) or image.dim() != 3 or image.shape[0] != 3 or min(image.shape[1:]) < 1:
            raise ValueError(f"{where} must be a (3, H, W) tensor in [0, 1]; got "
                             f"{tuple(image.shape) if torch.is_tensor(image) else type(image).__name__}")
        _check_pixels(where, image)
        if classes is not None:
            check_int(f"dataset[{index}]'s label", label, 0, len(classes) - 1,
                       f" (an index into classes, which names {len(classes)})")
        else:
            check_int(f"dataset[{index}]'s label", label, 0, why=" (a class index)")
    views = {"images": {}}
    data = {"layers": {str(layer): maps for layer, maps in layers.items()}, "images": [], "views": {}}
    for index in indices:
        label = None
        for layer, maps in layers.items():
            for channel in maps:
                v = deconv_view(model, preprocess, dataset, layer, channel, index)   # checks layer and channel
                if not (math.isfinite(v["activation"]) and bool(torch.isfinite(v["projection"]).all())):
                    raise ValueError(f"the model gives non-finite values (activation {v['activation']}) for layer "
                                     f"{layer}, feature map {channel} of image {index}: check its weights and "
                                     f"preprocess; the page cannot show NaN or infinity")
                uri = picture_uri(v["projection"], "JPEG", quality)
                patch = picture_uri(v["patch"], "JPEG", quality)
                height, width = v["image"].shape[-2:]
                record = {"activation": round(v["activation"], 3), "position": [int(p) for p in v["position"]],
                          "box": [int(b) for b in v["box"]], "projection_uri": uri, "patch_uri": patch,
                          "label": int(v["label"])}
                views[(layer, channel, index)] = record
                data["views"][f"{layer},{channel},{index}"] = {
                    "a": record["activation"], "p": record["position"], "u": uri, "q": patch,
                    "b": [record["box"][0] / height, record["box"][1] / width,
                          record["box"][2] / height, record["box"][3] / width]}
                if label is None:
                    label = record["label"]
                    views["images"][index] = picture_uri(v["image"], "PNG")
        data["images"].append({"index": index, "label": classes[label] if classes is not None else f"label {label}",
                               "u": views["images"][index]})
    body = (f'<div style="margin-bottom:4px"><label {_LABEL}>layer <select class="layer"></select></label>'
            f'<label {_LABEL}>feature map <select class="map"></select></label>'
            f'<label {_LABEL}>image <select class="image"></select></label></div>'
            f'<div><div style="{_FIGURE}"><img class="picture" alt="the input image" style="{_IMG}">'
            f'<div class="box" style="{_BOX}"></div></div>'
            f'<div style="{_FIGURE}"><img class="patch" alt="the image patch inside the unit\'s receptive field" '
            f'style="{_IMG}"></div>'
            f'<div style="{_FIGURE}"><img class="projection" alt="deconvnet projection of the strongest '
            f'activation of the chosen feature map, cropped to its receptive field; zero is grey" '
            f'style="{_IMG}"></div></div>'
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
  q(".picture").src = im.u; q(".patch").src = v.q; q(".projection").src = v.u;
  root.querySelectorAll(".box").forEach(b => { b.style.top = 100 * v.b[0] + "%";
    b.style.left = 100 * v.b[1] + "%"; b.style.height = 100 * (v.b[2] - v.b[0]) + "%";
    b.style.width = 100 * (v.b[3] - v.b[1]) + "%"; });
  q(".caption").textContent = "layer " + layer.value + ", feature map " + map.value + ", image " + image.value +
    " (" + im.label + "): strongest activation " + v.a.toFixed(2) + " at (" + v.p.join(", ") +
    "); the box is its receptive field, shown beside it with the projection";
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
    colours = matplotlib.colormaps["viridis"](values.detach().cpu().clamp(0, 1).numpy())[..., :3]   # on any device
    rgb = torch.from_numpy(colours).permute(2, 0, 1)
    return picture_uri(rgb.float(), "PNG")


def static_occlusion_explorer(model: nn.Module, images: torch.Tensor, targets, size: int, stride: int,
                              preprocess=None, classes=None, fill: float = 0.0,
                              name: str = "occlusion-explorer") -> StaticExplorer:
    """The occlusion explorer for a page without a kernel: move the grey square, read the class probabilities.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion).

    Args:
        model: any classifier returning logits, in eval mode (e.g. the teaching ZFNet).
        images: (N, 3, H, W) float in [0, 1], N >= 1 (the model's input after ``preprocess``, which must keep
            the shape; without it, the input itself).
        targets: N class indices, the class whose probability is mapped for each image.
        size, stride: the square's side (1..min(H, W)) and the step between positions (>= 1), in pixels (the
            slider moves by a step).
        preprocess, fill: as :func:`zfviz.widgets.occlusion_view`; ``fill`` a finite number. The square shows
            what the network sees (``preprocess.inverse`` of ``fill``: the mean image for the teaching ZFNet).
        classes: optional class names, a list of str, one per class of the model; any text (it reaches the
            page as text, never as markup).
        name: the component's HTML id (unique on its page): a lower-case letter, then letters, digits, '-'.
    Returns:
        :class:`StaticExplorer`; ``views[n]`` holds, for image n, ``"prob"`` (ny, nx) P(target) per position
        (``occlusion.occlusion_probabilities``, rounded to 1e-3), ``"top_class"`` and ``"top_prob"`` (ny, nx),
        ``"image_prob"``, ``"target"`` and the geometry.
    Raises:
        TypeError for an argument of the wrong type, ValueError for a bad value (each naming the argument and
        what is allowed); ValueError if the model's logits or probabilities hold NaN or infinity.
    """
    name = _check_name(name)
    _check_model(model)
    if not torch.is_tensor(images):
        raise TypeError(f"images must be a (N, 3, H, W) tensor in [0, 1], got {show(images)} "
                        f"({type(images).__name__})")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}"
                         + (": for one image use images[None]" if images.dim() == 3 else ""))
    if images.shape[0] < 1 or min(images.shape[2:]) < 1:
        raise ValueError(f"images must hold at least one image of at least 1x1 pixels, got {tuple(images.shape)}")
    _check_pixels("images", images)
    targets = _check_ints("targets", targets, 0, why=" (class indices, one per image)")
    if len(targets) != len(images):
        raise ValueError(f"targets must give one class per image: {len(images)} images, {len(targets)} targets")
    height, width = (int(s) for s in images.shape[-2:])
    size = check_int("size", size, 1, min(height, width), f" (the square's side; the images are {height}x{width})")
    stride = check_int("stride", stride, 1, why=" (pixels between neighbouring positions of the square)")
    fill = check_real("fill", fill, " (the square's value in the model's input space, every channel)")
    _check_preprocess(preprocess)
    classes = _check_classes(classes)
    with torch.no_grad():
        x = preprocess(images) if preprocess is not None else images
        if preprocess is not None:
            if not torch.is_tensor(x) or x.shape != images.shape or not x.is_floating_point():
                raise ValueError(f"preprocess must map the images {tuple(images.shape)} to a float tensor of the same "
                                 f"shape (the square is drawn on the images as given); it returned "
                                 f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}"
                                 f"{'' if not torch.is_tensor(x) else ' ' + str(x.dtype)}")
            if not bool(torch.isfinite(x).all()):
                raise ValueError("preprocess returned non-finite values (NaN or infinity) for these images")
        whole = []
        for n in range(len(x)):
            logits = model(x[n:n + 1])
            if not torch.is_tensor(logits) or logits.dim() != 2 or logits.shape[0] != 1 or logits.shape[1] < 1:
                raise ValueError(f"model must return logits (N, num_classes); for images[{n}] it returned "
                                 f"{tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__}")
            if not bool(torch.isfinite(logits).all()):
                raise ValueError(f"the model's logits for images[{n}] are not finite ({logits[0].tolist()[:5]}...): "
                                 f"check its weights and preprocess; the page cannot show NaN or infinity")
            whole.append(logits.softmax(dim=1)[0])
        n_classes = whole[0].shape[0]
        if preprocess is not None and callable(getattr(preprocess, "inverse", None)):
            patch = preprocess.inverse(torch.full_like(x[:1], fill))[0].clamp(0, 1)
        else:
            patch = torch.full((3, height, width), 0.5)
    if classes is not None and len(classes) != n_classes:
        raise ValueError(f"classes must name every class of the model: it has {n_classes}, classes has "
                         f"{len(classes)}")
    for n, target in enumerate(targets):
        if not target < n_classes:
            raise ValueError(f"targets[{n}] must be a class in 0..{n_classes - 1}, got {target}")
    if not bool(torch.isfinite(patch).all()):
        raise ValueError(f"preprocess.inverse of fill={fill} is not finite; the square cannot be drawn")
    views = {}
    data = {"images": [], "classes": classes if classes is not None else [f"class {k}" for k in range(n_classes)]}
    for n, (xi, target) in enumerate(zip(x, targets)):
        probs = occlusion.occlusion_probabilities(model, xi, size, stride, fill)        # (ny, nx, K)
        if not bool(torch.isfinite(probs).all()):
            raise ValueError(f"the model gives non-finite probabilities for occluded copies of images[{n}] "
                             f"(fill={fill}): check its weights, preprocess and fill")
        top_prob, top_class = probs.max(dim=-1)
        ny, nx = probs.shape[:2]
        view = {"prob": probs[..., target].round(decimals=3), "top_class": top_class,
                "top_prob": top_prob.round(decimals=3), "image_prob": round(float(whole[n][target]), 3),
                "target": target, "size": size, "stride": stride, "grid": (ny, nx)}
        views[n] = view
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
