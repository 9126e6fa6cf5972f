"""zfviz.widgets: the explorers' pure view functions on the teaching ZFNet, their errors, and the widgets' wiring."""
import asyncio
import copy
import inspect

import ipywidgets
import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from reference import assert_no_hooks
from reference import relu_output as relu_map

from zfviz import data, models, occlusion, widgets
from zfviz.deconv import field_crop, project, receptive_field_box
from zfviz.plotting import stretch_symmetric

S = data.TEACHING_INPUT_SIZE     # the teaching network's image side (ClipArt's default)




def firing_channel(model, preprocess, val, layer, index, rank=1):
    """A feature map of ``layer`` that fires on image ``index``: the ``rank``-th strongest (derived from the
    model, so the test follows a retrained network)."""
    fmap = relu_map(model, preprocess(val[index][0][None]), layer)[0]
    order = fmap.amax(dim=(1, 2)).argsort(descending=True)
    return int(order[rank])


def silent_case(model, preprocess, val):
    """(layer, channel, index) of a map that does not fire at all on that image (ReLU nets have many)."""
    for index in range(20):
        for layer in (3, 4, 5, 2):
            fmap = relu_map(model, preprocess(val[index][0][None]), layer)[0]
            silent = (fmap.amax(dim=(1, 2)) == 0).nonzero().flatten()
            if len(silent):
                return layer, int(silent[0]), index
    raise AssertionError("no silent feature map on the first 20 images")


@pytest.mark.parametrize("layer, index", [(1, 0), (3, 11), (5, 123)])
def test_deconv_view_equals_its_parts_computed_directly(teaching, layer, index):
    model, preprocess, val = teaching
    channel = firing_channel(model, preprocess, val, layer, index)
    view = widgets.deconv_view(model, preprocess, val, layer, channel, index)
    image, label = val[index]
    side = image.shape[-1]
    x = preprocess(image[None])
    fmap = relu_map(model, x, layer)[0, channel].detach()                 # (h, w)
    assert view["activation"] == pytest.approx(float(fmap.max()), abs=0) and view["activation"] > 0
    y, x_ = view["position"]
    assert fmap[y, x_] == fmap.max()
    assert (y * fmap.shape[1] + x_) == int(fmap.flatten().argmax())    # the first argmax
    assert torch.equal(view["image"], image) and view["image"].shape == (3, side, side)
    full = project(model, x, layer, channel, (y, x_))[0]
    crop = field_crop(full, model, layer, (y, x_))
    assert torch.equal(view["projection"], stretch_symmetric(crop))
    field = {r.name: r.receptive_field for r in models.layer_table(model)}[f"relu{layer}"]
    assert view["projection"].shape == view["patch"].shape == (3, field, field)
    assert torch.equal(view["patch"], field_crop(image, model, layer, (y, x_), fill=1.0))
    assert view["box"] == receptive_field_box(model, layer, (y, x_), side)
    x0, y0, x1, y1 = view["box"]                                         # the crop lost nothing: zero outside
    assert crop.abs().sum() == pytest.approx(full[:, y0:y1, x0:x1].abs().sum().item(), rel=1e-6)
    assert full.abs().sum() == pytest.approx(full[:, y0:y1, x0:x1].abs().sum().item(), rel=1e-6)
    assert (view["layer"], view["channel"], view["index"], view["label"]) == (layer, channel, index, label)
    assert_no_hooks(model)


def test_a_silent_map_gives_a_grey_projection(teaching):
    model, preprocess, val = teaching
    layer, channel, index = silent_case(model, preprocess, val)
    view = widgets.deconv_view(model, preprocess, val, layer, channel, index)
    assert view["activation"] == 0 and (view["projection"] == 0.5).all()    # zero is grey


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


