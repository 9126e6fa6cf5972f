"""zfviz.activations, zfviz.invariance, zfviz.correspondence and zfviz.filters (re-exported by zfviz.features)
against independent computations: zfviz.deconv's feature maps, a manual forward through the
children, exact pixel moves, torch.rot90, hand-worked sign-change scores and a naive correspondence loop.

Small random networks (width 0.125, 64-pixel input, He init so signals keep their scale) keep the file fast.
"""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from reference import relu_output

from zfviz import activations, deconv, features
from zfviz import correspondence as corr_module
from zfviz import filters as fe
from zfviz import invariance as inv_module
from zfviz.activations import layer_features
from zfviz.correspondence import (
    correspondence,
    mask_region,
    pair_sign_change,
    part_squares,
    random_squares,
    sign_change_score,
)
from zfviz.data import Preprocess
from zfviz.invariance import invariance, transform
from zfviz.models import init_kaiming_, zfnet

SIZE = 64


def small(seed=0):
    torch.manual_seed(seed)
    return init_kaiming_(zfnet(10, 0.125, SIZE)).eval()


def images(n=3, size=SIZE, seed=1, dtype=torch.float32):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def manual(model, x, layer):
    """The paper's layer, flattened, by running the children in order (independent of zfviz)."""
    return relu_output(model, x, layer).flatten(1)


# ---------------------------------------------------------------- layer_features

@pytest.mark.parametrize("layer", [1, 2, 3, 4, 5])
def test_conv_layers_are_deconvs_feature_maps_flattened(layer):
    model, x = small(), images()
    got = layer_features(model, x, layer)
    assert torch.equal(got, deconv.feature_map(model, x, layer).flatten(1))
    assert torch.equal(got, manual(model, x, layer))


@pytest.mark.parametrize("layer", [6, 7])
def test_fc_layers_match_a_manual_forward_with_dropout_off_and_leave_training_flags(layer):
    model, x = small(), images()
    model.train()                                   # dropout would be on if features ran in training mode
    got = layer_features(model, x, layer)
    assert got.shape == (3, model.fc6.out_features) and got.abs().sum() > 0
    assert torch.allclose(got, manual(model, x, layer), atol=1e-6, rtol=1e-5)
    assert all(m.training for m in model.modules())  # restored


def test_several_layers_in_one_pass_equal_single_calls_and_batching_changes_nothing():
    model, x = small(), images(5)
    many = layer_features(model, x, [7, 1, 5], batch_size=2)
    assert list(many) == [7, 1, 5]
    for k in (1, 5, 7):
        assert torch.allclose(many[k], layer_features(model, x, k, batch_size=64), atol=1e-6, rtol=1e-5)
    assert many[1].shape == (5, model.conv1.out_channels * 30 * 30)   # (64 + 2 - 7) // 2 + 1 = 30


def test_the_forward_pass_stops_after_the_highest_layer_asked_for():
    model, x = small(), images(2)
    calls = []
    handles = [m.register_forward_hook(lambda *a, name=name: calls.append(name))
               for name, m in model.named_children()]
    try:
        layer_features(model, x, [2, 4])
    finally:
        for h in handles:
            h.remove()
    assert calls[-1] == "relu4" and "conv5" not in calls


def test_bad_layers_and_images_say_what_is_allowed():
    model, x = small(), images(2)
    for bad in (0, 8, True, 2.0, [], [1, 8], "1", None):
        with pytest.raises(ValueError, match=r"1\.\.7"):
            layer_features(model, x, bad)
    with pytest.raises(ValueError, match="repeat"):
        layer_features(model, x, [1, 1])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        layer_features(model, x[0], 1)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        layer_features(model, x[:, :2], 1)
    with pytest.raises(TypeError, match="float"):
        layer_features(model, (x * 10).long(), 1)
    with pytest.raises(ValueError, match="64 pixels"):
        layer_features(model, images(2, size=96), 6)
    with pytest.raises(ValueError, match="batch_size"):
        layer_features(model, x, 1, batch_size=0)


# ---------------------------------------------------------------- transform

@pytest.mark.parametrize("kind,amount", [("translate", 0), ("scale", 1), ("scale", 1.0), ("rotate", 0),
                                         ("rotate", 360), ("rotate", -720)])
def test_identity_amounts_return_an_exact_copy(kind, amount):
    x = images(2)
    y = transform(x, kind, amount, fill=5.0)
    assert torch.equal(y, x) and y is not x


@pytest.mark.parametrize("k", [1, 5, -3])
def test_translate_moves_rows_by_exactly_k_and_fills_the_uncovered_rows(k):
    x = images(2, size=16)
    fill = torch.arange(3 * 16 * 16, dtype=torch.float32).view(3, 16, 16)   # a per-pixel fill image
    y = transform(x, "translate", k, fill=fill)
    if k > 0:
        assert torch.equal(y[..., k:, :], x[..., :-k, :])
        assert torch.equal(y[..., :k, :], fill[:, :k].expand(2, 3, k, 16))
    else:
        assert torch.equal(y[..., :k, :], x[..., -k:, :])
        assert torch.equal(y[..., k:, :], fill[:, k:].expand(2, 3, -k, 16))


def test_translate_a_bright_row_moves_it_down():
    x = torch.zeros(1, 3, 10, 10)
    x[..., 2, :] = 1.0
    y = transform(x, "translate", 4.0)
    assert y[0, 0, :, 0].nonzero().flatten().tolist() == [6]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotate_by_quarter_turns_is_rot90_counter_clockwise(k):
    x = images(2, size=12)
    assert torch.allclose(transform(x, "rotate", 90 * k), torch.rot90(x, k, dims=(2, 3)), atol=1e-5)


