"""Ship the Fig. 4 snapshots that the teaching ZFNet's own training run recorded: data/weights/zfnet_teaching_snapshots.pt.

    python -m zfviz.train ... --snapshot-epochs paper --out runs/teaching192      # the shipped command
    python scripts/ship_teaching_model.py runs/teaching192 "<that command>"
    python scripts/ship_snapshots.py runs/teaching192 "<that command>"

The run must be the shipped one (its final weights equal the shipped weights), which this script checks
before it copies anything. It ships, per snapshot epoch (the paper's Fig. 4 epochs scaled to the run), every
conv layer's weights and biases (float32: the projections of any feature map at that epoch are recomputed
from them, cropped to the receptive field, by the chapter "Training ZFNet"), and the 4 seeded maps per layer
with their strongest activation over the first 64 validation images (value and position). The full-image
projections the run recorded stay behind (at 192 px they would cost 18 MB). Records the command in
zfnet_teaching.json and rewrites data/MANIFEST.tsv.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from zfviz.data import sha256_file  # noqa: E402
from zfviz.checkpoints import load_shipped_checkpoint  # noqa: E402
from zfviz.evolution import read_snapshots  # noqa: E402
from zfviz.train import load_checkpoint  # noqa: E402


def main(run: str, command: str) -> None:
    weights = ROOT / "data" / "weights"
    final, _, _ = load_checkpoint(Path(run) / "last.pt")
    shipped, _, _ = load_shipped_checkpoint("weights/zfnet_teaching.pt")   # checked against MANIFEST.tsv
    for (name, a), (_, b) in zip(final.state_dict().items(), shipped.state_dict().items()):
        if not torch.equal(a, b):
            raise SystemExit(f"the run's {name} differs from the shipped weights: not the shipped training run")
    snaps = read_snapshots(Path(run) / "snapshots.pt")                  # checked against its .sha256
    if len(snaps.get("convs", [])) != len(snaps["epochs"]):
        raise SystemExit(f"{run}/snapshots.pt holds no conv weights for every epoch: record it with this zfviz")
    slim = {"epochs": snaps["epochs"], "convs": snaps["convs"],
            "layers": {layer: {k: entry[k] for k in ("channels", "values", "indices")}
                       for layer, entry in snaps["layers"].items()}}
    target = weights / "zfnet_teaching_snapshots.pt"
    torch.save(slim, target)
    record_path = weights / "zfnet_teaching.json"
    record = json.loads(record_path.read_text())
    record["snapshots"] = {"file": target.name, "command": command, "epochs": snaps["epochs"],
                           "what": "every conv layer's weights and biases (float32) after each listed epoch (the "
                                   "paper's Fig. 4 epochs scaled to the run), from the shipped run itself; and per "
                                   "conv layer 4 seeded feature maps with their strongest activation (value and "
                                   "flat position) over the first 64 validation images at each epoch",
                           "sha256": sha256_file(target), "same_run_as_shipped_weights": True}
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    import build_data
    build_data.write_manifest()
    print(f"shipped {target.relative_to(ROOT)} ({target.stat().st_size:,} bytes), epochs {snaps['epochs']}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
