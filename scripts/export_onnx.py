"""Export the teaching ZFNet to ONNX for the published book's in-browser explorers (issue 18, zfviz.export).

    python scripts/export_onnx.py                       # _build/onnx/zfnet_teaching.onnx and .json
    python scripts/export_onnx.py --float16 --out DIR   # also zfnet_teaching.fp16.onnx (half the download)

One model file: logits and probabilities, the five rectified feature maps, the layer-5 totals and peaks of Fig. 7,
and the deconvnet projection (see zfviz/export.py for its inputs and outputs). The files are generated, not
shipped: they go to _build/ (ignored by git), never to data/. The seed is set for the record; the export reads the
shipped weights and traces with zeros, so the bytes (and sha256) are the same on every run with these versions.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zfviz import export  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "onnx", help="folder to write to")
    parser.add_argument("--float16", action="store_true", help="also write the float16-weight model")
    parser.add_argument("--seed", type=int, default=0, help="torch seed (the export draws no random numbers)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    written = export.export_teaching_onnx(args.out)
    if args.float16:
        written += export.export_teaching_onnx(args.out, weights="float16")
    for f in written:
        print(f"{f.path}  {f.bytes / 1e6:.2f} MB  sha256 {f.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
