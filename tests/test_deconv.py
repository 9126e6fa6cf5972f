"""zfviz.deconv against independent computations: autograd with the deconvnet's ReLU rule, a hand-worked
collision, a transposed convolution, receptive fields, brute-force top-k, and Captum's NeuronDeconvolution.

Small random networks (width 0.125, He init so signals keep their scale) keep the whole file fast.
"""
import copy
import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from reference import assert_no_hooks
from reference import relu_output as features
from zfviz import deconv, layers
from zfviz.data import Preprocess
from zfviz.deconv import (backprop, filter_down, guided_backprop, project, receptive_field_box, rectify,
                          top_activations, unpool)
from zfviz.models import alexnet_single, init_kaiming_, layer_table, zfnet

LAYERS = [1, 2, 3, 4, 5]
ARCHS = {"zfnet": zfnet, "alexnet_single": alexnet_single}


def small(arch="zfnet", input_size=112, seed=0):
    torch.manual_seed(seed)
    return init_kaiming_(ARCHS[arch](10, 0.125, input_size)).eval()


def images(n=2, size=112, seed=1):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))



def strong_channel(model, x, layer):
    """A channel whose maximum is positive in every image, so a projection cannot be trivially zero."""
    with torch.no_grad():
        peaks = features(model, x, layer).amax(dim=(2, 3)).min(dim=0).values   # (C,)
    assert peaks.max() > 0
    return int(peaks.argmax())


def close(actual, expected, rtol=1e-5):
    """Max abs difference within rtol of the expected map's largest value (which must be nonzero)."""
    scale = expected.abs().max()
    assert scale > 0
    assert (actual - expected).abs().max() <= rtol * scale, float((actual - expected).abs().max() / scale)


# ---------------------------------------------------------------- autograd with a replaced ReLU backward

class DeconvReLU(torch.autograd.Function):
    """ReLU forward; backward rectifies the incoming signal and ignores the forward mask (ZF)."""
    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


class GuidedReLU(torch.autograd.Function):
    """ReLU forward; backward keeps the forward mask AND rectifies the signal (Springenberg et al.)."""
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0)


class LRNForwardOnly(torch.autograd.Function):
    """Contrast normalisation in the forward pass (same switches as the real net), identity backward."""
    @staticmethod
    def forward(ctx, x, lrn):
        return lrn(x)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class Apply(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def twin(model, relu_fn):
    """The same network for autograd: LRN forward-only, every ReLU replaced by relu_fn (None: keep)."""
    net = copy.deepcopy(model)
    for name, m in net.named_children():
        if isinstance(m, nn.LocalResponseNorm):
            setattr(net, name, Apply(lambda x, lrn=m: LRNForwardOnly.apply(x, lrn)))
        elif isinstance(m, nn.ReLU) and relu_fn is not None:
            setattr(net, name, Apply(relu_fn.apply))
    return net


def autograd_projection(model, x, layer, channel, relu_fn):
    """Seed relu{layer}'s output with the chosen activation's value at each image's argmax; input gradient."""
    x = x.clone().requires_grad_(True)
    fmap = features(twin(model, relu_fn), x, layer)                    # (N, C, H, W)
    with torch.no_grad():
        assert torch.equal(fmap, features(model, x, layer))            # twin's forward is the real one
    seed = torch.zeros_like(fmap)
    flat = fmap[:, channel].detach().flatten(1)
    where = flat.argmax(dim=1)
    rows = torch.arange(len(x))
    seed[:, channel].view(len(x), -1)[rows, where] = flat[rows, where]
    return torch.autograd.grad(fmap, x, seed)[0]


def has_collisions(switches):
    s = switches.flatten(2).sort(dim=2).values
    return bool((s[..., 1:] == s[..., :-1]).any())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layer", LAYERS)
def test_project_equals_autograd_with_deconvnet_relu(arch, layer):
    model, x = small(arch), images()
    c = strong_channel(model, x, layer)
    expected = autograd_projection(model, x, layer, c, DeconvReLU)
    close(project(model, x, layer, c), expected)


def test_the_equivalence_test_exercises_colliding_switches():
    # With 3x3/2 pooling two windows often pick the same maximum; the autograd oracle sums them.
    model, x = small(), images()
    with torch.no_grad():
        _, switches = F.max_pool2d(features(model, x, 1), 3, 2, ceil_mode=True, return_indices=True)
    assert has_collisions(switches)


@pytest.mark.parametrize("layer", LAYERS)
def test_backprop_and_guided_backprop_equal_autograd(layer):
    model, x = small(), images()
    c = strong_channel(model, x, layer)
    close(backprop(model, x, layer, c), autograd_projection(model, x, layer, c, None))
    close(guided_backprop(model, x, layer, c), autograd_projection(model, x, layer, c, GuidedReLU))


def test_the_three_methods_differ_only_where_the_relu_rule_matters():
    model, x = small(), images()
    c = strong_channel(model, x, 1)
    # One conv below the unit and the seed is positive: every rule passes it unchanged.
    close(backprop(model, x, 1, c), project(model, x, 1, c))
    close(guided_backprop(model, x, 1, c), project(model, x, 1, c))
    c = strong_channel(model, x, 3)
    assert not torch.allclose(project(model, x, 3, c), backprop(model, x, 3, c))


# ---------------------------------------------------------------- layer 1 and the three steps by hand

@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [111, 112])
def test_layer1_projection_is_a_transposed_convolution(arch, size):
    model, x = small(arch, 112), images(2, size)
    c = strong_channel(model, x, 1)
    with torch.no_grad():
        fmap = model.relu1(model.conv1(x))
        iso = torch.zeros_like(fmap)
        for n in range(len(x)):
            y, xx = divmod(int(fmap[n, c].argmax()), fmap.shape[-1])
            iso[n, c, y, xx] = fmap[n, c, y, xx]
        conv = model.conv1
        full = F.conv_transpose2d(iso, conv.weight, stride=conv.stride, padding=conv.padding)
    # A strided conv ignores the last rows/columns it cannot reach: they get zero.
    expected = F.pad(full, (0, size - full.shape[-1], 0, size - full.shape[-2]))
    assert expected.shape == x.shape
    close(project(model, x, 1, c), expected)


