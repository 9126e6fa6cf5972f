"""Why the teaching ZFNet's first layer did not learn: short controlled runs, one cause at a time.

    python scripts/first_layer_diagnosis.py --threads 2

Each arm is the shipped teaching recipe (width 0.25, 112 px, He initialisation, batch 128, lr 0.01,
momentum 0.9, filter renormalisation at RMS 0.1, inputs at unit scale, seed 0) with one or two knobs
changed, trained for a few epochs by `zfviz.train`. After every epoch the history records layer 1's
neighbour correlation (`zfviz.features.neighbour_correlation`, averaged over filters: about 0 for noise,
near 1 for smooth edges and blobs), how far layer 1 moved from its random start (relative L2 distance),
its filter RMS, and the validation accuracy. Writes data/results/first_layer_diagnosis.json with the
command, the machine and every arm's history, and data/results/first_layer_diagnosis.pt with each arm's final
layer-1 weights (and, with --old-weights, those of the network shipped before issue 14, for comparison); the
chapter "Training ZFNet" prints the table and shows the filters from them.

Runs go to runs/diagnosis/<arm>/; an interrupted run resumes from its last.pt, a finished one is read
back, so the script can be stopped and started again. About 20 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from zfviz.train import TrainConfig, train  # noqa: E402

EPOCHS = 6
# The recipe as shipped before issue 14 (TrainConfig's defaults then): the arms change it one knob at a time.
BASE = {"input_size": 112, "batch_size": 128, "conv1_std": 0.0}
# (name, what changes, the TrainConfig fields it sets, epochs)
ARMS = [
    ("shipped", "the shipped recipe", {}, EPOCHS),
    ("no_renorm", "no filter renormalisation", {"max_filter_rms": 0.0}, EPOCHS),
    ("batch32", "batch 32 (4x the updates)", {"batch_size": 32}, EPOCHS),
    ("epochs4x", "4x the epochs at batch 128 (the updates of batch 32)", {}, 4 * EPOCHS),
    ("input8", "inputs 8x larger", {"input_scale": 8.0}, EPOCHS),
    ("conv1_small", "layer 1 starts N(0, 0.01^2)", {"conv1_std": 0.01}, EPOCHS),
    ("conv1_small_batch32", "layer 1 starts N(0, 0.01^2), batch 32", {"conv1_std": 0.01, "batch_size": 32}, EPOCHS),
    ("conv1_small_no_renorm", "layer 1 starts N(0, 0.01^2), no renormalisation",
     {"conv1_std": 0.01, "max_filter_rms": 0.0}, EPOCHS),
    ("paper_init", "every layer starts N(0, 0.01^2) (the paper's init)", {"init": "paper"}, EPOCHS),
]
KEEP = ("epoch", "train_loss", "val_accuracy", "conv1_neighbour_correlation", "conv1_moved", "time_s")


def run_arm(name: str, changes: dict, epochs: int, runs: Path) -> list[dict]:
    out = runs / name
    cfg = TrainConfig(**{**BASE, "epochs": epochs, "seed": 0, "out": str(out), **changes})
    history = out / "history.json"
    if history.is_file() and len(json.loads(history.read_text())) >= epochs:
        print(f"{name}: done before, read back", flush=True)
    else:
        last = out / "last.pt"
        print(f"{name}: {'resuming' if last.is_file() else 'training'} ({changes or 'as shipped'})", flush=True)
        try:
            train(cfg, resume=last if last.is_file() else None, progress=False)
        except FloatingPointError as e:       # a diverging arm is a result too
            print(f"{name}: {e}", flush=True)
            return [{"diverged": str(e)}] + json.loads(history.read_text()) if history.is_file() else [{"diverged": str(e)}]
    rows = json.loads(history.read_text())
    return [{k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in KEEP} | {
        "conv1_rms": round(sum(r["conv1_rms"]) / len(r["conv1_rms"]), 4)} for r in rows]


def main(argv=None) -> None:
    from build_data import machine, ship_json
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", default=str(ROOT / "runs" / "diagnosis"))
    p.add_argument("--old-weights", default=None,
                   help="the teaching checkpoint shipped before issue 14 (sha256 4666ecb6...), to keep its layer 1")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    arms = []
    for name, what, changes, epochs in ARMS:
        arms.append({"name": name, "what": what, "changes": changes, "epochs": epochs,
                     "history": run_arm(name, changes, epochs, Path(args.runs))})
    record = {"what": "why the teaching ZFNet's first layer did not learn: the shipped recipe (width 0.25, 112 px, "
                      "seed 0) with one or two knobs changed; per epoch, layer 1's mean neighbour correlation, its "
                      "relative distance from the random start (conv1_moved), mean filter RMS, validation accuracy",
              "command": "python scripts/first_layer_diagnosis.py --threads 2",
              "base_config": {k: v for k, v in vars(TrainConfig(**BASE)).items() if k not in ("out",)},
              "seed": 0, "machine": machine(args.threads),
              # the arms' own training times (read back from their histories when a run was done before);
              # on 2 cores shared with other jobs part of the time, so slower than alone
              "training_time_s": round(sum(a["history"][-1].get("time_s", 0) for a in arms)),
              "arms": arms}
    from build_data import ship_torch
    from zfviz.data import sha256_file
    from zfviz.train import load_checkpoint
    conv1 = {name: load_checkpoint(Path(args.runs) / name / "last.pt")[0].conv1.weight.detach().clone()
             for name, *_ in ARMS}
    if args.old_weights:
        old, _pre, state = load_checkpoint(args.old_weights, allow_unverified=True)
        conv1["shipped before issue 14"] = old.conv1.weight.detach().clone()
        record["old_weights"] = {"sha256": sha256_file(args.old_weights), "epochs": state["epoch"],
                                 "train_config": state["info"]["train_config"]}
        from zfviz.data import ClipArt
        from zfviz.train import evaluate
        size = state["info"]["train_config"]["input_size"]   # old runs' image_size, renamed on load
        for split in ("val", "test"):       # as ship_teaching_model.py evaluates a shipped network
            images, labels = ClipArt(split, input_size=size, renders=4, seed=0).tensors()
            record["old_weights"][f"{split}_accuracy"] = round(evaluate(old, _pre, images, labels)["accuracy"], 4)
        record["command"] += f" --old-weights {args.old_weights}"
    ship_torch("results/first_layer_diagnosis.pt", {"conv1": conv1}, record)


if __name__ == "__main__":
    main()
