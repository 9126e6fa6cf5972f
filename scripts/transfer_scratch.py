"""§5.2's "from scratch" baseline: the teaching ZFNet trained only on a few Tux Paint stamps per class.

    python scripts/transfer_scratch.py --steps 300 --threads 2

For every number of training stamps per class in PER_CLASS and every split seed 0-4 (the splits of
``zfviz.transfer.few_shot_split`` with 6 test stamps per class, the same as the chapter's frozen-feature
probes use), trains a randomly initialised teaching ZFNet (``zfviz.transfer.train_from_scratch``: the
teaching recipe, fresh renders each pass) and measures the per-class accuracy on the 4 renders of each
test stamp (``TuxPaint(renders=4, seed=0)``, the chapter's images). Writes data/results/transfer_scratch.json
with the command, seeds and times. About 10 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from zfviz import data as zdata  # noqa: E402
from zfviz.transfer import few_shot_split, per_class_accuracy, train_from_scratch  # noqa: E402

PER_CLASS = (1, 2, 5, 10, 12)
TEST_PER_CLASS = 6
SEEDS = (0, 1, 2, 3, 4)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tux = zdata.TuxPaint(input_size=112, renders=4, seed=0)
    images, labels = tux.tensors()
    rows = []
    for per_class in PER_CLASS:
        for seed in SEEDS:
            t0 = time.time()
            train, test = few_shot_split(tux.sprite_labels, per_class, TEST_PER_CLASS, seed)
            net, pre = train_from_scratch(tux, train, steps=args.steps, batch_size=args.batch_size, seed=seed)
            te = torch.isin(tux.sprite_index, test)
            with torch.no_grad():
                predicted = net(pre(images[te])).argmax(1)
            acc = per_class_accuracy(predicted, labels[te])
            rows.append({"per_class": per_class, "seed": seed, "accuracy": round(acc, 4),
                         "time_s": round(time.time() - t0, 1)})
            print(rows[-1], flush=True)
    record = {"what": "teaching ZFNet (width 0.25, 112 px) trained from scratch on per_class Tux Paint stamps per "
                      "class (fresh renders each pass), per-class accuracy on the 4 renders of each of the 6 test "
                      "stamps per class of split `seed` (zfviz.transfer.few_shot_split)",
              "command": "python scripts/transfer_scratch.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "steps": args.steps, "batch_size": args.batch_size, "test_per_class": TEST_PER_CLASS,
              "torch": torch.__version__, "threads": args.threads, "device": "cpu", "runs": rows}
    import build_data
    build_data.ship_json("results/transfer_scratch.json", record)


if __name__ == "__main__":
    main()
