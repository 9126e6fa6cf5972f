"""The files the page "Your own picture" (book/your_image) needs to run the teaching ZFNet in the browser (issue 18).

    python scripts/browser_assets.py                 # -> _vendor/browser/zfnet_model.js and zfnet_meta.js
    python scripts/browser_assets.py --out DIR

Generated at build time (`make book` runs it before `jupyter-book build`), never committed: _vendor/ is ignored by
git and served as the site's _static/ (see _config.yml; not _static/ itself, whose .js files Jupyter Book adds to
every page). Both files are classic scripts that set a global, because a page opened from file:// may not fetch():

- zfnet_model.js: ``window.ZFNET_MODEL_BASE64``, the ONNX model of zfviz.export with float16 weights (half the
  download; the arithmetic stays float32), base64;
- zfnet_meta.js: ``window.ZFNET_META``, what the page computes with: the class names, the input size S, the
  resize (short side to round(S * 256 / 224), then the centre crop S, as zfviz.data.image_folder), the
  preprocessing (zfviz.data.Preprocess: the per-pixel mean image, base64 float32 (3, S, S), and the channel std),
  each conv layer's map shape and the geometry (kernel, stride, padding, dilation) of the convs and pools below
  its map, top first, for the receptive field (zfviz.deconv.receptive_field_box), and the model's sha256.

Reads the shipped weights only: no network, same bytes on every run with these versions.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zfviz import checkpoints, data, export, layers  # noqa: E402


def meta(model, preprocess, model_bytes: bytes) -> dict:
    """The page's numbers: classes, sizes, preprocessing and layer geometry (see the module docstring)."""
    size = int(model.config["input_size"])
    wrapper = export.BrowserZFNet(model)
    geometry = []
    for k in range(1, wrapper.layers + 1):
        steps = []
        for m in reversed(layers.stack(wrapper.net, k)):
            geo = layers.geometry(m)
            if geo is not None:
                (ky, sy, py, dy), _ = geo[0]
                steps.append([int(ky), int(sy), int(py), int(dy)])
        geometry.append(steps)
    mean = preprocess.mean.detach().float().numpy().astype("<f4")
    return {
        "classes": list(data.ClipArt("val", input_size=size).classes),
        "input_size": size,
        "resize_short": round(size * 256 / 224),
        "mean_base64": base64.b64encode(np.ascontiguousarray(mean).tobytes()).decode(),
        "std": [float(v) for v in preprocess.std.view(-1)],
        "map_shapes": [list(s) for s in wrapper.map_shapes],
        "geometry": geometry,
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
        "model_bytes": len(model_bytes),
        "weights": "float16",
    }


def write(out: Path) -> list[Path]:
    """Write zfnet_model.js and zfnet_meta.js to folder ``out``; returns their paths."""
    model, preprocess = checkpoints.load_teaching_zfnet()
    model_bytes = export.onnx_model(model, weights="float16").SerializeToString()
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "zfnet_model.js": "window.ZFNET_MODEL_BASE64 = \"" + base64.b64encode(model_bytes).decode() + "\";\n",
        "zfnet_meta.js": "window.ZFNET_META = " + json.dumps(meta(model, preprocess, model_bytes)) + ";\n",
    }
    written = []
    for name, text in files.items():
        path = out / name
        tmp = path.with_name(name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_vendor" / "browser", help="folder to write to")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    for path in write(args.out):
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
