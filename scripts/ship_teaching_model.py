"""Ship a finished training run as one of the book's teaching networks: data/weights/<name>.{pt,json}.

    python scripts/ship_teaching_model.py runs/teaching "<the exact training command>"            # zfnet_teaching
    python scripts/ship_teaching_model.py runs/alexnet_teaching "<command>" alexnet_teaching      # Fig. 6's other net

Keeps the model, its input preprocessing, the config and the history (the optimiser state is left
out: readers load, they do not resume), evaluates on the fixed validation and test sets, records
how it was made, and rewrites data/MANIFEST.tsv.
"""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import build_data  # noqa: E402
from zfviz.data import ClipArt  # noqa: E402
from zfviz.features import neighbour_correlation  # noqa: E402
from zfviz.train import evaluate, load_checkpoint, save_checkpoint  # noqa: E402


def main(run: str, command: str, name: str = "zfnet_teaching") -> None:
    model, preprocess, state = load_checkpoint(Path(run) / "last.pt")
    info = state["info"]
    cfg = info["train_config"]
    metrics = {}
    for split in ("val", "test"):
        ds = ClipArt(split, input_size=cfg["input_size"], renders=4, seed=0)
        metrics[split] = evaluate(model, preprocess, *ds.tensors())
    out = ROOT / "data" / "weights"
    out.mkdir(parents=True, exist_ok=True)
    digest = save_checkpoint(out / f"{name}.pt", model, preprocess, epoch=state["epoch"],
                             classes=info["classes"], train_config=cfg, history=info["history"])
    (out / f"{name}.pt.sha256").unlink()   # MANIFEST.tsv holds the hash of shipped files
    hist = info["history"]
    record = {
        "what": f"teaching-scale {cfg['arch']} trained on the offline clip-art set (zfviz.data.ClipArt)",
        "command": command,
        "seed": cfg["seed"],
        "device": f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "machine": build_data.machine(torch.get_num_threads()),
        "torch": torch.__version__,
        "epochs": state["epoch"],
        "wall_time_s": round(hist[-1]["time_s"]),
        "chance_accuracy": 1 / len(info["classes"]),
        "val_accuracy": round(metrics["val"]["accuracy"], 4),
        "test_accuracy": round(metrics["test"]["accuracy"], 4),
        "val_loss": round(metrics["val"]["loss"], 4),
        "eval_sets": f"ClipArt(split, input_size={cfg['input_size']}, renders=4, seed=0): "
                     f"{len(ds.labels)} images of {len(ds.sprites)} unseen drawings each",
        "conv1_neighbour_correlation": round(neighbour_correlation(model.conv1.weight).mean().item(), 4),
        "best_val_accuracy_during_training": round(max(h["val_accuracy"] for h in hist), 4),
        "classes": info["classes"],
        "train_config": cfg,
        "sha256": digest,
        "history": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()} for h in hist],
    }
    (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    build_data.write_manifest()
    print(json.dumps({k: record[k] for k in ("epochs", "wall_time_s", "val_accuracy", "test_accuracy")}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
