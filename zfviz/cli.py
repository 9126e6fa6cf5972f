"""The command lines: ``python -m zfviz.train`` (§3, the book's teaching networks and ablations).

Explained in the chapter "Training ZFNet" (book/training). The top of the package's import graph: it wires
training (``zfviz.train``) to the Fig. 4 recorder (``zfviz.evolution``), which training itself does not know.
"""
from __future__ import annotations

import argparse
from dataclasses import fields

import torch

from .evolution import Fig4Snapshots
from .train import RESUME_CHANGEABLE, TrainConfig, train
from .train import __doc__ as train_doc

__all__ = ["train_main"]

# Options renamed since: the old spelling stays accepted, so old commands (the shipped records' among them) run.
OLD_FLAGS = {"input_size": ("--image-size",)}      # issue 17: the input side is input_size everywhere


def train_main(argv=None) -> None:
    """``python -m zfviz.train``: every TrainConfig field is an option (``--help`` prints each with its reason).

    Explained in the chapter "Training ZFNet". Fig. 4 snapshots (``--snapshot-epochs``) are recorded by
    :class:`zfviz.evolution.Fig4Snapshots`.
    """
    p = argparse.ArgumentParser(prog="python -m zfviz.train", description=train_doc.split("\n\n")[0])
    for f in fields(TrainConfig):
        flags, help = ("--" + f.name.replace("_", "-"), *OLD_FLAGS.get(f.name, ())), f.metadata["help"]
        if isinstance(f.default, bool):
            p.add_argument(*flags, action=argparse.BooleanOptionalAction, default=f.default, help=help)
        else:
            p.add_argument(*flags, dest=f.name, type=type(f.default), default=f.default,
                           help=help + " (default: %(default)r)")
    changeable = ", ".join("--" + name.replace("_", "-") for name in RESUME_CHANGEABLE)
    p.add_argument("--resume", default=None, metavar="LAST_PT",
                   help="continue the run of this checkpoint (a last.pt, with its .sha256 beside it). Every option "
                        f"must be the checkpoint's, except {changeable}: "
                        "--epochs may extend the run; --out may name a new folder (snapshots.pt and best.pt are "
                        "copied there); --data-root may move the same images; --snapshot-epochs may change "
                        "future snapshots (those already passed must be recorded). Anything else is refused")
    p.add_argument("--allow-unverified", action="store_true",
                   help="with --resume: accept a checkpoint that has no .sha256 beside it (its integrity unchecked)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs and CI)")
    args = vars(p.parse_args(argv))
    resume, threads, no_progress = args.pop("resume"), args.pop("threads"), args.pop("no_progress")
    allow_unverified = args.pop("allow_unverified")
    if allow_unverified and resume is None:
        p.error("--allow-unverified applies to --resume only")
    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig(**args)
    try:
        train(cfg, resume=resume, progress=not no_progress, allow_unverified=allow_unverified,
              callbacks=[Fig4Snapshots()])
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
