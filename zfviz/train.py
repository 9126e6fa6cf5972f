"""Training ZFNet with the paper's recipe (§3), checkpoints that can be trusted, and a command line.

Explained in the chapter "Training ZFNet" (book/training).

    python -m zfviz.train --seed 0 --snapshot-epochs paper --out runs/teaching    # the book's teaching ZFNet
    torchrun --nproc_per_node 2 -m zfviz.train ...      # DistributedDataParallel, same results

The recipe: SGD with momentum 0.9, learning rate 1e-2 divided by 10 when the validation loss stops
improving (the paper watches the error; see ``train``), dropout 0.5 in fc6/fc7 (in the model), per-pixel
mean subtraction, layer 1 started at N(0, 0.01^2) as in the paper, 70 epochs, and after every update each
conv filter whose RMS exceeds 0.1 is scaled back to RMS 0.1. Departures, each a flag with its reason: a
quarter of the width and 192-pixel images (``--width``, ``--input-size``); He initialisation instead of
N(0, 0.01^2) for layers 2-8 of narrow nets (``--init``); batch 32 instead of 128 (``--batch-size``: 4x the
updates, for layer 1 to learn on 2 CPU cores); inputs divided by the channel std (``zfviz.data.Preprocess``).
"""
from __future__ import annotations

import json
import math
import numbers
import os
import random
import shlex
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoints, layers
from . import data as zdata
from ._checks import deprecated_alias, renamed_keyword
from .checkpoints import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, save_checkpoint  # noqa: F401 (re-exported)
from .filters import neighbour_correlation
from .models import build_model, init_kaiming_, init_paper_

__all__ = ["TrainConfig", "train", "train_step", "evaluate", "snapshot_epochs", "PAPER_SNAPSHOT_EPOCHS", "renormalize_filters_", "save_checkpoint",
           "load_checkpoint", "pick_device", "CheckpointError", "RESUME_CHANGEABLE"]

PAPER_SNAPSHOT_EPOCHS = (1, 2, 5, 10, 20, 30, 40, 64)   # Fig. 4 shows these epochs of a 70-epoch run
SNAPSHOT_MAPS, SNAPSHOT_IMAGES = 4, 64                   # per layer; the first validation images


# TrainConfig's real-valued knobs: (name, low, low included?, high, high included?, what it means)
_REAL_KNOBS = (
    ("lr", 0, False, math.inf, False, "the paper's 0.01"),
    ("momentum", 0, True, 1, False, "the paper's 0.9; 0 = plain SGD"),
    ("weight_decay", 0, True, math.inf, False, "0 = none, as in the paper"),
    ("lr_factor", 0, False, 1, False, "annealing multiplies the learning rate by it; 0.1 divides by 10"),
    ("min_lr", 0, True, math.inf, False, "annealing stops below it"),
    ("max_filter_rms", 0, True, math.inf, False, "0 turns renormalisation off"),
    ("conv1_std", 0, True, math.inf, False, "0 = layer 1 as --init; the paper's 0.01"),
    ("input_scale", 0, False, math.inf, False, "1 = unit scale; about 64 = the paper's pixels"),
    ("dropout", 0, True, 1, False, "the probability of zeroing a unit of fc6/fc7; the paper's 0.5"))


