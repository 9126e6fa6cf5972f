"""Explorers for the static web pages: the deconvnet and occlusion explorers of ``zfviz.widgets``, precomputed.

Explained in the chapters "The deconvnet, step by step" (book/deconvnet) and "Occlusion sensitivity"
(book/occlusion).

The ipywidgets explorers need a running Python kernel; on the published book there is none. These build the
same views ahead of time, with the same pure functions (``zfviz.views.deconv_view`` and
``zfviz.occlusion.occlusion_probabilities``; no ipywidgets needed), and wrap them in a small self-contained
HTML/JavaScript component: the pictures are embedded as data URIs and a few lines of JavaScript switch between
them, so the page works offline, without a kernel and without any library. In a notebook the object displays
itself (``_repr_html_``); ``explorer.views`` holds what was precomputed, for tests and for readers.

The component's markup, styles and scripts are package data, in ``zfviz/explorers``: ``component.html`` wraps
each explorer, ``deconv.html``/``occlusion.html`` are its controls and pictures, ``deconv.js``/``occlusion.js``
its script, ``styles.json`` the inline styles the templates share.
"""
from __future__ import annotations

import base64
import binascii
import functools
import html
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from string import Template

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import occlusion
from ._checks import check_int, check_preprocess, check_real, show
from .views import deconv_view

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


# ----------------------------------------------------------------------------------------------
# The component's markup and scripts: package data in zfviz/explorers
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _asset(name: str) -> str:
    """A file of zfviz/explorers (package data, so a wheel carries it), as text."""
    return resources.files(__package__).joinpath("explorers", name).read_text(encoding="utf-8")


def _markup(template: str, /, **values) -> str:
    """The HTML template ``template`` of zfviz/explorers, its ``${...}`` filled from styles.json and ``values``.

    The file's line breaks, and the indentation after them, are for its reader: the page gets one line of markup
    (so a break may stand only where the markup has no character, e.g. between two tags)."""
    text = re.sub(r"\n[ \t]*", "", _asset(template))
    return Template(text).substitute(json.loads(_asset("styles.json")), **values)


def _script(name: str) -> str:
    """The explorer's JavaScript, ``name`` of zfviz/explorers. The script has always begun on a line of its own
    after the component's set-up, so the published pages stay byte for byte the same."""
    return "\n" + _asset(name)


def _component(name: str, kind: str, data: dict, body: str, script: str) -> str:
    """The HTML of one explorer (component.html): its markup, its data as JSON, and its script, all scoped by ``name``.

    Every text that comes from the caller (class names, above all) travels in the JSON and reaches the page
    through ``textContent``, never as markup; ``name`` and ``kind`` are escaped for the attribute and the script
    as well, though ``_check_name`` already keeps them to [a-z0-9-]."""
    return _markup("component.html", name=html.escape(name, quote=True), kind=html.escape(kind, quote=True),
                   body=body, data=_script_json(data), js_name=_script_json(name),
                   js_data=_script_json(f"{name}-data"), script=script)


# ----------------------------------------------------------------------------------------------
# The deconvnet explorer
# ----------------------------------------------------------------------------------------------

def _check_indices(dataset, indices) -> list[int]:
    """``indices`` as distinct ints into ``dataset``, at least one."""
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
    return indices


def _check_layer_maps(channels) -> dict[int, list[int]]:
    """``channels`` as ``{layer: [feature maps]}``, ints, sorted by layer. (Whether the model has that layer and
    those maps, :func:`deconv_view` checks.)"""
    if not isinstance(channels, dict):
        raise TypeError(f"channels must be a dict {{layer: [feature maps]}}, got {show(channels)} "
                        f"({type(channels).__name__})")
    if not channels:
        raise ValueError("channels must be a dict {layer: [feature maps]} naming at least one layer, got {}")
    layer_maps = {}
    for key, maps in channels.items():
        layer = check_int(f"channels key {show(key)}", key, 1, why=" (a conv layer number)")
        layer_maps[layer] = _check_ints(f"channels[{layer}]", maps, 0, why=" (feature maps of that layer)")
        if not layer_maps[layer]:
            raise ValueError(f"channels[{layer}] is empty; give at least one feature map per layer")
        _check_distinct(f"channels[{layer}]", layer_maps[layer])
    return dict(sorted(layer_maps.items()))


