"""scripts/browser_assets.py (issue 18): the numbers the page "Your own picture" computes with are zfviz's.

The page (web/your_image.js) preprocesses with the exported mean image and std, resizes to the exported short side,
and crops projections to the receptive field it walks from the exported layer geometry; here each is checked
against zfviz itself (zfviz.data.Preprocess, zfviz.data.image_folder's resize, zfviz.deconv.receptive_field_box).
The model file itself is tested in tests/test_export.py, the page in tests/browser/test_your_image.py.
"""
import base64
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")

from zfviz import checkpoints, data, deconv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def assets():
    spec = importlib.util.spec_from_file_location("browser_assets", ROOT / "scripts" / "browser_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, preprocess = checkpoints.load_teaching_zfnet()
    return module, model, preprocess, module.meta(model, preprocess, b"model bytes")


def _box(steps, y, x, size):
    """web/your_image.js's receptiveFieldBox, line for line."""
    y0, y1, x0, x1 = y, y + 1, x, x + 1
    for k, s, p, d in steps:
        y0, y1 = y0 * s - p, (y1 - 1) * s - p + d * (k - 1) + 1
        x0, x1 = x0 * s - p, (x1 - 1) * s - p + d * (k - 1) + 1
    return [max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)]


def test_the_page_preprocesses_as_zfviz(assets):
    _, model, preprocess, meta = assets
    size = meta["input_size"]
    assert size == model.config["input_size"] == preprocess.mean.shape[-1]
    assert meta["resize_short"] == round(size * 256 / 224)
    assert meta["classes"] == data.ClipArt("val").classes
    mean = np.frombuffer(base64.b64decode(meta["mean_base64"]), dtype="<f4").reshape(3, size, size)
    pixels = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    page = (pixels.numpy() - mean) / np.array(meta["std"], dtype=np.float32).reshape(3, 1, 1)
    assert np.allclose(page, preprocess(pixels).numpy(), atol=1e-6)
    json.dumps(meta)                               # the page reads it as JSON


def test_the_page_finds_each_units_receptive_field_as_zfviz(assets):
    _, model, _, meta = assets
    size = meta["input_size"]
    for layer, (channels, h, w) in enumerate(meta["map_shapes"], start=1):
        assert (channels, h, w) == tuple(deconv.feature_map(model, torch.zeros(1, 3, size, size), layer).shape[1:])
        for y, x in ((0, 0), (h // 2, w // 3), (h - 1, w - 1)):
            assert _box(meta["geometry"][layer - 1], y, x, size) == list(
                deconv.receptive_field_box(model, layer, (y, x), size)), (layer, y, x)


def test_write_makes_two_classic_scripts(assets, tmp_path):
    module, *_ = assets
    model_js, meta_js = module.write(tmp_path)
    assert model_js.read_text().startswith('window.ZFNET_MODEL_BASE64 = "')
    text = meta_js.read_text()
    meta = json.loads(text[text.index("{"):text.rindex("}") + 1])
    model_bytes = base64.b64decode(model_js.read_text().split('"')[1])
    assert meta["model_bytes"] == len(model_bytes) and meta["weights"] == "float16"
    assert not list(tmp_path.glob("*.tmp"))
