"""The deconvnet of Zeiler & Fergus (2014), §2.1 and Fig. 1: project one activation down to pixels.

Explained in the chapter "The deconvnet, step by step" (book/deconvnet).

"To examine a given convnet activation, we set all other activations in the layer to zero and pass
the feature maps as input to the attached deconvnet layer. Then we successively (i) unpool, (ii)
rectify and (iii) filter to reconstruct the activity in the layer beneath that gave rise to the
chosen activation. This is then repeated until input pixel space is reached." Per layer, Fig. 1:

1. **unpool** -- "we can obtain an approximate inverse by recording the locations of the maxima
   within each pooling region in a set of switch variables": each pooled value goes back to the
   location its switch names. With 3x3/2 pooling two windows can share a switch; their values add
   (as in max-pooling's backward pass), see :func:`unpool`.
2. **rectify** -- "we pass the reconstructed signal through a relu non-linearity", see :func:`rectify`.
3. **filter** -- "the deconvnet uses transposed versions of the same filters", applied "to the
   rectified maps, not the output of the layer beneath"; no biases, see :func:`filter_down`.

Contrast normalisation is skipped on the way down (treated as the identity), as in the paper.

Walking the network's modules backwards, the three steps are exactly what backpropagation does with
each ReLU's backward replaced by a ReLU of the signal. :func:`backprop` (forward mask only) and
:func:`guided_backprop` (mask and ReLU of the signal) share the same walk and differ only in that rule.

Scaling: the chosen unit keeps its activation value (all others zeroed), so a projection is that
value times the gradient-like map one gets from seeding 1 (what Captum's ``NeuronDeconvolution`` does).

The networks are flat ``nn.Sequential`` models of Conv2d / ReLU / MaxPool2d / LocalResponseNorm children
(``zfviz.models``). No hooks are used: a plain forward walk records what the way down needs.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from . import layers
from ._checks import (as_int, check_channel, check_channels, check_image_size, check_images, check_k, check_layer,
                      check_model, check_position, check_signal, check_size2, renamed_keyword)

__all__ = ["feature_map", "project", "map_and_projection", "backprop", "guided_backprop", "unpool", "rectify", "filter_down",
           "top_activations", "TopActivations", "receptive_field_box", "strongest_projections", "field_crop",
           "deconv_steps"]

# Modules the walk understands; LRN and Identity are the identity on the way down.

# The one place the three methods differ: what a ReLU does to the signal on the way down.
# `x` is the ReLU's forward input, so `x > 0` is the forward pass's mask.
_RELU_RULES = {
    "deconvnet": lambda signal, x: rectify(signal),               # ZF: ReLU of the signal
    "backprop": lambda signal, x: signal * (x > 0),               # the gradient: forward mask
    "guided": lambda signal, x: rectify(signal) * (x > 0),        # Springenberg et al.: both
}


# ----------------------------------------------------------------------------------------------
# The three steps of Fig. 1
# ----------------------------------------------------------------------------------------------

def unpool(signal: torch.Tensor, switches: torch.Tensor, input_size: Sequence[int]) -> torch.Tensor:
    """Put each pooled value back at the location its switch recorded; zeros elsewhere.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).

    Args:
        signal: (N, C, h, w) the reconstruction at the pooling layer's output.
        switches: (N, C, h, w) flat indices into the H*W input map, as returned by
            ``F.max_pool2d(..., return_indices=True)``.
        input_size: (H, W) of the pooling layer's input.
    Returns:
        (N, C, H, W). Overlapping windows (3x3 stride 2) can share a switch; their values are
        summed there, as max-pooling's backward pass does (``nn.MaxUnpool2d`` would keep one of
        them, nondeterministically). Deterministic on CPU; on CUDA ``scatter_add_`` sums three or
        more colliding values in varying order (last-bit differences) unless
        ``torch.use_deterministic_algorithms(True)`` is set.
    """
    height, width = check_size2("input_size", input_size)
    check_signal(signal)
    if switches.shape != signal.shape or switches.dtype != torch.int64:
        raise ValueError(f"switches must be int64 indices of signal's shape {tuple(signal.shape)}, as "
                         f"F.max_pool2d(..., return_indices=True) returns them; got {switches.dtype} "
                         f"{tuple(switches.shape)}")
    if switches.numel() and not 0 <= int(switches.min()) <= int(switches.max()) < height * width:
        raise ValueError(f"switches must index the {height}x{width} input map (0..{height * width - 1}); got "
                         f"{int(switches.min())}..{int(switches.max())}: is input_size the pooling layer's input?")
    n, c = signal.shape[:2]
    out = signal.new_zeros(n, c, height * width)                      # (N, C, H*W)
    out.scatter_add_(2, switches.flatten(2), signal.flatten(2))       # add, so collisions sum
    return out.view(n, c, height, width)                              # (N, C, H, W)


def rectify(signal: torch.Tensor) -> torch.Tensor:
    """Pass the reconstructed signal through a ReLU, as the forward pass does: max(signal, 0).

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).
    Any shape in, same shape out, e.g. (N, C, H, W). The forward activations play no part here:
    that is what tells the deconvnet apart from backpropagation (see :func:`backprop`).
    """
    return F.relu(signal)


def filter_down(signal: torch.Tensor, conv: nn.Conv2d, input_size: Sequence[int]) -> torch.Tensor:
    """Filter with the transposed (flipped) filters of ``conv``: same weight, stride and padding, no bias.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).

    Args:
        signal: (N, C_out, h, w) the rectified reconstruction at the conv's output.
        conv: the forward ``nn.Conv2d`` whose filters are reused.
        input_size: (H, W) of the conv's forward input; a strided conv drops up to stride - 1
            rows/columns, which ``output_padding`` restores so the shapes match exactly.
    Returns:
        (N, C_in, H, W).
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be the forward nn.Conv2d whose filters are reused, got {type(conv).__name__}")
    input_size = check_size2("input_size", input_size)
    check_signal(signal)
    if signal.shape[1] != conv.out_channels:
        raise ValueError(f"signal has {signal.shape[1]} maps but conv has {conv.out_channels} filters: the signal "
                         f"must be the reconstruction at this conv's output")
    natural = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
               zip(signal.shape[-2:], conv.stride, conv.padding, conv.dilation, conv.kernel_size)]
    output_padding = tuple(want - got for want, got in zip(input_size, natural))
    if not all(0 <= o < s for o, s in zip(output_padding, conv.stride)):
        lo = tuple(natural)
        hi = tuple(n + s - 1 for n, s in zip(natural, conv.stride))
        raise ValueError(f"input_size {tuple(input_size)} does not fit a {tuple(signal.shape[-2:])} signal through "
                         f"this conv: its forward input was between {lo} and {hi} pixels")
    # Biases are not part of the deconvnet: the paper filters the rectified maps only.
    return F.conv_transpose2d(signal, conv.weight, None, conv.stride, conv.padding,
                              output_padding, conv.groups, conv.dilation)


