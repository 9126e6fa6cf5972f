"""Argument checks shared by every module: fail early, with a message that names what is allowed.

Private to the package (the leading underscore of the module); the functions have public names so that any
module of ``zfviz`` may use them. Checks that only one module needs stay in that module.
"""
from __future__ import annotations

import functools
import math
import numbers
import warnings

import numpy as np
import torch
from torch import nn

from . import layers

# Modules the deconvnet's walk understands below the last conv; LRN and Identity are the identity on the way down.
DECONV_MODULES = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.LocalResponseNorm, nn.Identity)


def show(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters, for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def as_int(value):
    """An int from a Python/NumPy integer or a one-element integer tensor (e.g. from ``TopActivations.positions``);
    None for anything else, bools included."""
    if torch.is_tensor(value):
        if value.numel() == 1 and not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
            return int(value)
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return None


def check_int(name: str, value, lo: int, hi: int | None = None, why: str = "") -> int:
    """``value`` as an int in ``lo..hi`` (no upper bound for None): TypeError if it is no integer, ValueError if
    it is out of range. ``why`` follows the allowed range in the message."""
    v = as_int(value)
    allowed = f"an int in {lo}..{hi}" if hi is not None else f"an int >= {lo}"
    if v is None:
        raise TypeError(f"{name} must be {allowed}{why}; got {show(value)} ({type(value).__name__})")
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name} must be {allowed}{why}; got {v}")
    return v


def renamed_keyword(old: str, new: str):
    """Decorate a function (or ``__init__``) so that the keyword ``old`` still works for ``new``, with a
    DeprecationWarning; both at once is a TypeError. Old code keeps running while it is being renamed."""
    def decorate(func):
        @functools.wraps(func)
        def call(*args, **kwargs):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{func.__qualname__}() got both {new}= and its old name {old}=; pass {new} only")
                warnings.warn(f"{old}= is deprecated: pass {new}= (the same value)", DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)
        return call
    return decorate


def deprecated_alias(old: str, new: str) -> property:
    """A read-only property ``old`` that returns attribute ``new``, with a DeprecationWarning."""
    def get(self):
        warnings.warn(f".{old} is deprecated: read .{new} (the same value)", DeprecationWarning, stacklevel=2)
        return getattr(self, new)
    return property(get, doc=f"Deprecated name of ``{new}``.")


def check_real(name: str, value, why: str = "") -> float:
    """``value`` as a finite float (a one-element tensor will do)."""
    if torch.is_tensor(value) and value.numel() == 1 and value.dtype != torch.bool and not value.is_complex():
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite real number{why}; got {show(value)} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number{why}; got {value}")
    return value


# ----------------------------------------------------------------------------------------------
# Models, layers, units and images (the deconvnet and everything that reads feature maps)
# ----------------------------------------------------------------------------------------------

def check_model(model: nn.Module) -> None:
    convs = layers.convs(model)
    if not convs:
        raise ValueError("the model has no Conv2d child; the deconvnet walks flat conv networks "
                         "(nn.Sequential of Conv2d/ReLU/MaxPool2d/LocalResponseNorm), e.g. zfviz.models.zfnet")
    for name, m in model.named_modules():
        if isinstance(m, nn.ReLU) and m.inplace:
            raise ValueError(f"ReLU {name!r} is in-place; the deconvnet and backprop need each ReLU's input. "
                             f"Build the model with nn.ReLU() (inplace=False)")
    for name, m in model.named_children():
        if m is convs[-1]:
            break
        if not isinstance(m, DECONV_MODULES):
            raise ValueError(f"child {name!r} is a {type(m).__name__}; below the last conv the deconvnet "
                             f"supports only {', '.join(t.__name__ for t in DECONV_MODULES)}")
    check_padding(model)