def test_rotation_corners_show_the_fill():
    x = images(1, size=16)
    y = transform(x, "rotate", 45, fill=7.0)
    assert torch.equal(y[..., 0, 0], torch.full((1, 3), 7.0))
    assert not torch.allclose(y[..., 8, 8], torch.full((1, 3), 7.0))


def test_scale_zooms_about_the_centre():
    # A ramp f(col) = col: bilinear sampling is exact on it, so zoom s gives c + (col - c) / s, c the centre.
    width = 9
    x = torch.arange(width, dtype=torch.float64).expand(1, 3, width, width).contiguous()
    y = transform(x, "scale", 2.0, fill=1e6)
    c = (width - 1) / 2
    expected = c + (torch.arange(width, dtype=torch.float64) - c) / 2
    assert torch.allclose(y[0, 0, 4], expected, atol=1e-9)
    assert y.max() < 1e6                            # a zoom >= 1 uncovers nothing


def test_bad_transformations_say_what_is_allowed():
    x = images(1, size=8)
    with pytest.raises(ValueError, match="translate.*scale.*rotate"):
        transform(x, "shear", 1)
    with pytest.raises(ValueError, match="whole pixels"):
        transform(x, "translate", 1.5)
    with pytest.raises(ValueError, match="whole pixels"):
        transform(x, "translate", 8)
    with pytest.raises(ValueError, match="> 0"):
        transform(x, "scale", 0)
    with pytest.raises(ValueError, match="finite"):
        transform(x, "rotate", float("nan"))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        transform(x[0], "rotate", 10)
    with pytest.raises(ValueError, match="broadcasts"):
        transform(x, "rotate", 10, fill=torch.zeros(3, 4, 4))


# ---------------------------------------------------------------- invariance

def test_invariance_at_the_identity_is_zero_distance_and_the_models_own_probability():
    model, x = small(), images(4)
    labels = torch.tensor([0, 3, 9, 3])
    inv = invariance(model, x, labels, "translate", [0, 4, -4], layers=(1, 6, 7))
    assert inv.amounts.tolist() == [0, 4, -4]
    for k in (1, 6, 7):
        assert inv.distance[k].shape == (3, 4)
        # The untransformed image runs in another batch than the reference features, and CPU kernels may
        # sum in another order for another batch: zero up to float32 rounding of the features (rel. ~1e-6).
        assert (inv.distance[k][0] <= 1e-5 * inv.norm[k]).all()
        assert (inv.distance[k][1:] > 1e-3 * inv.norm[k]).all()
        assert torch.allclose(inv.norm[k], manual(model, x, k).norm(dim=1), rtol=1e-5)
    with torch.no_grad():
        p = F.softmax(model(x), dim=1)
    assert torch.allclose(inv.prob[0], p[torch.arange(4), labels], rtol=1e-5)
    # The most probable class: the model's own argmax, or a class whose probability ties with it up to rounding.
    assert torch.allclose(p.gather(1, inv.top[0][:, None])[:, 0], p.max(1).values, rtol=1e-5)


def test_invariance_distances_match_features_of_transformed_images():
    model, x = small(), images(3)
    labels = [1, 2, 3]
    inv = invariance(model, x, labels, "rotate", [30, 90], layers=(1, 7), batch_size=2)
    for a, amount in enumerate([30, 90]):
        for k in (1, 7):
            moved = manual(model, transform(x, "rotate", amount), k)
            expected = (moved - manual(model, x, k)).norm(dim=1)
            assert torch.allclose(inv.distance[k][a], expected, rtol=1e-4, atol=1e-5)


def test_invariance_with_preprocess_moves_pixels_and_fills_with_the_mean_image():
    model = small()
    pixels = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    prep = Preprocess.fit(torch.rand(10, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3)))
    inv = invariance(model, pixels, [0, 1, 2], "translate", [6], layers=[2], preprocess=prep)
    moved = transform(pixels, "translate", 6, fill=prep.mean)
    assert torch.equal(moved[..., :6, :], prep.mean[:, :6].expand(3, 3, 6, SIZE))
    expected = (manual(model, prep(moved), 2) - manual(model, prep(pixels), 2)).norm(dim=1)
    assert torch.allclose(inv.distance[2][0], expected, rtol=1e-4)
    with torch.no_grad():
        p = F.softmax(model(prep(moved)), dim=1)[torch.arange(3), torch.tensor([0, 1, 2])]
    assert torch.allclose(inv.prob[0], p, rtol=1e-5)


def test_bad_invariance_arguments_say_what_is_allowed():
    model, x = small(), images(2)
    with pytest.raises(ValueError, match="choose one of"):
        invariance(model, x, [0, 1], "flip", [1])
    with pytest.raises(ValueError, match=r"ints in 0\.\.9"):
        invariance(model, x, [0, 10], "rotate", [10])
    with pytest.raises(ValueError, match="one per image"):
        invariance(model, x, [0], "rotate", [10])
    with pytest.raises(ValueError, match="at least one"):
        invariance(model, x, [0, 1], "rotate", [])
    with pytest.raises(ValueError, match=r"1\.\.7"):
        invariance(model, x, [0, 1], "rotate", [10], layers=(0, 7))


# ---------------------------------------------------------------- sign-change score

def naive_score(eps, ignore_zeros=False):
    s = torch.sign(eps)
    values = []
    for i, j in itertools.combinations(range(len(s)), 2):
        dims = [d for d in range(s.shape[1]) if not ignore_zeros or (s[i, d] != 0 and s[j, d] != 0)]
        if dims:
            values.append(sum(bool(s[i, d] != s[j, d]) for d in dims) / len(dims))
    return sum(values) / len(values) if values else float("nan")


