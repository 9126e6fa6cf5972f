"""How cheap is the training-set pipeline? Batched compositing (zfviz.data.composite, one grid_sample for a
whole batch) against the obvious per-image loop with Pillow (resize, rotate, flip, alpha_composite), in one
process on the same sprites, backgrounds and random placements.

    python benchmarks/bench_compositing.py [--n 512] [--size 112]

Prints images/s of each and the ratio. Not a test: numbers depend on the machine.
"""
import argparse
import math
import time

import numpy as np
import torch
from PIL import Image

from zfviz.data import ClipArt, composite


def pil_loop(sprites, backs, scale, angle, center, flip, size):
    out = []
    for s, b, sc, a, c, f in zip(sprites, backs, scale.tolist(), angle.tolist(), center.tolist(), flip.tolist()):
        sprite = Image.fromarray(s.permute(1, 2, 0).numpy())
        side = max(1, round(sc * size))
        sprite = sprite.resize((side, side), Image.BILINEAR)
        if f:
            sprite = sprite.transpose(Image.FLIP_LEFT_RIGHT)
        sprite = sprite.rotate(math.degrees(a), resample=Image.BILINEAR, expand=True)
        canvas = Image.fromarray(b.permute(1, 2, 0).numpy()).convert("RGBA")
        cx, cy = (c[0] + 1) / 2 * size, (c[1] + 1) / 2 * size
        layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        layer.paste(sprite, (round(cx - sprite.width / 2), round(cy - sprite.height / 2)), sprite)
        out.append(np.asarray(Image.alpha_composite(canvas, layer).convert("RGB")))
    return np.stack(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--size", type=int, default=112)
    args = p.parse_args()
    torch.set_num_threads(2)
    ds = ClipArt("train", input_size=args.size, renders=1)
    g = torch.Generator().manual_seed(0)
    n = args.n
    idx = torch.randint(len(ds.sprites), (n,), generator=g)
    sprites = ds.sprites[idx]
    backs = ds.images[torch.randint(len(ds), (n,), generator=g)]
    scale = 0.55 + 0.45 * torch.rand(n, generator=g)
    angle = math.radians(20) * (2 * torch.rand(n, generator=g) - 1)
    center = (1 - 0.8 * scale).unsqueeze(1) * (2 * torch.rand(n, 2, generator=g) - 1)
    flip = torch.rand(n, generator=g) < 0.5

    def batched():
        for s in range(0, n, 256):
            sl = slice(s, s + 256)
            composite(sprites[sl].float() / 255, backs[sl].float() / 255, scale[sl], angle[sl], center[sl],
                      flip[sl], args.size)

    def loop():
        pil_loop(sprites, backs, scale, angle, center, flip, args.size)

    results = {}
    for name, fn in [("batched grid_sample (zfviz)", batched), ("per-image Pillow loop", loop)]:
        fn()                                   # warm-up
        best = min(_time(fn) for _ in range(3))
        results[name] = n / best
        print(f"{name:30s} {results[name]:9.0f} images/s")
    a, b = results.values()
    print(f"ratio batched / loop: {a / b:.1f}x  ({n} images of {args.size}x{args.size}, "
          f"{torch.get_num_threads()} threads)")


def _time(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