# ----------------------------------------------------------------------------------------------
# The forward walk (records switches and ReLU inputs) and the shared downward walk
# ----------------------------------------------------------------------------------------------

@dataclass
class _Step:
    """One module of the forward walk and what the way down needs from it."""
    module: nn.Module
    input: torch.Tensor                     # the module's forward input (N, C, H, W)
    switches: torch.Tensor | None = None    # pools only: argmax locations (N, C, h, w)


def _forward(model: nn.Module, images: torch.Tensor, layer: int) -> tuple[torch.Tensor, list[_Step]]:
    """Run images up to layer ``layer``'s rectified map (N, C, H, W), recording every step."""
    steps, x = [], images
    for m in layers.stack(model, layer):
        if isinstance(m, nn.MaxPool2d):
            # The module's own geometry, but with the switches kept (the paper's "switch variables").
            y, switches = F.max_pool2d(x, m.kernel_size, m.stride, m.padding, m.dilation,
                                       ceil_mode=m.ceil_mode, return_indices=True)
            steps.append(_Step(m, x, switches))
        else:
            y = m(x)
            steps.append(_Step(m, x))
        x = y
    return x, steps


def _down(steps: list[_Step], signal: torch.Tensor, relu_rule: str) -> torch.Tensor:
    """Send ``signal`` (the top map, zeros but the chosen unit) down to pixels, module by module."""
    rule = _RELU_RULES[relu_rule]
    for step in reversed(steps):
        m, size = step.module, step.input.shape[-2:]
        if isinstance(m, nn.MaxPool2d):
            signal = unpool(signal, step.switches, size)
        elif isinstance(m, nn.ReLU):
            signal = rule(signal, step.input)
        elif isinstance(m, nn.Conv2d):
            signal = filter_down(signal, m, size)
        # LocalResponseNorm, Identity: skipped on the way down, as in the paper
    return signal                                                     # (N, 3, H, W)