def _check_items(dataset, indices: list[int], classes: list[str] | None) -> None:
    """Each offered item is an (image (3, H, W) in [0, 1], label) pair: checked before any view is computed."""
    for index in indices:
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


def _deconv_record(view, quality: int) -> dict:
    """One view for ``explorer.views``: the numbers as plain ints and floats, the pictures as JPEG URIs."""
    if not (math.isfinite(view.activation) and bool(torch.isfinite(view.projection).all())):
        raise ValueError(f"the model gives non-finite values (activation {view.activation}) for layer "
                         f"{view.layer}, feature map {view.channel} of image {view.index}: check its weights and "
                         f"preprocess; the page cannot show NaN or infinity")
    uri = picture_uri(view.projection, "JPEG", quality)
    patch = picture_uri(view.patch, "JPEG", quality)
    return {"activation": round(view.activation, 3), "position": [int(p) for p in view.position],
            "box": [int(b) for b in view.box], "projection_uri": uri, "patch_uri": patch, "label": int(view.label)}


def _deconv_entry(record: dict, height: int, width: int) -> dict:
    """One view for the page's JSON: short keys (the page carries many), the box as fractions of the image,
    in the order the page's script reads them (top, left, bottom, right)."""
    x0, y0, x1, y1 = record["box"]
    return {"a": record["activation"], "p": record["position"], "u": record["projection_uri"],
            "q": record["patch_uri"], "b": [y0 / height, x0 / width, y1 / height, x1 / width]}


def _deconv_views(model, preprocess, dataset, indices, layer_maps, classes, quality) -> tuple[dict, dict]:
    """Every view the page offers, by :func:`deconv_view`: ``views`` (``explorer.views``) and the page's JSON."""
    views = {"images": {}}
    data = {"layers": {str(layer): maps for layer, maps in layer_maps.items()}, "images": [], "views": {}}
    for index in indices:
        label = None
        for layer, maps in layer_maps.items():
            for channel in maps:
                view = deconv_view(model, preprocess, dataset, layer, channel, index)   # checks layer and channel
                record = views[(layer, channel, index)] = _deconv_record(view, quality)
                data["views"][f"{layer},{channel},{index}"] = _deconv_entry(record, *view.image.shape[-2:])
                if label is None:                                  # the image once, with its first view
                    label = record["label"]
                    views["images"][index] = picture_uri(view.image, "PNG")
        data["images"].append({"index": index, "label": classes[label] if classes is not None else f"label {label}",
                               "u": views["images"][index]})
    return views, data


def static_deconv_explorer(model: nn.Module, preprocess, dataset, indices, channels: dict, classes=None,
                           name: str = "deconv-explorer", quality: int = 90) -> StaticExplorer:
    """The deconvnet explorer for a page without a kernel: pick a layer, a feature map and an image.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).

    Args:
        model, preprocess, dataset: as :func:`zfviz.views.deconv_view` (e.g. the teaching ZFNet, its
            preprocess and ``zfviz.data.ClipArt("val")``).
        indices: the images offered, distinct indices into ``dataset`` (a few: every view is stored); NumPy
            and tensor integers are taken as ints. Each image must be (3, H, W), finite, in [0, 1].
        channels: ``{layer: [feature maps]}`` offered for each conv layer 1-5, each list non-empty and distinct.
        classes: optional class names for the image menu, a list of str covering every label shown. Any text
            is allowed (ImageFolder's are directory names): it reaches the page as text, never as markup.
        name: the component's HTML id (unique on its page): a lower-case letter, then letters, digits, '-'.
        quality: JPEG quality of the projections, 1..100 (images are PNG).
    Returns:
        :class:`StaticExplorer`; ``views[(layer, channel, index)]`` is ``deconv_view``'s fields less the tensors
        (a dict), plus ``"projection_uri"`` and ``"patch_uri"``; ``views["images"][index]`` is the image's URI.
    Raises:
        TypeError for an argument of the wrong type, ValueError for a bad value (each naming the argument and
        what is allowed), before anything is computed; ValueError if the model gives NaN or infinity.
    """
    name = _check_name(name)
    quality = _check_quality(quality)
    _check_model(model)
    check_preprocess(preprocess)
    indices = _check_indices(dataset, indices)
    layer_maps = _check_layer_maps(channels)
    classes = _check_classes(classes)
    _check_items(dataset, indices, classes)
    views, data = _deconv_views(model, preprocess, dataset, indices, layer_maps, classes, quality)
    page = _component(name, "deconv", data, _markup("deconv.html"), _script("deconv.js"))
    summary = (f"{len(layer_maps)} layers, {sum(len(m) for m in layer_maps.values())} feature maps, "
               f"{len(indices)} images")
    return StaticExplorer("deconv", name, page, views, summary)