def test_sign_change_score_extremes():
    row = torch.tensor([[0.5, -2.0, 3.0, 1e-3]])
    assert sign_change_score(row.repeat(5, 1)) == 0.0
    assert sign_change_score(torch.cat([row, -row])) == 1.0
    assert sign_change_score(torch.cat([row, -row]), ignore_zeros=True) == 1.0


def test_sign_change_score_by_hand_with_zeros_both_ways():
    eps = torch.tensor([[1.0, -2.0, 0.0, 0.0],    # signs a = + - 0 0
                        [3.0, 0.0, 0.0, -1.0],    #       b = + 0 0 -
                        [-1.0, -1.0, 0.0, 2.0]])  #       c = - - 0 +
    # zeros as a sign: H(a,b) = 2/4, H(a,c) = 2/4, H(b,c) = 3/4
    assert sign_change_score(eps) == pytest.approx((0.5 + 0.5 + 0.75) / 3)
    # only dimensions where both changed: H(a,b) = 0/1, H(a,c) = 1/2, H(b,c) = 2/2
    assert sign_change_score(eps, ignore_zeros=True) == pytest.approx((0 + 0.5 + 1) / 3)


def test_sign_change_score_no_shared_change_is_nan_when_ignoring_zeros():
    eps = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    assert sign_change_score(eps) == 1.0
    assert math.isnan(sign_change_score(eps, ignore_zeros=True))


@pytest.mark.parametrize("ignore_zeros", [False, True])
def test_sign_change_score_equals_a_naive_pair_loop(ignore_zeros):
    g = torch.Generator().manual_seed(4)
    eps = torch.randint(-1, 2, (5, 40), generator=g) * torch.rand(5, 40, generator=g)
    assert sign_change_score(eps, ignore_zeros) == pytest.approx(naive_score(eps, ignore_zeros), abs=1e-12)


def naive_pairs(eps, ignore_zeros=False):
    """Each unordered pair's fraction of differing signs, by a plain double loop (nan: no dimension counted)."""
    s = torch.sign(eps).tolist()
    out = []
    for i in range(len(s)):
        for j in range(i + 1, len(s)):
            dims = [d for d in range(len(s[i])) if not ignore_zeros or (s[i][d] != 0 and s[j][d] != 0)]
            out.append(sum(s[i][d] != s[j][d] for d in dims) / len(dims) if dims else math.nan)
    return out


@pytest.mark.parametrize("ignore_zeros", [False, True])
def test_pair_sign_change_equals_a_double_loop_and_its_mean_is_the_score(ignore_zeros):
    g = torch.Generator().manual_seed(7)
    eps = torch.randint(-1, 2, (6, 50), generator=g) * torch.rand(6, 50, generator=g)
    eps[5] = 0.0                                         # an image whose mask changed nothing
    eps[4, :] = eps[4].abs() * (torch.arange(50) < 3)    # one that changed only three dimensions
    got = pair_sign_change(eps, ignore_zeros)
    expected = naive_pairs(eps, ignore_zeros)
    assert got.shape == (15,) and got.dtype == torch.float64
    assert got.isnan().tolist() == [math.isnan(v) for v in expected]
    assert got.nan_to_num(-1.0).tolist() == pytest.approx([-1.0 if math.isnan(v) else v for v in expected], abs=1e-12)
    assert sign_change_score(eps, ignore_zeros) == pytest.approx(got[~got.isnan()].mean().item(), abs=1e-15)


def test_pair_sign_change_by_hand_and_pair_order():
    eps = torch.tensor([[1.0, -2.0, 0.0, 0.0],    # signs a = + - 0 0
                        [3.0, 0.0, 0.0, -1.0],    #       b = + 0 0 -
                        [-1.0, -1.0, 0.0, 2.0]])  #       c = - - 0 +
    # pairs (a, b), (a, c), (b, c), as torch.triu_indices orders them
    assert pair_sign_change(eps).tolist() == pytest.approx([2 / 4, 2 / 4, 3 / 4])
    assert pair_sign_change(eps, ignore_zeros=True).tolist() == pytest.approx([0 / 1, 1 / 2, 2 / 2])