def test_unpool_sums_two_pooled_values_that_share_a_switch():
    # 5x5 input, 3x3 windows with stride 2: the windows over rows 0-2 and rows 2-4 (both on columns
    # 0-2) both pick the 9 at (2, 1). Worked by hand:
    x = torch.tensor([[0., 0., 0., 0., 5.],
                      [0., 0., 0., 0., 0.],
                      [0., 9., 0., 0., 0.],
                      [0., 0., 0., 0., 0.],
                      [0., 0., 0., 0., 7.]]).view(1, 1, 5, 5)
    pooled, switches = F.max_pool2d(x, 3, 2, return_indices=True)
    assert pooled.flatten().tolist() == [9., 5., 9., 7.]
    assert switches.flatten().tolist() == [11, 4, 11, 24]                  # 11 = 2 * 5 + 1, twice
    signal = torch.tensor([[1., 2.], [3., 4.]]).view(1, 1, 2, 2)
    expected = torch.tensor([[0., 0., 0., 0., 2.],
                             [0., 0., 0., 0., 0.],
                             [0., 4., 0., 0., 0.],                          # 1 + 3 at the shared switch
                             [0., 0., 0., 0., 0.],
                             [0., 0., 0., 0., 4.]]).view(1, 1, 5, 5)
    assert torch.equal(unpool(signal, switches, (5, 5)), expected)
    # ... which is what max-pooling's backward pass does.
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(F.max_pool2d(x, 3, 2), x, signal)
    assert torch.equal(grad, expected)


def test_rectify_and_filter_down_by_hand():
    assert rectify(torch.tensor([-2., 0., 3.])).tolist() == [0., 0., 3.]
    conv = nn.Conv2d(1, 1, 2, stride=2, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1., 2.], [3., 4.]]]]))
        conv.bias.fill_(100.)                                              # must not appear
    signal = torch.tensor([[[[1., 0.], [0., 10.]]]])                      # from a 5x5 input: 2x2 out
    out = filter_down(signal, conv, (5, 5))
    expected = torch.tensor([[1., 2., 0., 0., 0.],
                             [3., 4., 0., 0., 0.],
                             [0., 0., 10., 20., 0.],
                             [0., 0., 30., 40., 0.],
                             [0., 0., 0., 0., 0.]]).view(1, 1, 5, 5)
    assert torch.equal(out, expected)


