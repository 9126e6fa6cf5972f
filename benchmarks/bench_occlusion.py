"""How fast is Fig. 7 at teaching scale? ``zfviz.occlusion.occlusion_map`` against Captum's ``Occlusion`` on the same
model, image, window and stride, and the latency of one update of the occlusion explorer.

    python benchmarks/bench_occlusion.py [--threads 2] [--repeats 5] [--size 16] [--stride 4] [--updates 30]
                                         [--efficientnet] [--eff-size 32] [--eff-stride 16]

What is compared, in one process (``torch.set_num_threads(--threads)``, 2 by default):

* the teaching ZFNet (``load_teaching_zfnet``, width 0.25, 112 px) on validation image 11, its own label as target,
  a 16-pixel square at stride 4 filled with 0 (the mean image in the preprocessed space): 25 x 25 = 625 positions.
* zfviz: ``occlusion_map(model, x, target, size, stride)`` (batches of 64; the patch of conv1..norm2 that the square
  reaches is recomputed and pasted into the unoccluded maps, the rest of the net runs on whole maps).
* zfviz, whole copies: the same batches of 64 occluded copies through the whole network (what the patching saves).
* Captum default: ``Occlusion(lambda x: softmax(model(x))).attribute(x, sliding_window_shapes=(3, size, size),
  strides=(3, stride, stride), baselines=0, target=target)``, i.e. ``perturbations_per_eval=1``.
* Captum tuned: the same with ``perturbations_per_eval=64`` (the batch zfviz uses).

Equal work: every method runs the same 625 occluded copies and one unoccluded pass (Captum needs the unoccluded
output as its baseline, zfviz to check the target); the script asserts that the grids match (Captum clips a last
window at the edge when stride does not divide H - size, so choose sizes where it does). Like for like: Captum's
attribution of a pixel is the mean, over the windows that cover it, of p(unoccluded) - p(window); the script
rebuilds that from zfviz's map and prints the largest difference, and the exact value under the first window
alone (the top-left stride x stride cells), untimed.

Timings interleave the methods, ``--repeats`` rounds; each ratio is taken within a round (so load from other
processes hits both sides alike) and the median over rounds is printed, with the 1-minute load average. Widget
updates: ``OcclusionExplorer`` with the teaching net; moving the x slider (one forward pass, the map from the
cache, the figure redrawn to PNG), median and 90th percentile, and the same without drawing (``occlusion_view``);
changing the square's size (coarse preview of at most 100 positions, then refined).

``--efficientnet`` adds EfficientNet-Lite0 (``zfviz.pretrained.efficientnet_lite0``) at 224 px on scikit-image's coffee
photo, target "espresso", window ``--eff-size`` at ``--eff-stride`` (169 positions by default), one round: a model
that is not a flat Sequential runs whole copies, so only batching can help there, and on a CPU it does not (its
maps outgrow the caches), so zfviz with ``batch_size=1`` is timed too.

Goals (from the issue): zfviz >= 5x Captum default, >= 1.0x Captum tuned, slider update median <= 100 ms.
Not a test: the numbers depend on the machine.
"""
import argparse
import os
import statistics
import time
import warnings

import matplotlib

matplotlib.use("Agg")

import torch
import torch.nn.functional as F
from captum.attr import Occlusion

from zfviz import _occlusion_runner, occlusion, widgets
from zfviz.data import ClipArt
from zfviz.checkpoints import load_teaching_zfnet


