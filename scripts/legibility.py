"""How readable the teaching network's deconvnet projections are, per layer: data/results/legibility.json.

    python scripts/legibility.py --name "new" --threads 2                       # the shipped teaching ZFNet
    python scripts/legibility.py --name "old" --weights old.pt --threads 2      # another checkpoint
    python scripts/legibility.py --name "untrained" --untrained --threads 2     # He initialisation, no training

For each conv layer, 16 seeded feature maps among those that fire on the validation images, and for each its
top-9 validation images (`deconv.top_activations`): the projection of the strongest unit, and the two numbers
of `features.projection_legibility` inside the unit's receptive field (the share of the projection on the
object over the share of the field the object covers; the correlation of the projection's magnitude with the
image's edge strength; the projection's own neighbour correlation, its smoothness). Adds the network's per-layer means under --name to data/results/legibility.json
(other entries are kept), with the command, the checkpoint's sha256 and the machine. The chapter "What each
layer sees" sets the old network (before issue 14) beside the new one. About a minute per network.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from zfviz import checkpoints, data as zdata, deconv, features, models  # noqa: E402
from zfviz.train import load_checkpoint  # noqa: E402

MAPS, TOP = 16, 9


def measure(model, preprocess, input_size: int, seed: int = 1) -> dict:
    val = zdata.ClipArt("val", input_size=input_size)
    images = val.tensors()[0]
    x = preprocess(images)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for layer in range(1, 6):
        top = deconv.top_activations(model, torch.utils.data.TensorDataset(x, torch.zeros(len(x))), layer, k=TOP)
        firing = (top.values[:, -1] > 0).nonzero().flatten()          # maps whose 9th image still fires
        maps = firing[torch.randperm(len(firing), generator=g)[:MAPS]].tolist()
        ratios, corrs, smooth = [], [], []
        for c in maps:
            idx = top.indices[c]
            p = deconv.project(model, x[idx], layer, c)
            boxes = [deconv.receptive_field_box(model, layer, tuple(pos.tolist()), input_size)
                     for pos in top.positions[c]]
            leg = features.projection_legibility(p, images[idx], val.masks[idx], boxes)
            ratios.append(leg.object_ratio)
            corrs.append(leg.edge_correlation)
            smooth.append(leg.smoothness)
        r, e, m = torch.cat(ratios), torch.cat(corrs), torch.cat(smooth)
        out[str(layer)] = {"maps": maps, "object_ratio": round(r.nanmean().item(), 4),
                           "edge_correlation": round(e.nanmean().item(), 4),
                           "smoothness": round(m.nanmean().item(), 4),
                           "edge_correlation_sem": round((e[~e.isnan()].std() / (~e.isnan()).sum().sqrt()).item(), 4)}
    return out


def main(argv=None) -> None:
    from build_data import machine, ship_json
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True, help="the entry's name in the JSON file")
    p.add_argument("--weights", default=None, help="a checkpoint (default: the shipped teaching ZFNet)")
    p.add_argument("--untrained", action="store_true", help="the shipped network's architecture, He-initialised")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    if args.weights:
        model, preprocess, state = load_checkpoint(args.weights, allow_unverified=True)   # its sha256 is recorded
        digest = zdata.sha256_file(args.weights)
    else:
        model, preprocess = checkpoints.load_teaching_zfnet()
        digest = zdata.sha256_file(zdata.data_path("weights/zfnet_teaching.pt"))
    input_size = preprocess.mean.shape[-1]
    if args.untrained:
        torch.manual_seed(0)
        models.init_kaiming_(model)
        digest = f"untrained (He init, seed 0), architecture of {digest}"
    model.eval()
    result = measure(model, preprocess, input_size)
    target = ROOT / "data" / "results" / "legibility.json"
    record = json.loads(target.read_text()) if target.is_file() else {
        "what": __doc__.split("\n\n")[0], "maps_per_layer": MAPS, "top": TOP, "networks": {}}
    # Entries written before issue 17 name the input side image_size: renamed, so the file uses one name.
    record["networks"] = {name: {("input_size" if k == "image_size" else k): v for k, v in entry.items()}
                          for name, entry in record["networks"].items()}
    command = "python scripts/legibility.py " + " ".join(sys.argv[1:] if argv is None else argv)
    record["networks"][args.name] = {"command": command, "checkpoint_sha256": digest, "input_size": input_size,
                                     "machine": machine(args.threads), "time_s": round(time.time() - t0),
                                     "layers": result}
    ship_json("results/legibility.json", record)
    for layer, v in result.items():
        print(f"layer {layer}: object ratio {v['object_ratio']:.2f}, edge correlation {v['edge_correlation']:.3f}")


if __name__ == "__main__":
    main()
