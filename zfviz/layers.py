"""The layers of a flat conv network as the paper counts them, and the rules every module shares.

Explained in the chapter "The network" (book/network). ZF number their layers 1-7: 1-5 the conv layers,
6-7 the fully connected ones. ``layer`` means that number everywhere in the package; a function that needs a
feature map (the deconvnet, occlusion) takes 1-5, one that reads feature vectors (``zfviz.activations``,
``zfviz.transfer``) 1-7, and its error message says which. In a flat
``nn.Sequential`` (``zfviz.models``) layer k is the k-th ``nn.Conv2d`` child and its feature map is the output
of the ReLU right after it. :func:`convs` and :func:`stack` say which children those are; :func:`walk_sizes`
follows an input size through them (to refuse too-small images before any layer runs);
:func:`model_device` / :func:`to_model` are the one device and dtype rule: compute where the model's
parameters are, in their dtype. :class:`Box` is the one box convention: ``(x0, y0, x1, y1)``, end-exclusive,
the order of torchvision's boxes, PIL's ``crop`` and ``ClipArt.boxes``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

__all__ = ["Box", "convs", "stack", "named_stack", "pair", "model_device", "model_dtype", "to_model", "geometry", "out_side",
           "walk_sizes", "smallest_side"]

class Box(NamedTuple):
    """A pixel box ``(x0, y0, x1, y1)``, end-exclusive: columns x0..x1-1, rows y0..y1-1.

    Explained in the chapter "What each layer sees" (book/visualisation). The package's one box order, that of
    torchvision (``draw_bounding_boxes``, ``box_iou``), PIL's ``Image.crop`` and ``ClipArt.boxes``; a tuple, so it
    unpacks as ``x0, y0, x1, y1 = box``. Tensors index rows first: ``image[..., box.rows, box.cols]``.
    """
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def rows(self) -> slice:
        """The box's rows, ``slice(y0, y1)``, for indexing an image ``(..., H, W)``."""
        return slice(self.y0, self.y1)

    @property
    def cols(self) -> slice:
        """The box's columns, ``slice(x0, x1)``."""
        return slice(self.x0, self.x1)

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0


# Modules that keep a map's height and width: the size walk passes through them.
_PASS = (nn.ReLU, nn.LocalResponseNorm, nn.Identity, nn.Dropout, nn.BatchNorm2d)


def convs(model: nn.Module) -> list[nn.Conv2d]:
    """The paper's conv layers 1, 2, ... of a flat network: its ``nn.Conv2d`` children, in order.

    Explained in the chapter "The network" (book/network)."""
    return [m for m in model.children() if isinstance(m, nn.Conv2d)]


def stack(model: nn.Module, layer: int) -> list[nn.Module]:
    """Children from the input up to relu{layer}: conv{layer} and the ReLU right after it.

    Running them is the forward pass to the paper's feature map of layer ``layer`` (``zfviz.deconv.feature_map``).

    Explained in the chapter "The network" (book/network).
    """
    children = list(model.children())
    end = children.index(convs(model)[layer - 1]) + 1
    if end < len(children) and isinstance(children[end], nn.ReLU):
        end += 1  # the paper's feature map is rectified
    return children[:end]


def named_stack(model: nn.Module, layer: int):
    """(name, module) pairs of :func:`stack`, for messages that name the module.

    Explained in the chapter "The network" (book/network)."""
    return list(model.named_children())[:len(stack(model, layer))]


def model_device(model: nn.Module, images: torch.Tensor | None = None) -> torch.device:
    """The device the model computes on: its parameters' (a model without parameters: the images', else CPU).

    The package's one device rule: every function computes on its model's device and returns its result on
    the device of the tensors it was given.

    Explained in the chapter "The network" (book/network).
    """
    param = next(model.parameters(), None)
    if param is not None:
        return param.device
    return images.device if images is not None else torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The float dtype of the model's parameters (None for a model without float parameters).

    Explained in the chapter "The network" (book/network)."""
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    return param.dtype if param is not None else None


def to_model(model: nn.Module, images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """``images`` on the model's device and in its float dtype, the one the network computes in.

    A float16/bfloat16 image into a float32 model is exact; a float64 one is rounded to float32 (relative
    2**-24), finer than the network's own float32 arithmetic. Values beyond the model dtype's range are refused.

    Explained in the chapter "The network" (book/network).
    """
    dtype = model_dtype(model)
    x = images.to(device=model_device(model, images), dtype=dtype if dtype is not None else images.dtype)
    if x.dtype != images.dtype and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} do not fit the model's {x.dtype}: converting from {images.dtype} overflows "
                         f"(largest {x.dtype} value {torch.finfo(x.dtype).max:.4g}); preprocess them as the "
                         f"network expects")
    return x


def pair(v) -> tuple[int, int]:
    """An int or an (y, x) pair, as PyTorch stores kernel sizes, strides and padding, as a pair.

    Explained in the chapter "The network" (book/network)."""
    return (v, v) if isinstance(v, int) else tuple(v)


def geometry(m: nn.Module):
    """Per axis (kernel, stride, padding, dilation) and ceil_mode of a Conv2d/MaxPool2d, or None.

    Explained in the chapter "The network" (book/network)."""
    if isinstance(m, nn.Conv2d) and not isinstance(m.padding, str):
        return tuple(zip(*(pair(v) for v in (m.kernel_size, m.stride, m.padding, m.dilation)))), False
    if isinstance(m, nn.MaxPool2d):
        geo = (m.kernel_size, m.stride if m.stride is not None else m.kernel_size, m.padding, m.dilation)
        return tuple(zip(*(pair(v) for v in geo))), bool(m.ceil_mode)
    return None


def out_side(n: int, window, ceil: bool) -> int:
    """Output length along one axis of a conv/pool with ``window`` (k, s, p, d) on ``n`` inputs; 0 if none.

    Explained in the chapter "The network" (book/network)."""
    k, s, p, d = window
    span = n + 2 * p - d * (k - 1) - 1
    if not ceil:
        return span // s + 1 if span >= 0 else 0
    out = -(-span // s) + 1                                           # a ceil-mode window may hang over the end
    if (out - 1) * s >= n + p:                                        # PyTorch drops one starting past the end
        out -= 1
    return max(out, 0)


def walk_sizes(children, height: int, width: int):
    """Follow (H, W) through ``children``: yields (name, module, (h, w) in, (h, w) out, channels) per conv/pool;
    stops at the first module whose geometry it does not know. Flatten + Linear yields (name, linear, size, None, c).

    Explained in the chapter "The network" (book/network)."""
    channels, names = None, [n for n, _ in children]
    modules = [m for _, m in children]
    for i, m in enumerate(modules):
        geo = geometry(m)
        if geo is not None:
            windows, ceil = geo
            out = tuple(out_side(n, w, ceil) for n, w in zip((height, width), windows))
            if isinstance(m, nn.Conv2d):
                channels = m.out_channels
            yield names[i], m, (height, width), out, channels
            if 0 in out:
                return
            height, width = out
        elif isinstance(m, nn.Flatten) and i + 1 < len(modules) and isinstance(modules[i + 1], nn.Linear):
            yield names[i + 1], modules[i + 1], (height, width), None, channels
            return
        elif not isinstance(m, _PASS):
            return


def smallest_side(children) -> int | None:
    """The smallest square input side every conv/pool of ``children`` has output for (None if > 4096).

    Explained in the chapter "The network" (book/network)."""
    for n in range(1, 4097):
        if all(out is None or 0 not in out for *_, out, _ in walk_sizes(children, n, n)):
            return n
    return None