def _opt(default, help: str):
    """A TrainConfig field: its default, and the reason for it that `--help` prints."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every knob of a training run, with the paper's value or the reason for ours.

    Explained in the chapter "Training ZFNet".
    """
    arch: str = _opt("zfnet", "zfnet, or alexnet_single (the chapter 'Architecture selection')")
    width: float = _opt(0.25, "teaching scale: 24-64-96-96-64 maps, 1024-unit FC layers")
    input_size: int = _opt(zdata.TEACHING_INPUT_SIZE, "the paper's 224 is 1.4x the pixels; a layer-5 unit sees 139 "
                                                      "pixels of 192 (of the paper's 224: 139)")
    dataset: str = _opt("clipart", "clipart (offline, shipped) or imagefolder: data_root/train and /val, "
                                     "ImageNet's layout")
    data_root: str = _opt("", "with --dataset imagefolder: the folder holding train/ and val/")
    workers: int = _opt(0, "DataLoader worker processes (use several for image folders)")
    renders: int = _opt(8, "fresh composites of every training sprite per epoch")
    epochs: int = _opt(70, "the paper's 70")
    batch_size: int = _opt(32, "the paper's is 128; 4x the updates per epoch let layer 1 learn in a CPU budget "
                                 "(the chapter 'Training ZFNet')")
    lr: float = _opt(0.01, "the paper's")
    momentum: float = _opt(0.9, "the paper's")
    weight_decay: float = _opt(0.0, "the paper mentions none")
    lr_factor: float = _opt(0.1, '"annealed by hand"; AlexNet divided by 10')
    lr_patience: int = _opt(8, "epochs without a better validation loss before annealing")
    lr_steps: str = _opt("", 'a fixed schedule: "16,21" divides lr by lr_factor after those epochs; '
                                "'' anneals on a plateau")
    min_lr: float = _opt(1e-4, "annealing on a plateau stops dividing below this learning rate")
    max_filter_rms: float = _opt(0.1, "paper §3: renormalise conv filters whose RMS exceeds 0.1; "
                                      "0 = off (Fig. 6a)")
    init: str = _opt("kaiming", '"paper" = N(0, 0.01^2); see init_kaiming_ for why we depart')
    conv1_std: float = _opt(0.01, "layer 1 alone N(0, conv1_std^2), biases 0, as the paper starts it; 0 = as --init. "
                                  "A He start buries what layer 1 learns (the chapter 'Training ZFNet')")
    input_scale: float = _opt(1.0, "multiplies the preprocessed input (unit scale); the paper's 0-255 pixels "
                                   "minus the mean are about 64 times larger")
    seed: int = _opt(0, "seeds torch, numpy and random, hence the weights and the data order")
    device: str = _opt("auto", "auto = cuda, then mps, then cpu (printed); cuda, mps or cpu: "
                                "an error if absent, never a silent fall-back")
    out: str = _opt("runs/zfnet", "folder for the checkpoints (last.pt after every epoch; best.pt, the epoch "
                                  "of best validation accuracy; each with its .sha256), history.json and "
                                  "snapshots.pt")
    checkpoint_every: int = _opt(0, "also write last.pt every N steps inside an epoch (0: at epoch ends only)")
    dropout: float = _opt(0.5, "paper, fc6 and fc7; 0 makes runs comparable across process counts")
    amp: str = _opt("none", '"bf16": autocast the forward pass to bfloat16 (GPUs; ~no accuracy cost)')
    channels_last: bool = _opt(False, "NHWC memory layout, which tensor cores prefer")
    compile: bool = _opt(False, "torch.compile the model (pays off on long GPU runs)")
    snapshot_epochs: str = _opt("", 'Fig. 4: "paper" (1,2,5,...,64 of 70, scaled to this run) or "1,3,10"')
    drop_layers: str = _opt("", '§5.1 size ablations: "3,4", "7", "6,7" or "3,4,6,7" removes those layers')
    fc_units: int = _opt(4096, "§5.1: units in layers 6 and 7, before width (paper 4096; tried 2048, 8192)")
    conv_channels: str = _opt("", '§5.1: five conv widths before width, e.g. "96,256,512,1024,512"; "" = paper')

    # Called image_size before issue 17: cfg.image_size still reads it, and TrainConfig(image_size=...) works
    # (the wrapper of __init__ below the class); both with a DeprecationWarning.
    image_size = deprecated_alias("image_size", "input_size")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check every field (types, ranges, the lists inside strings); :func:`train` calls it again, as
        fields may have been changed after construction. Raises TypeError/ValueError naming the field."""
        self._check_types()
        self._check_choices()
        self._check_counts()
        self._check_reals()
        snapshot_epochs(self.snapshot_epochs, self.epochs)      # raises on a bad list
        self.lr_step_epochs()                                    # likewise
        with torch.device("meta"):                                # raises on a bad arch, width or ablation,
            build_model(self.arch, num_classes=10, width=self.width,   # without allocating the weights
                        input_size=self.input_size, **self.model_options())

    def _check_types(self) -> None:
        for f in fields(self):
            v, kind = getattr(self, f.name), type(f.default)
            if kind is bool and not isinstance(v, bool):
                raise TypeError(f"{f.name} must be True or False, got {v!r}")
            if kind is str and not isinstance(v, str):
                raise TypeError(f"{f.name} must be a string, got {v!r} ({type(v).__name__})")
            if kind is float and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
                raise TypeError(f"{f.name} must be a number, got {v!r} ({type(v).__name__})")
            if kind is int and (isinstance(v, bool) or not isinstance(v, numbers.Integral)):
                raise TypeError(f"{f.name} must be an int, got {v!r} ({type(v).__name__})")

    def _check_choices(self) -> None:
        if self.init not in ("paper", "kaiming"):
            raise ValueError(f"init must be 'paper' or 'kaiming', got {self.init!r}")
        if self.dataset not in ("clipart", "imagefolder"):
            raise ValueError(f"dataset must be 'clipart' (offline, shipped) or 'imagefolder', got {self.dataset!r}")
        if self.dataset == "imagefolder" and not self.data_root:
            raise ValueError("dataset 'imagefolder' needs --data-root, a folder with train/ and val/ inside")
        if self.amp not in ("none", "bf16"):
            raise ValueError(f"amp must be 'none' or 'bf16', got {self.amp!r}")
        if self.device != "auto":
            _parse_device(self.device)

    def _check_counts(self) -> None:
        for name in ("epochs", "batch_size", "renders", "input_size", "fc_units"):
            v = getattr(self, name)
            if v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be an int >= 0 (steps; 0 = epoch ends only), "
                             f"got {self.checkpoint_every!r}")
        for name, why in (("workers", "DataLoader worker processes; 0 = load in the main process"),
                          ("lr_patience", "epochs without a better validation loss before annealing")):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be an int >= 0 ({why}), got {getattr(self, name)!r}")
        if not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"seed must be an int in [0, 2**32) (numpy's range), got {self.seed!r}")

    def _check_reals(self) -> None:
        # Real-valued knobs: (name, low, low included?, high, high included?, what it means)
        for name, lo, lo_in, hi, hi_in, why in _REAL_KNOBS:
            v = getattr(self, name)
            if not ((v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)):
                bounds = f"{'[' if lo_in else '('}{lo}, {'inf' if hi == math.inf else hi}{']' if hi_in else ')'}"
                finite = "a finite number in " if hi == math.inf else "in "
                raise ValueError(f"{name} must be {finite}{bounds} ({why}), got {v!r}")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr!r}) must not exceed lr ({self.lr!r}): annealing would "
                             f"raise the learning rate to min_lr; lower --min-lr")

    def lr_step_epochs(self) -> list[int]:
        """The epochs after which a fixed schedule anneals (``lr_steps``); empty: anneal on a plateau."""
        try:
            steps = [int(v) for v in self.lr_steps.split(",")] if self.lr_steps.strip() else []
        except ValueError:
            steps = None
        if steps is None or any(not 1 <= s < self.epochs for s in steps) or steps != sorted(set(steps)):
            raise ValueError(f"lr_steps must be increasing epochs in 1..{self.epochs - 1}, comma-separated "
                             f"(e.g. '16,21'), or '' to anneal on a plateau; got {self.lr_steps!r}")
        return steps

    def model_options(self) -> dict:
        """The size-ablation options for :func:`zfviz.models.build_model` (empty for the paper's net)."""
        options = {}
        try:
            if self.drop_layers.strip():
                options["drop"] = tuple(int(v) for v in self.drop_layers.split(","))
            if self.conv_channels.strip():
                options["conv_channels"] = tuple(int(v) for v in self.conv_channels.split(","))
        except ValueError:
            raise ValueError(f"drop_layers and conv_channels are comma-separated ints, got "
                             f"{self.drop_layers!r} and {self.conv_channels!r}") from None
        if self.fc_units != 4096:
            options["fc_units"] = self.fc_units
        return options


# dataclass writes __init__; wrapped, it takes the field's old name too (image_size=, with a DeprecationWarning).
TrainConfig.__init__ = renamed_keyword("image_size", "input_size")(TrainConfig.__init__)


def _parse_device(name: str) -> torch.device:
    if not isinstance(name, str):
        raise TypeError(f"device must be a string ('auto', 'cpu', 'cuda', 'cuda:1' or 'mps'), got {name!r}")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got {name!r}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps', got {name!r}")
    return device


def pick_device(name: str = "auto") -> torch.device:
    """cuda if present, else mps, else cpu; an explicit name must exist (no silent fall-back).

    Explained in the chapter "Training ZFNet" (training on a GPU). ``name``: ``"auto"``, ``"cpu"``,
    ``"cuda"``, ``"cuda:<index>"`` or ``"mps"``; one that this machine lacks raises ``ValueError``.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    device = _parse_device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} asked for, but torch sees {torch.cuda.device_count()} CUDA GPU(s), "
                             f"numbered from 0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no Apple GPU (mps); use --device cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def renormalize_filters_(model: nn.Module, max_rms: float = 0.1, count: bool = True) -> int | None:
    """Scale every conv filter whose RMS exceeds ``max_rms`` back to ``max_rms`` (paper §3).

    Explained in the chapter "Training ZFNet". A filter is one output channel's weights
    (in_channels x k x k); RMS = sqrt(mean(w^2)). Returns how many filters were rescaled, or None
    with ``count=False``, which spares a GPU the synchronisation that counting costs.
    ``max_rms=0`` turns renormalisation off (the run of Fig. 6a) and rescales nothing; it must be a
    finite number >= 0.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(max_rms, bool) or not isinstance(max_rms, numbers.Real):
        raise TypeError(f"max_rms must be a number (0.1 in the paper; 0 = off), got {max_rms!r}")
    if not 0 <= max_rms < math.inf:
        raise ValueError(f"max_rms must be >= 0 and finite (0.1 in the paper; 0 = off), got {max_rms!r}")
    if not isinstance(count, bool):
        raise TypeError(f"count must be True or False, got {count!r}")
    if max_rms == 0:
        return 0 if count else None
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            w = m.weight
            rms = w.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
            over = rms > max_rms * (1 + 1e-6)   # tolerance: a filter just rescaled may round above
            w.mul_(torch.where(over, max_rms / rms, torch.ones_like(rms)))
            if count:
                total += int(over.sum())
    return total if count else None


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               max_filter_rms: float = 0.1, amp: str = "none", count: bool = True):
    """One update of the §3 recipe: forward, cross-entropy, backward, SGD step, filter renormalisation.

    Explained in the chapter "Training ZFNet". ``x`` (N, 3, S, S) preprocessed, ``y`` (N,) class indices;
    ``amp="bf16"`` runs the forward pass under bfloat16 autocast (the loss in float32). Returns
    ``(loss, logits, rescaled)``: the loss (a 0-dim tensor), the logits (N, C), both detached, and the
    number of filters renormalised (None with ``count=False``). Nothing here waits for the GPU
    unless ``count`` is True.
    """
    if amp not in ("none", "bf16"):
        raise ValueError(f"amp must be 'none' or 'bf16', got {amp!r}")
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), logits.detach(), renormalize_filters_(model, max_filter_rms, count)


