"""The networks of Zeiler & Fergus (2014), Fig. 3, as plain ``nn.Sequential`` models.

Explained in the chapter "The network" (book/network.ipynb).

Every layer is a named child in forward order -- ``conv1, relu1, pool1, norm1, conv2, ...`` -- and
no ReLU is in-place, so forward hooks see each stage and the deconvnet (``zfviz.deconv``) can walk
the network backwards. Departures from the paper are named where they happen.
"""
from __future__ import annotations

import copy

import math
import numbers
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ._checks import as_int, check_int
from .layers import model_device, model_dtype

__all__ = ["zfnet", "alexnet_single", "build_model", "init_paper_", "init_kaiming_",
           "layer_table", "LayerInfo", "ARCHITECTURES", "flops", "with_conv_weights"]

# (name, out_channels, kernel, stride, padding, pool after?, norm after?) for the five conv layers.
# ZF Fig. 3: 7x7/2 first layer, 5x5/2 second (their fix for AlexNet's aliasing, Sec. 4.1).
_ZF_CONVS = [(96, 7, 2, 1, True, True), (256, 5, 2, 0, True, True),
             (384, 3, 1, 1, False, False), (384, 3, 1, 1, False, False), (256, 3, 1, 1, True, False)]
# Krizhevsky et al. (2012) as ZF re-trained it: one dense tower, 11x11/4 then 5x5/1. The padding
# (2 and 2) is the one that gives the 55 -> 27 maps ZF describe.
_ALEX_CONVS = [(96, 11, 4, 2, True, True), (256, 5, 1, 2, True, True),
               (384, 3, 1, 1, False, False), (384, 3, 1, 1, False, False), (256, 3, 1, 1, True, False)]


MIN_CHANNELS = 2   # a layer of one feature map (or none) is no network: width may not shrink any layer below this


def _scaled(n: int, width: float) -> int:
    return int(round(n * width))


def _check_args(num_classes, width, input_size) -> tuple[int, float, int]:
    num_classes = check_int("num_classes", num_classes, 1)
    if isinstance(width, bool) or not isinstance(width, numbers.Real):
        raise TypeError(f"width must be a number > 0 (1.0 is the paper's size), got {width!r} "
                        f"({type(width).__name__})")
    if not 0 < width < math.inf:
        raise ValueError(f"width must be a finite number > 0 (1.0 is the paper's size), got {width!r}")
    input_size = check_int("input_size", input_size, 1, why=" (224 in the paper)")
    return num_classes, float(width), input_size


def _check_width(width: float, sizes: dict[str, int]) -> None:
    """Every layer in ``sizes`` (name -> channels before width) must keep at least MIN_CHANNELS after width."""
    narrow = {name: _scaled(n, width) for name, n in sizes.items() if _scaled(n, width) < MIN_CHANNELS}
    if not narrow:
        return
    smallest = (MIN_CHANNELS - 0.5) / min(sizes.values())
    smallest = math.ceil(smallest * 1e6) / 1e6
    while any(_scaled(n, smallest) < MIN_CHANNELS for n in sizes.values()):
        smallest += 1e-6
    name, k = next(iter(narrow.items()))
    raise ValueError(f"width={width!r} is too narrow: {name} would get {k} channel(s) ({sizes[name]} x {width!r}, "
                     f"rounded); every layer needs at least {MIN_CHANNELS}, so the smallest width for these layer "
                     f"sizes is {smallest:.6g} (0.25 is the book's teaching net, 1.0 the paper's)")


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _pool_out(size: int, kernel: int = 3, stride: int = 2) -> int:
    # ceil mode, as cuda-convnet/Caffe: a window may hang over the bottom/right edge,
    # but PyTorch drops a last window that would start outside the input.
    out = math.ceil((size - kernel) / stride) + 1
    if (out - 1) * stride >= size:
        out -= 1
    return out


def _final_size(convs, size: int) -> int | None:
    """Spatial side after the last pooling layer, or None when some layer runs out of input."""
    for _, k, s, p, pool, _ in convs:
        if size + 2 * p < k:
            return None
        size = _conv_out(size, k, s, p)
        if pool:
            if size < 3:
                return None
            size = _pool_out(size)
    return size


