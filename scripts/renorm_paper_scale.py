"""Fig. 6(a) in the paper's own regime: a full-width ZFNet, the paper's initialisation and input scale,
trained with and without filter renormalisation.

    python scripts/renorm_paper_scale.py --epochs 60 --threads 2

The teaching network of the chapter "Training ZFNet" departs from the paper in two ways that hide Fig. 6(a):
He initialisation, and inputs divided by their standard deviation. This run undoes both. The network is
ZFNet at the paper's widths (96 first-layer filters) on 64-pixel clip-art composites (the size that fits
2 CPU cores); weights start at N(0, 0.01^2) and biases at 0 (``models.init_paper_``); inputs are 0-255
pixels minus the mean image, not divided by anything (roughly [-128, 128], as the paper says); SGD with
learning rate 1e-2 and momentum 0.9, batches of 32, dropout 0.5, no annealing. Two arms from the same seed,
identical but for ``max_filter_rms``: 0.1 (the paper's radius) and 0 (off).

Ships data/weights/renorm_paper_scale.pt: the mean image, and per arm the layer-1 weights at a few epochs,
the final layer-1 biases, and the history (per epoch: training loss and accuracy over the epoch's batches,
validation accuracy, every layer-1 filter's RMS). data/weights/renorm_paper_scale.json records the command,
seed, times and sha256; data/MANIFEST.tsv is rewritten. About 17 s per epoch per arm on 2 CPU cores.

On a GPU, at the paper's image size and batch, written outside data/ (benchmarks/gpu_session.sh does this when
asked with FIG6A_EPOCHS):

    python scripts/renorm_paper_scale.py --device cuda --input-size 224 --batch-size 128 --out /tmp/f6a.pt
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

from zfviz import data, models  # noqa: E402
from zfviz.train import pick_device, train_step  # noqa: E402

ARMS = {"renormalised": 0.1, "not renormalised": 0.0}
SNAPSHOTS = (1, 5, 10, 20, 40, 60)          # epochs whose layer-1 weights ship (those <= --epochs)


def paper_preprocess(train_images: torch.Tensor) -> data.Preprocess:
    """The paper's input: pixels on the 0-255 scale minus the mean image (std 1/255 undoes the [0, 1] scale)."""
    return data.Preprocess(train_images.mean(0), torch.full((3,), 1 / 255))


@torch.no_grad()
def accuracy(net, x, y) -> float:
    net.eval()
    return (net(x).argmax(1) == y).float().mean().item()


def run_arm(radius: float, args, x_train, y_train, x_val, y_val) -> dict:
    torch.manual_seed(args.seed)
    net = models.zfnet(num_classes=10, width=1.0, input_size=args.input_size)   # N(0, 0.01^2), biases 0
    net.to(x_train.device)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9)
    order = torch.Generator().manual_seed(args.seed)
    history, weights = [], {}
    for epoch in range(1, args.epochs + 1):
        net.train()
        losses, correct = [], 0
        for b in torch.randperm(len(y_train), generator=order).split(args.batch_size):
            loss, logits, _ = train_step(net, opt, x_train[b], y_train[b], radius)
            losses.append(loss.item())
            correct += int((logits.argmax(1) == y_train[b]).sum())
        w = net.conv1.weight.detach()
        rms = w.pow(2).mean(dim=(1, 2, 3)).sqrt()
        history.append({"epoch": epoch, "train_loss": round(sum(losses) / len(losses), 4),
                        "train_accuracy": round(correct / len(y_train), 4),
                        "val_accuracy": round(accuracy(net, x_val, y_val), 4),
                        "conv1_rms": [round(v, 5) for v in rms.tolist()]})
        if epoch in SNAPSHOTS or epoch == args.epochs:
            weights[epoch] = w.cpu().clone()
        h = history[-1]
        print(f"  epoch {epoch:3d}: loss {h['train_loss']:.3f}, train {h['train_accuracy']:.1%}, "
              f"val {h['val_accuracy']:.1%}, layer-1 RMS largest {rms.max():.3f}, median {rms.median():.3f}",
              flush=True)
    return {"max_filter_rms": radius, "conv1.weight": weights, "conv1.bias": net.conv1.bias.detach().cpu().clone(),
            "history": history}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-size", "--image-size", type=int, default=64,
                   help="side of the square input (--image-size: its name before issue 17)")
    p.add_argument("--renders", type=int, default=8, help="composites of each training drawing")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu (the shipped run), cuda, mps or auto")
    p.add_argument("--out", default=str(ROOT / "data" / "weights" / "renorm_paper_scale.pt"),
                   help="the .pt to write (its record goes beside it as .json); default: shipped in data/")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    train_images, y_train = data.ClipArt("train", input_size=args.input_size, renders=args.renders).tensors()
    val_images, y_val = data.ClipArt("val", input_size=args.input_size).tensors()
    pre = paper_preprocess(train_images)
    x_train, x_val = pre(train_images).to(device), pre(val_images).to(device)
    y_train, y_val = y_train.to(device), y_val.to(device)
    settings = {"epochs": args.epochs, "seed": args.seed, "input_size": args.input_size, "width": 1.0,
                "renders": args.renders, "batch_size": args.batch_size, "lr": args.lr, "momentum": 0.9,
                "init": "paper (N(0, 0.01^2), biases 0)", "input": "0-255 pixels minus the mean image",
                "train_images": len(y_train), "val_images": len(y_val)}
    shipped = {"what": "full-width ZFNet at the paper's init and input scale, trained with and without filter "
                       "renormalisation; per arm layer-1 weights at some epochs, final biases, history",
               **settings, "mean": pre.mean.clone(), "arms": {}}
    record = {"what": shipped["what"], "command": "python scripts/renorm_paper_scale.py " + " ".join(
        sys.argv[1:] if argv is None else argv), **settings, "torch": torch.__version__,
              "threads": args.threads, "device": str(device), "arms": {}}
    print(f"input: mean {x_train.mean():.2f}, std {x_train.std():.1f}, range [{x_train.min():.0f}, "
          f"{x_train.max():.0f}]", flush=True)
    for name, radius in ARMS.items():
        print(f"--- {name} (max_filter_rms {radius})", flush=True)
        t0 = time.time()
        arm = run_arm(radius, args, x_train, y_train, x_val, y_val)
        shipped["arms"][name] = arm
        record["arms"][name] = {"max_filter_rms": radius, "wall_time_s": round(time.time() - t0, 1),
                                "final_val_accuracy": arm["history"][-1]["val_accuracy"]}
    import build_data
    # An absolute path: inside data/ it is shipped (and listed in the manifest), elsewhere just written.
    build_data.ship_torch(str(Path(args.out).resolve()), shipped, record)


if __name__ == "__main__":
    main()