@torch.no_grad()
def evaluate(model: nn.Module, preprocess: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 256, device: torch.device | str | None = None) -> dict:
    """Top-1 accuracy and mean cross-entropy of ``model`` on images (N, 3, S, S) in [0, 1].

    Explained in the chapter "Training ZFNet". ``labels`` (N,) are class indices in 0..C-1 for a model
    with C outputs; bad shapes, types or values raise TypeError/ValueError naming the argument. Computed on
    ``device``, by default the model's (``zfviz.layers.model_device``), in batches of ``batch_size``.
    """
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError(f"images and labels must be torch.Tensors, got {type(images).__name__} and "
                        f"{type(labels).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images must be float pixels in [0, 1], got dtype {images.dtype}"
                        + (" (convert with images.float() / 255)" if images.dtype == torch.uint8 else ""))
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, S, S), got shape {tuple(images.shape)}")
    if labels.dim() != 1 or labels.dtype in (torch.bool,) or labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be a 1-D tensor of class indices (ints), got shape {tuple(labels.shape)} "
                        f"dtype {labels.dtype}")
    if len(labels) != len(images) or len(labels) == 0:
        raise ValueError(f"images and labels must be as many and not none: got {len(images)} images, "
                         f"{len(labels)} labels")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    lo, hi = float(images.min()), float(images.max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"images must be pixels in [0, 1] (preprocess is applied here), got values in "
                         f"[{lo:.4g}, {hi:.4g}]")
    device = layers.model_device(model) if device is None else device
    model.eval()
    correct, loss, n = 0, 0.0, len(labels)
    for s in range(0, n, batch_size):
        x = preprocess(images[s:s + batch_size].to(device))
        y = labels[s:s + batch_size].to(device)
        logits = model(x)
        if s == 0 and not (0 <= int(labels.min()) and int(labels.max()) < logits.shape[1]):
            raise ValueError(f"labels must be class indices in 0..{logits.shape[1] - 1} (the model has "
                             f"{logits.shape[1]} outputs), got values in {int(labels.min())}..{int(labels.max())}")
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    return {"accuracy": correct / n, "loss": loss / n}