def _smallest_input(convs) -> int:
    """The smallest square input side that leaves every layer of ``convs`` some output."""
    return next(n for n in range(1, 4096) if _final_size(convs, n))


def _convs_of(config: dict) -> list | None:
    """The conv specs of a network built by this module, from its ``config``; None for other models."""
    base = {"zfnet": _ZF_CONVS, "alexnet_single": _ALEX_CONVS}.get(config.get("arch"))
    if base is None:
        return None
    drop = set(config.get("drop", ()))
    return [spec for i, spec in enumerate(base, start=1) if i not in drop]


_PAPER_CHANNELS = (96, 256, 384, 384, 256)
_DROPPABLE = (3, 4, 6, 7)


def _check_variant(drop, fc_units, conv_channels) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
    """Validate the size-ablation options (§5.1) up front; returns them normalised."""
    if isinstance(drop, (str, bytes)) or not hasattr(drop, "__iter__"):
        raise TypeError(f"drop must be a collection of layer numbers from {_DROPPABLE}, got {drop!r}")
    drop = tuple(drop)
    if any(as_int(d) is None for d in drop):
        raise TypeError(f"drop must hold layer numbers (ints) from {_DROPPABLE}, got {drop!r}")
    drop = tuple(sorted({as_int(d) for d in drop}))
    if any(d not in _DROPPABLE for d in drop):
        raise ValueError(f"drop may hold the layers {_DROPPABLE} (the paper's ablations remove 3-4, 7 or "
                         f"6-7), got {drop!r}")
    if 6 in drop and 7 not in drop:
        raise ValueError("drop=(6,) would leave layer 7 without its input; remove 7 alone or 6 and 7")
    if (3 in drop) != (4 in drop):
        raise ValueError(f"the paper removes conv layers 3 and 4 together; drop holds {drop!r}")
    fc_units = check_int("fc_units", fc_units, 1, why=" (4096 in the paper, before width)")
    why = f"conv_channels must be 5 positive ints (the paper's {_PAPER_CHANNELS}, before width)"
    if isinstance(conv_channels, (str, bytes)) or not hasattr(conv_channels, "__iter__"):
        raise TypeError(f"{why}, got {conv_channels!r}")
    conv_channels = tuple(conv_channels)
    if any(as_int(c) is None for c in conv_channels):
        raise TypeError(f"{why}, got {conv_channels!r}")
    if len(conv_channels) != 5 or any(as_int(c) < 1 for c in conv_channels):
        raise ValueError(f"{why}, got {conv_channels!r}")
    return drop, fc_units, tuple(as_int(c) for c in conv_channels)


def _numbered_convs(convs, drop, conv_channels) -> list[tuple[int, tuple]]:
    """``(paper number, conv spec)`` of the layers kept. Layers keep their paper numbers when others are removed
    (conv5 stays "conv5"), so "layer 5" means the same thing in every variant."""
    return [(i, (c,) + spec[1:]) for i, (c, spec) in enumerate(zip(conv_channels, convs), start=1) if i not in drop]


def _final_side_or_raise(convs, arch: str, input_size: int) -> int:
    """The side of the maps that feed fc6, or ValueError naming the smallest input the layers accept."""
    specs = [spec for _, spec in convs]
    side = _final_size(specs, input_size)
    if side is None:
        raise ValueError(f"input_size={input_size} is too small for {arch}: the feature maps shrink to "
                         f"nothing before fc6; the smallest input it accepts is {_smallest_input(specs)} "
                         f"(224 in the paper)")
    return side


def _lrn() -> nn.LocalResponseNorm:
    # "Contrast normalisation across feature maps": ZF give no constants, so we use AlexNet's
    # (size 5, alpha 1e-4, beta 0.75, k 2). Note PyTorch, like Caffe, divides alpha by size.
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)


