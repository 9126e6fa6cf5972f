"""Checkpoints that can be trusted: written atomically, hashed, loaded with ``weights_only=True``.

Explained in the chapter "Training ZFNet" (book/training); the book's shipped networks are loaded in "The network"
(book/network). A checkpoint holds the network's config (``zfviz.models.build_model``'s arguments), its weights,
the input transform (``zfviz.data.Preprocess``) and, for resuming, the optimiser, scheduler, epoch and RNG state.
Its sha256 is checked before ``torch.load`` reads a byte: from ``path.sha256`` beside it (written by
:func:`save_checkpoint`) or, for the weights the book ships, from data/MANIFEST.tsv.
"""
from __future__ import annotations

import numbers
import os
import re
from pathlib import Path

import torch
from torch import nn

from . import data
from .models import build_model

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "load_shipped_checkpoint", "load_teaching_zfnet",
           "TEACHING_WEIGHTS", "CHECKPOINT_FORMAT", "publish", "load_verified", "read_checkpoint", "apply_checkpoint",
           "recorded_hashes", "upgrade_train_config"]

CHECKPOINT_FORMAT = "zfviz-checkpoint-1"



class CheckpointError(ValueError):
    """A checkpoint is corrupt, unverifiable, of another format, or for another architecture.

    Explained in the chapter "Training ZFNet"."""


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_SIDECAR_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](\S.*)")      # sha256sum's "<hash>  <file>" (or " *<file>")


def save_checkpoint(path: str | Path, model: nn.Module, preprocess: nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None, epoch: int = 0,
                    **info) -> str:
    """Save model config + weights (+ optimiser, scheduler, epoch, RNG state, extra info).

    Explained in the chapter "Training ZFNet". The file is written to ``path.tmp`` and renamed, so
    a crash never leaves a half-written checkpoint; its sha256 goes to ``path.sha256`` (the format of
    ``sha256sum``), which :func:`load_checkpoint` requires. Returns it.
    While the rename happens the sidecar lists both the old and the new hash, so a kill between the
    two renames still leaves a pair that verifies.
    """
    if not isinstance(model, nn.Module) or not isinstance(getattr(model, "config", None), dict):
        raise TypeError(f"model must be a network built by zfviz.models (it carries .config), got "
                        f"{type(model).__name__}")
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
        raise ValueError(f"epoch must be an int >= 0 (epochs completed), got {epoch!r}")
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": dict(model.config),
        "model": model.state_dict(),
        "preprocess": preprocess.state_dict() if preprocess is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch),
        "rng": {"torch": torch.get_rng_state()},   # dropout draws from it; shuffling is seeded per epoch
        "info": info,
    }
    return publish(Path(path), lambda tmp: torch.save(state, tmp))


def upgrade_train_config(config: dict) -> dict:
    """A stored ``train_config`` (a checkpoint's, or a shipped record's under data/) under today's names.

    Explained in the chapter "Training ZFNet" (book/training). Runs before issue 17 called the input side
    ``image_size``; it is ``input_size`` now, as in ``zfviz.models``. Returns a copy, keys in their order.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a train_config dict, got {type(config).__name__}")
    if "image_size" in config and "input_size" in config:
        raise CheckpointError(f"train_config holds both input_size and its old name image_size: {config}")
    return {("input_size" if k == "image_size" else k): v for k, v in config.items()}


def publish(path: Path, write) -> str:
    """Write a file through ``write(tmp)`` and rename it to ``path``, with its sha256 in ``path.sha256``.

    Explained in the chapter "Training ZFNet" (book/training).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    digest = data.sha256_file(tmp)
    side = path.with_name(path.name + ".sha256")
    old = side.read_text() if side.is_file() and path.is_file() else ""
    _write_atomic(side, f"{digest}  {path.name}\n" + old)   # old or new file: both verify
    os.replace(tmp, path)
    _write_atomic(side, f"{digest}  {path.name}\n")         # now only the new one
    return digest


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def recorded_hashes(path: Path) -> set[str] | str:
    """The hashes ``path.sha256`` accepts for ``path``, or why there are none ("missing", "empty").
    Explained in the chapter "Training ZFNet" (book/training).
    A line that is not ``<64 hex digits>  <this file's name>`` raises CheckpointError naming the file."""
    side = path.with_name(path.name + ".sha256")
    if not side.is_file():
        return f"{side.name} is missing"
    try:
        text = side.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"the sha256 file {side} cannot be read ({type(e).__name__}: {e}); "
                              f"restore it, or delete it and pass allow_unverified=True") from e
    hashes = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _SIDECAR_LINE.fullmatch(line.strip())
        if match is None:
            raise CheckpointError(f"the sha256 file {side} is malformed at line {number}: {line[:80]!r}; each "
                                  f"line must be '<64 hex digits>  {path.name}', as save_checkpoint and "
                                  f"sha256sum write it")
        if Path(match.group(2)).name != path.name:
            raise CheckpointError(f"the sha256 file {side} records, at line {number}, the hash of "
                                  f"{match.group(2)!r}, not of {path.name!r}: it belongs to another file")
        hashes.add(match.group(1).lower())
    return hashes or f"{side.name} is empty"