def _isolate(fmap: torch.Tensor, channel: int, position) -> torch.Tensor:
    """Zero every activation but one per image: ``channel`` at ``position`` or at its argmax."""
    n, _, height, width = fmap.shape
    chosen = fmap[:, channel].flatten(1)                              # (N, H*W)
    if position is None:
        where = chosen.argmax(dim=1)                                  # first maximum, per image
    else:
        where = torch.full((n,), position[0] * width + position[1], device=fmap.device)
    isolated = torch.zeros_like(fmap)
    flat = isolated[:, channel].view(n, -1)  # a view: writing it writes `isolated`
    rows = torch.arange(n, device=fmap.device)
    flat[rows, where] = chosen[rows, where]  # the paper keeps the activation's value
    return isolated                                                   # (N, C, H, W)


@torch.no_grad()
def _map_and_project(model, images, layer, channel, position, relu_rule) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's map (N, C, h, w) and the projection (N, 3, H, W), both from one forward pass."""
    check_model(model)
    check_images(model, images)
    check_layer(model, layer)
    check_channel(model, layer, channel)
    check_image_size(model, images, layers.named_stack(model, layer), what=f" for layer {layer}")
    x = layers.to_model(model, images)
    fmap, steps = _forward(model, x, layer)                           # (N, C, H, W)
    position = check_position(position, fmap.shape[-2:], layer)
    signal = _isolate(fmap, channel, position)
    return fmap.to(images.device), _down(steps, signal, relu_rule).to(images.device)


def _project(model, images, layer, channel, position, relu_rule) -> torch.Tensor:
    return _map_and_project(model, images, layer, channel, position, relu_rule)[1]   # (N, 3, H_img, W_img)


@torch.no_grad()
def feature_map(model: nn.Module, images: torch.Tensor, layer: int) -> torch.Tensor:
    """The paper's feature map of conv layer ``layer``: the output of relu{layer}, before pooling.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).
    ``images`` (N, 3, H, W), preprocessed as the network expects; returns (N, C, h, w) on the images' device.
    """
    check_model(model)
    check_images(model, images)
    check_layer(model, layer)
    check_image_size(model, images, layers.named_stack(model, layer), what=f" for layer {layer}")
    fmap, _ = _forward(model, layers.to_model(model, images), layer)
    return fmap.to(images.device)


def project(model: nn.Module, images: torch.Tensor, layer: int, channel: int,
            position: tuple[int, int] | None = None) -> torch.Tensor:
    """The deconvnet projection (ZF §2.1, Fig. 1) of one unit per image, down to pixel space.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet).

    Args:
        model: a flat network of Conv2d / ReLU / MaxPool2d / LocalResponseNorm children
            (``zfviz.models.zfnet``, ``alexnet_single``); it is not modified.
        images: (N, 3, H, W) float, already preprocessed as the network expects.
        layer: the paper's conv layer, 1..5. Its feature map is the output of relu{layer}: the
            rectified conv output, before pooling.
        channel: the feature map within that layer.
        position: (y, x) in that map, the same for every image; ``None`` takes each image's
            strongest activation of ``channel`` (first argmax).
    Returns:
        (N, 3, H, W) on the images' device, in the model's dtype (float16/float64 images are converted to it,
        and must be large enough for the layer: ValueError naming the smallest size otherwise): all
        activations but the chosen one zeroed (the chosen one keeps its value), then per layer unpool with this image's switches, rectify, filter with
        the transposed filters (no bias); contrast normalisation skipped. Zero outside the unit's
        receptive field (:func:`receptive_field_box`).
    """
    return _project(model, images, layer, channel, position, "deconvnet")


