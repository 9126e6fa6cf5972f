"""Ship the Fig. 4 snapshots of a re-run of the teaching ZFNet's training: data/weights/zfnet_teaching_snapshots.pt.

    python -m zfviz.train --width 0.25 --image-size 112 --epochs 100 --seed 0 --snapshot-epochs paper \
        --out runs/teaching_snap --no-progress
    python scripts/ship_snapshots.py runs/teaching_snap "<that command>"

The re-run must end with exactly the shipped weights (recording snapshots draws no random numbers), which
this script checks before it copies anything; then it records the command in zfnet_teaching.json and
rewrites data/MANIFEST.tsv.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from zfviz.data import sha256_file  # noqa: E402
from zfviz.models import load_shipped_checkpoint  # noqa: E402
from zfviz.train import load_checkpoint  # noqa: E402


def main(run: str, command: str) -> None:
    weights = ROOT / "data" / "weights"
    rerun, _, _ = load_checkpoint(Path(run) / "last.pt")
    shipped, _, _ = load_shipped_checkpoint("weights/zfnet_teaching.pt")   # checked against MANIFEST.tsv
    for (name, a), (_, b) in zip(rerun.state_dict().items(), shipped.state_dict().items()):
        if not torch.equal(a, b):
            raise SystemExit(f"the re-run's {name} differs from the shipped weights: not the same training run")
    target = weights / "zfnet_teaching_snapshots.pt"
    source = Path(run) / "snapshots.pt"
    if sha256_file(source) != (source.parent / "snapshots.pt.sha256").read_text().split()[0]:
        raise SystemExit(f"{source} does not match the sha256 training recorded beside it: not shipping it")
    shutil.copyfile(source, target)
    snaps = torch.load(target, weights_only=True)
    record_path = weights / "zfnet_teaching.json"
    record = json.loads(record_path.read_text())
    record["snapshots"] = {"file": target.name, "command": command, "epochs": snaps["epochs"],
                           "what": "per conv layer, 4 seeded feature maps: the strongest activation over the "
                                   "first 64 validation images and its deconvnet projection (float16), "
                                   "after each listed epoch (the paper's Fig. 4 epochs scaled to 100)",
                           "sha256": sha256_file(target), "final_weights_identical_to_shipped": True}
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    import build_data
    build_data.write_manifest()
    print(f"shipped {target.relative_to(ROOT)} ({target.stat().st_size:,} bytes), epochs {snaps['epochs']}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