def load_verified(path: Path, what: str, accepted: set[str] | str | None, fix: str):
    """``torch.load(path, weights_only=True)`` once the file's sha256 is one of ``accepted``.
    Explained in the chapter "Training ZFNet" (book/training).

    ``accepted`` is a set of hashes, a string saying why none is recorded (refused, with ``fix`` as the way out),
    or None when the caller explicitly allowed an unchecked load. Checkpoints and snapshot files share it."""
    if isinstance(accepted, str):
        raise CheckpointError(f"{what} {path} has no recorded sha256 ({accepted}), so its integrity cannot be "
                              f"checked; {fix}")
    if accepted is not None:
        actual = data.sha256_file(path)
        if actual not in accepted:
            raise CheckpointError(f"{what} {path} is corrupt: sha256 {actual[:16]}... but "
                                  f"{sorted(accepted)[0][:16]}... was recorded; not loading it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated zip, a pickle with code in it, ...
        raise CheckpointError(f"{what} {path} cannot be read safely ({type(e).__name__}: {e})") from e


def read_checkpoint(path, expected_sha256=None, allow_unverified: bool = False) -> dict:
    """The state dict of a checkpoint file, after its sha256 is checked (see :func:`load_checkpoint`).

    Explained in the chapter "Training ZFNet" (book/training).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a checkpoint file name (str or pathlib.Path), got {type(path).__name__}")
    path = Path(path)
    if expected_sha256 is not None:
        if not isinstance(expected_sha256, str):
            raise TypeError(f"expected_sha256 must be a hex string (64 digits) or None, got "
                            f"{type(expected_sha256).__name__}")
        if not _SHA256.fullmatch(expected_sha256):
            raise ValueError(f"expected_sha256 must be 64 hex digits (a sha256), got {expected_sha256!r}")
    if not isinstance(allow_unverified, bool):
        raise TypeError(f"allow_unverified must be True or False, got {allow_unverified!r}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    accepted = {expected_sha256.lower()} if expected_sha256 is not None else recorded_hashes(path)
    if isinstance(accepted, str) and allow_unverified:
        accepted = None
    state = load_verified(path, "checkpoint", accepted,
                           f"pass expected_sha256='<its sha256>', write that hash to {path.name}.sha256 "
                           f"('<hash>  {path.name}'), or pass allow_unverified=True (python -m zfviz.train: "
                           f"--allow-unverified) to load it unchecked")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a zfviz checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    info = state.get("info")
    if isinstance(info, dict) and isinstance(info.get("train_config"), dict):     # a run of before issue 17
        info["train_config"] = upgrade_train_config(info["train_config"])
    return state


def load_checkpoint(path: str | Path, model: nn.Module | None = None, expected_sha256: str | None = None, *,
                    allow_unverified: bool = False):
    """Load a checkpoint after checking its sha256; returns ``(model, preprocess, state)``.

    Explained in the chapter "Training ZFNet". The hash is ``expected_sha256`` if given (the book's
    shipped weights: data/MANIFEST.tsv's, see :func:`load_shipped_checkpoint`), else the
    ``path.sha256`` file beside it, which :func:`save_checkpoint` writes. A checkpoint with neither
    (sidecar missing, empty or blank) is refused with :class:`CheckpointError` unless
    ``allow_unverified=True``; a malformed sidecar is always refused. With ``model=None`` the network
    is rebuilt from the stored config; with a model, its config must match (else :class:`CheckpointError`).
    Uses ``torch.load(weights_only=True)``: a checkpoint cannot run code.
    """
    state = read_checkpoint(path, expected_sha256, allow_unverified)
    return apply_checkpoint(Path(path), state, model)


def apply_checkpoint(path: Path, state: dict, model: nn.Module | None):
    """``(model, preprocess, state)`` of a checkpoint state read by :func:`read_checkpoint`.

    Explained in the chapter "Training ZFNet" (book/training).
    """
    config = state["config"]
    if model is None:
        model = build_model(**config)
    elif getattr(model, "config", None) != config:
        raise CheckpointError(f"checkpoint {path} is for {config}, but the model is "
                              f"{getattr(model, 'config', type(model).__name__)}; build the model "
                              f"with zfviz.models.build_model(**checkpoint config) or pass model=None")
    model.load_state_dict(state["model"])
    preprocess = None
    if state.get("preprocess") is not None:
        p = state["preprocess"]
        preprocess = data.Preprocess(p["mean"], p["std"].view(3))
    return model, preprocess, state


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
    or is not listed), passed to :func:`load_checkpoint` as ``expected_sha256``.
    """
    if not isinstance(rel, str):
        raise TypeError(f"rel must be a path under data/ as a string, e.g. 'weights/zfnet_teaching.pt'; got {rel!r}")
    path = data.verify(rel)                                    # listed, present, and intact (a clear message)
    return load_checkpoint(path, expected_sha256=data.manifest()[rel])