def _pooled():
    x = torch.rand(1, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    return F.max_pool2d(x, 3, 2, return_indices=True)                    # (1, 2, 2, 2) twice


def _conv():
    return nn.Conv2d(2, 3, 2, stride=2)                                   # 5x5 (or 4x4) in, 2x2 out


@pytest.mark.parametrize("call, error, match", [
    (lambda s, w: unpool(s, w, (5,)), ValueError, "input_size must be"),
    (lambda s, w: unpool(s, w, (5, 0)), ValueError, "input_size must be"),
    (lambda s, w: unpool(s, w, (5.0, 5)), ValueError, "input_size must be"),
    (lambda s, w: unpool(s, w, (True, 5)), ValueError, "input_size must be"),
    (lambda s, w: unpool(s, w, (2, 2)), ValueError, "switches must index the 2x2"),
    (lambda s, w: unpool(s, w.float(), (5, 5)), ValueError, "switches must be int64"),
    (lambda s, w: unpool(s, w[:, :1], (5, 5)), ValueError, "switches must be int64 indices of signal's shape"),
    (lambda s, w: unpool(s[0], w[0], (5, 5)), ValueError, r"signal must be a float tensor \(N, C, h, w\)"),
    (lambda s, w: unpool(w, w, (5, 5)), ValueError, "signal must be a float tensor"),
    (lambda s, w: filter_down(s, nn.Linear(2, 3), (5, 5)), TypeError, "conv must be the forward nn.Conv2d"),
    (lambda s, w: filter_down(s, _conv(), (5, 5)), ValueError, "signal has 2 maps but conv has 3 filters"),
    (lambda s, w: filter_down(torch.rand(1, 3, 2, 2), _conv(), (7, 5)), ValueError, "input_size .* does not fit"),
    (lambda s, w: filter_down(torch.rand(1, 3, 2, 2), _conv(), (3, 5)), ValueError, "between .4, 4. and .5, 5."),
    (lambda s, w: filter_down(torch.rand(1, 3, 2, 2), _conv(), "55"), ValueError, "input_size must be"),
])
def test_building_blocks_refuse_bad_input_naming_it(call, error, match):
    signal, switches = _pooled()
    with pytest.raises(error, match=match):
        call(signal, switches)


def test_filter_down_takes_every_input_size_the_conv_maps_to_the_signal():
    # A 2x2/2 conv maps 4x4 and 5x5 inputs to 2x2: both are accepted, and give those shapes back.
    signal = torch.rand(1, 3, 2, 2)
    assert filter_down(signal, _conv(), (4, 4)).shape == (1, 2, 4, 4)
    assert filter_down(signal, _conv(), (5, 4)).shape == (1, 2, 5, 4)


# ---------------------------------------------------------------- receptive fields

@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layer", LAYERS)
def test_projection_is_zero_outside_the_receptive_field(arch, layer):
    model, x = small(arch), images()
    with torch.no_grad():
        fmap = features(model, x, layer)
    h, w = fmap.shape[-2:]
    for pos in [(0, 0), (h // 2, w - 1)]:
        c = int(fmap[:, :, pos[0], pos[1]].min(dim=0).values.argmax())      # active in both images
        assert fmap[:, c, pos[0], pos[1]].min() > 0
        proj = project(model, x, layer, c, position=pos).abs().sum(dim=1)   # (N, H, W)
        x0, y0, x1, y1 = receptive_field_box(model, layer, pos, 112)
        inside = torch.zeros(112, 112, dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        assert proj[:, inside].amax(dim=1).min() > 0
        assert proj[:, ~inside].max() == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_receptive_field_box_agrees_with_layer_table_for_interior_units(arch):
    torch.manual_seed(0)
    model = ARCHS[arch](10, 0.125, 224)
    table = {row.name: row for row in layer_table(model)}
    for layer in LAYERS:
        side = table[f"relu{layer}"].out_shape[-1]
        x0, y0, x1, y1 = receptive_field_box(model, layer, (side // 2, side // 2), 224)
        assert y1 - y0 == x1 - x0 == table[f"relu{layer}"].receptive_field
        assert 0 < y0 and y1 < 224
    if arch == "zfnet":   # the paper's numbers (shared notes): 7, 27, 75, 107, 139
        assert [receptive_field_box(model, L, (6, 6), 224).width for L in LAYERS] == [7, 27, 75, 107, 139]


def test_receptive_field_box_by_hand():
    model = zfnet(10, 0.125, 112)
    # conv1 7x7/2 pad 1: unit y covers rows 2y-1 .. 2y+5, clipped at the top.
    assert receptive_field_box(model, 1, (0, 0), 112) == (0, 0, 6, 6)
    # The box is (x0, y0, x1, y1), the package's one order (torchvision's): unit (y=1, x=3) sees rows 1..7
    # and columns 5..11.
    box = receptive_field_box(model, 1, (1, 3), 112)
    assert box == (5, 1, 12, 8) and (box.x0, box.y0, box.x1, box.y1) == (5, 1, 12, 8)
    assert (box.rows, box.cols, box.height, box.width) == (slice(1, 8), slice(5, 12), 7, 7)
    # conv2 5x5/2 over pool1 3x3/2 over conv1: unit 1 -> pool1 rows 2..6 -> conv1 rows 4..14 -> pixels 7..33.
    assert receptive_field_box(model, 2, (1, 1), 112) == (7, 7, 34, 34)
    box = receptive_field_box(model, 2, (1, 2), (112, 40))            # columns 15..41, clipped at 40
    assert box == (15, 7, 40, 34) and (box.height, box.width) == (27, 25)
    with pytest.warns(DeprecationWarning, match=r"image_size= is deprecated: pass input_size="):
        assert receptive_field_box(model, 2, (1, 2), image_size=(112, 40)) == box
    image = torch.arange(112 * 40).view(1, 112, 40)
    assert image[..., box.rows, box.cols].shape == (1, 27, 25)


# ---------------------------------------------------------------- top activations

@pytest.fixture(scope="module")
def clipart_like():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(40, 3, 64, 64, generator=g)
    x[19] = x[3]               # an exact tie: same place in two full batches of 16, lower index first
    return TensorDataset(x, torch.randint(0, 10, (40,), generator=g))


def brute_force_maps(model, dataset, layer, preprocess=None):
    """relu{layer}'s maps of every image, one image at a time: (N, C, H, W)."""
    preprocess = preprocess or (lambda x: x)
    with torch.no_grad():
        return torch.cat([features(model, preprocess(dataset[i][0][None]), layer) for i in range(len(dataset))])


# Float tolerance for the top-k checks: top_activations runs images in batches, the brute force one at a
# time, and CPU kernels may sum in another order for another batch size (on another CPU, too), so equal
# activations may differ in their last bits. rtol 1e-5 of the largest activation is ~100 float32 ulps.
TOP_RTOL = 1e-5


def assert_valid_top(top, maps, channels, k):
    """``top`` is a top-k of ``maps`` (N, C, H, W) for each channel, up to float ties.

    Independent of how ties are broken: every (value, image, position) is what the map holds there, the
    values are the k largest per-image maxima in descending order, and no image is listed twice.
    """
    maxima = maps.flatten(2).amax(2)                                                # (N, C)
    tol = TOP_RTOL * maxima.abs().max()
    for row, c in enumerate(channels):
        idx, pos, val = top.indices[row], top.positions[row], top.values[row]
        assert len(set(idx.tolist())) == k
        assert (val[:-1] >= val[1:]).all()
        expected = maxima[:, c].sort(descending=True).values[:k]
        assert (val - expected).abs().max() <= tol
        at = maps[idx, c, pos[:, 0], pos[:, 1]]                                     # the map at each position
        assert (at - val).abs().max() <= tol and (maxima[idx, c] - val).abs().max() <= tol


@pytest.mark.parametrize("layer", [2, 5])
def test_top_activations_equal_brute_force(clipart_like, layer):
    model = small("zfnet", 64)
    pre = Preprocess.fit(clipart_like.tensors[0])
    top = top_activations(model, clipart_like, layer, k=9, batch_size=16, preprocess=pre)
    c = getattr(model, f"conv{layer}").out_channels
    assert top.values.shape == top.indices.shape == (c, 9) and top.positions.shape == (c, 9, 2)
    assert_valid_top(top, brute_force_maps(model, clipart_like, layer, pre), range(c), 9)


def test_top_activations_ties_and_channel_subset(clipart_like):
    model = small("zfnet", 64)
    top = top_activations(model, clipart_like, 2, k=40, batch_size=16)
    maps = brute_force_maps(model, clipart_like, 2)
    assert_valid_top(top, maps, range(maps.shape[1]), 40)
    # Exact ties: a unit that is off in an image has the value 0 exactly (a ReLU's output, on any CPU).
    # Equal values keep the images' order, so the zeros are listed by increasing index.
    for values, row in zip(top.values.tolist(), top.indices.tolist()):
        zeros = [i for v, i in zip(values, row) if v == 0]
        assert zeros == sorted(zeros)
    assert (top.values == 0).sum() > 40
    # Image 19 is image 3: equal values up to float order (another batch), so they sit side by side,
    # unless other images tie with them within that tolerance.
    tol = TOP_RTOL * top.values.abs().max()
    for values, row in zip(top.values, top.indices.tolist()):
        a, b = sorted((row.index(3), row.index(19)))
        assert (values[a] - values[b]).abs() <= tol and (values[a:b + 1] - values[a]).abs().max() <= tol
    assert (top.values[top.indices == 3] > 0).any()
    chosen = top.values[:, 0].argsort(descending=True)[:2].flip(0).tolist()   # two live maps, in a new order
    sub = top_activations(model, clipart_like, 2, k=5, channels=chosen, batch_size=7)
    assert_valid_top(sub, maps, chosen, 5)
    close(sub.values, top.values[chosen, :5])


def test_top_activation_feeds_project_and_receptive_field_box(clipart_like):
    model = small("zfnet", 64)
    top = top_activations(model, clipart_like, 3, k=1, channels=[4])
    i, pos = int(top.indices[0, 0]), top.positions[0, 0]
    x = clipart_like.tensors[0][i:i + 1]
    assert torch.equal(project(model, x, 3, 4), project(model, x, 3, 4, position=pos))
    x0, y0, x1, y1 = receptive_field_box(model, 3, pos, 64)
    assert 0 <= y0 < y1 <= 64 and 0 <= x0 < x1 <= 64


# ---------------------------------------------------------------- Captum

@pytest.mark.filterwarnings("ignore:.*(require gradients|backward hooks on ReLU).*:UserWarning")
@pytest.mark.parametrize("layer", LAYERS)
def test_project_matches_captum_neuron_deconvolution(layer):
    captum_attr = pytest.importorskip("captum.attr")
    model = small("zfnet", 64)
    for name, m in list(model.named_children()):
        if isinstance(m, nn.LocalResponseNorm):
            setattr(model, name, nn.Identity())     # Captum would backpropagate through LRN; ZF skip it
    x = images(2, 64)
    c = strong_channel(model, x, layer)
    ours = project(model, x, layer, c)
    with torch.no_grad():
        fmap = features(model, x, layer)[:, c]                             # (N, H, W)
    for n in range(len(x)):
        y, xx = divmod(int(fmap[n].argmax()), fmap.shape[-1])
        theirs = captum_attr.NeuronDeconvolution(model, getattr(model, f"relu{layer}")).attribute(
            x[n:n + 1], neuron_selector=(c, y, xx))
        # Captum seeds the unit with 1; the deconvnet keeps the activation's value.
        close(ours[n:n + 1] / fmap[n, y, xx], theirs)
    assert_no_hooks(model)


# ---------------------------------------------------------------- contract: hooks, model untouched, errors


def test_no_hooks_and_model_untouched_after_every_call(clipart_like):
    model = small("zfnet", 64)
    model.train()
    before = copy.deepcopy(model.state_dict())
    x = images(2, 64)
    calls = [lambda: project(model, x, 2, 0), lambda: backprop(model, x, 2, 0),
             lambda: guided_backprop(model, x, 2, 0, (1, 1)),
             lambda: top_activations(model, clipart_like, 2, k=3),
             lambda: receptive_field_box(model, 2, (1, 1), 64)]
    for call in calls:
        call()
        assert_no_hooks(model)
    bad = [lambda: project(model, x, 9, 0), lambda: project(model, x, 2, 0, (99, 0)),
           lambda: backprop(model, x[0], 2, 0), lambda: top_activations(model, clipart_like, 2, k=41)]
    for call in bad:
        with pytest.raises(ValueError):
            call()
        assert_no_hooks(model)
    assert model.training                              # mode not switched
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not project(model, x, 1, 0).requires_grad   # no graph kept


def test_projection_of_a_batch_equals_projections_one_by_one():
    model, x = small(), images(3)
    batch = project(model, x, 4, 3)
    for n in range(3):
        close(project(model, x[n:n + 1], 4, 3), batch[n:n + 1])


def test_inplace_relu_is_rejected():
    model = small("zfnet", 64)
    model.relu2 = nn.ReLU(inplace=True)
    with pytest.raises(ValueError, match="in-place"):
        project(model, images(1, 64), 1, 0)
    assert_no_hooks(model)


def test_unsupported_modules_and_padding_are_rejected():
    x = images(1, 16)
    with pytest.raises(ValueError, match="BatchNorm2d"):
        project(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3)), x, 2, 0)
    with pytest.raises(ValueError, match="zero padding"):
        project(nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), nn.ReLU()), x, 1, 0)
    with pytest.raises(ValueError, match="zero padding"):
        project(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU()), x, 1, 0)


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x: project(m, x, 0, 0), ValueError, r"1\.\.5"),
    (lambda m, x: project(m, x, 6, 0), ValueError, r"1\.\.5"),
    (lambda m, x: project(m, x, True, 0), ValueError, r"1\.\.5"),
    (lambda m, x: project(m, x, 1, 12), ValueError, r"0\.\.11"),          # conv1 has 12 maps at width 0.125
    (lambda m, x: guided_backprop(m, x, 5, -1), ValueError, r"0\.\.31"),
    (lambda m, x: project(m, x, 1, 0, (0, 30)), ValueError, r"0 <= x < 30"),
    (lambda m, x: backprop(m, x, 5, 0, (3, 0, 1)), ValueError, r"\(y, x\)"),
    (lambda m, x: project(m, x[0], 1, 0), ValueError, r"\(N, 3, H, W\)"),
    (lambda m, x: project(m, x[:, :1], 1, 0), ValueError, r"\(N, 3, H, W\)"),
    (lambda m, x: project(m, x[:0], 1, 0), ValueError, r"N >= 1"),
    (lambda m, x: project(m, x.numpy(), 1, 0), TypeError, "torch.Tensor"),
    (lambda m, x: project(m, (x * 255).byte(), 1, 0), TypeError, "float"),
    (lambda m, x: receptive_field_box(m, 2, (13, 0), 64), ValueError, r"0 <= y < 6"),
    (lambda m, x: receptive_field_box(m, 7, (0, 0), 64), ValueError, r"1\.\.5"),
    (lambda m, x: top_activations(m, TensorDataset(x, x[:, 0, 0, 0]), 1, k=3), ValueError, r"k must .* 1\.\.2"),
    (lambda m, x: top_activations(m, TensorDataset(x, x[:, 0, 0, 0]), 1, channels=[99]), ValueError, r"0\.\.11"),
    (lambda m, x: project(nn.Sequential(nn.ReLU()), x, 1, 0), ValueError, "no Conv2d"),
])
def test_bad_input_raises_with_the_allowed_range(call, error, match):
    model = small("zfnet", 64)
    with pytest.raises(error, match=match):
        call(model, images(2, 64))
    assert_no_hooks(model)


