"""How cheap is Fig. 2 at teaching scale? The top-k images of every feature map of a layer (mining) and
the deconvnet projection of each of those units (zfviz.deconv), against the straightforward way with Captum:
one ``NeuronDeconvolution.attribute`` call per unit. Also the latency of one widget update.

    python benchmarks/bench_deconv.py [--layer 5] [--images 1000] [--k 9] [--repeats 3] [--updates 30]

Two Captum peers are shown because they answer two questions: "Captum, per channel" is the whole job done the
way a per-unit tool makes you do it (one pass over the data per channel to find its top-k, then one
NeuronDeconvolution per unit), the end-to-end comparison the goal is about; "Captum, shared mining" reuses
zfviz's one-pass mining, so that it isolates the speed of the projections alone.

What is compared, in one process on 2 threads (``torch.set_num_threads(2)``):

* data: the first ``--images`` images of ``ClipArt("train", renders=3)`` (1140 images, epoch 0; more renders
  if more images are asked for), the book's trained width-0.25 ZFNet at 112 px (``load_teaching_zfnet``).
* zfviz: ``top_activations(model, data, layer, k, preprocess=...)`` for all channels (one pass over the data),
  then per channel one batched ``project(model, preprocess(its k images), layer, channel)``. ``position=None``
  takes each image's first argmax, which is what ``top_activations`` records; the script checks (untimed) that
  the projected units are the mined ones.
* Captum, per channel: Captum has no mining over a data set, so for each channel separately one pass over the
  same data (``DataLoader``, batches of 64, the same preprocessing) with ``LayerActivation(model, relu{layer})``
  (which runs the whole network forward, as Captum does) keeps that channel's top-k images by spatial maximum
  (ties to the lower index, as zfviz); then the projections as below. If C passes would take longer than
  ``--mining-budget`` seconds, a seeded random sample of ``--mining-sample`` channels is timed and the
  per-channel cost extrapolated to C (printed as such). The script checks (untimed) that the timed channels'
  top-k images are zfviz's.
* Captum, shared mining: the peer reuses zfviz's mining (same time) and then, for each of the
  C x k mined units, ``NeuronDeconvolution(model, relu{layer}).attribute(image, neuron_selector=(c, y, x))``
  times the unit's value, one unit at a time. If that would take longer than ``--captum-budget`` seconds,
  a seeded random sample of units is timed and the per-unit cost extrapolated to C x k (printed as such).
  Captum backpropagates through contrast normalisation (LRN) where zfviz, as the paper, skips it; that does
  not change the cost, and with LRN replaced by Identity the two agree (a sanity line is printed).
* widget update: one projection of one image for random (layer, channel, image), median and 90th percentile,
  alone and with the preprocessing and ``zfviz.plotting.stretch`` around it.

Each timing is the best of ``--repeats`` (other processes may share the cores; the 1-minute load average is
printed). Not a test: the numbers depend on the machine. Goals from the issue: total ratio >= 20x against "a loop
of Captum NeuronDeconvolution per unit" (judged against the per-channel peer, the one that does the whole job),
update median <= 100 ms.
"""
import argparse
import copy
import math
import os
import statistics
import time
import warnings

import torch
from captum.attr import LayerActivation, NeuronDeconvolution
from torch import nn
from torch.utils.data import DataLoader, Subset

from zfviz.data import ClipArt
from zfviz.deconv import project, top_activations
from zfviz.checkpoints import load_teaching_zfnet
from zfviz.plotting import stretch


def load_images(n):
    """The first n images of the clip-art training split (epoch 0), as a Subset of (image in [0, 1], label)."""
    data = ClipArt("train", renders=3)
    if len(data) < n:
        data = ClipArt("train", renders=math.ceil(n / len(data.sprites)))
    return Subset(data, range(n))


def gather(data, indices):
    return torch.stack([data[i][0] for i in indices.tolist()])                # (k, 3, S, S) in [0, 1]


def up_to(model, layer):
    """The model's children up to relu{layer}: its output is the map that is mined and projected."""
    names = [name for name, _ in model.named_children()]
    return nn.Sequential(*list(model.children())[:names.index(f"relu{layer}") + 1])


def zfviz_projections(model, preprocess, data, top, layer):
    return [project(model, preprocess(gather(data, top.indices[c])), layer, c) for c in range(len(top.indices))]