def captum_map(model, x, target, size, stride, ppe):
    """Captum's attribution (3, H, W) of softmax(model(x))[target] for one image x (3, H, W)."""
    occ = Occlusion(lambda z: model(z).softmax(dim=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return occ.attribute(x[None], sliding_window_shapes=(3, size, size), strides=(3, stride, stride),
                             baselines=0.0, target=target, perturbations_per_eval=ppe)[0]


@torch.no_grad()
def whole_copies(model, x, target, size, stride, batch_size=64):
    """The same copies without the patching: batches of whole occluded images through the whole network."""
    ny, nx = occlusion.occlusion_grid(*x.shape[-2:], size, stride)
    model(x[None])                                                        # the unoccluded pass, as the others
    corners = _occlusion_runner.corners(ny, nx, stride, x.device)
    probs = [model(_occlusion_runner.occluded(x, corners[s:s + batch_size], size, 0.0)).softmax(dim=1)[:, target]
             for s in range(0, len(corners), batch_size)]
    return torch.cat(probs).view(ny, nx)


def rebuild_captum(prob, base, size, stride, shape):
    """Captum's per-pixel value from zfviz's map: mean over covering windows of (base - prob)."""
    drop, count = torch.zeros(shape), torch.zeros(shape)
    for i in range(prob.shape[0]):
        for j in range(prob.shape[1]):
            drop[i * stride:i * stride + size, j * stride:j * stride + size] += base - prob[i, j]
            count[i * stride:i * stride + size, j * stride:j * stride + size] += 1
    return torch.where(count > 0, drop / count.clamp_min(1), torch.zeros(()))


def check_like_for_like(model, x, target, size, stride, prob):
    height, width = x.shape[-2:]
    if (height - size) % stride or (width - size) % stride:
        raise SystemExit(f"stride {stride} does not divide {height} - {size}: Captum would add clipped edge windows")
    with torch.no_grad():
        base = float(model(x[None]).softmax(dim=1)[0, target])
    attr = captum_map(model, x, target, size, stride, 64)
    rebuilt = rebuild_captum(prob, base, size, stride, (height, width))
    first = float((attr[:, :stride, :stride] - (base - prob[0, 0])).abs().max())
    print(f"like for like: p(unoccluded) = {base:.4f}; max |Captum - rebuilt from zfviz map| = "
          f"{float((attr - rebuilt).abs().max()):.2e} over the image; first window alone: {first:.2e}")


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def compare(name, model, x, target, size, stride, repeats, methods):
    ny, nx = occlusion.occlusion_grid(*x.shape[-2:], size, stride)
    print(f"\n{name}: {tuple(x.shape)} image, square {size}, stride {stride}: {ny} x {nx} = {ny * nx} positions, "
          f"{repeats} round(s), load average {os.getloadavg()[0]:.1f}")
    times = {m: [] for m in methods}
    for _ in range(repeats):
        for m, fn in methods.items():                                      # interleaved: one of each per round
            times[m].append(timed(lambda: fn(model, x, target, size, stride))[0])
    ref = times["zfviz"]
    for m, ts in times.items():
        ratio = statistics.median(t / z for t, z in zip(ts, ref))
        print(f"  {m:<22} median {statistics.median(ts):7.3f} s  ({ny * nx / statistics.median(ts):7.1f} "
              f"positions/s)  zfviz is {ratio:5.2f}x faster")


def widget_latency(model, preprocess, image, label, classes, updates):
    explorer = widgets.occlusion_explorer(model, image, label, size=16, stride=4, preprocess=preprocess,
                                          classes=classes)
    xs = [(7 * k) % 97 for k in range(1, updates + 1)]
    drawn, bare = [], []
    for v in xs:
        t, _ = timed(lambda: setattr(explorer.x, "value", v))
        drawn.append(t)
        t, _ = timed(lambda: widgets.occlusion_view(model, image, label, 16, 4, (explorer.y.value, v),
                                                    preprocess=preprocess, cache=explorer.cache))
        bare.append(t)

    def show(name, ts):
        ts = sorted(ts)
        median, p90 = 1000 * statistics.median(ts), 1000 * ts[int(0.9 * len(ts))]
        print(f"  {name:<48} median {median:6.1f} ms   p90 {p90:6.1f} ms")

    print(f"\nwidget updates ({updates} moves of the x slider, teaching ZFNet, square 16, stride 4):")
    show("move: one forward pass + redraw to PNG", drawn)
    show("move: occlusion_view alone (no drawing)", bare)
    sizes = [20, 24, 28, 32, 36]
    coarse = []
    for s in sizes:                                                        # as while dragging: coarse previews
        t, _ = timed(lambda: widgets.occlusion_view(model, image, label, s, 4, (0, 0), coarse=True,
                                                    preprocess=preprocess, cache=explorer.cache))
        coarse.append(t)
    full = [timed(lambda: explorer.size.__setattr__("value", s))[0] for s in sizes]   # no event loop: refined at once
    show("size change, coarse preview (<= 100 positions)", coarse)
    show("size change, full map + redraw", full)


def efficientnet(args, methods):
    import skimage.data
    from zfviz.pretrained import efficientnet_lite0
    model, preprocess = efficientnet_lite0()
    photo = torch.from_numpy(skimage.data.coffee()).permute(2, 0, 1).float() / 255
    x = preprocess(F.interpolate(photo[None, :, :, 100:500], size=224, mode="bilinear", antialias=True))[0]
    prob = occlusion.occlusion_map(model, x, 967, args.eff_size, args.eff_stride)
    check_like_for_like(model, x, 967, args.eff_size, args.eff_stride, prob)
    methods = {k: v for k, v in methods.items() if k != "zfviz, whole copies"}
    # On a CPU this network's maps outgrow the caches in big batches: one copy per pass is faster.
    methods["zfviz, batch_size=1"] = lambda m, x, t, s, st: occlusion.occlusion_map(m, x, t, s, st, batch_size=1)
    compare("EfficientNet-Lite0 (coffee, espresso)", model, x, 967, args.eff_size, args.eff_stride, 1, methods)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--stride", type=int, default=4)
    p.add_argument("--updates", type=int, default=30)
    p.add_argument("--efficientnet", action="store_true")
    p.add_argument("--eff-size", type=int, default=32)
    p.add_argument("--eff-stride", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    model, preprocess = load_teaching_zfnet()
    val = ClipArt("val")
    image, label = val[11]
    x = preprocess(image[None])[0]
    methods = {
        "zfviz": lambda m, x, t, s, st: occlusion.occlusion_map(m, x, t, s, st),
        "zfviz, whole copies": whole_copies,
        "Captum default (ppe=1)": lambda m, x, t, s, st: captum_map(m, x, t, s, st, 1),
        "Captum tuned (ppe=64)": lambda m, x, t, s, st: captum_map(m, x, t, s, st, 64),
    }
    prob = occlusion.occlusion_map(model, x, label, args.size, args.stride)
    assert torch.allclose(prob, whole_copies(model, x, label, args.size, args.stride), atol=1e-5)
    check_like_for_like(model, x, label, args.size, args.stride, prob)
    compare("teaching ZFNet (val image 11)", model, x, label, args.size, args.stride, args.repeats, methods)
    widget_latency(model, preprocess, image, label, val.classes, args.updates)
    if args.efficientnet:
        efficientnet(args, methods)


if __name__ == "__main__":
    main()