def test_every_public_docstring_names_its_chapter():
    for name in deconv.__all__:
        obj = getattr(deconv, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert "chapter" in (inspect.getdoc(obj) or "").lower(), name
    assert "chapter" in deconv.__doc__.lower()


# ---------------------------------------------------------------- issue 13: every bad input is refused up front

NAN, INF = float("nan"), float("inf")


def _dataset(x):
    return TensorDataset(x, torch.zeros(len(x)))


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x: project(m, x * NAN, 5, 0), ValueError, r"images must be finite \(no NaN or inf\); got 24576"),
    (lambda m, x: backprop(m, torch.where(x > 2, INF, x), 2, 0), ValueError, r"images must be finite"),
    (lambda m, x: guided_backprop(m, x * NAN, 1, 0), ValueError, r"images must be finite"),
    (lambda m, x: deconv.feature_map(m, x * NAN, 1), ValueError, r"images must be finite"),
    (lambda m, x: project(m, x.double() * 1e300, 1, 0), ValueError, r"images do not fit the model's torch.float32"),
    (lambda m, x: project(m, x.to(torch.complex64), 1, 0), TypeError, r"images must be a float tensor.*complex"),
    (lambda m, x: project(m, torch.rand(1, 3, 16, 16), 5, 0), ValueError,
     r"images: 16x16 pixels is too small for layer 5: 'conv2'.*smallest input it accepts is 31x31"),
    (lambda m, x: deconv.feature_map(m, torch.rand(1, 3, 4, 4), 1), ValueError,
     r"images: 4x4 pixels is too small for layer 1: 'conv1'.*5x5"),
    (lambda m, x: project(m, x, 1.0, 0), ValueError, r"layer must be .* 1\.\.5; got 1\.0"),
    (lambda m, x: project(m, x, 1, 0.0), ValueError, r"channel must be an int in 0\.\.11.*got 0\.0"),
    (lambda m, x: project(m, x, 1, True), ValueError, r"channel must be an int.*got True"),
    (lambda m, x: project(m, x, 1, 0, (0.5, 0)), ValueError, r"position must be \(y, x\)"),
    (lambda m, x: project(m, x, 1, 0, (True, 0)), ValueError, r"position must be \(y, x\)"),
    (lambda m, x: top_activations(m, _dataset(x * NAN), 1, k=1), ValueError, r"data set's images must be finite"),
    (lambda m, x: top_activations(m, _dataset(x), 1, k=1, preprocess=lambda b: b * NAN), ValueError,
     r"data set's images after preprocess must be finite"),
    (lambda m, x: top_activations(m, _dataset(x[:, :, :16, :16]), 5, k=1), ValueError,
     r"data set's images: 16x16 pixels is too small for layer 5"),
    (lambda m, x: top_activations(m, _dataset(x), 1, k=1, channels=[]), ValueError, r"channels must name"),
    (lambda m, x: top_activations(m, _dataset(x), 1, k=1.0), ValueError, r"k must be an int in 1\.\.2"),
    (lambda m, x: top_activations(m, _dataset(x), 1, k=1, batch_size=2.0), ValueError, r"batch_size must be"),
    (lambda m, x: top_activations(m, _dataset(x), 1, k=1, preprocess="norm"), TypeError, r"preprocess must be"),
    (lambda m, x: deconv.strongest_projections(m, x, 1, None), ValueError, r"channels must name.*got None"),
    (lambda m, x: deconv.strongest_projections(m, x, 1, []), ValueError, r"channels must name"),
    (lambda m, x: deconv.strongest_projections(m, x, 1, [0.0]), ValueError, r"channel must be an int"),
    (lambda m, x: deconv.strongest_projections(m, x * NAN, 1, [0]), ValueError, r"images must be finite"),
    (lambda m, x: deconv.strongest_projections(m, x[0], 1, [0]), ValueError, r"images must be a batch"),
    (lambda m, x: receptive_field_box(m, 5, (0, 0), 16), ValueError,
     r"input_size: 16x16 pixels is too small for layer 5"),
    (lambda m, x: receptive_field_box(m, 2, (0, 0), 2.5), ValueError, r"input_size must be an int >= 1.*2\.5"),
    (lambda m, x: receptive_field_box(m, 2, (0, 0), True), ValueError, r"input_size must be an int >= 1.*True"),
    (lambda m, x: receptive_field_box(m, 2, (0, 0), (64, 0)), ValueError, r"input_size must be.*\(64, 0\)"),
    (lambda m, x: receptive_field_box(m, 2, (0, 0.0), 64), ValueError, r"position must be \(y, x\)"),
])
def test_deconv_bad_inputs_are_refused_naming_the_argument(call, error, match):
    model = small("zfnet", 64)
    with pytest.raises(error, match=match):
        call(model, images(2, 64))
    assert_no_hooks(model)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_smallest_size_named_is_the_smallest_pytorch_runs(arch):
    # Against PyTorch itself: the named size runs every layer up to relu{layer}, one pixel less does not.
    model = small(arch, 64)
    for layer in LAYERS:
        with pytest.raises(ValueError, match=r"smallest input it accepts is (\d+)x\1") as info:
            deconv.feature_map(model, torch.zeros(1, 3, 3, 3), layer)
        side = int(info.value.args[0].rsplit("accepts is ", 1)[1].split("x")[0])
        assert deconv.feature_map(model, torch.zeros(1, 3, side, side), layer).shape[-1] >= 1
        with pytest.raises(RuntimeError):
            deconv._forward(model, torch.zeros(1, 3, side - 1, side - 1), layer)