def map_and_projection(model: nn.Module, images: torch.Tensor, layer: int, channel: int,
                       position: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`feature_map` and :func:`project` from one forward pass: ``(map (N, C, h, w), projection (N, 3, H, W))``.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet): what an explorer shows at once, the
    layer's map (to find the strongest unit) and that unit's projection. Same arguments and checks as
    :func:`project`; both results on the images' device.
    """
    return _map_and_project(model, images, layer, channel, position, "deconvnet")


def backprop(model: nn.Module, images: torch.Tensor, layer: int, channel: int,
             position: tuple[int, int] | None = None) -> torch.Tensor:
    """The same unit projected by plain backpropagation: each ReLU passes the signal where its forward input was > 0.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet). Same arguments, shapes,
    switches and scaling as :func:`project`, and contrast normalisation is likewise skipped, so the two
    differ only in the ReLU rule. This is the input gradient of (activation value x unit) with LRN
    treated as the identity; ZF found such pictures "significantly less clear".
    """
    return _project(model, images, layer, channel, position, "backprop")


def guided_backprop(model: nn.Module, images: torch.Tensor, layer: int, channel: int,
                    position: tuple[int, int] | None = None) -> torch.Tensor:
    """The same unit by guided backpropagation (Springenberg et al. 2015): ReLU of the signal AND the forward mask.

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet). Same arguments, shapes,
    switches and scaling as :func:`project`; only the ReLU rule differs.
    """
    return _project(model, images, layer, channel, position, "guided")


# ----------------------------------------------------------------------------------------------
# Fig. 2: which images excite a feature map most, and what patch a unit sees
# ----------------------------------------------------------------------------------------------

class TopActivations(NamedTuple):
    """The k strongest images per feature map, as :func:`top_activations` returns them.

    Explained in the chapter "What each layer sees" (book/visualisation).
    ``values`` (C, k): each image's spatial maximum, high to low; ``indices`` (C, k): their dataset
    indices (k distinct images); ``positions`` (C, k, 2): (y, x) of that maximum in the layer's map.
    """
    values: torch.Tensor
    indices: torch.Tensor
    positions: torch.Tensor


def _candidates(fmap: torch.Tensor, start: int) -> TopActivations:
    """Each image's spatial maximum per map, for images start, start+1, ... of the data set."""
    n, c, _, width = fmap.shape                                       # (n, C, H, W)
    where = fmap.flatten(2).argmax(dim=2, keepdim=True)               # (n, C, 1) first maximum, as in project
    values = fmap.flatten(2).gather(2, where)[..., 0]                 # (n, C)
    indices = torch.arange(start, start + n, device=fmap.device).expand(c, n)
    positions = torch.cat([where // width, where % width], dim=2)     # (n, C, 2) as (y, x)
    return TopActivations(values.T, indices, positions.transpose(0, 1))


def _cat(a: TopActivations, b: TopActivations) -> TopActivations:
    """Candidates side by side: (C, k + n) and (C, k + n, 2)."""
    return TopActivations(*(torch.cat([x, y], dim=1) for x, y in zip(a, b)))


def _merge_top(candidates: TopActivations, k: int) -> TopActivations:
    """The k best candidates per feature map, high to low; ties go to the lower dataset index."""
    values, indices, positions = candidates                           # (C, m), (C, m), (C, m, 2)
    # torch.topk does not promise an order among equal values; two stable sorts do:
    # by index first, then by value (descending), which keeps the index order within ties.
    order = indices.argsort(dim=1, stable=True)
    order = order.gather(1, values.gather(1, order).argsort(dim=1, descending=True, stable=True))[:, :k]
    return TopActivations(values.gather(1, order), indices.gather(1, order),
                          positions.gather(1, order.unsqueeze(-1).expand(-1, -1, 2)))


@torch.no_grad()
def top_activations(model: nn.Module, dataset, layer: int, k: int = 9, channels: Sequence[int] | None = None,
                    batch_size: int = 64, preprocess: nn.Module | None = None) -> TopActivations:
    """For each feature map of ``layer``, the k images of ``dataset`` with the largest spatial maximum (ZF Fig. 2).

    Explained in the chapter "What each layer sees" (book/visualisation).

    Args:
        model: as in :func:`project`. dataset: yields (image (3, H, W) in [0, 1], label) pairs.
        layer: conv layer 1..5 (its rectified map). k: images per map (9 in the paper).
        channels: the feature maps to rank (default: all), in the order given.
        batch_size: images per forward pass. preprocess: applied to each batch first (e.g.
            ``zfviz.data.Preprocess``).
    Returns:
        :class:`TopActivations` with ``values`` (C, k), ``indices`` (C, k), ``positions`` (C, k, 2),
        sorted high to low; ties go to the lower dataset index. One pass over the data set.
    """
    check_model(model)
    check_layer(model, layer)
    channels = check_channels(model, layer, channels)
    check_k(k, len(dataset))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"preprocess must be an nn.Module or function applied to each batch (e.g. "
                        f"zfviz.data.Preprocess), got {type(preprocess).__name__}")
    device, best, start = layers.model_device(model), None, 0
    # Its own generator: iterating a DataLoader draws a seed, which must not move the caller's RNG.
    for images, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator()):
        images = images.to(device)
        if preprocess is not None:
            images = preprocess(images)
        check_images(model, images, "the data set's images" + (" after preprocess" if preprocess else ""))
        if start == 0:
            check_image_size(model, images, layers.named_stack(model, layer), "the data set's images",
                              f" for layer {layer}")
        fmap, _ = _forward(model, layers.to_model(model, images), layer)
        batch = _candidates(fmap[:, channels], start)                 # one per image and map
        best = _merge_top(batch if best is None else _cat(best, batch), k)
        start += len(images)
    return best