def captum_top_k(model, preprocess, data, layer, channel, k, batch_size=64):
    """One channel's k strongest images, by a pass over the data with Captum's LayerActivation on relu{layer}.

    Returns (values (k,), indices (k,), positions (k, 2)) like one row of ``TopActivations``. The running
    top-k is sorted stably over [best so far, this batch], so ties go to the lower index as in zfviz.
    """
    act = LayerActivation(model, getattr(model, f"relu{layer}"))
    values, indices, positions, start = torch.empty(0), torch.empty(0, dtype=torch.long), None, 0
    for images, _ in DataLoader(data, batch_size=batch_size, shuffle=False):
        fmap = act.attribute(preprocess(images))[:, channel]                     # (n, H, W)
        where = fmap.flatten(1).argmax(1)                                       # first maximum per image
        values = torch.cat([values, fmap.flatten(1).gather(1, where[:, None])[:, 0]])
        indices = torch.cat([indices, torch.arange(start, start + len(images))])
        batch = torch.stack([where // fmap.shape[-1], where % fmap.shape[-1]], 1)
        positions = batch if positions is None else torch.cat([positions, batch])
        order = values.argsort(descending=True, stable=True)[:k]
        values, indices, positions = values[order], indices[order], positions[order]
        start += len(images)
    return values, indices, positions


def captum_projections(model, preprocess, data, top, layer, units):
    """One NeuronDeconvolution call per (channel, rank) unit, scaled by the unit's value as zfviz scales it."""
    deconv = NeuronDeconvolution(model, getattr(model, f"relu{layer}"))
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # Captum warns on every call that it sets hooks on the ReLUs
        for c, j in units:
            x = preprocess(data[int(top.indices[c, j])][0][None])
            y, x_ = top.positions[c, j].tolist()
            out.append(top.values[c, j] * deconv.attribute(x, neuron_selector=(c, y, x_)))
    return out


def best_time(fn, repeats):
    best, result = math.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def check_same_units(model, preprocess, data, top, layer):
    """How many projected units (each image's argmax in a k-image batch) are the mined ones."""
    head, same = up_to(model, layer), 0
    with torch.no_grad():
        for c in range(len(top.indices)):
            fmap = head(preprocess(gather(data, top.indices[c])))[:, c]       # (k, H, W)
            where = fmap.flatten(1).argmax(1)
            same += int((torch.stack([where // fmap.shape[-1], where % fmap.shape[-1]], 1) == top.positions[c])
                        .all(1).sum())
    return same


def sanity(model, preprocess, data, top, layer, units):
    """Max relative difference zfviz vs Captum x value on a few units, with LRN as Identity and as is.

    With LRN, Captum's backward multiplies by LRN's gain (about k**-beta = 2**-0.75 = 0.59 per LRN layer),
    which zfviz skips; so the second figure is also given with each map scaled to max |.| = 1.
    """
    no_lrn = copy.deepcopy(model)
    for name, m in no_lrn.named_children():
        if isinstance(m, nn.LocalResponseNorm):
            setattr(no_lrn, name, nn.Identity())
    diffs = {}
    for label, net in [("LRN -> Identity", no_lrn), ("with LRN", model)]:
        deconv, head = NeuronDeconvolution(net, getattr(net, f"relu{layer}")), up_to(net, layer)
        worst = shape = 0.0
        for c, j in units:
            x = preprocess(data[int(top.indices[c, j])][0][None])
            y, x_ = top.positions[c, j].tolist()
            ours = project(net, x, layer, c, position=(y, x_))
            with torch.no_grad():
                value = head(x)[0, c, y, x_]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = value * deconv.attribute(x, neuron_selector=(c, y, x_)).detach()
            worst = max(worst, float((ours - theirs).abs().max() / ours.abs().max().clamp_min(1e-30)))
            ours, theirs = (a / a.abs().max().clamp_min(1e-30) for a in (ours, theirs))
            shape = max(shape, float((ours - theirs).abs().max()))
        diffs[label] = worst, shape
    return diffs


def widget_updates(model, preprocess, data, n, seed=0):
    """Latency (ms) of one projection of one image, for random (layer, channel, image); alone and end to end."""
    g = torch.Generator().manual_seed(seed)
    widths = [m.out_channels for m in model.children() if isinstance(m, nn.Conv2d)]
    picks = []
    for _ in range(n + 1):
        layer = int(torch.randint(1, len(widths) + 1, (), generator=g))
        picks.append((layer, int(torch.randint(widths[layer - 1], (), generator=g)),
                      int(torch.randint(len(data), (), generator=g))))
    alone, full = [], []
    for layer, channel, i in picks:
        image = data[i][0]
        x = preprocess(image[None])
        t = time.perf_counter()
        project(model, x, layer, channel)
        alone.append(1e3 * (time.perf_counter() - t))
        t = time.perf_counter()
        stretch(project(model, preprocess(image[None]), layer, channel)[0])
        full.append(1e3 * (time.perf_counter() - t))
    return alone[1:], full[1:]                     # the first call is a warm-up


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layer", type=int, default=5)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--k", type=int, default=9)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--updates", type=int, default=30, help="widget updates timed")
    p.add_argument("--captum-budget", type=float, default=60.0,
                   help="seconds allowed for the Captum loop over all units (all repeats); else sample")
    p.add_argument("--sample", type=int, default=64, help="units timed when Captum is sampled")
    p.add_argument("--mining-budget", type=float, default=45.0,
                   help="seconds allowed for the per-channel Captum mining over all channels (all repeats); "
                        "else sample")
    p.add_argument("--mining-sample", type=int, default=8, help="channels timed when per-channel mining is sampled")
    args = p.parse_args()
    torch.set_num_threads(2)
    model, preprocess = load_teaching_zfnet()
    data = load_images(args.images)
    layer, k, r = args.layer, args.k, args.repeats
    print(f"{len(data)} images (ClipArt train, 112 px), layer {layer}, k {k}, {torch.get_num_threads()} threads, "
          f"best of {r}; load average {os.getloadavg()[0]:.1f}")

    t_mine, top = best_time(lambda: top_activations(model, data, layer, k=k, preprocess=preprocess), r)
    channels = len(top.indices)
    t_zf, _ = best_time(lambda: zfviz_projections(model, preprocess, data, top, layer), r)
    same = check_same_units(model, preprocess, data, top, layer)
    print(f"channels {channels}, units {channels * k}; projected units that are the mined ones: "
          f"{same}/{channels * k}")

    units = [(c, j) for c in range(channels) for j in range(k)]
    probe = [units[i] for i in torch.randperm(len(units), generator=torch.Generator().manual_seed(1))[:16]]
    captum_projections(model, preprocess, data, top, layer, probe[:2])            # warm-up
    t_probe, _ = best_time(lambda: captum_projections(model, preprocess, data, top, layer, probe), 1)
    if t_probe / len(probe) * len(units) * r <= args.captum_budget:
        timed, how = units, f"all {len(units)} units"
    else:
        order = torch.randperm(len(units), generator=torch.Generator().manual_seed(0))[:args.sample]
        timed, how = [units[i] for i in order], f"EXTRAPOLATED from {min(args.sample, len(units))} random units"
    t_sample, _ = best_time(lambda: captum_projections(model, preprocess, data, top, layer, timed), r)
    t_cap = t_sample / len(timed) * len(units)

    # The per-channel peer: one LayerActivation pass over the data per channel. Probe one pass (also a warm-up).
    t_pass, _ = best_time(lambda: captum_top_k(model, preprocess, data, layer, 0, k), 1)
    if t_pass * channels * r <= args.mining_budget:
        mined, mined_how = list(range(channels)), f"all {channels} channels"
    else:
        order = torch.randperm(channels, generator=torch.Generator().manual_seed(2))[:args.mining_sample]
        mined = sorted(order.tolist())
        mined_how = f"EXTRAPOLATED from {len(mined)} random channels"
    t_mined, theirs = best_time(lambda: [captum_top_k(model, preprocess, data, layer, c, k) for c in mined], r)
    t_mine_cap = t_mined / len(mined) * channels
    same_top = sum(bool(torch.equal(v[1], top.indices[c])) for c, v in zip(mined, theirs))

    print(f"{'':22s} {'mining s':>9s} {'projection s':>13s} {'total s':>8s}")
    print(f"{'zfviz':22s} {t_mine:9.2f} {t_zf:13.2f} {t_mine + t_zf:8.2f}   "
          f"(one pass for all channels; {1e3 * t_zf / len(units):.2f} ms/unit, one project() per channel)")
    print(f"{'Captum, per channel':22s} {t_mine_cap:9.2f} {t_cap:13.2f} {t_mine_cap + t_cap:8.2f}   "
          f"(mining: one LayerActivation pass per channel, {t_mined / len(mined):.2f} s/pass, {mined_how}; "
          f"projection as below)")
    print(f"{'Captum, shared mining':22s} {t_mine:9.2f} {t_cap:13.2f} {t_mine + t_cap:8.2f}   "
          f"(zfviz's mining; {1e3 * t_cap / len(units):.2f} ms/unit NeuronDeconvolution, {how})")
    print(f"per-channel Captum mining, same top-{k} images as zfviz: {same_top}/{len(mined)} channels "
          f"(the timed ones)")
    end_to_end, shared = (t_mine_cap + t_cap) / (t_mine + t_zf), (t_mine + t_cap) / (t_mine + t_zf)
    print(f"ratio Captum / zfviz, total: per channel {end_to_end:.1f}x | shared mining {shared:.1f}x "
          f"(projection only {t_cap / t_zf:.1f}x; with shared mining the total cannot exceed "
          f"{(t_mine + t_cap) / t_mine:.1f}x)")
    print("  per channel = the end-to-end job with a per-unit tool (a data pass per channel, then one "
          "NeuronDeconvolution per unit); shared mining isolates projection speed")
    print(f"goal total >= 20x against the per-channel Captum loop: {'met' if end_to_end >= 20 else 'NOT met'} "
          f"({end_to_end:.1f}x)")

    diffs = sanity(model, preprocess, data, top, layer, probe[:6])
    (exact, _), (lrn, lrn_shape) = diffs.values()
    print(f"sanity, zfviz project vs Captum NeuronDeconvolution x value, 6 units, max rel diff: LRN -> Identity "
          f"{exact:.1e}; with LRN {lrn:.1e} ({lrn_shape:.1e} with each map scaled to max 1: Captum backprops "
          f"through LRN, zfviz skips it as the paper does)")

    alone, full = widget_updates(model, preprocess, data, args.updates)
    for name, xs in [("project alone", alone), ("preprocess+project+stretch", full)]:
        med = statistics.median(xs)
        print(f"widget update, {name:27s} median {med:6.1f} ms, p90 {percentile(xs, 0.9):6.1f} ms "
              f"({len(xs)} random layer/channel/image); goal <= 100 ms: {'met' if med <= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
