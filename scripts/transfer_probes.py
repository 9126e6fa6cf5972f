"""§5.2-5.3's linear probes on frozen features: the numbers of the experiments chapter's Fig. 9 curve,
per-layer table and regularisation exercise.

    python scripts/transfer_probes.py --threads 2

A linear probe fits a scikit-learn classifier on float32 features; both the features (PyTorch's kernels)
and the fit (BLAS) add in an order that depends on the CPU and the thread count, and a probe's accuracy
moves by a test image or two between machines (25.4% here, 25.3% on an AVX2 machine). So the chapter prints
these shipped numbers, which are the same everywhere, and recomputes one of them live to check that this
machine agrees within a few test images.

For the teaching ZFNet (layers 1-7, `transfer.probe_features(..., grid=2)`) and EfficientNet-Lite0 (its seven
stages and head, the shipped features of `scripts/efficientnet_features.py`), on the Tux Paint stamps
(`TuxPaint(renders=4, seed=0)`), with the splits of `transfer.few_shot_split` (6 test stamps per class,
seeds 0-4): the softmax probe (C = 0.01) on the top layer for 1, 2, 5, 10 and 12 training stamps per class;
the SVM and softmax probes on every layer with 12 per class; and the softmax probe on layers 1 and 7 for
C = 0.001, 0.01 and 0.1. Writes data/results/transfer_probes.json with the command, the machine and the
per-split accuracies. About 2 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from zfviz import checkpoints, data as zdata, transfer  # noqa: E402

PER_CLASS = (1, 2, 5, 10, 12)
SEEDS = (0, 1, 2, 3, 4)
TEST_PER_CLASS = 6
C_DEFAULT = 0.01
C_SWEEP = (0.001, 0.01, 0.1)


def features() -> tuple[dict, dict, torch.Tensor, zdata.TuxPaint]:
    """The chapter's features: {layer: (576, D)} of the teaching ZFNet and {stage: (576, D)} of EfficientNet."""
    tux = zdata.TuxPaint(renders=4, seed=0)
    x, y = tux.tensors()
    net, pre = checkpoints.load_teaching_zfnet()
    zf = transfer.probe_features(net, pre(x), range(1, 8), grid=2)
    shipped = torch.load(zdata.verify("results/tuxpaint_efficientnet_features.pt"), weights_only=True)
    lite = {stage: f.float() for stage, f in shipped["stages"].items()}
    return zf, lite, y, tux


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    zf, lite, y, tux = features()

    def probe(feats, per_class=12, kind="softmax", C=C_DEFAULT):
        accs = transfer.linear_probe(feats, y, tux.sprite_index, tux.sprite_labels, per_class, TEST_PER_CLASS,
                                     SEEDS, kind, C=C)
        return [round(float(a), 6) for a in accs]

    curves = {"teaching ZFNet, frozen": {n: probe(zf[7], n) for n in PER_CLASS},
              "EfficientNet-Lite0 (ImageNet), frozen": {n: probe(lite[8], n) for n in PER_CLASS}}
    layers = {"teaching ZFNet": {kind: {layer: probe(f, kind=kind) for layer, f in zf.items()}
                                 for kind in transfer.CLASSIFIERS},
              "EfficientNet-Lite0": {"softmax": {stage: probe(f) for stage, f in lite.items()}}}
    import build_data
    c_sweep = {layer: {C: probe(zf[layer], C=C) for C in C_SWEEP} for layer in (1, 7)}
    record = {"what": "per-class accuracy of linear probes on frozen features of the Tux Paint stamps (4 renders "
                      "each), one value per split seed (zfviz.transfer.linear_probe); the experiments chapter's "
                      "Fig. 9 curve (curves[net][per_class]), per-layer table (layers[net][kind][layer], 12 "
                      "stamps per class) and regularisation exercise (c_sweep[layer][C], softmax, 12 per class)",
              "command": "python scripts/transfer_probes.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "seeds": list(SEEDS), "test_per_class": TEST_PER_CLASS, "C": C_DEFAULT,
              "machine": build_data.machine(args.threads),
              "time_s": round(time.time() - t0, 1),
              "curves": curves, "layers": layers, "c_sweep": c_sweep}
    build_data.ship_json("results/transfer_probes.json", record)


if __name__ == "__main__":
    main()