def check_padding(model: nn.Module) -> None:
    for name, m in model.named_children():
        if isinstance(m, nn.Conv2d) and (m.padding_mode != "zeros" or isinstance(m.padding, str)):
            raise ValueError(f"conv {name!r} has padding={m.padding!r}, padding_mode={m.padding_mode!r}; "
                             f"the deconvnet supports numeric zero padding only")


def check_layer(model: nn.Module, layer) -> None:
    n = len(layers.convs(model))
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= n:
        raise ValueError(f"layer must be the paper's conv layer number (6-7 are fully connected: no map to "
                         f"project or occlude), an int in 1..{n}; got {layer!r}")


def check_channel(model: nn.Module, layer: int, channel) -> None:
    c = layers.convs(model)[layer - 1].out_channels
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < c:
        raise ValueError(f"channel must be an int in 0..{c - 1} (layer {layer} has {c} feature maps); "
                         f"got {channel!r}")


def check_channels(model: nn.Module, layer: int, channels) -> list[int]:
    if channels is None:
        return list(range(layers.convs(model)[layer - 1].out_channels))
    channels = list(channels)
    if not channels:
        raise ValueError("channels must name at least one feature map (or be None for all)")
    for ch in channels:
        check_channel(model, layer, ch)
    return channels


def check_k(k, size: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= size:
        raise ValueError(f"k must be an int in 1..{size} (the data set has {size} images); got {k!r}")


def check_images(model: nn.Module, images, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, 3, H, W), got {type(images).__name__}")
    want = layers.convs(model)[0].in_channels
    if images.dim() != 4 or images.shape[1] != want or images.shape[0] == 0:
        raise ValueError(f"{name} must be a batch (N, {want}, H, W) with N >= 1; got shape {tuple(images.shape)}. "
                         f"For one image use image.unsqueeze(0)")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor (preprocessed as the network expects); got {images.dtype}")
    check_finite(name, images)


def check_finite(name: str, t: torch.Tensor) -> None:
    """ValueError when ``t`` holds NaN or inf: one reduction over the tensor, no Python loop."""
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} must be finite (no NaN or inf); got {bad} non-finite value(s) of {t.numel()}")


def check_size2(name: str, size) -> tuple[int, int]:
    """A (H, W) pair of positive ints, for the building blocks of Fig. 1."""
    if (isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in size)):
        raise ValueError(f"{name} must be (H, W), two positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def check_signal(signal) -> None:
    """The reconstruction on its way down: a float (N, C, h, w) tensor. (Not checked for NaN here: the public
    functions check their images, and a model gone NaN is named by its callers with the layer and unit.)"""
    if not torch.is_tensor(signal) or signal.dim() != 4 or not signal.is_floating_point():
        raise ValueError(f"signal must be a float tensor (N, C, h, w), got "
                         f"{tuple(signal.shape) if torch.is_tensor(signal) else type(signal).__name__}")


def check_image_size(model: nn.Module, images: torch.Tensor, children=None, name: str = "images",
                      what: str = "") -> None:
    """ValueError, before any layer runs, when the images are too small for a conv/pool of ``children``
    (default: all of the model's) or do not give a Linear after Flatten its number of features."""
    children = list(model.named_children()) if children is None else children
    height, width = images.shape[-2:]
    for child, m, size_in, out, channels in layers.walk_sizes(children, height, width):
        if out is None:                                               # Flatten then Linear
            if channels is not None and channels * size_in[0] * size_in[1] != m.in_features:
                built = getattr(model, "config", {}).get("input_size") if isinstance(
                    getattr(model, "config", None), dict) else None
                raise ValueError(f"{name}: {height}x{width} pixels give {channels * size_in[0] * size_in[1]} "
                                 f"features where {child!r} expects {m.in_features}: use the input size the network "
                                 f"was built for ({built if built is not None else '?'} pixels)")
            return
        if 0 in out:
            fc = any(isinstance(c, nn.Linear) for _, c in children)
            built = model.config.get("input_size") if isinstance(getattr(model, "config", None), dict) else None
            need = (f"its fully connected layers take {built}x{built} pixels, the size it was built for"
                    if fc and built is not None else
                    f"the smallest input it accepts is {layers.smallest_side(children)}x{layers.smallest_side(children)} pixels")
            raise ValueError(f"{name}: {height}x{width} pixels is too small{what}: {child!r} ({type(m).__name__}) "
                             f"gets a {size_in[0]}x{size_in[1]} map and has no output; {need}")


def check_position(position, size, layer: int) -> tuple[int, int] | None:
    """``position`` as a (y, x) tuple of ints inside the layer's map, or None."""
    if position is None:
        return None
    height, width = size
    yx = tuple(as_int(v) for v in position) if isinstance(position, (tuple, list, torch.Tensor)) else ()
    if len(yx) != 2 or None in yx or not (0 <= yx[0] < height and 0 <= yx[1] < width):
        raise ValueError(f"position must be (y, x) with 0 <= y < {height} and 0 <= x < {width} "
                         f"(layer {layer}'s map is {height}x{width}); got {position!r}")
    return yx


# ----------------------------------------------------------------------------------------------
# Occlusion (§4.2): one image, the occluder, the target class
# ----------------------------------------------------------------------------------------------

def check_image(image) -> None:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor (3, H, W), got {type(image).__name__}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be one image (3, H, W), preprocessed as the model expects; got shape "
                         f"{tuple(image.shape)}. For a batch, call once per image; for (1, 3, H, W) use image[0]")
    if not image.is_floating_point():
        raise TypeError(f"image must be a float tensor (preprocessed as the model expects); got {image.dtype}")
    check_finite("image", image)