def test_geometry_agrees_with_pytorch_for_convs_and_pools():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        k, s, d = (int(torch.randint(1, hi, (1,), generator=g)) for hi in (6, 4, 3))
        p = int(torch.randint(0, k // 2 + 1, (1,), generator=g))
        ceil = bool(torch.randint(0, 2, (1,), generator=g))
        m = nn.MaxPool2d(k, s, p, d, ceil_mode=ceil) if ceil or k % 2 else nn.Conv2d(1, 1, k, s, p, d)
        window, ceil_mode = layers.geometry(m)
        for n in range(1, 14):
            try:
                want = m(torch.zeros(1, 1, n, n)).shape[-1]
            except RuntimeError:
                want = 0
            assert layers.out_side(n, window[0], ceil_mode) == want, (m, n)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_float16_and_float64_images_project_as_float32(dtype):
    model, x = small("zfnet", 64), images(2, 64)[:1]
    pos = (5, 7)
    with torch.no_grad():
        act = features(model, x, 1)[:, 0, pos[0], pos[1]]
    assert (act > 0).all()                                            # the unit is active: projection is a * filter
    got = project(model, x.to(dtype), 1, 0, pos)
    assert got.dtype == torch.float32 and got.shape == x.shape
    want = project(model, x, 1, 0, pos)
    # Layer 1: the projection is the unit's activation a times its filter, each weight landing on one pixel, so
    # |got - want| <= |a(x rounded) - a(x)| * max|w| <= sum|w| * max|x - x rounded| * max|w|; rounding to
    # float16 moves a value by at most 2**-11 of it (2**-24 for float32), plus float32 arithmetic (1e-5).
    w = model.conv1.weight[0].detach()
    unit = 2.0 ** -11 if dtype == torch.float16 else 2.0 ** -24
    bound = float(w.abs().sum() * unit * x.abs().max() * w.abs().max()) + 1e-5
    assert (got - want).abs().max() <= bound
    assert dtype == torch.float64 or (got - want).abs().max() > 0        # float16 rounding really is there
    assert torch.allclose(deconv.feature_map(model, x.to(dtype), 3), deconv.feature_map(model, x.to(dtype).float(), 3),
                          rtol=0, atol=1e-5)


@pytest.mark.parametrize("layer", LAYERS)
def test_field_crop_holds_the_whole_projection_centred_on_its_unit(layer):
    """A projection cropped to its unit's receptive field loses nothing (it is zero outside), the crop has the
    layer's full field on a side (layer_table), and the part past the image border holds ``fill``."""
    from zfviz.deconv import field_crop
    model, x = small(), images()
    table = {row.name: row for row in layer_table(model)}
    side = table[f"relu{layer}"].receptive_field
    with torch.no_grad():
        fmap = features(model, x, layer)
    for pos in [(0, 0), (fmap.shape[-2] // 2, fmap.shape[-1] - 1)]:
        c = int(fmap[:, :, pos[0], pos[1]].min(dim=0).values.argmax())
        proj = project(model, x, layer, c, position=pos)
        crop = field_crop(proj, model, layer, pos)
        assert crop.shape == (2, 3, side, side)
        close(crop.abs().sum((1, 2, 3)), proj.abs().sum((1, 2, 3)))          # nothing outside the field
        x0, y0, x1, y1 = receptive_field_box(model, layer, pos, 112, clip=False)
        assert (y1 - y0, x1 - x0) == (side, side)
        img = field_crop(x[0], model, layer, pos, fill=-7.0)                  # (C, H, W) works too
        inside_y, inside_x = slice(max(y0, 0) - y0, min(y1, 112) - y0), slice(max(x0, 0) - x0, min(x1, 112) - x0)
        assert torch.equal(img[:, inside_y, inside_x], x[0][:, max(y0, 0):min(y1, 112), max(x0, 0):min(x1, 112)])
        assert (img == -7.0).sum() == 3 * (side * side - (inside_y.stop - inside_y.start) * (inside_x.stop - inside_x.start))
    with pytest.raises(ValueError, match=r"x must be images or projections"):
        field_crop(torch.zeros(112, 112), model, layer, (0, 0))
    with pytest.raises(TypeError, match="fill must be a finite number"):
        field_crop(x, model, layer, (0, 0), fill=float("nan"))


def test_deconv_steps_are_the_modules_project_walks():
    """The Fig. 1 trace: top first, unpool only where the net pools (ZFNet: none between layers 3 and 4)."""
    from zfviz.deconv import deconv_steps
    model = small()
    five = deconv_steps(model, 5)
    assert five[:6] == [("rectify", "relu5"), ("filter", "conv5"), ("rectify", "relu4"), ("filter", "conv4"),
                        ("rectify", "relu3"), ("filter", "conv3")]
    assert [op for op, _ in five].count("unpool") == 2 and five[-1] == ("filter", "conv1")
    assert deconv_steps(model, 1) == [("rectify", "relu1"), ("filter", "conv1")]
    assert ("skip", "norm1") in deconv_steps(model, 2)
    # One step per module of the forward walk up to relu{layer}, in reverse.
    children = [n for n, _ in model.named_children()]
    for layer in LAYERS:
        assert [n for _, n in deconv_steps(model, layer)] == children[:children.index(f"relu{layer}") + 1][::-1]


def test_map_and_projection_is_feature_map_and_project_from_one_pass():
    model = small("zfnet", 64).eval()
    x = images(2, 64)
    for layer, position in ((2, None), (3, (1, 2))):
        channel = strong_channel(model, x, layer)
        fmap, projection = deconv.map_and_projection(model, x, layer, channel, position)
        assert torch.equal(fmap, deconv.feature_map(model, x, layer))          # the same walk: bit-equal
        assert torch.equal(projection, project(model, x, layer, channel, position))
    with pytest.raises(ValueError, match="channel must be an int"):
        deconv.map_and_projection(model, x, 2, 10_000)