def strongest_projections(model: nn.Module, images: torch.Tensor, layer: int,
                          channels: Sequence[int]) -> tuple[TopActivations, torch.Tensor]:
    """For each feature map in ``channels``, its strongest activation over a set of images, projected (ZF Fig. 4).

    Explained in the chapter "Training ZFNet" (how features evolve during training).
    ``images`` (N, 3, H, W), preprocessed. Returns the :class:`TopActivations` with k = 1 (``values`` (C, 1),
    ``indices`` (C, 1), ``positions`` (C, 1, 2)) and the projections (C, 3, H, W), one per map.
    """
    from torch.utils.data import TensorDataset
    check_model(model)
    check_images(model, images)
    check_layer(model, layer)
    if channels is None:
        raise ValueError("channels must name at least one feature map (a list of ints); got None")
    channels = check_channels(model, layer, channels)
    top = top_activations(model, TensorDataset(images, torch.zeros(len(images))), layer, k=1, channels=channels)
    projections = [project(model, images[i:i + 1], layer, c)[0]
                   for c, i in zip(channels, top.indices[:, 0].tolist())]
    return top, torch.stack(projections)


@renamed_keyword("image_size", "input_size")
def receptive_field_box(model: nn.Module, layer: int, position: tuple[int, int],
                        input_size: int | tuple[int, int], clip: bool = True) -> layers.Box:
    """The image patch that unit ``position`` ``(y, x)`` of layer ``layer`` sees, as a
    :class:`zfviz.layers.Box` ``(x0, y0, x1, y1)``, end-exclusive (the package's one box order).

    Explained in the chapter "What each layer sees" (book/visualisation).
    Walks from relu{layer} down through every conv and pool: rows [a, b) of a module's output come
    from rows [a*s - p, (b-1)*s - p + d*(k-1) + 1) of its input. The result is clipped at the image
    border, so interior units get the full receptive field of ``zfviz.models.layer_table``
    (e.g. 139 pixels for ZFNet's layer 5) and border units less. ``input_size``: the input image's side,
    or its (H, W) (``image_size=``, its name before issue 17, still works with a DeprecationWarning).
    """
    check_model(model)
    check_layer(model, layer)
    size = (input_size, input_size) if as_int(input_size) is not None else input_size
    hw = tuple(as_int(v) for v in size) if isinstance(size, (tuple, list)) else ()
    if len(hw) != 2 or None in hw or min(hw) < 1:
        raise ValueError(f"input_size must be an int >= 1 or a pair (H, W) of them (the input image's size in "
                         f"pixels); got {input_size!r}")
    height, width = hw
    check_image_size(model, torch.empty(0, 0, height, width), layers.named_stack(model, layer), "input_size",
                      f" for layer {layer}")
    # The map's size, to check the position: followed through the layers' geometry, no forward pass.
    *_, map_size, _ = list(layers.walk_sizes(layers.named_stack(model, layer), height, width))[-1]
    position = check_position(position, map_size, layer)
    if position is None:
        raise ValueError("position must be (y, x) in the layer's map; None has no single receptive field")
    (y0, y1), (x0, x1) = (position[0], position[0] + 1), (position[1], position[1] + 1)
    for m in reversed(layers.stack(model, layer)):
        geo = layers.geometry(m)
        if geo is not None:
            (ky, sy, py, dy), (kx, sx, px, dx) = geo[0]
            y0, y1 = y0 * sy - py, (y1 - 1) * sy - py + dy * (ky - 1) + 1
            x0, x1 = x0 * sx - px, (x1 - 1) * sx - px + dx * (kx - 1) + 1
    if not clip:
        return layers.Box(x0, y0, x1, y1)
    return layers.Box(max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))