def _conv_layers(layers: OrderedDict, convs, width: float, lrn_before_pool: bool) -> int:
    """Add conv, ReLU, pooling and normalisation of every kept conv layer to ``layers``; returns the last width."""
    in_ch = 3
    for i, (out, k, s, p, pool, norm) in convs:
        out = _scaled(out, width)
        layers[f"conv{i}"] = nn.Conv2d(in_ch, out, k, stride=s, padding=p)
        layers[f"relu{i}"] = nn.ReLU()  # never inplace=True: hooks and the deconvnet need the input
        # ZF's Fig. 3 pools first, then normalises; AlexNet's order (normalise, then pool) is what
        # pytorchcv's ImageNet-trained ZFNet uses (see zfviz.pretrained.pretrained_zfnet).
        if norm and lrn_before_pool:
            layers[f"norm{i}"] = _lrn()
        if pool:
            layers[f"pool{i}"] = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        if norm and not lrn_before_pool:
            layers[f"norm{i}"] = _lrn()
        in_ch = out
    return in_ch


def _fc_layers(layers: OrderedDict, features: int, hidden: int, drop, num_classes: int) -> None:
    """Add flatten, fc6 and fc7 (those kept, each with ReLU and dropout) and fc8 to ``layers``."""
    layers["flatten"] = nn.Flatten()
    for i in (6, 7):
        if i in drop:
            continue
        layers[f"fc{i}"] = nn.Linear(features, hidden)
        layers[f"relu{i}"] = nn.ReLU()
        layers[f"drop{i}"] = nn.Dropout(0.5)
        features = hidden
    layers["fc8"] = nn.Linear(features, num_classes)  # softmax lives in the loss (cross-entropy)


def _config(arch, num_classes, width, input_size, drop, fc_units, conv_channels, lrn_before_pool) -> dict:
    """What the network was built with: checkpoints store it, layer_table reads input_size from it.
    The size-ablation options are stored only when they differ from the paper's net."""
    config = {"arch": arch, "num_classes": num_classes, "width": float(width), "input_size": input_size}
    if drop:
        config["drop"] = list(drop)
    if fc_units != 4096:
        config["fc_units"] = fc_units
    if conv_channels != _PAPER_CHANNELS:
        config["conv_channels"] = list(conv_channels)
    if lrn_before_pool:
        config["lrn_before_pool"] = True
    return config


def _build(convs, arch: str, num_classes: int, width: float, input_size: int, drop=(),
           fc_units: int = 4096, conv_channels=_PAPER_CHANNELS, lrn_before_pool: bool = False) -> nn.Sequential:
    num_classes, width, input_size = _check_args(num_classes, width, input_size)
    drop, fc_units, conv_channels = _check_variant(drop, fc_units, conv_channels)
    if not isinstance(lrn_before_pool, bool):
        raise TypeError(f"lrn_before_pool must be True or False, got {lrn_before_pool!r}")
    convs = _numbered_convs(convs, drop, conv_channels)
    sizes = {f"conv{i}": spec[0] for i, spec in convs}
    sizes.update({f"fc{i}": fc_units for i in (6, 7) if i not in drop})
    _check_width(width, sizes)
    side = _final_side_or_raise(convs, arch, input_size)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = _conv_layers(layers, convs, width, lrn_before_pool)
    _fc_layers(layers, channels * side * side, _scaled(fc_units, width), drop, num_classes)
    model = nn.Sequential(layers)
    model.config = _config(arch, num_classes, width, input_size, drop, fc_units, conv_channels, lrn_before_pool)
    init_paper_(model)
    return model


