"""Feature evolution during training, Zeiler & Fergus (2014) §4 and Fig. 4: snapshots of a run.

Explained in the chapter "Training ZFNet" (book/training, "Feature evolution during training").

"Fig. 4 visualizes the progression during training of the strongest activation (across all training examples)
within a given feature map projected back to pixel space. ... the results after epochs [1,2,5,10,20,30,40,64]."
:class:`Fig4Snapshots` is the recorder that ``python -m zfviz.train --snapshot-epochs paper`` passes to
:func:`zfviz.train.train` as a callback: after each chosen epoch it finds, for ``SNAPSHOT_MAPS`` seeded maps of
every conv layer, the strongest activation over the first ``SNAPSHOT_IMAGES`` validation images and its
deconvnet projection, and appends them, with the conv weights, to ``<out>/snapshots.pt`` (atomic, with its
sha256 beside it). Training itself knows nothing of the deconvnet: data flow one way, train -> evolution.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import checkpoints
from .checkpoints import CheckpointError
from .deconv import strongest_projections
from .train import SNAPSHOT_IMAGES, SNAPSHOT_MAPS, TrainingRun, snapshot_epochs

__all__ = ["Fig4Snapshots", "read_snapshots", "save_snapshots"]


def read_snapshots(path: Path) -> dict:
    """The snapshot file of a run ({"epochs": [...], "layers": {...}}), checked against the sha256 beside it
    (written by :func:`save_snapshots`), or a CheckpointError naming it. Explained in the chapter "Training ZFNet"
    (book/training), which reads the shipped snapshots of the teaching run."""
    state = checkpoints.load_verified(path, "snapshot file", checkpoints.recorded_hashes(path),
                           "restore the sidecar, or delete the file to record the snapshots anew")
    if not (isinstance(state, dict) and isinstance(state.get("epochs"), list)
            and isinstance(state.get("layers"), dict)):
        raise CheckpointError(f"{path} is not a zfviz snapshot file (no 'epochs' list and 'layers' dict)")
    return state


def _keep_epochs(state: dict, last: int) -> dict:
    """``state`` without the snapshots of epochs after ``last`` (those of an interrupted attempt, redone)."""
    keep = [i for i, e in enumerate(state["epochs"]) if e <= last]
    state["epochs"] = [state["epochs"][i] for i in keep]
    for entry in state["layers"].values():
        for key in ("values", "indices", "projections"):
            entry[key] = [entry[key][i] for i in keep]
    if "convs" in state:
        state["convs"] = [state["convs"][i] for i in keep]
    return state


def save_snapshots(path: Path, state: dict) -> None:
    """Write a snapshot file atomically, with its sha256 beside it. Explained in the chapter "Training ZFNet"."""
    checkpoints.publish(path, lambda tmp: torch.save(state, tmp))     # atomic, with its sha256 beside it


@torch.no_grad()
def _record(path: Path, net: nn.Module, images: torch.Tensor, epoch: int, seed: int) -> None:
    """Append, for SNAPSHOT_MAPS seeded maps of every conv layer, the strongest activation over ``images``
    and its projection (float16), and every conv layer's weights and biases (``state["convs"]``, one dict
    per epoch: the projections of any map at that epoch can be recomputed from them) to the snapshot file
    (read again each time, so it survives a resume).
    Snapshots of ``epoch`` or later already there (from an attempt killed before its checkpoint) are replaced."""
    state = read_snapshots(path) if path.is_file() else {"epochs": [], "layers": {}, "convs": []}
    _keep_epochs(state, epoch - 1)
    state.setdefault("convs", [])
    g = torch.Generator().manual_seed(seed)
    was_training = net.training
    net.eval()
    convs = [m for m in net.children() if isinstance(m, nn.Conv2d)]
    for layer, conv in enumerate(convs, start=1):
        maps = torch.randperm(conv.out_channels, generator=g)[:SNAPSHOT_MAPS]
        entry = state["layers"].setdefault(layer, {"channels": maps, "values": [], "indices": [],
                                                   "projections": []})
        top, projections = strongest_projections(net, images, layer, entry["channels"].tolist())
        entry["values"].append(top.values[:, 0])
        entry["indices"].append(top.indices[:, 0])
        entry["projections"].append(projections.half().cpu())
    state["convs"].append({f"{layer}.{name}": p.detach().float().cpu().clone()
                           for layer, conv in enumerate(convs, start=1) for name, p in conv.named_parameters()})
    state["epochs"].append(epoch)
    net.train(was_training)
    save_snapshots(path, state)


def _resume(out: Path, resume_dir: Path, wanted: list[int], start: int, step: int, record_now) -> None:
    """Make ``out/snapshots.pt`` hold every wanted snapshot up to the checkpoint's epoch ``start``, or refuse.

    It is copied from the checkpoint's folder when ``out`` is a new one; snapshots after ``start`` (from an
    attempt killed before its checkpoint) are dropped, as the run redoes them; a missing snapshot of epoch
    ``start`` itself is recorded now from the checkpoint's weights (``record_now``), which are that
    epoch's; earlier ones cannot be, and raise."""
    path, theirs = out / "snapshots.pt", resume_dir / "snapshots.pt"
    if not path.is_file() and theirs.is_file():
        out.mkdir(parents=True, exist_ok=True)
        save_snapshots(path, read_snapshots(theirs))
    recorded = []
    if path.is_file():
        state = read_snapshots(path)
        if any(e > start for e in state["epochs"]):
            save_snapshots(path, _keep_epochs(state, start))
        recorded = state["epochs"]
    missing = [e for e in wanted if e <= start and e not in recorded]
    if missing == [start] and step == 0:
        record_now()
    elif missing:
        raise ValueError(f"cannot resume into {out}: its snapshots.pt lacks the Fig. 4 snapshot(s) of epoch(s) "
                         f"{missing}, which snapshot_epochs asks for and the checkpoint (epoch {start}) has "
                         f"passed, so those weights are gone. Copy the run's snapshots.pt into {out}, or resume "
                         f"with --snapshot-epochs naming only epochs after {start} or recorded ones "
                         f"({sorted(recorded)})")