def test_show_view_draws_three_titled_panels_with_the_box(teaching):
    model, preprocess, val = teaching
    channel = firing_channel(model, preprocess, val, 3, 11)
    view = widgets.deconv_view(model, preprocess, val, 3, channel, 11)
    fig = widgets.show_view(view, val.classes)
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert titles[0] == f"image 11 ({val.classes[view['label']]})"
        assert titles[1] == f"patch ({view['patch'].shape[-1]} px field)"
        assert titles[2].startswith(f"layer 3, map {channel}: ")
        assert [len(ax.patches) for ax in fig.axes] == [1, 0, 0]         # the box, on the image only
        assert fig.get_size_inches()[0] <= 8
    finally:
        matplotlib.pyplot.close(fig)
    with pytest.raises(TypeError, match="deconv_view"):
        widgets.show_view({"image": view["image"]})


def test_the_pure_functions_stay_importable_from_widgets():
    from zfviz import views
    for name in views.__all__:
        assert getattr(widgets, name) is getattr(views, name), name     # re-exported, not copied


def test_every_public_name_names_its_chapter():
    for name in widgets.__all__:
        doc = inspect.getdoc(getattr(widgets, name)) or ""
        chapter = ('"Occlusion sensitivity" (book/occlusion)' if "occlusion" in name.lower()
                   else '"The deconvnet, step by step" (book/deconvnet)')
        assert f"chapter {chapter}" in doc, name


# ---------------------------------------------------------------- the occlusion explorer (ZF Fig. 7)

def occluded_probs(model, x, position, size, fill=0.0):
    """softmax of one occluded copy, computed here (independent of zfviz.occlusion): (K,)."""
    copy_ = x.clone()
    copy_[:, position[0]:position[0] + size, position[1]:position[1] + size] = fill
    with torch.no_grad():
        return model(copy_[None]).softmax(dim=1)[0]


@pytest.mark.parametrize("index, size, stride, position", [(11, 16, 4, (40, 52)), (0, 24, 8, (8, 16)),
                                                          (123, 9, 7, (0, 103))])