def zfnet(num_classes: int = 1000, width: float = 1.0, input_size: int = 224, *, drop=(),
          fc_units: int = 4096, conv_channels=_PAPER_CHANNELS, lrn_before_pool: bool = False) -> nn.Sequential:
    """ZFNet (Zeiler & Fergus 2014, Fig. 3) as one ``nn.Sequential``.

    Explained in the chapter "The network" (book/network.ipynb).

    Args:
        num_classes: size of the final layer (1000 for ImageNet).
        width: multiplies every conv and FC width (96, 256, 384, 384, 256, 4096); 1.0 is the paper's
            net, 0.25 the book's teaching net.
        input_size: side of the square input, which sets fc6's fan-in (224 in the paper -> 6x6x256).
        drop, fc_units, conv_channels: the size ablations of §5.1 (chapter "Experiments"): ``drop``
            removes layers by number -- ``(3, 4)``, ``(7,)``, ``(6, 7)`` or ``(3, 4, 6, 7)`` -- and the
            others keep their names; ``fc_units`` sets layers 6-7 (4096 in the paper) and
            ``conv_channels`` the five conv widths (96, 256, 384, 384, 256); both before ``width``.
        lrn_before_pool: normalise, then pool, in layers 1-2 (AlexNet's order, and pytorchcv's ImageNet
            ZFNet's: see :func:`zfviz.pretrained.pretrained_zfnet`); the paper's Fig. 3 pools first (the default).

    Input ``(N, 3, input_size, input_size)``, per-pixel mean subtracted; output logits ``(N, num_classes)``.
    At the defaults the net has 62,357,608 parameters and conv outputs of 110, 26, 13, 13, 13.
    Weights start as the paper's: N(0, 0.01^2), biases 0 (see ``init_paper_``).
    """
    return _build(_ZF_CONVS, "zfnet", num_classes, width, input_size, drop, fc_units, conv_channels,
                  lrn_before_pool)


def alexnet_single(num_classes: int = 1000, width: float = 1.0, input_size: int = 224, *, drop=(),
                   fc_units: int = 4096, conv_channels=_PAPER_CHANNELS,
                   lrn_before_pool: bool = False) -> nn.Sequential:
    """Krizhevsky et al.'s net as ZF re-trained it: one dense tower, conv1 11x11 stride 4, conv2 5x5 stride 1.

    Explained in the chapters "The network" and "Architecture selection" (§4.1).
    Same arguments and layer names as :func:`zfnet` (the paper's removal ablations were made on this
    net); 62,378,344 parameters at the defaults.
    """
    return _build(_ALEX_CONVS, "alexnet_single", num_classes, width, input_size, drop, fc_units,
                  conv_channels, lrn_before_pool)


ARCHITECTURES = {"zfnet": zfnet, "alexnet_single": alexnet_single}


def build_model(arch: str, num_classes: int = 1000, width: float = 1.0, input_size: int = 224,
                **variant) -> nn.Sequential:
    """Build a network by name (``"zfnet"`` or ``"alexnet_single"``); used by checkpoints.

    Explained in the chapter "The network". ``variant`` passes the size-ablation options (``drop``,
    ``fc_units``, ``conv_channels``; chapter "Experiments") and ``lrn_before_pool`` on to :func:`zfnet`.
    """
    if not isinstance(arch, str):
        raise TypeError(f"arch must be a name, one of {sorted(ARCHITECTURES)}; got {arch!r}")
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    unknown = set(variant) - {"drop", "fc_units", "conv_channels", "lrn_before_pool"}
    if unknown:
        raise ValueError(f"unknown model options {sorted(unknown)}; allowed: drop, fc_units, conv_channels, "
                         f"lrn_before_pool")
    return ARCHITECTURES[arch](num_classes=num_classes, width=width, input_size=input_size, **variant)


@torch.no_grad()
def init_paper_(model: nn.Module, std: float = 0.01) -> nn.Module:
    """The paper's initialisation (§3): every weight N(0, std^2) with std = 0.01, every bias 0.

    Explained in the chapter "The network" (and why it stalls a narrow net, in "Training ZFNet").
    ``std`` must be a finite number > 0 (0 would zero every weight: a network that cannot learn).
    """
    _check_module(model)
    if isinstance(std, bool) or not isinstance(std, numbers.Real):
        raise TypeError(f"std must be a number (0.01 in the paper), got {std!r} ({type(std).__name__})")
    if not 0 < std < math.inf:
        raise ValueError(f"std must be a finite number > 0 (0.01 in the paper), got {std!r}")
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.normal_(0.0, float(std))
            if m.bias is not None:
                m.bias.zero_()
    return model