# ------------------------------------------------------------------------------------------
# The loop.
# ------------------------------------------------------------------------------------------

def _datasets(cfg: TrainConfig):
    if cfg.dataset == "imagefolder":
        if not cfg.data_root:
            raise ValueError("dataset 'imagefolder' needs --data-root, a folder with train/ and val/ inside")
        root = Path(cfg.data_root)
        return (zdata.image_folder(root / "train", cfg.input_size, train=True),
                zdata.image_folder(root / "val", cfg.input_size))
    if cfg.dataset != "clipart":
        raise ValueError(f"training reads dataset 'clipart' or 'imagefolder', got {cfg.dataset!r}")
    train_set = zdata.load_dataset(cfg.dataset, "train", input_size=cfg.input_size,
                                   renders=cfg.renders, seed=cfg.seed)
    val_set = zdata.load_dataset(cfg.dataset, "val", input_size=cfg.input_size, renders=4, seed=cfg.seed)
    return train_set, val_set


def _fit_preprocess(cfg: TrainConfig, train_set) -> zdata.Preprocess:
    """Mean image and channel std of the training images (of up to 1,000 evenly spread centre crops);
    ``input_scale`` divides the std, so the network's input is that many times larger."""
    if hasattr(train_set, "tensors"):
        pre = zdata.Preprocess.fit(train_set.tensors()[0])
    else:
        plain = zdata.image_folder(Path(cfg.data_root) / "train", cfg.input_size)
        picks = range(0, len(plain), max(1, len(plain) // 1000))
        pre = zdata.Preprocess.fit(torch.stack([plain[i][0] for i in picks]))
    if cfg.input_scale != 1:
        pre = zdata.Preprocess(pre.mean, pre.std.flatten() / cfg.input_scale)
    return pre


def _evaluate_set(net, preprocess, dataset, device, workers: int) -> dict:
    """:func:`evaluate` over a whole data set, held in memory when it can be, else in batches."""
    from torch.utils.data import DataLoader
    if hasattr(dataset, "tensors"):
        return evaluate(net, preprocess, *dataset.tensors(), device=device)
    loss, correct, n = 0.0, 0.0, 0
    for x, y in DataLoader(dataset, batch_size=256, num_workers=workers):
        r = evaluate(net, preprocess, x, y, device=device)
        loss, correct, n = loss + r["loss"] * len(y), correct + r["accuracy"] * len(y), n + len(y)
    return {"accuracy": correct / n, "loss": loss / n}


def snapshot_epochs(spec: str, epochs: int) -> list[int]:
    """The epochs after which a run records Fig. 4 snapshots: ``"paper"`` scales the paper's epochs
    (1, 2, 5, 10, 20, 30, 40, 64 of 70) to ``epochs``; otherwise a comma-separated list; ``""`` none.

    Explained in the chapter "Training ZFNet" (feature evolution, Fig. 4).
    """
    if not isinstance(spec, str):
        raise TypeError(f"snapshot_epochs must be a string: 'paper', a list like '1,2,5', or '' for none; got {spec!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ValueError(f"epochs must be a positive int (the run's length), got {epochs!r}")
    if not spec.strip():
        return []
    if spec == "paper":
        return sorted({min(epochs, max(1, round(e * epochs / 70))) for e in PAPER_SNAPSHOT_EPOCHS})
    try:
        chosen = sorted({int(v) for v in spec.split(",")})
    except ValueError:
        raise ValueError(f"snapshot_epochs must be 'paper' or a list like '1,2,5'; got {spec!r}") from None
    if not all(1 <= e <= epochs for e in chosen):
        raise ValueError(f"snapshot_epochs must lie in 1..{epochs} (the run's epochs); got {spec!r}")
    return chosen


# What may differ between a checkpoint's train_config and a resumed run's: where and how fast it runs, how
# long (epochs), and when it records snapshots. Everything else changes the run itself and is refused.
RESUME_CHANGEABLE = ("epochs", "out", "workers", "device", "checkpoint_every", "compile", "channels_last",
                     "data_root", "snapshot_epochs")


def _check_resumable(resume: Path, state: dict, cfg: TrainConfig) -> None:
    """Refuse a resume that would not continue the checkpoint's run (see RESUME_CHANGEABLE)."""
    info = state.get("info") if isinstance(state.get("info"), dict) else {}
    if state.get("optimizer") is None or state.get("scheduler") is None:
        raise CheckpointError(f"{resume} holds no optimiser state: it is a network to read (a shipped model "
                              f"or best.pt), not a run to resume; resume from the run's last.pt")
    stored = info.get("train_config")
    if not isinstance(stored, dict):
        raise CheckpointError(f"{resume} records no train_config, so a resume cannot be checked against it; "
                              f"resume only from a last.pt written by zfviz.train")
    stored = checkpoints.upgrade_train_config(stored)       # a run of before issue 17 stored image_size
    changed = [(f.name, stored.get(f.name, f.default), getattr(cfg, f.name)) for f in fields(cfg)
               if f.name not in RESUME_CHANGEABLE and stored.get(f.name, f.default) != getattr(cfg, f.name)]
    if changed:
        diff = ", ".join(f"{name} {old!r} -> {new!r}" for name, old, new in changed)
        flags = " ".join(f"--{name.replace('_', '-')} {shlex.quote(str(old))}" if not isinstance(old, bool) else
                         f"--{'' if old else 'no-'}{name.replace('_', '-')}" for name, old, _ in changed)
        raise ValueError(f"cannot resume {resume} with other settings than it was trained with: {diff} "
                         f"(checkpoint -> now). Resume with the checkpoint's values ({flags}), or start a new "
                         f"run without --resume. Only {', '.join(RESUME_CHANGEABLE)} may change on resume.")
    epoch, step = state["epoch"], info.get("step", 0)
    if cfg.epochs < epoch + (1 if step else 0):
        raise ValueError(f"{resume} has trained {epoch} epoch(s){f' and {step} steps of the next' if step else ''}; "
                         f"epochs={cfg.epochs} would end the run before that. Pass --epochs "
                         f"{epoch + 1} or more to continue it")


def _check_same_data(resume: Path, state: dict, train_set) -> None:
    """Refuse a resume on other training images than the checkpoint's (another --data-root, say)."""
    info = state["info"]
    classes = info.get("classes")
    if classes is not None and list(classes) != list(train_set.classes):
        raise ValueError(f"{resume} was trained on the classes {list(classes)[:12]}, but the data set now has "
                         f"{list(train_set.classes)[:12]}; resume on the same data (--data-root)")
    size = info.get("train_size")
    if size is not None and size != len(train_set):
        raise ValueError(f"{resume} was trained on {size} training images per epoch, but the data set now has "
                         f"{len(train_set)}: the epoch's order would differ; resume on the same data")


def _resume_best(out: Path, resume_dir: Path, history: list, start: int, step: int, save_now) -> None:
    """Make ``out/best.pt`` hold the epoch of best validation accuracy in ``history`` (up to ``start``), or refuse.

    Taken from the checkpoint's folder when ``out`` is a new one; written now from the checkpoint's weights
    (``save_now``) when that epoch is ``start`` itself."""
    if not history:
        return
    row = max(history, key=lambda h: h["val_accuracy"])   # the first of equals, as the loop keeps it
    best = row["epoch"]

    def holds_best(path: Path) -> bool:
        if not path.is_file():
            return False
        state = checkpoints.read_checkpoint(path)
        return state["epoch"] == best and state["info"].get("history") == history[:best]

    path, theirs = out / "best.pt", resume_dir / "best.pt"
    if holds_best(path):
        return
    if theirs.resolve() != path.resolve() and holds_best(theirs):
        data = theirs.read_bytes()
        checkpoints.publish(path, lambda tmp: tmp.write_bytes(data))
    elif best == start and step == 0:
        save_now()
    else:
        raise ValueError(f"cannot resume into {out}: best.pt should hold epoch {best} (validation accuracy "
                         f"{row['val_accuracy']:.4f}, the best so far), but "
                         f"{'it holds another' if path.is_file() else 'it is missing'} and {theirs} does not "
                         f"either; copy the run's best.pt and best.pt.sha256 into {out}, or start a new run")


def _filter_rms(net: nn.Module) -> list[float]:
    """RMS of each first-layer filter: the history of Fig. 6a (a few filters dominating) costs 24-96 numbers."""
    w = next(m for m in net.modules() if isinstance(m, nn.Conv2d)).weight.detach()
    return [round(v, 6) for v in w.float().pow(2).mean(dim=(1, 2, 3)).sqrt().tolist()]


class _device_batches:
    """Batches (images, labels) of an in-memory set's current epoch, indexed on the device."""

    def __init__(self, dataset, order: list[int], batch_size: int, device: torch.device):
        self.images = dataset.images.to(device, non_blocking=True)        # uint8: 4x less to move than float
        self.labels = dataset.labels.to(device, non_blocking=True)
        self.batches = torch.tensor(order, dtype=torch.long).split(batch_size) if order else ()

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for idx in self.batches:
            idx = idx.to(self.images.device, non_blocking=True)
            yield self.images[idx].float() / 255, self.labels[idx]


def _distributed() -> tuple[int, int]:
    """(rank, world size); under torchrun (WORLD_SIZE > 1) joins the process group first."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))   # one GPU per process
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


def _all_sum(values: list[float], world: int) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    torch.distributed.all_reduce(t)
    return t.tolist()


@dataclass
class TrainingRun:
    """Everything a training run holds between its steps; what :func:`train`'s callbacks are given.

    Explained in the chapter "Training ZFNet". ``net`` is the network (``model`` the same, wrapped for
    DistributedDataParallel or torch.compile when asked); ``start``/``start_step``/``sums`` say where a resumed
    run continues (epoch, step inside it, and that epoch's running loss, correct, seen, rescaled).

    :func:`train`'s ``callbacks`` are objects with any of the methods ``start(run)`` (after set-up, and a
    resume's state is loaded), ``resume(run, resume_dir)`` (on resuming, before best.pt is checked) and
    ``epoch_end(run, epoch)`` (main process, after each epoch, before best.pt and last.pt are written).
    """
    cfg: TrainConfig
    device: torch.device
    rank: int
    world: int
    train_set: object
    val_set: object
    net: nn.Module
    model: nn.Module
    preprocess: nn.Module
    opt: torch.optim.Optimizer
    sched: object
    sampler: object
    out: Path
    run_info: dict
    conv1_start: torch.Tensor
    history: list = field(default_factory=list)
    start: int = 0
    start_step: int = 0
    sums: tuple = (0.0, 0, 0, 0)

    @property
    def main_process(self) -> bool:
        return self.rank == 0

    @property
    def first_conv(self) -> nn.Conv2d:
        return next(m for m in self.net.modules() if isinstance(m, nn.Conv2d))


def _check_train_args(cfg, resume, allow_unverified, callbacks) -> list:
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a zfviz.train.TrainConfig, got {type(cfg).__name__}")
    cfg.validate()                   # again: fields may have been set after construction
    if not isinstance(allow_unverified, bool):
        raise TypeError(f"allow_unverified must be True or False, got {allow_unverified!r}")
    if resume is not None and not isinstance(resume, (str, os.PathLike)):
        raise TypeError(f"resume must be a checkpoint path (str or pathlib.Path) or None, got {type(resume).__name__}")
    callbacks = list(callbacks)
    if snapshot_epochs(cfg.snapshot_epochs, cfg.epochs) and not any(
            getattr(c, "records_snapshots", False) for c in callbacks):
        raise ValueError(f"snapshot_epochs={cfg.snapshot_epochs!r} asks for Fig. 4 snapshots: pass "
                         f"callbacks=[zfviz.evolution.Fig4Snapshots()] (python -m zfviz.train does), or "
                         f"snapshot_epochs='' for none")
    return callbacks


def _pick_run_device(cfg: TrainConfig, world: int) -> torch.device:
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of processes ({world})")
    device = pick_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _build_network(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The network, initialised as ``cfg`` says (from the seed: the same on a resume)."""
    net = build_model(cfg.arch, num_classes=num_classes, width=cfg.width,
                      input_size=cfg.input_size, **cfg.model_options())
    (init_kaiming_ if cfg.init == "kaiming" else init_paper_)(net)
    if cfg.conv1_std > 0:
        init_paper_(next(m for m in net.modules() if isinstance(m, nn.Conv2d)), cfg.conv1_std)
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.p = cfg.dropout
    return net


def _set_up(cfg: TrainConfig, rank: int, world: int, device: torch.device) -> TrainingRun:
    """Data, network, input transform, optimiser and schedule of a fresh run (the order keeps the RNG's)."""
    from torch.utils.data import DistributedSampler
    seed_everything(cfg.seed)
    train_set, val_set = _datasets(cfg)
    net = _build_network(cfg, len(train_set.classes))
    conv1_start = next(m for m in net.modules() if isinstance(m, nn.Conv2d)).weight.detach().clone()
    preprocess = _fit_preprocess(cfg, train_set)
    net.to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    preprocess.to(device)
    if rank:
        torch.manual_seed(cfg.seed + rank)     # other dropout masks in other processes; rank 0 as ever
    model = nn.parallel.DistributedDataParallel(net) if world > 1 else net
    if cfg.compile:
        model = torch.compile(model)
    # DistributedSampler's order is randperm(seed + epoch); this seed keeps the order of earlier runs.
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed * 100_003)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.lr_factor,
                                                       patience=cfg.lr_patience, min_lr=cfg.min_lr)
    run_info = {"classes": train_set.classes, "train_config": asdict(cfg), "train_size": len(train_set)}
    return TrainingRun(cfg, device, rank, world, train_set, val_set, net, model, preprocess, opt, sched, sampler,
                       Path(cfg.out), run_info, conv1_start)


def _restore(run: TrainingRun, resume: Path, resume_state: dict) -> None:
    """Load a checkpoint's weights, input transform, optimiser, schedule, RNG and place into ``run``."""
    _check_same_data(resume, resume_state, run.train_set)
    _, pre, state = checkpoints.apply_checkpoint(resume, resume_state, run.net)
    run.preprocess.load_state_dict(pre.state_dict())
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    run.history, run.start = state["info"].get("history", []), state["epoch"]
    run.start_step, run.sums = state["info"].get("step", 0), tuple(state["info"].get("epoch_sums", run.sums))


def _resume_outputs(run: TrainingRun, resume: Path, callbacks: list) -> None:
    """Make the run's folder hold what the checkpoint's does (callbacks' files, best.pt), or refuse."""
    for c in callbacks:
        if hasattr(c, "resume"):
            c.resume(run, resume.parent)
    _resume_best(run.out, resume.parent, run.history, run.start, run.start_step, lambda: save_checkpoint(
        run.out / "best.pt", run.net, run.preprocess, epoch=run.start, history=run.history, **run.run_info))
    print(f"resumed from {resume} at epoch {run.start}, step {run.start_step}"
          + ("; nothing left to train" if run.start >= run.cfg.epochs else ""), flush=True)


def _epoch_batches(run: TrainingRun, epoch: int, first: int):
    """This process's batches of ``epoch``, less the ``first`` steps a resumed run has done already."""
    from torch.utils.data import DataLoader
    cfg, per_process = run.cfg, run.cfg.batch_size // run.world
    if hasattr(run.train_set, "set_epoch"):
        run.train_set.set_epoch(epoch)                        # fresh composites for this epoch
    run.sampler.set_epoch(epoch)                              # and a fresh order
    order = list(run.sampler)[first * per_process:]
    if hasattr(run.train_set, "images"):
        # An in-memory set (the clip art): batches come straight from the epoch's images, moved to the
        # device once per epoch, so a GPU is not left waiting on per-image Python indexing and collation.
        # Same batches and values as the DataLoader path (image = uint8 / 255).
        return _device_batches(run.train_set, order, per_process, run.device)
    # Its own generator: a DataLoader draws a seed when iterated, which must not move the global
    # RNG that dropout uses (a resumed run would then drop other units than the original).
    return DataLoader(run.train_set, batch_size=per_process, sampler=order, num_workers=cfg.workers,
                      generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))


def _train_epoch(run: TrainingRun, epoch: int, progress: bool) -> tuple:
    """One epoch of updates; returns this process's (loss sum, correct, seen, filters rescaled)."""
    from tqdm.auto import tqdm
    cfg, device = run.cfg, run.device
    run.model.train()
    first = run.start_step if epoch == run.start else 0       # > 0 only when resuming mid-epoch
    loss_sum, correct, seen, rescaled = run.sums if epoch == run.start else (0.0, 0, 0, 0)
    loader = _epoch_batches(run, epoch, first)
    n_steps = first + len(loader)
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", initial=first, total=n_steps,
               disable=not (progress and run.main_process), leave=False)
    for k, (x, y) in enumerate(bar, start=first):
        x, y = run.preprocess(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss, logits, n = train_step(run.model, run.opt, x, y, cfg.max_filter_rms, cfg.amp)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"training diverged: the loss is {loss_value} at epoch {epoch + 1}, step {k + 1} of {n_steps} "
                f"(lr {run.opt.param_groups[0]['lr']:g}); the checkpoints hold the state before it. Lower the "
                f"learning rate (e.g. --lr {cfg.lr / 10:g}) and start a new run")
        rescaled, loss_sum, seen = rescaled + n, loss_sum + loss_value * len(y), seen + len(y)
        correct += (logits.argmax(1) == y).sum().item()
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        if run.main_process and cfg.checkpoint_every and (k + 1) % cfg.checkpoint_every == 0 and k + 1 < n_steps:
            save_checkpoint(run.out / "last.pt", run.net, run.preprocess, run.opt, run.sched, epoch, step=k + 1,
                            epoch_sums=[loss_sum, correct, seen, rescaled], history=run.history, **run.run_info)
    return loss_sum, correct, seen, rescaled


def _anneal(run: TrainingRun, epoch: int, val_loss: float) -> None:
    # The paper anneals when the validation *error* plateaus; on 320 validation images the error
    # jumps by a few points from epoch to epoch, so we watch the smoother validation loss.
    cfg = run.cfg
    if cfg.lr_step_epochs():   # a fixed schedule: the same annealing epochs for runs that are to be compared
        if epoch + 1 in cfg.lr_step_epochs():
            for group in run.opt.param_groups:
                group["lr"] = max(group["lr"] * cfg.lr_factor, cfg.min_lr)
    else:
        run.sched.step(val_loss)


def _epoch_row(run: TrainingRun, epoch: int, sums: tuple, t0: float) -> dict:
    """Validate, anneal, and the epoch's line of the history."""
    # Every process saw its share of the epoch: add up the counts (filters are rescaled alike in all).
    loss_sum, correct, seen, rescaled = _all_sum(list(sums), run.world)
    correct, seen, rescaled = int(correct), int(seen), int(rescaled) // run.world
    val = _evaluate_set(run.net, run.preprocess, run.val_set, run.device, run.cfg.workers)
    _anneal(run, epoch, val["loss"])
    weight = run.first_conv.weight.detach()
    return {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
            "val_loss": val["loss"], "val_accuracy": val["accuracy"], "lr": run.opt.param_groups[0]["lr"],
            "filters_rescaled": rescaled, "conv1_rms": _filter_rms(run.net),
            "conv1_neighbour_correlation": round(neighbour_correlation(weight).mean().item(), 4),
            "conv1_moved": round(((weight - run.conv1_start).norm() / run.conv1_start.norm()).item(), 4),
            "time_s": time.time() - t0}


def _write_epoch(run: TrainingRun, epoch: int, row: dict, best_accuracy: float, callbacks: list) -> float:
    """Print the epoch; callbacks (snapshots), then best.pt, then last.pt and history.json. Returns the best
    validation accuracy so far. Killed in between, a resume from the previous last.pt redoes this epoch and
    writes them all again (the same), so none is ever lost."""
    print(f"epoch {epoch + 1:3d}  train loss {row['train_loss']:.3f} acc {row['train_accuracy']:.3f}  "
          f"val loss {row['val_loss']:.3f} acc {row['val_accuracy']:.3f}  lr {row['lr']:.0e}  "
          f"rescaled {row['filters_rescaled']}  {row['time_s']:.0f}s", flush=True)
    for c in callbacks:
        if hasattr(c, "epoch_end"):
            c.epoch_end(run, epoch + 1)
    if row["val_accuracy"] > best_accuracy:
        best_accuracy = row["val_accuracy"]
        save_checkpoint(run.out / "best.pt", run.net, run.preprocess, epoch=epoch + 1, history=run.history,
                        **run.run_info)
    save_checkpoint(run.out / "last.pt", run.net, run.preprocess, run.opt, run.sched, epoch + 1,
                    history=run.history, **run.run_info)
    (run.out / "history.json").write_text(json.dumps(run.history, indent=1) + "\n")
    return best_accuracy


def train(cfg: TrainConfig, resume: str | Path | None = None, progress: bool = True, *,
          allow_unverified: bool = False, callbacks=()) -> dict:
    """Train a network with the paper's recipe; returns the history and final metrics.

    Explained in the chapter "Training ZFNet". Writes ``<out>/last.pt`` after every epoch, and every
    ``checkpoint_every`` steps inside one (atomic, with sha256), ``<out>/best.pt`` (the epoch of best
    validation accuracy so far; no optimiser state) and ``<out>/history.json``; ``resume`` continues from
    such a checkpoint exactly, also from the middle of an epoch: the epoch's images and order depend only
    on (seed, epoch), and the checkpoint holds the step and the RNG state.

    A resume must be the same run: the config may differ from the checkpoint's ``train_config`` only in
    ``RESUME_CHANGEABLE`` (epochs, to extend a run; out, workers, device, checkpoint_every, compile,
    channels_last, data_root for the same images; snapshot_epochs) -- anything else raises ValueError
    naming the fields. The checkpoint needs its ``.sha256`` unless ``allow_unverified=True``. Fig. 4
    snapshots and best.pt are written before last.pt, so a kill between them loses nothing: the resumed
    run redoes that epoch and writes them again; on resume, snapshots.pt and best.pt must be complete up
    to the checkpoint (copied from the checkpoint's folder into a new ``out``), else ValueError. A non-finite
    loss stops the run with ``FloatingPointError`` naming the epoch and step.

    Under ``torchrun --nproc_per_node N`` it trains with ``DistributedDataParallel``: each process takes
    1/N of every global batch of ``batch_size`` images through a ``DistributedSampler``, gradients are
    averaged, and process 0 alone prints and writes checkpoints. With one process the sampler gives the
    same order as ever, so a run is the same whatever the number of processes, up to float rounding
    and dropout masks (``dropout=0`` removes the latter). ``callbacks``: see :class:`TrainingRun`; Fig. 4
    snapshots (``cfg.snapshot_epochs``) need ``callbacks=[zfviz.evolution.Fig4Snapshots()]``, else ValueError.
    """
    callbacks = _check_train_args(cfg, resume, allow_unverified, callbacks)
    rank, world = _distributed()
    device = _pick_run_device(cfg, world)
    if resume is not None:       # checked before the data are built: a refusal costs nothing
        resume, resume_state = Path(resume), checkpoints.read_checkpoint(resume, allow_unverified=allow_unverified)
        _check_resumable(resume, resume_state, cfg)
    if rank == 0:
        print(f"device: {device}  (torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
              f"{world} process{'es' if world > 1 else ''})", flush=True)
    run = _set_up(cfg, rank, world, device)
    if resume is not None:
        _restore(run, resume, resume_state)
    for c in callbacks:
        if hasattr(c, "start"):
            c.start(run)
    if resume is not None and run.main_process:
        _resume_outputs(run, resume, callbacks)
    best_accuracy = max((h["val_accuracy"] for h in run.history), default=-math.inf)
    t0 = time.time() - (run.history[-1]["time_s"] if run.history else 0.0)
    for epoch in range(run.start, cfg.epochs):
        run.history.append(row := _epoch_row(run, epoch, _train_epoch(run, epoch, progress), t0))
        if run.main_process:
            best_accuracy = _write_epoch(run, epoch, row, best_accuracy, callbacks)
    return {"history": run.history, "model": run.net, "preprocess": run.preprocess}


if __name__ == "__main__":
    # `python -m zfviz.train`: the command line lives in zfviz.cli, above the modules it wires together
    # (training here, the Fig. 4 recorder in zfviz.evolution), so that this module imports neither.
    from zfviz.cli import train_main
    train_main()