def test_occlusion_view_equals_its_parts_computed_directly(teaching, index, size, stride, position):
    model, preprocess, val = teaching
    image, label = val[index]
    view = widgets.occlusion_view(model, image, label, size, stride, position, preprocess=preprocess)
    x = preprocess(image[None])[0]
    assert torch.equal(view.prob_map, occlusion.occlusion_map(model, x, label, size, stride))
    assert view.prob_map.shape == ((S - size) // stride + 1,) * 2 and not view.coarse
    probs = occluded_probs(model, x, position, size)
    assert view.prob == pytest.approx(float(probs[label]), abs=1e-6)
    assert view.top_class == int(probs.argmax()) and view.top_prob == pytest.approx(float(probs.max()), abs=1e-6)
    with torch.no_grad():
        assert view.image_prob == pytest.approx(float(model(x[None]).softmax(1)[0, label]), abs=1e-6)
    if position[0] % stride == 0 and position[1] % stride == 0:          # on the grid: the map's own cell
        assert view.prob == pytest.approx(float(view.prob_map[position[0] // stride, position[1] // stride]),
                                          abs=1e-5)
    # What the network sees, back in pixels: the image outside the square, the mean image inside it.
    y, x_ = position
    inside = torch.zeros(S, S, dtype=torch.bool)
    inside[y:y + size, x_:x_ + size] = True
    assert torch.allclose(view.image[:, ~inside], image[:, ~inside], atol=1e-5)
    assert torch.allclose(view.image[:, inside], preprocess.mean[:, inside].clamp(0, 1), atol=1e-5)
    assert (view.position, view.size, view.stride, view.target) == (position, size, stride, label)


def test_the_occluder_over_the_object_lowers_its_probability(teaching):
    """The paper's point, on the teaching net: the map is lowest where the square covers the object."""
    model, preprocess, val = teaching
    index = 11
    image, label = val[index]
    view = widgets.occlusion_view(model, image, label, 32, 8, (0, 0), preprocess=preprocess)
    i, j = divmod(int(view.prob_map.argmin()), view.prob_map.shape[1])
    centre = (i * 8 + 16, j * 8 + 16)
    assert val.masks[index][centre]                                       # the lowest square sits on the object
    assert view.prob_map.min() < 0.5 * view.image_prob


def test_coarse_view_uses_a_multiple_of_the_stride_and_at_most_100_positions(teaching):
    model, preprocess, val = teaching
    image, label = val[11]
    view = widgets.occlusion_view(model, image, label, 16, 2, (3, 5), coarse=True, preprocess=preprocess)
    assert view.coarse and view.map_stride % 2 == 0 and view.prob_map.numel() <= widgets.COARSE_POSITIONS
    finer = occlusion.occlusion_grid(S, S, 16, view.map_stride - 2)
    assert finer[0] * finer[1] > widgets.COARSE_POSITIONS                # the smallest such multiple
    x = preprocess(image[None])[0]
    assert torch.equal(view.prob_map, occlusion.occlusion_map(model, x, label, 16, view.map_stride))
    full = widgets.occlusion_view(model, image, label, 16, 2, (3, 5), preprocess=preprocess)
    assert view.prob == full.prob and full.map_stride == 2 and not full.coarse
    big = S - 6 * 16                                                      # a square that fits 7 times at stride 16
    assert occlusion.occlusion_grid(S, S, big, 16) == (7, 7)
    few = widgets.occlusion_view(model, image, label, big, 16, (3, 5), coarse=True, preprocess=preprocess)
    assert few.map_stride == 16 and not few.coarse                        # 7 x 7 positions: already coarse enough


def test_cache_makes_a_move_cost_one_forward_pass(teaching, monkeypatch):
    model, preprocess, val = teaching
    image, label = val[11]
    calls = []
    real = occlusion.occlusion_map
    monkeypatch.setattr(occlusion, "occlusion_map", lambda *a, **k: calls.append(a[3:5]) or real(*a, **k))
    cache = {}
    first = widgets.occlusion_view(model, image, label, 16, 4, (0, 0), preprocess=preprocess, cache=cache)
    moved = widgets.occlusion_view(model, image, label, 16, 4, (50, 60), preprocess=preprocess, cache=cache)
    assert calls == [(16, 4)] and moved.prob_map is first.prob_map and moved.prob != first.prob
    widgets.occlusion_view(model, image, label, 20, 4, (50, 60), preprocess=preprocess, cache=cache)
    assert calls == [(16, 4), (20, 4)]


def test_occlusion_extent_centres_each_cell_on_its_square():
    view = widgets.OcclusionView(torch.zeros(3, 20, 20), torch.zeros(3, 4), 5, (0, 0), 0, 0, 0, 0, 6, 5, 0, 0.0, False)
    left, right, bottom, top = view.extent
    # cell (i, j) spans one stride around (i * 5 + 2.5, j * 5 + 2.5), the centre of a 6-pixel square
    assert (left, top) == (0.0, 0.0) and (right, bottom) == (20.0, 15.0)
    assert left + 5 / 2 == 0 * 5 + (6 - 1) / 2


@pytest.mark.parametrize("change, error, match", [
    ({"size": S + 1}, ValueError, rf"size must be an int in 1\.\.{S}"),
    ({"stride": 0}, ValueError, r"stride must be an int >= 1"),
    ({"position": (S - 15, 0)}, ValueError, rf"0 <= y <= {S - 16} and 0 <= x <= {S - 16}"),
    ({"position": (0,)}, ValueError, r"position must be"),
    ({"target": 10}, ValueError, r"target must be an int in 0\.\.9"),
    ({"fill": None}, TypeError, r"fill must be a real number"),
    ({"fill": float("nan")}, ValueError, r"fill must be a finite number .*got nan"),
    ({"fill": float("-inf")}, ValueError, r"fill must be a finite number .*got -inf"),
    ({"preprocess": "mean"}, TypeError, r"preprocess must be callable"),
    ({"image": torch.zeros(1, 3, S, S)}, ValueError, r"one image \(3, H, W\)"),
    ({"image": torch.zeros(3, S, S, dtype=torch.uint8)}, TypeError, r"image must be a float tensor"),
    ({"image": torch.full((3, S, S), 200.0)}, ValueError,
     r"image must be pixels in \[0, 1\] \(it goes through preprocess\); got values in \[200, 200\] \(0-255 pixels\?"),
    ({"image": torch.full((3, S, S), 0.5).half() * 255}, ValueError, r"image must be pixels in \[0, 1\]"),
    ({"image": torch.full((3, S, S), float("nan"))}, ValueError, r"image must be finite \(no NaN or inf\)"),
    ({"image": torch.full((3, S, S), float("inf")), "preprocess": None}, ValueError, r"image must be finite \(no NaN or inf\)"),
    ({"classes": ["cat"] * 9}, ValueError, r"classes must name every class .*: it has 9 names, but class 9 is shown"),
    ({"classes": "cat dog"}, TypeError, r"classes must be a list of class names"),
    ({"refine_delay": float("nan")}, ValueError, r"refine_delay must be a number of seconds >= 0"),
    ({"refine_delay": float("inf")}, ValueError, r"refine_delay must be a number of seconds >= 0"),
])
def test_occlusion_bad_input_raises_naming_what_is_allowed(teaching, change, error, match):
    model, preprocess, val = teaching
    image, label = val[0]
    args = {"image": image, "target": label, "size": 16, "stride": 4, "position": (0, 0), "fill": 0.0,
            "preprocess": preprocess, **change}
    explorer_only = {k: args.pop(k) for k in ("classes", "refine_delay") if k in args}
    if not explorer_only:
        with pytest.raises(error, match=match):
            widgets.occlusion_view(model, **args)
    with pytest.raises(error, match=match):
        widgets.occlusion_explorer(model, **args, **explorer_only)
    with pytest.raises(TypeError, match="coarse must be True or False"):
        widgets.occlusion_view(model, image, label, 16, 4, (0, 0), coarse=1, preprocess=preprocess)
    with pytest.raises(TypeError, match="cache must be a dict"):
        widgets.occlusion_view(model, image, label, 16, 4, (0, 0), preprocess=preprocess, cache=[])
    with pytest.raises(ValueError, match="refine_delay must be"):
        widgets.occlusion_explorer(model, image, label, preprocess=preprocess, refine_delay=-1)


def test_occlusion_explorer_sliders_drive_the_view(teaching):
    model, preprocess, val = teaching
    image, label = val[11]
    explorer = widgets.occlusion_explorer(model, image, label, preprocess=preprocess, classes=val.classes)
    assert isinstance(explorer, ipywidgets.VBox)
    assert (explorer.size.value, explorer.stride.value, explorer.y.value, explorer.x.value) == (16, 4, 0, 0)
    assert (explorer.y.max, explorer.x.max, explorer.size.max) == (S - 16, S - 16, S)
    first_png = bytes(explorer.picture.value)
    assert first_png.startswith(b"\x89PNG")

    explorer.x.value = 52                                               # the observer recomputes the view
    explorer.y.value = 40
    direct = widgets.occlusion_view(model, image, label, 16, 4, (40, 52), preprocess=preprocess)
    assert explorer.view.position == (40, 52) and explorer.view.prob == direct.prob
    assert torch.equal(explorer.view.prob_map, direct.prob_map) and bytes(explorer.picture.value) != first_png

    explorer.size.value = S - 12                                        # the square grows: y, x ranges shrink
    assert (explorer.y.max, explorer.x.max) == (12, 12) and (explorer.y.value, explorer.x.value) == (12, 12)
    assert explorer.view.size == S - 12 and explorer.view.position == (12, 12) and not explorer.view.coarse
    explorer.stride.value = 3
    assert explorer.view.map_stride == 3 and explorer.view.prob_map.shape == (5, 5)
    explorer.stride.value = 6
    explorer.size.value = 10                                            # ranges grow back, values stay
    assert (explorer.y.max, explorer.x.max) == (S - 10, S - 10) and explorer.view.position == (12, 12)
    assert torch.equal(explorer.view.prob_map, widgets.occlusion_view(model, image, label, 10, 6, (12, 12),
                                                                      preprocess=preprocess).prob_map)
    assert not matplotlib.pyplot.get_fignums()                         # nothing left open in pyplot
    assert_no_hooks(model)


def test_occlusion_explorer_shows_a_coarse_map_then_refines_in_a_running_kernel_loop(teaching):
    model, preprocess, val = teaching
    image, label = val[11]

    async def drag():
        explorer = widgets.occlusion_explorer(model, image, label, size=64, stride=8, preprocess=preprocess,
                                              refine_delay=0.05)
        explorer.stride.value = 2                                       # 625 positions: preview first
        coarse = explorer.view
        explorer.x.value = 30                                           # a move while pending stays coarse
        moved = explorer.view
        await asyncio.sleep(0.3)                                        # the slider rests: refined
        return coarse, moved, explorer.view

    coarse, moved, refined = asyncio.run(drag())
    assert coarse.coarse and coarse.prob_map.numel() <= widgets.COARSE_POSITIONS
    assert moved.coarse and moved.position == (0, 30)
    assert not refined.coarse and refined.map_stride == 2 and refined.prob_map.shape == ((S - 64) // 2 + 1,) * 2


def test_show_occlusion_draws_two_titled_panels(teaching):
    model, preprocess, val = teaching
    image, label = val[11]
    view = widgets.occlusion_view(model, image, label, 16, 4, (40, 52), preprocess=preprocess)
    fig = widgets.show_occlusion(view, val.classes)
    try:
        left, right = fig.axes[:2]
        name = val.classes[label]
        assert left.get_title().startswith(f"P({name}) = {view.prob:.2f}")
        assert f"top: {val.classes[view.top_class]}" in left.get_title()
        assert right.get_title().startswith(f"P({name}), square 16, stride 4")
        assert len(left.patches) == 1 and fig.get_size_inches()[0] <= 8
    finally:
        matplotlib.pyplot.close(fig)
    with pytest.raises(TypeError, match="OcclusionView"):
        widgets.show_occlusion({"image": view.image})
    assert not matplotlib.pyplot.get_fignums()


# ---------------------------------------------------------------- the map cache is keyed on content (issue 13)

def test_one_cache_over_40_images_gives_each_image_its_own_map(teaching):
    """Images built one per iteration get recycled ids; a cache keyed on id(image) returned another image's map."""
    model, preprocess, val = teaching
    cache, ids, maps = {}, [], []
    for index in range(40):
        image, label = val[index]                                  # a new tensor each time: ids get reused
        ids.append(id(image))
        view = widgets.occlusion_view(model, image, label, 56, 56, (0, 0), preprocess=preprocess, cache=cache)
        direct = occlusion.occlusion_map(model, preprocess(image[None])[0], label, 56, 56)   # no cache
        assert torch.allclose(view.prob_map, direct, atol=1e-6), index
        with torch.no_grad():
            image_prob = float(model(preprocess(image[None])).softmax(1)[0, label])
        assert view.image_prob == pytest.approx(image_prob, abs=1e-6), index
        maps.append(view.prob_map)
        del image, view
    assert len(set(ids)) < 40, "no id was reused: the test did not exercise the old bug"
    assert len({tuple(m.flatten().tolist()) for m in maps}) > 30      # the images do have different maps
    assert len(cache) == 40


def test_the_cache_is_hit_by_equal_content_in_a_new_tensor(teaching, monkeypatch):
    model, preprocess, val = teaching
    image, label = val[11]
    calls = []
    real = occlusion.occlusion_map
    monkeypatch.setattr(occlusion, "occlusion_map", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = {}
    first = widgets.occlusion_view(model, image, label, 32, 40, (0, 0), preprocess=preprocess, cache=cache)
    again = widgets.occlusion_view(model, image.clone(), label, 32, 40, (8, 8), preprocess=preprocess,
                                   cache=cache)
    assert len(calls) == 1 and again.prob_map is first.prob_map


def _edit_image(model, preprocess, image):
    image[:, 30:80, 30:80] = 0.5


def _edit_weights(model, preprocess, image):
    with torch.no_grad():                          # as an optimizer step or load_state_dict do
        model.conv1.weight.mul_(0.5)


def _edit_weights_through_data(model, preprocess, image):
    model.conv1.weight.data.mul_(0.5)              # .data does not bump the tensor's version counter


def _edit_preprocess(model, preprocess, image):
    preprocess.std.mul_(2.0)


@pytest.mark.parametrize("edit", [_edit_image, _edit_weights, _edit_weights_through_data, _edit_preprocess])
def test_an_edit_in_place_gives_a_fresh_map(teaching, edit):
    model, preprocess, val = teaching
    model, preprocess = copy.deepcopy(model), copy.deepcopy(preprocess)     # edited below
    image, label = val[11]
    image = image.clone()
    cache = {}
    before = widgets.occlusion_view(model, image, label, 32, 40, (0, 0), preprocess=preprocess, cache=cache)
    edit(model, preprocess, image)
    after = widgets.occlusion_view(model, image, label, 32, 40, (0, 0), preprocess=preprocess, cache=cache)
    direct = occlusion.occlusion_map(model, preprocess(image[None])[0], label, 32, 40)
    assert torch.allclose(after.prob_map, direct, atol=1e-6)
    assert not torch.allclose(before.prob_map, direct, atol=1e-3)         # the edit does change the map
    with torch.no_grad():
        assert after.image_prob == pytest.approx(float(model(preprocess(image[None])).softmax(1)[0, label]),
                                                 abs=1e-6)


# ---------------------------------------------------------------- bad input to the drawing helpers

class _Items:
    def __init__(self, image):
        self.image = image

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.image, 0


@pytest.mark.parametrize("image, with_preprocess, error, match", [
    (torch.zeros(3, S, S, dtype=torch.uint8), True, TypeError,
     r"dataset\[0\]\[0\] must be a float tensor of pixels in \[0, 1\]; got dtype torch\.uint8\. Convert"),
    (torch.full((3, S, S), 128.0), True, ValueError, r"dataset\[0\]\[0\] must be pixels in \[0, 1\]"),
    (torch.full((3, S, S), float("nan")), True, ValueError, r"dataset\[0\]\[0\] must be finite \(no NaN or inf\)"),
    (torch.full((3, S, S), float("nan")), False, ValueError, r"dataset\[0\]\[0\] must be finite \(no NaN or inf\)"),
    (torch.zeros(1, S, S), True, ValueError, r"dataset\[0\]\[0\] must be one image \(3, H, W\)"),
    ([[0.5]], True, TypeError, r"dataset\[0\]\[0\] must be a torch\.Tensor"),
])
def test_deconv_view_refuses_a_data_set_of_bad_images(teaching, image, with_preprocess, error, match):
    model, preprocess, _ = teaching
    with pytest.raises(error, match=match):
        widgets.deconv_view(model, preprocess if with_preprocess else None, _Items(image), 1, 0, 0)


@pytest.fixture(scope="module")
def two_views(teaching):
    model, preprocess, val = teaching
    image, label = val[11]
    return (widgets.deconv_view(model, preprocess, val, 2, firing_channel(model, preprocess, val, 2, 11), 11),
            widgets.occlusion_view(model, image, label, 16, 4, (40, 52), preprocess=preprocess))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"classes": ["a"]}, ValueError, r"classes must name every class the figure shows: it has 1 names, but class"),
    ({"classes": "abc"}, TypeError, r"classes must be a list of class names \(or None\); got str"),
    ({"inches": 0}, ValueError, r"inches must be a figure height in inches, a number > 0; got 0"),
    ({"inches": float("nan")}, ValueError, r"inches must be a figure height in inches"),
    ({"inches": "2"}, ValueError, r"inches must be a figure height in inches"),
    ({"inches": True}, ValueError, r"inches must be a figure height in inches"),
    ({"inches": 2.0, "size": 2.0}, TypeError, r"takes the panel height as inches=\.\.\.; size=\.\.\. is its old name"),
])
def test_show_view_and_show_occlusion_bad_arguments(two_views, kwargs, error, match):
    deconv_view, occlusion_view = two_views
    with pytest.raises(error, match=match):
        widgets.show_view(deconv_view, **kwargs)
    with pytest.raises(error, match=match):
        widgets.show_occlusion(occlusion_view, **kwargs)
    assert not matplotlib.pyplot.get_fignums()


def test_size_the_old_name_of_inches_still_works_with_a_deprecation_warning(two_views):
    deconv_view, occlusion_view = two_views
    for show, view in ((widgets.show_view, deconv_view), (widgets.show_occlusion, occlusion_view)):
        with pytest.warns(DeprecationWarning, match=rf"{show.__name__}\(size=\.\.\.\) is deprecated; use inches="):
            old = show(view, size=2.0)
        new = show(view, inches=2.0)
        try:
            assert tuple(old.get_size_inches()) == tuple(new.get_size_inches())
            assert tuple(show(view, None, 2.0).get_size_inches()) == tuple(new.get_size_inches())   # positional
        finally:
            matplotlib.pyplot.close("all")
        with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=r"size must be a figure height"):
            show(view, size=0)                  # the message names the keyword the caller used
    assert not matplotlib.pyplot.get_fignums()


