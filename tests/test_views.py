"""zfviz.views: the explorers' pure view functions, one convention for both views, one forward pass per
deconvnet view, and importable without ipywidgets (issue 17)."""
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zfviz import data, deconv, layers, views
from zfviz.plotting import stretch_symmetric

S = data.TEACHING_INPUT_SIZE     # the teaching network's image side (ClipArt's default)


@pytest.fixture(scope="module")
def two_views(teaching):
    model, preprocess, val = teaching
    image, label = val[11]
    return (views.deconv_view(model, preprocess, val, 3, 5, 11),
            views.occlusion_view(model, image, label, 16, 4, (40, 52), preprocess=preprocess))


def _forward_calls(model):
    """A list that grows by one each time conv1, the first module of every forward pass, runs."""
    calls = []
    handle = layers.convs(model)[0].register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


def test_both_views_are_frozen_dataclasses_read_by_attribute_or_by_name(two_views):
    for view in two_views:
        assert dataclasses.is_dataclass(view) and type(view).__dataclass_params__.frozen
        names = [f.name for f in dataclasses.fields(view)]
        assert list(view.keys()) == list(view) == names
        for name in names:
            assert view[name] is getattr(view, name) and name in view
        assert "no such field" not in view
        with pytest.raises(KeyError):
            view["no such field"]
        with pytest.raises(dataclasses.FrozenInstanceError):
            view.image = None
    deconv_view, occlusion_view = two_views
    # The chapters' reads (book/deconvnet.ipynb): view["box"], view["activation"], view["projection"], ...
    assert list(deconv_view["box"]) == list(deconv_view.box) and isinstance(deconv_view["activation"], float)
    assert dict(deconv_view)["projection"] is deconv_view.projection                    # dict(view): the old dict
    assert occlusion_view["prob_map"] is occlusion_view.prob_map and occlusion_view.extent


def test_a_deconvnet_view_runs_the_network_to_the_layer_once(teaching):
    model, preprocess, val = teaching
    calls, handle = _forward_calls(model)
    try:
        view = views.deconv_view(model, preprocess, val, 4, 7, 11)
    finally:
        handle.remove()
    assert len(calls) == 1, f"{len(calls)} forward passes for one view"
    x = preprocess(val[11][0][None])
    fmap = deconv.feature_map(model, x, 4)[0, 7]
    assert view.activation == float(fmap.max())
    assert view.position == divmod(int(fmap.flatten().argmax()), fmap.shape[1])
    crop = deconv.field_crop(deconv.project(model, x, 4, 7, view.position)[0], model, 4, view.position)
    assert torch.equal(view.projection, stretch_symmetric(crop))
    assert all(not m._forward_hooks for m in model.modules())          # only the test's own hook was there


def test_every_public_name_names_its_chapter():
    for name in views.__all__:
        value = getattr(views, name)
        if not callable(value):                                        # COARSE_POSITIONS
            continue
        chapter = ('"Occlusion sensitivity" (book/occlusion)' if "occlusion" in name.lower()
                   else '"The deconvnet, step by step" (book/deconvnet)')
        assert f"chapter {chapter}" in (inspect.getdoc(value) or ""), name


def test_the_static_pages_use_the_views():
    from zfviz import static
    assert static.deconv_view is views.deconv_view                     # still importable from zfviz.static


def test_views_import_without_ipywidgets_or_ipython():
    code = """if True:
        import sys
        sys.modules["ipywidgets"] = None        # import ipywidgets (or IPython) now raises ImportError
        sys.modules["IPython"] = None
        from zfviz import views
        assert "zfviz.widgets" not in sys.modules and "zfviz.static" not in sys.modules
        print("ok")
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