def test_bad_eps_for_pairs_say_what_is_allowed():
    with pytest.raises(ValueError, match="N >= 2"):
        pair_sign_change(torch.ones(1, 5))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        pair_sign_change([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(TypeError, match="True or False"):
        pair_sign_change(torch.ones(2, 5), ignore_zeros="yes")
    with pytest.raises(TypeError, match="real-valued"):
        pair_sign_change(torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="finite"):
        pair_sign_change(torch.tensor([[math.inf, 1.0], [1.0, 1.0]]))


def test_bad_eps_say_what_is_allowed():
    with pytest.raises(ValueError, match="N >= 2"):
        sign_change_score(torch.ones(1, 5))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        sign_change_score(torch.ones(5))
    with pytest.raises(TypeError, match="True or False"):
        sign_change_score(torch.ones(2, 5), ignore_zeros=1)


# ---------------------------------------------------------------- regions

def test_mask_region_fills_exactly_the_box_clipped_to_the_image():
    x = images(2, size=10)
    boxes = torch.tensor([[2, 3, 5, 4], [7, 8, 14, 20]])          # (x0, y0, x1, y1); the second reaches past
    y = mask_region(x, boxes, fill=-9.0)
    expected = x.clone()
    expected[0, :, 3:4, 2:5] = -9.0
    expected[1, :, 8:, 7:] = -9.0
    assert torch.equal(y, expected)


def test_mask_region_with_masks_and_a_fill_image():
    x = images(2, size=6)
    masks = torch.zeros(2, 6, 6, dtype=torch.bool)
    masks[0, 1, 2] = masks[1, 4:, :2] = True
    fill = torch.rand(3, 6, 6)
    y = mask_region(x, masks, fill)
    assert torch.equal(y, torch.where(masks.unsqueeze(1), fill, x))
    with pytest.raises(ValueError, match="bool"):
        mask_region(x, masks[:, :5], 0.0)
    with pytest.raises(ValueError, match=r"\(x0, y0, x1, y1\)"):
        mask_region(x, torch.tensor([[1, 1, 3, 3]]), 0.0)         # one box for two images
    with pytest.raises(ValueError, match="x1 > x0"):
        mask_region(x, torch.tensor([[3, 1, 3, 3], [0, 0, 1, 1]]), 0.0)


def test_part_squares_by_hand():
    boxes = torch.tensor([[10, 20, 30, 60], [0, 0, 100, 100]])
    # box 0: 20 x 40, sqrt(800) * 0.5 = 14.1 -> 14; centre (10 + 0.5 * 20, 20 + 0.25 * 40) = (20, 30)
    # box 1: 100 x 100 -> side 50; centre (50, 25)
    assert part_squares(boxes, (0.5, 0.25), 0.5).tolist() == [[13, 23, 27, 37], [25, 0, 75, 50]]
    with pytest.raises(ValueError, match="fractions in"):
        part_squares(boxes, (1.5, 0.2), 0.5)
    with pytest.raises(ValueError, match="side"):
        part_squares(boxes, (0.5, 0.2), 0)


def test_random_squares_keep_their_size_stay_inside_and_reach_every_position():
    squares = torch.tensor([[0, 0, 3, 2]]).repeat(200, 1)
    bounds = torch.tensor([[5, 5, 10, 8]]).repeat(200, 1)          # room for x0 in 5..7, y0 in 5..6
    r = random_squares(squares, bounds, torch.Generator().manual_seed(0))
    assert torch.equal(r[:, 2:] - r[:, :2], torch.tensor([3, 2]).expand(200, 2))
    assert set(r[:, 0].tolist()) == {5, 6, 7} and set(r[:, 1].tolist()) == {5, 6}
    assert torch.equal(r, random_squares(squares, bounds, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="fit inside"):
        random_squares(torch.tensor([[0, 0, 9, 2]]), torch.tensor([[0, 0, 8, 8]]))


# ---------------------------------------------------------------- correspondence

def test_correspondence_equals_a_naive_recomputation():
    model, x = small(), images(4)
    boxes = torch.tensor([[4, 4, 40, 50], [10, 2, 60, 60], [0, 20, 30, 64], [20, 20, 50, 50]])
    parts = {"eye": part_squares(boxes, (0.3, 0.3), 0.3),
             "random": random_squares(part_squares(boxes, (0.3, 0.3), 0.3), torch.tensor([[0, 0, SIZE, SIZE]] * 4),
                                      torch.Generator().manual_seed(5))}
    for ignore_zeros in (False, True):
        got = correspondence(model, x, parts, layers=(3, 7), ignore_zeros=ignore_zeros, batch_size=3)
        for name, squares in parts.items():
            masked = x.clone()
            for i, (x0, y0, x1, y1) in enumerate(squares.tolist()):
                masked[i, :, max(y0, 0):y1, max(x0, 0):x1] = 0.0
            for k in (3, 7):
                eps = manual(model, x, k) - manual(model, masked, k)
                assert got[name][k] == pytest.approx(naive_score(eps, ignore_zeros), abs=1e-9)


def test_bad_correspondence_arguments_say_what_is_allowed():
    model, x = small(), images(2)
    box = torch.tensor([[0, 0, 5, 5]])
    with pytest.raises(ValueError, match="N >= 2"):
        correspondence(model, x[:1], {"a": box})
    with pytest.raises(ValueError, match="non-empty dict"):
        correspondence(model, x, {})
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        correspondence(model, x, {"a": box})


def test_top_norm_share_by_hand():
    from zfviz.filters import top_norm_share
    w = torch.zeros(4, 1, 1, 2)
    w[:, 0, 0, 0] = torch.tensor([3.0, 1.0, 1.0, 1.0])          # norms 3, 1, 1, 1 (sum 6)
    assert top_norm_share(w, 1) == pytest.approx(0.5)
    assert top_norm_share(w, 2) == pytest.approx(4 / 6)
    assert top_norm_share(torch.ones(8, 3, 2, 2), 2) == pytest.approx(2 / 8)    # equal filters: k / C
    with pytest.raises(ValueError, match="k must be an int in"):
        top_norm_share(w, 5)
    with pytest.raises(ValueError, match="weight must be conv filters"):
        top_norm_share(torch.ones(4, 3), 1)


def test_dead_filters_finds_the_silent_ones():
    from zfviz.filters import dead_filters
    conv = torch.nn.Conv2d(3, 4, 3)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.tensor([1.0, 0.5, 0.004, -2.0]))   # constant responses 1, 0.5, 0.004, 0
    images = torch.randn(5, 3, 8, 8)
    assert dead_filters(conv, images).tolist() == [False, False, True, True]
    assert dead_filters(conv, images, threshold=0.001).tolist() == [False, False, False, True]
    with pytest.raises(ValueError, match="threshold must be in"):
        dead_filters(conv, images, threshold=1.5)
    with pytest.raises(ValueError, match=r"images must be \(N, 3, H, W\)"):
        dead_filters(conv, torch.randn(5, 1, 8, 8))
    with pytest.raises(TypeError, match="conv must be an nn.Conv2d"):
        dead_filters(torch.nn.Linear(3, 4), images)


def test_neighbour_correlation_of_known_filters():
    """Smooth ramps correlate near 1, a checkerboard at -1, white noise near 0; worked out independently."""
    from zfviz.filters import neighbour_correlation
    i = torch.arange(7.0)
    ramp = (i.view(1, 7) + i.view(7, 1)).expand(3, 7, 7)                    # smooth diagonal ramp
    checker = ((-1.0) ** (i.view(1, 7) + i.view(7, 1))).expand(3, 7, 7)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(200, 3, 7, 7, generator=g)
    r = neighbour_correlation(torch.stack([ramp, checker]))
    def by_hand(f):      # symmetric filters: the vertical pairs correlate as the horizontal ones
        x = f - f.mean()
        return ((x[:, 1:] * x[:, :-1]).sum() / (x[:, 1:].pow(2).sum() * x[:, :-1].pow(2).sum()).sqrt()).item()
    assert r[0].item() == pytest.approx(by_hand(ramp[0]), abs=1e-6) and r[0] > 0.7
    assert r[1].item() == pytest.approx(by_hand(checker[0]), abs=1e-6) and r[1] < -0.99
    assert abs(neighbour_correlation(noise).mean().item()) < 0.03
    assert neighbour_correlation(torch.zeros(2, 3, 7, 7)).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="k >= 2"):
        neighbour_correlation(torch.zeros(2, 3, 1, 1))
    with pytest.raises(TypeError, match="float tensor"):
        neighbour_correlation(torch.zeros(2, 3, 7, 7, dtype=torch.long))


def test_frequency_bands_of_known_gratings():
    from zfviz.filters import frequency_bands
    k = 16
    x = torch.arange(k, dtype=torch.float64)
    flat = torch.ones(1, 3, k, k)                                          # DC only -> all low
    nyquist = torch.cos(math.pi * x).view(1, 1, 1, k).expand(1, 3, k, k)  # 0.5 cycles/pixel -> all high
    mid = torch.cos(2 * math.pi * 0.25 * x).view(1, 1, 1, k).expand(1, 3, k, k)   # 0.25 -> mid
    shares = frequency_bands(torch.cat([flat, nyquist, mid]).float(), size=k)
    assert torch.allclose(shares.sum(1), torch.ones(3))
    assert torch.allclose(shares[0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(shares[1], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    assert torch.allclose(shares[2], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    with pytest.raises(ValueError, match="edges must be increasing"):
        frequency_bands(flat, edges=(0.3, 0.1))
    with pytest.raises(ValueError, match="size must be an int >="):
        frequency_bands(flat, size=8)


def test_shift_variation_against_a_direct_computation_and_a_shift_invariant_case():
    from zfviz.filters import shift_variation
    torch.manual_seed(0)
    model = init_kaiming_(zfnet(num_classes=3, width=0.125, input_size=64)).eval()
    images = torch.rand(2, 3, 70, 72)
    got = shift_variation(model, images, 2, 64, [0, 1, 3])
    # Shift 0 compares a window with itself: 1 - cosine similarity is 0 up to the rounding of float32 near 1
    # (ulp 6e-8) and the order of the sums, which differs between CPUs (5.96e-08 and -1.19e-07 seen).
    assert got.shape == (3, 2) and got[0].abs().max() < 1e-6
    top = (70 - 64) // 2
    a = deconv.feature_map(model, images[:, :, top:top + 64, 3:67], 2).mean((2, 3))
    b = deconv.feature_map(model, images[:, :, top:top + 64, 0:64], 2).mean((2, 3))
    assert torch.allclose(got[2], 1 - F.cosine_similarity(a, b, dim=1), atol=1e-6)
    # A scene that is constant along x looks the same in every window: nothing to alias.
    flat = torch.rand(2, 3, 70, 1).expand(2, 3, 70, 72).contiguous()
    assert shift_variation(model, flat, 2, 64, [1, 2, 5]).abs().max() < 1e-6
    with pytest.raises(ValueError, match="must fit in the"):
        shift_variation(model, images, 2, 64, [9])
    with pytest.raises(ValueError, match="shifts must be pixel offsets"):
        shift_variation(model, images, 2, 64, [-1])


# ---------------------------------------------------------------- issue 13: every bad input is refused up front

NAN, INF = float("nan"), float("inf")
BOX = torch.tensor([[0, 0, 4, 4], [1, 1, 5, 5]])


def _wide(nan=False):
    x = torch.rand(2, 3, 64, 70, generator=torch.Generator().manual_seed(2))
    return x * NAN if nan else x


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x: layer_features(m, x * NAN, 1), ValueError, r"images must be finite"),
    (lambda m, x: layer_features(m, x.double() * 1e300, 1), ValueError, r"images do not fit.*float32"),
    (lambda m, x: layer_features(m, x[:, :, :20, :20], 5), ValueError,
     r"images: 20x20 pixels is too small for layer 5: 'conv2'.*31x31"),
    (lambda m, x: layer_features(m, x, 1, batch_size=2.0), TypeError, r"batch_size must be an int >= 1.*2\.0"),
    (lambda m, x: layer_features(m, x, 1, batch_size=0), ValueError, r"batch_size must be an int >= 1.*got 0"),
    (lambda m, x: transform(x, "rotate", 10, fill=NAN), ValueError, r"fill must be a finite number.*nan"),
    (lambda m, x: transform(x, "translate", 2, fill=INF), ValueError, r"fill must be a finite number"),
    (lambda m, x: transform(x, "rotate", 10, fill=torch.full((3, SIZE, SIZE), NAN)), ValueError,
     r"fill must be finite"),
    (lambda m, x: transform(x * NAN, "rotate", 10), ValueError, r"images must be finite"),
    (lambda m, x: transform(x, "rotate", INF), ValueError, r"amount for 'rotate' must be a finite number"),
    (lambda m, x: transform(x, "scale", True), ValueError, r"amount for 'scale' must be a finite number.*True"),
    (lambda m, x: invariance(m, x, [0, 1, 2], "rotate", 10), ValueError, r"amounts must be a list.*got 10"),
    (lambda m, x: invariance(m, x, [0, 1, 2], "rotate", [NAN]), ValueError,
     r"amount for 'rotate' must be a finite number, got nan"),
    (lambda m, x: invariance(m, x * NAN, [0, 1, 2], "rotate", [10]), ValueError, r"images must be finite"),
    (lambda m, x: invariance(m, x, [0, 1, 2], "rotate", [10], layers=[]), ValueError, r"layers must be .*non-empty"),
    (lambda m, x: invariance(m, x, [0.0, 1, 2], "rotate", [10]), ValueError, r"labels must be 3 ints"),
    (lambda m, x: invariance(m, x, [0, 1, 2], "rotate", [10], preprocess="norm"), TypeError, r"preprocess must"),
    (lambda m, x: correspondence(m, x[:2], {"a": BOX}, fill=NAN), ValueError, r"fill must be a finite"),
    (lambda m, x: correspondence(m, x[:2] * NAN, {"a": BOX}), ValueError, r"images must be finite"),
    (lambda m, x: correspondence(m, x[:2], {"a": BOX}, layers=[]), ValueError, r"layers must be .*non-empty"),
    (lambda m, x: correspondence(m, x[:2], {"a": BOX.float()}), ValueError, r"regions must be an integer tensor"),
    (lambda m, x: correspondence(m, x[:2], {"a": BOX}, ignore_zeros=1), TypeError, r"ignore_zeros must be True"),
    (lambda m, x: mask_region(x[:2] * NAN, BOX), ValueError, r"images must be finite"),
    (lambda m, x: mask_region(x[:2], BOX, fill=NAN), ValueError, r"fill must be a finite"),
    (lambda m, x: mask_region(x[:2], BOX.bool()), ValueError, r"regions given as masks must be bool \(2, 64, 64\)"),
    (lambda m, x: sign_change_score(torch.tensor([[NAN, 1.0], [1.0, 1.0]])), ValueError,
     r"eps must be finite.*1 non-finite"),
    (lambda m, x: sign_change_score(torch.ones(2, 3, dtype=torch.bool)), TypeError, r"eps must be a real-valued"),
    (lambda m, x: part_squares(BOX, (0.5, 0.5), INF), ValueError, r"side must be a finite fraction > 0.*inf"),
    (lambda m, x: part_squares(BOX, (True, 0.5), 0.5), ValueError, r"where must be \(u, v\)"),
    (lambda m, x: part_squares(BOX, (NAN, 0.5), 0.5), ValueError, r"where must be \(u, v\)"),
    (lambda m, x: part_squares(BOX.bool(), (0.5, 0.5), 0.5), ValueError, r"boxes must be an integer tensor"),
    (lambda m, x: random_squares(BOX, BOX[:1]), ValueError, r"bounds must be an integer tensor \(2, 4\)"),
    (lambda m, x: random_squares(BOX, BOX, 3), TypeError, r"generator must be a torch.Generator"),
    (lambda m, x: fe.shift_variation(m, _wide(), 2, 64, [1.5]), ValueError, r"shifts must be .*ints.*\[1\.5\]"),
    (lambda m, x: fe.shift_variation(m, _wide(), 2, 64, [True]), ValueError, r"shifts must be .*\[True\]"),
    (lambda m, x: fe.shift_variation(m, _wide(), 2, 64, []), ValueError, r"shifts must be .*at least one"),
    (lambda m, x: fe.shift_variation(m, _wide(), 2, 64, 3), ValueError, r"shifts must be .*got 3"),
    (lambda m, x: fe.shift_variation(m, _wide(), 2, True, [1]), TypeError, r"size must be an int >= 1.*True"),
    (lambda m, x: fe.shift_variation(m, _wide(), 2, 64.0, [1]), TypeError, r"size must be an int >= 1.*64\.0"),
    (lambda m, x: fe.shift_variation(m, _wide(nan=True), 2, 64, [1]), ValueError, r"images must be finite"),
    (lambda m, x: fe.shift_variation(m, _wide(), 6, 64, [1]), ValueError, r"layer must be .* 1\.\.5; got 6"),
    (lambda m, x: fe.shift_variation(m, _wide(), 2, 64, [1], preprocess=3), TypeError, r"preprocess must be"),
    (lambda m, x: fe.dead_filters(m.conv1, x * NAN), ValueError, r"images must be finite"),
    (lambda m, x: fe.dead_filters(m.conv1, x[:0]), ValueError, r"images must hold at least one image"),
    (lambda m, x: fe.dead_filters(m.conv1, x[:, :, :3, :3]), ValueError, r"images: 3x3 pixels is too small.*5x5"),
    (lambda m, x: fe.dead_filters(m.conv1, (x * 9).long()), TypeError, r"images must be a float tensor"),
    (lambda m, x: fe.dead_filters(m.conv1, x, "0.1"), TypeError, r"threshold must be a finite real number"),
    (lambda m, x: fe.dead_filters(m.conv1, x, NAN), ValueError, r"threshold must be .*in \(0, 1\)"),
    (lambda m, x: fe.frequency_bands(m.conv1.weight * NAN), ValueError, r"weight must be finite"),
    (lambda m, x: fe.frequency_bands(m.conv1.weight, edges=0.2), ValueError, r"edges must be increasing"),
    (lambda m, x: fe.frequency_bands(m.conv1.weight, edges=["a"]), ValueError, r"edges must be increasing"),
    (lambda m, x: fe.frequency_bands(m.conv1.weight, edges=[]), ValueError, r"edges must be increasing"),
    (lambda m, x: fe.frequency_bands(m.conv1.weight, size=64.0), TypeError, r"size must be an int >= .*64\.0"),
    (lambda m, x: fe.frequency_bands(torch.ones(2, 3, 1, 1), size=True), TypeError, r"size must be an int"),
    (lambda m, x: fe.frequency_bands(torch.ones(2, 3, 4, 4, dtype=torch.long)), TypeError, r"weight must be a float"),
    (lambda m, x: fe.top_norm_share(m.conv1.weight * NAN, 2), ValueError, r"weight must be finite"),
    (lambda m, x: fe.top_norm_share(m.conv1.weight, True), TypeError, r"k must be an int in 1\.\.12.*True"),
    (lambda m, x: fe.top_norm_share(m.conv1.weight, 2.0), TypeError, r"k must be an int in 1\.\.12.*2\.0"),
    (lambda m, x: fe.top_norm_share(torch.zeros(4, 3, 2, 2), 2), ValueError, r"weight must have a filter"),
])
def test_features_bad_inputs_are_refused_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call(small(), images(3))


def test_a_layer_whose_filters_never_respond_is_all_dead():
    conv = torch.nn.Conv2d(3, 4, 3)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(-1.0)                                      # every response 0, the maximum too
    assert fe.dead_filters(conv, torch.randn(2, 3, 8, 8)).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_float16_and_float64_images_give_float32_features(dtype):
    # float16 -> float32 is exact: the features are those of the rounded image, computed in float32 (the same
    # computation, so equal up to float32 rounding; relative 1e-5 over the few layers).
    model, x = small(), images(2)
    rounded = x.to(dtype)
    got = layer_features(model, rounded, [1, 7])
    want = layer_features(model, rounded.float(), [1, 7])
    for k in (1, 7):
        assert got[k].dtype == torch.float32 and torch.allclose(got[k], want[k], rtol=1e-5, atol=1e-6)


def test_frequency_bands_of_a_zero_filter_is_a_zero_row_and_the_others_sum_to_one():
    from zfviz.filters import frequency_bands
    w = torch.randn(3, 3, 7, 7, generator=torch.Generator().manual_seed(0))
    w[1] = 0
    bands = frequency_bands(w)
    assert torch.equal(bands[1], torch.zeros(3))
    assert torch.allclose(bands[[0, 2]].sum(1), torch.ones(2), atol=1e-6)


def test_projection_legibility_scores_structure_above_noise():
    """A projection that is the image's own outline scores a high edge correlation and sits on the object;
    white noise scores about 0 and a ratio of about 1; each number checked against a hand computation."""
    from zfviz.filters import projection_legibility
    n, s = 3, 32
    images = torch.full((n, 3, s, s), 0.2)
    masks = torch.zeros(n, s, s, dtype=torch.bool)
    masks[:, 8:24, 8:24] = True
    images[:, :, 8:24, 8:24] = 0.9                                   # a bright square object
    g = torch.Generator().manual_seed(0)
    outline = torch.zeros(n, 3, s, s)
    outline[:, :, 7:9, 7:25] = outline[:, :, 23:25, 7:25] = 1.0         # the square's edges
    outline[:, :, 7:25, 7:9] = outline[:, :, 7:25, 23:25] = 1.0
    noise = torch.randn(n, 3, s, s, generator=g)
    boxes = [(0, 0, s, s)] * n
    good, bad = projection_legibility(outline, images, masks, boxes), projection_legibility(noise, images, masks, boxes)
    assert (good.edge_correlation > 0.6).all() and (bad.edge_correlation.abs() < 0.15).all()
    assert (bad.object_ratio - 1).abs().max() < 0.2
    # The ratio by hand for the first noise image: share of |p| on the object over the object's area share.
    e = noise[0].abs().sum(0)
    by_hand = ((e * masks[0]).sum() / e.sum()) / masks[0].float().mean()
    assert bad.object_ratio[0].item() == pytest.approx(by_hand.item(), rel=1e-5)
    # A box without the object: no ratio (NaN), not a made-up number.
    empty = projection_legibility(noise[:1], images[:1], masks[:1], [(0, 0, 6, 6)])
    assert torch.isnan(empty.object_ratio).all()
    with pytest.raises(ValueError, match="boxes must be 1 boxes"):
        projection_legibility(noise[:1], images[:1], masks[:1], [(0, 0, 40, 40)])
    with pytest.raises(ValueError, match="must match"):
        projection_legibility(noise, images[:1], masks, boxes)
    # Boxes are (x0, y0, x1, y1): on a 16 x 32 image, (0, 0, 32, 16) is the whole image, (0, 0, 16, 32) is not.
    wide = (torch.randn(1, 3, 16, 32, generator=g), torch.rand(1, 3, 16, 32), torch.ones(1, 16, 32, dtype=torch.bool))
    assert projection_legibility(*wide, [(0, 0, 32, 16)]).object_ratio.item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"boxes must be 1 boxes \(x0, y0, x1, y1\) inside the 16x32 image"):
        projection_legibility(*wide, [(0, 0, 16, 32)])


def test_projection_legibility_smoothness_tells_strokes_from_speckle():
    from zfviz.filters import neighbour_correlation, projection_legibility
    s = 32
    images, masks = torch.rand(2, 3, s, s), torch.ones(2, s, s, dtype=torch.bool)
    i = torch.arange(float(s))
    stroke = torch.exp(-((i.view(-1, 1) - i.view(1, -1)) ** 2) / 20).expand(3, s, s)       # a smooth diagonal
    speckle = torch.randn(3, s, s, generator=torch.Generator().manual_seed(0))
    leg = projection_legibility(torch.stack([stroke, speckle]), images, masks, [(4, 4, 28, 28)] * 2)
    assert leg.smoothness[0] > 0.8 and abs(leg.smoothness[1]) < 0.1
    assert leg.smoothness[1].item() == pytest.approx(
        neighbour_correlation(speckle[None, :, 4:28, 4:28])[0].item(), abs=1e-5)
    assert torch.isnan(projection_legibility(torch.zeros(1, 3, s, s), images[:1], masks[:1], [(0, 0, s, s)]).smoothness).all()


def test_chance_purity_against_every_draw():
    from zfviz.filters import chance_purity
    sizes, k = (3, 2, 1, 2), 4
    labels = [c for c, n in enumerate(sizes) for _ in range(n)]
    draws = list(itertools.combinations(range(len(labels)), k))      # every draw, counted by brute force
    largest = [max(sum(labels[i] == c for i in d) for c in range(len(sizes))) for d in draws]
    expected = torch.tensor([largest.count(m) / len(draws) for m in range(k + 1)], dtype=torch.float64)
    assert torch.allclose(chance_purity(sizes, k), expected, rtol=0, atol=1e-12)
    assert chance_purity([3, 2, 1], 3).tolist() == pytest.approx([0, 6 / 20, 13 / 20, 1 / 20])   # by hand
    assert chance_purity([32] * 10, 9).sum().item() == pytest.approx(1, abs=1e-12)
    with pytest.raises(ValueError, match=r"k must be an int in 1\.\.6"):
        chance_purity([3, 2, 1], 7)
    with pytest.raises(ValueError, match="class_sizes must be"):
        chance_purity([3, -1], 1)


# ---------------------------------------------------------------- issue 17: one module per section of the paper

SECTIONS = [activations, inv_module, corr_module, fe]


@pytest.mark.parametrize("module", SECTIONS, ids=lambda m: m.__name__)
def test_features_re_exports_every_public_name_of_each_section_as_the_same_object(module):
    assert set(module.__all__) <= set(features.__all__)
    for name in module.__all__:
        assert getattr(features, name) is getattr(module, name), f"features.{name} is not {module.__name__}.{name}"


def test_features_re_exports_nothing_else():
    assert sorted(features.__all__) == sorted(n for m in SECTIONS for n in m.__all__)


@pytest.mark.parametrize("module", SECTIONS, ids=lambda m: m.__name__)
def test_each_section_imports_neither_features_nor_a_private_name_of_another_module(module):
    import ast
    import inspect
    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            imported.add(node.module)
            if node.module != "_checks":     # the shared validators: a private module with public names
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{module.__name__} imports private names {private} of zfviz.{node.module}"
    assert "features" not in imported, f"{module.__name__} imports zfviz.features, which re-exports it: a cycle"
    if module is activations:              # below invariance, correspondence and transfer in the import graph
        assert imported <= {"layers", "_checks"}, imported


@pytest.mark.parametrize("module", SECTIONS, ids=lambda m: m.__name__)
def test_each_section_and_its_public_names_say_which_chapter_explains_them(module):
    import inspect
    import re
    from pathlib import Path
    book = Path(features.__file__).resolve().parents[1] / "book"
    doc = inspect.getdoc(module)
    assert re.search(r"\bbook/[a-z_]+", doc) and '"' in doc, f"{module.__name__}: no chapter or no quotation"
    texts = [doc]
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            text = inspect.getdoc(obj) or ""
            assert "chapter" in text.lower(), f"{module.__name__}.{name}: no chapter in its docstring"
            texts.append(text)
    stems = {m for t in texts for m in re.findall(r"\bbook/([a-z_]+)", t)}
    assert all((book / f"{s}.ipynb").exists() or (book / f"{s}.md").exists() for s in stems), stems


@pytest.mark.parametrize("module", SECTIONS + [features], ids=lambda m: m.__name__)
def test_no_function_is_longer_than_50_lines(module):
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(module))
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 50]
    assert not long, f"{module.__name__}: {long}"


def test_correspondence_scores_both_conventions_from_one_pass_as_two_calls_do():
    model, x = small(), images(3)
    parts = {"a": torch.tensor([[4, 4, 20, 20]] * 3), "b": torch.tensor([[30, 10, 50, 30]] * 3)}
    both = correspondence(model, x, parts, layers=(5, 7), ignore_zeros=(False, True))
    assert list(both) == [False, True]
    for ignore in (False, True):
        assert both[ignore] == correspondence(model, x, parts, layers=(5, 7), ignore_zeros=ignore)
    assert list(correspondence(model, x, parts, layers=(5,), ignore_zeros=[True])) == [True]
    for bad in ((), (True, True), (False, 1), "both"):
        with pytest.raises(TypeError, match=r"ignore_zeros must be True or False, or a tuple"):
            correspondence(model, x, parts, ignore_zeros=bad)