def field_crop(x: torch.Tensor, model: nn.Module, layer: int, position: tuple[int, int],
               fill: float = 0.0) -> torch.Tensor:
    """Crop images or projections to one unit's whole receptive field, as the paper shows them (Fig. 2).

    Explained in the chapter "What each layer sees" (book/visualisation).
    ``x`` (N, C, H, W) or (C, H, W): images, or projections of the unit at ``position`` of layer ``layer``
    (a projection is zero outside that field, so nothing is lost). Returns (N, C, F, F) or (C, F, F), F the
    layer's receptive field (e.g. 139 for ZFNet's layer 5); where the field reaches past the image border
    (the network's zero padding) the crop holds ``fill``, so every crop of a layer has the same scale and
    the unit always sits at its centre.
    """
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        raise ValueError(f"x must be images or projections (N, C, H, W) or (C, H, W); got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if isinstance(fill, bool) or not isinstance(fill, numbers.Real) or not math.isfinite(fill):
        raise TypeError(f"fill must be a finite number (0 for projections; a grey level for images), got {fill!r}")
    batch = x if x.dim() == 4 else x.unsqueeze(0)
    height, width = batch.shape[-2:]
    x0, y0, x1, y1 = receptive_field_box(model, layer, position, (height, width), clip=False)
    out = torch.full((*batch.shape[:2], y1 - y0, x1 - x0), float(fill), dtype=batch.dtype, device=batch.device)
    sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y1, height), min(x1, width)
    out[..., sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = batch[..., sy0:sy1, sx0:sx1]
    return out if x.dim() == 4 else out[0]


def deconv_steps(model: nn.Module, layer: int) -> list[tuple[str, str]]:
    """The deconvnet's way down from layer ``layer``'s feature map to pixels, step by step (Fig. 1's right half).

    Explained in the chapter "The deconvnet, step by step" (book/deconvnet). Read from the model's own
    module list, top first, as :func:`project` walks it: ``[(operation, module name), ...]`` with operation
    one of "unpool" (with that pool's switches), "rectify", "filter" (the conv's transposed filters, no bias)
    or "skip" (contrast normalisation, not inverted). ZFNet's layers 3 and 4 have no pooling, so no unpooling
    step between them.
    """
    check_model(model)
    check_layer(model, layer)
    names = {id(m): n for n, m in model.named_children()}
    ops = {nn.MaxPool2d: "unpool", nn.ReLU: "rectify", nn.Conv2d: "filter"}
    return [(next((op for kind, op in ops.items() if isinstance(m, kind)), "skip"), names[id(m)])
            for m in reversed(layers.stack(model, layer))]
