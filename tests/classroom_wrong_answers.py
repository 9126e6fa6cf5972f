"""A plausible wrong answer per graded exercise, for tests/test_classroom.py: the hidden tests must fail on each.

Each is the mistake a student is likely to make, written as the student's answer cell would be: it defines
the same names as the answer cell, in the chapter's namespace (torch, F, nn, zfviz's modules, the chapter's
variables).
"""

WRONG_ANSWERS = {
    # Unpooling with PyTorch's MaxUnpool2d, which keeps one of the colliding values instead of adding them.
    "deconvnet-ex1": """
x4 = torch.tensor([[1., 0., 2., 0., 3.], [0., 4., 0., 1., 0.], [2., 0., 10., 0., 8.],
                   [0., 1., 0., 6., 0.], [3., 0., 2., 0., 9.]]).view(1, 1, 5, 5)
pooled4, switches4 = F.max_pool2d(x4, 3, stride=2, ceil_mode=True, return_indices=True)
signal4 = torch.tensor([[1., 10.], [100., 1000.]]).view(1, 1, 2, 2)
up4 = nn.MaxUnpool2d(3, stride=2)(signal4, switches4, output_size=(5, 5))
centre = up4[0, 0, 2, 2].item()
""",
    # Filtering down with the filter as it is, not flipped (a correlation where the transpose is a convolution).
    "deconvnet-ex2": """
edge = torch.tensor([[1., 0., -1.]] * 3).view(1, 1, 3, 3)
conv_edge = nn.Conv2d(1, 1, 3, stride=1, bias=False)
with torch.no_grad():
    conv_edge.weight.copy_(edge)
s2 = torch.tensor([[1., 1.], [0., 0.]]).view(1, 1, 2, 2)
down2 = F.conv_transpose2d(s2, edge.flip(2, 3))
by_hand2 = down2[0, 0]
""",
    # "Silent" read as "has a zero somewhere" (amin) instead of "zero everywhere" (amax).
    "deconvnet-ex3": """
fmap2 = deconv.feature_map(model, x, 2)[0]
silent = (fmap2.amin(dim=(1, 2)) == 0).nonzero().flatten().tolist()
flat = deconv.project(model, x, 2, silent[0])
best = deconv.top_activations(model, val, 2, k=1, channels=silent, preprocess=preprocess)
""",
    # Pooling rounded down, as a convolution is, where ZFNet's pooling rounds up (ceil_mode).
    "network-ex1": """
n, sides = S, [S]
for name, k, s, p in [("conv1", 7, 2, 1), ("pool1", 3, 2, 0), ("conv2", 5, 2, 0), ("pool2", 3, 2, 0),
                      ("conv3", 3, 1, 1), ("conv4", 3, 1, 1), ("conv5", 3, 1, 1), ("pool5", 3, 2, 0)]:
    n = (n + 2 * p - k) // s + 1
    sides.append(n)
""",
    # Weights only: the biases forgotten.
    "network-ex2": """
layers = {"conv1": (3, 24, 7), "conv2": (24, 64, 5), "conv3": (64, 96, 3), "conv4": (96, 96, 3),
          "conv5": (96, 64, 3), "fc6": (64 * 5 * 5, 1024, 1), "fc7": (1024, 1024, 1), "fc8": (1024, 10, 1)}
counts = {name: c_out * c_in * k * k for name, (c_in, c_out, k) in layers.items()}
fc_share = sum(counts[f"fc{i}"] for i in (6, 7, 8)) / sum(counts.values())
""",
    # The formula's alpha used as it is, where nn.LocalResponseNorm divides it by the window size n.
    "network-ex3": """
def wrong_divisor(a):
    sq = torch.nn.functional.pad(a.pow(2), (0, 0, 0, 0, 2, 2))
    return (2.0 + 1e-4 * sum(sq[i:i + len(a)] for i in range(5))) ** 0.75

x_paper = x * preprocess.std * 255
with torch.no_grad():
    pool_paper = teach.pool1(teach.relu1(teach.conv1(x_paper)))[0]
divisors = {"unit scale": wrong_divisor(pool[0]), "paper's scale": wrong_divisor(pool_paper)}
""",
    # The radius read as a bound on each filter's norm, not on its RMS (root mean square of its weights).
    "training-ex1": """
import copy
from zfviz.train import renormalize_filters_
before = convs["not renormalised"].weight.detach().clone()
after_conv = copy.deepcopy(convs["not renormalised"])
rescaled = renormalize_filters_(after_conv, 0.1)
after = after_conv.weight.detach()
factor = (0.1 / before.flatten(1).norm(dim=1)).clamp(max=1)
""",
    # The "mirror image" computed without mirroring: the centre crop again.
    "training-ex2": """
x_rendered = test_big.tensors()[0]
side_in, side_big = preprocess.mean.shape[-1], x_rendered.shape[-1]
margin = (side_big - side_in) // 2
mirror = probabilities(x_rendered[..., margin:margin + side_in, margin:margin + side_in])
crop_accuracy = {what: int((p_ten[:, used].mean(1).argmax(1) == y).sum()) / len(y) for what, used in
                 [("centre crop", [4]), ("centre + its mirror", [4, 9]), ("five unflipped crops", [0, 1, 2, 3, 4]),
                  ("all ten crops", list(range(10)))]}
""",
    # The map's cell (i, j) taken for a pixel position: the square's corner and centre never computed.
    "occlusion-ex1": """
verdict, lowest = {}, {}
for side in (SQUARE // 2, SQUARE, 2 * SQUARE):
    m = occlusion.occlusion_map(net, image, label, size=side, stride=COUNT_STRIDE)
    i, j = divmod(int(m.argmin()), m.shape[1])
    verdict[side] = bool(val.masks[index][i, j])
    lowest[side] = m.min().item()
""",
    # The coarse map made by doubling the square instead of the stride.
    "occlusion-ex3": """
fine = occlusion.occlusion_map(net, image, label, size=SQUARE, stride=COUNT_STRIDE)
coarse = occlusion.occlusion_map(net, image, label, size=2 * SQUARE, stride=COUNT_STRIDE)[::2, ::2]
""",
    # Images ranked by the map's mean activation, not by its strongest unit (ZF's top 9 are by the maximum).
    "visualisation-ex1": """
c4 = int(tops[4].values[:, 0].argmax())
f4 = torch.cat([deconv.feature_map(model, preprocess(b), 4)[:, c4] for b in images.split(64)])
order4 = f4.flatten(1).mean(1).argsort(descending=True, stable=True)[:9]
where4 = f4.flatten(1)[order4].argmax(dim=1)
positions4 = torch.stack([where4 // f4.shape[-1], where4 % f4.shape[-1]], dim=1)
""",
    # conv1's padding forgotten: the patch starts one row and column too late.
    "visualisation-ex2": """
def layer2_patch(y, x):
    return 8 * x, 8 * y, min(8 * x + 27, side), min(8 * y + 27, side)
""",
    # The signed projection summed, where the share needs its magnitude: positive and negative cancel.
    "visualisation-ex3": """
def object_share_by(method, layer, channel):
    top = tops[layer]
    idx = top.indices[channel]
    energy = method(model, preprocess(images[idx]), layer, channel).sum(1)
    shares, covers = [], []
    for e, mask, pos in zip(energy, val.masks[idx], top.positions[channel]):
        x0, y0, x1, y1 = deconv.receptive_field_box(model, layer, tuple(pos.tolist()), side)
        e, m = e[y0:y1, x0:x1], mask[y0:y1, x0:x1].float()
        shares.append((e * m).sum() / e.sum().clamp_min(1e-12))
        covers.append(m.mean())
    return torch.stack(shares).mean().item(), torch.stack(covers).mean().item()
""",
    # Uncovered columns left black (zero) instead of showing the mean image.
    "invariance-ex1": """
def shift_right(batch, k, fill):
    moved = torch.zeros_like(batch)
    if k >= 0:
        moved[..., k:] = batch[..., :batch.shape[-1] - k]
    else:
        moved[..., :k] = batch[..., -k:]
    return moved

reference = activations.layer_features(net, preprocess(images), [1, 7])
horizontal = {}
for k in (-max_shift, -5, 5, max_shift):
    f = activations.layer_features(net, preprocess(shift_right(images, k, preprocess.mean)), [1, 7])
    horizontal[k] = {l: ((f[l] - reference[l]).norm(dim=1) / reference[l].norm(dim=1)).mean().item() for l in (1, 7)}
""",
    # Mirrored top-bottom (the height axis) instead of left-right.
    "invariance-ex2": """
half_turn = invariance.invariance(net, images, labels, "rotate", [180], layers=(7,), preprocess=preprocess)
with torch.no_grad():
    p_mirror = net(preprocess(images.flip(-2))).softmax(1)[torch.arange(len(labels)), labels]
""",
    # The distance itself, not relative to the unshifted features' length.
    "invariance-ex3": """
every_layer = invariance.invariance(net, images, labels, "translate", [5], layers=list(range(1, 8)),
                                  preprocess=preprocess)
by_layer = {l: every_layer.distance[l][0].mean().item() for l in range(1, 8)}
""",
    # The frequency taken in radians per pixel: cos(f x) instead of cos(2 pi f x).
    "architecture-ex1": """
freqs = [0.05, 0.25, 0.45]
x_pix = torch.arange(7, dtype=torch.float32)
gratings = torch.stack([torch.cos(f * x_pix).expand(3, 7, 7) for f in freqs])
grating_bands = filters.frequency_bands(gratings)
""",
    # The mean response of the convolution before the rectification, where the chapter rectifies first.
    "architecture-ex2": """
weakest_ratio, dead_counts = {}, {}
for name, (model, pre) in nets.items():
    with torch.no_grad():
        response = model.conv1(pre(x_val)).mean(dim=(0, 2, 3))
    ratio = response / response.max()
    weakest_ratio[name] = ratio.min().item()
    dead_counts[name] = {t: int((ratio < t).sum()) for t in (0.1, 0.25)}
""",
    # Each filter's norm taken for its RMS (the square root of the sum, not of the mean, of its squared weights).
    "architecture-ex3": """
filter_rms, at_radius, top3_share = {}, {}, {}
for name, (model, _) in nets.items():
    w = model.conv1.weight.detach()
    filter_rms[name] = w.flatten(1).norm(dim=1)
    at_radius[name] = int((filter_rms[name] > 0.099).sum())
    top3_share[name] = filters.top_norm_share(w, 3)
constrained = max(at_radius, key=at_radius.get)
""",
    # Only pairs where both units changed, with opposite signs, counted as a change: (1 - z)^2 / 2.
    "correspondence-ex1": """
gen = torch.Generator().manual_seed(0)
direction = torch.randn(100_000, generator=gen)
same_way = (0.5 + torch.rand(5, 1, generator=gen)) * direction
one_reversed = same_way.clone()
one_reversed[0] *= -1
delta_same = correspondence.sign_change_score(same_way)
delta_reversed = correspondence.sign_change_score(one_reversed)
predicted, measured = {}, {}
for z in (0.0, 0.5, 0.9):
    eps_random = torch.randn(5, 100_000, generator=gen).masked_fill(torch.rand(5, 100_000, generator=gen) < z, 0.0)
    predicted[z] = (1 - z) ** 2 / 2
    measured[z] = (correspondence.sign_change_score(eps_random), correspondence.sign_change_score(eps_random, ignore_zeros=True))
""",
    # The square's corner put on the middle of the tile instead of its centre.
    "correspondence-ex2": """
sides = parts["upper left"][:, 2:] - parts["upper left"][:, :2]
corner = test5.locate(renders, torch.tensor([[0.5, 0.5]] * 5)).round().long()
middle_squares = torch.cat([corner, corner + sides], 1)
middle_scores = correspondence.correspondence(net, x, {"middle": middle_squares, **random_parts}, layers=(5, 7),
                                        ignore_zeros=True)
by_hand = correspondence.sign_change_score(activations.layer_features(net, x, 5)
                                     - activations.layer_features(net, correspondence.mask_region(x, middle_squares), 5),
                                     ignore_zeros=True)
""",
    # The biases forgotten: a layer counted as its weights only.
    "experiments-ex1": """
def conv(c_in, c_out, k):
    return c_out * c_in * k * k

convs = conv(3, 24, 7) + conv(24, 64, 5)
no_fc = convs + conv(64, 96, 3) + conv(96, 96, 3) + conv(96, 64, 3) + 64 * 3 * 3 * 10
no_both = convs + conv(64, 64, 3) + 64 * 3 * 3 * 10
""",
    # C left at linear_probe's default in the loop, so every "C" fits the same probe.
    "experiments-ex2": """
c_sweep = {layer: {C: transfer.linear_probe(zf_feats[layer], y_tux, stamps, stamp_labels, 12, TEST, SEEDS, "softmax",
                                            C=0.01)
                   for C in (0.001, 0.01, 0.1)} for layer in (1, 7)}
""",
    # Test stamps counted instead of test images (each stamp has several renders).
    "experiments-ex3": """
shared, n_test_images = {}, {}
for seed in SEEDS:
    for n in PER_CLASS:
        train, test = transfer.few_shot_split(stamp_labels, n, TEST, seed)
        shared[seed, n] = len(set(train.tolist()) & set(test.tolist()))
        n_test_images[seed, n] = len(test)
""",
    # Black and white taken as 0 and 1, pixel values, where the fill is in the network's (preprocessed) input space.
    "occlusion-ex2": """
black, white = 0.0, 1.0
sample = list(range(0, len(val), 40))
centres = torch.arange(count_grid[0]) * COUNT_STRIDE + SQUARE // 2
minimum_on_object = {}
for fill_name, fill in [("grey", 0.0), ("black", black), ("white", white)]:
    n = 0
    for i in sample:
        m = occlusion.occlusion_map(net, preprocess(x_val[i:i + 1])[0], int(y_val[i]), size=SQUARE,
                                    stride=COUNT_STRIDE, fill=fill)
        n += bool(val.masks[i][centres][:, centres].flatten()[m.argmin()])
    minimum_on_object[fill_name] = n
""",
    # The recipe's entry after its 3rd epoch (runs[...][2]): the history's first entry is after epoch 1.
    "training-ex3": """
lr_runs = {0.001: short_run(lr=0.001, epochs=2)[-1],
           0.01: runs["recipe (momentum 0.9, dropout 0.5)"][2],
           0.1: short_run(lr=0.1, epochs=2)[-1]}
""",
}