def test_show_view_still_takes_a_view_as_a_dict(two_views):
    deconv_view, _ = two_views
    fig = widgets.show_view(dict(deconv_view))                  # deconv_view returned a dict before issue 17
    try:
        assert [len(ax.patches) for ax in fig.axes] == [1, 0, 0]
    finally:
        matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("box", [(1, 2, 3), (0, 0, 5, 5, 5), None, (0, 0, float("nan"), 4), (5, 0, 1, 4), "abcd"])
def test_draw_box_bad_box(box):
    fig, ax = matplotlib.pyplot.subplots()
    try:
        with pytest.raises(ValueError, match=r"box must be"):
            widgets.draw_box(ax, box)
        assert not ax.patches
    finally:
        matplotlib.pyplot.close(fig)


def test_stretch_symmetric_puts_zero_at_the_same_grey():
    from zfviz.plotting import stretch_symmetric
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 20, 20, generator=g) * 5
    b = torch.randn(3, 20, 20, generator=g) * 0.01
    a[0, 0, 0], b[0, 0, 0] = 0.0, 0.0
    shown = stretch_symmetric(torch.stack([a, b]))
    assert shown[0, 0, 0, 0] == shown[1, 0, 0, 0] == 0.5                  # zero is grey in every panel
    assert shown.min() >= 0 and shown.max() <= 1
    scale = torch.quantile(a.abs().flatten(), 0.995)
    assert torch.allclose(stretch_symmetric(a), (0.5 + 0.5 * a / scale).clamp(0, 1))
    assert (stretch_symmetric(-a) - (1 - stretch_symmetric(a))).abs().max() < 1e-6    # sign flips about grey
    assert torch.equal(stretch_symmetric(torch.zeros(3, 4, 4)), torch.full((3, 4, 4), 0.5))
    with pytest.raises(ValueError, match="percentile must be"):
        stretch_symmetric(a, percentile=0)


def test_fig1_and_fig2_figures_show_what_they_say():
    import matplotlib
    matplotlib.use("Agg")
    from zfviz import models, plotting
    from zfviz.deconv import deconv_steps
    net = models.zfnet(10, 0.25, 112)
    fig = plotting.draw_deconvnet(net, 4)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum("unpool" in t for t in texts) == 2 == sum(op == "unpool" for op, _ in deconv_steps(net, 4))
    assert "filter: conv4ᵀ" in texts and "rectify" in texts and fig.axes[0].get_title()
    p, q = torch.randn(9, 3, 27, 27), torch.rand(9, 3, 27, 27)
    fig2 = plotting.show_fig2([("layer 2, map 3", p, q)])
    assert len(fig2.axes) == 18
    shown = fig2.axes[0].images[0].get_array()
    assert np.allclose(shown, plotting.stretch_symmetric(p)[0].permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="9 projections and 9 patches"):
        plotting.show_fig2([("x", p[:4], q)])