# ----------------------------------------------------------------------------------------------
# The occlusion explorer
# ----------------------------------------------------------------------------------------------

def _map_uri(values: torch.Tensor) -> str:
    """A (ny, nx) map in [0, 1] as a viridis PNG, one pixel per cell (the page scales it up, pixelated)."""
    import matplotlib
    colours = matplotlib.colormaps["viridis"](values.detach().cpu().clamp(0, 1).numpy())[..., :3]   # on any device
    rgb = torch.from_numpy(colours).permute(2, 0, 1)
    return picture_uri(rgb.float(), "PNG")


def _check_image_batch(images) -> None:
    """``images`` (N, 3, H, W), N >= 1, H, W >= 1, finite, in [0, 1]."""
    if not torch.is_tensor(images):
        raise TypeError(f"images must be a (N, 3, H, W) tensor in [0, 1], got {show(images)} "
                        f"({type(images).__name__})")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}"
                         + (": for one image use images[None]" if images.dim() == 3 else ""))
    if images.shape[0] < 1 or min(images.shape[2:]) < 1:
        raise ValueError(f"images must hold at least one image of at least 1x1 pixels, got {tuple(images.shape)}")
    _check_pixels("images", images)


@torch.no_grad()
def _model_inputs(images: torch.Tensor, preprocess) -> torch.Tensor:
    """The model's inputs (N, 3, H, W): ``preprocess(images)``, which must keep the shape (the square is drawn on
    the images as given), or the images themselves."""
    if preprocess is None:
        return images
    x = preprocess(images)
    if not torch.is_tensor(x) or x.shape != images.shape or not x.is_floating_point():
        raise ValueError(f"preprocess must map the images {tuple(images.shape)} to a float tensor of the same "
                         f"shape (the square is drawn on the images as given); it returned "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}"
                         f"{'' if not torch.is_tensor(x) else ' ' + str(x.dtype)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("preprocess returned non-finite values (NaN or infinity) for these images")
    return x


