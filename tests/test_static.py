"""zfviz.static: the precomputed explorers hold exactly what the live functions compute, in working HTML."""
import base64
import copy
import fnmatch
import hashlib
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from string import Template

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from zfviz import checkpoints, data, occlusion
from zfviz.static import (_component, _script_json, decode_uri, picture_uri, static_deconv_explorer,
                          static_occlusion_explorer)
from zfviz.views import deconv_view, occlusion_view

S = data.TEACHING_INPUT_SIZE     # the teaching network's image side (ClipArt's default)


@pytest.fixture(scope="module")
def teaching():
    torch.manual_seed(0)
    net, pre = checkpoints.load_teaching_zfnet()
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
        assert (decode_uri(stored["patch_uri"]) - live["patch"]).abs().mean() < 0.02     # the field's patch
        assert torch.equal(decode_uri(ex.views["images"][index]), (live["image"] * 255).round() / 255)
    assert payload["images"][0]["label"] == val.classes[val[2][1]]
    assert repr(ex) == "<StaticExplorer deconv 'deconv-test': 2 layers, 3 feature maps, 2 images>"
    assert ex._repr_html_().startswith('<div class="zfviz-explorer zfviz-deconv" id="deconv-test"')


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
    assert payload["images"][0]["ny"] == payload["images"][0]["nx"] == (S - 24) // 8 + 1
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


# ----------------------------------------------------------------------------------------------
# Bad input and damaged files (issue 13): every bad value fails early, naming the argument and what is allowed
# ----------------------------------------------------------------------------------------------

PICTURE = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(1))
NAN_PICTURE = PICTURE.clone().index_put_((torch.tensor(0), torch.tensor(1), torch.tensor(2)), torch.tensor(torch.nan))
INF_PICTURE = PICTURE.clone().index_put_((torch.tensor(2), torch.tensor(0), torch.tensor(0)), torch.tensor(torch.inf))

BAD_PICTURES = [   # picture, fmt, quality, error, message
    pytest.param([[0.5]], "PNG", 90, TypeError, r"picture must be a \(3, H, W\) tensor .*got \[\[0\.5\]\] \(list\)", id="list"),
    pytest.param(torch.rand(9, 7), "PNG", 90, ValueError, r"picture must be a \(3, H, W\) tensor .*got \(9, 7\)", id="2-D"),
    pytest.param(torch.rand(1, 3, 4, 4), "PNG", 90, ValueError, r"\(3, H, W\) .*got \(1, 3, 4, 4\)", id="batch"),
    pytest.param(torch.rand(3, 0, 4), "PNG", 90, ValueError, r"H, W >= 1, got \(3, 0, 4\)", id="empty"),
    pytest.param(NAN_PICTURE, "PNG", 90, ValueError, r"picture must hold finite values in \[0, 1\]; .*1 non-finite .*nan", id="nan"),
    pytest.param(INF_PICTURE, "JPEG", 90, ValueError, r"picture must hold finite values .*first: inf", id="inf"),
    pytest.param((PICTURE * 255).byte(), "PNG", 90, TypeError, r"float tensor .*torch\.uint8 \(for 0\.\.255 pixels, divide by 255\)", id="uint8"),
    pytest.param(PICTURE > 0.5, "PNG", 90, TypeError, r"picture must be a float tensor .*torch\.bool", id="bool"),
    pytest.param(PICTURE * 4 - 2, "PNG", 90, ValueError, r"pixel values in \[0, 1\] \(the picture, not the network's preprocessed input\); got values in \[-", id="preprocessed"),
    pytest.param(PICTURE, "png", 90, ValueError, r"fmt must be 'PNG' or 'JPEG', got 'png'", id="fmt-lower"),
    pytest.param(PICTURE, "GIF", 90, ValueError, r"fmt must be 'PNG' or 'JPEG', got 'GIF'", id="fmt-gif"),
    pytest.param(PICTURE, None, 90, TypeError, r"fmt must be 'PNG' or 'JPEG', got None \(NoneType\)", id="fmt-none"),
    pytest.param(PICTURE, "JPEG", 0, ValueError, r"quality must be an int in 1\.\.100 .*got 0$", id="quality-0"),
    pytest.param(PICTURE, "JPEG", 101, ValueError, r"quality must be an int in 1\.\.100 .*got 101$", id="quality-101"),
    pytest.param(PICTURE, "JPEG", -5, ValueError, r"quality must be an int in 1\.\.100 .*got -5$", id="quality-negative"),
    pytest.param(PICTURE, "PNG", 500, ValueError, r"quality must be an int in 1\.\.100 .*got 500$", id="quality-png"),
    pytest.param(PICTURE, "JPEG", 50.5, TypeError, r"quality must be an int in 1\.\.100 .*got 50\.5 \(float\)", id="quality-float"),
    pytest.param(PICTURE, "JPEG", True, TypeError, r"quality must be an int .*got True \(bool\)", id="quality-bool"),
    pytest.param(PICTURE, "JPEG", "90", TypeError, r"quality must be an int .*got '90' \(str\)", id="quality-str"),
    pytest.param(PICTURE, "JPEG", None, TypeError, r"quality must be an int .*got None \(NoneType\)", id="quality-none"),
]