def check_occluder(image: torch.Tensor, size, stride) -> tuple[int, int]:
    height, width = image.shape[-2:]
    size = check_int("size", size, 1, min(height, width), f" (the occluder's side; the image is {height}x{width})")
    stride = check_int("stride", stride, 1, why=" (pixels between neighbouring positions of the occluder)")
    return size, stride


def check_fill(fill) -> float:
    if isinstance(fill, torch.Tensor) and fill.numel() == 1 and fill.is_floating_point():
        fill = fill.item()
    if isinstance(fill, bool) or not isinstance(fill, numbers.Real):
        raise TypeError(f"fill must be a real number (the occluder's value in the model's input space, every "
                        f"channel); got {fill!r}")
    if not math.isfinite(fill):
        raise ValueError(f"fill must be a finite number (the occluder's value in the model's input space, every "
                         f"channel; 0 is the mean image for mean-subtracted input); got {fill!r}")
    return float(fill)


def check_fill_image(fill, images: torch.Tensor) -> torch.Tensor:
    """``fill`` as a tensor that broadcasts against images (N, C, H, W): a number, (C, H, W) or (N, C, H, W).

    What a moved or masked image shows where its own pixels are gone (``zfviz.invariance.transform``,
    ``zfviz.correspondence.mask_region``); 0 on preprocessed images is the mean image.
    """
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


def check_preprocess(preprocess) -> None:
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"preprocess must be callable (e.g. zfviz.data.Preprocess) or None; "
                        f"got {show(preprocess)} ({type(preprocess).__name__})")


def check_batch_size(batch_size, what: str = "occluded copies") -> int:
    return check_int("batch_size", batch_size, 1, why=f" ({what} per forward pass)")


def check_target(target, logits: torch.Tensor) -> int:
    if logits.dim() != 2:
        raise ValueError(f"the model must return logits (N, num_classes); it returned shape {tuple(logits.shape)}")
    n = logits.shape[1]
    return check_int("target", target, 0, n - 1, f" (the model has {n} classes)")


def warn_if_training(model: nn.Module) -> None:
    # Dropout (and batch statistics) would make every occluded copy's output random, not just different.
    random = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
    if any(m.training and isinstance(m, random) for m in model.modules()):
        warnings.warn("the model is in training mode, so dropout/batch norm make the map random; "
                      "call model.eval() first", stacklevel=3)
