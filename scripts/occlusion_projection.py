"""Fig. 7 (b) against (c), measured over the held-out clip art: does the strongest layer-5 map lose its
activation where the square covers what its deconvnet projection shows?

    python scripts/occlusion_projection.py --threads 2

The paper reads its panels (b) and (c) together: "when the occluder covers the image region which appears in the
visualization, we see a strong drop in activity in the feature map". For every validation and test image of
the clip-art set (`ClipArt("val")`, `ClipArt("test")`, 320 each) and the occlusion chapter's square (24 pixels,
stride 4), this script takes `occlusion.occlusion_panels` of the teaching ZFNet for the image's true class and
records, over the square's positions:

- the drop of panel (b): the strongest map's total activation without the square minus with it;
- the share of the projection's energy under the square, `occlusion.energy_under_square(panels.projection)`;
- two controls: the share of the square on the object (`ClipArt.masks`), and the energy map of *another*
  image's projection (the next image of the same split, its own strongest map);

and per image the Pearson correlation of the drop with each (`occlusion.map_correlation`). Nothing is random
(no seed needed); the numbers move in the third decimal between CPUs, which is why the chapter prints these
shipped ones and recomputes one image live. Writes data/results/occlusion_projection.json with the command,
torch version and thread count. About 10 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import build_data  # noqa: E402
from zfviz import checkpoints, data as zdata, occlusion  # noqa: E402

SQUARE, STRIDE = 24, 4          # the occlusion chapter's (its SQUARE and STRIDE)
SPLITS = ("val", "test")


def measure(net, preprocess, split: str, limit: int | None = None) -> list[dict]:
    clip = zdata.ClipArt(split)
    x, y = clip.tensors()
    rows, energies = [], []
    for i in range(len(clip) if limit is None else min(limit, len(clip))):
        image = preprocess(x[i:i + 1])[0]
        panels = occlusion.occlusion_panels(net, image, int(y[i]), size=SQUARE, stride=STRIDE)
        drop, energy, total = occlusion.fig7_bc(net, image, panels, SQUARE, STRIDE)
        on_object = occlusion.mask_share(clip.masks[i], SQUARE, STRIDE)
        energies.append(energy)
        rows.append({"split": split, "index": i, "label": int(y[i]), "channel": panels.feature_channel,
                     "position": list(panels.feature_position), "total": total,
                     "largest_drop_share": float(drop.max() / total) if total > 0 else None,
                     "image_prob": panels.image_prob,
                     "r_projection": occlusion.map_correlation(drop, energy),
                     "r_object": occlusion.map_correlation(drop, on_object),
                     "_drop": drop})
    for i, row in enumerate(rows):                                   # the control: the next image's projection
        row["r_other_projection"] = occlusion.map_correlation(row.pop("_drop"), energies[(i + 1) % len(rows)])
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="only the first N images of each split (a quick check)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    net, preprocess = checkpoints.load_teaching_zfnet()
    rows = []
    for split in SPLITS:
        rows += measure(net, preprocess, split, args.limit)
        print(f"{split}: {len(rows)} images so far, {time.time() - t0:.0f} s", flush=True)
    record = {"what": "Fig. 7 (b) against (c): per held-out image, the correlation over the square's positions of "
                      "the strongest layer-5 map's activation drop with the share of its projection's energy under "
                      "the square, and with two controls (the share of the square on the object; another image's "
                      "projection)",
              "command": "python scripts/occlusion_projection.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "square": SQUARE, "stride": STRIDE, "splits": list(SPLITS), "seed": None,
              "torch": torch.__version__, "threads": args.threads, "machine": platform.machine(),
              "wall_time_s": round(time.time() - t0, 1), "images": rows}
    # The shipped record (and the manifest with its sha256); a --limit check run goes outside data/.
    rel = "results/occlusion_projection.json" if args.limit is None else "/tmp/occlusion_projection.limit.json"
    out = build_data.ship_json(rel, record)
    print(f"wrote {out} ({len(rows)} images, {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