@pytest.mark.parametrize("picture, fmt, quality, error, message", BAD_PICTURES)
def test_picture_uri_rejects_bad_input(picture, fmt, quality, error, message):
    with pytest.raises(error, match=message):
        picture_uri(picture, fmt, quality)


def test_picture_uri_accepts_numpy_ints_half_floats_and_clips_a_small_overshoot():
    jpeg = picture_uri(PICTURE, "JPEG", np.int64(80))
    assert jpeg.startswith("data:image/jpeg;base64,") and decode_uri(jpeg).shape == (3, 4, 5)
    assert decode_uri(picture_uri(PICTURE.half())).shape == (3, 4, 5)
    overshoot = PICTURE * 1.04 - 0.02                       # resampling overshoot: clipped, not an error
    assert torch.equal(decode_uri(picture_uri(overshoot)), (overshoot.clamp(0, 1) * 255).round() / 255)


def _uri(kind: str, payload: bytes) -> str:
    return f"data:image/{kind};base64," + base64.b64encode(payload).decode("ascii")


PNG = picture_uri(PICTURE)
PNG_BYTES = base64.b64decode(PNG.split(",", 1)[1])
_gif = io.BytesIO()
Image.new("RGB", (2, 2)).save(_gif, format="GIF")

BAD_URIS = [   # uri, error, message
    pytest.param(None, TypeError, r"uri must be a str, a data: URI .*got None \(NoneType\)", id="none"),
    pytest.param(PNG.encode(), TypeError, r"uri must be a str, .*\(bytes\)", id="bytes"),
    pytest.param("", ValueError, r"uri must be 'data:image/png;base64,\.\.\.' or 'data:image/jpeg;base64,\.\.\.' .*got ''", id="empty"),
    pytest.param("hello", ValueError, r"uri must be 'data:image/png;base64,.*got 'hello'", id="no-comma"),
    pytest.param(PNG.split(",", 1)[1], ValueError, r"uri must be 'data:image/png;base64", id="no-header"),
    pytest.param(PNG.replace("image/png", "text/plain"), ValueError, r"uri must be 'data:image/png", id="text-plain"),
    pytest.param(PNG.replace("image/png", "image/gif"), ValueError, r"uri must be 'data:image/png", id="gif-type"),
    pytest.param(PNG.replace(";base64", ""), ValueError, r"uri must be 'data:image/png", id="not-base64"),
    pytest.param(PNG + "\n", ValueError, r"nothing after it", id="trailing-newline"),
    pytest.param(PNG[:30] + "@@" + PNG[30:], ValueError, r"uri must be 'data:image/png", id="bad-character"),
    pytest.param(PNG[:-2], ValueError, r"uri's base64 is damaged \(.*padding", id="cut-base64"),
    pytest.param(_uri("png", b"hello"), ValueError, r"uri does not hold a readable PNG picture", id="not-a-picture"),
    pytest.param(_uri("png", PNG_BYTES[:len(PNG_BYTES) // 2]), ValueError, r"uri does not hold a readable PNG", id="truncated-png"),
    pytest.param(PNG.replace("image/png", "image/jpeg"), ValueError, r"uri says image/jpeg but holds a PNG picture", id="png-as-jpeg"),
    pytest.param(_uri("png", _gif.getvalue()), ValueError, r"uri says image/png but holds a GIF picture", id="gif-as-png"),
]


@pytest.mark.parametrize("uri, error, message", BAD_URIS)
def test_decode_uri_rejects_malformed_or_damaged_uris(uri, error, message):
    with pytest.raises(error, match=message):
        decode_uri(uri)


def _nan_net(net):
    bad = copy.deepcopy(net)
    with torch.no_grad():
        bad[0].weight[0, 0, 0, 0] = float("nan")
    return bad


GREY = torch.full((3, S, S), 0.5)

BAD_DECONV = [   # (net, pre, val) -> arguments that differ from a good call, error, message
    pytest.param(lambda net, pre, val: dict(name="My Explorer"), ValueError, r"name must be a short lower-case id .*got 'My Explorer'", id="name-spaces"),
    pytest.param(lambda net, pre, val: dict(name="deconv-1\n"), ValueError, r"name must be a short lower-case id .*got 'deconv-1\\n'", id="name-newline"),
    pytest.param(lambda net, pre, val: dict(name='x" onload="alert(1)'), ValueError, r"name must be a short lower-case id", id="name-quote"),
    pytest.param(lambda net, pre, val: dict(name=""), ValueError, r"name must be a short lower-case id .*got ''", id="name-empty"),
    pytest.param(lambda net, pre, val: dict(name=5), TypeError, r"name must be a short lower-case id .*got 5 \(int\)", id="name-int"),
    pytest.param(lambda net, pre, val: dict(quality=0), ValueError, r"quality must be an int in 1\.\.100 .*got 0$", id="quality-0"),
    pytest.param(lambda net, pre, val: dict(quality=1.5), TypeError, r"quality must be an int in 1\.\.100 .*got 1\.5 \(float\)", id="quality-float"),
    pytest.param(lambda net, pre, val: dict(model=5), TypeError, r"model must be a torch\.nn\.Module; got 5 \(int\)", id="model-int"),
    pytest.param(lambda net, pre, val: dict(preprocess=5), TypeError, r"preprocess must be callable .*got 5 \(int\)", id="preprocess-int"),
    pytest.param(lambda net, pre, val: dict(dataset=5), TypeError, r"dataset must be indexable and have a length", id="dataset-int"),
    pytest.param(lambda net, pre, val: dict(dataset=[]), ValueError, r"dataset is empty", id="dataset-empty"),
    pytest.param(lambda net, pre, val: dict(dataset=[GREY], indices=[0]), TypeError, r"dataset\[0\] must be an \(image, label\) pair", id="dataset-no-labels"),
    pytest.param(lambda net, pre, val: dict(dataset=[(GREY.numpy(), 0)], indices=[0]), ValueError, r"dataset\[0\]'s image must be a \(3, H, W\) tensor .*got ndarray", id="image-numpy"),
    pytest.param(lambda net, pre, val: dict(dataset=[(GREY[0], 0)], indices=[0]), ValueError, rf"dataset\[0\]'s image must be a \(3, H, W\) tensor .*got \({S}, {S}\)", id="image-2-D"),
    pytest.param(lambda net, pre, val: dict(dataset=[((GREY * 255).byte(), 0)], indices=[0]), TypeError, r"dataset\[0\]'s image must be a float tensor .*uint8", id="image-uint8"),
    pytest.param(lambda net, pre, val: dict(dataset=[(GREY * torch.nan, 0)], indices=[0]), ValueError, r"dataset\[0\]'s image must hold finite values .*nan", id="image-nan"),
    pytest.param(lambda net, pre, val: dict(dataset=[(GREY * 3, 0)], indices=[0]), ValueError, r"dataset\[0\]'s image must hold pixel values in \[0, 1\] .*got values in \[1\.5, 1\.5\]", id="image-range"),
    pytest.param(lambda net, pre, val: dict(dataset=[(GREY, -1)], indices=[0], classes=val.classes), ValueError, r"dataset\[0\]'s label must be an int in 0\.\.9 .*got -1", id="label-negative"),
    pytest.param(lambda net, pre, val: dict(dataset=[(GREY, 0.0)], indices=[0]), TypeError, r"dataset\[0\]'s label must be an int >= 0 .*got 0\.0 \(float\)", id="label-float"),
    pytest.param(lambda net, pre, val: dict(indices=5), TypeError, r"indices must be a list of ints .*got 5 \(int\)", id="indices-int"),
    pytest.param(lambda net, pre, val: dict(indices="12"), TypeError, r"indices must be a list of ints .*got '12' \(str\)", id="indices-str"),
    pytest.param(lambda net, pre, val: dict(indices=[]), ValueError, r"indices must name at least one image", id="indices-empty"),
    pytest.param(lambda net, pre, val: dict(indices=[3, 3]), ValueError, r"indices must not repeat a value .*\[3\] given more than once", id="indices-repeated"),
    pytest.param(lambda net, pre, val: dict(indices=[True]), TypeError, r"indices\[0\] must be an int in 0\.\.319 .*got True \(bool\)", id="indices-bool"),
    pytest.param(lambda net, pre, val: dict(indices=[1.0]), TypeError, r"indices\[0\] must be an int in 0\.\.319 .*got 1\.0 \(float\)", id="indices-float"),
    pytest.param(lambda net, pre, val: dict(indices=[0, -1]), ValueError, r"indices\[1\] must be an int in 0\.\.319 \(images of the data set, which has 320\); got -1", id="indices-negative"),
    pytest.param(lambda net, pre, val: dict(indices=[320]), ValueError, r"indices\[0\] must be an int in 0\.\.319 .*got 320", id="indices-past-end"),
    pytest.param(lambda net, pre, val: dict(indices=torch.zeros(1, 1, dtype=torch.long)), ValueError, r"indices must be a list of ints .*got shape \(1, 1\)", id="indices-2-D"),
    pytest.param(lambda net, pre, val: dict(channels=[0, 1]), TypeError, r"channels must be a dict \{layer: \[feature maps\]\}, got \[0, 1\] \(list\)", id="channels-list"),
    pytest.param(lambda net, pre, val: dict(channels={}), ValueError, r"channels must be a dict .*naming at least one layer", id="channels-empty"),
    pytest.param(lambda net, pre, val: dict(channels={1: []}), ValueError, r"channels\[1\] is empty", id="maps-empty"),
    pytest.param(lambda net, pre, val: dict(channels={1: 5}), TypeError, r"channels\[1\] must be a list of ints .*got 5 \(int\)", id="maps-int"),
    pytest.param(lambda net, pre, val: dict(channels={1: [0, 0]}), ValueError, r"channels\[1\] must not repeat a value .*\[0\]", id="maps-repeated"),
    pytest.param(lambda net, pre, val: dict(channels={1: [0.5]}), TypeError, r"channels\[1\]\[0\] must be an int >= 0 .*got 0\.5 \(float\)", id="map-float"),
    pytest.param(lambda net, pre, val: dict(channels={1: [-1]}), ValueError, r"channels\[1\]\[0\] must be an int >= 0 .*got -1", id="map-negative"),
    pytest.param(lambda net, pre, val: dict(channels={1: [24]}), ValueError, r"channel must be an int in 0\.\.23", id="map-past-end"),
    pytest.param(lambda net, pre, val: dict(channels={"1": [0]}), TypeError, r"channels key '1' must be an int >= 1 \(a conv layer number\); got '1' \(str\)", id="layer-str"),
    pytest.param(lambda net, pre, val: dict(channels={1: [0], "2": [0]}), TypeError, r"channels key '2' must be an int", id="layer-mixed"),
    pytest.param(lambda net, pre, val: dict(channels={True: [0]}), TypeError, r"channels key True must be an int .*\(bool\)", id="layer-bool"),
    pytest.param(lambda net, pre, val: dict(channels={0: [0]}), ValueError, r"channels key 0 must be an int >= 1 .*got 0", id="layer-0"),
    pytest.param(lambda net, pre, val: dict(channels={9: [0]}), ValueError, r"layer", id="layer-9"),
    pytest.param(lambda net, pre, val: dict(classes="abcdefghij"), TypeError, r"classes must be a list of class names \(str\).*got 'abcdefghij' \(str\)", id="classes-str"),
    pytest.param(lambda net, pre, val: dict(classes={k: c for k, c in enumerate(val.classes)}), TypeError, r"classes must be a list of class names .*\(dict\)", id="classes-dict"),
    pytest.param(lambda net, pre, val: dict(classes=list(range(10))), TypeError, r"classes\[0\] must be a str \(a class name\); got 0 \(int\)", id="classes-ints"),
    pytest.param(lambda net, pre, val: dict(classes=val.classes[:1]), ValueError, r"dataset\[8\]'s label must be an int in 0\.\.0 \(an index into classes, which names 1\)", id="classes-short"),
    pytest.param(lambda net, pre, val: dict(model=_nan_net(net)), ValueError, r"the model gives non-finite values \(activation nan\) for layer 1, feature map 0 of image 8", id="model-nan"),
]


def _good_deconv_arguments(net, pre, val):
    return dict(model=net, preprocess=pre, dataset=val, indices=[8], channels={1: [0]}, name="deconv-bad")


@pytest.mark.parametrize("change, error, message", BAD_DECONV)
def test_static_deconv_explorer_rejects_bad_input(teaching, change, error, message):
    net, pre, val = teaching
    assert val[8][1] != 0                                    # "classes-short" needs an image of a class > 0
    with pytest.raises(error, match=message):
        static_deconv_explorer(**{**_good_deconv_arguments(net, pre, val), **change(net, pre, val)})


def test_static_deconv_explorer_takes_numpy_and_tensor_integers_as_ints(teaching):
    net, pre, val = teaching
    plain = static_deconv_explorer(net, pre, val, [2, 7], {1: [0, 5]}, name="deconv-ints")
    other = static_deconv_explorer(net, pre, val, torch.tensor([2, 7]), {np.int64(1): np.array([0, 5])},
                                   name="deconv-ints", quality=np.int32(90))
    assert other.html == plain.html and set(other.views) == set(plain.views)


class _Tiny(nn.Module):
    """A three-class classifier of 12 x 12 pictures, cheap enough to run anything."""

    def __init__(self, bias=0.0):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        with torch.no_grad():
            self.net[-1].bias[0] = bias

    def forward(self, x):
        return self.net(x)


class _BadPreprocess:
    def __init__(self, forward, inverse=None):
        self.forward, self.inverse_ = forward, inverse

    def __call__(self, x):
        return self.forward(x)

    def inverse(self, x):
        return self.inverse_(x) if self.inverse_ else x


IMAGES = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(2))

BAD_OCCLUSION = [   # arguments that differ from a good call, error, message
    pytest.param(dict(name="Occlusion"), ValueError, r"name must be a short lower-case id .*got 'Occlusion'", id="name"),
    pytest.param(dict(model=5), TypeError, r"model must be a torch\.nn\.Module; got 5 \(int\)", id="model-int"),
    pytest.param(dict(images=[IMAGES[0]]), TypeError, r"images must be a \(N, 3, H, W\) tensor in \[0, 1\], got .*\(list\)", id="images-list"),
    pytest.param(dict(images=IMAGES[0]), ValueError, r"images must be \(N, 3, H, W\), got \(3, 12, 12\): for one image use images\[None\]", id="images-3-D"),
    pytest.param(dict(images=IMAGES[:, :1]), ValueError, r"images must be \(N, 3, H, W\), got \(2, 1, 12, 12\)", id="images-grey"),
    pytest.param(dict(images=IMAGES[:0], targets=[]), ValueError, r"images must hold at least one image .*got \(0, 3, 12, 12\)", id="images-none"),
    pytest.param(dict(images=IMAGES[..., :0]), ValueError, r"at least 1x1 pixels, got \(2, 3, 12, 0\)", id="images-no-pixels"),
    pytest.param(dict(images=(IMAGES * 255).byte()), TypeError, r"images must be a float tensor .*uint8 \(for 0\.\.255 pixels, divide by 255\)", id="images-uint8"),
    pytest.param(dict(images=IMAGES.double() * torch.nan), ValueError, r"images must hold finite values in \[0, 1\]; it has 864 non-finite ones \(first: nan\)", id="images-nan"),
    pytest.param(dict(images=IMAGES.where(IMAGES < 0.99, torch.inf)), ValueError, r"images must hold finite values .*\(first: inf\)", id="images-inf"),
    pytest.param(dict(images=IMAGES - 0.5), ValueError, r"images must hold pixel values in \[0, 1\] \(the picture, not the network's preprocessed input\)", id="images-preprocessed"),
    pytest.param(dict(targets=1), TypeError, r"targets must be a list of ints .*got 1 \(int\)", id="targets-int"),
    pytest.param(dict(targets=[0]), ValueError, r"targets must give one class per image: 2 images, 1 targets", id="targets-short"),
    pytest.param(dict(targets=[0, 1, 2]), ValueError, r"targets must give one class per image: 2 images, 3 targets", id="targets-long"),
    pytest.param(dict(targets=[0.7, 1.2]), TypeError, r"targets\[0\] must be an int >= 0 \(class indices, one per image\); got 0\.7 \(float\)", id="targets-float"),
    pytest.param(dict(targets=torch.tensor([0.0, 1.0])), TypeError, r"targets\[0\] must be an int >= 0 .*got 0\.0 \(float\)", id="targets-float-tensor"),
    pytest.param(dict(targets=[True, False]), TypeError, r"targets\[0\] must be an int .*got True \(bool\)", id="targets-bool"),
    pytest.param(dict(targets=["1", "0"]), TypeError, r"targets\[0\] must be an int .*got '1' \(str\)", id="targets-str"),
    pytest.param(dict(targets=[0, -1]), ValueError, r"targets\[1\] must be an int >= 0 .*got -1", id="targets-negative"),
    pytest.param(dict(targets=[0, 3]), ValueError, r"targets\[1\] must be a class in 0\.\.2, got 3", id="targets-past-end"),
    pytest.param(dict(size=0), ValueError, r"size must be an int in 1\.\.12 \(the square's side; the images are 12x12\); got 0", id="size-0"),
    pytest.param(dict(size=-3), ValueError, r"size must be an int in 1\.\.12 .*got -3", id="size-negative"),
    pytest.param(dict(size=13), ValueError, r"size must be an int in 1\.\.12 .*got 13", id="size-too-big"),
    pytest.param(dict(size=True), TypeError, r"size must be an int in 1\.\.12 .*got True \(bool\)", id="size-bool"),
    pytest.param(dict(size=4.0), TypeError, r"size must be an int in 1\.\.12 .*got 4\.0 \(float\)", id="size-float"),
    pytest.param(dict(stride=0), ValueError, r"stride must be an int >= 1 .*got 0", id="stride-0"),
    pytest.param(dict(stride=None), TypeError, r"stride must be an int >= 1 .*got None \(NoneType\)", id="stride-none"),
    pytest.param(dict(fill=float("nan")), ValueError, r"fill must be a finite real number .*got nan", id="fill-nan"),
    pytest.param(dict(fill=float("-inf")), ValueError, r"fill must be a finite real number .*got -inf", id="fill-inf"),
    pytest.param(dict(fill=torch.tensor(float("nan"))), ValueError, r"fill must be a finite real number .*got nan", id="fill-nan-tensor"),
    pytest.param(dict(fill="0.5"), TypeError, r"fill must be a finite real number .*got '0\.5' \(str\)", id="fill-str"),
    pytest.param(dict(fill=True), TypeError, r"fill must be a finite real number .*got True \(bool\)", id="fill-bool"),
    pytest.param(dict(fill=3e38), ValueError, r"the model gives non-finite probabilities for occluded copies of images\[0\] \(fill=3e\+38\)", id="fill-overflows"),
    pytest.param(dict(preprocess=5), TypeError, r"preprocess must be callable .*got 5 \(int\)", id="preprocess-int"),
    pytest.param(dict(preprocess=lambda x: x[..., :8, :8]), ValueError, r"preprocess must map the images \(2, 3, 12, 12\) to a float tensor of the same shape .*returned \(2, 3, 8, 8\)", id="preprocess-crops"),
    pytest.param(dict(preprocess=lambda x: x.numpy()), ValueError, r"preprocess must map the images .*returned ndarray", id="preprocess-numpy"),
    pytest.param(dict(preprocess=lambda x: x / 0 * 0), ValueError, r"preprocess returned non-finite values", id="preprocess-nan"),
    pytest.param(dict(preprocess=_BadPreprocess(lambda x: x, lambda x: x * torch.nan)), ValueError, r"preprocess\.inverse of fill=0\.0 is not finite", id="inverse-nan"),
    pytest.param(dict(classes="abc"), TypeError, r"classes must be a list of class names \(str\), one per class, or None; got 'abc' \(str\)", id="classes-str"),
    pytest.param(dict(classes=["a", None, "c"]), TypeError, r"classes\[1\] must be a str \(a class name\); got None", id="classes-none"),
    pytest.param(dict(classes=["a"]), ValueError, r"classes must name every class of the model: it has 3, classes has 1", id="classes-short"),
    pytest.param(dict(classes=["a", "b", "c", "d"]), ValueError, r"it has 3, classes has 4", id="classes-long"),
    pytest.param(dict(model=_Tiny(bias=float("nan"))), ValueError, r"the model's logits for images\[0\] are not finite \(\[nan, ", id="model-nan"),
    pytest.param(dict(model=nn.Conv2d(3, 2, 3)), ValueError, r"model must return logits \(N, num_classes\); for images\[0\] it returned \(1, 2, 10, 10\)", id="model-not-a-classifier"),
]


@pytest.mark.parametrize("change, error, message", BAD_OCCLUSION)
def test_static_occlusion_explorer_rejects_bad_input(change, error, message):
    arguments = dict(model=_Tiny(), images=IMAGES, targets=[0, 1], size=4, stride=4, name="occ-bad")
    with pytest.raises(error, match=message):
        static_occlusion_explorer(**{**arguments, **change})


def test_static_occlusion_explorer_takes_numpy_and_tensor_integers_as_ints():
    plain = static_occlusion_explorer(_Tiny(), IMAGES, [0, 2], 4, 4, fill=0.25, name="occ-ints")
    other = static_occlusion_explorer(_Tiny(), IMAGES, torch.tensor([0, 2]), np.int64(4), torch.tensor(4),
                                      fill=torch.tensor(0.25), name="occ-ints")
    assert other.html == plain.html and _payload(other)["size"] == 4


def test_the_json_writer_is_strict_and_safe_inside_a_script_element():
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match=r"the explorer's data holds a non-finite number .*NaN or infinity"):
            _script_json({"a": [1.0, bad]})
    text = _script_json(HOSTILE)
    assert not set(text) & set("<>&\u2028\u2029") and json.loads(text) == HOSTILE


# ImageFolder class names are directory names: anything a file system allows, which is nearly anything.
HOSTILE = ["</script><script>window.pwned = 1</script>", "<!--<script>", "</SCRIPT >", "]]><b>bold</b>",
           "a\u2028b\u2029c", "&amp; &lt; &#60;", "quotes \" and ' and \\", "${1 + 1} {{ x }}",
           "<img src=x onerror=\"window.pwned = 2\">", "r\u00e9sum\u00e9 \U0001F98A \x00 end"]


class _Elements(HTMLParser):
    """Every start tag, and the text of every <script> element, as an HTML parser reads the page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.scripts, self._script = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "script":
            self._script = [dict(attrs), ""]

    def handle_data(self, text):
        if self._script is not None:
            self._script[1] += text

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append(tuple(self._script))
            self._script = None

    def handle_comment(self, text):
        self.tags.append("<!--")


def _elements(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    parser.close()
    return parser


def test_a_component_carries_hostile_text_exactly_and_nothing_else():
    intended = {"classes": HOSTILE, "nested": {"</script>": [1, 2.5, None, True]}, "u": "data:image/png;base64,AA=="}
    page = _component("x-1", "deconv", intended, "<div></div>", "root.dataset.ok = D.classes.length;")
    parsed = _elements(page)
    assert parsed.tags == ["div", "div", "script", "script"]
    (attrs, text), (code_attrs, code) = parsed.scripts
    assert attrs == {"type": "application/json", "id": "x-1-data"} and code_attrs == {}
    assert json.loads(text) == intended                               # exactly the data, after the HTML parser
    assert "<" not in text and "\u2028" not in text                # no "</script", no "<!--", no line separator
    assert 'getElementById("x-1")' in code and 'getElementById("x-1-data")' in code


def test_hostile_class_names_reach_the_page_as_data_only(teaching):
    net, pre, val = teaching
    x, y = val.tensors()
    deconv_ex = static_deconv_explorer(net, pre, val, [2, 8], {1: [0]}, classes=HOSTILE, name="deconv-evil")
    occ_ex = static_occlusion_explorer(net, x[:2], y[:2], 56, 56, pre, HOSTILE, name="occ-evil")
    page = f"<!DOCTYPE html><html><body>{deconv_ex.html}<p>after</p>{occ_ex.html}</body></html>"
    parsed = _elements(page)
    assert [t for t in parsed.tags if t == "script"] == ["script"] * 4 and "<!--" not in parsed.tags
    assert parsed.tags.count("p") == 1 and "b" not in parsed.tags and parsed.tags.count("img") == 4
    data_scripts = [json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
                    for attrs, text in parsed.scripts if attrs.get("type") == "application/json"]
    deconv_data, occ_data = data_scripts
    assert [im["label"] for im in deconv_data["images"]] == [HOSTILE[int(y[2])], HOSTILE[int(y[8])]]
    assert occ_data["classes"] == HOSTILE
    assert [im["target"] for im in occ_data["images"]] == [HOSTILE[int(t)] for t in y[:2]]
    for attrs, text in parsed.scripts:
        assert "<" not in text if attrs else "</" not in text     # the code is ours: no markup in it either


# ----------------------------------------------------------------------------------------------
# The explorers' markup, styles and scripts are package data (zfviz/explorers, issue 17)
# ----------------------------------------------------------------------------------------------

EXPLORERS = resources.files("zfviz") / "explorers"
# sha256 of each page less its JSON data, as zfviz.static wrote it before the markup and scripts moved out of
# its Python strings: the move changed no byte. (A deliberate change to the explorers' page updates these.)
PINNED = {"deconv-test": "8a15b91a41441d0a7ad8d68c3b19e41a6c4a850a77232f7fed5b1312b6c38bda",
          "occ-ints": "445acd380010c5e5fe8476d74f3a02dbec3f045961d21f76cfe2036409fc73da"}


def _skeleton(page: str) -> str:
    """The page without its data (the JSON in the first <script>): markup, styles and script only."""
    skeleton, found = re.subn(r'(<script type="application/json" id="[a-z0-9-]+-data">).*?(</script>)', r"\1\2",
                              page, flags=re.S)
    assert found == 1
    return skeleton


@pytest.fixture(scope="module")
def two_pages(teaching):
    net, pre, val = teaching
    return (static_deconv_explorer(net, pre, val, [2], {1: [0]}, name="deconv-test"),
            static_occlusion_explorer(_Tiny(), IMAGES, [0, 2], 4, 4, fill=0.25, name="occ-ints"))


def test_the_pages_are_byte_for_byte_those_written_before_the_move(two_pages):
    for explorer in two_pages:
        digest = hashlib.sha256(_skeleton(explorer.html).encode("utf-8")).hexdigest()
        assert digest == PINNED[explorer.name], f"{explorer.kind}: the page's markup or script changed"


def test_the_pages_carry_the_package_data_files_verbatim(two_pages):
    styles = json.loads((EXPLORERS / "styles.json").read_text(encoding="utf-8"))
    for explorer, size in zip(two_pages, [None, {"width": 12, "height": 12}]):
        page, kind = explorer.html, explorer.kind
        script = (EXPLORERS / f"{kind}.js").read_text(encoding="utf-8")
        assert page.count(script) == 1 and f"textContent);\n{script}}})();</script></div>" in page
        # The templates' line breaks and indentation are for their readers; the page has none of them.
        markup = re.sub(r"\n[ \t]*", "", (EXPLORERS / f"{kind}.html").read_text(encoding="utf-8"))
        body = Template(markup).substitute(styles, **(size or {}))
        assert page.count(body) == 1 and "${" not in body
        assert page.startswith(f'<div class="zfviz-explorer zfviz-{kind}" id="{explorer.name}" data-kind="{kind}" '
                               f'style="{styles["explorer"]}">{body}<script type="application/json"')


def test_every_explorer_file_goes_into_the_wheel():
    tomllib = pytest.importorskip("tomllib")                 # Python >= 3.11
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["zfviz"]
    files = sorted(f.name for f in EXPLORERS.iterdir() if f.is_file())
    assert {"component.html", "deconv.html", "deconv.js", "occlusion.html", "occlusion.js", "styles.json"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(f"explorers/{name}", p) for p in patterns), f"{name} is not package data"


def test_the_static_pages_build_without_ipywidgets_or_ipython():
    """zfviz.static imports zfviz.views, never zfviz.widgets: the book's pages build where no widget library is."""
    code = """if True:
        import sys
        sys.modules["ipywidgets"] = None        # import ipywidgets (or IPython) now raises ImportError
        sys.modules["IPython"] = None
        import torch
        from torch import nn
        from zfviz import static, views
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        explorer = static.static_occlusion_explorer(model, torch.rand(1, 3, 12, 12), [0], 4, 4)
        assert explorer.html.startswith('<div class="zfviz-explorer zfviz-occlusion"')
        assert "zfviz.widgets" not in sys.modules, "zfviz.static imported zfviz.widgets"
        print("ok")
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