class Fig4Snapshots:
    """The Fig. 4 recorder, a callback of :func:`zfviz.train.train`: ``train(cfg, callbacks=[Fig4Snapshots()])``.

    Explained in the chapter "Training ZFNet". Records after the epochs ``cfg.snapshot_epochs`` names (see
    :func:`zfviz.train.snapshot_epochs`), into ``<cfg.out>/snapshots.pt``; on a resume it makes that file hold
    every snapshot up to the checkpoint, or refuses (ValueError) when one is lost.
    """

    records_snapshots = True      # what train() looks for when cfg.snapshot_epochs asks for snapshots

    def __init__(self):
        self.epochs, self.images = [], None

    def start(self, run: TrainingRun) -> None:
        """Choose the epochs; a fixed image set: the first validation images, preprocessed (after a resume's
        preprocess is loaded)."""
        self.epochs = snapshot_epochs(run.cfg.snapshot_epochs, run.cfg.epochs)
        if self.epochs:
            val_set = run.val_set
            first = torch.stack([val_set[i][0] for i in range(min(SNAPSHOT_IMAGES, len(val_set)))])
            self.images = run.preprocess(first.to(run.device))

    def resume(self, run: TrainingRun, resume_dir: Path) -> None:
        _resume(run.out, resume_dir, self.epochs, run.start, run.start_step,
                lambda: _record(run.out / "snapshots.pt", run.net, self.images, run.start, run.cfg.seed))

    def epoch_end(self, run: TrainingRun, epoch: int) -> None:
        """After epoch ``epoch`` (1-based), on the main process, before best.pt and last.pt are written."""
        if epoch in self.epochs:
            _record(run.out / "snapshots.pt", run.net, self.images, epoch, run.cfg.seed)