def _check_module(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (e.g. zfviz.models.zfnet()), got {type(model).__name__}")


@torch.no_grad()
def init_kaiming_(model: nn.Module) -> nn.Module:
    """He et al. (2015) initialisation, N(0, 2/fan_in), biases 0: the book's departure for narrow nets.

    With std 0.01 a width-0.25 ZFNet shrinks its signal about 4x per layer (0.01*sqrt(fan_in) ~ 0.25),
    so the logits start near zero and gradients vanish; scaling by fan-in keeps it near 1.
    Explained in the chapter "The network" (and measured in "Training ZFNet").
    """
    _check_module(model)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                m.bias.zero_()
    return model


@dataclass(frozen=True)
class LayerInfo:
    """One row of :func:`layer_table`: a module's output shape, receptive field and jump (in pixels).

    Explained in the chapter "The network".
    """
    name: str
    kind: str
    out_shape: tuple[int, int, int]
    params: int
    receptive_field: int
    jump: int


def _zero_image(model: nn.Module, input_size) -> torch.Tensor:
    """A zero image (1, 3, input_size, input_size) on the model's device, in its dtype, after checking that the
    model is a flat conv network and ``input_size`` an int it accepts (default: the one it was built for, else 224)."""
    _check_module(model)
    if not any(isinstance(m, nn.Conv2d) for m in model.children()):
        raise ValueError("the model has no Conv2d child; layer_table walks conv networks only")
    config = getattr(model, "config", None)
    config = config if isinstance(config, dict) else {}
    if input_size is None:
        input_size = config.get("input_size", 224)
    input_size = check_int("input_size", input_size, 1, why=" (the side of the square input in pixels)")
    convs = _convs_of(config)
    if convs is not None and _final_size(convs, input_size) is None:
        raise ValueError(f"input_size={input_size} is too small for this {config['arch']}: the feature maps "
                         f"shrink to nothing before fc6; the smallest input it accepts is {_smallest_input(convs)}")
    return torch.zeros(1, 3, input_size, input_size, device=model_device(model), dtype=model_dtype(model))


def _run_children(model: nn.Module, x: torch.Tensor):
    """Yield (name, module, output) of each child in turn, starting from ``x``; a model of another kind gets a
    ValueError naming the layer that ran out of input."""
    input_size = x.shape[-1]
    for name, m in model.named_children():
        try:
            x = m(x)
        except RuntimeError as e:
            raise ValueError(f"input_size={input_size} does not fit this model: layer {name} fails on "
                             f"input {tuple(x.shape[1:])} ({e})") from e
        yield name, m, x


def _field_step(m: nn.Module, r: int, j: int) -> tuple[int, int]:
    """Receptive field and jump after module ``m``: r + (k - 1) j and j s for a conv or pool, else unchanged."""
    if not isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
        return r, j
    k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
    s = m.stride if isinstance(m.stride, int) else m.stride[0]
    return r + (k - 1) * j, j * s


@torch.no_grad()
def layer_table(model: nn.Module, input_size: int | None = None) -> list[LayerInfo]:
    """Walk the model's children in order; output shape, parameters, receptive field and jump of each.

    Explained in the chapter "The network". Receptive field r and jump j follow the usual recursion
    r <- r + (k - 1) * j, j <- j * s for every conv or pool with kernel k and stride s; ReLU and
    contrast normalisation change neither. Shapes come from a real forward pass of a zero image, on the
    model's device (``net.to("cuda")`` is enough). ``input_size`` (default: the one the model was built for,
    else 224) must be an int the network accepts (``ValueError`` naming the smallest one otherwise).
    """
    x = _zero_image(model, input_size)
    rows, r, j = [], 1, 1
    for name, m, x in _run_children(model, x):
        r, j = _field_step(m, r, j)
        maps = x.dim() == 4
        rows.append(LayerInfo(name, type(m).__name__, tuple(x.shape[1:]), sum(p.numel() for p in m.parameters()),
                              r if maps else 0, j if maps else 0))
    return rows


@torch.no_grad()
def flops(model: nn.Module, input_size: int | None = None) -> int:
    """Floating-point operations of one forward pass for one image, as PyTorch's ``FlopCounterMode`` counts them.

    Explained in the chapter "Training ZFNet" (how far a GPU run is from the chip's peak). What is counted
    (``torch.utils.flop_counter``): 2 per multiply-add of every convolution and every matrix product (the conv
    and FC layers' weights); the bias additions, ReLU, pooling, contrast normalisation and dropout are not
    counted: they are a rounding error next to the matrix products. A training step costs about 3x this per
    image (forward, and a backward pass twice as long). ZFNet at 224 px: about 2.3 GFLOPs. The forward pass
    of a zero image runs on the model's device; ``input_size`` as for :func:`layer_table`.
    """
    from torch.utils.flop_counter import FlopCounterMode
    x = _zero_image(model, input_size)
    with FlopCounterMode(display=False) as counter:
        for _ in _run_children(model, x):
            pass
    return int(counter.get_total_flops())


@torch.no_grad()
def with_conv_weights(model: nn.Module, convs: dict) -> nn.Module:
    """A copy of ``model`` (in eval mode) whose conv layers hold ``convs``; the other layers are the model's.

    Explained in the chapter "Training ZFNet" (Fig. 4: the network at earlier epochs). ``convs`` is one
    epoch of a training run's snapshots, ``{"1.weight": (C1, 3, k, k), "1.bias": (C1,), "2.weight": ...}``
    (``snapshots["convs"][i]``), numbered as the paper numbers the conv layers; every conv layer must be
    given, with the model's shapes. The copy is enough for everything that stops at the conv layers
    (feature maps, deconvnet projections); its classifier is the final one, so its predictions mean nothing.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(convs, dict):
        raise TypeError(f"convs must be a dict {{'1.weight': tensor, '1.bias': tensor, ...}}, got {type(convs).__name__}")
    copy_ = copy.deepcopy(model).eval()
    layers = [m for m in copy_.children() if isinstance(m, nn.Conv2d)]
    wanted = {f"{i}.{name}": p for i, conv in enumerate(layers, start=1) for name, p in conv.named_parameters()}
    if set(convs) != set(wanted):
        raise ValueError(f"convs must hold exactly {sorted(wanted)} (every conv layer's weight and bias); got "
                         f"{sorted(convs)}")
    for key, p in wanted.items():
        v = convs[key]
        if not isinstance(v, torch.Tensor) or v.shape != p.shape:
            raise ValueError(f"convs[{key!r}] must be a tensor of shape {tuple(p.shape)} (the model's), got "
                             f"{tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}")
        p.copy_(v)
    return copy_


# Moved to zfviz.pretrained, which builds on this module (so they cannot be re-exported from here).
_MOVED_TO_PRETRAINED = frozenset({"efficientnet_lite0", "EFFICIENTNET_LITE0_SHA256", "_LitePreprocess", "PYTORCHCV_ZFNET",
                                  "IMAGENET_MEAN", "IMAGENET_STD", "_PYTORCHCV_NAMES", "zfnet_from_pytorchcv",
                                  "_download_pytorchcv", "pretrained_zfnet"})


def __getattr__(name: str):
    # Moved to zfviz.checkpoints (which builds on this module; importing it here would make a cycle).
    if name in ("load_teaching_zfnet", "load_shipped_checkpoint", "TEACHING_WEIGHTS"):
        raise AttributeError(f"zfviz.models.{name} moved to zfviz.checkpoints.{name}"
                             + (" (also zfviz.load_teaching_zfnet)" if name == "load_teaching_zfnet" else ""))
    if name in _MOVED_TO_PRETRAINED:
        raise AttributeError(f"zfviz.models.{name} moved to zfviz.pretrained.{name} (networks trained by others "
                             f"live there; zfviz.models holds the paper's architectures): "
                             f"from zfviz import pretrained; pretrained.{name}")
    raise AttributeError(f"module 'zfviz.models' has no attribute {name!r}")
