"""Does the occlusion minimum fall on the object? The count over the whole validation set, for the occlusion chapter.

    python scripts/occlusion_count.py --threads 2

For each of the 320 validation images of the clip art (`ClipArt("val")`), the map of the probability of its true
class (`occlusion.occlusion_map` of the teaching ZFNet, the chapter's square of 24 pixels moved 12 at a time:
15 x 15 positions), and where its minimum lies: whether the square's centre there is on the object
(`ClipArt.masks`), against the share of all square centres that are (the chance level). About 45 s on 2 cores,
half the chapter's 90 s budget, so the chapter reads this record and measures a sample of the images again.
Nothing is random (no seed needed). A near-tie between two positions can move the minimum between CPUs; each
row records the lowest probability and the gap to the second lowest, so a check can tell.
Writes data/results/occlusion_count.json (and its sha256 in data/MANIFEST.tsv).
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

import build_data  # noqa: E402

from zfviz import checkpoints, occlusion  # noqa: E402
from zfviz import data as zdata

SQUARE, COUNT_STRIDE = 24, 12          # the occlusion chapter's SQUARE and COUNT_STRIDE


def count_row(net, preprocess, clip, x, y, i: int) -> dict:
    """One image: where its occlusion map is lowest, and whether that square's centre is on the object."""
    m = occlusion.occlusion_map(net, preprocess(x[i:i + 1])[0], int(y[i]), size=SQUARE, stride=COUNT_STRIDE)
    centres = torch.arange(m.shape[0]) * COUNT_STRIDE + SQUARE // 2         # pixel under each square's centre
    on_object = clip.masks[i][centres][:, centres].flatten()                # one bool per square position
    lowest = m.flatten().topk(2, largest=False)
    return {"index": i, "label": int(y[i]), "min_position": int(lowest.indices[0]),
            "min_prob": float(lowest.values[0]), "gap_to_second": float(lowest.values[1] - lowest.values[0]),
            "hit": bool(on_object[lowest.indices[0]]), "chance": float(on_object.float().mean())}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="only the first N images (a quick check)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    net, preprocess = checkpoints.load_teaching_zfnet()
    clip = zdata.ClipArt("val")
    x, y = clip.tensors()
    with torch.no_grad():
        correct = (net(preprocess(x)).argmax(1) == y).tolist()
    n = len(clip) if args.limit is None else min(args.limit, len(clip))
    rows = [{**count_row(net, preprocess, clip, x, y, i), "correct": correct[i]} for i in range(n)]
    record = {"what": "per validation image: the position of the lowest P(true class) in its occlusion map, and "
                      "whether the square's centre there is on the object; the chance level is the share of "
                      "square centres on the object",
              "command": "python scripts/occlusion_count.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "square": SQUARE, "stride": COUNT_STRIDE, "split": "val", "seed": None,
              "machine": build_data.machine(args.threads), "wall_time_s": round(time.time() - t0, 1),
              "images": rows}
    rel = "results/occlusion_count.json" if args.limit is None else "/tmp/occlusion_count.limit.json"
    build_data.ship_json(rel, record)
    print(f"{n} images, {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
