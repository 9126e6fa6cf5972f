"""zfviz.static: the precomputed explorers hold exactly what the live functions compute, in working HTML."""
import json
import re

import pytest
import torch

from zfviz import data, models, occlusion
from zfviz.static import decode_uri, picture_uri, static_deconv_explorer, static_occlusion_explorer
from zfviz.widgets import deconv_view, occlusion_view


@pytest.fixture(scope="module")
def teaching():
    torch.manual_seed(0)
    net, pre = models.load_teaching_zfnet()
    return net, pre, data.ClipArt("val")


def _payload(explorer):
    found = re.search(r'<script type="application/json" id="([^"]+)-data">(.*?)</script>', explorer.html, re.S)
    assert found and found.group(1) == explorer.name
    return json.loads(found.group(2))


def test_picture_uri_round_trips_a_png_exactly():
    picture = torch.rand(3, 9, 7, generator=torch.Generator().manual_seed(0))
    back = decode_uri(picture_uri(picture))
    assert torch.equal(back, (picture * 255).round() / 255)
    with pytest.raises(ValueError, match=r"picture must be a \(3, H, W\) tensor"):
        picture_uri(torch.rand(9, 7))
    with pytest.raises(ValueError, match="fmt must be 'PNG' or 'JPEG'"):
        picture_uri(picture, "GIF")


def test_static_deconv_explorer_stores_the_live_views(teaching):
    net, pre, val = teaching
    channels = {1: [0, 5], 4: [3]}
    ex = static_deconv_explorer(net, pre, val, [2, 7], channels, classes=val.classes, name="deconv-test")
    payload = _payload(ex)
    assert set(payload["views"]) == {f"{l},{c},{i}" for l, cs in channels.items() for c in cs for i in (2, 7)}
    for (layer, channel, index) in [(1, 5, 2), (4, 3, 7)]:
        live = deconv_view(net, pre, val, layer, channel, index)
        stored = ex.views[(layer, channel, index)]
        assert stored["activation"] == round(live["activation"], 3)
        assert stored["box"] == list(live["box"]) and stored["position"] == list(live["position"])
        # The projection is a JPEG: close to the live one, not bit-equal.
        assert (decode_uri(stored["projection_uri"]) - live["projection"]).abs().mean() < 0.02
        assert torch.equal(decode_uri(ex.views["images"][index]), (live["image"] * 255).round() / 255)
    assert payload["images"][0]["label"] == val.classes[val[2][1]]
    assert repr(ex) == "<StaticExplorer deconv 'deconv-test': 2 layers, 3 feature maps, 2 images>"
    assert ex._repr_html_().startswith('<div class="zfviz-explorer zfviz-deconv" id="deconv-test"')


def test_static_deconv_explorer_rejects_bad_arguments(teaching):
    net, pre, val = teaching
    with pytest.raises(ValueError, match="name must be a short lower-case id"):
        static_deconv_explorer(net, pre, val, [0], {1: [0]}, name="My Explorer")
    with pytest.raises(ValueError, match=r"channels\[1\] is empty"):
        static_deconv_explorer(net, pre, val, [0], {1: []})
    with pytest.raises(TypeError, match="channels must be a dict"):
        static_deconv_explorer(net, pre, val, [0], [0, 1])
    with pytest.raises(ValueError, match="channel must be an int in 0..23"):
        static_deconv_explorer(net, pre, val, [0], {1: [24]})


def test_static_occlusion_explorer_stores_the_live_maps(teaching):
    net, pre, val = teaching
    x, y = val.tensors()
    ex = static_occlusion_explorer(net, x[:2], y[:2], 24, 8, pre, val.classes, name="occ-test")
    for n in range(2):
        expected = occlusion.occlusion_map(net, pre(x[n:n + 1])[0], int(y[n]), 24, 8)
        assert torch.allclose(ex.views[n]["prob"], expected, atol=5e-4)
        # One position against the live explorer's pure function.
        i, j = 5, 3
        live = occlusion_view(net, x[n], int(y[n]), 24, 8, (i * 8, j * 8), preprocess=pre)
        assert int(ex.views[n]["top_class"][i, j]) == live.top_class
        assert abs(float(ex.views[n]["prob"][i, j]) - live.prob) < 5e-4
        assert ex.views[n]["image_prob"] == pytest.approx(live.image_prob, abs=5e-4)
    payload = _payload(ex)
    assert payload["images"][0]["ny"] == payload["images"][0]["nx"] == (112 - 24) // 8 + 1
    # The square shows what the network sees: the mean image (preprocess.inverse of 0).
    assert (decode_uri(payload["patch"]) - pre.mean.clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="targets must give one class per image"):
        static_occlusion_explorer(net, x[:2], y[:1], 24, 8, pre)
    with pytest.raises(ValueError, match=r"targets\[0\] must be a class in 0..9"):
        static_occlusion_explorer(net, x[:1], [10], 24, 8, pre)


def test_class_names_cannot_end_the_script_early(teaching):
    net, pre, val = teaching
    x, y = val.tensors()
    evil = [f"</script><b>{c}</b>" for c in val.classes]
    ex = static_occlusion_explorer(net, x[:1], y[:1], 56, 56, pre, evil, name="occ-evil")
    assert _payload(ex)["classes"] == evil
