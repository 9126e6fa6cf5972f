"""The transfer set's EfficientNet-Lite0 features, precomputed for the chapter "§5 Experiments".

    python scripts/efficientnet_features.py --threads 2

EfficientNet-Lite0 (``zfviz.pretrained.efficientnet_lite0``, offline ImageNet weights) run on the 576 images of
``TuxPaint(renders=4, seed=0)`` upsampled to its 224-pixel input: ``zfviz.transfer.efficientnet_features``
after each of its 7 stages (max-pooled to 2 x 2) and its pooled head, stored as float16 in
data/results/tuxpaint_efficientnet_features.pt with a JSON record (command, sha256). Computing them takes about
30 s on 2 CPU cores, a third of a chapter's budget; the chapter recomputes a few images to check them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from zfviz import data as zdata  # noqa: E402
from zfviz import pretrained, transfer  # noqa: E402


def features(images: torch.Tensor) -> dict:
    """The chapter's recipe: 112-pixel images upsampled to 224, the model's preprocessing, grid 2."""
    lite, preprocess = pretrained.efficientnet_lite0()
    x = F.interpolate(images, size=224, mode="bilinear", align_corners=False)
    return transfer.efficientnet_features(lite, preprocess(x), grid=2)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    tux = zdata.TuxPaint(input_size=112, renders=4, seed=0)
    feats = features(tux.tensors()[0])
    target = ROOT / "data" / "results" / "tuxpaint_efficientnet_features.pt"
    target.parent.mkdir(exist_ok=True)
    torch.save({"stages": {k: v.half() for k, v in feats.items()}, "images": "TuxPaint(renders=4, seed=0)"}, target)
    record = {"what": "EfficientNet-Lite0 features of the 576 Tux Paint images (TuxPaint(renders=4, seed=0), "
                      "upsampled to 224): stages 1-7 max-pooled to 2x2 and the pooled head (8), float16",
              "command": "python scripts/efficientnet_features.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "seed": 0, "torch": torch.__version__, "threads": args.threads,
              "wall_time_s": round(time.time() - t0, 1), "sha256": zdata.sha256_file(target)}
    target.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    import build_data
    build_data.write_manifest()
    print(f"shipped {target.relative_to(ROOT)} ({target.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
