"""zfviz.widgets: the explorer's pure view function on the teaching ZFNet, its errors, and the widget's wiring."""
import inspect

import ipywidgets
import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from zfviz import data, models, widgets
from zfviz.deconv import project, receptive_field_box
from zfviz.plotting import stretch


@pytest.fixture(scope="module")
def teaching():
    torch.set_num_threads(2)
    model, preprocess = models.load_teaching_zfnet()
    return model, preprocess, data.ClipArt("val")


def relu_map(model, x, layer):
    """relu{layer}'s output (1, C, h, w), by running the children in order (independent of zfviz)."""
    with torch.no_grad():
        for name, m in model.named_children():
            x = m(x)
            if name == f"relu{layer}":
                return x
    raise AssertionError(f"no relu{layer}")


def assert_no_hooks(model):
    for name, m in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert not getattr(m, attr), f"{name or 'model'}.{attr} is not empty"


@pytest.mark.parametrize("layer, channel, index", [(1, 5, 0), (3, 42, 11), (5, 12, 123)])
def test_deconv_view_equals_its_parts_computed_directly(teaching, layer, channel, index):
    model, preprocess, val = teaching
    view = widgets.deconv_view(model, preprocess, val, layer, channel, index)
    image, label = val[index]
    x = preprocess(image[None])
    fmap = relu_map(model, x, layer)[0, channel]                          # (h, w)
    assert view["activation"] == pytest.approx(float(fmap.max()), abs=0) and view["activation"] > 0
    y, x_ = view["position"]
    assert fmap[y, x_] == fmap.max()
    assert (y * fmap.shape[1] + x_) == int(fmap.flatten().argmax())    # the first argmax
    assert torch.equal(view["image"], image) and view["image"].shape == (3, 112, 112)
    expected = stretch(project(model, x, layer, channel, (y, x_)))[0]
    assert torch.equal(view["projection"], expected)
    assert view["projection"].min() == 0 and view["projection"].max() == 1
    assert view["box"] == receptive_field_box(model, layer, (y, x_), 112)
    assert (view["layer"], view["channel"], view["index"], view["label"]) == (layer, channel, index, label)
    assert_no_hooks(model)


def test_a_silent_map_gives_a_blank_projection(teaching):
    model, preprocess, val = teaching
    view = widgets.deconv_view(model, preprocess, val, 3, 40, 11)       # map 40 never fires on image 11
    assert view["activation"] == 0 and not view["projection"].any()


def test_projection_of_the_view_is_blank_outside_the_box(teaching):
    model, preprocess, val = teaching
    view = widgets.deconv_view(model, preprocess, val, 2, 30, 11)
    y0, x0, y1, x1 = view["box"]
    outside = torch.ones(112, 112, dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    values = view["projection"][:, outside]                               # stretched: zero maps to one value
    assert outside.any() and values.min() == values.max()
    assert (view["projection"][:, ~outside] != values.min()).any()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"layer": 0}, ValueError, r"layer .* 1\.\.5; got 0"),
    ({"layer": 6}, ValueError, r"1\.\.5"),
    ({"layer": 1, "channel": 24}, ValueError, r"channel .* 0\.\.23 .*got 24"),
    ({"layer": 2, "channel": -1}, ValueError, r"0\.\.63"),
    ({"index": 320}, ValueError, r"index .* 0\.\.319 .*got 320"),
    ({"index": 1.0}, ValueError, r"0\.\.319"),
    ({"preprocess": "mean"}, TypeError, r"preprocess must be callable"),
])
def test_bad_input_raises_naming_the_allowed_range(teaching, kwargs, error, match):
    model, preprocess, val = teaching
    args = {"preprocess": preprocess, "layer": 1, "channel": 0, "index": 0, **kwargs}
    with pytest.raises(error, match=match):
        widgets.deconv_view(model, args["preprocess"], val, args["layer"], args["channel"], args["index"])
    with pytest.raises(error, match=match):
        widgets.deconv_explorer(model, args["preprocess"], val, args["layer"], args["channel"], args["index"])
    assert_no_hooks(model)


def test_explorer_controls_ranges_and_updates(teaching):
    model, preprocess, val = teaching
    explorer = widgets.deconv_explorer(model, preprocess, val)
    assert isinstance(explorer, ipywidgets.VBox)
    assert (explorer.layer.min, explorer.layer.max) == (1, 5)
    assert (explorer.channel.min, explorer.channel.max) == (0, 23)
    assert (explorer.index.min, explorer.index.max) == (0, len(val) - 1)
    first = explorer.view
    assert (first["layer"], first["channel"], first["index"]) == (1, 0, 0)

    explorer.index.value = 11                                           # the observer recomputes the view
    assert explorer.view["index"] == 11 and not torch.equal(explorer.view["image"], first["image"])
    assert torch.equal(explorer.view["projection"], widgets.deconv_view(model, preprocess, val, 1, 0, 11)["projection"])

    explorer.channel.value = 20
    explorer.layer.value = 2                                            # 64 maps: the range grows
    assert explorer.channel.max == 63 and explorer.view["layer"] == 2 and explorer.view["channel"] == 20
    explorer.channel.value = 60
    explorer.layer.value = 1                                            # back to 24 maps: clamped to 23
    assert explorer.channel.max == 23 and explorer.channel.value == 23
    assert (explorer.view["layer"], explorer.view["channel"]) == (1, 23)
    explorer.layer.value = 5
    assert explorer.channel.max == 63 and explorer.view["layer"] == 5
    assert_no_hooks(model)
    assert not matplotlib.pyplot.get_fignums()                         # every drawn figure was closed


def test_show_view_draws_two_titled_panels_with_the_box(teaching):
    model, preprocess, val = teaching
    view = widgets.deconv_view(model, preprocess, val, 3, 42, 11)
    fig = widgets.show_view(view, val.classes)
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert titles[0] == f"image 11 ({val.classes[view['label']]})"
        assert titles[1].startswith("layer 3, map 42: ")
        assert all(len(ax.patches) == 1 for ax in fig.axes)
        assert fig.get_size_inches()[0] <= 8
    finally:
        matplotlib.pyplot.close(fig)
    with pytest.raises(TypeError, match="deconv_view"):
        widgets.show_view({"image": view["image"]})


def test_every_public_name_names_its_chapter():
    for name in widgets.__all__:
        doc = inspect.getdoc(getattr(widgets, name)) or ""
        assert 'chapter "The deconvnet, step by step" (book/deconvnet)' in doc, name