@torch.no_grad()
def _whole_probabilities(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each image's class probabilities (K,) without a square, one image per pass (as the page reports them)."""
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
    return whole


@torch.no_grad()
def _square_picture(x: torch.Tensor, preprocess, fill: float, height: int, width: int) -> torch.Tensor:
    """What the square looks like to the network, as a picture (3, H, W) in [0, 1]: ``preprocess.inverse`` of
    ``fill`` (the mean image for the teaching ZFNet), or plain grey when there is no inverse."""
    if preprocess is not None and callable(getattr(preprocess, "inverse", None)):
        return preprocess.inverse(torch.full_like(x[:1], fill))[0].clamp(0, 1)
    return torch.full((3, height, width), 0.5)


def _check_against_model(classes, targets: list[int], n_classes: int, patch: torch.Tensor, fill: float) -> None:
    """The checks that need the model's output: the class names and targets fit it, the square can be drawn."""
    if classes is not None and len(classes) != n_classes:
        raise ValueError(f"classes must name every class of the model: it has {n_classes}, classes has "
                         f"{len(classes)}")
    for n, target in enumerate(targets):
        if not target < n_classes:
            raise ValueError(f"targets[{n}] must be a class in 0..{n_classes - 1}, got {target}")
    if not bool(torch.isfinite(patch).all()):
        raise ValueError(f"preprocess.inverse of fill={fill} is not finite; the square cannot be drawn")


def _occlusion_view(model, xi, target, whole, size, stride, fill, n) -> dict:
    """Image n's maps at every position of the square (``occlusion_probabilities``), rounded as the page shows."""
    probs = occlusion.occlusion_probabilities(model, xi, size, stride, fill)        # (ny, nx, K)
    if not bool(torch.isfinite(probs).all()):
        raise ValueError(f"the model gives non-finite probabilities for occluded copies of images[{n}] "
                         f"(fill={fill}): check its weights, preprocess and fill")
    top_prob, top_class = probs.max(dim=-1)
    return {"prob": probs[..., target].round(decimals=3), "top_class": top_class,
            "top_prob": top_prob.round(decimals=3), "image_prob": round(float(whole[target]), 3),
            "target": target, "size": size, "stride": stride, "grid": tuple(probs.shape[:2])}


def _check_targets(targets, n_images: int) -> list[int]:
    """One class index per image. (Whether the model has that class is checked once its output is known.)"""
    targets = _check_ints("targets", targets, 0, why=" (class indices, one per image)")
    if len(targets) != n_images:
        raise ValueError(f"targets must give one class per image: {n_images} images, {len(targets)} targets")
    return targets


def _check_square(size, stride, fill, height: int, width: int) -> tuple[int, int, float]:
    """The square's side (it must fit the images), its step and its value in the model's input space."""
    size = check_int("size", size, 1, min(height, width), f" (the square's side; the images are {height}x{width})")
    stride = check_int("stride", stride, 1, why=" (pixels between neighbouring positions of the square)")
    fill = check_real("fill", fill, " (the square's value in the model's input space, every channel)")
    return size, stride, fill


def _occlusion_entry(view: dict, image: torch.Tensor, target_name: str) -> dict:
    """One image for the page's JSON: its picture, its map as a PNG, and the numbers flattened row by row."""
    ny, nx = view["grid"]
    return {"u": picture_uri(image.clamp(0, 1), "PNG"), "map": _map_uri(view["prob"]),
            "prob": view["prob"].flatten().tolist(), "top": view["top_class"].flatten().tolist(),
            "topp": view["top_prob"].flatten().tolist(), "whole": view["image_prob"],
            "target": target_name, "ny": ny, "nx": nx}


def _occlusion_views(model, images, x, targets, whole, size, stride, fill, names) -> tuple[dict, list]:
    """Every image's maps: ``views`` (``explorer.views``, keyed by image) and their entries in the page's JSON."""
    views, entries = {}, []
    for n, (xi, target) in enumerate(zip(x, targets)):
        views[n] = _occlusion_view(model, xi, target, whole[n], size, stride, fill, n)
        entries.append(_occlusion_entry(views[n], images[n], names[target]))
    return views, entries


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
        preprocess, fill: as :func:`zfviz.views.occlusion_view`; ``fill`` a finite number. The square shows
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
    _check_image_batch(images)
    targets = _check_targets(targets, len(images))
    height, width = (int(s) for s in images.shape[-2:])
    size, stride, fill = _check_square(size, stride, fill, height, width)
    check_preprocess(preprocess)
    classes = _check_classes(classes)
    x = _model_inputs(images, preprocess)
    whole = _whole_probabilities(model, x)
    n_classes = whole[0].shape[0]
    patch = _square_picture(x, preprocess, fill, height, width)
    _check_against_model(classes, targets, n_classes, patch, fill)
    names = classes if classes is not None else [f"class {k}" for k in range(n_classes)]
    views, entries = _occlusion_views(model, images, x, targets, whole, size, stride, fill, names)
    data = {"images": entries, "classes": names, "size": size, "stride": stride, "height": height, "width": width,
            "patch": picture_uri(patch, "PNG")}                  # the page's JSON, in the order it always had
    page = _component(name, "occlusion", data, _markup("occlusion.html", width=width, height=height),
                      _script("occlusion.js"))
    summary = (f"{len(images)} images, a {size}-pixel square at stride {stride} "
               f"({views[0]['grid'][0]} x {views[0]['grid'][1]} positions each)")
    return StaticExplorer("occlusion", name, page, views, summary)
